//! `type: mqtt` — alerts published to an MQTT broker (MQTT 3.1.1, or 5 with `version: 5`),
//! QoS 1 by default: a batch is delivered when the broker has acknowledged every message
//! (`PUBACK`); QoS 0 when every message was written. With MQTT 5 each `PUBACK` has a reason
//! code, so each alert gets its own result (`v5.rs`).
//!
//! The topic may hold `{field}` placeholders (`falco/{priority}/{hostname}`); a value from the
//! alert has `/`, `+`, `#` and NUL replaced by `_`, so it stays one topic level and never a
//! wildcard. The payload is the alert's JSON. A broken connection is a retry of the whole
//! batch on a new session (QoS 1 is at least once: the broker may see a message twice).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde::Deserialize;
use tokio::sync::{mpsc, Mutex};

mod v5;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::fingerprint::KeyTemplate;
use crate::output::{BatchLimits, Output};
use crate::secret::Secret;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};
use crate::stream_tls::{client_config, StreamTls};

pub const TYPE: OutputType =
    OutputType::new::<MqttSettings>("mqtt", Audience::Systems).with_max_in_flight(1);

/// The largest message published (brokers take far more; rumqttc's default is 10 KiB).
const MAX_PACKET: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttKeys {
    /// `mqtt://[user:password@]host[:1883]` or `mqtts://…[:8883]`: a secret.
    pub url: Secret,
    /// The topic, with `{field}` placeholders if wanted.
    pub topic: String,
    /// 0 or 1 (default 1).
    #[serde(default = "one")]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    /// Default `peregrine-` and a random suffix; brokers drop an older session with the same id.
    pub client_id: Option<String>,
    /// `mqtts://` only: a CA trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: StreamTls,
    /// The protocol: `3.1.1` (default) or `5`.
    #[serde(default)]
    pub version: Version,
}

/// MQTT's protocol version, as `version:` takes it (`5`, `"5"`, `3.1.1`, `"3.1.1"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Version {
    #[default]
    V311,
    V5,
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(f64),
            Text(String),
        }
        let text = match Form::deserialize(d)? {
            Form::Number(n) => n.to_string(),
            Form::Text(t) => t,
        };
        match text.trim() {
            "5" | "5.0" => Ok(Version::V5),
            "3.1.1" | "3" | "4" => Ok(Version::V311),
            other => Err(serde::de::Error::custom(format!(
                "MQTT version '{other}' is not 3.1.1 or 5"
            ))),
        }
    }
}

fn one() -> u8 {
    1
}

#[derive(Clone)]
pub struct MqttSettings {
    options: MqttOptions,
    /// `version: 5`: the same connection settings for an MQTT 5 client.
    options_v5: Option<rumqttc::v5::MqttOptions>,
    place: String,
    pub topic: KeyTemplate,
    pub qos: QoS,
    pub retain: bool,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("place", &self.place)
            .field("topic", &self.topic)
            .finish()
    }
}

impl OutputSettings for MqttSettings {
    type Keys = MqttKeys;

    fn check(keys: MqttKeys) -> Result<Self, SettingsError> {
        let url = url::Url::parse(keys.url.expose()).map_err(|_| {
            SettingsError::new(
                "url",
                "is not a URL (mqtt://host:1883 or mqtts://host:8883)",
            )
        })?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            other => {
                return Err(SettingsError::new(
                    "url",
                    format!("scheme '{other}' is not mqtt or mqtts"),
                ))
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| SettingsError::new("url", "has no host"))?
            .to_string();
        let port = url.port().unwrap_or(default_port);
        let qos = match keys.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => return Err(SettingsError::new("qos", "must be 0 or 1")),
        };
        let topic = parse_topic(&keys.topic).map_err(|e| SettingsError::new("topic", e))?;
        let client_id = keys.client_id.unwrap_or_else(|| {
            format!(
                "peregrine-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            )
        });
        let mut options = MqttOptions::new(client_id, host.clone(), port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if !url.username().is_empty() {
            let decode = |s: &str| percent_encoding_decode(s);
            options.set_credentials(decode(url.username()), decode(url.password().unwrap_or("")));
        }
        if tls {
            let config = client_config(&keys.tls)?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        } else if !keys.tls.is_empty() {
            return Err(SettingsError::new("tls", "is for mqtts:// URLs"));
        }
        let options_v5 = (keys.version == Version::V5).then(|| v5_options(&options));
        Ok(MqttSettings {
            options,
            options_v5,
            place: format!("{}://{host}:{port}", if tls { "mqtts" } else { "mqtt" }),
            topic,
            qos,
            retain: keys.retain,
        })
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(MqttOutput {
            settings: self.clone(),
            session: Mutex::new(None),
            session_v5: Mutex::new(None),
        })
    }

    fn describe(&self) -> String {
        let version = if self.options_v5.is_some() {
            " (MQTT 5)"
        } else {
            ""
        };
        format!("MQTT {}{version} topic {}", self.place, self.topic)
    }
}

/// The MQTT 5 client's options, from the 3.1.1 ones made from the same keys.
fn v5_options(o: &MqttOptions) -> rumqttc::v5::MqttOptions {
    let (host, port) = o.broker_address();
    let mut v5 = rumqttc::v5::MqttOptions::new(o.client_id(), host, port);
    v5.set_keep_alive(o.keep_alive());
    v5.set_max_packet_size(Some(MAX_PACKET as u32));
    if let Some(login) = o.credentials() {
        v5.set_credentials(login.username, login.password);
    }
    v5.set_transport(o.transport());
    v5
}

fn percent_encoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `falco/{priority}/{hostname}`; no wildcard may be in the text.
pub fn parse_topic(text: &str) -> Result<KeyTemplate, String> {
    let topic = KeyTemplate::parse_any(text)?;
    if text.is_empty() || topic.texts().any(|t| t.contains(['+', '#', '\0'])) {
        return Err("must be a topic without the wildcards + or #".into());
    }
    Ok(topic)
}

/// The topic for one alert: its values kept to one level, never a wildcard.
pub fn topic_for(topic: &KeyTemplate, e: &Envelope) -> String {
    topic.render_with(e.alert(), |v| v.replace(['/', '+', '#', '\0'], "_"))
}

/// One connection to the broker: the client, and the events its event loop reports.
struct Session {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
    task: tokio::task::JoinHandle<()>,
    /// Set while a batch is being published: still set at the next attempt means the last one
    /// was cancelled (timed out) mid-way, and its events would be counted for the next batch.
    busy: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    fn start(options: MqttOptions) -> Session {
        let (client, eventloop) = AsyncClient::new(options, 10_000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_eventloop(eventloop, tx));
        Session {
            client,
            events,
            task,
            busy: false,
        }
    }
}

/// Polls the event loop (which connects, writes and reads) and reports its events; stops at
/// the first error, so a new session starts clean.
async fn run_eventloop(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, String>>) {
    loop {
        let event = eventloop.poll().await.map_err(|e| e.to_string());
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
}

pub struct MqttOutput {
    settings: MqttSettings,
    session: Mutex<Option<Session>>,
    session_v5: Mutex<Option<v5::Session>>,
}

impl MqttOutput {
    /// Publishes the batch and waits until the broker took it.
    async fn publish(&self, session: &mut Session, batch: &[Envelope]) -> Result<(), Failure> {
        let s = &self.settings;
        for e in batch {
            session
                .client
                .publish(topic_for(&s.topic, e), s.qos, s.retain, e.json.to_vec())
                .await
                .map_err(|e| {
                    Failure::new(
                        None,
                        format!("connection failed: cannot queue the message ({e})"),
                    )
                })?;
        }
        let mut written = 0;
        let mut unacknowledged: HashSet<u16> = HashSet::new();
        while written < batch.len() || !unacknowledged.is_empty() {
            match session.events.recv().await {
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    written += 1;
                    if s.qos == QoS::AtLeastOnce {
                        unacknowledged.insert(pkid);
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    unacknowledged.remove(&ack.pkid);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Failure::new(None, format!("connection failed: {e}"))),
                None => return Err(Failure::new(None, "the connection ended")),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Output for MqttOutput {
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
        if let Some(options) = &self.settings.options_v5 {
            return self.deliver_v5(options, batch).await;
        }
        let mut guard = self.session.lock().await;
        // A session whose last attempt was cancelled mid-way, or whose connection already
        // ended, is replaced.
        if guard
            .as_ref()
            .is_some_and(|s| s.busy || s.task.is_finished())
        {
            *guard = None;
        }
        let session = guard.get_or_insert_with(|| Session::start(self.settings.options.clone()));
        session.busy = true;
        match self.publish(session, batch).await {
            Ok(()) => {
                session.busy = false;
                Delivery::Delivered
            }
            Err(failure) => {
                // A new session for the retry: nothing half-acknowledged is carried over.
                *guard = None;
                Delivery::Retry(failure)
            }
        }
    }
}

impl MqttOutput {
    /// MQTT 5: each alert judged by its `PUBACK`'s reason code. A session is kept only after a
    /// batch that completed, so a cancelled attempt never leaves acks for the next one.
    async fn deliver_v5(&self, options: &rumqttc::v5::MqttOptions, batch: &[Envelope]) -> Delivery {
        let s = &self.settings;
        let mut guard = self.session_v5.lock().await;
        let mut session = match guard.take() {
            Some(session) if !session.ended() => session,
            _ => v5::Session::start(options.clone()),
        };
        let messages = batch
            .iter()
            .map(|e| (topic_for(&s.topic, e), e.json.to_vec()))
            .collect();
        let qos = match s.qos {
            QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            _ => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        };
        match session.publish(messages, qos, s.retain).await {
            Ok(items) => {
                *guard = Some(session);
                Delivery::from_items(items)
            }
            Err(failure) => Delivery::Retry(failure),
        }
    }
}

#[cfg(test)]
mod tests;
