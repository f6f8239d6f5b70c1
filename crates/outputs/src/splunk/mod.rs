//! `type: splunk` — Splunk's HTTP Event Collector (`POST /services/collector/event`,
//! `Authorization: Splunk <token>`), batched: the events of a batch one after another in one
//! body, as HEC takes them.
//!
//! Each event carries the alert as `event`, its time as `time` (epoch seconds with
//! milliseconds), `host`, `source`, `sourcetype`, `index`, and `rule` and `priority` as indexed
//! `fields` for fast searches. Answers are read by HEC's `code`: bad tokens, a wrong index or a
//! refused body are dead-lettered with HEC's `text`; "Server is busy" (503) and 5xx retried;
//! 429 pauses. With `ack: true` every request names this output's channel and an alert counts as
//! delivered only once the ack endpoint says it is indexed; an ack that does not come within
//! `ack_timeout` retries the batch (the events may then be indexed twice: HEC's acknowledgement
//! is at least once).

mod config;

pub use config::{SplunkKeys, SplunkSettings};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpRequest, HttpResponse};
use crate::output::{BatchLimits, Output};
use crate::preset::Dialect;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SplunkSettings>("splunk", Audience::Systems);

const DIALECT: Dialect = Dialect {
    reason: |b| {
        let text = b.get("text")?.as_str()?;
        Some(match b.get("code").and_then(Value::as_u64) {
            Some(code) => format!("{text} (code {code})"),
            None => text.to_string(),
        })
    },
    wait: |_| None,
};

/// How often the ack endpoint is asked while an acknowledgement is awaited.
const ACK_POLL: Duration = Duration::from_millis(250);

impl OutputSettings for SplunkSettings {
    type Keys = SplunkKeys;

    fn check(keys: SplunkKeys) -> Result<Self, SettingsError> {
        SplunkSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        let mut settings = self.clone();
        // One channel per running output: Splunk keeps acks per channel.
        let channel = uuid::Uuid::new_v4().hyphenated().to_string();
        settings.headers.insert(
            "x-splunk-request-channel",
            HeaderValue::from_str(&channel).expect("a uuid is a header value"),
        );
        Arc::new(SplunkOutput {
            client: http::client_with_tls(ctx.max_in_flight, &self.tls),
            settings,
        })
    }

    fn describe(&self) -> String {
        let ack = if self.ack.is_some() {
            ", acknowledged"
        } else {
            ""
        };
        format!("Splunk HEC {}{ack}", self.event_url)
    }
}

pub struct SplunkOutput {
    settings: SplunkSettings,
    client: http::Client,
}

impl SplunkOutput {
    /// Appends one alert as a HEC event to `body`. The alert's JSON, already serialised in the
    /// envelope, is written as the `event` as it is, not parsed and written again.
    pub fn write_event(&self, e: &Envelope, body: &mut Vec<u8>) {
        let a = e.alert();
        let millis = a.time.unix_nanos().div_euclid(1_000_000);
        let mut event = json!({
            "time": millis as f64 / 1000.0,
            "source": self.settings.source,
            "sourcetype": self.settings.sourcetype,
            "fields": {"rule": a.rule, "priority": a.priority.as_str()},
        });
        if let Some(host) = &a.hostname {
            event["host"] = json!(host);
        }
        if let Some(index) = &self.settings.index {
            event["index"] = json!(index);
        }
        let head = event.to_string();
        // `head` is a non-empty object: its closing brace gives way to the event.
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"event\":");
        body.extend_from_slice(&e.json);
        body.extend_from_slice(b"}\n");
    }

    fn request(&self, url: &crate::secret::SecretUrl, body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            method: Method::POST,
            url: url.clone(),
            headers: self.settings.headers.clone(),
            body: body.into(),
        }
    }

    /// Asks the ack endpoint until `id` is indexed or `timeout` passes.
    async fn acknowledged(&self, id: u64, timeout: Duration) -> Delivery {
        let deadline = tokio::time::Instant::now() + timeout;
        let query = json!({"acks": [id]}).to_string().into_bytes();
        loop {
            let answer = http::send(
                &self.client,
                self.request(&self.settings.ack_url, query.clone()),
            )
            .await;
            match answer {
                Ok(r) if r.status.is_success() => {
                    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    if body["acks"][id.to_string()] == true {
                        return Delivery::Delivered;
                    }
                }
                Ok(r) => return DIALECT.classify(&r),
                Err(f) => return Delivery::Retry(f),
            }
            if tokio::time::Instant::now() + ACK_POLL > deadline {
                return Delivery::Retry(
                    Failure::new(
                        None,
                        format!("Splunk did not acknowledge ack {id} in {timeout:?}"),
                    )
                    .with_code("ack_timeout"),
                );
            }
            // Waiting for the indexer is part of this attempt, like waiting for an answer.
            tokio::time::sleep(ACK_POLL).await;
        }
    }

    async fn answered(&self, r: HttpResponse) -> Delivery {
        if !r.status.is_success() {
            return DIALECT.classify(&r);
        }
        let Some(timeout) = self.settings.ack else {
            return Delivery::Delivered;
        };
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match body["ackId"].as_u64() {
            Some(id) => self.acknowledged(id, timeout).await,
            None => Delivery::Permanent(
                Failure::new(
                    Some(r.status.as_u16()),
                    "Splunk returned no ackId: turn indexer acknowledgement on for the token, or set ack: false",
                )
                .with_code("ack_disabled"),
            ),
        }
    }
}

#[async_trait]
impl Output for SplunkOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut body = Vec::with_capacity(batch.len() * 2048);
        for e in batch {
            self.write_event(e, &mut body);
        }
        match http::send(&self.client, self.request(&self.settings.event_url, body)).await {
            Ok(r) => self.answered(r).await,
            Err(f) => Delivery::Retry(f),
        }
    }
}

#[cfg(test)]
mod tests;
