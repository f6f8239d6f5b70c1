//! falcosidekick-ui's ingest: `POST /api/v1/` (and `POST /` for older Falcosidekicks) with
//! `{"event": FALCO_PAYLOAD, "outputs": [NAME, …]}`, checked as its models validate it (the uuid a
//! UUID; output required ASCII; priority and rule required printable ASCII; source and hostname
//! printable ASCII; time an RFC 3339 timestamp; outputs required), answering 200 `"{}"`, or 400
//! with echo's `{"message": …}`. POSTs need no credentials there, as here.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

pub struct SidekickUi;

pub async fn start() -> FakeService {
    FakeService::start(SidekickUi).await
}

fn bad_request(message: &str) -> Reply {
    Reply::new(400, json!({ "message": message }).to_string())
        .header("content-type", "application/json")
}

impl Api for SidekickUi {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        None
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: usize::MAX,
            window: Duration::from_secs(1),
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "")
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST || !matches!(path, "/" | "/api/v1/" | "/api/v1/events/add") {
            return Reply::new(404, r#"{"message":"Not Found"}"#);
        }
        let payload: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad_request(&format!("Syntax error: {e}")),
        };
        match validate(&payload) {
            Ok(()) => Reply::new(200, "\"{}\"").header("content-type", "application/json"),
            Err(field) => bad_request(&format!(
                "Key: 'Payload.{field}' Error:Field validation for '{}' failed",
                field.rsplit('.').next().unwrap_or(field)
            )),
        }
    }
}

/// The first field that fails falcosidekick-ui's `validate` tags, by its model path.
fn validate(payload: &Value) -> Result<(), &'static str> {
    let event = payload
        .get("event")
        .filter(|e| e.is_object())
        .ok_or("Event")?;
    if !payload.get("outputs").is_some_and(Value::is_array) {
        return Err("Outputs");
    }
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    let ascii = |s: &str| s.is_ascii();
    let printable = |s: &str| s.bytes().all(|b| (b' '..=b'~').contains(&b));
    if !text("uuid").is_some_and(is_uuid) {
        return Err("Event.UUID");
    }
    if !text("output").is_some_and(|s| !s.is_empty() && ascii(s)) {
        return Err("Event.Output");
    }
    if !text("priority").is_some_and(|s| !s.is_empty() && printable(s)) {
        return Err("Event.Priority");
    }
    if !text("rule").is_some_and(|s| !s.is_empty() && printable(s)) {
        return Err("Event.Rule");
    }
    let time_ok = text("time").is_some_and(|t| time::OffsetDateTime::parse(t, &Rfc3339).is_ok());
    if !time_ok {
        return Err("Event.Time");
    }
    for (key, field) in [("source", "Event.Source"), ("hostname", "Event.Hostname")] {
        if !text(key).is_none_or(printable) {
            return Err(field);
        }
    }
    Ok(())
}

/// 8-4-4-4-12 hexadecimal digits, as the `uuid` validator wants.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
