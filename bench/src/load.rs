//! The load generator: a fixed number of keep-alive connections, each sending its next request
//! as soon as the last one is answered, for a fixed time after a warm-up. Latencies go into an
//! HDR histogram (microseconds).
//!
//! Each worker owns one HTTP/1.1 connection (hyper's client connection, no pool): the generator
//! shares the two cores with the server under test, so it must cost about what wrk costs per
//! request, or it caps the cheap scenarios (the baseline, `/health`) and flatters the ratios.
//! An earlier reqwest-based generator measured the baseline at 68k requests/s where wrk measured
//! 164k in the same set-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Where the requests go, and what one is: built fresh for each send (`worker`, and `n`
/// counting the worker's requests).
#[derive(Clone)]
pub struct MakeRequest {
    /// `host:port`.
    pub address: String,
    pub build: Arc<dyn Fn(usize, u64) -> hyper::Request<Full<Bytes>> + Send + Sync>,
}

impl MakeRequest {
    /// `GET url`.
    pub fn get(url: &str) -> MakeRequest {
        let (address, path) = split(url);
        let host = address.clone();
        MakeRequest {
            address,
            build: Arc::new(move |_, _| {
                hyper::Request::get(path.as_str()).header("host", host.as_str()).body(Full::default()).expect("request")
            }),
        }
    }

    /// `POST url` with the JSON `body(worker, n)`.
    pub fn post_json(url: &str, body: impl Fn(usize, u64) -> String + Send + Sync + 'static) -> MakeRequest {
        let (address, path) = split(url);
        let host = address.clone();
        MakeRequest {
            address,
            build: Arc::new(move |worker, n| {
                hyper::Request::post(path.as_str())
                    .header("host", host.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body(worker, n))))
                    .expect("request")
            }),
        }
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    match rest.find('/') {
        Some(at) => (rest[..at].to_owned(), rest[at..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// A keep-alive connection to `address`, its driver on its own task.
async fn connect(address: &str) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Sends one request on the worker's connection (reconnecting if it was closed); whether a
/// 2xx came back with its whole body read, as a real client would.
async fn send(connection: &mut Option<SendRequest<Full<Bytes>>>, make: &MakeRequest, worker: usize, n: u64) -> bool {
    if connection.as_ref().is_none_or(|c| c.is_closed()) {
        *connection = connect(&make.address).await;
    }
    let Some(sender) = connection.as_mut() else { return false };
    if sender.ready().await.is_err() {
        *connection = None;
        return false;
    }
    match sender.send_request((make.build)(worker, n)).await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.into_body().collect().await.is_ok()
        }
        Err(_) => {
            *connection = None;
            false
        }
    }
}

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
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let workers = (0..connections).map(|worker| {
        let make = make.clone();
        tokio::spawn(async move {
            let mut connection = connect(&make.address).await;
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
                let ok = send(&mut connection, &make, worker, n).await;
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
