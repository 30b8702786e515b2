//! `GET /`: the playground, one self-contained page built into the binary (no CDN, no build
//! step), where a steward tries every intent and sees why each reply came out as it did.

use poem_openapi::payload::Html;
use poem_openapi::OpenApi;

const PAGE: &str = include_str!("../../playground/index.html");

pub struct PlaygroundApi;

#[OpenApi]
impl PlaygroundApi {
    /// The playground page (HTML for people, so not part of the API document).
    #[oai(path = "/", method = "get", hidden)]
    async fn page(&self) -> Html<&'static str> {
        Html(PAGE)
    }
}
