//! The alert's members as serde_json reads them: the reader of record for every body, used when
//! [`super::scan`] leaves one to it (escapes such as `\u00e9`, numbers with exponents, anything
//! invalid).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Members;
use crate::alert::ObjectOnly;

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
    let tags = non_null(wire.tags);
    if let Some(tags) = tags {
        serde_json::from_str::<StringArray>(tags).ok()?;
    }
    let output_fields = non_null(wire.output_fields);
    if let Some(fields) = output_fields {
        serde_json::from_str::<ScalarObject>(fields).ok()?;
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

/// Whether `v` is a JSON string the full decoder reads: captured as raw JSON, a `\u` escape
/// was not checked for a lone surrogate, which reading it as a string refuses.
fn is_string(v: &str) -> bool {
    v.starts_with('"') && (!v.contains("\\u") || serde_json::from_str::<Text<'_>>(v).is_ok())
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

/// Accepts a JSON array of strings, reading nothing into memory.
struct StringArray;

impl<'de> Deserialize<'de> for StringArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringArray, A::Error> {
                while seq.next_element::<Cow<'de, str>>()?.is_some() {}
                Ok(StringArray)
            }
        }
        d.deserialize_seq(V)
    }
}

/// Accepts a JSON object whose values are all scalars (no arrays or objects), as Falco's output
/// fields are.
struct ScalarObject;

impl<'de> Deserialize<'de> for ScalarObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of scalars")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScalarObject, A::Error> {
                while map.next_key::<IgnoredAny>()?.is_some() {
                    map.next_value::<Scalar>()?;
                }
                Ok(ScalarObject)
            }
        }
        d.deserialize_map(V)
    }
}

struct Scalar;

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
                Ok(Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
                Ok(Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Scalar, E> {
                Ok(Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar)
            }
        }
        d.deserialize_any(V)
    }
}
