//! PagerDuty's answers: 202 accepted, 400 with the reasons, 429 "for minutes".

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::delivery::{Delivery, Failure};
use crate::http::{classify_status, parse_retry_after, HttpResponse};

/// The shortest pause after a 429: PagerDuty's rate-limit guide retries 30 s apart.
pub const MIN_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(30);
/// The pause after a 429 without `Retry-After` ("back off for a few minutes").
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);

pub fn classify(r: &HttpResponse) -> Delivery {
    match r.status.as_u16() {
        200..=299 => Delivery::Delivered,
        400 => Delivery::Permanent(
            Failure::new(Some(400), format!("invalid event: {}", errors(&r.body)))
                .with_code("invalid_event"),
        ),
        429 => {
            let wait = parse_retry_after(&r.headers, SystemTime::now())
                .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE)
                .max(MIN_RATE_LIMIT_PAUSE);
            Delivery::RetryAfter(
                Failure::new(Some(429), "rate limited").with_code("rate_limited"),
                wait,
            )
        }
        _ => match classify_status(r.status, &r.headers) {
            Delivery::Permanent(f) => Delivery::Permanent(f.with_code("rejected")),
            other => other,
        },
    }
}

/// PagerDuty's `errors` list (or `message`), joined and cut to 500 characters. It describes the
/// event, never echoes the routing key.
fn errors(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = match v["errors"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        _ => v["message"]
            .as_str()
            .unwrap_or("no reason given")
            .to_string(),
    };
    crate::card::truncate(&text, 500)
}
