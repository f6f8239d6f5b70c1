//! Push bodies: alerts grouped into streams by their labels, each stream in time order.
//!
//! Labels are few and low-cardinality — `source`, `priority`, `hostname` and the static ones —
//! because every distinct label set is a separate stream in Loki's index. What varies per alert
//! (rule, uuid, tags, container, pod) goes to structured metadata, where it can be filtered on
//! without creating streams, and in the line itself.

use std::collections::BTreeMap;

use peregrine_engine::Alert;
use prost::Message as _;
use serde_json::{json, Map, Value};

use super::config::{sanitize_label, LineFormat};
use super::proto::{Entry, LabelPair, PushRequest, Stream, Timestamp};
use crate::envelope::Envelope;
use crate::fingerprint::field_text;

/// `output_fields` that go to structured metadata, under these names.
const METADATA_FIELDS: [(&str, &str); 6] = [
    ("container.id", "container_id"),
    ("container.name", "container_name"),
    ("container.image.repository", "container_image"),
    ("k8s.ns.name", "k8s_ns_name"),
    ("k8s.pod.name", "k8s_pod_name"),
    ("proc.name", "proc_name"),
];

/// One alert, ready to be placed in a stream.
#[derive(Debug, Clone)]
pub struct Line {
    pub labels: Vec<(String, String)>,
    pub timestamp_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// The entry for an alert stamped `timestamp_ns` (its own time, or the sending time when it
/// was restamped).
pub fn line_for(
    e: &Envelope,
    static_labels: &[(String, String)],
    format: LineFormat,
    timestamp_ns: i64,
) -> Line {
    let a: &Alert = e.alert();
    let mut labels = vec![
        ("source".to_string(), a.source.clone()),
        ("priority".to_string(), a.priority.as_str().to_string()),
    ];
    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
        labels.push(("hostname".to_string(), h.to_string()));
    }
    labels.extend(static_labels.iter().cloned());
    labels.sort();

    let mut metadata = vec![
        ("rule".to_string(), a.rule.clone()),
        ("uuid".to_string(), e.id().to_string()),
    ];
    if !a.tags.is_empty() {
        metadata.push(("tags".to_string(), a.tags.join(",")));
    }
    for (field, name) in METADATA_FIELDS {
        let v = field_text(a, field);
        if !v.is_empty() && v != "<NA>" {
            metadata.push((sanitize_label(name), v));
        }
    }
    if timestamp_ns != a.time.unix_nanos() {
        metadata.push(("original_time".to_string(), a.time.to_string()));
    }
    let line = match format {
        LineFormat::Json => String::from_utf8_lossy(&e.json).into_owned(),
        LineFormat::Output => a.output.clone(),
    };
    Line {
        labels,
        timestamp_ns,
        line,
        metadata,
    }
}

/// `{name="value", ...}` with Prometheus escaping.
pub fn selector(labels: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Lines grouped by label set, each group sorted by time (stable, so equal times keep their
/// spool order).
fn streams(lines: Vec<Line>) -> BTreeMap<Vec<(String, String)>, Vec<Line>> {
    let mut by_labels: BTreeMap<Vec<(String, String)>, Vec<Line>> = BTreeMap::new();
    for mut l in lines {
        by_labels
            .entry(std::mem::take(&mut l.labels))
            .or_default()
            .push(l);
    }
    for entries in by_labels.values_mut() {
        entries.sort_by_key(|l| l.timestamp_ns);
    }
    by_labels
}

/// A snappy-compressed protobuf `PushRequest`.
pub fn protobuf_body(lines: Vec<Line>) -> Vec<u8> {
    let request = PushRequest {
        streams: streams(lines)
            .into_iter()
            .map(|(labels, entries)| Stream {
                labels: selector(&labels),
                entries: entries
                    .into_iter()
                    .map(|l| Entry {
                        timestamp: Some(Timestamp {
                            seconds: l.timestamp_ns.div_euclid(1_000_000_000),
                            nanos: l.timestamp_ns.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: l.line,
                        structured_metadata: l
                            .metadata
                            .into_iter()
                            .map(|(name, value)| LabelPair { name, value })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compresses any input")
}

/// The JSON push body: `{"streams":[{"stream":{labels},"values":[["ns","line",{metadata}]]}]}`.
pub fn json_body(lines: Vec<Line>, gzip: bool) -> Vec<u8> {
    let streams: Vec<Value> = streams(lines)
        .into_iter()
        .map(|(labels, entries)| {
            let stream: Map<String, Value> = labels
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let values: Vec<Value> = entries
                .into_iter()
                .map(|l| {
                    let meta: Map<String, Value> = l
                        .metadata
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    json!([l.timestamp_ns.to_string(), l.line, meta])
                })
                .collect();
            json!({"stream": stream, "values": values})
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "streams": streams })).expect("JSON");
    if !gzip {
        return body;
    }
    crate::http::gzip(&body)
}
