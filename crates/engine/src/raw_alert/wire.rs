//! The alert's members as serde_json reads them: the reader of record for every body, used when
//! [`super::scan`] leaves one to it (escapes such as `\u00e9`, numbers with exponents, anything
//! invalid).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Members;
use crate::alert::{scalars_only, ObjectOnly, OutputFields};

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    rule: Option<Text<'a>>,
    #[serde(borrow)]
    priority: Option<Text<'a>>,
    #[serde(borrow)]
    time: Option<Text<'a>>,
    #[serde(borrow)]
    uuid: Option<Text<'a>>,
    #[serde(borrow)]
    source: Option<Text<'a>>,
    #[serde(borrow)]
    hostname: Option<&'a RawValue>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    #[serde(borrow)]
    output_fields: Option<&'a RawValue>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
}

/// The members of the alert in `text`, or `None` when it is not a JSON object, a member has the
/// wrong type (or is a string with a lone surrogate), or `output_fields` (an object of scalars)
/// or `tags` (an array of strings) has the wrong shape.
pub(super) fn members(text: &str) -> Option<Members<'_>> {
    let ObjectOnly(wire) = serde_json::from_str::<ObjectOnly<Wire<'_>>>(text).ok()?;
    let hostname = non_null(wire.hostname);
    let output = non_null(wire.output);
    if !hostname.is_none_or(is_string) || !output.is_none_or(is_string) {
        return None;
    }
    // The free-form members are read as the full decoder reads them (`alert::Wire`): this path
    // takes only the alerts the one-pass reader leaves, so reading them twice costs little.
    let tags = non_null(wire.tags);
    if let Some(tags) = tags {
        serde_json::from_str::<Vec<String>>(tags).ok()?;
    }
    let output_fields = non_null(wire.output_fields);
    if let Some(fields) = output_fields {
        scalars_only(&serde_json::from_str::<OutputFields>(fields).ok()?).then_some(())?;
    }
    Some(Members {
        rule: wire.rule.map(|t| t.0),
        priority: wire.priority.map(|t| t.0),
        time: wire.time.map(|t| t.0),
        uuid: wire.uuid.map(|t| t.0),
        source: wire.source.map(|t| t.0),
        hostname,
        output,
        output_fields,
        tags,
    })
}

fn non_null(v: Option<&RawValue>) -> Option<&str> {
    v.map(RawValue::get).filter(|v| *v != "null")
}

/// Whether `v` is a JSON string the full decoder reads (captured as raw JSON, a `\u` escape was
/// not checked for a lone surrogate, which reading it as a string refuses).
fn is_string(v: &str) -> bool {
    serde_json::from_str::<Text<'_>>(v).is_ok()
}

/// A JSON string, borrowed from the body unless it has escapes. (serde's own `Cow<str>` is
/// always owned inside an `Option`: `#[serde(borrow)]` reaches only a `Cow` field itself.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}
