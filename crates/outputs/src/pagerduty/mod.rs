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

use crate::config::BuildContext;
use crate::http::{self, HttpOutput};

pub fn build(config: &PagerDutyConfig, ctx: BuildContext) -> HttpOutput<PagerDutyEncoder> {
    HttpOutput::new(
        PagerDutyEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

#[cfg(test)]
mod tests;
