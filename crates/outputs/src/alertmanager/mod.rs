//! `type: alertmanager` — alerts into Prometheus Alertmanager (`POST /api/v2/alerts`), batched,
//! to every URL given: Alertmanager's high-availability peers each need every alert (they do not
//! forward alerts to each other; that is how Prometheus sends too).
//!
//! Each Falco alert becomes one Alertmanager alert: labels `alertname` (the rule), `rule`,
//! `priority`, `hostname`, `source`, the output fields named in `label_fields` (names made
//! valid: `k8s.ns.name` → `k8s_ns_name`) and the fixed `labels`; annotations `summary` (the
//! output), `uuid` and `tags`. `startsAt` is the alert's time and `endsAt` that plus
//! `expire_after` (default 5 minutes; `0s` leaves it to Alertmanager's `resolve_timeout`): a Falco
//! alert is an event, so it resolves by itself. Alerts with the same labels are one alert to
//! Alertmanager; add fields to `label_fields` to keep them apart.
//!
//! A batch is delivered when one Alertmanager took it; it is retried while none did (the
//! others may be down) and dead-lettered when one refuses it (400: the same body fails
//! everywhere), with Alertmanager's words.

mod encode;

pub use encode::{alerts_body, label_name};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::delivery::{Delivery, Failure};
use crate::duration::ConfigDuration;
use crate::envelope::Envelope;
use crate::http::{self, HttpRequest, Tls};
use crate::output::{BatchLimits, Output};
use crate::secret::{SecretUrl, UrlList};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType =
    OutputType::new::<AlertmanagerSettings>("alertmanager", Audience::Systems);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerKeys {
    /// One Alertmanager or the peers of a cluster (a list or a comma-separated string).
    pub urls: UrlList,
    /// Output fields sent as labels too.
    #[serde(default)]
    pub label_fields: Vec<String>,
    /// Labels every alert carries (`team: security`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How long an alert stays firing after its time (`endsAt`); `0s` leaves `endsAt` unset.
    #[serde(default = "default_expiry")]
    pub expire_after: ConfigDuration,
    /// Alerts per request (1 to 1000, default 100).
    #[serde(default = "default_batch")]
    pub max_alerts_per_batch: usize,
    #[serde(default)]
    pub tls: Tls,
}

fn default_expiry() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

fn default_batch() -> usize {
    100
}

/// The checked settings an Alertmanager output runs with.
#[derive(Debug, Clone)]
pub struct AlertmanagerSettings {
    pub endpoints: Vec<SecretUrl>,
    /// (output field, label name)
    pub label_fields: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub expire_after: Option<Duration>,
    pub limits: BatchLimits,
    pub tls: Tls,
}

impl OutputSettings for AlertmanagerSettings {
    type Keys = AlertmanagerKeys;

    fn check(keys: AlertmanagerKeys) -> Result<Self, SettingsError> {
        if !(1..=1000).contains(&keys.max_alerts_per_batch) {
            return Err(SettingsError::new(
                "max_alerts_per_batch",
                "must be from 1 to 1000",
            ));
        }
        for name in keys.labels.keys() {
            if label_name(name) != *name {
                return Err(SettingsError::new(
                    format!("labels.{name}"),
                    "is not a label name (letters, digits and '_', not starting with a digit)",
                ));
            }
        }
        let endpoints = keys
            .urls
            .0
            .iter()
            .map(|u| u.endpoint("/api/v2/alerts", None))
            .collect();
        Ok(AlertmanagerSettings {
            endpoints,
            label_fields: keys
                .label_fields
                .iter()
                .map(|f| (f.clone(), label_name(f)))
                .collect(),
            labels: keys.labels,
            expire_after: Some(keys.expire_after.0).filter(|d| !d.is_zero()),
            limits: BatchLimits {
                max_events: keys.max_alerts_per_batch,
                max_bytes: 4 << 20,
                max_wait: Duration::from_millis(500),
            },
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(AlertmanagerOutput {
            client: http::client_with_tls(ctx.max_in_flight * self.endpoints.len(), &self.tls),
            settings: self.clone(),
        })
    }

    fn describe(&self) -> String {
        let urls: Vec<String> = self.endpoints.iter().map(ToString::to_string).collect();
        format!("Alertmanager {}", urls.join(", "))
    }
}

pub struct AlertmanagerOutput {
    settings: AlertmanagerSettings,
    client: http::Client,
}

#[async_trait]
impl Output for AlertmanagerOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let body = alerts_body(&self.settings, batch);
        // Every peer at once; dropping the set (an attempt timed out) cancels the sends.
        let mut sends = tokio::task::JoinSet::new();
        for url in &self.settings.endpoints {
            let client = self.client.clone();
            let request = HttpRequest {
                method: reqwest::Method::POST,
                url: url.clone(),
                headers: json_headers(),
                body: body.clone(),
            };
            sends.spawn(async move { http::send(&client, request).await });
        }
        let mut answers = Vec::new();
        while let Some(sent) = sends.join_next().await {
            answers.push(match sent {
                Ok(Ok(response)) => read_answer(&response),
                Ok(Err(failure)) => Delivery::Retry(failure),
                Err(e) => Delivery::Retry(Failure::new(None, format!("the send failed: {e}"))),
            });
        }
        combine(answers.into_iter())
    }
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    h
}

/// Alertmanager's answer: 200; 400 with the reason as a JSON string; 5xx and 429 retried.
fn read_answer(r: &http::HttpResponse) -> Delivery {
    match http::classify_status(r.status, &r.headers) {
        Delivery::Permanent(mut f) => {
            let said: Option<String> = serde_json::from_slice(&r.body).ok();
            if let Some(said) = said.filter(|s| !s.is_empty()) {
                f.reason = said;
            }
            Delivery::Permanent(f.with_code("refused"))
        }
        other => other,
    }
}

/// One answer for all peers: delivered if one took it, else refused if one refused it, else the
/// first retry.
fn combine(answers: impl Iterator<Item = Delivery>) -> Delivery {
    let mut refused = None;
    let mut retry = None;
    for a in answers {
        match a {
            Delivery::Delivered => return Delivery::Delivered,
            Delivery::Permanent(f) => refused = refused.or(Some(Delivery::Permanent(f))),
            other => retry = retry.or(Some(other)),
        }
    }
    refused
        .or(retry)
        .unwrap_or_else(|| Delivery::Retry(Failure::new(None, "no Alertmanager URL")))
}

#[cfg(test)]
mod tests;
