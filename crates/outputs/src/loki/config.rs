//! Loki's keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::duration::ConfigDuration;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::secret::{Secret, SecretUrl};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// Loki's base URL (`http://loki:3100`); `/loki/api/v1/push` is added unless given.
    pub url: SecretUrl,
    /// Sent as `X-Scope-OrgID` (multi-tenant Loki).
    pub tenant: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub bearer_token: Option<Secret>,
    /// Static labels on every stream.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub format: LokiFormat,
    /// gzip the JSON body (`format: json` only; protobuf is always snappy-compressed).
    #[serde(default)]
    pub gzip: bool,
    #[serde(default)]
    pub line: LineFormat,
    #[serde(default)]
    pub stale: StalePolicy,
    /// Alerts older than this are stale (Loki's `reject_old_samples_max_age`, a week by
    /// default).
    pub max_age: Option<ConfigDuration>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LokiFormat {
    /// Snappy-compressed protobuf `PushRequest`, what Loki's own agents send.
    #[default]
    Protobuf,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// The alert's JSON, as Falco writes it (with its uuid).
    #[default]
    Json,
    /// Falco's output text.
    Output,
}

/// What to do with an alert Loki would refuse for its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StalePolicy {
    /// Send it stamped with the sending time; the alert's own time stays in the line and in
    /// the `original_time` metadata. Nothing is lost after a long outage.
    #[default]
    Restamp,
    /// Dead-letter it.
    DeadLetter,
}

/// Promtail's defaults: up to 1 MiB, 1 s.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 5000,
    max_bytes: 1 << 20,
    max_wait: Duration::from_secs(1),
};

pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Loki's limit on labels per stream.
pub const MAX_LABELS: usize = 15;
/// The labels every stream has (when the alert has them).
pub const DYNAMIC_LABELS: [&str; 3] = ["source", "priority", "hostname"];

/// The checked settings a Loki output runs with.
#[derive(Debug, Clone)]
pub struct LokiSettings {
    /// The base URL as configured, for `describe`.
    pub url: SecretUrl,
    pub push_url: SecretUrl,
    /// Authorization (sensitive), `X-Scope-OrgID`, content type and encoding.
    pub headers: HeaderMap,
    pub tenant: Option<String>,
    pub labels: Vec<(String, String)>,
    pub limits: BatchLimits,
    pub format: LokiFormat,
    pub gzip: bool,
    pub line: LineFormat,
    pub stale: StalePolicy,
    pub max_age: Duration,
    pub tls: Tls,
}

impl LokiSettings {
    /// Checks the keys together; a problem comes with its key's path.
    pub(super) fn from_keys(keys: LokiConfig) -> Result<Self, SettingsError> {
        let labels = static_labels(&keys.labels)?;
        if keys.gzip && keys.format == LokiFormat::Protobuf {
            return Err(SettingsError::new(
                "gzip",
                "is for format: json (protobuf bodies are always snappy-compressed)",
            ));
        }
        let headers = headers(&keys)?;
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        let tls = keys
            .tls
            .or_legacy(keys.ca_file.as_deref(), keys.insecure_skip_verify)
            .map_err(|m| SettingsError::new("ca_file", m))?;
        let push_url = if keys.url.expose().path().ends_with("/loki/api/v1/push") {
            keys.url.clone()
        } else {
            keys.url.endpoint("/loki/api/v1/push", None)
        };
        Ok(LokiSettings {
            url: keys.url,
            push_url,
            headers,
            tenant: keys.tenant,
            labels,
            limits,
            format: keys.format,
            gzip: keys.gzip,
            line: keys.line,
            stale: keys.stale,
            max_age: keys.max_age.map_or(DEFAULT_MAX_AGE, |d| d.0),
            tls,
        })
    }

    /// Where alerts go, safe to print.
    pub fn describe(&self) -> String {
        let tenant = self
            .tenant
            .as_ref()
            .map_or(String::new(), |t| format!(", tenant {t}"));
        format!("Loki {} ({:?}{tenant})", self.url, self.format)
    }
}

/// The `labels` key as Loki label names, refusing what Loki would refuse or what every alert
/// sets itself.
fn static_labels(
    configured: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, SettingsError> {
    let mut labels = Vec::new();
    for (name, value) in configured {
        let clean = sanitize_label(name);
        let at = format!("labels.{name}");
        if DYNAMIC_LABELS.contains(&clean.as_str()) {
            return Err(SettingsError::new(
                at,
                format!("'{clean}' is set from each alert"),
            ));
        }
        if clean.starts_with("__") {
            return Err(SettingsError::new(
                at,
                "names starting with __ are reserved by Loki",
            ));
        }
        if value.is_empty() {
            return Err(SettingsError::new(
                at,
                "an empty value means no label; remove it",
            ));
        }
        labels.push((clean, value.clone()));
    }
    if labels.len() + DYNAMIC_LABELS.len() > MAX_LABELS {
        return Err(SettingsError::new(
            "labels",
            format!("at most {} static labels (Loki allows {MAX_LABELS} per stream, {} are source, priority and hostname)", MAX_LABELS - DYNAMIC_LABELS.len(), DYNAMIC_LABELS.len()),
        ));
    }
    Ok(labels)
}

/// The headers every push carries. Credentials and the tenant travel as header values: one
/// with a newline or another control character is refused here, not sent without it.
fn headers(keys: &LokiConfig) -> Result<HeaderMap, SettingsError> {
    let mut headers = HeaderMap::new();
    if let Some(auth) = authorization(keys)? {
        headers.insert(AUTHORIZATION, auth);
    }
    if let Some(tenant) = &keys.tenant {
        let value = HeaderValue::from_str(tenant)
            .ok()
            .filter(|_| !tenant.is_empty() && is_printable_ascii(tenant))
            .ok_or_else(|| {
                SettingsError::new(
                    "tenant",
                    "must be non-empty printable ASCII (it is sent as X-Scope-OrgID)",
                )
            })?;
        headers.insert(HeaderName::from_static("x-scope-orgid"), value);
    }
    let (content_type, encoding) = match keys.format {
        LokiFormat::Protobuf => ("application/x-protobuf", Some("snappy")),
        LokiFormat::Json => ("application/json", keys.gzip.then_some("gzip")),
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(encoding) = encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(headers)
}

/// Basic credentials or a bearer token as a sensitive `Authorization` value.
fn authorization(keys: &LokiConfig) -> Result<Option<HeaderValue>, SettingsError> {
    let needs = |key: &str, other: &str| SettingsError::new(key, format!("is needed with {other}"));
    let value = match (&keys.username, &keys.password, &keys.bearer_token) {
        (Some(_), None, _) => return Err(needs("password", "username")),
        (None, Some(_), _) => return Err(needs("username", "password")),
        (Some(_), Some(_), Some(_)) => {
            return Err(SettingsError::new(
                "bearer_token",
                "give either bearer_token or username/password, not both",
            ))
        }
        (Some(user), Some(password), None) => {
            printable("username", user)?;
            printable("password", password.expose())?;
            crate::http::basic_credentials(user, password.expose())
        }
        (None, None, Some(token)) => {
            printable("bearer_token", token.expose())?;
            format!("Bearer {}", token.expose())
        }
        (None, None, None) => return Ok(None),
    };
    let mut value = HeaderValue::from_str(&value).expect("printable ASCII is a valid header value");
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Refuses a credential that could not travel in a header, without printing it.
fn printable(key: &str, value: &str) -> Result<(), SettingsError> {
    if is_printable_ascii(value) {
        Ok(())
    } else {
        Err(SettingsError::new(
            key,
            "must be printable ASCII (it is sent in the Authorization header)",
        ))
    }
}

fn is_printable_ascii(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// A valid Loki label or metadata name: `[a-zA-Z_][a-zA-Z0-9_]*`, other characters as `_`.
pub fn sanitize_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}
