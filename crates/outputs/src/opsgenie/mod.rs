//! `type: opsgenie` — an Opsgenie alert per Falco alert (`POST /v2/alerts`, `Authorization:
//! GenieKey …`), deduplicated by Opsgenie on `alias`, the alert's id, so a retried request never
//! opens a second incident.
//!
//! Limits kept (Alert API): `message` at most 130 characters, `alias` and `entity` 512,
//! `description` 15 000, `source` 100, at most 20 tags of 50, `details` at most 8 000
//! characters in all. Falco's priorities map to P1 (Emergency, Alert), P2 (Critical), P3
//! (Error), P4 (Warning) and P5 (the rest). Opsgenie renders no markup in these fields, so
//! nothing is escaped. Its answer is 202 `Request will be processed`; errors read `message`
//! and the per-field `errors`; its rate limits depend on the plan, so the default pace is
//! one a second with a burst of 10, and a 429 pauses a second.

use std::sync::Arc;

use peregrine_engine::{Alert, Priority};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::card::{important_fields, truncate};
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::{Secret, SecretUrl};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<OpsgenieSettings>("opsgenie", Audience::People);

const TEMPLATE: &str = "{{ output }}\n\nRule: {{ rule }}\nPriority: {{ priority }}\nHost: {{ hostname }}\nTags: {{ tags | join(', ') }}";
const DESCRIPTION_MAX: usize = 15_000;
const DETAILS_MAX: usize = 8000;
const DIALECT: Dialect = Dialect {
    reason,
    wait: |_| None,
};

/// `message`, then what `errors` says of each field.
fn reason(body: &Value) -> Option<String> {
    let message = body.get("message")?.as_str()?;
    let errors: Vec<String> = body
        .get("errors")
        .and_then(Value::as_object)
        .map(|e| {
            e.iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    Some(match errors.as_slice() {
        [] => message.to_string(),
        _ => format!("{message} ({})", errors.join("; ")),
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Us,
    Eu,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieKeys {
    /// An API integration's key.
    pub api_key: Secret,
    /// Where the account lives: `us` (api.opsgenie.com) or `eu` (api.eu.opsgenie.com).
    #[serde(default)]
    pub region: Region,
    /// Another address for the API (a proxy); overrides `region`.
    pub url: Option<SecretUrl>,
    /// Who is notified, as Opsgenie's `responders` (`{type: team, name: SecOps}`).
    #[serde(default)]
    pub responders: Vec<Responder>,
    /// The description as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Responder {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OpsgenieSettings {
    url: SecretUrl,
    headers: HeaderMap,
    responders: Vec<Responder>,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for OpsgenieSettings {
    type Keys = OpsgenieKeys;

    fn check(keys: OpsgenieKeys) -> Result<Self, SettingsError> {
        for (i, r) in keys.responders.iter().enumerate() {
            if !["team", "user", "escalation", "schedule"].contains(&r.kind.as_str()) {
                return Err(SettingsError::new(
                    format!("responders[{i}].type"),
                    "must be team, user, escalation or schedule",
                ));
            }
            if r.id.is_none() && r.name.is_none() && r.username.is_none() {
                return Err(SettingsError::new(
                    format!("responders[{i}]"),
                    "needs an id, a name or a username",
                ));
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            preset::secret_header(&format!("GenieKey {}", keys.api_key.expose()), "api_key")?,
        );
        let base = match (keys.url, keys.region) {
            (Some(url), _) => url,
            (None, Region::Us) => {
                SecretUrl::parse("https://api.opsgenie.com").expect("a valid URL")
            }
            (None, Region::Eu) => {
                SecretUrl::parse("https://api.eu.opsgenie.com").expect("a valid URL")
            }
        };
        Ok(OpsgenieSettings {
            url: base.endpoint("/v2/alerts", None),
            headers,
            responders: keys.responders,
            text: preset::message_text(
                keys.template.as_deref(),
                TEMPLATE,
                Markup::Plain,
                DESCRIPTION_MAX,
            )?,
            rate: preset::rate(keys.rate_limit, RateLimit::new(1.0, 10))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Opsgenie {}", self.url)
    }
}

pub fn build(settings: &OpsgenieSettings, ctx: BuildContext) -> HttpOutput<OpsgenieEncoder> {
    let encoder = OpsgenieEncoder {
        pacer: preset::pacer(
            &format!("opsgenie:{}", settings.url.expose()),
            settings.rate,
        ),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

/// Opsgenie's priority for a Falco priority.
pub fn priority(p: Priority) -> &'static str {
    match p {
        Priority::Emergency | Priority::Alert => "P1",
        Priority::Critical => "P2",
        Priority::Error => "P3",
        Priority::Warning => "P4",
        _ => "P5",
    }
}

/// The output fields as `details`, most useful first, within Opsgenie's 8 000 characters.
fn details(a: &Alert) -> Map<String, Value> {
    let mut details = Map::new();
    let mut used = 0;
    for (name, value) in important_fields(a, 50) {
        let value = truncate(&value, 500);
        used += name.chars().count() + value.chars().count();
        if used > DETAILS_MAX {
            break;
        }
        details.insert(name, Value::String(value));
    }
    details
}

pub struct OpsgenieEncoder {
    settings: OpsgenieSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for OpsgenieEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let tags: Vec<String> = a.tags.iter().take(20).map(|t| truncate(t, 50)).collect();
        let mut body = json!({
            "message": truncate(&a.rule, 130),
            "alias": envelope.id(),
            "description": self.settings.text.render(envelope)?,
            "tags": tags,
            "details": details(a),
            "source": "Peregrine",
            "priority": priority(a.priority),
        });
        if let Some(host) = &a.hostname {
            body["entity"] = json!(truncate(host, 512));
        }
        if !self.settings.responders.is_empty() {
            body["responders"] = json!(self.settings.responders);
        }
        Ok(preset::post_json(
            &self.settings.url,
            self.settings.headers.clone(),
            &body,
        ))
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
