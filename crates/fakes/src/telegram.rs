//! Telegram's Bot API `sendMessage` (`POST /bot{token}/sendMessage`): `{"ok":true,"result":…}`,
//! errors as `{"ok":false,"error_code","description"}`, and a 429 whose wait is only in
//! `parameters.retry_after` (no `Retry-After` header). One message a second per chat.
//!
//! Checks: a well-formed token in the path (else 404), `chat_id` present, `text` of 1 to 4 096
//! characters after entity parsing, and with `parse_mode: HTML` the markup Telegram accepts:
//! only its tags (`b`, `strong`, `i`, `em`, `u`, `ins`, `s`, `strike`, `del`, `a`, `code`, `pre`,
//! `tg-spoiler`, `blockquote`, `span`), properly nested and closed, and only the entities `&lt;`,
//! `&gt;`, `&amp;`, `&quot;` and numeric ones; anything else is "can't parse entities".

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply};

pub struct Telegram;

pub async fn start() -> FakeService {
    FakeService::start(Telegram).await
}

/// Telegram's error body.
pub fn error(code: u16, description: &str) -> Reply {
    Reply::new(
        code,
        json!({"ok": false, "error_code": code, "description": description}).to_string(),
    )
    .header("content-type", "application/json")
}

/// A 429 as Telegram sends it.
pub fn rate_limited(seconds: u64) -> Reply {
    let body = json!({
        "ok": false, "error_code": 429,
        "description": format!("Too Many Requests: retry after {seconds}"),
        "parameters": {"retry_after": seconds}
    });
    Reply::new(429, body.to_string()).header("content-type", "application/json")
}

const TAGS: [&str; 15] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "blockquote",
    "span",
];

impl Api for Telegram {
    fn rate_key(&self, _path: &str, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        Some(v.get("chat_id")?.to_string().trim_matches('"').to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 1.0,
            burst: 1.0,
            slack: 0.05,
        }
    }

    fn rate_limited(&self) -> Reply {
        rate_limited(3)
    }

    fn answer(&self, method: &Method, path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        let token_ok = path
            .strip_prefix("/bot")
            .and_then(|p| p.strip_suffix("/sendMessage"))
            .and_then(|t| t.split_once(':'))
            .is_some_and(|(id, s)| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty()
            });
        if !token_ok {
            return error(404, "Not Found");
        }
        if method != Method::POST && method != Method::GET {
            return error(405, "Method Not Allowed");
        }
        let m = match check::object(body) {
            Ok(m) => m,
            Err(_) => return error(400, "Bad Request: message text is empty"),
        };
        match validate(&m) {
            Ok(text) => {
                let result = json!({"message_id": 1, "date": 1781256190, "chat": {"id": m["chat_id"]}, "text": text});
                Reply::new(200, json!({"ok": true, "result": result}).to_string())
                    .header("content-type", "application/json")
            }
            Err(description) => error(400, &description),
        }
    }
}

/// The text a reader sees, or Telegram's description of what is wrong.
fn validate(m: &Value) -> Result<String, String> {
    if m.get("chat_id").is_none_or(|c| c.is_null() || c == "") {
        return Err("Bad Request: chat_id is empty".into());
    }
    let text = m.get("text").and_then(Value::as_str).unwrap_or("");
    let shown = match m.get("parse_mode").and_then(Value::as_str) {
        Some("HTML") => parse_html(text)?,
        Some(other) if !other.is_empty() && other != "MarkdownV2" && other != "Markdown" => {
            return Err("Bad Request: unsupported parse_mode".into())
        }
        _ => text.to_string(),
    };
    match shown.trim().chars().count() {
        0 => Err("Bad Request: message text is empty".into()),
        n if n > 4096 => Err("Bad Request: message is too long".into()),
        _ => Ok(shown),
    }
}

/// Telegram's HTML: the text shown, or "can't parse entities" with what and where.
pub fn parse_html(text: &str) -> Result<String, String> {
    let fail = |what: String, at: usize| {
        Err(format!(
            "Bad Request: can't parse entities: {what} at byte offset {at}"
        ))
    };
    let mut shown = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('<') {
            let Some(end) = rest.find('>') else {
                return fail("Unclosed start tag".into(), i);
            };
            let tag = &rest[1..end];
            let (closing, name) = match tag.strip_prefix('/') {
                Some(n) => (true, n.trim()),
                None => (false, tag.split_whitespace().next().unwrap_or("")),
            };
            if !TAGS.contains(&name) {
                return fail(format!("Unsupported start tag \"{name}\""), i);
            }
            if closing {
                if open.pop().as_deref() != Some(name) {
                    return fail(
                        format!("Can't find end tag corresponding to start tag \"{name}\""),
                        i,
                    );
                }
            } else {
                open.push(name.to_string());
            }
            i += end + 1;
        } else if rest.starts_with('&') {
            let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
                return fail("Unexpected end of name token".into(), i);
            };
            let shown_char = match &rest[1..end] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                n if n.starts_with('#') => n[1..]
                    .parse::<u32>()
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('?'),
                n => return fail(format!("Unsupported HTML entity \"&{n};\""), i),
            };
            shown.push(shown_char);
            i += end + 1;
        } else {
            let c = rest.chars().next().expect("not at the end");
            shown.push(c);
            i += c.len_utf8();
        }
    }
    match open.pop() {
        Some(name) => fail(
            format!("Can't find end tag corresponding to start tag \"{name}\""),
            text.len(),
        ),
        None => Ok(shown),
    }
}
