//! `type: grafana_oncall` — an alert into a Grafana OnCall "Formatted webhook" integration
//! (`POST {integration url}`), which groups, escalates and pages as its routes say.
//!
//! The body has the fields the integration reads (`alert_uid` — the alert's id, so a retried
//! request joins the same alert group —, `title`, `message`, `state: alerting`,
//! `link_to_upstream_details`) and, for OnCall's routing and grouping templates, the alert's
//! `rule`, `priority`, `hostname`, `source`, `tags` and `output_fields`. OnCall renders these as
//! data, never as markup, so nothing is escaped. OnCall documents no field limits; titles are
//! kept to 500 characters and messages to 10 000. Its integrations take 300 alerts in 5 minutes,
//! so the default pace is one a second with a burst of 10; a 429 waits `Retry-After`.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::card::truncate;
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, HttpEncoder, HttpOutput, HttpRequest, HttpResponse, Tls};
use crate::output::Output;
use crate::pacer::Pacer;
use crate::preset::{self, Dialect, Markup, MessageText};
use crate::rate::RateLimit;
use crate::secret::SecretUrl;
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<OnCallSettings>("grafana_oncall", Audience::People);

const TEMPLATE: &str = "{{ output }}\n{% for f in important %}\n{{ f[0] }}: {{ f[1] }}{% endfor %}";
pub(crate) const MESSAGE_MAX: usize = 10_000;
const TITLE_MAX: usize = 500;
/// OnCall answers errors in plain text (or Django's `{"detail": …}`).
const DIALECT: Dialect = Dialect {
    reason: |b| preset::text_at(b, "/detail"),
    wait: |_| None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallKeys {
    /// The integration's URL (`…/integrations/v1/formatted_webhook/{token}/`): a secret.
    pub webhook_url: SecretUrl,
    /// A link shown with the alert (a Falco dashboard, the console).
    pub link: Option<String>,
    /// The message as a Jinja template (see `preset/text.rs`).
    pub template: Option<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct OnCallSettings {
    url: SecretUrl,
    link: Option<String>,
    text: MessageText,
    rate: RateLimit,
    tls: Tls,
}

impl OutputSettings for OnCallSettings {
    type Keys = OnCallKeys;

    fn check(keys: OnCallKeys) -> Result<Self, SettingsError> {
        Ok(OnCallSettings {
            url: keys.webhook_url,
            link: keys.link,
            text: preset::message_text(
                keys.template.as_deref(),
                TEMPLATE,
                Markup::Plain,
                MESSAGE_MAX,
            )?,
            rate: preset::rate(keys.rate_limit, RateLimit::new(1.0, 10))?,
            tls: keys.tls,
        })
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        format!("Grafana OnCall integration {}", self.url)
    }
}

pub fn build(settings: &OnCallSettings, ctx: BuildContext) -> HttpOutput<OnCallEncoder> {
    let encoder = OnCallEncoder {
        pacer: preset::pacer(settings.url.expose().as_str(), settings.rate),
        settings: settings.clone(),
    };
    HttpOutput::new(
        encoder,
        http::client_with_tls(ctx.max_in_flight, &settings.tls),
    )
}

pub struct OnCallEncoder {
    settings: OnCallSettings,
    pacer: Arc<Pacer>,
}

impl HttpEncoder for OnCallEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let envelope = preset::single(batch)?;
        let a = envelope.alert();
        let body = json!({
            "alert_uid": envelope.id(),
            "title": truncate(&format!("{}: {}", a.priority, a.rule), TITLE_MAX),
            "message": self.settings.text.render(envelope)?,
            "state": "alerting",
            "link_to_upstream_details": self.settings.link,
            "image_url": null,
            "rule": a.rule,
            "priority": a.priority.as_str(),
            "hostname": a.hostname,
            "source": a.source,
            "tags": a.tags,
            "output_fields": a.output_fields,
        });
        Ok(preset::post_json(
            &self.settings.url,
            HeaderMap::new(),
            &body,
        ))
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        DIALECT.classify(response)
    }
}

#[cfg(test)]
mod tests;
