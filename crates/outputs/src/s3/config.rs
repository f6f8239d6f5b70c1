//! S3's keys.

use std::time::Duration;

use serde::Deserialize;

use crate::aws::Connection;
use crate::batch::BatchConfig;
use crate::output::BatchLimits;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// The first part of every key (default `falco`): `PREFIX/YYYY/MM/DD/HH/UUID.json.gz`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint_url: Option<SecretUrl>,
    /// `bucket` in the path rather than the host name; default: true with `endpoint_url`
    /// (MinIO, Ceph and test servers), false with AWS.
    pub path_style: Option<bool>,
    /// One object per batch: up to 10 000 alerts, 16 MiB before compression, 60 s (defaults).
    #[serde(default)]
    pub batch: BatchConfig,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

fn default_prefix() -> String {
    "falco".to_string()
}

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 10_000,
    max_bytes: 16 * 1024 * 1024,
    max_wait: Duration::from_secs(60),
};

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub keys: S3Config,
    pub connection: Connection,
    pub limits: BatchLimits,
    pub path_style: bool,
    /// `prefix` without slashes at its ends.
    pub prefix: String,
}

impl S3Settings {
    pub(super) fn from_keys(keys: S3Config) -> Result<Self, SettingsError> {
        let bucket_ok = (3..=63).contains(&keys.bucket.len())
            && keys
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !bucket_ok {
            return Err(SettingsError::new(
                "bucket",
                "must be 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        let prefix = keys.prefix.trim_matches('/').to_string();
        if prefix.len() > 512 || prefix.contains("//") {
            return Err(SettingsError::new(
                "prefix",
                "must be at most 512 bytes, without empty path segments ('//')",
            ));
        }
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        let connection = Connection::new(
            keys.region.clone(),
            keys.endpoint_url.clone(),
            keys.role_arn.clone(),
            keys.external_id.clone(),
        )?;
        Ok(S3Settings {
            path_style: keys.path_style.unwrap_or(keys.endpoint_url.is_some()),
            connection,
            limits,
            prefix,
            keys,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "S3 s3://{}/{} in {}{}",
            self.keys.bucket,
            self.prefix,
            self.connection.region,
            self.connection.via()
        )
    }
}
