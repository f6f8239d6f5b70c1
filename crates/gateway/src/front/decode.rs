//! Turning a request body into validated alerts: one JSON object, a JSON array, or NDJSON.
//!
//! All or nothing: the first bad alert rejects the whole body, with its place (`[3]`, `line 4`)
//! and field in the message, so a sender never has to guess which part was stored.

use peregrine_engine::alert::AlertErrorKind;
use peregrine_engine::raw_alert::RawAlert;
use peregrine_engine::Alert;
use serde_json::value::RawValue;
use serde_json::Value;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub message: String,
    /// A bounded word for the `reason` metrics label.
    pub reason: &'static str,
}

fn malformed(place: &str, e: serde_json::Error) -> BodyError {
    BodyError {
        message: format!("{place}malformed JSON: {e}"),
        reason: "malformed_json",
    }
}

/// Where an alert sat in the body: `("[3]", ".")` in an array, `("line 4", ": ")` in NDJSON.
type Place<'a> = Option<(&'a str, &'a str)>;

fn invalid(place: Place<'_>, e: peregrine_engine::AlertError) -> BodyError {
    let whole = e.kind == AlertErrorKind::NotAnObject;
    let message = match (place, whole) {
        (None, true) => e.message,
        (None, false) => e.to_string(),
        (Some((at, _)), true) => format!("{at}: {}", e.message),
        (Some((at, joiner)), false) => format!("{at}{joiner}{e}"),
    };
    BodyError {
        message,
        reason: e.kind.as_str(),
    }
}

/// Checks a valid body's alerts in place (see [`RawAlert`]); `None` when any alert is not
/// valid, and then [`decode`] says which and why (or, for a body that is not UTF-8 throughout,
/// decodes it in full).
fn decode_raw(body: &[u8], ndjson: bool) -> Option<Vec<RawAlert<'_>>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    if ndjson {
        return body
            .split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(|b| b.is_ascii_whitespace()))
            .map(RawAlert::parse)
            .collect();
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<&RawValue>>(body)
            .ok()?
            .into_iter()
            .map(|item| RawAlert::parse_str(item.get()))
            .collect(),
        _ => RawAlert::parse(body).map(|a| vec![a]),
    }
}

/// A valid body's alerts, in the form the intake stores them.
pub enum ForSpool<'b> {
    /// Checked in place, to be stored as sent ([`Intake::store_raw`](crate::intake::Intake::store_raw)).
    AsSent(Vec<RawAlert<'b>>),
    /// Decoded in full, for custom fields to be merged.
    Decoded(Vec<Alert>),
}

/// Checks a body (a request's or a Kafka message's) for the spool: in place when the intake
/// stores alerts as sent (`as_sent`), else in full. A refused body is explained by the full
/// decoder either way.
pub fn for_spool(body: &[u8], ndjson: bool, as_sent: bool) -> Result<ForSpool<'_>, BodyError> {
    if as_sent {
        if let Some(alerts) = decode_raw(body, ndjson) {
            return Ok(ForSpool::AsSent(alerts));
        }
    }
    decode(body, ndjson).map(ForSpool::Decoded)
}

/// Decodes a body. `ndjson` is chosen by the request's content type.
pub fn decode(body: &[u8], ndjson: bool) -> Result<Vec<Alert>, BodyError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(BodyError {
            message: "empty body: send a Falco alert, a JSON array of alerts, or NDJSON".into(),
            reason: "empty_body",
        });
    }
    if ndjson {
        let mut alerts = Vec::new();
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if let Some(alert) = Alert::from_json_slice_fast(line) {
                alerts.push(alert);
                continue;
            }
            let at = format!("line {}", i + 1);
            let value: Value =
                serde_json::from_slice(line).map_err(|e| malformed(&format!("{at}: "), e))?;
            alerts.push(Alert::from_json(value).map_err(|e| invalid(Some((&at, ": ")), e))?);
        }
        return Ok(alerts);
    }
    // Valid bodies take the typed fast path; the slow one below only explains what is wrong.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let fast = match first {
        Some(b'[') => Alert::from_json_array_slice_fast(body),
        _ => Alert::from_json_slice_fast(body).map(|a| vec![a]),
    };
    if let Some(alerts) = fast {
        return Ok(alerts);
    }
    match serde_json::from_slice::<Value>(body).map_err(|e| malformed("", e))? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                Alert::from_json(v).map_err(|e| invalid(Some((&format!("[{i}]"), ".")), e))
            })
            .collect(),
        value => Ok(vec![Alert::from_json(value).map_err(|e| invalid(None, e))?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str =
        r#"{"rule":"r","priority":"Warning","time":"2026-01-01T00:00:00Z","output":"o"}"#;

    #[test]
    fn one_many_and_ndjson() {
        assert_eq!(decode(ONE.as_bytes(), false).unwrap().len(), 1);
        assert_eq!(
            decode(format!("[{ONE},{ONE}]").as_bytes(), false)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            decode(format!("{ONE}\n\n{ONE}\n").as_bytes(), true)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(decode(b"[]", false).unwrap().len(), 0);
    }

    #[test]
    fn the_in_place_check_takes_exactly_the_bodies_decode_takes() {
        let bad = r#"{"rule":"r","priority":"Urgent","time":"2026-01-01T00:00:00Z"}"#;
        let nested = r#"{"rule":"r","priority":"Warning","time":"2026-01-01T00:00:00Z","output_fields":{"a":[1]}}"#;
        for (body, ndjson) in [
            (ONE.to_string(), false),
            (format!("[{ONE},{ONE}]"), false),
            (format!(" [ {ONE} ] "), false),
            ("[]".to_string(), false),
            (format!("{ONE}\n\n{ONE}\n"), true),
            (format!("{ONE}\n{bad}"), true),
            (format!("[{ONE},{bad}]"), false),
            (format!("[{ONE},{nested}]"), false),
            (format!("[{ONE}, 42]"), false),
            ("  \n".to_string(), true),
            ("  \n".to_string(), false),
            ("42".to_string(), false),
            ("{\"rule\": ".to_string(), false),
        ] {
            let raw = decode_raw(body.as_bytes(), ndjson).map(|a| a.len());
            let full = decode(body.as_bytes(), ndjson).ok().map(|a| a.len());
            assert_eq!(raw, full, "{body:?} (ndjson: {ndjson})");
        }
    }

    #[test]
    fn errors_say_where() {
        let bad = r#"{"rule":"r","priority":"Urgent","time":"2026-01-01T00:00:00Z"}"#;
        let e = decode(format!("[{ONE},{bad}]").as_bytes(), false).unwrap_err();
        assert!(
            e.message
                .starts_with("[1].priority: unknown priority 'Urgent'"),
            "{}",
            e.message
        );
        assert_eq!(e.reason, "unknown_priority");
        let e = decode(format!("{ONE}\n{{nope").as_bytes(), true).unwrap_err();
        assert!(
            e.message.starts_with("line 2: malformed JSON"),
            "{}",
            e.message
        );
        let e = decode(b"{\"rule\": ", false).unwrap_err();
        assert_eq!(e.reason, "malformed_json");
        assert_eq!(decode(b"  \n", false).unwrap_err().reason, "empty_body");
        let e = decode(b"42", false).unwrap_err();
        assert_eq!(
            (e.reason, e.message.as_str()),
            ("not_an_object", "expected a JSON object, got a number")
        );
        let e = decode(format!("[{ONE}, 42]").as_bytes(), false).unwrap_err();
        assert_eq!(e.message, "[1]: expected a JSON object, got a number");
    }
}
