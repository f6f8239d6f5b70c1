//! Events API v2 trigger events.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use peregrine_engine::{Alert, Priority};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};

use super::config::PagerDutyConfig;
use crate::card::{output_text, truncate};
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::fingerprint::{field_text, stable_hash, KeyTemplate};
use crate::http::{HttpEncoder, HttpRequest, HttpResponse};
use crate::pacer::{self, Pacer};
use crate::secret::{Secret, SecretUrl};

/// PagerDuty's limits on `dedup_key` and `payload.summary`.
const DEDUP_KEY_MAX: usize = 255;
const SUMMARY_MAX: usize = 1024;

pub struct PagerDutyEncoder {
    url: SecretUrl,
    routing_key: Secret,
    dedup_key: KeyTemplate,
    pacer: Arc<Pacer>,
    rate_limited_in_a_row: AtomicU32,
}

/// Falco's eight priorities on PagerDuty's four severities.
pub fn severity(p: Priority) -> &'static str {
    match p {
        Priority::Emergency | Priority::Alert | Priority::Critical => "critical",
        Priority::Error => "error",
        Priority::Warning => "warning",
        Priority::Notice | Priority::Informational | Priority::Debug => "info",
    }
}

impl PagerDutyEncoder {
    pub fn new(config: &PagerDutyConfig) -> Self {
        let url = config.endpoint();
        PagerDutyEncoder {
            // The pacer is per integration key, as PagerDuty counts (and per endpoint).
            pacer: pacer::shared(
                &format!("{}\u{1f}{}", url.expose(), config.routing_key.expose()),
                config.rate_limit.per_second,
                config.rate_limit.burst,
            ),
            url,
            routing_key: config.routing_key.clone(),
            dedup_key: config.dedup_key.clone(),
            rate_limited_in_a_row: AtomicU32::new(0),
        }
    }

    /// The alert's `dedup_key`: the rendered template when it fits in 255 characters, else its
    /// start and a hash of the whole (still the same for the same alert, and still readable).
    pub fn dedup_key(&self, alert: &Alert) -> String {
        let text = self.dedup_key.render(alert);
        if !text.is_empty() && text.chars().count() <= DEDUP_KEY_MAX {
            return text;
        }
        let hash = format!("#{:016x}", stable_hash(&text));
        let keep: String = text.chars().take(DEDUP_KEY_MAX - hash.len()).collect();
        format!("{keep}{hash}")
    }

    /// The event for one alert.
    pub fn event(&self, e: &Envelope) -> Value {
        let a: &Alert = e.alert();
        let output = output_text(a);
        let summary = if output.trim().is_empty() {
            a.rule.clone()
        } else {
            format!("{}: {output}", a.rule)
        };
        let mut details = serde_json::Map::new();
        for (k, v) in &a.output_fields {
            details.insert(k.clone(), v.clone());
        }
        details.insert("rule".into(), json!(a.rule));
        details.insert("priority".into(), json!(a.priority.as_str()));
        details.insert("source".into(), json!(a.source));
        details.insert("tags".into(), json!(a.tags));
        details.insert("uuid".into(), json!(e.id()));
        let mut payload = json!({
            "summary": truncate(&summary, SUMMARY_MAX),
            "source": a.hostname.as_deref().filter(|h| !h.is_empty()).unwrap_or("unknown host"),
            "severity": severity(a.priority),
            "timestamp": a.time.to_string(),
            "class": a.rule,
            "custom_details": details,
        });
        if let Some(component) = first_field(
            a,
            &["container.image.repository", "container.name", "proc.name"],
        ) {
            payload["component"] = json!(component);
        }
        if let Some(group) = first_field(a, &["k8s.ns.name", "container.name"]) {
            payload["group"] = json!(group);
        }
        json!({
            "routing_key": self.routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": self.dedup_key(a),
            "client": "Peregrine",
            "payload": payload,
        })
    }
}

/// The first non-empty one of `fields`, skipping Falco's `<NA>` and host placeholders.
fn first_field(a: &Alert, fields: &[&str]) -> Option<String> {
    fields
        .iter()
        .map(|f| field_text(a, f))
        .find(|v| !v.is_empty() && v != "<NA>" && v != "host")
}

impl HttpEncoder for PagerDutyEncoder {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let [envelope] = batch else {
            return Err(Failure::new(None, "pagerduty sends one event per request"));
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers,
            body: serde_json::to_vec(&self.event(envelope))
                .expect("a JSON value serialises")
                .into(),
        })
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        super::response::classify(response, &self.rate_limited_in_a_row)
    }
}
