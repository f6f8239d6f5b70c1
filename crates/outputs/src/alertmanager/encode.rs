//! Falco alerts as Alertmanager's `postableAlerts`.

use bytes::Bytes;
use peregrine_engine::Alert;
use serde_json::{json, Map, Value};

use super::AlertmanagerSettings;
use crate::envelope::Envelope;

/// `name` as a Prometheus label name: characters other than ASCII letters, digits and `_`
/// become `_`, and a leading digit gets a `_` before it.
pub fn label_name(name: &str) -> String {
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

/// The request body for a batch: a JSON array, one alert per Falco alert.
pub fn alerts_body(settings: &AlertmanagerSettings, batch: &[Envelope]) -> Bytes {
    let alerts: Vec<Value> = batch.iter().map(|e| alert(settings, e)).collect();
    Bytes::from(Value::Array(alerts).to_string())
}

fn alert(settings: &AlertmanagerSettings, envelope: &Envelope) -> Value {
    let a = envelope.alert();
    let starts = a.time.to_offset_date_time();
    let mut out = json!({
        "labels": labels(settings, a),
        "annotations": {
            "summary": crate::card::output_text(a),
            "uuid": envelope.id(),
            "tags": a.tags.join(","),
        },
        "startsAt": rfc3339(starts),
    });
    if let Some(expiry) = settings.expire_after {
        out["endsAt"] = json!(rfc3339(starts + expiry));
    }
    out
}

fn labels(settings: &AlertmanagerSettings, a: &Alert) -> Map<String, Value> {
    let mut labels = Map::new();
    for (name, value) in &settings.labels {
        labels.insert(name.clone(), json!(value));
    }
    for (field, name) in &settings.label_fields {
        let text = match a.output_fields.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => continue,
            Some(other) => other.to_string(),
        };
        labels.insert(name.clone(), json!(text));
    }
    labels.insert("alertname".into(), json!(a.rule));
    labels.insert("rule".into(), json!(a.rule));
    labels.insert("priority".into(), json!(a.priority.as_str()));
    labels.insert("source".into(), json!(a.source));
    if let Some(host) = &a.hostname {
        labels.insert("hostname".into(), json!(host));
    }
    labels
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
