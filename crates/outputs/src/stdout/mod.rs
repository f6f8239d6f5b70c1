//! `type: stdout` — each alert as one JSON line on standard output, for `make run` and pipes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::output::Output;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<StdoutConfig>("stdout", Audience::Systems);

/// No keys of its own.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl OutputSettings for StdoutConfig {
    type Keys = Self;

    fn check(keys: Self) -> Result<Self, SettingsError> {
        Ok(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(StdoutOutput::new(self))
    }

    fn describe(&self) -> String {
        "standard output".to_string()
    }
}

pub struct StdoutOutput {
    // Serialises writers so concurrent deliveries never interleave inside a line.
    out: Mutex<tokio::io::Stdout>,
}

impl StdoutOutput {
    pub fn new(_config: &StdoutConfig) -> Self {
        StdoutOutput {
            out: Mutex::new(tokio::io::stdout()),
        }
    }
}

#[async_trait]
impl Output for StdoutOutput {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut text = Vec::with_capacity(batch.iter().map(|e| e.json.len() + 1).sum());
        for envelope in batch {
            text.extend_from_slice(&envelope.json);
            text.push(b'\n');
        }
        let mut out = self.out.lock().await;
        match out.write_all(&text).await {
            Ok(()) => match out.flush().await {
                Ok(()) => Delivery::Delivered,
                Err(e) => Delivery::Retry(Failure::new(None, format!("stdout: {e}"))),
            },
            Err(e) => Delivery::Retry(Failure::new(None, format!("stdout: {e}"))),
        }
    }
}
