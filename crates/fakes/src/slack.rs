//! Slack incoming webhooks: `200 ok`, error words in 4xx bodies, one message per second.
//!
//! Checks (Block Kit reference): the body is a JSON object with `text`, `blocks` or
//! `attachments`; at most 50 blocks in the message and in each attachment, at most 100
//! attachments; a header's text is plain_text of at most 150 characters; a section's text at
//! most 3 000 characters, at most 10 fields of at most 2 000; a context at most 10 elements;
//! the top-level `text` at most 40 000 characters.

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

pub struct Slack {
    limit: Limit,
}

/// A Slack fake allowing one message a second per webhook (50 ms early still counts as on time).
pub async fn start() -> FakeService {
    start_with(Limit::Bucket {
        per_second: 1.0,
        burst: 1.0,
        slack: 0.05,
    })
    .await
}

pub async fn start_with(limit: Limit) -> FakeService {
    FakeService::start(Slack { limit }).await
}

/// Slack's answer for an error word.
pub fn error(status: u16, word: &str) -> Reply {
    Reply::new(status, word).header("content-type", "text/plain")
}

/// A 429 with `Retry-After`.
pub fn rate_limited(seconds: u64) -> Reply {
    Reply::new(429, r#"{"ok":false,"error":"rate_limited"}"#)
        .header("content-type", "application/json")
        .header("retry-after", seconds.to_string())
}

impl Api for Slack {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        self.limit
    }

    fn rate_limited(&self) -> Reply {
        rate_limited(1)
    }

    fn answer(&self, method: &Method, _path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST {
            return error(405, "invalid_payload");
        }
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(body) else {
            return error(400, "invalid_payload");
        };
        match check(&msg) {
            Ok(()) => Reply::new(200, "ok").header("content-type", "text/html"),
            Err(word) => error(400, word),
        }
    }
}

fn check(msg: &serde_json::Map<String, Value>) -> Result<(), &'static str> {
    let text = msg.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = msg.get("blocks").and_then(Value::as_array);
    let attachments = msg.get("attachments").and_then(Value::as_array);
    if text.trim().is_empty()
        && blocks.is_none_or(Vec::is_empty)
        && attachments.is_none_or(Vec::is_empty)
    {
        return Err("no_text");
    }
    if text.chars().count() > 40_000 {
        return Err("invalid_payload");
    }
    if let Some(blocks) = blocks {
        check_blocks(blocks)?;
    }
    if let Some(attachments) = attachments {
        if attachments.len() > 100 {
            return Err("too_many_attachments");
        }
        for a in attachments {
            if let Some(blocks) = a.get("blocks") {
                check_blocks(blocks.as_array().ok_or("invalid_payload")?)?;
            }
            if let Some(c) = a.get("color") {
                c.as_str().ok_or("invalid_payload")?;
            }
        }
    }
    Ok(())
}

fn check_blocks(blocks: &[Value]) -> Result<(), &'static str> {
    if blocks.len() > 50 {
        return Err("invalid_payload");
    }
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text" || text_len(&b["text"]) > 150 {
                    return Err("invalid_payload");
                }
            }
            Some("section") => {
                let has_text = b.get("text").is_some();
                let fields = b.get("fields").and_then(Value::as_array);
                if !has_text && fields.is_none() {
                    return Err("invalid_payload");
                }
                if has_text && (text_len(&b["text"]) == 0 || text_len(&b["text"]) > 3000) {
                    return Err("invalid_payload");
                }
                if let Some(fields) = fields {
                    if fields.is_empty()
                        || fields.len() > 10
                        || fields
                            .iter()
                            .any(|f| text_len(f) == 0 || text_len(f) > 2000)
                    {
                        return Err("invalid_payload");
                    }
                }
            }
            Some("context") => {
                let elements = b["elements"].as_array().ok_or("invalid_payload")?;
                if elements.is_empty()
                    || elements.len() > 10
                    || elements.iter().any(|e| text_len(e) > 3000)
                {
                    return Err("invalid_payload");
                }
            }
            Some("divider") => {}
            _ => return Err("invalid_payload"),
        }
    }
    Ok(())
}

/// The length of a text object's `text`, 0 when it is not one.
fn text_len(t: &Value) -> usize {
    match (t["type"].as_str(), t["text"].as_str()) {
        (Some("plain_text" | "mrkdwn"), Some(s)) => s.chars().count(),
        _ => 0,
    }
}
