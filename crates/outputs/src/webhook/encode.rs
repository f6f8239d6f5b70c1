//! Building the webhook request: the stored alert JSON, or the body template's rendering;
//! templated header values; the signature.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use minijinja::Value;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;

use super::config::{header_template, WebhookMethod, WebhookSettings};
use super::template;
use crate::delivery::Failure;
use crate::envelope::Envelope;
use crate::http::{HttpEncoder, HttpRequest};

pub struct WebhookEncoder {
    settings: WebhookSettings,
    method: Method,
}

impl WebhookEncoder {
    pub fn new(settings: &WebhookSettings) -> Self {
        WebhookEncoder {
            settings: settings.clone(),
            method: match settings.method {
                WebhookMethod::Post => Method::POST,
                WebhookMethod::Put => Method::PUT,
            },
        }
    }

    /// The body: the stored alert JSON byte for byte (it already has Falco's field names and
    /// the alert's `uuid`), or the template's rendering.
    fn body(&self, alert: &Envelope, context: Option<&Value>) -> Result<Bytes, Failure> {
        match (&self.settings.templates, context) {
            (Some(t), Some(context)) if t.has(template::BODY) => t
                .render(template::BODY, context)
                .map(Bytes::from)
                .map_err(|m| template_failure(format!("body_template: {m}"))),
            _ => Ok(alert.json.clone()),
        }
    }

    fn headers(&self, context: Option<&Value>, body: &[u8]) -> Result<HeaderMap, Failure> {
        let mut headers = self.settings.headers.clone();
        if let (Some(templates), Some(context)) = (&self.settings.templates, context) {
            for name in &self.settings.templated_headers {
                let key = header_template(name);
                let text = templates
                    .render(&key, context)
                    .map_err(|m| template_failure(format!("{key}: {m}")))?;
                let mut value = HeaderValue::from_str(&text).map_err(|_| {
                    template_failure(format!("{key}: renders a value HTTP does not allow"))
                })?;
                value.set_sensitive(true);
                headers.insert(name.clone(), value);
            }
        }
        if let Some(signer) = &self.settings.signer {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            headers.insert(signer.header.clone(), signer.sign(body, now));
        }
        Ok(headers)
    }
}

/// A template that fails for an alert fails for it every time: dead-letter it with the error.
fn template_failure(reason: String) -> Failure {
    Failure::new(None, reason).with_code("template_error")
}

impl HttpEncoder for WebhookEncoder {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    /// The body is the stored JSON, and templates render from it too (see `template::context`).
    fn reads_alert(&self) -> bool {
        false
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let [envelope] = batch else {
            return Err(Failure::new(
                None,
                format!("webhook sends one alert per request, got {}", batch.len()),
            ));
        };
        // The alert's template context, made once for the body and every templated header.
        let context = match &self.settings.templates {
            Some(_) => Some(template::context(envelope).map_err(template_failure)?),
            None => None,
        };
        let body = self.body(envelope, context.as_ref())?;
        let headers = self.headers(context.as_ref(), &body)?;
        Ok(HttpRequest {
            method: self.method.clone(),
            url: self.settings.url.clone(),
            headers,
            body,
        })
    }
}
