//! `type: kinesis` — Amazon Kinesis Data Streams through the AWS SDK.
//!
//! One `PutRecords` per batch (up to 500 records, 5 MiB). Kinesis answers for every record in
//! order: a sequence number, or an error code. Throttled records
//! (`ProvisionedThroughputExceededException`) and internal failures are retried alone; the
//! record is the alert's JSON, cut to fit Kinesis's 1 MiB per record when it must be.

mod config;

pub use config::{KinesisConfig, KinesisSettings};

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::sync::OnceCell;

use crate::aws::fit_json;
use crate::aws::response::{self, by_code, Codes};
use crate::card::truncate;
use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<KinesisSettings>("kinesis", Audience::Systems);

/// Kinesis's limit on one record: its data and its partition key.
const RECORD_MAX: usize = 1024 * 1024;
/// Kinesis's limit on a partition key, in characters.
const KEY_MAX: usize = 256;

/// Codes Kinesis documents for PutRecords (the request's and each record's).
const CODES: Codes = &[
    ("ProvisionedThroughputExceededException", true),
    ("KMSThrottlingException", true),
    ("LimitExceededException", true),
    ("ResourceNotFoundException", false),
    ("InvalidArgumentException", false),
    ("AccessDeniedException", false),
    ("ValidationException", false),
    ("KMSAccessDeniedException", false),
    ("KMSDisabledException", false),
    ("KMSInvalidStateException", false),
    ("KMSNotFoundException", false),
    ("KMSOptInRequired", false),
];

impl OutputSettings for KinesisSettings {
    type Keys = KinesisConfig;

    fn check(keys: KinesisConfig) -> Result<Self, SettingsError> {
        KinesisSettings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(KinesisOutput {
            settings: self.clone(),
            client: OnceCell::new(),
        })
    }

    fn describe(&self) -> String {
        KinesisSettings::describe(self)
    }
}

pub struct KinesisOutput {
    settings: KinesisSettings,
    client: OnceCell<aws_sdk_kinesis::Client>,
}

impl KinesisOutput {
    async fn client(&self) -> &aws_sdk_kinesis::Client {
        self.client
            .get_or_init(|| async {
                aws_sdk_kinesis::Client::new(&self.settings.connection.sdk_config().await)
            })
            .await
    }

    /// The alert's partition key: the template, or the uuid when that renders empty.
    pub fn partition_key(&self, e: &Envelope) -> String {
        let key = truncate(&self.settings.partition_key.render(e.alert()), KEY_MAX);
        if key.is_empty() {
            e.id().to_string()
        } else {
            key
        }
    }

    fn record(&self, e: &Envelope) -> Option<PutRecordsRequestEntry> {
        let key = self.partition_key(e);
        let data = fit_json(e, RECORD_MAX - key.len())?;
        Some(
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(key)
                .build()
                .expect("data and key are set"),
        )
    }
}

#[async_trait]
impl Output for KinesisOutput {
    fn kind(&self) -> &'static str {
        "kinesis"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut sent = Vec::new();
        let mut records = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            match self.record(e) {
                Some(r) => {
                    sent.push(i);
                    records.push(r);
                }
                None => {
                    items[i] = Some(ItemResult::Permanent(
                        Failure::new(None, "larger than Kinesis's 1 MiB even with its fields cut")
                            .with_code("too_large"),
                    ))
                }
            }
        }
        if !records.is_empty() {
            let result = self
                .client()
                .await
                .put_records()
                .stream_name(&self.settings.keys.stream_name)
                .set_records(Some(records))
                .send()
                .await;
            match result {
                Ok(out) => {
                    let answers = out.records();
                    for (n, i) in sent.iter().enumerate() {
                        items[*i] = Some(match answers.get(n) {
                            Some(r) if r.error_code().is_none() => ItemResult::Delivered,
                            Some(r) => {
                                let code = r.error_code().unwrap_or("");
                                by_code(CODES, code, r.error_message().unwrap_or(""), None).item()
                            }
                            None => ItemResult::Retry(Failure::new(
                                None,
                                "Kinesis returned no result for this record",
                            )),
                        });
                    }
                }
                Err(err) => {
                    let r = response::classify(CODES, &err).item();
                    for i in &sent {
                        items[*i] = Some(r.clone());
                    }
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
