//! PagerDuty's answers: 202 accepted, 400 with the reasons, 429 "for minutes".

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::delivery::{Delivery, Failure};
use crate::http::{classify_status, parse_retry_after, HttpResponse};

/// The pause after a first 429: PagerDuty's rate-limit guide retries 30 s apart.
pub const MIN_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(30);
/// The longest pause for 429s in a row ("back off for a few minutes").
pub const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(5 * 60);

/// Reads an answer. `limited_in_a_row` counts the 429s since the last other answer: each one in
/// a row doubles the pause, from 30 s up to 5 minutes; a longer `Retry-After` wins.
pub fn classify(r: &HttpResponse, limited_in_a_row: &AtomicU32) -> Delivery {
    if r.status.as_u16() != 429 {
        limited_in_a_row.store(0, Ordering::Relaxed);
    }
    match r.status.as_u16() {
        200..=299 => Delivery::Delivered,
        400 => Delivery::Permanent(
            Failure::new(Some(400), format!("invalid event: {}", errors(&r.body)))
                .with_code("invalid_event"),
        ),
        429 => {
            let streak = limited_in_a_row.fetch_add(1, Ordering::Relaxed).min(8);
            let backoff = MIN_RATE_LIMIT_PAUSE
                .saturating_mul(1 << streak)
                .min(MAX_RATE_LIMIT_PAUSE);
            let wait = parse_retry_after(&r.headers, SystemTime::now())
                .map_or(backoff, |asked| asked.max(backoff));
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
