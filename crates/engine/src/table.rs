//! An event whose field values sit in a table indexed by field id: what a producer that knows
//! its fields up front (the sensor, benchmarks, tests) fills, so extraction is an array lookup.

use crate::eval::{Event, Extracted, Val};
use crate::fields::{FieldArg, FieldError, ResolvedField, FIELDS};

/// A table-backed event. Fields with an argument (`proc.aname[2]`, `evt.arg.flags`) are kept in
/// a short list, searched linearly: an event carries only a handful of them.
#[derive(Debug, Clone, Default)]
pub struct TableEvent<'a> {
    event_type: Option<usize>,
    plain: Vec<Option<Extracted<'a>>>,
    with_arg: Vec<(ResolvedField, Extracted<'a>)>,
}

impl<'a> TableEvent<'a> {
    pub fn new(event_type: Option<usize>) -> Self {
        TableEvent {
            event_type,
            plain: vec![None; FIELDS.len()],
            with_arg: Vec::new(),
        }
    }

    /// Sets a field by its reference as rules write it (`proc.name`, `proc.aname[2]`,
    /// `evt.arg.flags`).
    pub fn set(&mut self, reference: &str, value: Extracted<'a>) -> Result<(), FieldError> {
        let (name, arg) = match reference.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']'))),
            None => (reference, None),
        };
        let field = crate::fields::resolve(name, arg)?;
        self.set_field(field, value);
        Ok(())
    }

    pub fn set_field(&mut self, field: ResolvedField, value: Extracted<'a>) {
        if field.arg == FieldArg::None {
            self.plain[field.id.0 as usize] = Some(value);
        } else if let Some(slot) = self.with_arg.iter_mut().find(|(f, _)| *f == field) {
            slot.1 = value;
        } else {
            self.with_arg.push((field, value));
        }
    }

    /// Shorthand for a single string value.
    pub fn set_str(&mut self, reference: &str, value: &'a str) -> Result<(), FieldError> {
        self.set(
            reference,
            Extracted::One(Val::Str(std::borrow::Cow::Borrowed(value))),
        )
    }

    /// Shorthand for a single integer value.
    pub fn set_int(&mut self, reference: &str, value: i64) -> Result<(), FieldError> {
        self.set(reference, Extracted::One(Val::Int(value)))
    }

    /// Shorthand for a single boolean value.
    pub fn set_bool(&mut self, reference: &str, value: bool) -> Result<(), FieldError> {
        self.set(reference, Extracted::One(Val::Bool(value)))
    }
}

impl Event for TableEvent<'_> {
    fn event_type(&self) -> Option<usize> {
        self.event_type
    }

    fn extract(&self, field: &ResolvedField) -> Extracted<'_> {
        let found = if field.arg == FieldArg::None {
            self.plain[field.id.0 as usize].as_ref()
        } else {
            self.with_arg
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v)
        };
        match found {
            Some(Extracted::One(Val::Str(s))) => {
                Extracted::One(Val::Str(std::borrow::Cow::Borrowed(s.as_ref())))
            }
            Some(other) => other.clone(),
            None => Extracted::Missing,
        }
    }
}
