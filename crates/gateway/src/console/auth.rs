//! Who is signed in: sessions behind an HTTP-only, `Secure`, `SameSite=Strict` cookie, each with
//! its CSRF token, and a throttle on failed sign-ins per client address.
//!
//! Session tokens are 256 random bits; the server keeps only their SHA-256, so a memory dump or a
//! debug print does not hand out a live session. Passwords are checked with argon2 on the
//! blocking pool, at most [`MAX_CONCURRENT_CHECKS`] at once, so a crowd of sign-ins cannot take
//! the cores from ingest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::config::{verify_password, CertificateUser, ProxyAuth, Role, User};

/// The cookie's name. `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`.
pub const COOKIE: &str = "__Host-peregrine-session";
/// The header that carries the session's CSRF token on every `POST`.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions kept at most; past it the one closest to expiring goes.
const MAX_SESSIONS: usize = 10_000;
/// Failed sign-ins allowed per client address per [`THROTTLE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses the throttle remembers at most.
const MAX_THROTTLED: usize = 10_000;
/// Password checks running at once (each takes ~20 MiB and tens of milliseconds).
pub const MAX_CONCURRENT_CHECKS: usize = 2;

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Sent back by the page in [`CSRF_HEADER`] on every state-changing request.
    pub csrf: String,
    expires: Instant,
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong name or password (which one is not said).
    Refused,
    /// Too many failures from this address: try again after this many seconds.
    Throttled(u64),
}

pub struct Auth {
    users: Mutex<Vec<User>>,
    proxy: Mutex<Option<ProxyAuth>>,
    certificates: Mutex<Vec<CertificateUser>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    checks: Semaphore,
    ttl: Duration,
    /// Checked for unknown names, so that a wrong name takes as long as a wrong password.
    decoy_hash: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(users: Vec<User>, proxy: Option<ProxyAuth>, ttl: Duration) -> Auth {
        Auth {
            users: Mutex::new(users),
            proxy: Mutex::new(proxy),
            certificates: Mutex::default(),
            sessions: Mutex::default(),
            failures: Mutex::default(),
            checks: Semaphore::new(MAX_CONCURRENT_CHECKS),
            ttl,
            decoy_hash: super::config::hash_password(&random_hex(16)),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new user list and proxy setting (a reload): sessions of users removed or whose role
    /// changed end.
    pub fn replace_users(&self, users: Vec<User>, proxy: Option<ProxyAuth>) {
        *self.proxy.lock().expect("proxy lock") = proxy;
        self.sessions
            .lock()
            .expect("sessions lock")
            .retain(|_, s| users.iter().any(|u| u.name == s.user && u.role == s.role));
        *self.users.lock().expect("users lock") = users;
    }

    /// Checks a name and password from `from`; on success returns the new session's token.
    pub async fn sign_in(
        &self,
        from: IpAddr,
        name: &str,
        password: &str,
    ) -> Result<(String, Session), SignInError> {
        self.throttled(from)?;
        let user = self
            .users
            .lock()
            .expect("users lock")
            .iter()
            .find(|u| u.name == name)
            .cloned();
        let hash = user
            .as_ref()
            .map_or(self.decoy_hash.clone(), |u| u.password_hash.clone());
        let password = password.to_string();
        let _permit = self.checks.acquire().await.expect("never closed");
        let matched = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if matched => {
                self.failures.lock().expect("failures lock").remove(&from);
                Ok(self.create(&user))
            }
            _ => {
                self.failed(from);
                Err(SignInError::Refused)
            }
        }
    }

    fn throttled(&self, from: IpAddr) -> Result<(), SignInError> {
        let failures = self.failures.lock().expect("failures lock");
        match failures.get(&from) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < THROTTLE_WINDOW => Err(
                SignInError::Throttled((THROTTLE_WINDOW - since.elapsed()).as_secs() + 1),
            ),
            _ => Ok(()),
        }
    }

    fn failed(&self, from: IpAddr) {
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_THROTTLED {
            failures.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        }
        if failures.len() >= MAX_THROTTLED {
            // Still full of fresh failures: forget the oldest, never grow without bound.
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, (_, s))| *s)
                .map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(from).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= THROTTLE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn create(&self, user: &User) -> (String, Session) {
        let token = random_hex(32);
        let session = Session {
            user: user.name.clone(),
            role: user.role,
            csrf: random_hex(16),
            expires: Instant::now() + self.ttl,
        };
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, s| s.expires > Instant::now());
        if sessions.len() >= MAX_SESSIONS {
            if let Some(k) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
            {
                sessions.remove(&k);
            }
        }
        sessions.insert(key(&token), session.clone());
        (token, session)
    }

    /// The live session of a cookie's token.
    pub fn session(&self, token: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let k = key(token);
        match sessions.get(&k) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(&k);
                None
            }
            None => None,
        }
    }

    /// The person a trusted reverse proxy names in its header, when `from` is one of its
    /// addresses: their session (made on first sight, kept like a signed-in one, so that it has
    /// a CSRF token for `POST`s). The header is ignored from anywhere else.
    pub fn proxied(
        &self,
        from: IpAddr,
        header: impl Fn(&str) -> Option<String>,
    ) -> Option<Session> {
        let proxy = self.proxy.lock().expect("proxy lock").clone()?;
        if !proxy.trusted_proxies.contains(&from) {
            return None;
        }
        let name = header(&proxy.header)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return None;
        }
        let role = self
            .users
            .lock()
            .expect("users lock")
            .iter()
            .find(|u| u.name == name)
            .map_or(proxy.default_role, |u| u.role);
        Some(self.remembered(&format!("proxy\0{name}"), name, role))
    }

    /// The people who sign in with a client certificate (set at start and by a reload).
    pub fn replace_certificates(&self, certificates: Vec<CertificateUser>) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|k, s| {
            certificates
                .iter()
                .any(|c| c.name == s.user && c.role == s.role)
                || *k != key(&format!("cert\0{}", s.user))
        });
        *self.certificates.lock().expect("certificates lock") = certificates;
    }

    /// The person whose client certificate (SHA-256) the connection presented, if listed: their
    /// session, made on first sight like [`Auth::proxied`]'s.
    pub fn by_certificate(&self, sha256: &str) -> Option<Session> {
        let who = self
            .certificates
            .lock()
            .expect("certificates lock")
            .iter()
            .find(|c| same_secret(&c.sha256, sha256))
            .cloned()?;
        Some(self.remembered(&format!("cert\0{}", who.name), &who.name, who.role))
    }

    /// The session kept under `id` for someone signed in by something other than a cookie,
    /// made anew when missing, expired, or of another role.
    fn remembered(&self, id: &str, name: &str, role: Role) -> Session {
        let k = key(id);
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if let Some(s) = sessions.get(&k) {
            if s.expires > Instant::now() && s.role == role {
                return s.clone();
            }
        }
        let session = Session {
            user: name.to_string(),
            role,
            csrf: random_hex(16),
            expires: Instant::now() + self.ttl,
        };
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > Instant::now());
        }
        if sessions.len() < MAX_SESSIONS {
            sessions.insert(k, session.clone());
        }
        session
    }

    pub fn sign_out(&self, token: &str) {
        self.sessions
            .lock()
            .expect("sessions lock")
            .remove(&key(token));
    }
}

/// The session token in a `Cookie` header, if any.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that deletes it).
pub fn set_cookie(token: Option<&str>, ttl: Duration) -> String {
    match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
            ttl.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::config::hash_password;

    fn auth() -> Auth {
        let users = vec![
            User {
                name: "alice".into(),
                password_hash: hash_password("alice-pw"),
                role: Role::Operator,
            },
            User {
                name: "bob".into(),
                password_hash: hash_password("bob-pw"),
                role: Role::Viewer,
            },
        ];
        Auth::new(users, None, Duration::from_secs(3600))
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn a_right_password_opens_a_session_and_a_wrong_one_does_not() {
        let auth = auth();
        let (token, session) = auth.sign_in(HOME, "alice", "alice-pw").await.unwrap();
        assert_eq!(
            (session.user.as_str(), session.role),
            ("alice", Role::Operator)
        );
        assert_eq!(auth.session(&token), Some(session.clone()));
        assert_eq!(token.len(), 64);
        assert_ne!(session.csrf, token);
        assert_eq!(
            auth.sign_in(HOME, "alice", "bob-pw").await.unwrap_err(),
            SignInError::Refused
        );
        assert_eq!(
            auth.sign_in(HOME, "carol", "x").await.unwrap_err(),
            SignInError::Refused
        );
        assert_eq!(auth.session(&"0".repeat(64)), None);
        auth.sign_out(&token);
        assert_eq!(auth.session(&token), None);
    }

    #[tokio::test]
    async fn failures_from_one_address_are_throttled_and_others_are_not() {
        let auth = auth();
        let attacker: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.sign_in(attacker, "alice", "guess").await.unwrap_err(),
                SignInError::Refused
            );
        }
        match auth.sign_in(attacker, "alice", "alice-pw").await {
            Err(SignInError::Throttled(secs)) => assert!((1..=60).contains(&secs), "{secs}"),
            other => panic!("{other:?}"),
        }
        assert!(
            auth.sign_in(HOME, "alice", "alice-pw").await.is_ok(),
            "another address signs in"
        );
    }

    #[tokio::test]
    async fn a_reload_ends_the_sessions_of_removed_users_and_changed_roles() {
        let auth = auth();
        let (alice, _) = auth.sign_in(HOME, "alice", "alice-pw").await.unwrap();
        let (bob, _) = auth.sign_in(HOME, "bob", "bob-pw").await.unwrap();
        auth.replace_users(
            vec![User {
                name: "alice".into(),
                password_hash: hash_password("new"),
                role: Role::Viewer,
            }],
            None,
        );
        assert_eq!(auth.session(&alice), None);
        assert_eq!(auth.session(&bob), None);
    }

    #[test]
    fn cookies_are_read_strictly_and_set_with_every_protection() {
        let t = "ab".repeat(32);
        assert_eq!(
            token_from_cookies(&format!("x=1; {COOKIE}={t}; y=2")),
            Some(t.as_str())
        );
        assert_eq!(token_from_cookies(&format!("{COOKIE}=short")), None);
        assert_eq!(token_from_cookies("peregrine-session=abc"), None);
        let set = set_cookie(Some(&t), Duration::from_secs(60));
        for part in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
