//! `type: pagerduty` — PagerDuty Events API v2 (`POST /v2/enqueue`).
//!
//! Every alert is a `trigger` with a `dedup_key` built from the alert's fingerprint, so a retry,
//! a replay after a restart, or a second gateway sending the same alert all land on one open
//! PagerDuty alert instead of paging twice. The routing key is the credential and never prints.

mod config;
mod encode;
mod response;

pub use config::{PagerDutyConfig, Region};
pub use encode::{severity, PagerDutyEncoder};

use std::sync::Arc;

use crate::http::{self, HttpOutput};
use crate::output::Output;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<PagerDutyConfig>("pagerduty", Audience::People);

pub fn build(config: &PagerDutyConfig, ctx: BuildContext) -> HttpOutput<PagerDutyEncoder> {
    HttpOutput::new(
        PagerDutyEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

impl OutputSettings for PagerDutyConfig {
    type Keys = Self;

    fn check(keys: Self) -> Result<Self, SettingsError> {
        keys.check_together()?;
        Ok(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!(
            "PagerDuty events {} (routing key ***, dedup_key {})",
            self.endpoint(),
            self.dedup_key
        )
    }
}

#[cfg(test)]
mod tests;
