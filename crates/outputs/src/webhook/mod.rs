//! `type: webhook` — each alert POSTed (or PUT) as Falco JSON, with its `uuid`, to a URL.
//!
//! One alert per request, like Falcosidekick's webhook: receivers written for Falco's
//! `http_output` take the body unchanged.

mod config;
mod encode;

pub use config::{WebhookConfig, WebhookMethod};
pub use encode::WebhookEncoder;

use crate::config::BuildContext;
use crate::http::{self, HttpOutput};

pub fn build(config: &WebhookConfig, ctx: BuildContext) -> HttpOutput<WebhookEncoder> {
    HttpOutput::new(
        WebhookEncoder::new(config),
        http::client_with_tls(ctx.max_in_flight, &config.tls),
    )
}

#[cfg(test)]
mod tests;
