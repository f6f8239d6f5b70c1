//! OTLP's keys.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::secret::{Secret, SecretUrl};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpKeys {
    /// The collector's base address (`http://otel-collector:4318`); logs go to `/v1/logs`
    /// under it, as `OTEL_EXPORTER_OTLP_ENDPOINT` works.
    pub endpoint: SecretUrl,
    /// `service.name` on the resource (default `falco`).
    #[serde(default = "default_service")]
    pub service_name: String,
    /// More resource attributes (`deployment.environment: prod`).
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// Headers on every request (a vendor's API key); their values never print.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub compression: Compression,
    /// Up to 1 000 alerts, 4 MiB, 1 s per request (defaults).
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The OTLP exporters' default.
    #[default]
    None,
    Gzip,
}

fn default_service() -> String {
    "falco".into()
}

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 1000,
    max_bytes: 4 * 1024 * 1024,
    max_wait: Duration::from_secs(1),
};

#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub url: SecretUrl,
    pub headers: HeaderMap,
    pub service_name: String,
    pub resource: BTreeMap<String, String>,
    pub compression: Compression,
    pub limits: BatchLimits,
    pub tls: Tls,
}

impl OtlpSettings {
    pub(super) fn from_keys(keys: OtlpKeys) -> Result<Self, SettingsError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &keys.headers {
            let path = format!("headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SettingsError::new(&path, "is not a valid header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| SettingsError::new(&path, "is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if keys.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(OtlpSettings {
            url: keys.endpoint.endpoint("/v1/logs", None),
            headers,
            service_name: keys.service_name,
            resource: keys.resource,
            compression: keys.compression,
            limits: keys.batch.limits(DEFAULT_BATCH)?,
            tls: keys.tls,
        })
    }
}
