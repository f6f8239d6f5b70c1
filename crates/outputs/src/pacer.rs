//! Pacing requests to a destination's published rate (a token bucket), shared by every output
//! instance that talks to the same URL or key: two outputs posting to one Slack webhook share
//! its one message per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `per_second` tokens a second, at most `burst` saved up.
///
/// Hand-written rather than `governor`: outputs must be able to wait for a token *without
/// taking it* ([`Pacer::until_available`]), so that a batch is gathered only when it may be
/// sent and the alerts that arrive meanwhile travel with it; governor's limiters only wait by
/// consuming.
#[derive(Debug)]
pub struct Pacer {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens saved up, fractional between refills.
    tokens: f64,
    refilled_at: Instant,
}

impl Pacer {
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Pacer {
            per_second,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Waits until a token is available, without taking it.
    pub async fn until_available(&self) {
        while let Some(wait) = self.try_token(false) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for a token. Callers are served in no particular order, but never faster than the
    /// rate.
    pub async fn acquire(&self) {
        while let Some(wait) = self.try_token(true) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Refills the bucket; with a token there, takes it if `take` and returns `None`, otherwise
    /// returns how long until one is due.
    fn try_token(&self, take: bool) -> Option<Duration> {
        let mut bucket = self.bucket.lock().expect("pacer lock");
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled_at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            return None;
        }
        Some(Duration::from_secs_f64(
            (1.0 - bucket.tokens) / self.per_second,
        ))
    }
}

/// The pacer for a destination key (a webhook URL, a routing key), created on first use.
pub fn shared(key: &str, per_second: f64, burst: u32) -> Arc<Pacer> {
    static PACERS: OnceLock<Mutex<HashMap<String, Arc<Pacer>>>> = OnceLock::new();
    let mut all = PACERS
        .get_or_init(Default::default)
        .lock()
        .expect("pacers lock");
    all.entry(key.to_string())
        .or_insert_with(|| Arc::new(Pacer::new(per_second, burst)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_faster_than_the_rate() {
        let p = Pacer::new(2.0, 1);
        let start = Instant::now();
        for _ in 0..5 {
            p.acquire().await;
        }
        // One token at once, then one every 500 ms.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(2000) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_spent_first() {
        let p = Pacer::new(1.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            p.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        p.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(990));
    }

    #[test]
    fn one_pacer_per_key() {
        assert!(Arc::ptr_eq(&shared("k1", 1.0, 1), &shared("k1", 5.0, 5)));
        assert!(!Arc::ptr_eq(&shared("k1", 1.0, 1), &shared("k2", 1.0, 1)));
    }
}
