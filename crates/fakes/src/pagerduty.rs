//! PagerDuty Events API v2: `POST /v2/enqueue`, 202 on success, 400 with an `errors` list,
//! 429 over 120 events a minute per routing key.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

pub struct PagerDuty;

pub async fn start() -> FakeService {
    FakeService::start(PagerDuty).await
}

/// PagerDuty's 429.
pub fn rate_limited() -> Reply {
    Reply::new(429, "").header("content-type", "application/json")
}

impl Api for PagerDuty {
    fn rate_key(&self, _path: &str, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        v["routing_key"].as_str().map(str::to_string)
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: 120,
            window: Duration::from_secs(60),
        }
    }

    fn rate_limited(&self) -> Reply {
        rate_limited()
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if path != "/v2/enqueue" || method != Method::POST {
            return Reply::new(404, "");
        }
        let Ok(event) = serde_json::from_slice::<Value>(body) else {
            return invalid(vec!["Malformed JSON".to_string()]);
        };
        let errors = check(&event);
        if !errors.is_empty() {
            return invalid(errors);
        }
        let key = event["dedup_key"]
            .as_str()
            .map_or_else(|| "generated-key".to_string(), str::to_string);
        Reply::new(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": key})
                .to_string(),
        )
        .header("content-type", "application/json")
    }
}

fn invalid(errors: Vec<String>) -> Reply {
    Reply::new(
        400,
        json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
            .to_string(),
    )
    .header("content-type", "application/json")
}

fn check(e: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    match e["routing_key"].as_str() {
        Some(k) if k.len() == 32 => {}
        Some(_) => errors
            .push("Length of 'routing_key' is incorrect (should be 32 characters)".to_string()),
        None => errors.push("'routing_key' is missing or blank".to_string()),
    }
    let action = e["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')".to_string());
    }
    if let Some(key) = e.get("dedup_key") {
        match key.as_str() {
            Some(k) if !k.is_empty() && k.chars().count() <= 255 => {}
            _ => errors.push("'dedup_key' must be a string of at most 255 characters".to_string()),
        }
    } else if action != "trigger" {
        errors.push("'dedup_key' is required for acknowledge and resolve".to_string());
    }
    if action == "trigger" {
        let p = &e["payload"];
        match p["summary"].as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
            Some(s) if !s.is_empty() => errors
                .push("'payload.summary' is too long (maximum is 1024 characters)".to_string()),
            _ => errors.push("'payload.summary' is missing or blank".to_string()),
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            errors.push("'payload.source' is missing or blank".to_string());
        }
        if !p["severity"]
            .as_str()
            .is_some_and(|s| ["critical", "error", "warning", "info"].contains(&s))
        {
            errors.push("'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')".to_string());
        }
        if let Some(t) = p.get("timestamp") {
            let ok = t.as_str().is_some_and(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            });
            if !ok {
                errors.push("'payload.timestamp' is not a valid ISO 8601 timestamp".to_string());
            }
        }
        if let Some(d) = p.get("custom_details") {
            if !d.is_object() {
                errors.push("'payload.custom_details' must be an object".to_string());
            }
        }
    }
    if serde_json::to_vec(e).map_or(0, |b| b.len()) > 512 * 1024 {
        errors.push("Event is larger than 512 KB".to_string());
    }
    errors
}
