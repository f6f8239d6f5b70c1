//! `type: exec` — an output written in any language: a long-running child process that takes
//! batches on stdin and answers per alert on stdout (`docs/plugins.md`, protocol version 1).
//!
//! The plugin only delivers; retries, `Retry-After` pauses, dead letters, routing, storm control
//! and metrics are the same as every built-in output's. One batch is in the pipe at a time. A
//! plugin that exits, writes something that is not an answer, or does not answer within the
//! output's `timeout` is stopped and started again with a growing wait, and the batch is tried
//! again.

mod config;
mod process;
pub mod protocol;

pub use config::{ExecConfig, ExecSettings};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};
use process::Process;

/// A plugin usually reaches people (tickets, chat, incidents), so storm control (`dedup`) may be
/// set on it; like on every output, it is off unless set.
/// One batch is in the pipe at a time, so one is in flight: a second would spend its attempt's
/// timeout waiting for the first.
pub const TYPE: OutputType =
    OutputType::new::<ExecSettings>("exec", Audience::People).with_max_in_flight(1);

impl OutputSettings for ExecSettings {
    type Keys = ExecConfig;

    fn check(keys: ExecConfig) -> Result<Self, SettingsError> {
        ExecSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(ExecOutput::new(self, ctx))
    }

    fn describe(&self) -> String {
        ExecSettings::describe(self)
    }
}

/// How much sooner than the retry core's attempt timeout a silent plugin is given up on, so it
/// is stopped here rather than left with a batch in its pipe.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(50);

pub struct ExecOutput {
    settings: ExecSettings,
    name: String,
    answer_within: Duration,
    plugin: Mutex<Plugin>,
    /// Stops and failed starts of the plugin, for `Output::restarts`.
    restarts: Arc<AtomicU64>,
}

struct Plugin {
    process: Process,
    next_batch: u64,
    /// A batch was written and its answer not read (the attempt was dropped): the pipe is out
    /// of step, so the plugin is restarted before the next batch.
    exchanging: bool,
}

impl ExecOutput {
    pub fn new(settings: &ExecSettings, ctx: BuildContext) -> Self {
        let restarts = Arc::new(AtomicU64::new(0));
        ExecOutput {
            settings: settings.clone(),
            name: ctx.name,
            answer_within: ctx
                .timeout
                .saturating_sub(TIMEOUT_MARGIN)
                .max(TIMEOUT_MARGIN),
            restarts: restarts.clone(),
            plugin: Mutex::new(Plugin {
                process: Process::new(restarts),
                next_batch: 1,
                exchanging: false,
            }),
        }
    }
}

#[async_trait]
impl Output for ExecOutput {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut plugin = self.plugin.lock().await;
        let plugin = &mut *plugin;
        if plugin.exchanging {
            plugin.exchanging = false;
            plugin
                .process
                .restart_later(&self.name, "an earlier batch was abandoned mid-answer");
        }
        let running = match plugin.process.running(&self.settings, &self.name) {
            Ok(running) => running,
            Err(wait) => {
                let failure = Failure::new(
                    None,
                    "the plugin is not running; it is started again shortly",
                )
                .with_code("plugin_down");
                return Delivery::RetryAfter(failure, wait);
            }
        };
        let id = plugin.next_batch;
        plugin.next_batch += 1;
        let line = protocol::batch_line(id, batch);
        plugin.exchanging = true;
        let answer = tokio::time::timeout(self.answer_within, running.exchange(&line)).await;
        plugin.exchanging = false;
        let broken = match answer {
            Ok(Ok(answer)) => match protocol::read_answer(&answer, id, batch.len()) {
                Ok(delivery) => {
                    plugin.process.succeeded();
                    return delivery;
                }
                Err(why) => why,
            },
            Ok(Err(why)) => why,
            Err(_) => format!(
                "the plugin did not answer within {} ms",
                self.answer_within.as_millis()
            ),
        };
        plugin.process.restart_later(&self.name, &broken);
        Delivery::Retry(Failure::new(None, broken).with_code("plugin_broken"))
    }
}

#[cfg(test)]
mod tests;
