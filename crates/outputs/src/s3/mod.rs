//! `type: s3` — gzipped NDJSON objects in Amazon S3 (or a compatible store) through the AWS SDK.
//!
//! One `PutObject` per batch, or one per hour a batch spans: the key is
//! `PREFIX/YYYY/MM/DD/HH/UUID.json.gz`, the hour (UTC) of the alerts' times, so Athena, Glue and
//! `aws s3 ls` find them by date. The name is the first alert's uuid: a PUT retried after a lost
//! answer replaces the object it wrote instead of storing the alerts twice. A PUT is all or
//! nothing, so an object's alerts share its fate.

mod config;

pub use config::{S3Config, S3Settings};

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use tokio::sync::OnceCell;

use crate::aws::response::{self, Codes};
use crate::delivery::{Delivery, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<S3Settings>("s3", Audience::Systems);

/// Codes S3 documents for PutObject, with whether they pass.
const CODES: Codes = &[
    ("RequestTimeout", true),
    ("OperationAborted", true),
    ("NoSuchBucket", false),
    ("InvalidBucketName", false),
    ("AllAccessDisabled", false),
    ("AccountProblem", false),
    ("InvalidAccessKeyId", false),
    ("InvalidRequest", false),
    ("EntityTooLarge", false),
    ("KMS.DisabledException", false),
    ("KMS.NotFoundException", false),
];

impl OutputSettings for S3Settings {
    type Keys = S3Config;

    fn check(keys: S3Config) -> Result<Self, SettingsError> {
        S3Settings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(S3Output {
            settings: self.clone(),
            client: OnceCell::new(),
        })
    }

    fn describe(&self) -> String {
        S3Settings::describe(self)
    }
}

pub struct S3Output {
    settings: S3Settings,
    client: OnceCell<aws_sdk_s3::Client>,
}

/// The batch's alerts grouped by the hour of their time, in batch order within a group; each
/// group with its object key.
pub fn objects(prefix: &str, batch: &[Envelope]) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, e) in batch.iter().enumerate() {
        let t = e.alert().time.to_offset_date_time();
        let hour = format!(
            "{:04}/{:02}/{:02}/{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        );
        match out.iter_mut().find(|(h, _)| *h == hour) {
            Some((_, members)) => members.push(i),
            None => out.push((hour, vec![i])),
        }
    }
    out.into_iter()
        .map(|(hour, members)| {
            let name = object_name(batch[members[0]].id());
            let key = if prefix.is_empty() {
                format!("{hour}/{name}.json.gz")
            } else {
                format!("{prefix}/{hour}/{name}.json.gz")
            };
            (key, members)
        })
        .collect()
}

/// The alert id made safe for a key (a uuid already is).
fn object_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

impl S3Output {
    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let base = self.settings.connection.sdk_config().await;
                let config = aws_sdk_s3::config::Builder::from(&base)
                    .force_path_style(self.settings.path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    async fn put(&self, key: &str, batch: &[Envelope], members: &[usize]) -> ItemResult {
        let mut ndjson = Vec::new();
        for i in members {
            ndjson.extend_from_slice(&batch[*i].json);
            ndjson.push(b'\n');
        }
        let result = self
            .client()
            .await
            .put_object()
            .bucket(&self.settings.keys.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .body(ByteStream::from(crate::http::gzip(&ndjson)))
            .send()
            .await;
        match result {
            Ok(_) => ItemResult::Delivered,
            Err(e) => response::classify(CODES, &e).item(),
        }
    }
}

#[async_trait]
impl Output for S3Output {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut items = vec![ItemResult::Delivered; batch.len()];
        for (key, members) in objects(&self.settings.prefix, batch) {
            let r = self.put(&key, batch, &members).await;
            for i in members {
                items[i] = r.clone();
            }
        }
        Delivery::from_items(items)
    }
}

#[cfg(test)]
mod tests;
