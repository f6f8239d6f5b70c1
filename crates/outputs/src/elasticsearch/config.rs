//! Elasticsearch's and OpenSearch's keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::secret::{Secret, UrlList};

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

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Checked {
    pub target: Target,
    pub limits: BatchLimits,
    pub tls: Tls,
}

impl ElasticsearchConfig {
    /// Checks the keys together; a problem comes with its key's path.
    pub fn check(&self) -> Result<Checked, (&'static str, String)> {
        let target = match (&self.data_stream, &self.index, self.index_suffix) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err((
                    "data_stream",
                    "give either data_stream or index/index_suffix, not both".to_string(),
                ))
            }
            (Some(ds), None, None) => {
                check_name(ds).map_err(|m| ("data_stream", m))?;
                Target::DataStream(ds.clone())
            }
            (None, index, suffix) => {
                let name = index.clone().unwrap_or_else(|| "falco".to_string());
                check_name(&name).map_err(|m| ("index", m))?;
                Target::Index {
                    name,
                    suffix: suffix.unwrap_or_default(),
                }
            }
        };
        match (&self.username, &self.password, &self.api_key) {
            (Some(_), None, _) => return Err(("password", "is needed with username".to_string())),
            (None, Some(_), _) => return Err(("username", "is needed with password".to_string())),
            (Some(_), Some(_), Some(_)) => {
                return Err((
                    "api_key",
                    "give either api_key or username/password, not both".to_string(),
                ))
            }
            _ => {}
        }
        let limits = self.batch.limits(DEFAULT_BATCH)?;
        let tls = self
            .tls
            .or_legacy(self.ca_file.as_deref(), self.insecure_skip_verify)
            .map_err(|m| ("ca_file", m))?;
        Ok(Checked {
            target,
            limits,
            tls,
        })
    }
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
