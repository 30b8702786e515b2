//! Graceful shutdown: once the signal comes, the server stops accepting connections but every
//! request it already accepted is answered.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::api::AppState;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_request_is_dropped() {
    let factory = common::Slow::backend(1, "/getAll", Duration::from_millis(600));
    let (engine, _) = common::engine_and_store(common::compiled(), factory, Default::default());
    let mut server = common::Running::start(AppState::new(Arc::new(engine), None, None)).await;
    let address = server.address;

    // ten slow turns in flight (each waits 600 ms on the Registry)...
    let client = reqwest::Client::new();
    let turns: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .post(format!("http://{address}/api/chat"))
                    .json(&json!({"message": "show the registry", "session_id": format!("s{i}")}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...when shutdown is asked for
    server.signal_shutdown();
    for turn in turns {
        assert_eq!(turn.await.expect("task").expect("answered, not dropped"), 200);
    }
    server.stop().await;
    // and nothing new is accepted afterwards
    let refused = client.post(format!("http://{address}/api/chat")).json(&json!({"message": "hello"})).send().await;
    assert!(refused.is_err(), "the listener is closed");
}
