//! A Gotify server's `POST /message`: the created message as JSON; errors as
//! `{"error", "errorCode", "errorDescription"}` (401 without the application's token in
//! `X-Gotify-Key` or `?token=`, 400 for a body it refuses). Gotify has no rate limit of its own;
//! tests force a proxy's 429.
//!
//! Checks: `message` required; `title` a string; `priority` an integer; `extras` an object
//! whose keys are namespaced (`client::display`).

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply, Request};

pub struct Gotify {
    token: String,
}

/// A server whose one application has `token`.
pub async fn start(token: &str) -> FakeService {
    FakeService::start(Gotify {
        token: token.to_string(),
    })
    .await
}

/// Gotify's error body.
pub fn error(code: u16, description: &str) -> Reply {
    let name = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    let body = json!({"error": name, "errorCode": code, "errorDescription": description});
    Reply::new(code, body.to_string()).header("content-type", "application/json")
}

impl Api for Gotify {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        None
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: usize::MAX,
            window: std::time::Duration::from_secs(1),
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "")
    }

    fn answer(&self, _method: &Method, _path: &str, _headers: &HeaderMap, _body: &[u8]) -> Reply {
        unreachable!("Gotify reads the query: answer_query")
    }

    fn answer_query(&self, r: &Request<'_>) -> Reply {
        if r.path != "/message" {
            return error(404, "page not found");
        }
        let header = r
            .headers
            .get("x-gotify-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if header.or_else(|| r.param("token")).as_deref() != Some(self.token.as_str()) {
            return error(
                401,
                "you need to provide a valid access token or user credentials to access this api",
            );
        }
        if r.method != Method::POST {
            return error(404, "page not found");
        }
        let m = match check::object(r.body) {
            Ok(m) => m,
            Err(e) => return error(400, &e),
        };
        match validate(&m) {
            Ok(()) => {
                let created = json!({"id": 25, "appid": 5, "message": m["message"], "title": m["title"], "priority": m["priority"], "extras": m["extras"], "date": "2026-06-12T09:23:10Z"});
                Reply::new(200, created.to_string()).header("content-type", "application/json")
            }
            Err(e) => error(400, &e),
        }
    }
}

fn validate(m: &Value) -> Result<(), String> {
    if check::text(m, "/message")?.is_none_or(str::is_empty) {
        return Err("Field 'message' is required".into());
    }
    check::text(m, "/title")?;
    if m.get("priority").is_some_and(|p| !p.is_i64()) {
        return Err("Field 'priority' must be an integer".into());
    }
    match m.get("extras") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(extras)) if extras.keys().all(|k| k.split("::").count() >= 2) => Ok(()),
        Some(_) => Err("Field 'extras' must be an object of namespaced keys".into()),
    }
}
