//! The HTTP server: routes and the `run(listener, state, shutdown)` entry point tests start on
//! port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::{EndpointExt, Route, Server};

use crate::api::{self, AppState};
use crate::connections::LimitedAcceptor;

/// How long in-flight requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The application: the API, its OpenAPI document at `/openapi.json`, and docs at `/docs`.
pub fn app(state: &AppState) -> impl poem::Endpoint {
    // the recorder must be in place before the first request is counted
    crate::metrics::handle();
    let service = api::service(state);
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    // one shared state for every request: handlers and auth checkers read what they need from
    // it, and each layer holds one `Arc` (a per-request clone of the whole state, or one
    // extension per part, showed in the /health profile)
    let shared = Arc::new(state.clone());
    let outer = shared.clone();
    let body_read_timeout = state.connection_limits.body_read_timeout;
    let registry = state.connections.clone();
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/ws", poem::get(api::ws::ws))
        .at("/metrics", poem::get(api::metrics::metrics))
        .nest("/", service)
        .data(shared)
        .around(move |endpoint, request| api::limits::limit_body(endpoint, request, body_read_timeout))
        .around(move |endpoint, request| every_request(endpoint, request, outer.clone()))
        .around(move |endpoint, request| crate::connections::guard(endpoint, request, registry.clone()))
}

/// What every request goes through:
/// - a trace id: the caller's `X-Trace-ID` (1–128 printable characters) or a new one, seen by
///   the handlers and returned on the response;
/// - in development mode (no Registry key), requests without a bearer token pass the typed auth
///   path as unverified callers;
/// - the response is counted for `/state` and `/metrics`, and logged at debug level.
async fn every_request<E: poem::Endpoint>(
    endpoint: std::sync::Arc<E>,
    mut request: poem::Request,
    state: Arc<AppState>,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let started = std::time::Instant::now();
    let route = crate::metrics::route_label(request.uri().path());
    let method = request.method().clone();
    let trace_id = request
        .header("x-trace-id")
        .filter(|given| crate::api::validate::is_printable_id(given))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = poem::http::HeaderValue::from_str(&trace_id) {
        request.headers_mut().insert("x-trace-id", value);
    }
    if state.verifier.is_open() && request.header("authorization").is_none() {
        request.headers_mut().insert("authorization", poem::http::HeaderValue::from_static("Bearer development-mode"));
    }
    let mut response = match endpoint.call(request).await {
        Ok(output) => output.into_response(),
        Err(error) => error.into_response(),
    };
    if let Ok(value) = poem::http::HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    state.stats.record(response.status().is_server_error());
    let elapsed = started.elapsed();
    crate::metrics::record_request(route, response.status().as_u16(), elapsed);
    // the access log: debug, so health checks do not flood an info log
    tracing::debug!(
        trace_id = %trace_id,
        method = %method,
        route,
        status = response.status().as_u16(),
        duration_us = elapsed.as_micros() as u64,
        "request"
    );
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
    let acceptor = LimitedAcceptor::new(acceptor, state.connection_limits, state.connections.clone());
    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(app(&state), shutdown, Some(DRAIN_TIMEOUT)).await
}
