//! PagerDuty's keys.

use serde::Deserialize;

use crate::fingerprint::KeyTemplate;
use crate::rate::RateLimit;
use crate::secret::{Secret, SecretUrl};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The 32-character integration key of an Events API v2 integration.
    #[serde(deserialize_with = "routing_key")]
    pub routing_key: Secret,
    /// `us` (events.pagerduty.com, the default) or `eu` (events.eu.pagerduty.com).
    pub region: Option<Region>,
    /// The full enqueue URL, instead of `region` (a proxy, or a test receiver).
    pub url: Option<SecretUrl>,
    /// Which alerts are "the same incident": fields in braces, `{rule}|{hostname}|{container.id}`
    /// by default.
    #[serde(default = "default_dedup_key")]
    pub dedup_key: KeyTemplate,
    #[serde(default = "default_rate", deserialize_with = "crate::rate::checked")]
    pub rate_limit: RateLimit,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl PagerDutyConfig {
    /// Where events go.
    pub fn endpoint(&self) -> SecretUrl {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let host = match self.region.unwrap_or_default() {
            Region::Us => "events.pagerduty.com",
            Region::Eu => "events.eu.pagerduty.com",
        };
        SecretUrl::parse(&format!("https://{host}/v2/enqueue")).expect("a static URL parses")
    }

    /// A problem the keys have together.
    pub(super) fn check_together(&self) -> Result<(), SettingsError> {
        if self.url.is_some() && self.region.is_some() {
            return Err(SettingsError::new(
                "url",
                "give either region or url, not both",
            ));
        }
        Ok(())
    }
}

fn routing_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let key = Secret::deserialize(d)?;
    let len = key.expose().chars().count();
    if len != 32 || !key.expose().bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(serde::de::Error::custom(format!(
            "must be the 32-character integration key of an Events API v2 integration (got {len} characters)"
        )));
    }
    Ok(key)
}

fn default_dedup_key() -> KeyTemplate {
    KeyTemplate::parse("{rule}|{hostname}|{container.id}").expect("the default template parses")
}

fn default_rate() -> RateLimit {
    RateLimit::new(2.0, 1)
}
