//! `_bulk` bodies: a `create` action with the alert's uuid as `_id`, then the document.

use peregrine_engine::Alert;
use serde_json::Value;

use super::config::{IndexSuffix, Target};
use crate::envelope::Envelope;

/// The index (or data stream) an alert goes to: the suffix is the alert's own UTC day, month
/// or year, so a replayed or late alert lands beside its neighbours in time.
pub fn index_name(target: &Target, alert: &Alert) -> String {
    match target {
        Target::DataStream(name) => name.clone(),
        Target::Index { name, suffix } => {
            let t = alert.time.to_offset_date_time();
            match suffix {
                IndexSuffix::Daily => format!(
                    "{name}-{:04}.{:02}.{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day()
                ),
                IndexSuffix::Monthly => {
                    format!("{name}-{:04}.{:02}", t.year(), u8::from(t.month()))
                }
                IndexSuffix::Yearly => format!("{name}-{:04}", t.year()),
                IndexSuffix::None => name.clone(),
            }
        }
    }
}

/// `output_fields` key as stored: `proc.aname[2]` → `proc_aname_2`.
pub fn flat_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '.' | '[' => out.push('_'),
            ']' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends the action line and the document of one alert to `body`.
pub fn write_item(body: &mut Vec<u8>, target: &Target, flatten: bool, e: &Envelope) {
    let a: &Alert = e.alert();
    let json = |body: &mut Vec<u8>, v: &str| {
        serde_json::to_writer(&mut *body, v).expect("writing to a Vec")
    };
    body.extend_from_slice(b"{\"create\":{\"_index\":");
    json(body, &index_name(target, a));
    body.extend_from_slice(b",\"_id\":");
    json(body, e.id());
    body.extend_from_slice(b"}}\n{\"@timestamp\":");
    let time = a.time.to_string();
    json(body, &time);
    body.extend_from_slice(b",\"time\":");
    json(body, &time);
    body.extend_from_slice(b",\"uuid\":");
    json(body, e.id());
    body.extend_from_slice(b",\"rule\":");
    json(body, &a.rule);
    body.extend_from_slice(b",\"priority\":");
    json(body, a.priority.as_str());
    body.extend_from_slice(b",\"source\":");
    json(body, &a.source);
    if let Some(h) = &a.hostname {
        body.extend_from_slice(b",\"hostname\":");
        json(body, h);
    }
    body.extend_from_slice(b",\"tags\":");
    serde_json::to_writer(&mut *body, &a.tags).expect("writing to a Vec");
    body.extend_from_slice(b",\"output\":");
    json(body, &a.output);
    body.extend_from_slice(b",\"output_fields\":{");
    let mut written: Vec<String> = Vec::with_capacity(a.output_fields.len());
    for (k, v) in &a.output_fields {
        let key = if flatten { flat_key(k) } else { k.clone() };
        // Two fields that flatten alike (`a.b` and `a_b`): the first one wins, as a document
        // with a repeated key would be refused whole.
        if written.contains(&key) {
            continue;
        }
        if !written.is_empty() {
            body.push(b',');
        }
        json(body, &key);
        body.push(b':');
        write_value(body, v);
        written.push(key);
    }
    body.extend_from_slice(b"}}\n");
}

fn write_value(body: &mut Vec<u8>, v: &Value) {
    serde_json::to_writer(&mut *body, v).expect("writing to a Vec");
}

/// The `_bulk` body for a batch, and where each alert's item starts (for splitting).
pub fn bulk_body(target: &Target, flatten: bool, batch: &[Envelope]) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.iter().map(|e| e.json.len() + 256).sum());
    for e in batch {
        write_item(&mut body, target, flatten, e);
    }
    body
}
