//! TLS on the listener, and mutual TLS when a client CA is configured.
//!
//! The files are read when the configuration is read, so a missing file, a file without a
//! certificate or a key that does not match its certificate is a configuration error at its
//! key's path, and `--check-config` finds it. A reload (SIGHUP) reads them again: that is how a
//! rotated certificate is taken up without a restart. Connections already open keep the
//! certificate they were made with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// The `tls` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate that chains to one of these CAs.
    pub client_ca_file: Option<PathBuf>,
}

/// A listener's TLS, loaded and checked.
#[derive(Clone)]
pub struct ListenerTls {
    pub files: TlsFiles,
    pub acceptor: TlsAcceptor,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// A problem with one of the files: the key under `tls` and what is wrong.
pub type TlsProblem = (&'static str, String);

impl ListenerTls {
    /// Reads the certificate, key and client CA, and builds the acceptor.
    pub fn load(files: TlsFiles) -> Result<ListenerTls, TlsProblem> {
        let chain = read_certificates(&files.cert_file).map_err(|m| ("cert_file", m))?;
        let key = read_key(&files.key_file).map_err(|m| ("key_file", m))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ("cert_file", format!("TLS setup failed: {e}")))?;
        let builder = match &files.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(path).map_err(|m| ("client_ca_file", m))? {
                    roots.add(cert).map_err(|e| {
                        (
                            "client_ca_file",
                            format!("{} holds a certificate rustls refuses: {e}", path.display()),
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| ("client_ca_file", format!("{}: {e}", path.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            (
                "key_file",
                format!(
                    "{} does not go with the certificate in {}: {e}",
                    files.key_file.display(),
                    files.cert_file.display()
                ),
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ListenerTls {
            files,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.files.client_ca_file.is_some()
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{} holds no PEM private key", path.display()))
}
