//! Small checks the fakes share: where a value is, and whether it is within a service's limit.

use serde_json::Value;

/// The problem with a JSON body, named by the field's JSON pointer.
pub type Problem = String;

/// The characters of the string at `pointer`, if there is one; an error if it is not a string.
pub fn text<'a>(body: &'a Value, pointer: &str) -> Result<Option<&'a str>, Problem> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{pointer}: must be a string")),
    }
}

/// A string of at most `max` characters at `pointer`, if present.
pub fn at_most(body: &Value, pointer: &str, max: usize) -> Result<(), Problem> {
    match text(body, pointer)? {
        Some(s) if s.chars().count() > max => Err(format!(
            "{pointer}: must be {max} or fewer in length (got {})",
            s.chars().count()
        )),
        _ => Ok(()),
    }
}

/// A string of 1 to `max` characters at `pointer`.
pub fn required(body: &Value, pointer: &str, max: usize) -> Result<(), Problem> {
    match text(body, pointer)? {
        None | Some("") => Err(format!("{pointer}: is required")),
        Some(_) => at_most(body, pointer, max),
    }
}

/// The array at `pointer` (empty when absent), of at most `max` items.
pub fn array<'a>(body: &'a Value, pointer: &str, max: usize) -> Result<&'a [Value], Problem> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) if items.len() <= max => Ok(items),
        Some(Value::Array(items)) => Err(format!(
            "{pointer}: must be {max} or fewer in length (got {})",
            items.len()
        )),
        Some(_) => Err(format!("{pointer}: must be an array")),
    }
}

/// The body as a JSON object, or what is wrong with it.
pub fn object(body: &[u8]) -> Result<Value, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the body must be a JSON object".to_string()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}
