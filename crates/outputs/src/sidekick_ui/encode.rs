//! The UI's payload, shaped to pass its validation.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::SidekickUiSettings;
use crate::delivery::Failure;
use crate::envelope::Envelope;
use crate::http::{HttpEncoder, HttpRequest};
use crate::secret::SecretUrl;

pub struct SidekickUiEncoder {
    url: SecretUrl,
    outputs: Vec<String>,
    headers: HeaderMap,
}

impl SidekickUiEncoder {
    pub fn new(settings: &SidekickUiSettings) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        SidekickUiEncoder {
            url: settings.ingest_url.clone(),
            outputs: settings.outputs.clone(),
            headers,
        }
    }
}

impl HttpEncoder for SidekickUiEncoder {
    fn kind(&self) -> &'static str {
        "falcosidekick_ui"
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let [envelope] = batch else {
            return Err(Failure::new(None, "one alert per request"));
        };
        let body = json!({"event": event(envelope)?, "outputs": self.outputs});
        Ok(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: Bytes::from(body.to_string()),
        })
    }
}

/// The alert as the UI's event: Falco's JSON, with a UUID and only the characters it takes.
pub fn event(envelope: &Envelope) -> Result<Value, Failure> {
    let mut event: Value = serde_json::from_slice(&envelope.json)
        .map_err(|e| Failure::new(None, format!("the stored alert is not JSON: {e}")))?;
    let map = event
        .as_object_mut()
        .ok_or_else(|| Failure::new(None, "the stored alert is not an object"))?;
    map.insert("uuid".into(), Value::String(as_uuid(envelope.id())));
    for (key, keep_controls) in [
        ("output", true),
        ("rule", false),
        ("priority", false),
        ("source", false),
        ("hostname", false),
    ] {
        if let Some(Value::String(text)) = map.get_mut(key) {
            *text = escape(text, keep_controls);
        }
    }
    Ok(event)
}

/// `id` if it is a UUID; otherwise a UUID made from its SHA-256 (version 8, RFC 9562), so the
/// same alert gets the same one on every retry.
fn as_uuid(id: &str) -> String {
    if uuid::Uuid::try_parse(id).is_ok() {
        return id.to_string();
    }
    let digest = Sha256::digest(id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Characters outside printable ASCII written as `\u{…}` (tabs and newlines kept where the UI
/// takes them).
fn escape(text: &str, keep_controls: bool) -> String {
    let allowed = |c: char| (' '..='~').contains(&c) || (keep_controls && c.is_ascii());
    if text.chars().all(allowed) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if allowed(c) {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", c as u32)
            }
        })
        .collect()
}
