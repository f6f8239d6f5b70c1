//! `type: sqs` — Amazon SQS through the AWS SDK (connection and errors shared in `crate::aws`).
//!
//! Up to 10 alerts go in one `SendMessageBatch` and each entry's result is read: a refused
//! entry is dead-lettered or retried alone, the others are done. The message is the alert's
//! JSON (cut to fit SQS's 256 KiB when it must be), with a few fields as message attributes.
//! On FIFO queues the alert's uuid is the `MessageDeduplicationId`, so a batch retried within
//! SQS's five-minute window is stored once.

mod config;

pub use config::{SqsConfig, SqsSettings};

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tokio::sync::OnceCell;

use crate::aws::batch::{self, FailedEntry};
use crate::aws::response::{self, Codes};
use crate::aws::{attributes, attributes_size, fit_json};
use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SqsSettings>("sqs", Audience::Systems);

/// SQS's limit on a message with its attributes.
const MAX_BYTES: usize = 256 * 1024;

/// Codes SQS documents for SendMessage and SendMessageBatch, with whether they pass.
const CODES: Codes = &[
    ("KmsThrottled", true),
    ("AWS.SimpleQueueService.NonExistentQueue", false),
    ("QueueDoesNotExist", false),
    ("InvalidMessageContents", false),
    ("InvalidParameterValue", false),
    ("InvalidAddress", false),
    ("InvalidSecurity", false),
    ("UnsupportedOperation", false),
    ("BatchRequestTooLong", false),
    ("TooManyEntriesInBatchRequest", false),
    ("BatchEntryIdsNotDistinct", false),
    ("KmsAccessDenied", false),
    ("KmsDisabled", false),
    ("KmsInvalidState", false),
    ("KmsNotFound", false),
    ("KmsOptInRequired", false),
];

impl OutputSettings for SqsSettings {
    type Keys = SqsConfig;

    fn check(keys: SqsConfig) -> Result<Self, SettingsError> {
        SqsSettings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(SqsOutput {
            settings: self.clone(),
            client: OnceCell::new(),
        })
    }

    fn describe(&self) -> String {
        SqsSettings::describe(self)
    }
}

pub struct SqsOutput {
    settings: SqsSettings,
    client: OnceCell<aws_sdk_sqs::Client>,
}

/// One message, ready to send.
struct Message {
    body: String,
    attributes: Vec<(String, String)>,
}

impl Message {
    /// What SQS counts against its limit: the body, and each attribute's name, type and value.
    fn size(&self) -> usize {
        self.body.len() + attributes_size(&self.attributes)
    }
}

impl SqsOutput {
    async fn client(&self) -> &aws_sdk_sqs::Client {
        self.client
            .get_or_init(|| async {
                aws_sdk_sqs::Client::new(&self.settings.connection.sdk_config().await)
            })
            .await
    }

    fn message(&self, e: &Envelope) -> Option<Message> {
        let attributes = attributes(e.alert(), &self.settings.keys.message_attributes);
        let attr_bytes = attributes_size(&attributes);
        let body = fit_json(e, MAX_BYTES.checked_sub(attr_bytes)?)?;
        Some(Message { body, attributes })
    }

    fn entry(&self, i: usize, e: &Envelope, m: &Message) -> SendMessageBatchRequestEntry {
        let attributes: HashMap<String, MessageAttributeValue> = m
            .attributes
            .iter()
            .map(|(k, v)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .expect("data_type is set");
                (k.clone(), value)
            })
            .collect();
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(m.body.clone())
            .set_message_attributes((!attributes.is_empty()).then_some(attributes));
        if self.settings.fifo {
            entry = entry
                .message_group_id(self.settings.message_group.render(e.alert()))
                .message_deduplication_id(e.id());
        }
        entry.build().expect("id and body are set")
    }

    async fn send_group(
        &self,
        batch: &[Envelope],
        group: Vec<(usize, Message)>,
    ) -> Vec<(usize, ItemResult)> {
        let sent: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
        let entries = group
            .iter()
            .map(|(i, m)| self.entry(*i, &batch[*i], m))
            .collect();
        let result = self
            .client()
            .await
            .send_message_batch()
            .queue_url(&self.settings.keys.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => batch::entry_results(
                &sent,
                out.successful().iter().map(|ok| ok.id()),
                out.failed().iter().map(|f| FailedEntry {
                    id: f.id(),
                    code: f.code(),
                    message: f.message().unwrap_or(""),
                    sender_fault: f.sender_fault(),
                }),
                CODES,
                "SQS",
            ),
            Err(err) => {
                let r = response::classify(CODES, &err).item();
                sent.iter().map(|i| (*i, r.clone())).collect()
            }
        }
    }
}

#[async_trait]
impl Output for SqsOutput {
    fn kind(&self) -> &'static str {
        "sqs"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut ready = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            match self.message(e) {
                Some(m) => ready.push((i, m)),
                None => {
                    items[i] = Some(ItemResult::Permanent(
                        Failure::new(None, "larger than SQS's 256 KiB even with its fields cut")
                            .with_code("too_large"),
                    ))
                }
            }
        }
        for group in batch::groups(ready, 10, MAX_BYTES, Message::size) {
            for (i, r) in self.send_group(batch, group).await {
                items[i] = Some(r);
            }
        }
        Delivery::from_items(
            items
                .into_iter()
                .map(|r| r.expect("every item has a result"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
