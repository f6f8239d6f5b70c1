//! Slack's answers: `200 ok`, or an error word in the body.

use std::time::{Duration, SystemTime};

use crate::delivery::{Delivery, Failure};
use crate::http::{parse_retry_after, HttpResponse};

/// Error words Slack documents for incoming webhooks. Anything else counts as `other`.
const KNOWN: [&str; 14] = [
    "invalid_payload",
    "user_not_found",
    "action_prohibited",
    "channel_not_found",
    "channel_is_archived",
    "no_text",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "invalid_token",
    "posting_to_general_channel_denied",
    "too_many_attachments",
    "rollup_error",
];

fn code_of(body: &str) -> &'static str {
    let word = body.trim();
    KNOWN
        .iter()
        .find(|k| **k == word)
        .copied()
        .unwrap_or("other")
}

pub fn classify(r: &HttpResponse) -> Delivery {
    let status = r.status.as_u16();
    let body = String::from_utf8_lossy(&r.body);
    let body = body.trim();
    match status {
        200 if body == "ok" => Delivery::Delivered,
        200 => Delivery::Permanent(
            Failure::new(
                Some(200),
                format!("unexpected answer: {}", first_line(body)),
            )
            .with_code("unexpected_body"),
        ),
        429 => {
            let wait =
                parse_retry_after(&r.headers, SystemTime::now()).unwrap_or(Duration::from_secs(1));
            Delivery::RetryAfter(
                Failure::new(Some(429), "rate limited").with_code("rate_limited"),
                wait,
            )
        }
        500..=599 => Delivery::Retry(
            Failure::new(Some(status), format!("Slack error: {}", first_line(body)))
                .with_code(code_of(body)),
        ),
        _ => Delivery::Permanent(
            Failure::new(Some(status), first_line(body).to_string()).with_code(code_of(body)),
        ),
    }
}

/// The first line of an answer, at most 200 characters (cut on a character boundary).
fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    line.char_indices()
        .nth(200)
        .map_or(line, |(i, _)| &line[..i])
}
