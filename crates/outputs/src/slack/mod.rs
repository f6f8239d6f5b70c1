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

use crate::config::BuildContext;
use crate::http::{self, HttpOutput};

pub fn build(config: &SlackConfig, ctx: BuildContext) -> HttpOutput<SlackEncoder> {
    HttpOutput::new(
        SlackEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

#[cfg(test)]
mod tests;
