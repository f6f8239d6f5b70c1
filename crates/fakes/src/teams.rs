//! Microsoft Teams: a Workflows webhook (Adaptive Cards, `202` with an empty body) or a legacy
//! Office 365 connector (MessageCard, `200` with body `1`); 28 KB per message, 4 requests a
//! second.
//!
//! A Workflows URL queues the flow run before looking at the card, so a card the flow cannot
//! post still gets a 202; the problem shows only in the run history. The fake answers the same
//! way and lists such problems in [`Message::problems`](crate::Message).

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

/// Teams' message size limit.
pub const MAX_BYTES: usize = 28 * 1024;

pub struct Teams;

pub async fn start() -> FakeService {
    FakeService::start(Teams).await
}

impl Api for Teams {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 4.0,
            burst: 4.0,
            slack: 0.05,
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "").header("retry-after", "1")
    }

    fn answer(&self, method: &Method, _path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST {
            return Reply::new(405, "");
        }
        if body.len() > MAX_BYTES {
            return Reply::new(413, "Request Entity Too Large");
        }
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            return Reply::new(400, "Invalid JSON");
        };
        if msg["@type"] == "MessageCard" {
            let has_text = ["summary", "text", "title"]
                .iter()
                .any(|k| msg[k].as_str().is_some_and(|s| !s.is_empty()));
            return if has_text {
                Reply::new(200, "1")
            } else {
                Reply::new(400, "Summary or Text is required.")
            };
        }
        let mut reply = Reply::new(202, "");
        reply.problems = adaptive_problems(&msg);
        reply
    }
}

/// What a Workflows flow would fail on when posting the card.
fn adaptive_problems(msg: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if msg["type"] != "message" {
        problems.push("type must be 'message'".to_string());
    }
    let Some(attachments) = msg["attachments"].as_array().filter(|a| !a.is_empty()) else {
        problems.push("attachments must be a non-empty array".to_string());
        return problems;
    };
    for (i, a) in attachments.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            problems.push(format!(
                "attachments[{i}].contentType is not an Adaptive Card"
            ));
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" {
            problems.push(format!(
                "attachments[{i}].content: Property 'type' must be 'AdaptiveCard'"
            ));
        }
        match card["version"].as_str() {
            Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") => {}
            _ => problems.push(format!(
                "attachments[{i}].content.version is not one Teams renders"
            )),
        }
        let Some(body) = card["body"].as_array() else {
            problems.push(format!("attachments[{i}].content.body must be an array"));
            continue;
        };
        for (j, element) in body.iter().enumerate() {
            match element["type"].as_str() {
                Some("TextBlock") if element["text"].is_string() => {}
                Some("FactSet") => {
                    let ok = element["facts"].as_array().is_some_and(|f| {
                        f.iter()
                            .all(|f| f["title"].is_string() && f["value"].is_string())
                    });
                    if !ok {
                        problems.push(format!(
                            "body[{j}]: a FactSet needs facts with string title and value"
                        ));
                    }
                }
                Some("Container" | "ColumnSet" | "Image") => {}
                other => problems.push(format!(
                    "body[{j}]: unknown or incomplete element {other:?}"
                )),
            }
        }
    }
    problems
}
