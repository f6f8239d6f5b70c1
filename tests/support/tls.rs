//! Certificates for TLS tests, made fresh by each test with `rcgen`: a CA, a server certificate
//! for 127.0.0.1 and localhost, a client certificate it signed, and a client certificate from a
//! CA nobody trusts.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// PEM files in a directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Signed by a CA the gateway does not trust.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap();
        let ca = authority("Peregrine test CA");
        let stranger_ca = authority("Somebody else's CA");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            path
        };
        let (server_cert, server_key) = leaf(&ca, "gateway", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf(&ca, "sensor-1", ExtendedKeyUsagePurpose::ClientAuth);
        let (stranger_cert, stranger_key) = leaf(
            &stranger_ca,
            "intruder",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            stranger_cert: write("stranger.pem", stranger_cert),
            stranger_key: write("stranger.key", stranger_key),
        }
    }

    /// A client that trusts the test CA and presents `cert`/`key` when given. It opens a new
    /// connection (and handshake) for every request, so each one tests the server's TLS.
    pub fn client(&self, identity: Option<(&Path, &Path)>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&fs::read(&self.ca).unwrap()).unwrap();
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca);
        if let Some((cert, key)) = identity {
            let mut pem = fs::read(cert).unwrap();
            pem.extend(fs::read(key).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate and its key, PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}
