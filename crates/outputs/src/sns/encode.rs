//! SNS messages: the text, the attributes, and fitting both in 256 KiB.

use peregrine_engine::Alert;
use serde_json::Value;

use super::config::{Attributes, SnsFormat};
use crate::card::truncate;
use crate::envelope::Envelope;
use crate::fingerprint::{field_text, KeyTemplate};

/// SNS's limit on a message with its attributes.
pub const MAX_BYTES: usize = 256 * 1024;
/// SNS's limit on a subject.
const SUBJECT_MAX: usize = 100;
/// How long an attribute value may be here (SNS allows more; a filter policy needs little).
const ATTRIBUTE_MAX: usize = 256;

/// One message, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: String,
    pub subject: Option<String>,
    pub attributes: Vec<(String, String)>,
}

impl Message {
    /// What SNS counts against its limit: the message, and each attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

/// A valid SNS attribute name: letters, digits, `_`, `-`, `.`; no leading, trailing or double
/// dot; not `AWS.` or `Amazon.`.
pub fn attribute_name(field: &str) -> String {
    let mut name: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    let name = name.trim_matches('.').to_string();
    let lower = name.to_ascii_lowercase();
    if name.is_empty() || lower.starts_with("aws.") || lower.starts_with("amazon.") {
        format!("f_{name}")
    } else {
        name
    }
}

fn attributes(alert: &Alert, which: &Attributes) -> Vec<(String, String)> {
    match which {
        Attributes::Off => Vec::new(),
        Attributes::Fields(fields) => fields
            .iter()
            .filter_map(|f| {
                let v = field_text(alert, f);
                (!v.is_empty()).then(|| (attribute_name(f), truncate(&v, ATTRIBUTE_MAX)))
            })
            .collect(),
    }
}

/// The message for an alert, within [`MAX_BYTES`], or `None` when even cut down it does not fit.
pub fn message(
    e: &Envelope,
    format: SnsFormat,
    subject: Option<&KeyTemplate>,
    which: &Attributes,
) -> Option<Message> {
    let a: &Alert = &e.alert;
    let attributes = attributes(a, which);
    let attr_bytes: usize = attributes.iter().map(|(k, v)| k.len() + 6 + v.len()).sum();
    let room = MAX_BYTES.checked_sub(attr_bytes)?;
    let (body, subject) = match format {
        SnsFormat::Json => (fit_json(e, room)?, None),
        SnsFormat::Text => {
            let subject = match subject {
                Some(t) => t.render(a),
                None => format!("[{}] {}", a.priority, a.rule),
            };
            (cut_bytes(&a.output, room), Some(clean_subject(&subject)))
        }
    };
    Some(Message {
        body,
        subject,
        attributes,
    })
}

/// The alert's JSON; when too large, its strings cut step by step (output fields first, then
/// the output) with a visible marker.
fn fit_json(e: &Envelope, room: usize) -> Option<String> {
    if e.json.len() <= room {
        return Some(String::from_utf8_lossy(&e.json).into_owned());
    }
    for (field_max, output_max) in [(1024, 64 * 1024), (256, 16 * 1024), (64, 4096), (0, 1024)] {
        let mut a: Alert = (*e.alert).clone();
        if field_max == 0 {
            a.output_fields.clear();
            a.output_fields
                .insert("peregrine.truncated".into(), Value::Bool(true));
        } else {
            for v in a.output_fields.values_mut() {
                if let Value::String(s) = v {
                    if s.chars().count() > field_max {
                        *s = truncate(s, field_max);
                    }
                }
            }
        }
        a.output = truncate(&a.output, output_max);
        let json = String::from_utf8(a.to_json_bytes()).expect("JSON is UTF-8");
        if json.len() <= room {
            return Some(json);
        }
    }
    None
}

/// `text` cut to at most `max` bytes on a character boundary, with the marker when cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = crate::card::TRUNCATED;
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// SNS subjects: printable ASCII, no line breaks, at most 100 characters.
fn clean_subject(s: &str) -> String {
    let ascii: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut out: String = ascii.chars().take(SUBJECT_MAX).collect();
    if out.trim().is_empty() {
        out = "Falco alert".to_string();
    }
    out
}
