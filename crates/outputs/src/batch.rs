//! The `batch` key of the outputs that send many alerts per request.

use std::time::Duration;

use serde::Deserialize;

use crate::duration::ConfigDuration;
use crate::output::BatchLimits;
use crate::settings::SettingsError;
use crate::size::ByteSize;

/// `batch: { max_events, max_bytes, max_wait }`; what is left out takes the output's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    max_events: Option<usize>,
    max_bytes: Option<ByteSize>,
    max_wait: Option<ConfigDuration>,
}

impl BatchConfig {
    /// The limits, with `defaults` for what is not set, or the problem with the key's path.
    pub fn limits(&self, defaults: BatchLimits) -> Result<BatchLimits, SettingsError> {
        let limits = BatchLimits {
            max_events: self.max_events.unwrap_or(defaults.max_events),
            max_bytes: self.max_bytes.map_or(defaults.max_bytes, |b| b.0),
            max_wait: self.max_wait.map_or(defaults.max_wait, |d| d.0),
        };
        if limits.max_events == 0 {
            return Err(SettingsError::new("batch.max_events", "must be at least 1"));
        }
        if limits.max_bytes < 1024 {
            return Err(SettingsError::new(
                "batch.max_bytes",
                "must be at least 1KiB",
            ));
        }
        if limits.max_wait > Duration::from_secs(60) {
            return Err(SettingsError::new(
                "batch.max_wait",
                "must be at most 60s (alerts wait that long before they are sent)",
            ));
        }
        Ok(limits)
    }
}
