//! `type: nats` — alerts published to NATS: core NATS (a batch is delivered once the server
//! answered a flush after it), or JetStream (`jetstream: true`: delivered once the stream
//! acknowledged every message, each carrying `Nats-Msg-Id` = the alert's id, so a retried batch
//! is stored once within the stream's duplicate window).
//!
//! The subject may hold `{field}` placeholders (`falco.{priority}.{hostname}`); a value from the
//! alert has `.`, `*`, `>` and white space replaced by `_`, so it stays one token and is never a
//! wildcard. The payload is the alert's JSON. The client reconnects by itself; a batch that
//! could not be flushed or acknowledged within the attempt is retried.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::fingerprint::KeyTemplate;
use crate::output::{BatchLimits, Output};
use crate::secret::Secret;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};
use crate::stream_tls::{client_config, StreamTls};

pub const TYPE: OutputType =
    OutputType::new::<NatsSettings>("nats", Audience::Systems).with_max_in_flight(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsKeys {
    /// `nats://[user:password@]host:4222` (or `tls://`), or several, comma-separated: a secret.
    pub url: Secret,
    /// The subject, with `{field}` placeholders if wanted.
    pub subject: String,
    /// Publish through JetStream and wait for the stream's acknowledgement.
    #[serde(default)]
    pub jetstream: bool,
    /// A token, for servers that authenticate by token.
    pub token: Option<Secret>,
    /// A CA trusted besides the system's, and a client certificate (TLS is used when the server
    /// asks for it or the URL says `tls://`).
    #[serde(default)]
    pub tls: StreamTls,
}

#[derive(Clone)]
pub struct NatsSettings {
    urls: Vec<String>,
    /// The servers without credentials, for `describe`.
    places: Vec<String>,
    token: Option<Secret>,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    pub subject: KeyTemplate,
    pub jetstream: bool,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("places", &self.places)
            .field("subject", &self.subject)
            .finish()
    }
}

impl OutputSettings for NatsSettings {
    type Keys = NatsKeys;

    fn check(keys: NatsKeys) -> Result<Self, SettingsError> {
        let mut urls = Vec::new();
        let mut places = Vec::new();
        for text in keys
            .url
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let url = url::Url::parse(text)
                .map_err(|_| SettingsError::new("url", "is not a nats:// URL"))?;
            if !matches!(url.scheme(), "nats" | "tls") {
                return Err(SettingsError::new(
                    "url",
                    format!("scheme '{}' is not nats or tls", url.scheme()),
                ));
            }
            let host = url
                .host_str()
                .ok_or_else(|| SettingsError::new("url", "has no host"))?;
            places.push(format!(
                "{}://{host}:{}",
                url.scheme(),
                url.port().unwrap_or(4222)
            ));
            urls.push(text.to_string());
        }
        if urls.is_empty() {
            return Err(SettingsError::new("url", "needs at least one server"));
        }
        let subject = parse_subject(&keys.subject).map_err(|e| SettingsError::new("subject", e))?;
        let tls = if keys.tls.is_empty() {
            None
        } else {
            Some(client_config(&keys.tls)?)
        };
        Ok(NatsSettings {
            urls,
            places,
            token: keys.token,
            tls,
            subject,
            jetstream: keys.jetstream,
        })
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(NatsOutput {
            settings: self.clone(),
            client: Mutex::new(None),
        })
    }

    fn describe(&self) -> String {
        let kind = if self.jetstream { "JetStream" } else { "NATS" };
        format!("{kind} {} subject {}", self.places.join(","), self.subject)
    }
}

/// `falco.{priority}`; the text may hold no wildcard or space.
pub fn parse_subject(text: &str) -> Result<KeyTemplate, String> {
    let subject = KeyTemplate::parse_any(text)?;
    if text.is_empty() || subject.texts().any(|t| t.contains(['*', '>', ' ', '\t'])) {
        return Err("must be a subject without wildcards (* or >) or spaces".into());
    }
    Ok(subject)
}

/// The subject for one alert: each value one token, never a wildcard.
pub fn subject_for(subject: &KeyTemplate, e: &Envelope) -> String {
    subject.render_with(e.alert(), |v| {
        let v: String = v
            .chars()
            .map(|c| {
                if c.is_whitespace() || matches!(c, '.' | '*' | '>') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if v.is_empty() {
            "_".into()
        } else {
            v
        }
    })
}

pub struct NatsOutput {
    settings: NatsSettings,
    client: Mutex<Option<async_nats::Client>>,
}

impl NatsOutput {
    async fn connect(&self) -> Result<async_nats::Client, Failure> {
        let s = &self.settings;
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .retry_on_initial_connect();
        if let Some(token) = &s.token {
            options = options.token(token.expose().to_string());
        }
        if let Some(tls) = &s.tls {
            options = options.tls_client_config((**tls).clone());
        }
        options
            .connect(s.urls.as_slice())
            .await
            .map_err(|e| Failure::new(None, format!("cannot connect: {e}")))
    }

    async fn publish(
        &self,
        client: &async_nats::Client,
        batch: &[Envelope],
    ) -> Result<(), Failure> {
        let s = &self.settings;
        if !s.jetstream {
            for e in batch {
                client
                    .publish(subject_for(&s.subject, e), e.json.clone())
                    .await
                    .map_err(|e| Failure::new(None, format!("publish failed: {e}")))?;
            }
            return client
                .flush()
                .await
                .map_err(|e| Failure::new(None, format!("flush failed: {e}")));
        }
        let js = async_nats::jetstream::new(client.clone());
        let mut acks = Vec::with_capacity(batch.len());
        for e in batch {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.id());
            let ack = js
                .publish_with_headers(subject_for(&s.subject, e), headers, e.json.clone())
                .await
                .map_err(|e| Failure::new(None, format!("publish failed: {e}")))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|e| Failure::new(None, format!("JetStream did not acknowledge: {e}")))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Output for NatsOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: 500,
            max_bytes: 4 << 20,
            max_wait: Duration::from_millis(50),
        }
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            match self.connect().await {
                Ok(c) => *guard = Some(c),
                Err(f) => return Delivery::Retry(f),
            }
        }
        let client = guard.as_ref().expect("just connected").clone();
        drop(guard);
        match self.publish(&client, batch).await {
            Ok(()) => Delivery::Delivered,
            Err(f) => Delivery::Retry(f),
        }
    }
}

#[cfg(test)]
mod tests;
