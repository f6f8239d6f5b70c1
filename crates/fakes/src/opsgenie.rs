//! Opsgenie's Alert API, `POST /v2/alerts` with `Authorization: GenieKey {key}`: 202
//! `{"result": "Request will be processed", "took", "requestId"}`; 401 `Could not
//! authenticate`; 422 `Request body is not processable…` with per-field `errors`; over the
//! limit (plan-dependent; 10 a second here) 429 with `X-RateLimit-State: THROTTLED`.
//!
//! Checks (the API's field limits): `message` required, at most 130 characters; `alias`,
//! `entity` 512; `description` 15 000; `source` 100; `user` 100; `note` 25 000; at most 20
//! tags of 50; `details` string values, at most 8 000 characters in all; `priority` P1 to P5;
//! responders with a known `type` and an `id`, `name` or `username`.

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply};

pub struct Opsgenie {
    key: String,
}

/// An account whose API integration has `key`.
pub async fn start(key: &str) -> FakeService {
    FakeService::start(Opsgenie {
        key: key.to_string(),
    })
    .await
}

fn answer(status: u16, body: Value) -> Reply {
    let mut body = body;
    body["took"] = json!(0.011);
    body["requestId"] = json!("43a29c5c-3dbf-4fa4-9c26-f4f71023e120");
    Reply::new(status, body.to_string()).header("content-type", "application/json")
}

/// A 422 naming the field at fault.
pub fn unprocessable(field: &str, problem: &str) -> Reply {
    answer(
        422,
        json!({"message": "Request body is not processable. Please check the errors.", "errors": {field: problem}}),
    )
}

impl Api for Opsgenie {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        Some("domain".into())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 10.0,
            burst: 10.0,
            slack: 0.0,
        }
    }

    fn rate_limited(&self) -> Reply {
        answer(429, json!({"message": "You are making too many requests! To avoid errors, we recommend you limit requests."}))
            .header("x-ratelimit-state", "THROTTLED")
            .header("x-ratelimit-period-in-sec", "60")
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if path != "/v2/alerts" || method != Method::POST {
            return answer(404, json!({"message": "No handler found for the request."}));
        }
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("GenieKey {}", self.key)) {
            return answer(401, json!({"message": "Could not authenticate"}));
        }
        let m = match check::object(body) {
            Ok(m) => m,
            Err(e) => return unprocessable("body", &e),
        };
        match validate(&m) {
            Ok(()) => answer(202, json!({"result": "Request will be processed"})),
            Err((field, problem)) => unprocessable(field, &problem),
        }
    }
}

fn validate(m: &Value) -> Result<(), (&'static str, String)> {
    if check::text(m, "/message")
        .ok()
        .flatten()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(("message", "Message can not be empty.".into()));
    }
    let limits = [
        ("message", 130),
        ("alias", 512),
        ("entity", 512),
        ("description", 15_000),
        ("source", 100),
        ("user", 100),
        ("note", 25_000),
    ];
    for (field, max) in limits {
        check::at_most(m, &format!("/{field}"), max).map_err(|_| {
            (
                field,
                format!(
                    "{} can not be longer than {max} characters.",
                    capitalised(field)
                ),
            )
        })?;
    }
    let tags = check::array(m, "/tags", 20)
        .map_err(|_| ("tags", "Tags can not be more than 20.".to_string()))?;
    if tags
        .iter()
        .any(|t| t.as_str().is_none_or(|t| t.chars().count() > 50))
    {
        return Err((
            "tags",
            "Each tag can not be longer than 50 characters.".into(),
        ));
    }
    details(m)?;
    if let Some(p) = m.get("priority") {
        if !["P1", "P2", "P3", "P4", "P5"].iter().any(|x| p == x) {
            return Err((
                "priority",
                "Priority should be one of [P1, P2, P3, P4, P5].".into(),
            ));
        }
    }
    responders(m)
}

fn details(m: &Value) -> Result<(), (&'static str, String)> {
    let Some(details) = m.get("details") else {
        return Ok(());
    };
    let Some(details) = details.as_object() else {
        return Err(("details", "Details should be a map of strings.".into()));
    };
    let mut size = 0;
    for (k, v) in details {
        let v = v
            .as_str()
            .ok_or(("details", "Details should be a map of strings.".to_string()))?;
        size += k.chars().count() + v.chars().count();
    }
    if size > 8000 {
        return Err((
            "details",
            "Details can not be longer than 8000 characters in total.".into(),
        ));
    }
    Ok(())
}

fn responders(m: &Value) -> Result<(), (&'static str, String)> {
    let list = check::array(m, "/responders", 50).map_err(|e| ("responders", e))?;
    for r in list {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if !["team", "user", "escalation", "schedule"].contains(&kind) {
            return Err((
                "responders",
                format!("Responder type '{kind}' is not valid."),
            ));
        }
        if ["id", "name", "username"]
            .iter()
            .all(|k| r.get(k).is_none())
        {
            return Err((
                "responders",
                "Responder should have an id, a name or a username.".into(),
            ));
        }
    }
    Ok(())
}

fn capitalised(field: &str) -> String {
    let mut c = field.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
