//! The trait every destination implements.

use std::time::Duration;

use async_trait::async_trait;

use crate::delivery::Delivery;
use crate::envelope::Envelope;

/// How many alerts an output wants per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// How long to wait for a batch to fill once its first alert is there.
    pub max_wait: Duration,
}

impl BatchLimits {
    /// One alert per request, sent at once: chat, paging and webhooks.
    pub const SINGLE: BatchLimits = BatchLimits {
        max_events: 1,
        max_bytes: usize::MAX,
        max_wait: Duration::ZERO,
    };
}

/// A destination for alerts.
///
/// Implementations make exactly one attempt per call and describe the result; they never sleep,
/// retry or time themselves out — [`crate::retry`] does that the same way for every output.
#[async_trait]
pub trait Output: Send + Sync + 'static {
    /// The configured type (`webhook`, `slack`, ...), used in metrics labels.
    fn kind(&self) -> &'static str;

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits::SINGLE
    }

    /// Waits until the destination would take a request now (a paced output's token is due),
    /// without taking the token. Called before a batch is gathered, so alerts that arrive
    /// meanwhile join the batch.
    async fn ready(&self) {}

    /// Takes the destination's rate token for one request. Called before every attempt, outside
    /// the attempt's timeout.
    async fn pace(&self) {}

    /// One attempt to deliver `batch` (never empty, at most `batch_limits()` long).
    async fn deliver(&self, batch: &[Envelope]) -> Delivery;

    /// Whether the output reads [`Envelope::alert`]. One that only forwards the stored JSON
    /// says no, and the gateway then decodes an alert for it only when its route or storm
    /// control needs the fields.
    fn reads_alert(&self) -> bool {
        true
    }

    /// How many times the output has had to stop or start again a process of its own (an exec
    /// plugin), for `peregrine_output_plugin_restarts_total`. Most outputs have none.
    fn restarts(&self) -> u64 {
        0
    }
}
