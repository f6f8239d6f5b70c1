//! The Falco alert: what Falco's `json_output` prints and its `http_output` posts.
//!
//! Serialisation follows Falco exactly (keys in sorted order, `time` with nine fractional digits,
//! title-case priority) plus the `uuid` that Falcosidekick-style gateways add. Parsing is strict
//! about the fields a router depends on (`rule`, `priority`, `time`) and names the offending field,
//! because a gateway must reject a bad alert with a message its sender can act on.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::priority::Priority;
use crate::time::EventTime;

/// Output fields: field reference (`proc.name`, `proc.aname[2]`) to a scalar JSON value.
/// A `serde_json::Map` keeps keys sorted, which is also Falco's order.
pub type OutputFields = Map<String, Value>;

/// A Falco alert.
///
/// Field order is alphabetical on purpose: derived serialisation then matches the sorted keys of
/// Falco's nlohmann::json writer byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub output: String,
    pub output_fields: OutputFields,
    pub priority: Priority,
    pub rule: String,
    pub source: String,
    pub tags: Vec<String>,
    pub time: EventTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<AlertId>,
}

/// The identity an alert keeps everywhere downstream: retries, replays and idempotency keys.
///
/// Either a sender-supplied id or a generated UUID v4. Bounded to 128 printable ASCII characters so
/// it fits every destination's id field (SNS deduplication ids are the tightest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AlertId(String);

impl AlertId {
    pub const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        // Into a buffer rather than through `Display`: a third of the cost, once per alert.
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        AlertId(
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut text)
                .to_owned(),
        )
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "must be 1 to {} characters, got {}",
                Self::MAX_LEN,
                s.len()
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".to_string());
        }
        Ok(AlertId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an alert body was refused, naming the field (`priority`, `output_fields.proc.name`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AlertError {
    pub field: String,
    pub message: String,
    pub kind: AlertErrorKind,
}

/// A coarse, bounded classification of [`AlertError`], fit for a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertErrorKind {
    NotAnObject,
    MissingRule,
    BadRule,
    MissingPriority,
    UnknownPriority,
    MissingTime,
    BadTime,
    BadField,
}

impl AlertErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertErrorKind::NotAnObject => "not_an_object",
            AlertErrorKind::MissingRule => "missing_rule",
            AlertErrorKind::BadRule => "bad_rule",
            AlertErrorKind::MissingPriority => "missing_priority",
            AlertErrorKind::UnknownPriority => "unknown_priority",
            AlertErrorKind::MissingTime => "missing_time",
            AlertErrorKind::BadTime => "bad_time",
            AlertErrorKind::BadField => "bad_field",
        }
    }
}

fn err(field: impl Into<String>, kind: AlertErrorKind, message: impl Into<String>) -> AlertError {
    AlertError {
        field: field.into(),
        message: message.into(),
        kind,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Alert {
    /// Validates a decoded JSON value as a Falco alert body.
    ///
    /// Unknown top-level keys are ignored, as Falcosidekick ignores them; everything a router or
    /// an output reads is checked. Fields are checked in a fixed order and the first bad one is
    /// the one named.
    pub fn from_json(value: Value) -> Result<Alert, AlertError> {
        let Value::Object(mut obj) = value else {
            return Err(wrong_type(
                "(body)",
                AlertErrorKind::NotAnObject,
                "a JSON object",
                &value,
            ));
        };
        let rule = take_rule(&mut obj)?;
        let priority = take_priority(&mut obj)?;
        let time = take_time(&mut obj)?;
        let output = optional_string(&mut obj, "output")?.unwrap_or_default();
        let source = optional_string(&mut obj, "source")?.unwrap_or_else(|| "syscall".to_string());
        let hostname = optional_string(&mut obj, "hostname")?;
        let uuid = take_uuid(&mut obj)?;
        let tags = take_tags(&mut obj)?;
        let output_fields = take_output_fields(&mut obj)?;
        Ok(Alert {
            hostname,
            output,
            output_fields,
            priority,
            rule,
            source,
            tags,
            time,
            uuid,
        })
    }

    /// Parses and validates one alert from JSON text.
    ///
    /// Valid alerts take a typed fast path; only a body that fails it is parsed again the slow,
    /// precise way, to name the bad field.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Alert, AlertError> {
        if let Some(alert) = Alert::from_json_slice_fast(bytes) {
            return Ok(alert);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            err(
                "(body)",
                AlertErrorKind::NotAnObject,
                format!("malformed JSON: {e}"),
            )
        })?;
        Alert::from_json(value)
    }

    /// The typed fast path: `None` for anything it does not accept, which
    /// [`Alert::from_json`] then explains. It accepts exactly what `from_json` accepts.
    pub fn from_json_slice_fast(bytes: &[u8]) -> Option<Alert> {
        serde_json::from_slice::<ObjectOnly<Wire<'_>>>(bytes)
            .ok()?
            .0
            .validate()
    }

    /// The fast path for a JSON array of alerts (see [`Alert::from_json_slice_fast`]).
    pub fn from_json_array_slice_fast(bytes: &[u8]) -> Option<Vec<Alert>> {
        let wires = serde_json::from_slice::<Vec<ObjectOnly<Wire<'_>>>>(bytes).ok()?;
        wires.into_iter().map(|w| w.0.validate()).collect()
    }

    /// The alert as one line of JSON, in Falco's key order.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Alert always serialises")
    }
}

/// Whether every output field is a string, number, boolean or null, as Falco's are.
pub(crate) fn scalars_only(fields: &OutputFields) -> bool {
    first_non_scalar(fields).is_none()
}

/// The first output field whose value is an array or an object, which Falco's never are.
fn first_non_scalar(fields: &OutputFields) -> Option<(&String, &Value)> {
    fields
        .iter()
        .find(|(_, v)| matches!(v, Value::Array(_) | Value::Object(_)))
}

/// A struct read only from a JSON object. (serde's derived `Deserialize` also reads a struct from
/// an array of its fields in order, which no sender means and [`Alert::from_json`] refuses.)
pub(crate) struct ObjectOnly<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// The alert body as it arrives, before validation. Unknown keys are ignored, as in
/// [`Alert::from_json`].
#[derive(serde::Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow)]
    priority: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    output: Option<String>,
    source: Option<String>,
    hostname: Option<String>,
    #[serde(borrow)]
    uuid: Option<Cow<'a, str>>,
    tags: Option<Vec<String>>,
    output_fields: Option<OutputFields>,
}

impl Wire<'_> {
    fn validate(self) -> Option<Alert> {
        let typed = TypedMembers::check(self.rule, self.priority, self.time, self.uuid)?;
        let output_fields = self.output_fields.unwrap_or_default();
        if !scalars_only(&output_fields) {
            return None;
        }
        Some(Alert {
            hostname: self.hostname,
            output: self.output.unwrap_or_default(),
            output_fields,
            priority: typed.priority,
            rule: typed.rule.into_owned(),
            source: self.source.unwrap_or_else(|| "syscall".to_string()),
            tags: self.tags.unwrap_or_default(),
            time: typed.time,
            uuid: typed.uuid,
        })
    }
}

/// The members of an alert that both fast readers ([`Alert::from_json_slice_fast`] and
/// `RawAlert::parse`) check, and decode all but `rule`, in this one place so that the two accept
/// the same alerts. ([`Alert::from_json`] checks the same things one by one, to say which member
/// is wrong.)
pub(crate) struct TypedMembers<'a> {
    pub rule: Cow<'a, str>,
    pub priority: Priority,
    pub time: EventTime,
    pub uuid: Option<AlertId>,
}

impl<'a> TypedMembers<'a> {
    /// `None` unless `rule` is present and not blank, `priority` one of Falco's names, `time`
    /// RFC 3339, and `uuid`, when present, an id.
    #[inline]
    pub(crate) fn check(
        rule: Option<Cow<'a, str>>,
        priority: Option<Cow<'_, str>>,
        time: Option<Cow<'_, str>>,
        uuid: Option<Cow<'_, str>>,
    ) -> Option<Self> {
        Some(TypedMembers {
            rule: rule.filter(|r| !r.trim().is_empty())?,
            priority: priority?.parse().ok()?,
            time: EventTime::parse_rfc3339(&time?).ok()?,
            uuid: match uuid {
                Some(id) => Some(AlertId::parse(&id).ok()?),
                None => None,
            },
        })
    }
}

/// "expected ..., got ...": a value of the wrong JSON type.
fn wrong_type(
    field: impl Into<String>,
    kind: AlertErrorKind,
    expected: &str,
    got: &Value,
) -> AlertError {
    err(
        field,
        kind,
        format!("expected {expected}, got {}", type_name(got)),
    )
}

/// `rule`: required, a non-blank string.
fn take_rule(obj: &mut Map<String, Value>) -> Result<String, AlertError> {
    match obj.remove("rule") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(err("rule", AlertErrorKind::BadRule, "must not be empty")),
        None | Some(Value::Null) => Err(err("rule", AlertErrorKind::MissingRule, "is required")),
        Some(other) => Err(wrong_type(
            "rule",
            AlertErrorKind::BadRule,
            "a string",
            &other,
        )),
    }
}

/// `priority`: required, a Falco priority name in any case.
fn take_priority(obj: &mut Map<String, Value>) -> Result<Priority, AlertError> {
    match obj.remove("priority") {
        Some(Value::String(s)) => s
            .parse::<Priority>()
            .map_err(|e| err("priority", AlertErrorKind::UnknownPriority, e.to_string())),
        None | Some(Value::Null) => Err(err(
            "priority",
            AlertErrorKind::MissingPriority,
            "is required",
        )),
        Some(other) => Err(wrong_type(
            "priority",
            AlertErrorKind::UnknownPriority,
            "a string",
            &other,
        )),
    }
}

/// `time`: required, RFC 3339.
fn take_time(obj: &mut Map<String, Value>) -> Result<EventTime, AlertError> {
    match obj.remove("time") {
        Some(Value::String(s)) => EventTime::parse_rfc3339(&s)
            .map_err(|e| err("time", AlertErrorKind::BadTime, e.to_string())),
        None | Some(Value::Null) => Err(err("time", AlertErrorKind::MissingTime, "is required")),
        Some(other) => Err(wrong_type(
            "time",
            AlertErrorKind::BadTime,
            "an RFC 3339 string",
            &other,
        )),
    }
}

/// `uuid`: optional, a valid [`AlertId`] when given.
fn take_uuid(obj: &mut Map<String, Value>) -> Result<Option<AlertId>, AlertError> {
    optional_string(obj, "uuid")?
        .map(|s| AlertId::parse(&s).map_err(|m| err("uuid", AlertErrorKind::BadField, m)))
        .transpose()
}

/// `tags`: optional, an array of strings; a bad element is named by its index.
fn take_tags(obj: &mut Map<String, Value>) -> Result<Vec<String>, AlertError> {
    let items = match obj.remove("tags") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(wrong_type(
                "tags",
                AlertErrorKind::BadField,
                "an array of strings",
                &other,
            ))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s),
            other => Err(wrong_type(
                format!("tags[{i}]"),
                AlertErrorKind::BadField,
                "a string",
                &other,
            )),
        })
        .collect()
}

/// `output_fields`: optional, an object of scalars (what a format string's fields yield).
fn take_output_fields(obj: &mut Map<String, Value>) -> Result<OutputFields, AlertError> {
    let fields = match obj.remove("output_fields") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            return Err(wrong_type(
                "output_fields",
                AlertErrorKind::BadField,
                "an object",
                &other,
            ))
        }
    };
    if let Some((name, v)) = first_non_scalar(&fields) {
        return Err(wrong_type(
            format!("output_fields.{name}"),
            AlertErrorKind::BadField,
            "a string, number, boolean or null",
            v,
        ));
    }
    Ok(fields)
}

fn optional_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, AlertError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(
            key,
            AlertErrorKind::BadField,
            "a string",
            &other,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "hostname": "node-1",
            "output": "09:23:10.123456789: Warning Sensitive file opened",
            "output_fields": {"proc.name": "cat", "user.uid": 0, "proc.pname": null, "evt.time": 1781256190123456789u64},
            "priority": "warning",
            "rule": "Read sensitive file untrusted",
            "source": "syscall",
            "tags": ["filesystem", "mitre_credential_access"],
            "time": "2026-06-12T09:23:10.123456789Z"
        })
    }

    #[test]
    fn round_trips_in_falco_key_order() {
        let alert = Alert::from_json(sample()).unwrap();
        assert_eq!(alert.priority, Priority::Warning);
        let text = String::from_utf8(alert.to_json_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"hostname":"node-1","output":"#),
            "{text}"
        );
        assert!(text.contains(r#""priority":"Warning","rule":"#), "{text}");
        assert!(
            text.ends_with(r#""time":"2026-06-12T09:23:10.123456789Z"}"#),
            "{text}"
        );
        assert_eq!(Alert::from_json_slice(text.as_bytes()).unwrap(), alert);
    }

    #[test]
    fn names_the_bad_field() {
        let cases: [(&str, Value, &str); 6] = [
            ("rule", Value::Null, "rule: is required"),
            (
                "priority",
                json!("urgent"),
                "priority: unknown priority 'urgent'",
            ),
            ("priority", Value::Null, "priority: is required"),
            (
                "time",
                json!("yesterday"),
                "time: 'yesterday' is not an RFC 3339",
            ),
            ("tags", json!(["a", 3]), "tags[1]: expected a string"),
            (
                "output_fields",
                json!({"x": [1]}),
                "output_fields.x: expected a string",
            ),
        ];
        for (key, value, expected) in cases {
            let mut body = sample();
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value;
            }
            let e = Alert::from_json(body).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{key}: got {e}");
        }
    }

    #[test]
    fn the_fast_path_accepts_exactly_what_the_precise_one_does() {
        let good = sample();
        let mut cases = vec![good.clone()];
        for (key, value) in [
            ("rule", json!("")),
            ("rule", json!(5)),
            ("priority", json!("urgent")),
            ("priority", Value::Null),
            ("time", json!("nope")),
            ("tags", json!(["a", 1])),
            ("output_fields", json!({"a": {"b": 1}})),
            ("uuid", json!("has space")),
            ("hostname", json!(7)),
            ("source", Value::Null),
            ("extra", json!({"ignored": true})),
        ] {
            let mut v = good.clone();
            v[key] = value;
            cases.push(v);
        }
        for case in cases {
            let text = case.to_string();
            let precise = Alert::from_json(case.clone()).ok();
            let fast = Alert::from_json_slice_fast(text.as_bytes());
            assert_eq!(fast, precise, "{text}");
        }
    }

    #[test]
    fn defaults_source_and_keeps_a_given_uuid() {
        let mut body = sample();
        body.as_object_mut().unwrap().remove("source");
        body["uuid"] = json!("sender-key-1");
        let alert = Alert::from_json(body).unwrap();
        assert_eq!(alert.source, "syscall");
        assert_eq!(alert.uuid.unwrap().as_str(), "sender-key-1");
    }
}
