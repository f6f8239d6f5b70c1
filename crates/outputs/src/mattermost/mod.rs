//! `type: mattermost` — a Mattermost incoming webhook (`POST /hooks/{id}`), one attachment per
//! alert, coloured by priority.
//!
//! Limits kept: a post's text at most 16 383 characters (Mattermost's `PostMessageMaxRunesV2`);
//! the server's rate limiter, when enabled, defaults to 10 requests a second with a burst of
//! 100, so the default pace is 10 a second. Alert text is Markdown-escaped with `@` word-joined
//! ([`Markup::Markdown`]), so it pings nobody and formats nothing. Errors read `message`; a 429
//! waits `Retry-After`.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::card::{color, truncate};
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, text_at, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<MattermostSettings>("mattermost", Audience::People);

const TEMPLATE: &str = "#### {{ priority }}: {{ rule }}\n{{ output }}\n{% for f in important %}\n**{{ f[0] }}**: {{ f[1] }}{% endfor %}";
pub(crate) const TEXT_MAX: usize = 16_383;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/message"),
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostKeys {
    /// `https://mattermost.example.com/hooks/{id}`: the id makes it a secret.
    pub webhook_url: SecretUrl,
    /// Overrides the webhook's channel, if the webhook allows it.
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_url: Option<String>,
    /// The attachment's text as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct MattermostSettings {
    keys: MattermostKeys,
    text: MessageText,
    rate: RateLimit,
}

impl OutputSettings for MattermostSettings {
    type Keys = MattermostKeys;

    fn check(keys: MattermostKeys) -> Result<Self, SettingsError> {
        let text = preset::message_text(
            keys.template.as_deref(),
            TEMPLATE,
            Markup::Markdown,
            TEXT_MAX,
        )?;
        let rate = preset::rate(keys.rate_limit, RateLimit::new(10.0, 10))?;
        Ok(MattermostSettings { keys, text, rate })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Mattermost webhook {}", self.keys.webhook_url)
    }
}

pub fn build(settings: &MattermostSettings, ctx: BuildContext) -> HttpOutput<MattermostEncoder> {
    let encoder = MattermostEncoder {
        pacer: preset::pacer(settings.keys.webhook_url.expose().as_str(), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.keys.tls),
    )
}

pub struct MattermostEncoder {
    settings: MattermostSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for MattermostEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let footer = [
            a.hostname.as_deref().unwrap_or(""),
            &a.source,
            envelope.id(),
        ];
        let keys = &self.settings.keys;
        let body = json!({
            "channel": keys.channel,
            "username": keys.username,
            "icon_url": keys.icon_url,
            "attachments": [{
                // Shown in notifications, which render no Markdown.
                "fallback": truncate(&format!("{}: {}", a.priority, a.rule), 200),
                "color": color(a.priority),
                "text": self.settings.text.render(envelope)?,
                "footer": Markup::Markdown.escape(&footer.join(" · ")),
            }],
        });
        Ok(preset::post_json(
            &keys.webhook_url,
            HeaderMap::new(),
            &preset::without_nulls(body),
        ))
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
