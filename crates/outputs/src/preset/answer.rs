//! Reading a preset service's answer: the status decides, the service's JSON error body gives
//! the reason, and a 429 pauses the output for as long as the service asks.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::delivery::{Delivery, Failure};
use crate::http::{parse_retry_after, HttpResponse};

/// The longest piece of a service's answer quoted in a failure.
const REASON_MAX: usize = 200;
/// The pause after a 429 that says nothing about how long to wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// How one service words its answers.
pub struct Dialect {
    /// The error message in a JSON error body (`message`, `description`, `error`…).
    pub reason: fn(&Value) -> Option<String>,
    /// How long a 429's body asks to wait, for services that say it there and not (only) in
    /// `Retry-After` (Discord's `retry_after`, Telegram's `parameters.retry_after`).
    pub wait: fn(&Value) -> Option<Duration>,
}

impl Dialect {
    /// 2xx delivered; 429 a pause (`Retry-After`, else the body's wait, else a second); 408 and
    /// 5xx except 501 retried; anything else permanent. The reason quotes the service's message.
    pub fn classify(&self, r: &HttpResponse) -> Delivery {
        let code = r.status.as_u16();
        if r.status.is_success() {
            return Delivery::Delivered;
        }
        let body: Option<Value> = serde_json::from_slice(&r.body).ok();
        let reason = body
            .as_ref()
            .and_then(self.reason)
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).trim().to_string());
        let reason = match first_line(&reason) {
            "" => r.status.canonical_reason().unwrap_or("unexpected status"),
            line => line,
        };
        let failure = Failure::new(Some(code), reason.to_string());
        match code {
            429 => {
                let wait = parse_retry_after(&r.headers, SystemTime::now())
                    .or_else(|| body.as_ref().and_then(self.wait))
                    .unwrap_or(DEFAULT_WAIT);
                Delivery::RetryAfter(failure.with_code("rate_limited"), wait)
            }
            408 | 500 | 502..=599 => Delivery::Retry(failure.with_code("server_error")),
            401 | 403 => Delivery::Permanent(failure.with_code("unauthorized")),
            404 => Delivery::Permanent(failure.with_code("not_found")),
            _ => Delivery::Permanent(failure.with_code("refused")),
        }
    }
}

/// A JSON string at `pointer` (`/error/message`), for [`Dialect::reason`].
pub fn text_at(body: &Value, pointer: &str) -> Option<String> {
    body.pointer(pointer)?.as_str().map(str::to_string)
}

/// A number of seconds at `pointer` (integer or fraction), for [`Dialect::wait`].
pub fn seconds_at(body: &Value, pointer: &str) -> Option<Duration> {
    let secs = body.pointer(pointer)?.as_f64()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The first line, at most [`REASON_MAX`] characters.
fn first_line(s: &str) -> &str {
    let line = s.trim().lines().next().unwrap_or("");
    line.char_indices()
        .nth(REASON_MAX)
        .map_or(line, |(i, _)| &line[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    const DIALECT: Dialect = Dialect {
        reason: |b| text_at(b, "/message"),
        wait: |b| seconds_at(b, "/retry_after"),
    };

    fn answer(status: u16, body: &str, retry_after: Option<&str>) -> Delivery {
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        DIALECT.classify(&HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::from(body.to_string()),
        })
    }

    #[test]
    fn statuses_and_reasons() {
        assert_eq!(answer(204, "", None), Delivery::Delivered);
        let Delivery::Permanent(f) = answer(400, r#"{"message":"Invalid Form Body"}"#, None) else {
            panic!()
        };
        assert_eq!(
            (f.reason.as_str(), f.code),
            ("Invalid Form Body", Some("refused"))
        );
        let Delivery::Permanent(f) = answer(401, "", None) else {
            panic!()
        };
        assert_eq!(
            (f.reason.as_str(), f.code),
            ("Unauthorized", Some("unauthorized"))
        );
        assert!(matches!(answer(502, "<html>", None), Delivery::Retry(_)));
        assert!(matches!(answer(501, "", None), Delivery::Permanent(_)));
        let Delivery::Retry(f) = answer(500, &"x".repeat(500), None) else {
            panic!()
        };
        assert_eq!(f.reason.len(), REASON_MAX);
    }

    #[test]
    fn a_429_waits_as_long_as_asked() {
        let wait = |d| match d {
            Delivery::RetryAfter(f, w) => {
                assert_eq!(f.code, Some("rate_limited"));
                w
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(answer(429, "", Some("3"))), Duration::from_secs(3));
        let body = r#"{"message":"You are being rate limited.","retry_after":0.25}"#;
        assert_eq!(wait(answer(429, body, None)), Duration::from_millis(250));
        assert_eq!(wait(answer(429, "slow down", None)), DEFAULT_WAIT);
    }
}
