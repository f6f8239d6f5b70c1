//! `type: syslog` — alerts as syslog messages to a syslog server: RFC 5424 (default) or
//! RFC 3164, over UDP (a datagram each), TCP or TLS (octet-counting framing by default,
//! RFC 6587), facility from `facility`, severity from the alert's priority (`format.rs`).
//!
//! Syslog acknowledges nothing (`transport.rs` says what that means for delivery). A stream
//! output sends one batch at a time over one connection, so lines keep their order.

mod format;
mod transport;

pub use format::{frame, Format, Framing, LineFormat, Message, FACILITIES};
pub use transport::Address;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio_rustls::rustls;

use crate::delivery::Delivery;
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};
use crate::size::ByteSize;
use crate::stream_tls::{client_config, StreamTls};
use transport::Transport;

pub const TYPE: OutputType =
    OutputType::new::<SyslogSettings>("syslog", Audience::Systems).with_max_in_flight(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogKeys {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
    pub address: String,
    #[serde(default = "default_format")]
    pub format: Format,
    /// `local0` by default; any of [`FACILITIES`].
    #[serde(default = "default_facility")]
    pub facility: String,
    /// APP-NAME (5424) or TAG (3164), default `falco`.
    #[serde(default = "default_app")]
    pub app_name: String,
    /// `json` (the alert, default) or `output` (Falco's text).
    #[serde(default = "default_message")]
    pub message: Message,
    /// TCP and TLS only: `octet_counting` (default) or `newline`.
    pub framing: Option<Framing>,
    /// The longest message (default 8KiB, rsyslog's default); longer ones are cut.
    pub max_message_size: Option<ByteSize>,
    /// `tls://` only: a CA trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: StreamTls,
}

fn default_format() -> Format {
    Format::Rfc5424
}

fn default_facility() -> String {
    "local0".into()
}

fn default_app() -> String {
    "falco".into()
}

fn default_message() -> Message {
    Message::Json
}

/// The checked settings a syslog output runs with.
#[derive(Clone)]
pub struct SyslogSettings {
    pub address: Address,
    pub lines: LineFormat,
    pub framing: Framing,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for SyslogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSettings")
            .field("address", &self.address)
            .field("lines", &self.lines)
            .field("framing", &self.framing)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl OutputSettings for SyslogSettings {
    type Keys = SyslogKeys;

    fn check(keys: SyslogKeys) -> Result<Self, SettingsError> {
        let address =
            Address::parse(&keys.address).map_err(|e| SettingsError::new("address", e))?;
        let facility = FACILITIES
            .iter()
            .position(|f| *f == keys.facility)
            .ok_or_else(|| {
                SettingsError::new(
                    "facility",
                    format!("must be one of {}", FACILITIES.join(", ")),
                )
            })?;
        let app_ok = (1..=48).contains(&keys.app_name.len())
            && keys.app_name.bytes().all(|b| b.is_ascii_graphic());
        if !app_ok {
            return Err(SettingsError::new(
                "app_name",
                "must be 1 to 48 printable ASCII characters without spaces",
            ));
        }
        if keys.framing.is_some() && !address.is_stream() {
            return Err(SettingsError::new(
                "framing",
                "is for tcp:// and tls:// addresses",
            ));
        }
        let tls_keys = !keys.tls.is_empty();
        let tls = match &address {
            Address::Tls { .. } => Some(client_config(&keys.tls)?),
            _ if tls_keys => return Err(SettingsError::new("tls", "is for tls:// addresses")),
            _ => None,
        };
        let max_bytes = keys.max_message_size.map_or(8192, |s| s.0);
        if !(480..=65_000).contains(&max_bytes) {
            return Err(SettingsError::new(
                "max_message_size",
                "must be from 480B to 65000B",
            ));
        }
        Ok(SyslogSettings {
            address,
            lines: LineFormat {
                format: keys.format,
                message: keys.message,
                facility: facility as u8,
                app_name: keys.app_name,
                max_bytes,
            },
            framing: keys.framing.unwrap_or(Framing::OctetCounting),
            tls,
        })
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(SyslogOutput {
            transport: Transport::new(self.address.clone(), self.tls.clone()),
            settings: self.clone(),
        })
    }

    fn describe(&self) -> String {
        let (scheme, place) = match &self.address {
            Address::Udp(a) => ("udp", a.clone()),
            Address::Tcp(a) => ("tcp", a.clone()),
            Address::Tls { host, port } => ("tls", format!("{host}:{port}")),
        };
        format!("syslog {scheme}://{place} ({:?})", self.lines.format).to_lowercase()
    }
}

pub struct SyslogOutput {
    settings: SyslogSettings,
    transport: Transport,
}

#[async_trait]
impl Output for SyslogOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: 500,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(50),
        }
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let lines: Vec<String> = batch.iter().map(|e| self.settings.lines.line(e)).collect();
        let sent = if self.settings.address.is_stream() {
            let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 8).sum());
            for line in &lines {
                frame(line, self.settings.framing, &mut bytes);
            }
            self.transport.write(&bytes).await
        } else {
            self.transport.send_datagrams(&lines).await
        };
        match sent {
            Ok(()) => Delivery::Delivered,
            Err(failure) => Delivery::Retry(failure),
        }
    }
}

#[cfg(test)]
mod tests;
