//! A Grafana OnCall "Formatted webhook" integration
//! (`POST /integrations/v1/formatted_webhook/{token}/`): `200 Ok.`; an unknown token 403; a body
//! it cannot read 400; 300 alerts in 5 minutes per integration (OnCall's documented limit),
//! over which it answers 429. OnCall documents the status, not the body or a `Retry-After`: the
//! words and the 60 s `Retry-After` here are the fake's, and the output waits a second when a 429
//! names no wait.
//!
//! Checks: a JSON object; `title`, `message`, `alert_uid`, `link_to_upstream_details` and
//! `image_url` strings or null; `state` `alerting` or `ok`.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply};

pub struct OnCall {
    token: String,
}

/// An integration whose URL ends in `token`.
pub async fn start(token: &str) -> FakeService {
    FakeService::start(OnCall {
        token: token.to_string(),
    })
    .await
}

fn detail(status: u16, detail: &str) -> Reply {
    Reply::new(status, json!({"detail": detail}).to_string())
        .header("content-type", "application/json")
}

impl Api for OnCall {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: 300,
            window: Duration::from_secs(300),
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "Rate-limit has been reached. Please try again later.")
            .header("content-type", "text/html; charset=utf-8")
            .header("retry-after", "60")
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        let Some(token) = path
            .strip_prefix("/integrations/v1/formatted_webhook/")
            .map(|t| t.trim_end_matches('/'))
        else {
            return detail(404, "Not found.");
        };
        if token != self.token {
            return detail(
                403,
                "Integration key was not found. Integration could be deleted or renamed.",
            );
        }
        if method != Method::POST {
            return detail(405, "Method \"GET\" not allowed.");
        }
        let m = match check::object(body) {
            Ok(m) => m,
            Err(e) => return detail(400, &format!("JSON parse error - {e}")),
        };
        match validate(&m) {
            Ok(()) => Reply::new(200, "Ok.").header("content-type", "text/html; charset=utf-8"),
            Err(e) => detail(400, &e),
        }
    }
}

fn validate(m: &Value) -> Result<(), String> {
    for key in [
        "title",
        "message",
        "alert_uid",
        "link_to_upstream_details",
        "image_url",
    ] {
        check::text(m, &format!("/{key}"))?;
    }
    match m.get("state").and_then(Value::as_str) {
        None | Some("alerting") | Some("ok") => Ok(()),
        Some(other) => Err(format!("/state: '{other}' is not alerting or ok")),
    }
}
