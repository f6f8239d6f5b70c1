//! `type: loki` — Grafana Loki's push API (`/loki/api/v1/push`).
//!
//! Batches go as snappy-compressed protobuf, the body Loki's own agents send (or JSON for simple
//! proxies). Streams are labelled only by `source`, `priority`, `hostname` and static labels;
//! everything else is structured metadata and the line. Loki refuses entries older than its
//! acceptance window (a week by default), so after a long outage a stale alert is either sent
//! stamped with the sending time — its own time kept in the line and in `original_time` — or
//! dead-lettered (`stale: restamp`, the default, or `dead_letter`). Loki keeps duplicates, so a
//! replay after a crash can store an alert twice; the uuid in the line tells them apart.

pub mod config;
mod encode;
pub mod proto;

pub use config::{
    LineFormat, LokiConfig, LokiFormat, LokiSettings, StalePolicy, DEFAULT_BATCH, MAX_LABELS,
};
pub use encode::{json_body, line_for, protobuf_body, selector, Line};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::http::{self, classify_status, HttpRequest};
use crate::output::{BatchLimits, Output};
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<LokiSettings>("loki", Audience::Systems);

/// How far ahead of the clock Loki takes entries (its `creation_grace_period`).
const FUTURE_GRACE: Duration = Duration::from_secs(10 * 60);

pub struct LokiOutput {
    push_url: SecretUrl,
    headers: HeaderMap,
    labels: Vec<(String, String)>,
    limits: BatchLimits,
    format: LokiFormat,
    gzip: bool,
    line: LineFormat,
    stale: StalePolicy,
    max_age: Duration,
    client: http::Client,
}

impl OutputSettings for LokiSettings {
    type Keys = LokiConfig;

    fn check(keys: LokiConfig) -> Result<Self, SettingsError> {
        LokiSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        LokiSettings::describe(self)
    }
}

pub fn build(settings: &LokiSettings, ctx: BuildContext) -> LokiOutput {
    LokiOutput {
        push_url: settings.push_url.clone(),
        headers: settings.headers.clone(),
        labels: settings.labels.clone(),
        limits: settings.limits,
        format: settings.format,
        gzip: settings.gzip,
        line: settings.line,
        stale: settings.stale,
        max_age: settings.max_age,
        client: http::client_with_tls(ctx.max_in_flight, &settings.tls),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl LokiOutput {
    /// The body for `batch` at `now_ns`, and the items left out as stale (by index).
    pub fn body(&self, batch: &[Envelope], now_ns: i64) -> (Vec<u8>, Vec<usize>) {
        let oldest = now_ns - self.max_age.as_nanos() as i64;
        let newest = now_ns + FUTURE_GRACE.as_nanos() as i64;
        let mut lines = Vec::with_capacity(batch.len());
        let mut stale = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            let t = e.alert().time.unix_nanos();
            let ts = if (oldest..=newest).contains(&t) {
                t
            } else {
                match self.stale {
                    StalePolicy::Restamp => now_ns,
                    StalePolicy::DeadLetter => {
                        stale.push(i);
                        continue;
                    }
                }
            };
            lines.push(line_for(e, &self.labels, self.line, ts));
        }
        if lines.is_empty() {
            return (Vec::new(), stale);
        }
        let body = match self.format {
            LokiFormat::Protobuf => protobuf_body(lines),
            LokiFormat::Json => json_body(lines, self.gzip),
        };
        (body, stale)
    }

    async fn push(&self, body: Vec<u8>) -> Delivery {
        let request = HttpRequest {
            method: Method::POST,
            url: self.push_url.clone(),
            headers: self.headers.clone(),
            body: body.into(),
        };
        let r = match http::send(&self.client, request).await {
            Ok(r) => r,
            Err(f) => return Delivery::Retry(f),
        };
        match r.status.as_u16() {
            200..=299 => Delivery::Delivered,
            400 => Delivery::Permanent(
                Failure::new(
                    Some(400),
                    crate::card::truncate(String::from_utf8_lossy(&r.body).trim(), 500),
                )
                .with_code("rejected"),
            ),
            _ => match classify_status(r.status, &r.headers) {
                Delivery::Permanent(f) => {
                    let code = if matches!(r.status.as_u16(), 401 | 403) {
                        "unauthorized"
                    } else {
                        "rejected"
                    };
                    Delivery::Permanent(f.with_code(code))
                }
                other => other,
            },
        }
    }
}

#[async_trait]
impl Output for LokiOutput {
    fn kind(&self) -> &'static str {
        "loki"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let (body, stale) = self.body(batch, now_ns());
        if stale.is_empty() {
            return self.push(body).await;
        }
        let sent = if body.is_empty() {
            Delivery::Delivered
        } else {
            self.push(body).await
        };
        let stale_failure = Failure::new(
            None,
            format!(
                "older than max_age ({}s) or more than 10 minutes ahead: Loki would refuse it",
                self.max_age.as_secs()
            ),
        )
        .with_code("stale");
        let mut is_stale = vec![false; batch.len()];
        for i in stale {
            is_stale[i] = true;
        }
        let items = (0..batch.len())
            .map(|i| {
                if is_stale[i] {
                    ItemResult::Permanent(stale_failure.clone())
                } else {
                    match &sent {
                        Delivery::Delivered => ItemResult::Delivered,
                        Delivery::Permanent(f) => ItemResult::Permanent(f.clone()),
                        Delivery::Retry(f) | Delivery::RetryAfter(f, _) => {
                            ItemResult::Retry(f.clone())
                        }
                        Delivery::Partial(_) => unreachable!("a push is all or nothing"),
                    }
                }
            })
            .collect();
        Delivery::Partial(items)
    }
}

#[cfg(test)]
mod tests;
