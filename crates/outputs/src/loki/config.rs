//! Loki's keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::duration::ConfigDuration;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::secret::{Secret, SecretUrl};

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

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Checked {
    pub push_url: SecretUrl,
    pub labels: Vec<(String, String)>,
    pub limits: BatchLimits,
    pub max_age: Duration,
    pub tls: Tls,
}

impl LokiConfig {
    pub fn check(&self) -> Result<Checked, (String, String)> {
        let err = |k: &str, m: String| (k.to_string(), m);
        let mut labels = Vec::new();
        for (name, value) in &self.labels {
            let clean = sanitize_label(name);
            if DYNAMIC_LABELS.contains(&clean.as_str()) {
                return Err(err(
                    &format!("labels.{name}"),
                    format!("'{clean}' is set from each alert"),
                ));
            }
            if clean.starts_with("__") {
                return Err(err(
                    &format!("labels.{name}"),
                    "names starting with __ are reserved by Loki".to_string(),
                ));
            }
            if value.is_empty() {
                return Err(err(
                    &format!("labels.{name}"),
                    "an empty value means no label; remove it".to_string(),
                ));
            }
            labels.push((clean, value.clone()));
        }
        if labels.len() + DYNAMIC_LABELS.len() > MAX_LABELS {
            return Err(err(
                "labels",
                format!("at most {} static labels (Loki allows {MAX_LABELS} per stream, {} are source, priority and hostname)", MAX_LABELS - DYNAMIC_LABELS.len(), DYNAMIC_LABELS.len()),
            ));
        }
        match (&self.username, &self.password, &self.bearer_token) {
            (Some(_), None, _) => {
                return Err(err("password", "is needed with username".to_string()))
            }
            (None, Some(_), _) => {
                return Err(err("username", "is needed with password".to_string()))
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(err(
                    "bearer_token",
                    "give either bearer_token or username/password, not both".to_string(),
                ))
            }
            _ => {}
        }
        // They travel as header values: a newline or other control character would be dropped
        // from the request (or split it), so refuse it here rather than send without it.
        let header_safe = |v: &str| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if self
            .tenant
            .as_deref()
            .is_some_and(|t| t.is_empty() || !header_safe(t))
        {
            return Err(err(
                "tenant",
                "must be non-empty printable ASCII (it is sent as X-Scope-OrgID)".to_string(),
            ));
        }
        for (key, value) in [
            ("username", self.username.as_deref()),
            ("password", self.password.as_ref().map(|s| s.expose())),
            (
                "bearer_token",
                self.bearer_token.as_ref().map(|s| s.expose()),
            ),
        ] {
            if value.is_some_and(|v| !header_safe(v)) {
                return Err(err(
                    key,
                    "must be printable ASCII (it is sent in the Authorization header)".to_string(),
                ));
            }
        }
        if self.gzip && self.format == LokiFormat::Protobuf {
            return Err(err(
                "gzip",
                "is for format: json (protobuf bodies are always snappy-compressed)".to_string(),
            ));
        }
        let limits = self
            .batch
            .limits(DEFAULT_BATCH)
            .map_err(|(k, m)| (k.to_string(), m))?;
        let tls = self
            .tls
            .or_legacy(self.ca_file.as_deref(), self.insecure_skip_verify)
            .map_err(|m| err("ca_file", m))?;
        let push_url = if self.url.expose().path().ends_with("/loki/api/v1/push") {
            self.url.clone()
        } else {
            self.url.endpoint("/loki/api/v1/push", None)
        };
        Ok(Checked {
            push_url,
            labels,
            limits,
            max_age: self.max_age.map_or(DEFAULT_MAX_AGE, |d| d.0),
            tls,
        })
    }
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
