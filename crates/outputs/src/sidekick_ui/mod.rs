//! `type: falcosidekick_ui` — alerts into a running falcosidekick-ui, so its users keep the UI
//! they have: `POST /api/v1/` with `{"event": FALCO_PAYLOAD, "outputs": [NAME, …]}`, as
//! Falcosidekick's `webui` output sends.
//!
//! The UI validates strictly and answers 400 to what it refuses, so the event is shaped to pass:
//! a uuid that is not a UUID (a sender's own id) becomes one derived from it (the same one on
//! every retry), and characters the UI refuses (non-ASCII in the output; non-printable in the
//! rule, priority, source and hostname) are written as `\u{…}`.

mod encode;

pub use encode::{event, SidekickUiEncoder};

use std::sync::Arc;

use serde::Deserialize;

use crate::http::{self, HttpOutput, Tls};
use crate::output::Output;
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType =
    OutputType::new::<SidekickUiSettings>("falcosidekick_ui", Audience::People);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidekickUiConfig {
    /// The UI's address (`http://falcosidekick-ui:2802`); `/api/v1/` is added unless given.
    pub url: SecretUrl,
    /// The names the UI lists as outputs (default `["Peregrine"]`).
    #[serde(default = "default_outputs")]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub tls: Tls,
}

fn default_outputs() -> Vec<String> {
    vec!["Peregrine".to_string()]
}

/// The checked settings a falcosidekick-ui output runs with.
#[derive(Debug, Clone)]
pub struct SidekickUiSettings {
    pub ingest_url: SecretUrl,
    pub outputs: Vec<String>,
    pub tls: Tls,
}

impl OutputSettings for SidekickUiSettings {
    type Keys = SidekickUiConfig;

    fn check(keys: SidekickUiConfig) -> Result<Self, SettingsError> {
        if keys.outputs.iter().any(|o| o.is_empty()) {
            return Err(SettingsError::new("outputs", "names must not be empty"));
        }
        let ingest_url = if keys.url.expose().path().ends_with("/api/v1/") {
            keys.url
        } else {
            keys.url.endpoint("/api/v1/", None)
        };
        Ok(SidekickUiSettings {
            ingest_url,
            outputs: keys.outputs,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("falcosidekick-ui {}", self.ingest_url)
    }
}

pub fn build(settings: &SidekickUiSettings, ctx: BuildContext) -> HttpOutput<SidekickUiEncoder> {
    HttpOutput::new(
        SidekickUiEncoder::new(settings),
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

#[cfg(test)]
mod tests;
