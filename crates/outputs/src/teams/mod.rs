//! `type: teams` — Microsoft Teams through a Workflows webhook (Adaptive Card, the default) or a
//! legacy Office 365 connector (`format: messagecard`).
//!
//! Workflows accept only Adaptive Cards wrapped in a `message`, answer `202` with an empty body
//! once the flow run is queued, and reject messages over 28 KB; connectors are being retired.

mod config;
mod encode;

pub use config::{TeamsConfig, TeamsFormat};
pub use encode::{TeamsEncoder, MAX_BYTES};

use std::sync::Arc;

use crate::http::{self, HttpOutput};
use crate::output::Output;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<TeamsConfig>("teams", Audience::People);

pub fn build(config: &TeamsConfig, ctx: BuildContext) -> HttpOutput<TeamsEncoder> {
    HttpOutput::new(
        TeamsEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

impl OutputSettings for TeamsConfig {
    type Keys = Self;

    fn check(keys: Self) -> Result<Self, SettingsError> {
        Ok(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Teams {:?} webhook {}", self.format, self.webhook_url)
    }
}

#[cfg(test)]
mod tests;
