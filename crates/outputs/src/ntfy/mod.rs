//! `type: ntfy` — a push notification through an ntfy server, published as JSON to the server's
//! root (`{"topic", "title", "message", "priority", "tags"}`), so no alert text travels in an
//! HTTP header.
//!
//! Limits kept (ntfy.sh's defaults): a message at most 4 096 bytes (longer would become an
//! attachment); a visitor's burst of 60 requests refilled one every 5 seconds, the default
//! pace. The message is plain text (no `markdown`), so nothing in it acts. Falco's priorities map
//! onto ntfy's 1 to 5: Emergency, Alert and Critical 5 (urgent), Error 4, Warning and Notice 3,
//! Informational 2, Debug 1. Errors read `error`; a 429 (`42901`) says no wait, so the output
//! pauses a second.

use std::sync::Arc;

use peregrine_engine::Priority;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use serde_json::json;

use crate::card::truncate;
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{
    self, basic_credentials, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls,
};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, text_at, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::{Secret, SecretUrl};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<NtfySettings>("ntfy", Audience::People);

const TEMPLATE: &str = "{{ output }}\n{% for f in important %}\n{{ f[0] }}: {{ f[1] }}{% endfor %}";
pub(crate) const MESSAGE_MAX_BYTES: usize = 4096;
const TITLE_MAX: usize = 250;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/error"),
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyKeys {
    /// The server (default `https://ntfy.sh`).
    pub url: Option<SecretUrl>,
    /// The topic: 1 to 64 letters, digits, `-` or `_`.
    pub topic: String,
    /// An access token (`tk_…`), sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// Or a user and password, sent as basic authentication.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Opened when the notification is tapped.
    pub click: Option<String>,
    /// The message as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct NtfySettings {
    url: SecretUrl,
    topic: String,
    click: Option<String>,
    headers: HeaderMap,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for NtfySettings {
    type Keys = NtfyKeys;

    fn check(keys: NtfyKeys) -> Result<Self, SettingsError> {
        let topic_ok = (1..=64).contains(&keys.topic.len())
            && keys
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !topic_ok {
            return Err(SettingsError::new(
                "topic",
                "must be 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        let mut headers = HeaderMap::new();
        let authorization = match (&keys.token, &keys.username, &keys.password) {
            (Some(token), None, None) => Some(format!("Bearer {}", token.expose())),
            (None, Some(user), Some(password)) => Some(basic_credentials(user, password.expose())),
            (None, None, None) => None,
            _ => {
                return Err(SettingsError::new(
                    "token",
                    "give either a token or a username and password",
                ))
            }
        };
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, preset::secret_header(&value, "token")?);
        }
        let url = keys
            .url
            .unwrap_or_else(|| SecretUrl::parse("https://ntfy.sh").expect("a valid URL"));
        let text = preset::message_text(
            keys.template.as_deref(),
            TEMPLATE,
            Markup::Plain,
            MESSAGE_MAX_BYTES,
        )?;
        Ok(NtfySettings {
            url: url.endpoint("/", None),
            topic: keys.topic,
            click: keys.click,
            headers,
            text: text.counting_bytes(),
            rate: preset::rate(keys.rate_limit, RateLimit::new(0.2, 60))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("ntfy topic {} on {}", self.topic, self.url)
    }
}

pub fn build(settings: &NtfySettings, ctx: BuildContext) -> HttpOutput<NtfyEncoder> {
    let encoder = NtfyEncoder {
        pacer: preset::pacer(settings.url.expose().as_str(), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

/// ntfy's priority for a Falco priority.
pub fn priority(p: Priority) -> u8 {
    match p {
        Priority::Emergency | Priority::Alert | Priority::Critical => 5,
        Priority::Error => 4,
        Priority::Warning | Priority::Notice => 3,
        Priority::Informational => 2,
        Priority::Debug => 1,
    }
}

pub struct NtfyEncoder {
    settings: NtfySettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for NtfyEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let mut body = json!({
            "topic": self.settings.topic,
            "title": truncate(&format!("{}: {}", a.priority, a.rule), TITLE_MAX),
            "message": self.settings.text.render(envelope)?,
            "priority": priority(a.priority),
            "tags": a.tags.iter().take(5).collect::<Vec<_>>(),
        });
        if let Some(click) = &self.settings.click {
            body["click"] = json!(click);
        }
        Ok(preset::post_json(
            &self.settings.url,
            self.settings.headers.clone(),
            &body,
        ))
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
