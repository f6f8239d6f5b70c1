//! `type: googlechat` — a Google Chat space's incoming webhook
//! (`POST https://chat.googleapis.com/v1/spaces/{space}/messages?key=…&token=…`), a text message
//! per alert.
//!
//! Limits kept: a message's text at most 4 096 characters; a space takes about one message a
//! second from a webhook (60 a minute), the default pace. Alert text is written in Chat's markup
//! with `<`, `>` and `&` as entities ([`Markup::GoogleChat`]): no `<users/all>` mention and no
//! `<url|label>` link comes from an alert. Errors are Google's `{"error": {"code", "message",
//! "status"}}`; a 429 (`RESOURCE_EXHAUSTED`) says no wait, so the output pauses a second.
//! `thread_key` keeps every alert of the output in one thread.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, text_at, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<GoogleChatSettings>("googlechat", Audience::People);

const TEMPLATE: &str = "*{{ priority }}: {{ rule }}*\n{{ output }}\n{% for f in important %}\n*{{ f[0] }}*: {{ f[1] }}{% endfor %}";
const TEXT_MAX: usize = 4096;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/error/message"),
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleChatKeys {
    /// The webhook's URL as Chat shows it, `key` and `token` included: a secret.
    pub webhook_url: SecretUrl,
    /// Posts every alert into the thread with this key (created on first use).
    pub thread_key: Option<String>,
    /// The message as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct GoogleChatSettings {
    url: SecretUrl,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for GoogleChatSettings {
    type Keys = GoogleChatKeys;

    fn check(keys: GoogleChatKeys) -> Result<Self, SettingsError> {
        let mut url = keys.webhook_url.expose().clone();
        let has = |name: &str| url.query_pairs().any(|(k, _)| k == name);
        if !has("key") || !has("token") {
            return Err(SettingsError::new(
                "webhook_url",
                "must carry the webhook's key and token (copy it whole from the space's webhook settings)",
            ));
        }
        if let Some(thread) = &keys.thread_key {
            url.query_pairs_mut()
                .append_pair("threadKey", thread)
                .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
        }
        Ok(GoogleChatSettings {
            url: SecretUrl::parse(url.as_str()).expect("still a valid URL"),
            text: preset::message_text(
                keys.template.as_deref(),
                TEMPLATE,
                Markup::GoogleChat,
                TEXT_MAX,
            )?,
            rate: preset::rate(keys.rate_limit, RateLimit::new(1.0, 1))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Google Chat webhook {}", self.url)
    }
}

pub fn build(settings: &GoogleChatSettings, ctx: BuildContext) -> HttpOutput<GoogleChatEncoder> {
    let space = settings.url.expose().path().to_string();
    let encoder = GoogleChatEncoder {
        pacer: preset::pacer(&format!("googlechat:{space}"), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

pub struct GoogleChatEncoder {
    settings: GoogleChatSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for GoogleChatEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let body = json!({"text": self.settings.text.render(envelope)?});
        Ok(preset::post_json(
            &self.settings.url,
            HeaderMap::new(),
            &body,
        ))
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
