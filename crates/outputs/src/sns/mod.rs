//! `type: sns` — Amazon SNS through the AWS SDK (connection and errors shared in `crate::aws`).
//!
//! Up to 10
//! alerts go in one `PublishBatch` and each entry's result is read. On FIFO topics the alert's
//! uuid is the `MessageDeduplicationId`, so a retry within SNS's five-minute window is dropped
//! by SNS instead of delivered twice.

mod config;
mod encode;

pub use crate::aws::{attribute_name, Attributes};
pub use config::{SnsConfig, SnsFormat, SnsSettings};
pub use encode::{message, Message, MAX_BYTES};

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use tokio::sync::OnceCell;

use crate::aws::batch::{self, FailedEntry};
use crate::aws::response::{self, Codes};
use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SnsSettings>("sns", Audience::Systems);

/// Codes SNS documents for Publish and PublishBatch, with whether they pass.
const CODES: Codes = &[
    ("Throttled", true),
    ("KMSThrottling", true),
    ("InvalidParameter", false),
    ("InvalidParameterValue", false),
    ("NotFound", false),
    ("AuthorizationError", false),
    ("InvalidSecurity", false),
    ("KMSDisabled", false),
    ("KMSInvalidState", false),
    ("KMSNotFound", false),
    ("KMSOptInRequired", false),
    ("KMSAccessDenied", false),
    ("EndpointDisabled", false),
    ("ValidationError", false),
    ("BatchRequestTooLong", false),
];

impl OutputSettings for SnsSettings {
    type Keys = SnsConfig;

    fn check(keys: SnsConfig) -> Result<Self, SettingsError> {
        SnsSettings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(SnsOutput::new(self))
    }

    fn describe(&self) -> String {
        SnsSettings::describe(self)
    }
}

pub struct SnsOutput {
    settings: SnsSettings,
    client: OnceCell<aws_sdk_sns::Client>,
}

impl SnsOutput {
    pub fn new(settings: &SnsSettings) -> Self {
        SnsOutput {
            settings: settings.clone(),
            client: OnceCell::new(),
        }
    }

    /// One SDK client for the output's life, made on first use (loading credentials is async).
    async fn client(&self) -> &aws_sdk_sns::Client {
        self.client
            .get_or_init(|| async {
                aws_sdk_sns::Client::new(&self.settings.connection.sdk_config().await)
            })
            .await
    }

    fn attributes(m: &Message) -> Option<HashMap<String, MessageAttributeValue>> {
        if m.attributes.is_empty() {
            return None;
        }
        Some(
            m.attributes
                .iter()
                .map(|(k, v)| {
                    let value = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                        .expect("data_type is set");
                    (k.clone(), value)
                })
                .collect(),
        )
    }

    async fn publish_one(&self, e: &Envelope, m: Message) -> ItemResult {
        let mut req = self
            .client()
            .await
            .publish()
            .topic_arn(&self.settings.keys.topic_arn)
            .message(m.body.clone())
            .set_subject(m.subject.clone())
            .set_message_attributes(Self::attributes(&m));
        if self.settings.fifo {
            req = req
                .message_group_id(self.settings.message_group.render(e.alert()))
                .message_deduplication_id(e.id());
        }
        match req.send().await {
            Ok(_) => ItemResult::Delivered,
            Err(err) => response::classify(CODES, &err).item(),
        }
    }

    async fn publish_batch(
        &self,
        batch: &[Envelope],
        messages: Vec<(usize, Message)>,
    ) -> Vec<(usize, ItemResult)> {
        let entries: Vec<PublishBatchRequestEntry> = messages
            .iter()
            .map(|(i, m)| {
                let mut entry = PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(m.body.clone())
                    .set_subject(m.subject.clone())
                    .set_message_attributes(Self::attributes(m));
                if self.settings.fifo {
                    entry = entry
                        .message_group_id(self.settings.message_group.render(batch[*i].alert()))
                        .message_deduplication_id(batch[*i].id());
                }
                entry.build().expect("id and message are set")
            })
            .collect();
        let result = self
            .client()
            .await
            .publish_batch()
            .topic_arn(&self.settings.keys.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        let sent: Vec<usize> = messages.iter().map(|(i, _)| *i).collect();
        match result {
            Ok(out) => batch::entry_results(
                &sent,
                out.successful().iter().filter_map(|ok| ok.id()),
                out.failed().iter().map(|f| FailedEntry {
                    id: f.id(),
                    code: f.code(),
                    message: f.message().unwrap_or(""),
                    sender_fault: f.sender_fault(),
                }),
                CODES,
                "SNS",
            ),
            Err(err) => {
                let r = response::classify(CODES, &err).item();
                sent.iter().map(|i| (*i, r.clone())).collect()
            }
        }
    }
}

#[async_trait]
impl Output for SnsOutput {
    fn kind(&self) -> &'static str {
        "sns"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut ready = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            match message(
                e,
                self.settings.keys.format,
                self.settings.keys.subject.as_ref(),
                &self.settings.keys.message_attributes,
            ) {
                Some(m) => ready.push((i, m)),
                None => {
                    items[i] = Some(ItemResult::Permanent(
                        Failure::new(None, "larger than SNS's 256 KiB even with its fields cut")
                            .with_code("too_large"),
                    ))
                }
            }
        }
        // Entries of one PublishBatch share its 256 KiB: send in groups that fit.
        let groups = batch::groups(ready, 10, MAX_BYTES, Message::size);
        for group in groups {
            if let [(i, _)] = group.as_slice() {
                let i = *i;
                let (_, m) = group.into_iter().next().expect("one");
                items[i] = Some(self.publish_one(&batch[i], m).await);
            } else {
                for (i, r) in self.publish_batch(batch, group).await {
                    items[i] = Some(r);
                }
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
