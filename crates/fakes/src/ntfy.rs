//! An ntfy server's JSON publishing (`POST /` with `{"topic", "message", …}`): the message as
//! JSON with its `id`; errors as `{"code", "http", "error", "link"}`; ntfy.sh's visitor limit
//! (a burst of 60 requests, one more every 5 seconds), over which it answers 429 `42901`.
//!
//! Checks: a topic of 1 to 64 `[-_A-Za-z0-9]`; `message` at most 4 096 bytes (ntfy's default
//! `message-size-limit`; JSON publishing cannot turn it into an attachment); `priority` 1 to 5;
//! `tags` strings; with [`NtfyAuth::Token`] set, the `Authorization: Bearer` token it names.

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply};

pub struct Ntfy {
    token: Option<String>,
    limit: Limit,
}

/// An open server with ntfy.sh's limit.
pub async fn start() -> FakeService {
    FakeService::start(Ntfy {
        token: None,
        limit: NTFY_SH,
    })
    .await
}

/// A server that only takes `Authorization: Bearer {token}`.
pub async fn start_with_token(token: &str) -> FakeService {
    FakeService::start(Ntfy {
        token: Some(token.to_string()),
        limit: NTFY_SH,
    })
    .await
}

/// A burst of 60 requests, refilled one every 5 seconds.
const NTFY_SH: Limit = Limit::Bucket {
    per_second: 0.2,
    burst: 60.0,
    slack: 0.0,
};

/// ntfy's error body.
pub fn error(http: u16, code: u32, error: &str) -> Reply {
    let body = json!({"code": code, "http": http, "error": error, "link": "https://ntfy.sh/docs/publish/"});
    Reply::new(http, body.to_string()).header("content-type", "application/json")
}

impl Api for Ntfy {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        Some("visitor".to_string())
    }

    fn limit(&self) -> Limit {
        self.limit
    }

    fn rate_limited(&self) -> Reply {
        error(429, 42901, "limit reached: too many requests; increase your limits with a paid plan, see https://ntfy.sh")
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if let Some(token) = &self.token {
            let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
            if sent != Some(&format!("Bearer {token}")) {
                return error(401, 40101, "unauthorized");
            }
        }
        if method != Method::POST && method != Method::PUT {
            return error(405, 40500, "method not allowed");
        }
        if path != "/" {
            return error(
                400,
                40010,
                "invalid request: JSON publishing goes to the root URL",
            );
        }
        let m = match check::object(body) {
            Ok(m) => m,
            Err(_) => {
                return error(
                    400,
                    40024,
                    "invalid request: request body must be message JSON",
                )
            }
        };
        match validate(&m) {
            Ok(()) => {
                let message = json!({"id": "hwQ2YpKdmg", "time": 1781256190, "expires": 1781299390, "event": "message", "topic": m["topic"], "title": m["title"], "message": m["message"], "priority": m["priority"], "tags": m["tags"]});
                Reply::new(200, message.to_string()).header("content-type", "application/json")
            }
            Err((code, e)) => error(400, code, &e),
        }
    }
}

fn validate(m: &Value) -> Result<(), (u32, String)> {
    let topic = check::text(m, "/topic").ok().flatten().unwrap_or("");
    let topic_ok = (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !topic_ok {
        return Err((40009, "invalid request: topic invalid".into()));
    }
    let message = check::text(m, "/message")
        .map_err(|e| (40024, e))?
        .unwrap_or("");
    if message.len() > 4096 {
        return Err((
            41301,
            "too large: message exceeds the 4096-byte limit".into(),
        ));
    }
    if let Some(p) = m.get("priority") {
        if !p.as_u64().is_some_and(|p| (1..=5).contains(&p)) {
            return Err((40007, "invalid request: priority invalid".into()));
        }
    }
    if check::array(m, "/tags", 100)
        .map_err(|e| (40024, e))?
        .iter()
        .any(|t| !t.is_string())
    {
        return Err((40024, "invalid request: tags must be strings".into()));
    }
    Ok(())
}
