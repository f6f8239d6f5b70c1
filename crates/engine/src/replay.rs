//! Replay events: one JSON object per line whose keys are field references as rules write them
//! (`evt.type`, `proc.aname[2]`, `evt.arg.flags`). This is how users test rules without a kernel
//! and how the test suite checks semantics.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value as Json;

use crate::eval::{Event, Extracted, Val};
use crate::event_types;
use crate::fields::{FieldArg, ResolvedField};
use crate::output;
use crate::time::EventTime;

/// A replayed event.
#[derive(Debug, Clone)]
pub struct JsonEvent {
    fields: HashMap<String, Json>,
    event_type: Option<usize>,
    time_ns: Option<i64>,
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("expected a JSON object of field references")]
    NotObject,
    #[error("'{key}': {message}")]
    BadValue { key: String, message: String },
}

impl JsonEvent {
    pub fn parse(line: &str) -> Result<JsonEvent, ReplayError> {
        let value: Json =
            serde_json::from_str(line).map_err(|e| ReplayError::NotJson(e.to_string()))?;
        let Json::Object(map) = value else {
            return Err(ReplayError::NotObject);
        };
        JsonEvent::from_map(map.into_iter().collect())
    }

    pub fn from_map(fields: HashMap<String, Json>) -> Result<JsonEvent, ReplayError> {
        for (key, v) in &fields {
            if let Json::Object(_) = v {
                return Err(ReplayError::BadValue {
                    key: key.clone(),
                    message: "values must be strings, numbers, booleans, null or arrays".into(),
                });
            }
        }
        let event_type = match fields.get("evt.type") {
            Some(Json::String(t)) => event_types::index_of(t),
            _ => None,
        };
        let time_ns = match fields.get("evt.time") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) => Some(n.as_i64().ok_or_else(|| ReplayError::BadValue {
                key: "evt.time".into(),
                message: "must be integer nanoseconds".into(),
            })?),
            Some(Json::String(s)) => Some(
                EventTime::parse_rfc3339(s)
                    .map_err(|e| ReplayError::BadValue {
                        key: "evt.time".into(),
                        message: e.to_string(),
                    })?
                    .unix_nanos(),
            ),
            Some(_) => {
                return Err(ReplayError::BadValue {
                    key: "evt.time".into(),
                    message: "must be nanoseconds or RFC 3339".into(),
                })
            }
        };
        Ok(JsonEvent {
            fields,
            event_type,
            time_ns,
        })
    }

    fn lookup(&self, key: &str) -> Option<&Json> {
        self.fields.get(key).filter(|v| !v.is_null())
    }
}

fn to_val(v: &Json) -> Option<Val<'_>> {
    Some(match v {
        Json::String(s) => Val::Str(Cow::Borrowed(s)),
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Str(Cow::Owned(n.to_string())),
        },
        _ => return None,
    })
}

fn extracted(v: &Json) -> Extracted<'_> {
    match v {
        Json::Null => Extracted::Missing,
        Json::Array(items) => Extracted::Many(items.iter().filter_map(to_val).collect()),
        other => to_val(other).map_or(Extracted::Missing, Extracted::One),
    }
}

impl Event for JsonEvent {
    fn event_type(&self) -> Option<usize> {
        self.event_type
    }

    fn extract(&self, field: &ResolvedField) -> Extracted<'_> {
        let name = field.info().name;
        // The parsed time, whatever form the line gave it in.
        if name == "evt.time" && field.arg == FieldArg::None {
            return self.time(Val::Int);
        }
        match self.written(name, &field.arg) {
            Some(v) => extracted(v),
            None => self.derived(name, &field.arg),
        }
    }
}

/// Ancestor fields, with the keys that stand in for their level 0 (the process itself) and
/// level 1 (its parent) when the indexed key is not given. `proc.acmdline[0]` has no stand-in.
const ANCESTORS: [(&str, Option<&str>, &str); 4] = [
    ("proc.aname", Some("proc.name"), "proc.pname"),
    ("proc.aexe", Some("proc.exe"), "proc.pexe"),
    ("proc.aexepath", Some("proc.exepath"), "proc.pexepath"),
    ("proc.acmdline", None, "proc.pcmdline"),
];

impl JsonEvent {
    /// The value under the key a rule would write for the field: `name`, `name[arg]`, or
    /// `evt.arg.NAME` (also accepted as `evt.arg[NAME]`).
    fn written(&self, name: &str, arg: &FieldArg) -> Option<&Json> {
        match arg {
            FieldArg::None => self.lookup(name),
            FieldArg::Index(i) => self.lookup(&format!("{name}[{i}]")),
            FieldArg::Key(k) => self
                .lookup(&format!("{name}.{k}"))
                .or_else(|| self.lookup(&format!("{name}[{k}]"))),
        }
    }

    /// A field the line does not give, derived from what it does, so that replay files need
    /// not repeat themselves: the time in its other forms, the source, and ancestors from the
    /// process's and its parent's own keys.
    fn derived(&self, name: &str, arg: &FieldArg) -> Extracted<'_> {
        match (name, arg) {
            ("evt.source", FieldArg::None) => Extracted::One(Val::Str(Cow::Borrowed("syscall"))),
            ("evt.time.iso8601", _) => self.time(|ns| Val::Str(Cow::Owned(output::iso8601(ns)))),
            ("evt.time.s" | "evt.datetime", _) => {
                self.time(|ns| Val::Str(Cow::Owned(EventTime::from_unix_nanos(ns).to_string())))
            }
            ("evt.rawtime", _) => self.time(Val::Int),
            _ => self.ancestor(name, arg),
        }
    }

    /// `proc.aname[0]`, `proc.aname[1]` from their stand-ins, `proc.aname` as every ancestor.
    fn ancestor(&self, name: &str, arg: &FieldArg) -> Extracted<'_> {
        let Some(&(_, own, parent)) = ANCESTORS.iter().find(|(n, ..)| *n == name) else {
            return Extracted::Missing;
        };
        let key = match arg {
            FieldArg::None => return self.ancestors(name, parent),
            FieldArg::Index(0) => own,
            FieldArg::Index(1) => Some(parent),
            _ => None,
        };
        key.and_then(|k| self.lookup(k))
            .map_or(Extracted::Missing, extracted)
    }

    /// Every ancestor from the parent up: `name[1]` (or the parent's own key), `name[2]`, ...
    /// up to the first level the line does not give.
    fn ancestors(&self, name: &str, parent: &str) -> Extracted<'_> {
        let mut values = Vec::new();
        for level in 1.. {
            let v = self.lookup(&format!("{name}[{level}]")).or_else(|| {
                if level == 1 {
                    self.lookup(parent)
                } else {
                    None
                }
            });
            match v.and_then(to_val) {
                Some(v) => values.push(v),
                None => break,
            }
        }
        if values.is_empty() {
            Extracted::Missing
        } else {
            Extracted::Many(values)
        }
    }

    /// The event's time as `val` makes it, missing when the line has none.
    fn time(&self, val: impl Fn(i64) -> Val<'static>) -> Extracted<'_> {
        self.time_ns
            .map_or(Extracted::Missing, |ns| Extracted::One(val(ns)))
    }
}
