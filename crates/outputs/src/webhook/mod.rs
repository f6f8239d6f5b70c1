//! `type: webhook` — each alert POSTed (or PUT) as Falco JSON, with its `uuid`, to a URL.
//!
//! One alert per request, like Falcosidekick's webhook: receivers written for Falco's
//! `http_output` take the body unchanged. Or the body is what `body_template` renders for the
//! alert (`template.rs`), with templated header values; `sign` adds an HMAC signature header
//! (`sign.rs`).

mod config;
mod encode;
mod sign;
mod template;

pub use config::{SignConfig, WebhookConfig, WebhookMethod, WebhookSettings};
pub use encode::WebhookEncoder;
pub use sign::{Signer, DEFAULT_HEADER as DEFAULT_SIGNATURE_HEADER};

use std::sync::Arc;

use crate::http::{self, HttpOutput};
use crate::output::Output;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<WebhookSettings>("webhook", Audience::Systems);

pub fn build(settings: &WebhookSettings, ctx: BuildContext) -> HttpOutput<WebhookEncoder> {
    HttpOutput::new(
        WebhookEncoder::new(settings),
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

impl OutputSettings for WebhookSettings {
    type Keys = WebhookConfig;

    fn check(keys: WebhookConfig) -> Result<Self, SettingsError> {
        WebhookSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        let mut extras = Vec::new();
        if self.has_body_template() {
            extras.push("body template");
        }
        if self.signer.is_some() {
            extras.push("signed");
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(" ({})", extras.join(", "))
        };
        format!("{} {}{extras}", self.method, self.url)
    }
}

#[cfg(test)]
mod tests;
