//! `sign`: a Stripe-style signature header, so a receiver can reject forged and replayed requests.
//!
//! `X-Peregrine-Signature: t=UNIX_SECONDS,v1=HEX`, where `v1` is HMAC-SHA256 with the shared
//! secret over `"{t}.{body}"`. A receiver recomputes `v1` over the body it received, compares in
//! constant time, and refuses a `t` too far from its clock (5 minutes is usual). Each attempt is
//! signed afresh, so a retry carries its own time.

use hmac::{KeyInit, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use sha2::Sha256;

use crate::secret::Secret;

pub const DEFAULT_HEADER: &str = "X-Peregrine-Signature";

#[derive(Debug, Clone)]
pub struct Signer {
    pub secret: Secret,
    pub header: HeaderName,
}

impl Signer {
    /// The header's value for `body` sent at `unix_seconds`.
    pub fn sign(&self, body: &[u8], unix_seconds: u64) -> HeaderValue {
        let mut mac = Hmac::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(format!("{unix_seconds}.").as_bytes());
        mac.update(body);
        let v1 = hex::encode(mac.finalize().into_bytes());
        HeaderValue::from_str(&format!("t={unix_seconds},v1={v1}"))
            .expect("digits and hex are header-safe")
    }
}

type Hmac = hmac::Hmac<Sha256>;
