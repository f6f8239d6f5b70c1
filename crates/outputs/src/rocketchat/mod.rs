//! `type: rocketchat` — a Rocket.Chat incoming webhook (`POST /hooks/{id}/{token}`), one
//! attachment per alert, coloured by priority.
//!
//! Limits kept: a message at most 5 000 characters (`Message_MaxAllowedSize`'s default); the
//! REST rate limiter's default of 10 calls a minute per endpoint, so the default pace is one
//! message every 6 seconds with a burst of 10. Alert text is Markdown-escaped with `@`
//! word-joined ([`Markup::Markdown`]), so `@all` and `@here` from an alert notify nobody.
//! Rocket.Chat answers `{"success": false, "error": …}`; its 429 says how long to wait only in
//! the error's words ("You must wait 55 seconds"), which are read.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

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

pub const TYPE: OutputType = OutputType::new::<RocketChatSettings>("rocketchat", Audience::People);

const TEMPLATE: &str = "*{{ priority }}: {{ rule }}*\n{{ output }}\n{% for f in important %}\n*{{ f[0] }}*: {{ f[1] }}{% endfor %}";
pub(crate) const TEXT_MAX: usize = 5000;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/error"),
    wait: wait_in_words,
};

/// "… You must wait 55 seconds before trying this endpoint again. …"
fn wait_in_words(body: &Value) -> Option<Duration> {
    let error = body.get("error")?.as_str()?;
    let after = &error[error.find("must wait ")? + "must wait ".len()..];
    let secs: u64 = after.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketChatKeys {
    /// `https://chat.example.com/hooks/{id}/{token}`: the token makes it a secret.
    pub webhook_url: SecretUrl,
    /// Overrides the integration's channel (`#security`, `@user`).
    pub channel: Option<String>,
    /// Overrides the integration's name.
    pub alias: Option<String>,
    pub avatar: Option<String>,
    /// The attachment's text as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct RocketChatSettings {
    keys: RocketChatKeys,
    text: MessageText,
    rate: RateLimit,
}

impl OutputSettings for RocketChatSettings {
    type Keys = RocketChatKeys;

    fn check(keys: RocketChatKeys) -> Result<Self, SettingsError> {
        let text = preset::message_text(
            keys.template.as_deref(),
            TEMPLATE,
            Markup::Markdown,
            TEXT_MAX,
        )?;
        let rate = preset::rate(keys.rate_limit, RateLimit::new(10.0 / 60.0, 10))?;
        Ok(RocketChatSettings { keys, text, rate })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Rocket.Chat webhook {}", self.keys.webhook_url)
    }
}

pub fn build(settings: &RocketChatSettings, ctx: BuildContext) -> HttpOutput<RocketChatEncoder> {
    let encoder = RocketChatEncoder {
        pacer: preset::pacer(settings.keys.webhook_url.expose().as_str(), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.keys.tls),
    )
}

pub struct RocketChatEncoder {
    settings: RocketChatSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for RocketChatEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let keys = &self.settings.keys;
        let summary = format!("{}: {}", a.priority, a.rule);
        let body = json!({
            // The message line notifications show: escaped, as it is rendered too.
            "text": Markup::Markdown.escape(&truncate(&summary, 200)),
            "channel": keys.channel,
            "alias": keys.alias,
            "avatar": keys.avatar,
            "attachments": [{
                "color": color(a.priority),
                "text": self.settings.text.render(envelope)?,
                "ts": preset::time_millis(a.time),
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
