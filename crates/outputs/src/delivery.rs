//! What one delivery attempt achieved.

use std::fmt;
use std::time::Duration;

/// Why an attempt did not deliver: the destination's status (if it answered) and a reason a user
/// can act on. Reasons never contain the destination's URL or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub reason: String,
    /// A short, bounded word for metrics labels (`channel_not_found`, `invalid_payload`), from a
    /// fixed vocabulary of the output. Never free text from the destination.
    pub code: Option<&'static str>,
}

impl Failure {
    pub fn new(status: Option<u16>, reason: impl Into<String>) -> Self {
        Failure {
            status,
            reason: reason.into(),
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The answer to one attempt at delivering a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every alert of the batch arrived.
    Delivered,
    /// A transient failure (network, timeout, 5xx): try the whole batch again after a backoff.
    Retry(Failure),
    /// The destination asked us to wait (`429`/`503` with `Retry-After`): pause the whole output
    /// that long, then try again. Not counted against the attempt budget: being told to slow down is
    /// not a fault of the alert.
    RetryAfter(Failure, Duration),
    /// The destination will never take this batch as sent (`400`, bad credentials, too large):
    /// dead-letter it.
    Permanent(Failure),
    /// The destination judged each alert on its own (bulk APIs). One result per batch item, in order.
    Partial(Vec<ItemResult>),
}

impl Delivery {
    /// The answer for a batch whose alerts were judged one by one (in batch order): `Delivered`
    /// when all arrived, the one item's fate for a batch of one, `Partial` otherwise.
    pub fn from_items(items: Vec<ItemResult>) -> Delivery {
        if items.iter().all(|r| *r == ItemResult::Delivered) {
            return Delivery::Delivered;
        }
        if let [only] = items.as_slice() {
            return match only.clone() {
                ItemResult::Permanent(f) => Delivery::Permanent(f),
                ItemResult::Retry(f) => Delivery::Retry(f),
                ItemResult::Delivered => Delivery::Delivered,
            };
        }
        Delivery::Partial(items)
    }
}

/// The fate of one alert inside a [`Delivery::Partial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    Delivered,
    Retry(Failure),
    Permanent(Failure),
}
