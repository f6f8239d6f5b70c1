//! The webhook's keys: `url`, `method`, `headers`.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::secret::SecretUrl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: SecretUrl,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra request headers. Values are treated as secrets (they are usually tokens).
    #[serde(default)]
    pub headers: Headers,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
}

impl fmt::Display for WebhookMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
        })
    }
}

impl<'de> Deserialize<'de> for WebhookMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_uppercase().as_str() {
            "POST" => Ok(WebhookMethod::Post),
            "PUT" => Ok(WebhookMethod::Put),
            _ => Err(serde::de::Error::custom(format!(
                "method '{s}' is not supported (use POST or PUT)"
            ))),
        }
    }
}

/// Validated request headers whose values never print.
#[derive(Clone, Default)]
pub struct Headers(pub HeaderMap);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k.as_str(), "***")))
            .finish()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        let mut map = HeaderMap::new();
        for (name, value) in raw {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| D::Error::custom(format!("'{name}' is not a valid header name")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                D::Error::custom(format!("the value of header '{name}' is not valid in HTTP"))
            })?;
            value.set_sensitive(true);
            map.insert(header, value);
        }
        Ok(Headers(map))
    }
}
