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
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/ws", poem::get(api::ws::ws))
        .nest("/", service)
        .data(state.admin_token.clone())
        .data(state.clone())
        .around(api::limits::limit_body)
        .with(poem::middleware::Tracing)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let closing = state.closing.clone();
    let shutdown = async move {
        shutdown.await;
        // tell open WebSockets first, so their clients get a close frame rather than a cut
        let _ = closing.send(true);
    };
    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(app(&state), shutdown, Some(DRAIN_TIMEOUT)).await
}
