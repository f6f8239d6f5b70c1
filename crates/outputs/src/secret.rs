//! Values that must never reach a log line, an error message or a metrics label.

use std::fmt;
use std::sync::Arc;

use url::Url;

/// A secret string (token, password, header value). `Debug` and `Display` print `***`; the value
/// is reachable only through [`Secret::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A destination URL. Webhook URLs are credentials (Slack's and Teams' are nothing else), so the
/// printable form keeps only the scheme, host and port: `https://hooks.slack.com/…`.
/// Shared, because an output puts its URL in every request it builds.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Arc<Url>);

impl SecretUrl {
    /// Parses an absolute `http` or `https` URL. The error message never echoes the URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("not a valid URL ({e})"))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "scheme '{other}' is not supported (use http or https)"
                ))
            }
        }
        if url.host_str().is_none() {
            return Err("URL has no host".to_string());
        }
        Ok(SecretUrl(Arc::new(url)))
    }

    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// This URL with `path` appended to its own path and `query` as its query: the base URL of
    /// a service (perhaps behind a proxy prefix) and one of its endpoints.
    pub fn endpoint(&self, path: &str, query: Option<&str>) -> SecretUrl {
        let mut url = Url::clone(&self.0);
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url.set_query(query);
        SecretUrl(Arc::new(url))
    }

    /// Scheme, host and port only.
    pub fn redacted(&self) -> String {
        let host = self.0.host_str().unwrap_or("");
        match self.0.port() {
            Some(port) => format!("{}://{host}:{port}/…", self.0.scheme()),
            None => format!("{}://{host}/…", self.0.scheme()),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> serde::Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One URL or several: a YAML list or a comma-separated string (nodes of one cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlList(pub Vec<SecretUrl>);

impl<'de> serde::Deserialize<'de> for UrlList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let texts = crate::list::StringList::deserialize(d)?.0;
        let mut urls = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            urls.push(
                SecretUrl::parse(t)
                    .map_err(|e| serde::de::Error::custom(format!("URL {}: {e}", i + 1)))?,
            );
        }
        if urls.is_empty() {
            return Err(serde::de::Error::custom("needs at least one URL"));
        }
        Ok(UrlList(urls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_hides_path_query_and_credentials() {
        let url = SecretUrl::parse("https://user:pw@hooks.slack.com/services/T0/B0/XXXX?token=abc")
            .unwrap();
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(shown.contains("hooks.slack.com"), "{shown}");
            for secret in ["T0", "XXXX", "abc", "user", "pw"] {
                assert!(!shown.contains(secret), "{shown} leaks {secret}");
            }
        }
        assert_eq!(Secret::new("tok").to_string(), "***");
        assert_eq!(format!("{:?}", Secret::new("tok")), "\"***\"");
    }

    #[test]
    fn parse_errors_do_not_echo_the_url() {
        let e = SecretUrl::parse("ftp://secret-host/path-token").unwrap_err();
        assert!(!e.contains("path-token"), "{e}");
        assert!(SecretUrl::parse("not a url with-token")
            .unwrap_err()
            .starts_with("not a valid URL"));
    }
}
