//! `type: teams` — Microsoft Teams through a Workflows webhook (Adaptive Card, the default) or a
//! legacy Office 365 connector (`format: messagecard`).
//!
//! Workflows accept only Adaptive Cards wrapped in a `message`, answer `202` with an empty body
//! once the flow run is queued, and reject messages over 28 KB; connectors are being retired.

mod config;
mod encode;

pub use config::{TeamsConfig, TeamsFormat};
pub use encode::{TeamsEncoder, MAX_BYTES};

use crate::config::BuildContext;
use crate::http::{self, HttpOutput};

pub fn build(config: &TeamsConfig, ctx: BuildContext) -> HttpOutput<TeamsEncoder> {
    HttpOutput::new(
        TeamsEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

#[cfg(test)]
mod tests;
