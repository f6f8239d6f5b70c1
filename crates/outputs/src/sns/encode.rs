//! SNS messages: the text, the attributes, and fitting both in 256 KiB.

use peregrine_engine::Alert;

use super::config::SnsFormat;
use crate::aws::{attributes, attributes_size, Attributes};
use crate::envelope::Envelope;
use crate::fingerprint::KeyTemplate;

/// SNS's limit on a message with its attributes.
pub const MAX_BYTES: usize = 256 * 1024;
/// SNS's limit on a subject.
const SUBJECT_MAX: usize = 100;

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
        self.body.len() + attributes_size(&self.attributes)
    }
}

/// The message for an alert, within [`MAX_BYTES`], or `None` when even cut down it does not fit.
pub fn message(
    e: &Envelope,
    format: SnsFormat,
    subject: Option<&KeyTemplate>,
    which: &Attributes,
) -> Option<Message> {
    let a: &Alert = e.alert();
    let attributes = attributes(a, which);
    let attr_bytes = attributes_size(&attributes);
    let room = MAX_BYTES.checked_sub(attr_bytes)?;
    let (body, subject) = match format {
        SnsFormat::Json => (crate::aws::fit_json(e, room)?, None),
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
