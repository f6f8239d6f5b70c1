//! Teams' keys.

use serde::Deserialize;

use crate::rate::RateLimit;
use crate::secret::SecretUrl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    pub webhook_url: SecretUrl,
    #[serde(default)]
    pub format: TeamsFormat,
    #[serde(default = "default_rate", deserialize_with = "crate::rate::checked")]
    pub rate_limit: RateLimit,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamsFormat {
    /// A Workflows message with an Adaptive Card 1.4.
    #[default]
    Adaptive,
    /// The legacy Office 365 connector card.
    Messagecard,
}

fn default_rate() -> RateLimit {
    RateLimit::new(4.0, 1)
}
