//! The HTTP server: routes and the `run(listener, state, shutdown)` entry point tests start on
//! port 0.

use std::future::Future;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::{EndpointExt, Route, Server};

use crate::api::{self, AppState};

/// How long in-flight requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The application: the API, its OpenAPI document at `/openapi.json`, and docs at `/docs`.
pub fn app(state: &AppState) -> impl poem::Endpoint {
    let service = api::service(state);
    let outer = state.clone();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/ws", poem::get(api::ws::ws))
        .nest("/", service)
        .data(state.admin_token.clone())
        .data(state.verifier.clone())
        .data(state.clone())
        .around(api::limits::limit_body)
        .around(move |endpoint, request| count_and_open_auth(endpoint, request, outer.clone()))
        .with(poem::middleware::Tracing)
}

/// Counts every response for `/state`, and in development mode (no Registry key) lets requests
/// without a bearer token through the typed auth path as unverified callers.
async fn count_and_open_auth<E: poem::Endpoint>(
    endpoint: std::sync::Arc<E>,
    mut request: poem::Request,
    state: AppState,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    if state.verifier.is_open() && request.header("authorization").is_none() {
        request.headers_mut().insert("authorization", poem::http::HeaderValue::from_static("Bearer development-mode"));
    }
    let response = match endpoint.call(request).await {
        Ok(output) => output.into_response(),
        Err(error) => error.into_response(),
    };
    state.stats.record(response.status().is_server_error());
    Ok(response)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let closing = state.closing.clone();
    let health = state.health.clone();
    let shutdown = async move {
        shutdown.await;
        health.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        // tell open WebSockets first, so their clients get a close frame rather than a cut
        let _ = closing.send(true);
    };
    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(app(&state), shutdown, Some(DRAIN_TIMEOUT)).await
}
