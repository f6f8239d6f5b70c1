//! Discord's "Execute Webhook" (`POST /api/webhooks/{id}/{token}`): 204 without `?wait=true`,
//! 200 with the message with it; errors as `{"message", "code"}` (50006 empty message, 50035
//! invalid form body with the field's path, 10015 unknown webhook); 5 requests per 2 seconds per
//! webhook, and over it a 429 with `Retry-After` and the body's fractional `retry_after`.
//!
//! Checks (Discord's message and embed limits): `content` at most 2 000 characters; at most 10
//! embeds; a title at most 256, a description 4 096, a footer 2 048, at most 25 fields of
//! name 256 and value 1 024; all embeds together at most 6 000; `color` a 24-bit integer;
//! `username` at most 80 characters without "discord" or "clyde"; a message has content or an
//! embed.

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check::{self, Problem};
use crate::server::{Api, FakeService, Reply};

pub struct Discord;

pub async fn start() -> FakeService {
    FakeService::start(Discord).await
}

/// Discord's error body.
pub fn error(status: u16, code: u32, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"message": message, "code": code}).to_string(),
    )
    .header("content-type", "application/json")
}

/// A 429 as Discord sends it, asking to wait `seconds`.
pub fn rate_limited(seconds: f64) -> Reply {
    let body =
        json!({"message": "You are being rate limited.", "retry_after": seconds, "global": false});
    Reply::new(429, body.to_string())
        .header("content-type", "application/json")
        .header("retry-after", (seconds.ceil() as u64).to_string())
        .header("x-ratelimit-scope", "user")
}

impl Api for Discord {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 2.5,
            burst: 5.0,
            slack: 0.05,
        }
    }

    fn rate_limited(&self) -> Reply {
        rate_limited(0.4)
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if !matches!(segments.as_slice(), ["api", "webhooks", id, token] if !id.is_empty() && !token.is_empty())
        {
            return error(404, 10015, "Unknown Webhook");
        }
        if method != Method::POST {
            return error(405, 0, "405: Method Not Allowed");
        }
        let message = match check::object(body) {
            Ok(m) => m,
            Err(e) => {
                return error(
                    400,
                    50109,
                    &format!("The request body contains invalid JSON. ({e})"),
                )
            }
        };
        match validate(&message) {
            Ok(()) => Reply::new(204, ""),
            Err(problem) if problem == EMPTY => error(400, 50006, EMPTY),
            Err(problem) => {
                let mut reply = error(400, 50035, "Invalid Form Body");
                reply.problems.push(problem);
                reply
            }
        }
    }
}

const EMPTY: &str = "Cannot send an empty message";

fn validate(m: &Value) -> Result<(), Problem> {
    check::at_most(m, "/content", 2000)?;
    check::at_most(m, "/username", 80)?;
    if let Some(name) = check::text(m, "/username")? {
        let lower = name.to_lowercase();
        if lower.contains("discord") || lower.contains("clyde") {
            return Err("/username: Username cannot contain \"discord\" or \"clyde\"".into());
        }
    }
    let embeds = check::array(m, "/embeds", 10)?;
    let mut total = 0;
    for i in 0..embeds.len() {
        total += embed(m, &format!("/embeds/{i}"))?;
    }
    if total > 6000 {
        return Err(format!(
            "/embeds: Embed size exceeds maximum size of 6000 (got {total})"
        ));
    }
    if check::text(m, "/content")?.is_none_or(str::is_empty) && embeds.is_empty() {
        return Err(EMPTY.into());
    }
    Ok(())
}

/// Checks one embed and returns the characters it counts towards the 6 000.
fn embed(m: &Value, at: &str) -> Result<usize, Problem> {
    let limits = [
        ("title", 256),
        ("description", 4096),
        ("footer/text", 2048),
        ("author/name", 256),
    ];
    let mut size = 0;
    for (key, max) in limits {
        let pointer = format!("{at}/{key}");
        check::at_most(m, &pointer, max)?;
        size += check::text(m, &pointer)?.map_or(0, |s| s.chars().count());
    }
    if let Some(color) = m.pointer(&format!("{at}/color")) {
        if color.as_u64().is_none_or(|c| c > 0xFF_FFFF) {
            return Err(format!(
                "{at}/color: Int value should be less than or equal to 16777215."
            ));
        }
    }
    let fields = check::array(m, &format!("{at}/fields"), 25)?;
    for i in 0..fields.len() {
        for (key, max) in [("name", 256), ("value", 1024)] {
            let pointer = format!("{at}/fields/{i}/{key}");
            check::required(m, &pointer, max)?;
            size += check::text(m, &pointer)?.map_or(0, |s| s.chars().count());
        }
    }
    Ok(size)
}
