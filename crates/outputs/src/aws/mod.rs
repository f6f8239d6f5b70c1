//! What the AWS outputs (SNS, SQS, Kinesis, CloudWatch Logs, S3) share: the connection keys and
//! one SDK configuration per output, reading the SDKs' errors, and fitting an alert's JSON under
//! a service's size limit.
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity, ECS, IMDS),
//! optionally exchanged for a role (`role_arn`, `external_id`). The SDKs' own retries are off:
//! the shared retry core retries, so retries are counted like every other output's.

mod attributes;
pub mod batch;
pub mod response;

pub use attributes::{attribute_name, attributes, attributes_size, Attributes};

use aws_config::SdkConfig;
use peregrine_engine::Alert;
use serde_json::Value;

use crate::card::truncate;
use crate::envelope::Envelope;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

/// Where and as whom an AWS output connects, checked.
#[derive(Debug, Clone)]
pub struct Connection {
    pub region: String,
    /// Another endpoint (a VPC endpoint, a compatible server, a test server).
    pub endpoint_url: Option<SecretUrl>,
    /// Assume this role (with the standard chain's credentials) before sending.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

impl Connection {
    /// From an output's keys; `region` may come from an ARN or URL when the key is absent.
    pub fn new(
        region: Option<String>,
        endpoint_url: Option<SecretUrl>,
        role_arn: Option<String>,
        external_id: Option<String>,
    ) -> Result<Connection, SettingsError> {
        let region = region
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| SettingsError::new("region", "is needed (for example eu-west-1)"))?;
        if external_id.is_some() && role_arn.is_none() {
            return Err(SettingsError::new("external_id", "is used with role_arn"));
        }
        Ok(Connection {
            region,
            endpoint_url,
            role_arn,
            external_id,
        })
    }

    /// The SDK configuration every client of this output is made from: region, credentials,
    /// endpoint, no SDK retries. Loading credentials is async, so outputs make it on first use.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.expose().as_str());
        }
        let base = loader.load().await;
        let Some(role) = &self.role_arn else {
            return base;
        };
        let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("peregrine")
            .configure(&base);
        if let Some(id) = &self.external_id {
            assume = assume.external_id(id);
        }
        let provider = assume.build().await;
        base.into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build()
    }

    /// ` via <endpoint>` with the URL's secret parts hidden, or nothing.
    pub fn via(&self) -> String {
        self.endpoint_url
            .as_ref()
            .map_or(String::new(), |u| format!(" via {u}"))
    }
}

/// The alert's JSON; when larger than `room` bytes, its strings cut step by step (output fields
/// first, then the output) with a visible marker; `None` when even that does not fit.
pub fn fit_json(e: &Envelope, room: usize) -> Option<String> {
    if e.json.len() <= room {
        return Some(String::from_utf8_lossy(&e.json).into_owned());
    }
    for (field_max, output_max) in [(1024, 64 * 1024), (256, 16 * 1024), (64, 4096), (0, 1024)] {
        let mut a: Alert = e.alert().clone();
        if field_max == 0 {
            a.output_fields.clear();
            a.output_fields
                .insert("peregrine.truncated".into(), Value::Bool(true));
        } else {
            for v in a.output_fields.values_mut() {
                if let Value::String(s) = v {
                    if s.chars().count() > field_max {
                        *s = truncate(s, field_max);
                    }
                }
            }
        }
        a.output = truncate(&a.output, output_max);
        let json = String::from_utf8(a.to_json_bytes()).expect("JSON is UTF-8");
        if json.len() <= room {
            return Some(json);
        }
    }
    None
}
