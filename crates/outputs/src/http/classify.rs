//! Reading HTTP answers the way every well-behaved client should.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::delivery::{Delivery, Failure};

/// The generic table: 2xx delivered; 408, 429 and 5xx except 501 retried, honouring
/// `Retry-After` on 429 and 503; every other status permanent.
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Delivery {
    let code = status.as_u16();
    if status.is_success() {
        return Delivery::Delivered;
    }
    let failure = Failure::new(
        Some(code),
        status.canonical_reason().unwrap_or("unexpected status"),
    );
    let retryable = code == 408 || code == 429 || (status.is_server_error() && code != 501);
    if !retryable {
        return Delivery::Permanent(failure);
    }
    if code == 429 || code == 503 {
        if let Some(wait) = parse_retry_after(headers, SystemTime::now()) {
            return Delivery::RetryAfter(failure, wait);
        }
    }
    Delivery::Retry(failure)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now`.
/// A date in the past means "now"; anything unreadable is ignored.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_generic_table() {
        let none = HeaderMap::new();
        let cases = [
            (200, "delivered"),
            (202, "delivered"),
            (204, "delivered"),
            (400, "permanent"),
            (401, "permanent"),
            (404, "permanent"),
            (408, "retry"),
            (413, "permanent"),
            (429, "retry"),
            (500, "retry"),
            (501, "permanent"),
            (502, "retry"),
            (503, "retry"),
        ];
        for (code, expected) in cases {
            let got = match classify_status(StatusCode::from_u16(code).unwrap(), &none) {
                Delivery::Delivered => "delivered",
                Delivery::Retry(_) => "retry",
                Delivery::Permanent(_) => "permanent",
                other => panic!("{code}: {other:?}"),
            };
            assert_eq!(got, expected, "HTTP {code}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let d = classify_status(StatusCode::TOO_MANY_REQUESTS, &with_retry_after("2"));
        assert!(matches!(d, Delivery::RetryAfter(_, w) if w == Duration::from_secs(2)));
        let d = classify_status(StatusCode::SERVICE_UNAVAILABLE, &with_retry_after("7"));
        assert!(matches!(d, Delivery::RetryAfter(_, w) if w == Duration::from_secs(7)));
        // Retry-After on a 500 is not a pause.
        let d = classify_status(StatusCode::INTERNAL_SERVER_ERROR, &with_retry_after("7"));
        assert!(matches!(d, Delivery::Retry(_)));

        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let h = with_retry_after("Sun, 06 Nov 1994 08:49:47 GMT");
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(10)));
        let past = with_retry_after("Sun, 06 Nov 1994 08:49:00 GMT");
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&with_retry_after("soon"), now), None);
    }
}
