//! Elasticsearch's and OpenSearch's keys.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::secret::{Secret, SecretUrl, UrlList};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// One node or several (tried in turn).
    pub url: UrlList,
    /// The index name, or its prefix with `index_suffix` (default `falco`).
    pub index: Option<String>,
    /// `daily` (default), `monthly`, `yearly` or `none`, from the alert's time.
    pub index_suffix: Option<IndexSuffix>,
    /// A data stream to write to instead of an index.
    pub data_stream: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// An API key, as Elasticsearch issues it (the base64 `encoded` form).
    pub api_key: Option<Secret>,
    /// An ingest pipeline for every document.
    pub pipeline: Option<String>,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default)]
    pub batch: BatchConfig,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Installs an index template with Peregrine's mappings before the first write.
    #[serde(default)]
    pub create_index_template: bool,
    /// Writes `output_fields` keys with `_` for `.` and `[`, `]` (`proc.aname[2]` →
    /// `proc_aname_2`), so that `container.image` and `container.image.repository` cannot
    /// collide as a text field and an object (default true, as Falcosidekick's `flattenfields`).
    #[serde(default = "yes")]
    pub flatten_fields: bool,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexSuffix {
    #[default]
    Daily,
    Monthly,
    Yearly,
    None,
}

/// Where documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Index { name: String, suffix: IndexSuffix },
    DataStream(String),
}

/// Falcosidekick's defaults: 1 000 alerts, 5 MB, 1 s.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 1000,
    max_bytes: 5 * 1000 * 1000,
    max_wait: Duration::from_secs(1),
};

/// The checked settings an Elasticsearch output runs with.
#[derive(Debug, Clone)]
pub struct ElasticsearchSettings {
    /// Tried in turn.
    pub nodes: Vec<SecretUrl>,
    pub target: Target,
    pub limits: BatchLimits,
    /// The `Authorization` value (basic or API key), marked sensitive.
    pub auth: Option<HeaderValue>,
    pub pipeline: Option<String>,
    pub gzip: bool,
    pub flatten_fields: bool,
    pub create_index_template: bool,
    pub tls: Tls,
}

impl ElasticsearchSettings {
    /// Checks the keys together; a problem comes with its key's path.
    pub(super) fn from_keys(keys: ElasticsearchConfig) -> Result<Self, SettingsError> {
        let target = target(&keys)?;
        let auth = authorization(&keys)?;
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        let tls = keys
            .tls
            .or_legacy(keys.ca_file.as_deref(), keys.insecure_skip_verify)
            .map_err(|m| SettingsError::new("ca_file", m))?;
        Ok(ElasticsearchSettings {
            nodes: keys.url.0,
            target,
            limits,
            auth,
            pipeline: keys.pipeline,
            gzip: keys.gzip,
            flatten_fields: keys.flatten_fields,
            create_index_template: keys.create_index_template,
            tls,
        })
    }

    /// Where alerts go, safe to print.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|u| u.to_string()).collect();
        let target = match &self.target {
            Target::DataStream(ds) => format!("data stream {ds}"),
            Target::Index { name, suffix } => format!("index {name} ({suffix:?} suffix)"),
        };
        format!("Elasticsearch {} -> {target}", nodes.join(", "))
    }
}

/// The index (with its suffix) or the data stream, whichever the keys name.
fn target(keys: &ElasticsearchConfig) -> Result<Target, SettingsError> {
    match (&keys.data_stream, &keys.index, keys.index_suffix) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(SettingsError::new(
            "data_stream",
            "give either data_stream or index/index_suffix, not both",
        )),
        (Some(ds), None, None) => {
            check_name(ds).map_err(|m| SettingsError::new("data_stream", m))?;
            Ok(Target::DataStream(ds.clone()))
        }
        (None, index, suffix) => {
            let name = index.clone().unwrap_or_else(|| "falco".to_string());
            check_name(&name).map_err(|m| SettingsError::new("index", m))?;
            Ok(Target::Index {
                name,
                suffix: suffix.unwrap_or_default(),
            })
        }
    }
}

/// Basic credentials or an API key as an `Authorization` value; the value must be one HTTP
/// allows, or the header would be dropped from every request.
fn authorization(keys: &ElasticsearchConfig) -> Result<Option<HeaderValue>, SettingsError> {
    let (key, value) = match (&keys.username, &keys.password, &keys.api_key) {
        (Some(_), None, _) => {
            return Err(SettingsError::new("password", "is needed with username"))
        }
        (None, Some(_), _) => {
            return Err(SettingsError::new("username", "is needed with password"))
        }
        (Some(_), Some(_), Some(_)) => {
            return Err(SettingsError::new(
                "api_key",
                "give either api_key or username/password, not both",
            ))
        }
        (Some(user), Some(pw), None) => (
            "username",
            crate::http::basic_credentials(user, pw.expose()),
        ),
        (None, None, Some(api_key)) => ("api_key", format!("ApiKey {}", api_key.expose())),
        (None, None, None) => return Ok(None),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        SettingsError::new(
            key,
            "must be printable (it is sent in the Authorization header)",
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Elasticsearch's rules for index and data stream names.
fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 200
        || name.starts_with(['-', '_', '+', '.'])
        || name
            .chars()
            .any(|c| c.is_uppercase() || " \\/*?\"<>|,#:".contains(c));
    if bad {
        Err(format!("'{name}' is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:, not starting with - _ + .)"))
    } else {
        Ok(())
    }
}
