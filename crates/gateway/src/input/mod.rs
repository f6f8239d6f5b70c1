//! Inputs: where alerts come from besides `POST /`.
//!
//! Today that is a Kafka topic: sensors produce to it, and every gateway replica consumes it
//! in one consumer group, so adding replicas spreads the partitions among them. Whatever the
//! input, an alert enters the spool through the same [`Intake`](crate::intake::Intake) as an
//! HTTP one, and its position in the input is acknowledged only after it is durable.

pub mod kafka;

use serde_json::{Map, Value};

pub use kafka::KafkaInputConfig;

/// One configured input.
#[derive(Debug, Clone)]
pub enum InputConfig {
    Kafka(KafkaInputConfig),
}

impl InputConfig {
    /// Reads one `inputs[i]` entry; an error carries the failing key's path below the entry.
    pub fn parse(mut map: Map<String, Value>) -> Result<InputConfig, (String, String)> {
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(("type".to_string(), "must be a string".to_string())),
            None => return Err(("type".to_string(), "is required (kafka)".to_string())),
        };
        match kind.as_str() {
            "kafka" => {
                let config: KafkaInputConfig = serde_path_to_error::deserialize(Value::Object(map))
                    .map_err(|e| {
                        let at = e.path().to_string();
                        let at = if at == "." { String::new() } else { at };
                        (at, e.into_inner().to_string())
                    })?;
                config.check()?;
                Ok(InputConfig::Kafka(config))
            }
            other => Err((
                "type".to_string(),
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
