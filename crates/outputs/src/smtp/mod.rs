//! `type: smtp` — alerts by mail: one mail per alert, or a digest of the alerts that arrive
//! within `digest_window` (up to `max_alerts_per_mail`), each with a text and an HTML part.
//! STARTTLS (default, port 587), implicit TLS (465) or none (25); authentication when a
//! username is given; sent with `lettre`.
//!
//! A batch is delivered when the server accepted the mail (250 after DATA). A 4xx answer or a
//! broken connection is retried; a 5xx answer (a refused recipient, a message refused) is
//! dead-lettered with the server's words. Alert text is HTML-escaped in the HTML part.

mod body;

pub use body::{html_escape, Mail};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use crate::delivery::{Delivery, Failure};
use crate::duration::ConfigDuration;
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::secret::Secret;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<SmtpSettings>("smtp", Audience::People);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpKeys {
    pub host: String,
    /// Default 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    #[serde(default = "starttls")]
    pub encryption: Encryption,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Peregrine <falco@example.com>`
    pub from: String,
    pub to: Vec<String>,
    /// Alerts arriving within this window go in one digest mail (default 0s: a mail each).
    #[serde(default)]
    pub digest_window: Option<ConfigDuration>,
    /// The most alerts in one digest (1 to 1000, default 100).
    #[serde(default = "hundred")]
    pub max_alerts_per_mail: usize,
    /// A CA trusted besides webpki's roots (a private mail server).
    pub ca_file: Option<PathBuf>,
}

fn starttls() -> Encryption {
    Encryption::Starttls
}

fn hundred() -> usize {
    100
}

#[derive(Clone)]
pub struct SmtpSettings {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    place: String,
    pub mail: Mail,
    pub limits: BatchLimits,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("place", &self.place)
            .field("mail", &self.mail)
            .finish()
    }
}

impl OutputSettings for SmtpSettings {
    type Keys = SmtpKeys;

    fn check(keys: SmtpKeys) -> Result<Self, SettingsError> {
        let from: Mailbox = keys
            .from
            .parse()
            .map_err(|e| SettingsError::new("from", format!("is not an address: {e}")))?;
        if keys.to.is_empty() {
            return Err(SettingsError::new("to", "needs at least one address"));
        }
        let mut to = Vec::new();
        for (i, t) in keys.to.iter().enumerate() {
            to.push(t.parse::<Mailbox>().map_err(|e| {
                SettingsError::new(format!("to[{i}]"), format!("is not an address: {e}"))
            })?);
        }
        if !(1..=1000).contains(&keys.max_alerts_per_mail) {
            return Err(SettingsError::new(
                "max_alerts_per_mail",
                "must be from 1 to 1000",
            ));
        }
        let port = keys.port.unwrap_or(match keys.encryption {
            Encryption::Starttls => 587,
            Encryption::Tls => 465,
            Encryption::None => 25,
        });
        let transport = transport(&keys, port)?;
        let window = keys.digest_window.map_or(Duration::ZERO, |w| w.0);
        Ok(SmtpSettings {
            transport,
            place: format!("{}:{port} ({:?})", keys.host, keys.encryption).to_lowercase(),
            mail: Mail { from, to },
            limits: BatchLimits {
                max_events: if window.is_zero() {
                    1
                } else {
                    keys.max_alerts_per_mail
                },
                max_bytes: 8 << 20,
                max_wait: window,
            },
        })
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(SmtpOutput {
            settings: self.clone(),
        })
    }

    fn describe(&self) -> String {
        let to: Vec<String> = self.mail.to.iter().map(ToString::to_string).collect();
        format!("SMTP {} to {}", self.place, to.join(", "))
    }
}

fn transport(
    keys: &SmtpKeys,
    port: u16,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SettingsError> {
    let mut tls = TlsParameters::builder(keys.host.clone());
    if let Some(path) = &keys.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            SettingsError::new("ca_file", format!("cannot read {}: {e}", path.display()))
        })?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| SettingsError::new("ca_file", e.to_string()))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls
        .build_rustls()
        .map_err(|e| SettingsError::new("ca_file", e.to_string()))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(keys.host.clone())
        .port(port)
        .timeout(Some(Duration::from_secs(30)))
        .tls(match keys.encryption {
            Encryption::Starttls => Tls::Required(tls),
            Encryption::Tls => Tls::Wrapper(tls),
            Encryption::None => Tls::None,
        });
    match (&keys.username, &keys.password) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        (None, None) => {}
        _ => {
            return Err(SettingsError::new(
                "username",
                "username and password go together",
            ))
        }
    }
    Ok(builder.build())
}

pub struct SmtpOutput {
    settings: SmtpSettings,
}

#[async_trait]
impl Output for SmtpOutput {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let message = match self.settings.mail.message(batch) {
            Ok(m) => m,
            Err(f) => return Delivery::Permanent(f),
        };
        match self.settings.transport.send(message).await {
            Ok(_) => Delivery::Delivered,
            Err(e) => classify(&e),
        }
    }
}

/// 5xx permanent, with the server's words; 4xx and everything else (connection, TLS) retried.
fn classify(e: &lettre::transport::smtp::Error) -> Delivery {
    let failure = Failure::new(None, e.to_string());
    if e.is_permanent() {
        Delivery::Permanent(failure.with_code("refused"))
    } else {
        Delivery::Retry(failure)
    }
}

#[cfg(test)]
mod tests;
