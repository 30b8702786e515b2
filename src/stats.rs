//! Process figures for `/state`: request counts over sliding windows, CPU and memory.
//!
//! Counters are updated by a middleware on every response; CPU is sampled in the background so
//! `/state` (like `/health`) answers from memory without doing work on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Per-second request counts for the last minute, per-minute 5xx counts for the last hour.
struct Windows {
    seconds: [(u64, u64); 60],
    minutes: [(u64, u64); 60],
}

pub struct Stats {
    started: Instant,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    requests_total: AtomicU64,
    windows: Mutex<Windows>,
    /// Latest CPU sample, percent of one core, as f64 bits.
    cpu_percent: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            started: Instant::now(),
            started_at: crate::util::utc_timestamp(),
            requests_total: AtomicU64::new(0),
            windows: Mutex::new(Windows { seconds: [(u64::MAX, 0); 60], minutes: [(u64::MAX, 0); 60] }),
            cpu_percent: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one response.
    pub fn record(&self, server_error: bool) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_secs();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        bump(&mut windows.seconds[(now % 60) as usize], now);
        if server_error {
            let minute = now / 60;
            bump(&mut windows.minutes[(minute % 60) as usize], minute);
        }
    }

    pub fn requests_total(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }

    pub fn requests_last_minute(&self) -> u64 {
        let now = self.started.elapsed().as_secs();
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        windows.seconds.iter().filter(|(second, _)| *second != u64::MAX && now - second < 60).map(|(_, n)| n).sum()
    }

    pub fn errors_last_hour(&self) -> u64 {
        let minute = self.started.elapsed().as_secs() / 60;
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        windows.minutes.iter().filter(|(m, _)| *m != u64::MAX && minute - m < 60).map(|(_, n)| n).sum()
    }

    pub fn cpu_percent(&self) -> f64 {
        f64::from_bits(self.cpu_percent.load(Ordering::Relaxed))
    }

    /// Samples CPU use every `every` until the process ends.
    pub fn spawn_cpu_sampler(self: &std::sync::Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let stats = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut previous = (cpu_seconds(), Instant::now());
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let Some(stats) = stats.upgrade() else { break };
                let now = (cpu_seconds(), Instant::now());
                if let (Some(before), Some(after)) = (previous.0, now.0) {
                    let wall = now.1.duration_since(previous.1).as_secs_f64();
                    if wall > 0.0 {
                        let percent = ((after - before) / wall * 100.0).max(0.0);
                        stats.cpu_percent.store(((percent * 10.0).round() / 10.0).to_bits(), Ordering::Relaxed);
                    }
                }
                previous = now;
            }
        })
    }
}

fn bump(bucket: &mut (u64, u64), index: u64) {
    if bucket.0 == index {
        bucket.1 += 1;
    } else {
        *bucket = (index, 1);
    }
}

/// User + system CPU seconds of this process (Linux `/proc`; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name, which is in parentheses and may contain spaces
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // /proc reports in USER_HZ, which the Linux ABI fixes at 100
    Some(ticks / 100.0)
}

/// Resident memory of this process in MiB (Linux `/proc`; 0 elsewhere).
pub fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn windows_slide() {
        let stats = Stats::new();
        stats.record(false);
        stats.record(true);
        assert_eq!((stats.requests_total(), stats.requests_last_minute(), stats.errors_last_hour()), (2, 2, 1));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(stats.requests_last_minute(), 0, "a minute later");
        assert_eq!(stats.errors_last_hour(), 1, "still within the hour");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(stats.errors_last_hour(), 0);
        assert_eq!(stats.requests_total(), 2);
    }

    #[test]
    fn this_process_has_memory_and_cpu_figures() {
        assert!(rss_mb() > 0);
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
