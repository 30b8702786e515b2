//! Per-client rate limits (governor's keyed GCRA limiter), keyed by the peer's IP address.
//!
//! Defaults follow the seed: chat 100 turns a minute, WebSocket 200 messages a minute, process
//! 50 a minute. A refused
//! request gets 429 with `Retry-After` (REST) or an `error` frame saying when to retry (WS).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How often (in checks) idle clients are forgotten, so the limiter's memory stays bounded.
const RETAIN_EVERY: u64 = 1024;

/// One limit: at most `per_minute` events per client IP, or no limit at all.
#[derive(Clone)]
pub struct Limit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    checks: Arc<AtomicU64>,
}

impl Limit {
    /// `0` switches the limit off.
    pub fn per_minute(per_minute: u32) -> Limit {
        let limiter =
            NonZeroU32::new(per_minute).map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))));
        Limit { limiter, checks: Arc::new(AtomicU64::new(0)) }
    }

    /// `Err(wait)` when `client` must wait before trying again.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The limits of every endpoint that takes turns.
#[derive(Clone)]
pub struct RateLimits {
    pub chat: Limit,
    pub websocket: Limit,
    pub process: Limit,
    /// `/message`: the rate of `/api/process`, with a budget of its own.
    pub relay: Limit,
}

impl RateLimits {
    /// Chat and WebSocket limits as given; `/api/process` keeps the seed's 50/min unless
    /// [`RateLimits::with_process`] changes it.
    pub fn new(chat_per_minute: u32, websocket_per_minute: u32) -> Self {
        RateLimits {
            chat: Limit::per_minute(chat_per_minute),
            websocket: Limit::per_minute(websocket_per_minute),
            process: Limit::per_minute(50),
            relay: Limit::per_minute(50),
        }
    }

    pub fn with_process(mut self, per_minute: u32) -> Self {
        self.process = Limit::per_minute(per_minute);
        self.relay = Limit::per_minute(per_minute);
        self
    }

    /// The seed's defaults: chat 100/min, WebSocket 200/min, process 50/min.
    pub fn seed_defaults() -> Self {
        RateLimits::new(100, 200)
    }
}

/// Whole seconds to wait, at least one (what `Retry-After` carries).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

/// The client's IP address; requests without one (tests over in-memory transports) share one key.
pub fn client_ip(remote: &poem::web::RemoteAddr) -> IpAddr {
    remote.as_socket_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_quota_waits_and_others_do_not() {
        let limit = Limit::per_minute(2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert!(limit.check(a).is_ok() && limit.check(a).is_ok());
        let wait = limit.check(a).expect_err("third in a minute");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limit.check(b).is_ok(), "limits are per client");
        assert!(Limit::per_minute(0).check(a).is_ok(), "0 means no limit");
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
