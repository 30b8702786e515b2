//! `probe`: ask a running server's `/health` and exit 0 only when it says `active` — the
//! container health check, so the runtime image needs no shell or curl.

use std::process::ExitCode;
use std::time::Duration;

pub async fn run(url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = url.unwrap_or_else(|| {
        let port = std::env::var("PORT").ok().filter(|p| !p.trim().is_empty()).unwrap_or_else(|| "8012".to_owned());
        format!("http://127.0.0.1:{}/health", port.trim())
    });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let answer: serde_json::Value = match client.get(&url).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(error) => {
            eprintln!("{url}: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = answer["status"].as_str().unwrap_or("no status");
    println!("{url}: {status}");
    Ok(if status == "active" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
