//! `type: sns` — Amazon SNS through the AWS SDK.
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity, ECS, IMDS),
//! optionally exchanged for a role (`role_arn`, `external_id`). The SDK's own retries are off:
//! the shared retry core retries, so retries are counted like every other output's. Up to 10
//! alerts go in one `PublishBatch` and each entry's result is read. On FIFO topics the alert's
//! uuid is the `MessageDeduplicationId`, so a retry within SNS's five-minute window is dropped
//! by SNS instead of delivered twice.

mod config;
mod encode;
mod response;

pub use config::{Attributes, SnsConfig, SnsFormat, SnsSettings};
pub use encode::{attribute_name, message, Message, MAX_BYTES};

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use tokio::sync::OnceCell;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SnsSettings>("sns", Audience::Systems);

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
                let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(self.settings.region.clone()))
                    .load()
                    .await;
                let mut builder = aws_sdk_sns::config::Builder::from(&base)
                    .retry_config(aws_config::retry::RetryConfig::disabled());
                if let Some(role) = &self.settings.keys.role_arn {
                    let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
                        .session_name("peregrine")
                        .configure(&base);
                    if let Some(id) = &self.settings.keys.external_id {
                        assume = assume.external_id(id);
                    }
                    builder = builder.credentials_provider(assume.build().await);
                }
                if let Some(url) = &self.settings.keys.endpoint_url {
                    builder = builder.endpoint_url(url.expose().as_str());
                }
                aws_sdk_sns::Client::from_conf(builder.build())
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
                .message_group_id(self.settings.message_group.render(&e.alert))
                .message_deduplication_id(e.id());
        }
        match req.send().await {
            Ok(_) => ItemResult::Delivered,
            Err(err) => {
                let c = response::classify(&err);
                if c.retry {
                    ItemResult::Retry(c.failure)
                } else {
                    ItemResult::Permanent(c.failure)
                }
            }
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
                        .message_group_id(self.settings.message_group.render(&batch[*i].alert))
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
        match result {
            Ok(out) => {
                let mut results: HashMap<usize, ItemResult> = HashMap::new();
                for ok in out.successful() {
                    if let Some(i) = ok.id().and_then(|id| id.parse().ok()) {
                        results.insert(i, ItemResult::Delivered);
                    }
                }
                for failed in out.failed() {
                    let Ok(i) = failed.id().parse::<usize>() else {
                        continue;
                    };
                    let c = response::by_code(failed.code(), failed.message().unwrap_or(""), None);
                    let retry = c.retry || !failed.sender_fault();
                    results.insert(
                        i,
                        if retry {
                            ItemResult::Retry(c.failure)
                        } else {
                            ItemResult::Permanent(c.failure)
                        },
                    );
                }
                messages
                    .iter()
                    .map(|(i, _)| {
                        let r = results.remove(i).unwrap_or_else(|| {
                            ItemResult::Retry(Failure::new(
                                None,
                                "SNS returned no result for this entry",
                            ))
                        });
                        (*i, r)
                    })
                    .collect()
            }
            Err(err) => {
                let c = response::classify(&err);
                let r = if c.retry {
                    ItemResult::Retry(c.failure)
                } else {
                    ItemResult::Permanent(c.failure)
                };
                messages.iter().map(|(i, _)| (*i, r.clone())).collect()
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
        let mut groups: Vec<Vec<(usize, Message)>> = Vec::new();
        let mut size = 0;
        for (i, m) in ready {
            let s = m.size();
            match groups.last_mut() {
                Some(g) if size + s <= MAX_BYTES && g.len() < 10 => {
                    size += s;
                    g.push((i, m));
                }
                _ => {
                    size = s;
                    groups.push(vec![(i, m)]);
                }
            }
        }
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
        let items: Vec<ItemResult> = items
            .into_iter()
            .map(|r| r.expect("every item has a result"))
            .collect();
        if items.iter().all(|r| *r == ItemResult::Delivered) {
            Delivery::Delivered
        } else if batch.len() == 1 {
            match items.into_iter().next().expect("one") {
                ItemResult::Permanent(f) => Delivery::Permanent(f),
                ItemResult::Retry(f) => Delivery::Retry(f),
                ItemResult::Delivered => Delivery::Delivered,
            }
        } else {
            Delivery::Partial(items)
        }
    }
}

#[cfg(test)]
mod tests;
