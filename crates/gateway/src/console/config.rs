//! The `ui:` section: whether the console is served, who may sign in, and what its index keeps.
//!
//! There is no default user and no default password: `enabled: true` without a way to sign in is
//! a configuration error. Password hashes are argon2 (`peregrine-gateway hash-password`); they are
//! checked here and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use peregrine_outputs::duration::ConfigDuration;
use peregrine_outputs::size::ByteSize;
use serde::Deserialize;

use super::index::Retention;

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Looks at alerts, outputs and dead letters.
    Viewer,
    /// Also redrives dead letters.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// An argon2 hash in the PHC string format, checked when the configuration is read.
    pub password_hash: String,
    pub role: Role,
}

/// Sign-in by a reverse proxy that authenticated the person and names them in a header. Only
/// requests from `trusted_proxies` are believed; anyone else sending the header is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    /// Lower-case header name, e.g. `x-forwarded-user`.
    pub header: String,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The role of people not listed in `users` (listed ones keep theirs).
    pub default_role: Role,
}

/// A person signed in by the client certificate they present to the listener (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateUser {
    /// The certificate's SHA-256, lower-case hex without colons.
    pub sha256: String,
    pub name: String,
    pub role: Role,
}

/// The console's settings, when it is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiConfig {
    pub users: Vec<User>,
    pub proxy_auth: Option<ProxyAuth>,
    pub client_certificates: Vec<CertificateUser>,
    pub retention: Retention,
    /// The index file (by default `console/index.sqlite` in the spool directory).
    pub index_path: PathBuf,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    users: Vec<RawUser>,
    retention: Option<RawRetention>,
    index_path: Option<PathBuf>,
    session_ttl: Option<ConfigDuration>,
    proxy_auth: Option<RawProxyAuth>,
    #[serde(default)]
    client_certificates: Vec<RawCertificateUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificateUser {
    sha256: String,
    name: String,
    role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyAuth {
    header: String,
    trusted_proxies: Vec<std::net::IpAddr>,
    #[serde(default = "viewer")]
    default_role: Role,
}

fn viewer() -> Role {
    Role::Viewer
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
    role: Role,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age: Option<ConfigDuration>,
    max_bytes: Option<ByteSize>,
}

/// One problem: the key's path below `ui` and what is wrong.
pub type Problem = (String, String);

impl RawUi {
    /// The console's settings (`None` when it is off), or the problems found, each at its path.
    pub fn check(self, spool_dir: &Path) -> Result<Option<UiConfig>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut users: Vec<User> = Vec::new();
        for (i, u) in self.users.into_iter().enumerate() {
            let at = format!("ui.users[{i}]");
            if u.name.trim().is_empty() || u.name.len() > 64 || u.name.chars().any(char::is_control)
            {
                problems.push((
                    format!("{at}.name"),
                    "must be 1 to 64 printable characters".into(),
                ));
            } else if users.iter().any(|o| o.name == u.name) {
                problems.push((
                    format!("{at}.name"),
                    format!("'{}' is listed twice", u.name),
                ));
            }
            if let Err(why) = check_hash(&u.password_hash) {
                problems.push((format!("{at}.password_hash"), why));
            }
            users.push(User {
                name: u.name,
                password_hash: u.password_hash,
                role: u.role,
            });
        }
        let proxy_auth = self.proxy_auth.map(|p| ProxyAuth {
            header: p.header.to_ascii_lowercase(),
            trusted_proxies: p.trusted_proxies,
            default_role: p.default_role,
        });
        if let Some(p) = &proxy_auth {
            if axum::http::HeaderName::from_bytes(p.header.as_bytes()).is_err() {
                problems.push((
                    "ui.proxy_auth.header".into(),
                    format!("'{}' is not a header name", p.header),
                ));
            }
            if p.trusted_proxies.is_empty() {
                problems.push((
                    "ui.proxy_auth.trusted_proxies".into(),
                    "list the proxy's addresses: a header anyone can send is not a sign-in".into(),
                ));
            }
        }
        let mut client_certificates = Vec::new();
        for (i, c) in self.client_certificates.into_iter().enumerate() {
            let sha256: String = c
                .sha256
                .chars()
                .filter(|ch| *ch != ':')
                .collect::<String>()
                .to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push((
                    format!("ui.client_certificates[{i}].sha256"),
                    "must be a SHA-256 fingerprint (64 hex digits, colons allowed), as `openssl x509 -noout -fingerprint -sha256` prints it".into(),
                ));
            }
            client_certificates.push(CertificateUser {
                sha256,
                name: c.name,
                role: c.role,
            });
        }
        if self.enabled
            && users.is_empty()
            && proxy_auth.is_none()
            && client_certificates.is_empty()
        {
            problems.push((
                "ui.users".into(),
                "the console needs at least one user (there is no default password): add `{ name: alice, password_hash: \"$argon2id$…\", role: operator }`, the hash printed by `peregrine-gateway hash-password`".into(),
            ));
        }
        let raw = self.retention.unwrap_or_default();
        let defaults = Retention::default();
        let retention = Retention {
            max_age: raw.max_age.map_or(defaults.max_age, |d| d.0),
            max_bytes: raw.max_bytes.map_or(defaults.max_bytes, |b| b.0 as u64),
        };
        if retention.max_bytes < 1 << 20 {
            problems.push((
                "ui.retention.max_bytes".into(),
                "must be at least 1MiB".into(),
            ));
        }
        if retention.max_age < Duration::from_secs(60) {
            problems.push(("ui.retention.max_age".into(), "must be at least 1m".into()));
        }
        let session_ttl = self
            .session_ttl
            .map_or(Duration::from_secs(12 * 3600), |d| d.0);
        if session_ttl < Duration::from_secs(60) {
            problems.push(("ui.session_ttl".into(), "must be at least 1m".into()));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(self.enabled.then(|| UiConfig {
            users,
            proxy_auth,
            client_certificates,
            retention,
            index_path: self
                .index_path
                .unwrap_or_else(|| spool_dir.join("console").join("index.sqlite")),
            session_ttl,
        }))
    }
}

/// An argon2 PHC string, or why not (without repeating it: a hash is not for logs).
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| format!("is not a password hash in the PHC format ({e}); make one with `peregrine-gateway hash-password`"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "is a {} hash; the console takes argon2 (`peregrine-gateway hash-password`)",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("has no salt or no hash part".into());
    }
    Ok(())
}

/// An argon2id hash of `password` with a random salt and the crate's default cost (19 MiB,
/// two passes: OWASP's recommendation), as `hash-password` prints it.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches the PHC `hash` (checked when the configuration was read).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}
