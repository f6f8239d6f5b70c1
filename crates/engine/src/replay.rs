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
        if name == "evt.time" && field.arg == FieldArg::None {
            return self
                .time_ns
                .map_or(Extracted::Missing, |ns| Extracted::One(Val::Int(ns)));
        }
        // The reference as rules write it: `name`, `name[arg]`, or `evt.arg.NAME`.
        let direct = match &field.arg {
            FieldArg::None => self.lookup(name),
            FieldArg::Index(i) => self.lookup(&format!("{name}[{i}]")),
            FieldArg::Key(k) => self
                .lookup(&format!("{name}.{k}"))
                .or_else(|| self.lookup(&format!("{name}[{k}]"))),
        };
        if let Some(v) = direct {
            return extracted(v);
        }
        match (name, &field.arg) {
            ("evt.source", FieldArg::None) => Extracted::One(Val::Str(Cow::Borrowed("syscall"))),
            ("evt.time", FieldArg::None) => self
                .time_ns
                .map_or(Extracted::Missing, |ns| Extracted::One(Val::Int(ns))),
            ("evt.time.iso8601", _) => self.time_ns.map_or(Extracted::Missing, |ns| {
                Extracted::One(Val::Str(Cow::Owned(output::iso8601(ns))))
            }),
            ("evt.time.s", _) | ("evt.datetime", _) => {
                self.time_ns.map_or(Extracted::Missing, |ns| {
                    Extracted::One(Val::Str(Cow::Owned(
                        EventTime::from_unix_nanos(ns).to_string(),
                    )))
                })
            }
            ("evt.rawtime", _) => self
                .time_ns
                .map_or(Extracted::Missing, |ns| Extracted::One(Val::Int(ns))),
            // Level 0 is the process itself, level 1 its parent.
            ("proc.aname", FieldArg::Index(0)) => self
                .lookup("proc.name")
                .map_or(Extracted::Missing, extracted),
            ("proc.aname", FieldArg::Index(1)) => self
                .lookup("proc.pname")
                .map_or(Extracted::Missing, extracted),
            ("proc.aexe", FieldArg::Index(0)) => self
                .lookup("proc.exe")
                .map_or(Extracted::Missing, extracted),
            ("proc.aexe", FieldArg::Index(1)) => self
                .lookup("proc.pexe")
                .map_or(Extracted::Missing, extracted),
            ("proc.aexepath", FieldArg::Index(0)) => self
                .lookup("proc.exepath")
                .map_or(Extracted::Missing, extracted),
            ("proc.aexepath", FieldArg::Index(1)) => self
                .lookup("proc.pexepath")
                .map_or(Extracted::Missing, extracted),
            ("proc.acmdline", FieldArg::Index(1)) => self
                .lookup("proc.pcmdline")
                .map_or(Extracted::Missing, extracted),
            ("proc.aname" | "proc.aexe" | "proc.aexepath" | "proc.acmdline", FieldArg::None) => {
                // Every ancestor, from the parent up, from the indexed keys given.
                let (first, prefix) = match name {
                    "proc.aname" => ("proc.pname", "proc.aname"),
                    "proc.aexe" => ("proc.pexe", "proc.aexe"),
                    "proc.aexepath" => ("proc.pexepath", "proc.aexepath"),
                    _ => ("proc.pcmdline", "proc.acmdline"),
                };
                let mut values = Vec::new();
                let mut level = 1;
                loop {
                    let v = self.lookup(&format!("{prefix}[{level}]")).or_else(|| {
                        if level == 1 {
                            self.lookup(first)
                        } else {
                            None
                        }
                    });
                    match v.and_then(to_val) {
                        Some(v) => values.push(v),
                        None => break,
                    }
                    level += 1;
                }
                if values.is_empty() {
                    Extracted::Missing
                } else {
                    Extracted::Many(values)
                }
            }
            _ => Extracted::Missing,
        }
    }
}
