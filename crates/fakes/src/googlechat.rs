//! Google Chat's incoming webhooks (`POST /v1/spaces/{space}/messages?key=…&token=…`): the
//! created message as JSON; errors as Google's `{"error": {"code", "message", "status"}}`
//! (a missing or wrong key and token 400/401/403, an unknown space 404, a body it cannot read
//! `INVALID_ARGUMENT`); about one message a second per space, over which it answers 429
//! `RESOURCE_EXHAUSTED` without `Retry-After`.
//!
//! Checks: `text` or `cardsV2` present; `text` at most 4 096 characters; `threadKey` only with
//! a `messageReplyOption`. [`live_markup`] lists what in a text Chat would turn into a mention
//! or a link, for tests that alert text cannot.

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::check;
use crate::server::{Api, FakeService, Reply, Request};

pub struct GoogleChat;

pub async fn start() -> FakeService {
    FakeService::start(GoogleChat).await
}

/// Google's error body.
pub fn error(code: u16, status: &str, message: &str) -> Reply {
    let body = json!({"error": {"code": code, "message": message, "status": status}});
    Reply::new(code, body.to_string()).header("content-type", "application/json; charset=UTF-8")
}

/// The `<users/…>` mentions and `<url|label>` links Chat would act on in `text`.
pub fn live_markup(text: &str) -> Vec<String> {
    let mut live = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let inner = &rest[start + 1..start + end];
        if inner.starts_with("users/") || inner.contains("://") {
            live.push(inner.to_string());
        }
        rest = &rest[start + end + 1..];
    }
    live
}

impl Api for GoogleChat {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 1.0,
            burst: 1.0,
            slack: 0.05,
        }
    }

    fn rate_limited(&self) -> Reply {
        error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        )
    }

    fn answer(&self, _method: &Method, _path: &str, _headers: &HeaderMap, _body: &[u8]) -> Reply {
        unreachable!("Google Chat reads the query: answer_query")
    }

    fn answer_query(&self, r: &Request<'_>) -> Reply {
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let ["v1", "spaces", space, "messages"] = parts.as_slice() else {
            return error(404, "NOT_FOUND", "Requested entity was not found.");
        };
        if r.param("key").is_none() {
            return error(
                403,
                "PERMISSION_DENIED",
                "The request is missing a valid API key.",
            );
        }
        if r.param("token").is_none() {
            return error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            );
        }
        if r.method != Method::POST {
            return error(405, "METHOD_NOT_ALLOWED", "Method not allowed.");
        }
        if r.param("threadKey").is_some() && r.param("messageReplyOption").is_none() {
            return error(
                400,
                "INVALID_ARGUMENT",
                "threadKey needs messageReplyOption.",
            );
        }
        let m = match check::object(r.body) {
            Ok(m) => m,
            Err(e) => {
                return error(
                    400,
                    "INVALID_ARGUMENT",
                    &format!("Invalid JSON payload received. {e}"),
                )
            }
        };
        if let Err(e) = validate(&m) {
            return error(400, "INVALID_ARGUMENT", &e);
        }
        let message = json!({"name": format!("spaces/{space}/messages/abc.def"), "text": m["text"], "space": {"name": format!("spaces/{space}")}});
        Reply::new(200, message.to_string())
            .header("content-type", "application/json; charset=UTF-8")
    }
}

fn validate(m: &Value) -> Result<(), String> {
    if check::text(m, "/text")?.is_none_or(str::is_empty) && m.get("cardsV2").is_none() {
        return Err("Message cannot be empty. Discarded message must contain at least one of text or cardsV2.".into());
    }
    check::at_most(m, "/text", 4096)
}
