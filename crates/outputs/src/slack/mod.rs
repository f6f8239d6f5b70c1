//! `type: slack` — Slack incoming webhooks, in Block Kit.
//!
//! The webhook URL is the credential, so it only ever prints as `https://hooks.slack.com/…`.
//! Slack allows about one message per second per webhook: alerts waiting meanwhile are sent
//! together in one message (up to `max_alerts_per_message`), so a burst arrives complete instead
//! of being rate limited.

mod config;
mod encode;
mod response;

pub use config::{Mention, SlackConfig, SlackFormat};
pub use encode::SlackEncoder;

use std::sync::Arc;

use crate::http::{self, HttpOutput};
use crate::output::Output;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SlackConfig>("slack", Audience::People);

pub fn build(config: &SlackConfig, ctx: BuildContext) -> HttpOutput<SlackEncoder> {
    HttpOutput::new(
        SlackEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

impl OutputSettings for SlackConfig {
    type Keys = Self;

    fn check(keys: Self) -> Result<Self, SettingsError> {
        Ok(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Slack webhook {}", self.webhook_url)
    }
}

#[cfg(test)]
mod tests;
