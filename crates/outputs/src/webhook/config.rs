//! The webhook's keys: `url`, `method`, `headers`, `body_template`, `content_type`, `sign`.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::Deserialize;

use super::sign::{self, Signer};
use super::template::{self, Templates};
use crate::secret::{Secret, SecretUrl};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: SecretUrl,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra request headers. Values are treated as secrets (they are usually tokens).
    #[serde(default)]
    pub headers: Headers,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
    /// The body as a Jinja template over the alert (see `template.rs`), instead of its JSON.
    pub body_template: Option<String>,
    /// `Content-Type` (default `application/json`).
    pub content_type: Option<String>,
    /// Signs every request with HMAC-SHA256 (see `sign.rs`).
    pub sign: Option<SignConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    pub secret: Secret,
    /// The header's name (default `X-Peregrine-Signature`).
    pub header: Option<String>,
}

/// The checked settings a webhook runs with.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: SecretUrl,
    pub method: WebhookMethod,
    /// Headers whose values are fixed, `Content-Type` included.
    pub headers: HeaderMap,
    /// Headers whose values are templates, rendered per alert (their names).
    pub templated_headers: Vec<HeaderName>,
    /// The body's ([`template::BODY`]) and the templated headers' templates, when there are any.
    pub templates: Option<Templates>,
    pub signer: Option<Signer>,
    pub tls: crate::http::Tls,
}

impl WebhookSettings {
    pub fn has_body_template(&self) -> bool {
        self.templates
            .as_ref()
            .is_some_and(|t| t.has(template::BODY))
    }

    /// Checks the keys together: templates compile and render a sample alert (a syntax error or
    /// an unknown filter is a config error), a JSON body template renders JSON.
    pub(super) fn from_keys(keys: WebhookConfig) -> Result<Self, SettingsError> {
        let mut headers = HeaderMap::new();
        let mut templated_headers = Vec::new();
        let mut sources = Vec::new();
        for (name, value) in keys.headers.0.iter() {
            let text = value.to_str().unwrap_or_default();
            if text.contains("{{") || text.contains("{%") {
                sources.push((header_template(name), text.to_string()));
                templated_headers.push(name.clone());
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        let content_type = keys.content_type.as_deref().unwrap_or("application/json");
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| SettingsError::new("content_type", "is not a valid header value"))?;
        headers.insert(CONTENT_TYPE, content_type.clone());
        if let Some(body) = keys.body_template {
            sources.push((template::BODY.to_string(), body));
        }
        let templates = (!sources.is_empty())
            .then(|| compile_and_try(sources, &content_type))
            .transpose()?;
        let signer = keys.sign.map(signer).transpose()?;
        Ok(WebhookSettings {
            url: keys.url,
            method: keys.method,
            headers,
            templated_headers,
            templates,
            signer,
            tls: keys.tls,
        })
    }
}

/// The template name of a templated header.
pub fn header_template(name: &HeaderName) -> String {
    format!("headers.{name}")
}

/// Compiles the templates and renders each for a sample alert, so what fails for every alert is
/// found now; a body declared JSON must render JSON.
fn compile_and_try(
    sources: Vec<(String, String)>,
    content_type: &HeaderValue,
) -> Result<Templates, SettingsError> {
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    let key = |name: &str| {
        if name == template::BODY {
            "body_template".to_string()
        } else {
            name.to_string()
        }
    };
    let templates = Templates::compile(sources).map_err(|(n, m)| SettingsError::new(key(&n), m))?;
    let sample =
        template::context(&crate::envelope::Envelope::sample()).expect("the sample alert is JSON");
    for name in names {
        let rendered = templates.render(&name, &sample).map_err(|m| {
            SettingsError::new(key(&name), format!("fails for a sample alert: {m}"))
        })?;
        let json = content_type.to_str().is_ok_and(|t| t.contains("json"));
        if name == template::BODY && json {
            serde_json::from_str::<serde_json::Value>(&rendered).map_err(|e| {
                SettingsError::new(
                    "body_template",
                    format!("does not render JSON for a sample alert ({e}); quote text with the json filter: {{{{ output | json }}}}"),
                )
            })?;
        }
    }
    Ok(templates)
}

fn signer(sign: SignConfig) -> Result<Signer, SettingsError> {
    if sign.secret.expose().is_empty() {
        return Err(SettingsError::new("sign.secret", "must not be empty"));
    }
    let header = sign.header.as_deref().unwrap_or(sign::DEFAULT_HEADER);
    let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
        SettingsError::new(
            "sign.header",
            format!("'{header}' is not a valid header name"),
        )
    })?;
    Ok(Signer {
        secret: sign.secret,
        header,
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
}

impl fmt::Display for WebhookMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
        })
    }
}

impl<'de> Deserialize<'de> for WebhookMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_uppercase().as_str() {
            "POST" => Ok(WebhookMethod::Post),
            "PUT" => Ok(WebhookMethod::Put),
            _ => Err(serde::de::Error::custom(format!(
                "method '{s}' is not supported (use POST or PUT)"
            ))),
        }
    }
}

/// Validated request headers whose values never print.
#[derive(Clone, Default)]
pub struct Headers(pub HeaderMap);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k.as_str(), "***")))
            .finish()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        let mut map = HeaderMap::new();
        for (name, value) in raw {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| D::Error::custom(format!("'{name}' is not a valid header name")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                D::Error::custom(format!("the value of header '{name}' is not valid in HTTP"))
            })?;
            value.set_sensitive(true);
            map.insert(header, value);
        }
        Ok(Headers(map))
    }
}
