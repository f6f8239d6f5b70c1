//! `type: telegram` — a Telegram chat through a bot: `POST {api_url}/bot{token}/sendMessage`
//! with `parse_mode: HTML`.
//!
//! Limits kept (Bot API): a message at most 4 096 characters; about one message a second in a
//! chat and 20 a minute in a group, so the default pace is one message every 3 seconds. Alert
//! text is HTML-escaped ([`Markup::Html`]), so no tag or link comes from an alert; link previews
//! are off. Errors read `description`; a 429 waits `parameters.retry_after` seconds.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, seconds_at, text_at, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::{Secret, SecretUrl};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<TelegramSettings>("telegram", Audience::People);

const TEMPLATE: &str = "<b>{{ priority }}: {{ rule }}</b>\n{{ output }}\n{% for f in important %}\n<b>{{ f[0] }}</b>: <code>{{ f[1] }}</code>{% endfor %}";
const TEXT_MAX: usize = 4096;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/description"),
    wait: |b| seconds_at(b, "/parameters/retry_after"),
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramKeys {
    /// The bot's token from @BotFather (`123456:ABC…`).
    pub token: Secret,
    /// The chat: a number (`-1001234567890`) or a channel's `@username`.
    pub chat_id: Value,
    /// A forum topic to post in.
    pub message_thread_id: Option<i64>,
    /// The Bot API's address (default `https://api.telegram.org`; a local Bot API server).
    pub api_url: Option<SecretUrl>,
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    url: SecretUrl,
    chat_id: Value,
    message_thread_id: Option<i64>,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for TelegramSettings {
    type Keys = TelegramKeys;

    fn check(keys: TelegramKeys) -> Result<Self, SettingsError> {
        let token = keys.token.expose();
        let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !well_formed {
            return Err(SettingsError::new(
                "token",
                "is not a bot token (digits, ':', then letters, digits, '_' or '-')",
            ));
        }
        match &keys.chat_id {
            Value::Number(n) if n.is_i64() => {}
            Value::String(s) if s.starts_with('@') && s.len() > 1 => {}
            Value::String(s) if s.parse::<i64>().is_ok() => {}
            _ => {
                return Err(SettingsError::new(
                    "chat_id",
                    "must be a chat number or a channel's @username",
                ))
            }
        }
        let base = match keys.api_url {
            Some(url) => url,
            None => SecretUrl::parse("https://api.telegram.org").expect("a valid URL"),
        };
        Ok(TelegramSettings {
            url: base.endpoint(&format!("/bot{token}/sendMessage"), None),
            chat_id: keys.chat_id,
            message_thread_id: keys.message_thread_id,
            text: preset::message_text(keys.template.as_deref(), TEMPLATE, Markup::Html, TEXT_MAX)?,
            rate: preset::rate(keys.rate_limit, RateLimit::new(1.0 / 3.0, 1))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Telegram chat {} via {}", self.chat_id, self.url)
    }
}

pub fn build(settings: &TelegramSettings, ctx: BuildContext) -> HttpOutput<TelegramEncoder> {
    let key = format!("{}#{}", settings.url.expose(), settings.chat_id);
    let encoder = TelegramEncoder {
        pacer: preset::pacer(&key, settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

pub struct TelegramEncoder {
    settings: TelegramSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for TelegramEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let mut body = json!({
            "chat_id": self.settings.chat_id,
            "text": self.settings.text.render(envelope)?,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(thread) = self.settings.message_thread_id {
            body["message_thread_id"] = json!(thread);
        }
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
