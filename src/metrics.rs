//! Prometheus metrics (`GET /metrics`), through the `metrics` facade and its Prometheus
//! exporter: counters and histograms are recorded where things happen (the engine, the LLM, the
//! query step, the reloader, the HTTP middleware); gauges that describe state (sessions,
//! WebSockets) are set when scraped or as they change.
//!
//! The recorder is process-wide (the `metrics` macros write to one global recorder), installed
//! on first use; several servers in one test process share it, which is why tests look for
//! names and increases, not absolute values.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: from a fast rules turn (sub-millisecond) to a slow relay.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The recorder's handle; installs the recorder the first time.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder =
            PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // another recorder already installed (an embedding program's) keeps working; ours
        // then renders only what it saw, which is nothing — said once in the log
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// The exposition text, after the exporter's periodic housekeeping.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("http_requests_total", "HTTP requests by route and status code.");
    describe_histogram!("http_request_duration_seconds", Unit::Seconds, "HTTP request latency by route.");
    describe_counter!("chat_turns_total", "Turns answered, by intent, channel and how the intent was chosen.");
    describe_histogram!("chat_turn_duration_seconds", Unit::Seconds, "Time to answer one turn, by channel.");
    describe_counter!("llm_calls_total", "Language-model calls by purpose, provider and outcome.");
    describe_counter!("llm_tokens_total", "Language-model tokens by purpose and kind (prompt, output).");
    describe_histogram!("llm_call_duration_seconds", Unit::Seconds, "Language-model call latency by purpose.");
    describe_counter!("droplet_calls_total", "Droplet calls by droplet, route and outcome (data, dispatched, failed).");
    describe_counter!("droplet_call_errors_total", "Failed droplet calls by droplet and failure kind.");
    describe_counter!(
        "droplet_answers_unexpected_total",
        "Droplet answers that broke their endpoint's declared shape, by droplet and endpoint."
    );
    describe_gauge!("sessions_active", "Conversations currently kept by the session store.");
    describe_gauge!("websocket_connections", "Open WebSocket connections.");
    describe_counter!("config_reloads_total", "Configuration reloads by outcome (installed, rejected).");
}

/// A bounded label for a request path: our route templates, never raw ids.
pub fn route_label(path: &str) -> &'static str {
    const EXACT: &[&str] = &[
        "/",
        "/api/chat",
        "/api/analyze",
        "/api/process",
        "/api/sessions",
        "/api/sessions/stats",
        "/api/admin/reload",
        "/api/admin/config",
        "/health",
        "/capabilities",
        "/state",
        "/dependencies",
        "/version",
        "/message",
        "/send",
        "/heartbeat",
        "/ws",
        "/metrics",
        "/openapi.json",
    ];
    if let Some(found) = EXACT.iter().find(|route| **route == path) {
        return found;
    }
    if path.starts_with("/api/sessions/") {
        "/api/sessions/{id}"
    } else if path.starts_with("/docs") {
        "/docs"
    } else {
        "other"
    }
}

/// Records one HTTP exchange.
/// Counts a response; `route` is the request's [`route_label`].
pub fn record_request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!("http_requests_total", "route" => route, "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_not_raw_paths() {
        assert_eq!(route_label("/api/chat"), "/api/chat");
        assert_eq!(route_label("/api/sessions/abc-123"), "/api/sessions/{id}");
        assert_eq!(route_label("/docs/index.css"), "/docs");
        assert_eq!(route_label("/wp-admin.php"), "other");
    }
}
