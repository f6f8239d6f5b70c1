//! Inputs: where alerts come from besides `POST /`.
//!
//! Today that is a Kafka topic: sensors produce to it, and every gateway replica consumes it
//! in one consumer group, so adding replicas spreads the partitions among them. Whatever the
//! input, an alert enters the spool through the same [`Intake`](crate::intake::Intake) as an
//! HTTP one, and its position in the input is acknowledged only after it is durable.

pub mod kafka;

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use peregrine_outputs::settings::{parse_keys, SettingsError};

use crate::intake::Intake;
pub use kafka::KafkaInputConfig;

/// One configured input.
#[derive(Debug, Clone)]
pub enum InputConfig {
    Kafka(KafkaInputConfig),
}

impl InputConfig {
    /// Reads one `inputs[i]` entry; an error carries the failing key's path below the entry.
    pub fn parse(mut map: Map<String, Value>) -> Result<InputConfig, SettingsError> {
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(SettingsError::new("type", "must be a string")),
            None => return Err(SettingsError::new("type", "is required (kafka)")),
        };
        match kind.as_str() {
            "kafka" => {
                let config: KafkaInputConfig = parse_keys(Value::Object(map))?;
                config.check()?;
                Ok(InputConfig::Kafka(config))
            }
            other => Err(SettingsError::new(
                "type",
                format!("unknown input type '{other}' (expected kafka)"),
            )),
        }
    }

    /// A one-line description for the log, without secrets.
    pub fn describe(&self) -> String {
        match self {
            InputConfig::Kafka(c) => format!(
                "Kafka topic {} on {} as group {}",
                c.topic,
                c.brokers.0.join(","),
                c.group_id
            ),
        }
    }
}

/// The inputs that are running, started and stopped together.
pub struct InputSet {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl InputSet {
    /// Starts every input; each stops when `parent` is cancelled or the set is stopped.
    pub fn start(
        inputs: &[InputConfig],
        intake: &Intake,
        max_body_bytes: usize,
        parent: &CancellationToken,
    ) -> InputSet {
        let stop = parent.child_token();
        let mut tasks = JoinSet::new();
        for input in inputs {
            tracing::info!(from = %input.describe(), "input ready");
            match input.clone() {
                InputConfig::Kafka(c) => {
                    tasks.spawn(kafka::run(c, intake.clone(), max_body_bytes, stop.clone()));
                }
            }
        }
        InputSet { stop, tasks }
    }

    /// Stops the inputs and waits until each has stored its batch and committed its offsets.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
