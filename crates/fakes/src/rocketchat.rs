//! Rocket.Chat's incoming webhooks (`POST /hooks/{id}/{token}`): `{"success": true}`; errors as
//! `{"success": false, "error": …}`; the REST rate limiter's default of 10 calls a minute per
//! endpoint, over which it answers 429 with `X-RateLimit-*` headers and the wait only in the
//! error's words.
//!
//! Checks: the body has `text` or `attachments`; the text and each attachment's text at most
//! 5 000 characters (`Message_MaxAllowedSize`); `attachments` an array of objects.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply};

pub struct RocketChat;

pub async fn start() -> FakeService {
    FakeService::start(RocketChat).await
}

/// Rocket.Chat's error body.
pub fn error(status: u16, error: &str) -> Reply {
    Reply::new(
        status,
        json!({"success": false, "error": error}).to_string(),
    )
    .header("content-type", "application/json")
}

impl Api for RocketChat {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        Some("/hooks".to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: 10,
            window: Duration::from_secs(60),
        }
    }

    fn rate_limited(&self) -> Reply {
        error(429, "Error, too many requests. Please slow down. You must wait 55 seconds before trying this endpoint again. [error-too-many-requests]")
            .header("x-ratelimit-limit", "10")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "1781256245000")
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if !matches!(parts.as_slice(), ["hooks", id, token] if !id.is_empty() && !token.is_empty())
        {
            return error(404, "Invalid integration id or token provided.");
        }
        if method != Method::POST {
            return error(405, "Method not allowed");
        }
        let message = match check::object(body) {
            Ok(m) => m,
            Err(e) => return error(400, &e),
        };
        match validate(&message) {
            Ok(()) => {
                Reply::new(200, r#"{"success":true}"#).header("content-type", "application/json")
            }
            Err(e) => error(400, &e),
        }
    }
}

fn validate(m: &Value) -> Result<(), String> {
    let attachments = check::array(m, "/attachments", 100)?;
    if check::text(m, "/text")?.is_none_or(str::is_empty) && attachments.is_empty() {
        return Err("error-invalid-message: the message has no text".into());
    }
    let size_error = |_| "error-message-size-exceeded".to_string();
    check::at_most(m, "/text", 5000).map_err(size_error)?;
    for (i, a) in attachments.iter().enumerate() {
        if !a.is_object() {
            return Err(format!("/attachments/{i}: must be an object"));
        }
        check::at_most(m, &format!("/attachments/{i}/text"), 5000).map_err(size_error)?;
    }
    Ok(())
}
