//! `type: redis` — alerts into Redis: `XADD` to a stream (the default, `falco`), or `LPUSH` onto
//! a list, or `PUBLISH` to a channel. A batch is one pipeline, one round trip.
//!
//! Stream entries have the fields `uuid`, `rule`, `priority`, `hostname` and `alert` (Falco's
//! JSON); lists and channels get the JSON alone. `max_len` trims a stream as it grows
//! (`MAXLEN ~ N`: Redis trims whole nodes, so it may keep a little more). Redis acknowledges each
//! command once applied in memory: what it acknowledged survives a Redis crash only as far as
//! Redis persists it (`appendonly yes` with `appendfsync always` keeps everything). A connection
//! error or a Redis that is loading or busy is retried; a command Redis refuses (a key of
//! another type, a wrong password) is dead-lettered with Redis's words.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::secret::Secret;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType =
    OutputType::new::<RedisSettings>("redis", Audience::Systems).with_max_in_flight(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisKeys {
    /// `redis://[user:password@]host:port[/db]`: a secret, for the password it may hold.
    pub url: Secret,
    /// `XADD` to this stream (default `falco` when neither `list` nor `channel` is given).
    pub stream: Option<String>,
    /// Or `LPUSH` onto this list.
    pub list: Option<String>,
    /// Or `PUBLISH` to this channel.
    pub channel: Option<String>,
    /// Streams: trim to about this many entries (`MAXLEN ~`).
    pub max_len: Option<u64>,
    /// Alerts per pipeline (1 to 10000, default 500).
    #[serde(default = "default_batch")]
    pub max_alerts_per_batch: usize,
}

fn default_batch() -> usize {
    500
}

/// Where alerts go in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stream { name: String, max_len: Option<u64> },
    List(String),
    Channel(String),
}

/// The checked settings a Redis output runs with.
#[derive(Clone)]
pub struct RedisSettings {
    client: redis::Client,
    /// `host:port/db`, for `describe`.
    place: String,
    pub target: Target,
    pub limits: BatchLimits,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("place", &self.place)
            .field("target", &self.target)
            .finish()
    }
}

impl OutputSettings for RedisSettings {
    type Keys = RedisKeys;

    fn check(keys: RedisKeys) -> Result<Self, SettingsError> {
        let info =
            redis::IntoConnectionInfo::into_connection_info(keys.url.expose()).map_err(|_| {
                SettingsError::new(
                    "url",
                    "is not a redis:// URL (redis://[user:password@]host:port[/db])",
                )
            })?;
        let place = format!("{}/{}", info.addr(), info.redis_settings().db());
        let client =
            redis::Client::open(info).map_err(|e| SettingsError::new("url", e.to_string()))?;
        let target = match (keys.stream, keys.list, keys.channel) {
            (stream, None, None) => Target::Stream {
                name: stream.unwrap_or_else(|| "falco".into()),
                max_len: keys.max_len,
            },
            (None, Some(list), None) => Target::List(list),
            (None, None, Some(channel)) => Target::Channel(channel),
            _ => {
                return Err(SettingsError::new(
                    "stream",
                    "give one of stream, list or channel",
                ))
            }
        };
        if keys.max_len.is_some() && !matches!(target, Target::Stream { .. }) {
            return Err(SettingsError::new("max_len", "is for streams"));
        }
        if !(1..=10_000).contains(&keys.max_alerts_per_batch) {
            return Err(SettingsError::new(
                "max_alerts_per_batch",
                "must be from 1 to 10000",
            ));
        }
        Ok(RedisSettings {
            client,
            place,
            target,
            limits: BatchLimits {
                max_events: keys.max_alerts_per_batch,
                max_bytes: 8 << 20,
                max_wait: Duration::from_millis(50),
            },
        })
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(RedisOutput {
            settings: self.clone(),
            connection: Mutex::new(None),
        })
    }

    fn describe(&self) -> String {
        let target = match &self.target {
            Target::Stream { name, .. } => format!("stream {name}"),
            Target::List(name) => format!("list {name}"),
            Target::Channel(name) => format!("channel {name}"),
        };
        format!("Redis {} {target}", self.place)
    }
}

pub struct RedisOutput {
    settings: RedisSettings,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl RedisOutput {
    fn pipeline(&self, batch: &[Envelope]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for e in batch {
            let a = e.alert();
            match &self.settings.target {
                Target::Stream { name, max_len } => {
                    let cmd = pipe.cmd("XADD").arg(name);
                    if let Some(n) = max_len {
                        cmd.arg("MAXLEN").arg("~").arg(*n);
                    }
                    cmd.arg("*")
                        .arg("uuid")
                        .arg(e.id())
                        .arg("rule")
                        .arg(&a.rule)
                        .arg("priority")
                        .arg(a.priority.as_str())
                        .arg("hostname")
                        .arg(a.hostname.as_deref().unwrap_or(""))
                        .arg("alert")
                        .arg(e.json.as_ref());
                }
                Target::List(name) => {
                    pipe.cmd("LPUSH").arg(name).arg(e.json.as_ref());
                }
                Target::Channel(name) => {
                    pipe.cmd("PUBLISH").arg(name).arg(e.json.as_ref());
                }
            }
        }
        pipe
    }
}

#[async_trait]
impl Output for RedisOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            match self
                .settings
                .client
                .get_multiplexed_async_connection()
                .await
            {
                Ok(c) => *connection = Some(c),
                Err(e) => return classify(&e),
            }
        }
        let c = connection.as_mut().expect("just opened");
        match self.pipeline(batch).query_async::<redis::Value>(c).await {
            Ok(_) => Delivery::Delivered,
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    *connection = None;
                }
                classify(&e)
            }
        }
    }
}

/// Redis's errors: connection trouble and a Redis that is loading, busy or read-only for now are
/// retried; a command it refuses is permanent, with its words.
fn classify(e: &redis::RedisError) -> Delivery {
    let transient = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "READONLY" | "CLUSTERDOWN")
        );
    let failure = Failure::new(None, e.to_string());
    if transient {
        Delivery::Retry(failure)
    } else {
        Delivery::Permanent(failure.with_code("refused"))
    }
}

#[cfg(test)]
mod tests;
