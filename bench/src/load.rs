//! The load generator: a fixed number of keep-alive connections, each sending its next request
//! as soon as the last one is answered, for a fixed time after a warm-up. Latencies go into an
//! HDR histogram (microseconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hdrhistogram::Histogram;

/// What one request is: built fresh for each send (`n` counts the worker's requests).
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize, u64) -> reqwest::RequestBuilder + Send + Sync>;

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.50) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Runs `connections` workers for `warmup` (not measured) then `duration`, each sending as
/// fast as it is answered (closed loop: the throughput ceiling).
pub async fn run(make: MakeRequest, connections: usize, warmup: Duration, duration: Duration) -> LoadResult {
    drive(make, connections, None, warmup, duration).await
}

/// Like [`run`], but at a fixed total rate (requests per second): each worker sends on a
/// schedule, and latency is counted from when a request was *due*, so a slow answer that delays
/// the next send still shows (no coordinated omission).
pub async fn run_at_rate(
    make: MakeRequest,
    connections: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    drive(make, connections, Some(rate), warmup, duration).await
}

async fn drive(
    make: MakeRequest,
    connections: usize,
    rate: Option<f64>,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let workers = (0..connections).map(|worker| {
        let (client, make) = (client.clone(), make.clone());
        tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let (mut requests, mut errors, mut n) = (0u64, 0u64, 0u64);
            // paced workers start spread over one interval, so their sends interleave
            let interval = rate.map(|rate| Duration::from_secs_f64(connections as f64 / rate.max(1.0)));
            let first = start + interval.map(|i| i.mul_f64(worker as f64 / connections as f64)).unwrap_or_default();
            loop {
                let sent = match interval {
                    Some(interval) => {
                        let due = first + interval.mul_f64(n as f64);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if sent >= end {
                    break;
                }
                let ok = match make(&client, worker, n).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        // read the whole body, as a real client would
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                n += 1;
                if sent >= measure_from && Instant::now() <= end {
                    requests += 1;
                    if !ok {
                        errors += 1;
                    }
                    let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                }
            }
            (requests, errors, latency)
        })
    });
    let mut total = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: duration,
        latency: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
    };
    for (requests, errors, latency) in join_all(workers).await.into_iter().flatten() {
        total.requests += requests;
        total.errors += errors;
        let _ = total.latency.add(&latency);
    }
    total
}
