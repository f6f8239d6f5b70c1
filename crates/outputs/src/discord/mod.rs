//! `type: discord` — a Discord channel webhook (`POST /api/webhooks/{id}/{token}`), one embed
//! per alert.
//!
//! Limits kept (Discord's "Execute Webhook" and embed limits): an embed title at most 256
//! characters, a description 4 096, a footer 2 048; a webhook takes 5 requests in 2 seconds and a
//! channel 30 a minute, so the default pace is one message every 2 seconds with a burst of 5.
//! Alert text is Markdown-escaped ([`Markup::Markdown`]) and `allowed_mentions` is empty, so
//! nothing in an alert pings anyone. A 429's wait is read from `Retry-After` or the body's
//! `retry_after` (seconds, fractional).

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, seconds_at, text_at, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<DiscordSettings>("discord", Audience::People);

/// The embed's description: the output, then the fields a responder looks at first.
const TEMPLATE: &str =
    "{{ output }}\n{% for f in important %}\n**{{ f[0] }}**: {{ f[1] }}{% endfor %}";
const DESCRIPTION_MAX: usize = 4096;
const TITLE_MAX: usize = 256;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/message"),
    wait: |b| seconds_at(b, "/retry_after"),
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordKeys {
    /// `https://discord.com/api/webhooks/{id}/{token}`: the token makes it a secret.
    pub webhook_url: SecretUrl,
    /// Overrides the webhook's name (Discord refuses names containing "discord" or "clyde").
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// The embed's description as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct DiscordSettings {
    url: SecretUrl,
    username: Option<String>,
    avatar_url: Option<String>,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for DiscordSettings {
    type Keys = DiscordKeys;

    fn check(keys: DiscordKeys) -> Result<Self, SettingsError> {
        if let Some(name) = &keys.username {
            let lower = name.to_lowercase();
            if name.is_empty() || name.chars().count() > 80 {
                return Err(SettingsError::new("username", "must be 1 to 80 characters"));
            }
            if lower.contains("discord") || lower.contains("clyde") {
                return Err(SettingsError::new(
                    "username",
                    "Discord refuses names containing \"discord\" or \"clyde\"",
                ));
            }
        }
        Ok(DiscordSettings {
            url: keys.webhook_url,
            username: keys.username,
            avatar_url: keys.avatar_url,
            text: preset::message_text(
                keys.template.as_deref(),
                TEMPLATE,
                Markup::Markdown,
                DESCRIPTION_MAX,
            )?,
            rate: preset::rate(keys.rate_limit, RateLimit::new(0.5, 5))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Discord webhook {}", self.url)
    }
}

pub fn build(settings: &DiscordSettings, ctx: BuildContext) -> HttpOutput<DiscordEncoder> {
    let encoder = DiscordEncoder {
        pacer: preset::pacer(settings.url.expose().as_str(), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

pub struct DiscordEncoder {
    settings: DiscordSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for DiscordEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let title = Markup::Markdown.escape(&format!("{}: {}", a.priority, a.rule));
        let footer = [
            a.hostname.as_deref().unwrap_or(""),
            &a.source,
            envelope.id(),
        ];
        let mut body = json!({
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": Markup::Markdown.cut(&title, TITLE_MAX),
                "description": self.settings.text.render(envelope)?,
                "color": preset::color_number(a.priority),
                "timestamp": preset::time_millis(a.time),
                "footer": {"text": footer.join(" · ")},
            }],
        });
        if let Some(name) = &self.settings.username {
            body["username"] = json!(name);
        }
        if let Some(avatar) = &self.settings.avatar_url {
            body["avatar_url"] = json!(avatar);
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
