//! `type: datadog` — alerts as logs into Datadog's Logs intake v2
//! (`POST https://http-intake.logs.{site}/api/v2/logs`, `DD-API-KEY`), batched and gzipped.
//!
//! Limits kept (the intake's): at most 1 000 logs and 5 MB (uncompressed) a request, a log at
//! most 1 MB. Each log has `ddsource: falco`, `service`, `hostname`, `status` (the priority,
//! which Datadog reads as the log level), `ddtags` (`rule:…`, `priority:…`, the alert's tags),
//! `message` (Falco's output) and the alert as the `falco` attribute. Answers: 202 delivered;
//! 400, 403 (a bad key), 413 dead-lettered with Datadog's `errors`; 408, 429 and 5xx retried.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::{BatchLimits, Output};
use crate::preset::{self, Dialect};
use crate::secret::{Secret, SecretUrl};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<DatadogSettings>("datadog", Audience::Systems);

/// Datadog's sites, as `site:` takes them.
pub const SITES: [&str; 6] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ddog-gov.com",
];
const MAX_LOG_BYTES: usize = 1_000_000;
const DIALECT: Dialect = Dialect {
    reason: |b| {
        let errors = b.get("errors")?.as_array()?;
        Some(
            errors
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        )
    },
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogKeys {
    pub api_key: Secret,
    /// `datadoghq.com` (default), `datadoghq.eu`, `us3.datadoghq.com`…
    #[serde(default = "default_site")]
    pub site: String,
    /// Another address for the intake (a proxy, a test); overrides `site`.
    pub url: Option<SecretUrl>,
    /// `service` on every log (default `falco`).
    #[serde(default = "default_service")]
    pub service: String,
    /// Tags on every log (`env:prod`).
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tls: Tls,
}

fn default_site() -> String {
    "datadoghq.com".into()
}

fn default_service() -> String {
    "falco".into()
}

#[derive(Debug, Clone)]
pub struct DatadogSettings {
    url: SecretUrl,
    headers: HeaderMap,
    service: String,
    tags: Vec<String>,
    tls: Tls,
}

impl OutputSettings for DatadogSettings {
    type Keys = DatadogKeys;

    fn check(keys: DatadogKeys) -> Result<Self, SettingsError> {
        let base = match keys.url {
            Some(url) => url,
            None if SITES.contains(&keys.site.as_str()) => {
                SecretUrl::parse(&format!("https://http-intake.logs.{}", keys.site))
                    .expect("a valid URL")
            }
            None => {
                return Err(SettingsError::new(
                    "site",
                    format!("must be one of {}", SITES.join(", ")),
                ))
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "dd-api-key",
            preset::secret_header(keys.api_key.expose(), "api_key")?,
        );
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        Ok(DatadogSettings {
            url: base.endpoint("/api/v2/logs", None),
            headers,
            service: keys.service,
            tags: keys.tags,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(HttpOutput::new(
            DatadogEncoder {
                settings: self.clone(),
            },
            http::client_with_tls(ctx.max_in_flight, &self.tls),
        ))
    }

    fn describe(&self) -> String {
        format!("Datadog logs {}", self.url)
    }
}

pub struct DatadogEncoder {
    settings: DatadogSettings,
}

impl DatadogEncoder {
    /// One alert as a Datadog log.
    pub fn log(&self, e: &Envelope) -> Value {
        let a = e.alert();
        let mut tags = vec![
            format!("rule:{}", a.rule),
            format!("priority:{}", a.priority.as_str().to_lowercase()),
        ];
        tags.extend(a.tags.iter().cloned());
        tags.extend(self.settings.tags.iter().cloned());
        let alert: Value = serde_json::from_slice(&e.json).unwrap_or(Value::Null);
        json!({
            "ddsource": "falco",
            "service": self.settings.service,
            "hostname": a.hostname,
            "status": a.priority.as_str().to_lowercase(),
            "ddtags": tags.join(","),
            "message": crate::card::output_text(a),
            "falco": alert,
        })
    }
}

impl HttpEncoder for DatadogEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: 1000,
            max_bytes: 4_500_000,
            max_wait: Duration::from_secs(1),
        }
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        // Each log is written once, measured as written, and joined into the array.
        let mut body = Vec::with_capacity(batch.len() * 2048);
        body.push(b'[');
        for (i, e) in batch.iter().enumerate() {
            let mut log = self.log(e);
            let mut text = log.to_string();
            if text.len() > MAX_LOG_BYTES {
                // Too big for one log: the alert attribute goes, Falco's output stays.
                log["falco"] = json!({"uuid": e.id(), "truncated": true});
                log["message"] = json!(crate::card::truncate(
                    log["message"].as_str().unwrap_or(""),
                    100_000
                ));
                text = log.to_string();
            }
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(text.as_bytes());
        }
        body.push(b']');
        let mut request = preset::post_json(
            &self.settings.url,
            self.settings.headers.clone(),
            &Value::Null,
        );
        request.body = http::gzip(&body).into();
        Ok(request)
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
