//! Message attributes (SNS and SQS): a few of the alert's fields beside the message, for
//! subscription filter policies and consumers that route without parsing the body.

use peregrine_engine::Alert;
use serde::Deserialize;

use crate::card::truncate;
use crate::fingerprint::field_text;

/// How long an attribute value may be here (the services allow more; a filter needs little).
const ATTRIBUTE_MAX: usize = 256;

/// `message_attributes`: `true` (priority, rule, source, hostname), `false`, or a list of
/// fields (at most 10, the services' limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Off,
    Fields(Vec<String>),
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes::Fields(
            ["priority", "rule", "source", "hostname"]
                .map(String::from)
                .to_vec(),
        )
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Switch(bool),
            List(Vec<String>),
        }
        match Form::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected true, false or a list of fields"))?
        {
            Form::Switch(true) => Ok(Attributes::default()),
            Form::Switch(false) => Ok(Attributes::Off),
            Form::List(fields) if fields.len() > 10 => Err(serde::de::Error::custom(format!(
                "at most 10 message attributes (SNS's limit), got {}",
                fields.len()
            ))),
            Form::List(fields) => Ok(Attributes::Fields(fields)),
        }
    }
}

/// A valid SNS or SQS message attribute name: letters, digits, `_`, `-`, `.`; no leading, trailing or double
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

/// The chosen fields that the alert has, as message attributes.
pub fn attributes(alert: &Alert, which: &Attributes) -> Vec<(String, String)> {
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

/// What SNS and SQS count of message attributes against the message's size limit: each one's
/// name, type (`String`) and value.
pub fn attributes_size(attributes: &[(String, String)]) -> usize {
    attributes
        .iter()
        .map(|(k, v)| k.len() + "String".len() + v.len())
        .sum()
}
