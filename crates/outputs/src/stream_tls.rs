//! TLS for outputs that speak their own protocol over a stream (syslog, MQTT): the files named
//! in `tls:` read while the configuration is checked into a rustls client configuration that
//! trusts the system's roots and `ca_file`, with `cert_file`/`key_file` as its identity.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls;

use crate::settings::SettingsError;

/// The `tls:` keys of a stream output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl StreamTls {
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// The client configuration; a file that cannot be read or parsed is an error at its key.
pub fn client_config(keys: &StreamTls) -> Result<Arc<rustls::ClientConfig>, SettingsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &keys.ca_file {
        for cert in read_certs(path, "tls.ca_file")? {
            roots
                .add(cert)
                .map_err(|e| SettingsError::new("tls.ca_file", e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots);
    let config = match (&keys.cert_file, &keys.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "tls.cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                SettingsError::new(
                    "tls.key_file",
                    format!("cannot read {}: {e}", key.display()),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SettingsError::new("tls.cert_file", e.to_string()))?
        }
        _ => {
            return Err(SettingsError::new(
                "tls.cert_file",
                "cert_file and key_file go together",
            ))
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(
    path: &std::path::Path,
    key: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, SettingsError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| SettingsError::new(key, format!("cannot read {}: {e}", path.display())))
}
