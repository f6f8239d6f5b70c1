//! What the chat and incident presets share, so that each preset is only its service's shape:
//! a message template with the service's markup escaping and length limit ([`MessageText`],
//! [`Markup`]), the service's published rate ([`crate::pacer`]), and how its answers read
//! ([`Dialect`]).
//!
//! A preset folder (`discord/`, `telegram/`…) then holds its keys, the request it builds and the
//! words of its error body; its fake in `peregrine-fakes` checks the same request against the
//! service's published API.

mod answer;
mod markup;
mod text;

pub use answer::{seconds_at, text_at, Dialect};
pub use markup::{length, Markup, Measure};
pub use text::MessageText;

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use crate::delivery::Failure;
use crate::envelope::Envelope;
use crate::http::HttpRequest;
use crate::pacer::Pacer;
use crate::rate::RateLimit;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

/// The `template` key: the preset's own template unless the user gave one.
pub fn message_text(
    template: Option<&str>,
    default: &str,
    markup: Markup,
    max_units: usize,
) -> Result<MessageText, SettingsError> {
    MessageText::new(template.unwrap_or(default), markup, max_units)
        .map_err(|e| SettingsError::new("template", e))
}

/// The `rate_limit` key, checked.
pub fn rate(rate: Option<RateLimit>, default: RateLimit) -> Result<RateLimit, SettingsError> {
    let rate = rate.unwrap_or(default);
    rate.check()
        .map_err(|e| SettingsError::new("rate_limit", e))?;
    Ok(rate)
}

/// The one alert of a batch: presets send one message per alert.
pub fn single(batch: &[Envelope]) -> Result<&Envelope, Failure> {
    match batch {
        [envelope] => Ok(envelope),
        _ => Err(Failure::new(None, "one alert per request")),
    }
}

/// A JSON `POST` to `url` with `headers` besides the content type.
pub fn post_json(url: &SecretUrl, mut headers: HeaderMap, body: &serde_json::Value) -> HttpRequest {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    HttpRequest {
        method: Method::POST,
        url: url.clone(),
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// A header value from a secret (a token); the error names `key` and never the value.
pub fn secret_header(value: &str, key: &str) -> Result<HeaderValue, SettingsError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SettingsError::new(key, "is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The pacer shared by every output posting to `key` at `rate`.
pub fn pacer(key: &str, rate: RateLimit) -> Arc<Pacer> {
    crate::pacer::shared(key, rate.per_second, rate.burst)
}

/// A priority's colour as the integer Discord and Mattermost-style attachments take.
pub fn color_number(priority: peregrine_engine::Priority) -> u32 {
    u32::from_str_radix(crate::card::color(priority).trim_start_matches('#'), 16).unwrap_or(0)
}

/// An alert's time as RFC 3339 in milliseconds, UTC: what services that parse timestamps with
/// JavaScript or Python take (nanoseconds are refused by some).
pub fn time_millis(time: peregrine_engine::EventTime) -> String {
    let t = time.to_offset_date_time();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `body` without its keys left unset (`null`): optional keys the user did not give.
pub fn without_nulls(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    body
}
