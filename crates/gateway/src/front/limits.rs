//! The listener's limits: how long a client may take over each part of a request, how many
//! connections may be open, and how many body bytes may be held in memory at once.
//!
//! The defaults protect a gateway nobody has tuned: a client that stalls inside its headers or
//! its body is cut off, and a crowd of them can neither exhaust file descriptors nor memory.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use peregrine_outputs::duration::ConfigDuration;
use peregrine_outputs::size::ByteSize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a request's first byte (or a TLS handshake's start) to the end of its head.
    pub header_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub body_timeout: Duration,
    /// A keep-alive connection waiting for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once. When full, the connection that has waited longest without a
    /// request in progress is closed to make room.
    pub max_connections: usize,
    /// Body bytes held by requests being read, all connections together; above it new bodies are
    /// refused with 503 and `Retry-After`.
    pub inflight_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 10_000,
            inflight_body_bytes: 64 << 20,
        }
    }
}

/// The `limits` section as written; absent keys take the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    header_timeout: Option<ConfigDuration>,
    body_timeout: Option<ConfigDuration>,
    idle_timeout: Option<ConfigDuration>,
    max_connections: Option<usize>,
    inflight_body_bytes: Option<ByteSize>,
}

impl RawLimits {
    /// The limits, or the key and problem of the first bad value.
    pub fn check(self, max_body_bytes: usize) -> Result<Limits, (&'static str, String)> {
        let d = Limits::default();
        let limits = Limits {
            header_timeout: self.header_timeout.map_or(d.header_timeout, |v| v.0),
            body_timeout: self.body_timeout.map_or(d.body_timeout, |v| v.0),
            idle_timeout: self.idle_timeout.map_or(d.idle_timeout, |v| v.0),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            inflight_body_bytes: self
                .inflight_body_bytes
                .map_or(d.inflight_body_bytes, |v| v.0),
        };
        for (key, value) in [
            ("header_timeout", limits.header_timeout),
            ("body_timeout", limits.body_timeout),
            ("idle_timeout", limits.idle_timeout),
        ] {
            if value.is_zero() {
                return Err((key, "must be greater than 0".to_string()));
            }
        }
        if limits.max_connections == 0 {
            return Err(("max_connections", "must be at least 1".to_string()));
        }
        if limits.inflight_body_bytes < max_body_bytes {
            return Err((
                "inflight_body_bytes",
                format!("must be at least max_body_bytes ({max_body_bytes}), or a body of that size could never be read"),
            ));
        }
        if limits.inflight_body_bytes > u32::MAX as usize {
            return Err(("inflight_body_bytes", "must be at most 4GiB".to_string()));
        }
        Ok(limits)
    }
}

/// The body bytes requests may hold at once, shared by every connection.
///
/// A reservation lasts until the request's alerts are stored (the body stays in memory until
/// then), so the budget bounds what slow or stalled bodies can pin in memory.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    pub fn new(total: usize) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Takes `n` bytes of the budget now, or `None` when that many are not free.
    pub fn try_reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }

    /// Takes `n` bytes of the budget, waiting up to `wait` for them to be freed.
    pub async fn reserve_within(&self, n: usize, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        let acquire = self.bytes.clone().acquire_many_owned(n);
        tokio::time::timeout(wait, acquire).await.ok()?.ok()
    }

    /// Bytes not reserved at the moment.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_hold_until_dropped() {
        let budget = BodyBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 60);
        drop(b);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn limits_are_checked() {
        let raw = |yaml: &str| serde_yaml_ng::from_str::<RawLimits>(yaml).unwrap();
        let l = raw("{}").check(1 << 20).unwrap();
        assert_eq!(l, Limits::default());
        let l = raw("{header_timeout: 2s, max_connections: 50}")
            .check(1 << 20)
            .unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.max_connections, 50);
        assert_eq!(
            raw("{idle_timeout: 0s}").check(1).unwrap_err().0,
            "idle_timeout"
        );
        assert_eq!(
            raw("{inflight_body_bytes: 1KiB}")
                .check(4096)
                .unwrap_err()
                .0,
            "inflight_body_bytes"
        );
    }
}
