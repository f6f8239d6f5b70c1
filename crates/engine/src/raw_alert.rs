//! An alert checked in place: the fields a router needs are validated and decoded, the
//! free-form ones (`output`, `output_fields`, `tags`, `hostname`) are kept as the sender's JSON.
//!
//! Why: a gateway stores every alert it accepts, and decoding `output_fields` into a map only to
//! encode it again was a quarter of the gateway's ingest cost. [`RawAlert::parse`] accepts exactly
//! what [`Alert::from_json_slice_fast`] accepts, except bodies that are not UTF-8 throughout
//! (which the full path accepts when the bad bytes are in the value of a key it skips), and
//! [`RawAlert::encode`] writes a record that decodes to the same [`Alert`] (the tests hold both
//! to that).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

#[cfg(doc)]
use crate::alert::Alert;
use crate::alert::AlertId;
use crate::priority::Priority;
use crate::time::EventTime;

/// A validated alert borrowing its free-form parts from the body it came in.
#[derive(Debug, Clone)]
pub struct RawAlert<'a> {
    pub priority: Priority,
    pub source: Cow<'a, str>,
    pub uuid: Option<AlertId>,
    pub rule: Cow<'a, str>,
    time: EventTime,
    hostname: Option<&'a RawValue>,
    output: Option<&'a RawValue>,
    output_fields: Option<&'a RawValue>,
    tags: Option<&'a RawValue>,
}

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

impl<'a> RawAlert<'a> {
    /// The alert in `bytes` (one JSON object), or `None` when it is not a valid alert; the caller
    /// then takes the slow path that says what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Option<RawAlert<'a>> {
        // One UTF-8 check of the whole alert; read as text, serde_json does not check each string
        // again. (A body with invalid UTF-8 only where serde_json skips, in an unknown key's
        // value, takes the caller's full path instead.)
        RawAlert::parse_str(std::str::from_utf8(bytes).ok()?)
    }

    /// [`RawAlert::parse`] for an alert already known to be UTF-8 (an item of a JSON array that
    /// serde_json has read).
    pub fn parse_str(text: &'a str) -> Option<RawAlert<'a>> {
        let wire: Wire<'a> = serde_json::from_str(text).ok()?;
        let rule = wire.rule.map(|r| r.0).filter(|r| !r.trim().is_empty())?;
        let priority = wire.priority?.0.parse().ok()?;
        let time = EventTime::parse_rfc3339(&wire.time?.0).ok()?;
        let uuid = match wire.uuid {
            Some(id) => Some(AlertId::parse(&id.0).ok()?),
            None => None,
        };
        let hostname = non_null(wire.hostname);
        let output = non_null(wire.output);
        if !hostname.is_none_or(is_string) || !output.is_none_or(is_string) {
            return None;
        }
        let tags = non_null(wire.tags);
        if let Some(tags) = tags {
            match shape::array_of_strings(tags.get()) {
                Some(ok) => ok.then_some(())?,
                None => serde_json::from_str::<StringArray>(tags.get())
                    .map(drop)
                    .ok()?,
            }
        }
        let output_fields = non_null(wire.output_fields);
        if let Some(fields) = output_fields {
            match shape::object_of_scalars(fields.get()) {
                Some(ok) => ok.then_some(())?,
                None => serde_json::from_str::<ScalarObject>(fields.get())
                    .map(drop)
                    .ok()?,
            }
        }
        Some(RawAlert {
            priority,
            source: wire.source.map_or(Cow::Borrowed("syscall"), |s| s.0),
            uuid,
            rule,
            time,
            hostname,
            output,
            output_fields,
            tags,
        })
    }

    /// Appends the alert as one JSON object in Falco's key order, with `uuid`: the sender's JSON
    /// for the free-form parts, canonical spellings for priority and time.
    pub fn encode(&self, uuid: &AlertId, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| {
            serde_json::to_writer(&mut *out, s).expect("a string always serialises")
        };
        out.push(b'{');
        if let Some(hostname) = self.hostname {
            out.extend_from_slice(b"\"hostname\":");
            out.extend_from_slice(hostname.get().as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"output\":");
        out.extend_from_slice(self.output.map_or("\"\"", |o| o.get()).as_bytes());
        out.extend_from_slice(b",\"output_fields\":");
        out.extend_from_slice(self.output_fields.map_or("{}", |f| f.get()).as_bytes());
        out.extend_from_slice(b",\"priority\":\"");
        out.extend_from_slice(self.priority.as_str().as_bytes());
        out.extend_from_slice(b"\",\"rule\":");
        string(out, &self.rule);
        out.extend_from_slice(b",\"source\":");
        string(out, &self.source);
        out.extend_from_slice(b",\"tags\":");
        out.extend_from_slice(self.tags.map_or("[]", |t| t.get()).as_bytes());
        out.extend_from_slice(b",\"time\":\"");
        out.extend_from_slice(&self.time.rfc3339());
        out.push(b'"');
        out.extend_from_slice(b",\"uuid\":");
        string(out, uuid.as_str());
        out.push(b'}');
    }
}

fn non_null(v: Option<&RawValue>) -> Option<&RawValue> {
    v.filter(|v| v.get() != "null")
}

fn is_string(v: &RawValue) -> bool {
    v.get().starts_with('"')
}

/// The shape of JSON that serde_json has already read as valid (capturing it as a `RawValue`
/// checks its syntax), told by one pass over its bytes instead of a second parse: the second parse
/// of `output_fields` cost more than everything else the gateway checks in an alert.
///
/// Each answers `None` where serde_json's parse could still refuse what the bytes show as the
/// right shape — a `\u` escape (a lone surrogate is refused only when the string is read), a
/// number with an exponent or hundreds of digits (refused when out of range) — and the caller
/// then parses.
mod shape {
    /// Whether `json` is an object whose values are strings, numbers, booleans or null.
    pub fn object_of_scalars(json: &str) -> Option<bool> {
        let bytes = json.as_bytes();
        if bytes.first() != Some(&b'{') {
            return Some(false);
        }
        let mut digits = 0;
        let mut i = 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'"' => i = string_end(bytes, i)?,
                b'{' | b'[' => return Some(false),
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > 300 {
                        return None;
                    }
                }
                b'e' | b'E' if bytes[i - 1].is_ascii_digit() => return None,
                _ => digits = 0,
            }
            i += 1;
        }
        Some(true)
    }

    /// Whether `json` is an array of strings.
    pub fn array_of_strings(json: &str) -> Option<bool> {
        let bytes = json.as_bytes();
        if bytes.first() != Some(&b'[') {
            return Some(false);
        }
        let mut i = 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'"' => i = string_end(bytes, i)?,
                b',' | b']' | b' ' | b'\t' | b'\n' | b'\r' => {}
                _ => return Some(false),
            }
            i += 1;
        }
        Some(true)
    }

    /// The index of the quote that closes the string opening at `start`; `None` at a `\u`.
    fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
        let mut i = start + 1;
        loop {
            i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
            match bytes[i] {
                b'"' => return Some(i),
                _ if *bytes.get(i + 1)? == b'u' => return None,
                _ => i += 2,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn id() -> AlertId {
        AlertId::parse("id-1").unwrap()
    }

    /// The record decodes to what the full decoder makes of the body, with the given id.
    fn same_as_full_path(body: &str) {
        let raw = RawAlert::parse(body.as_bytes());
        let full = Alert::from_json_slice_fast(body.as_bytes());
        assert_eq!(
            raw.is_some(),
            full.is_some(),
            "accepted by one path only: {body}"
        );
        let (Some(raw), Some(mut full)) = (raw, full) else {
            return;
        };
        assert_eq!(raw.uuid, full.uuid, "{body}");
        full.uuid.get_or_insert_with(id);
        let mut record = Vec::new();
        raw.encode(full.uuid.as_ref().unwrap(), &mut record);
        let decoded = Alert::from_json_slice(&record)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&record)));
        assert_eq!(decoded, full, "{}", String::from_utf8_lossy(&record));
        assert_eq!(
            (raw.priority, raw.source.as_ref()),
            (full.priority, full.source.as_str())
        );
    }

    #[test]
    fn shapes_are_told_from_the_bytes_or_left_to_the_parser() {
        use shape::{array_of_strings, object_of_scalars};
        assert_eq!(
            object_of_scalars(r#"{"a":"{[","b\"[":-1.5,"c":true,"d":null}"#),
            Some(true)
        );
        assert_eq!(object_of_scalars(r#"{"a":{"b":1}}"#), Some(false));
        assert_eq!(object_of_scalars(r#"{"a":[1]}"#), Some(false));
        assert_eq!(object_of_scalars(r#"["a"]"#), Some(false));
        assert_eq!(object_of_scalars(r#"{"a":1e3}"#), None);
        assert_eq!(object_of_scalars(r#"{"a":"\u00e9"}"#), None);
        assert_eq!(array_of_strings(r#"[ "a", "]\\", "" ]"#), Some(true));
        assert_eq!(array_of_strings(r#"["a",1]"#), Some(false));
        assert_eq!(array_of_strings(r#"["a",null]"#), Some(false));
        assert_eq!(array_of_strings(r#"{"a":"b"}"#), Some(false));
        assert_eq!(array_of_strings(r#"["\u0041"]"#), None);
    }

    /// Every pair of awkward values, as output fields and as tags, is accepted or refused by both
    /// paths alike: the shape checks must never accept what serde_json would refuse, or a stored
    /// record would not decode.
    #[test]
    fn awkward_values_in_pairs_are_judged_as_the_full_decoder_judges_them() {
        let values = [
            r#""""#,
            r#""a\"b""#,
            r#""\\""#,
            r#""{[""#,
            r#""\u0041""#,
            r#""\ud800""#,
            r#""\ud83d\ude00""#,
            r#""tab\tnew\n""#,
            "0",
            "-0",
            "-12.5",
            "1e5",
            "1E+2",
            "0.1e-3",
            "1e400",
            "18446744073709551616",
            "true",
            "false",
            "null",
            "{}",
            "[]",
            r#"{"a":1}"#,
            r#"["x"]"#,
            r#" "spaced" "#,
        ];
        let base = r#""rule":"r","priority":"Warning","time":"2026-06-12T09:23:10Z""#;
        for a in values {
            for b in values {
                same_as_full_path(&format!(
                    r#"{{{base},"output_fields":{{"a":{a},"b":{b}}}}}"#
                ));
                same_as_full_path(&format!(r#"{{{base},"tags":[{a},{b}]}}"#));
            }
        }
    }

    #[test]
    fn a_body_not_utf8_throughout_is_left_to_the_full_path() {
        let mut body =
            br#"{"rule":"r","priority":"Warning","time":"2026-06-12T09:23:10Z","x":""#.to_vec();
        body.extend_from_slice(b"\xff\"}");
        assert!(RawAlert::parse(&body).is_none());
        assert!(Alert::from_json_slice_fast(&body).is_some());
    }

    #[test]
    fn accepts_and_rejects_what_the_full_decoder_does() {
        let base = r#""rule":"Read sensitive file","priority":"Warning","time":"2026-06-12T09:23:10.123456789Z""#;
        for body in [
            format!("{{{base}}}"),
            format!(
                r#"{{{base},"output":"a \"quoted\" \u00e9 line","output_fields":{{"proc.name":"cat","evt.time":1781256190123456789,"user.uid":0,"fd.name":null,"x":true,"f":1.5}},"tags":["a","b"],"hostname":"node-1","source":"k8s_audit","uuid":"given-1"}}"#
            ),
            format!(r#"{{{base},"output":null,"output_fields":null,"tags":null,"hostname":null}}"#),
            format!(r#"{{{base},"unknown":{{"deep":[1,2]}}}}"#),
            r#"{"rule":"r","priority":"informational","time":"2026-06-12T09:23:10Z"}"#.to_string(),
            // Scalars that look like containers, escapes, and numbers at their limits:
            format!(
                r#"{{{base},"output_fields":{{"a":"{{[","b\"[":"\\","c":-0.5,"d":1.5e3,"e":1E-2,"f":false}},"tags":["[{{","\"",""]}}"#
            ),
            format!(r#"{{{base},"output_fields":{{"a":"\u00e9\ud83d\ude00"}},"tags":["\u0041"]}}"#),
            format!(
                r#"{{{base},"output_fields":{{"big":{}}}}}"#,
                "9".repeat(400)
            ),
            format!(
                r#"{{{base},"output_fields":{{"big":{}}}}}"#,
                "9".repeat(300)
            ),
            format!(
                r#"{{{base},"output_fields":{{"frac":0.{}}}}}"#,
                "1".repeat(400)
            ),
            format!(r#"{{{base},"output_fields":{{ }},"tags":[ ]}}"#),
            r#"{"rule":"r","priority":"  warning ","time":"2026-06-12T11:23:10+02:00"}"#
                .to_string(),
            // Refused by both:
            format!(r#"{{{base},"output_fields":{{"a":[1]}}}}"#),
            format!(r#"{{{base},"output_fields":{{"a":{{"b":1}}}}}}"#),
            format!(r#"{{{base},"output_fields":[1]}}"#),
            format!(r#"{{{base},"tags":["a",1]}}"#),
            format!(r#"{{{base},"tags":["a",null]}}"#),
            format!(r#"{{{base},"tags":[["a"]]}}"#),
            format!(r#"{{{base},"tags":{{"a":"b"}}}}"#),
            format!(r#"{{{base},"output_fields":{{"a":1e400}}}}"#),
            format!(r#"{{{base},"output_fields":{{"a":"\ud800"}}}}"#),
            format!(r#"{{{base},"tags":["\udc00"]}}"#),
            format!(r#"{{{base},"output_fields":"a"}}"#),
            format!(r#"{{{base},"output_fields":{{"a":"x","b":{{}}}}}}"#),
            format!(r#"{{{base},"tags":"a"}}"#),
            format!(r#"{{{base},"output":42}}"#),
            format!(r#"{{{base},"hostname":["h"]}}"#),
            format!(r#"{{{base},"uuid":"has space"}}"#),
            format!(r#"{{{base},"rule":"twice"}}"#),
            r#"{"rule":" ","priority":"Warning","time":"2026-06-12T09:23:10Z"}"#.to_string(),
            r#"{"rule":"r","priority":"Urgent","time":"2026-06-12T09:23:10Z"}"#.to_string(),
            r#"{"rule":"r","priority":"Warning","time":"yesterday"}"#.to_string(),
            r#"{"rule":"r","priority":"Warning"}"#.to_string(),
            r#"[{"rule":"r"}]"#.to_string(),
            "{".to_string(),
        ] {
            same_as_full_path(&body);
        }
    }
}
