//! Mattermost's incoming webhooks (`POST /hooks/{id}`, a 26-character id): `200 ok`; errors as
//! Mattermost's `{"id", "message", "detailed_error", "request_id", "status_code"}`; its rate
//! limiter (the `throttled` library) answers 429 `limit exceeded` with `Retry-After` and
//! `X-RateLimit-*` headers. Limited here to 10 a second per webhook (the server's default).
//!
//! Checks: the body has `text` or `attachments`; a text or an attachment's text at most 16 383
//! characters; `color` a `#rrggbb` or named colour; `fields` with `title` and `value`.

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check::{self, Problem};
use crate::server::{Api, FakeService, Reply};

pub struct Mattermost;

pub async fn start() -> FakeService {
    FakeService::start(Mattermost).await
}

/// Mattermost's error body.
pub fn error(status: u16, id: &str, message: &str) -> Reply {
    let body = json!({"id": id, "message": message, "detailed_error": "", "request_id": "pq7c8m3a5jbz3k1w9xq4r6y8te", "status_code": status});
    Reply::new(status, body.to_string()).header("content-type", "application/json")
}

impl Api for Mattermost {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 10.0,
            burst: 10.0,
            slack: 0.01,
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "limit exceeded\n")
            .header("content-type", "text/plain; charset=utf-8")
            .header("retry-after", "1")
            .header("x-ratelimit-limit", "10")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "1")
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        let id = path.strip_prefix("/hooks/").unwrap_or("");
        if id.len() != 26
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return error(
                400,
                "web.incoming_webhook.invalid.app_error",
                "Invalid webhook.",
            );
        }
        if method != Method::POST {
            return error(405, "api.context.method_not_allowed", "Method not allowed.");
        }
        let post = match check::object(body) {
            Ok(p) => p,
            Err(_) => {
                return error(
                    400,
                    "api.webhook.incoming.error",
                    "Could not decode the multipart payload of incoming webhook.",
                )
            }
        };
        match validate(&post) {
            Ok(()) => Reply::new(200, "ok").header("content-type", "text/plain"),
            Err((id, message)) => {
                let mut reply = error(400, id, &message);
                reply.problems.push(message);
                reply
            }
        }
    }
}

fn validate(post: &Value) -> Result<(), (&'static str, Problem)> {
    let attachments = check::array(post, "/attachments", 100)
        .map_err(|p| ("model.incoming_hook.attachments.app_error", p))?;
    if check::text(post, "/text")
        .ok()
        .flatten()
        .is_none_or(str::is_empty)
        && attachments.is_empty()
    {
        return Err((
            "web.incoming_webhook.text.app_error",
            "No text specified".into(),
        ));
    }
    let too_long = "web.incoming_webhook.split_props_length.app_error";
    check::at_most(post, "/text", 16_383).map_err(|p| (too_long, p))?;
    for i in 0..attachments.len() {
        check::at_most(post, &format!("/attachments/{i}/text"), 16_383)
            .map_err(|p| (too_long, p))?;
        if let Some(color) = check::text(post, &format!("/attachments/{i}/color"))
            .ok()
            .flatten()
        {
            let hex = color
                .strip_prefix('#')
                .is_some_and(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !hex && !["good", "warning", "danger"].contains(&color) {
                return Err((
                    "model.post.attachments.color",
                    format!("/attachments/{i}/color: not a colour"),
                ));
            }
        }
    }
    Ok(())
}
