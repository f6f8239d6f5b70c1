//! Outbound TLS, the same block on every HTTP output:
//!
//! ```yaml
//! tls:
//!   ca_file: /etc/ssl/corp-ca.pem       # trusted besides the system store and webpki roots
//!   cert_file: /etc/peregrine/client.pem # client certificate (mutual TLS), with key_file
//!   key_file: /etc/peregrine/client.key
//!   insecure_skip_verify: false
//! ```
//!
//! The files are read while the configuration is checked, so a missing or malformed file is a
//! config error with its key's path (`outputs[2].tls.cert_file`) rather than a failed delivery.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// Checked TLS settings for one output's client.
#[derive(Clone, Default, Deserialize)]
#[serde(try_from = "RawTls")]
pub struct Tls {
    /// Certificates trusted besides the system's and webpki's roots, parsed once when the
    /// configuration is read.
    ca: Vec<reqwest::Certificate>,
    /// Client certificate chain and key, for mutual TLS.
    identity: Option<reqwest::Identity>,
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Tls")
            .field("ca_certificates", &self.ca.len())
            .field("client_certificate", &self.identity.is_some())
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

impl Tls {
    /// Settings from a CA file alone (the older top-level `ca_file` key of some outputs).
    pub fn load(
        ca_file: Option<&std::path::Path>,
        insecure_skip_verify: bool,
    ) -> Result<Tls, String> {
        Ok(Tls {
            ca: ca_file.map(read_ca).transpose()?.unwrap_or_default(),
            identity: None,
            insecure_skip_verify,
        })
    }

    /// Settings from file paths given outside a config file (command-line flags); an error
    /// names the setting (`ca_file`, `cert_file`, `key_file`).
    pub fn from_files(
        ca_file: Option<&std::path::Path>,
        cert_file: Option<&std::path::Path>,
        key_file: Option<&std::path::Path>,
        insecure_skip_verify: bool,
    ) -> Result<Tls, (&'static str, String)> {
        let read = |key: &'static str, path: Option<&std::path::Path>| {
            path.map(|p| {
                std::fs::read(p).map_err(|e| (key, format!("cannot read {}: {e}", p.display())))
            })
            .transpose()
        };
        let identity = identity(read("cert_file", cert_file)?, read("key_file", key_file)?)
            .map_err(|m| ("cert_file", m))?;
        Ok(Tls {
            ca: ca_file
                .map(read_ca)
                .transpose()
                .map_err(|m| ("ca_file", m))?
                .unwrap_or_default(),
            identity,
            insecure_skip_verify,
        })
    }

    /// `self` (an output's `tls` block), or the older top-level `ca_file`/`insecure_skip_verify`
    /// keys some outputs had before it; not both.
    pub fn or_legacy(
        &self,
        ca_file: Option<&std::path::Path>,
        insecure_skip_verify: bool,
    ) -> Result<Tls, String> {
        let legacy = ca_file.is_some() || insecure_skip_verify;
        if legacy && !self.is_default() {
            return Err(
                "give ca_file and insecure_skip_verify inside tls, not beside it".to_string(),
            );
        }
        if legacy {
            Tls::load(ca_file, insecure_skip_verify)
        } else {
            Ok(self.clone())
        }
    }

    pub fn is_default(&self) -> bool {
        self.ca.is_empty() && self.identity.is_none() && !self.insecure_skip_verify
    }

    /// Applies the settings to a client being built.
    pub(crate) fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for cert in &self.ca {
            builder = builder.add_root_certificate(cert.clone());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        if self.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<CaFile>,
    cert_file: Option<PemFile>,
    key_file: Option<PemFile>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl TryFrom<RawTls> for Tls {
    type Error = String;

    fn try_from(raw: RawTls) -> Result<Tls, String> {
        let identity = identity(raw.cert_file.map(|c| c.0), raw.key_file.map(|k| k.0))?;
        Ok(Tls {
            ca: raw.ca_file.map(|c| c.0).unwrap_or_default(),
            identity,
            insecure_skip_verify: raw.insecure_skip_verify,
        })
    }
}

/// A client certificate chain and its key, read as one PEM bundle.
fn identity(
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
) -> Result<Option<reqwest::Identity>, String> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(mut pem), Some(key)) => {
            pem.push(b'\n');
            pem.extend(key);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                "cert_file and key_file do not make a client identity (expected PEM certificates and a PKCS#8, PKCS#1 or SEC1 key)".to_string()
            })?;
            Ok(Some(identity))
        }
        _ => Err("cert_file and key_file go together".to_string()),
    }
}

/// A file of PEM CA certificates, read and parsed as it is deserialized.
struct CaFile(Vec<reqwest::Certificate>);

impl<'de> Deserialize<'de> for CaFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        read_ca(&path).map(CaFile).map_err(serde::de::Error::custom)
    }
}

/// A PEM file's bytes, read as it is deserialized.
struct PemFile(Vec<u8>);

impl<'de> Deserialize<'de> for PemFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        std::fs::read(&path)
            .map(PemFile)
            .map_err(|e| serde::de::Error::custom(format!("cannot read {}: {e}", path.display())))
    }
}

fn read_ca(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| format!("{} holds no PEM certificate", path.display()))
}
