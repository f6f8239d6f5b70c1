//! `type: rabbitmq` — AMQP 0-9-1 publishes with publisher confirms (`lapin`).
//!
//! A batch is published on a fresh channel in confirm mode and counts alert by alert: an alert
//! is delivered when the broker acks it, retried when it nacks it or the connection breaks
//! before the ack. Publishes are `mandatory`, so an alert no queue is bound for comes back
//! (`NO_ROUTE`) and is retried, then dead-lettered, instead of vanishing. Messages are the
//! alert's JSON, persistent by default, with `message_id` = the alert's uuid, the alert's time,
//! and `priority`, `rule` and `source` headers for consumers' bindings. The connection is made
//! on first use and again after any error.

mod config;

pub use config::{RabbitMqKeys, RabbitMqSettings};

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<RabbitMqSettings>("rabbitmq", Audience::Systems);

impl OutputSettings for RabbitMqSettings {
    type Keys = RabbitMqKeys;

    fn check(keys: RabbitMqKeys) -> Result<Self, SettingsError> {
        RabbitMqSettings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(RabbitMqOutput {
            settings: self.clone(),
            connection: Mutex::new(None),
        })
    }

    fn describe(&self) -> String {
        let exchange = if self.exchange.is_empty() {
            "(default)"
        } else {
            &self.exchange
        };
        format!(
            "RabbitMQ {} exchange {exchange} routing key {}",
            self.place, self.routing_key
        )
    }
}

pub struct RabbitMqOutput {
    settings: RabbitMqSettings,
    connection: Mutex<Option<Connection>>,
}

/// A failure of the connection or channel: retried, with lapin's words (they hold no URL).
fn broken(e: &lapin::Error) -> Failure {
    Failure::new(None, crate::card::truncate(&format!("AMQP: {e}"), 300)).with_code("connection")
}

impl RabbitMqOutput {
    /// A channel in confirm mode on the (re)made connection.
    async fn channel(&self) -> Result<Channel, Failure> {
        let mut guard = self.connection.lock().await;
        let connected = guard.as_ref().is_some_and(|c| c.status().connected());
        if !connected {
            let c =
                Connection::connect(self.settings.url.expose(), ConnectionProperties::default())
                    .await
                    .map_err(|e| broken(&e))?;
            *guard = Some(c);
        }
        let connection = guard.as_ref().expect("connected above");
        let channel = match connection.create_channel().await {
            Ok(c) => c,
            Err(e) => {
                *guard = None;
                return Err(broken(&e));
            }
        };
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| broken(&e))?;
        Ok(channel)
    }

    fn properties(&self, e: &Envelope) -> BasicProperties {
        let a = e.alert();
        let mut headers = FieldTable::default();
        for (k, v) in [
            ("priority", a.priority.as_str().to_string()),
            ("rule", a.rule.clone()),
            ("source", a.source.clone()),
        ] {
            headers.insert(k.into(), AMQPValue::LongString(v.into()));
        }
        let seconds = u64::try_from(a.time.unix_nanos().div_euclid(1_000_000_000)).unwrap_or(0);
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(e.id().to_string()))
            .with_timestamp(seconds)
            .with_delivery_mode(if self.settings.persistent { 2 } else { 1 })
            .with_headers(headers)
    }

    /// The broker's answer to one publish.
    fn judged(confirmation: Confirmation, routing_key: &str) -> ItemResult {
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => ItemResult::Delivered,
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                ItemResult::Retry(
                    Failure::new(
                        None,
                        format!(
                            "the broker returned it: {} {} (routing key '{}')",
                            returned.reply_code, returned.reply_text, routing_key
                        ),
                    )
                    .with_code("no_route"),
                )
            }
            Confirmation::Nack(None) => ItemResult::Retry(
                Failure::new(None, "the broker could not store it (nack)").with_code("nack"),
            ),
        }
    }

    async fn publish(&self, batch: &[Envelope]) -> Result<Vec<ItemResult>, Failure> {
        let channel = self.channel().await?;
        let mut pending = Vec::with_capacity(batch.len());
        for e in batch {
            let key = self.settings.routing_key.render(e.alert());
            let confirm = channel
                .basic_publish(
                    self.settings.exchange.as_str().into(),
                    key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &e.json,
                    self.properties(e),
                )
                .await;
            pending.push((key, confirm));
        }
        let mut items = Vec::with_capacity(batch.len());
        for (key, confirm) in pending {
            items.push(match confirm {
                Ok(c) => match c.await {
                    Ok(confirmation) => Self::judged(confirmation, &key),
                    Err(e) => ItemResult::Retry(broken(&e)),
                },
                Err(e) => ItemResult::Retry(broken(&e)),
            });
        }
        let _ = channel.close(200, "OK".into()).await;
        Ok(items)
    }
}

#[async_trait]
impl Output for RabbitMqOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        match self.publish(batch).await {
            Ok(items) => {
                if items
                    .iter()
                    .any(|r| matches!(r, ItemResult::Retry(f) if f.code == Some("connection")))
                {
                    // The connection broke mid-batch: make a new one next time.
                    *self.connection.lock().await = None;
                }
                Delivery::from_items(items)
            }
            Err(f) => {
                *self.connection.lock().await = None;
                Delivery::Retry(f)
            }
        }
    }
}

#[cfg(test)]
mod tests;
