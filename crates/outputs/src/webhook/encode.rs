//! Building the webhook request and reading its answer.

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::config::{WebhookConfig, WebhookMethod};
use crate::delivery::Failure;
use crate::envelope::Envelope;
use crate::http::{HttpEncoder, HttpRequest};
use crate::secret::SecretUrl;

pub struct WebhookEncoder {
    url: SecretUrl,
    method: Method,
    headers: reqwest::header::HeaderMap,
}

impl WebhookEncoder {
    pub fn new(config: &WebhookConfig) -> Self {
        let mut headers = config.headers.0.clone();
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        WebhookEncoder {
            url: config.url.clone(),
            method: match config.method {
                WebhookMethod::Post => Method::POST,
                WebhookMethod::Put => Method::PUT,
            },
            headers,
        }
    }
}

impl HttpEncoder for WebhookEncoder {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    /// The stored alert JSON goes out byte for byte: it already has Falco's field names and the
    /// alert's `uuid`.
    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let [envelope] = batch else {
            return Err(Failure::new(
                None,
                format!("webhook sends one alert per request, got {}", batch.len()),
            ));
        };
        Ok(HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: envelope.json.clone(),
        })
    }
}
