//! `type: gotify` — a message to a Gotify server (`POST /message` with the application's token
//! in `X-Gotify-Key`), shown as Markdown (`extras.client::display.contentType`).
//!
//! Gotify documents no length limit and no rate limit of its own; messages are kept to 4 096
//! characters so they stay readable on a phone, and a 429 from a proxy in front of it pauses
//! the output as `Retry-After` says. Alert text is Markdown-escaped ([`Markup::Markdown`]).
//! Falco's priorities map onto Gotify's 0 to 10 (8 and above is "high" in its clients):
//! Emergency 10, Alert 9, Critical 8, Error 7, Warning 5, Notice 4, Informational 2, Debug 1.
//! Errors read `errorDescription`.

use std::sync::Arc;

use peregrine_engine::Priority;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::card::truncate;
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::preset::{self, text_at, Dialect, Markup, MessageText};
use crate::secret::{Secret, SecretUrl};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<GotifySettings>("gotify", Audience::People);

const TEMPLATE: &str =
    "{{ output }}\n{% for f in important %}\n- **{{ f[0] }}**: {{ f[1] }}{% endfor %}";
pub(crate) const MESSAGE_MAX: usize = 4096;
const TITLE_MAX: usize = 250;
const DIALECT: Dialect = Dialect {
    reason: |b| text_at(b, "/errorDescription"),
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GotifyKeys {
    /// The server (`https://gotify.example.com`); `/message` is added.
    pub url: SecretUrl,
    /// The application's token.
    pub token: Secret,
    /// The message as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct GotifySettings {
    url: SecretUrl,
    headers: HeaderMap,
    text: MessageText,
    tls: Tls,
}

impl OutputSettings for GotifySettings {
    type Keys = GotifyKeys;

    fn check(keys: GotifyKeys) -> Result<Self, SettingsError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-gotify-key",
            preset::secret_header(keys.token.expose(), "token")?,
        );
        Ok(GotifySettings {
            url: keys.url.endpoint("/message", None),
            headers,
            text: preset::message_text(
                keys.template.as_deref(),
                TEMPLATE,
                Markup::Markdown,
                MESSAGE_MAX,
            )?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Gotify {}", self.url)
    }
}

pub fn build(settings: &GotifySettings, ctx: BuildContext) -> HttpOutput<GotifyEncoder> {
    let encoder = GotifyEncoder {
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

/// Gotify's priority for a Falco priority.
pub fn priority(p: Priority) -> u8 {
    match p {
        Priority::Emergency => 10,
        Priority::Alert => 9,
        Priority::Critical => 8,
        Priority::Error => 7,
        Priority::Warning => 5,
        Priority::Notice => 4,
        Priority::Informational => 2,
        Priority::Debug => 1,
    }
}

pub struct GotifyEncoder {
    settings: GotifySettings,
}

impl HttpEncoder for GotifyEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let body = json!({
            // The title is shown as plain text by every client.
            "title": truncate(&format!("{}: {}", a.priority, a.rule), TITLE_MAX),
            "message": self.settings.text.render(envelope)?,
            "priority": priority(a.priority),
            "extras": {"client::display": {"contentType": "text/markdown"}},
        });
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
