//! The `rate_limit` key of paced outputs.

use serde::Deserialize;

/// Requests per second and how many may be saved up.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        RateLimit { per_second, burst }
    }

    /// A rate must be positive and finite.
    pub fn check(&self) -> Result<(), String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(format!(
                "per_second must be a positive number, got {}",
                self.per_second
            ));
        }
        Ok(())
    }
}

/// Deserialises a [`RateLimit`] and checks it.
pub fn checked<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RateLimit, D::Error> {
    let rate = RateLimit::deserialize(d)?;
    rate.check().map_err(serde::de::Error::custom)?;
    Ok(rate)
}
