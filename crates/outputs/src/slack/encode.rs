//! Slack message bodies.
//!
//! Limits kept (Block Kit reference): a header's text at most 150 characters, a section's text
//! 3 000, at most 10 fields of 2 000 each, at most 50 blocks a message. A few alerts show as full
//! cards (4 blocks each, [`CARDS_MAX`] at most); a burst shows as a list, one line an alert,
//! packed into sections — 100 alerts of at most 300 characters fill at most 11 sections.
//!
//! Alert text is attacker-controlled (a command line, a file name, a rule name posted to the
//! gateway), so none of it may reach Slack as markup that acts
//! (<https://api.slack.com/reference/surfaces/formatting#escaping>):
//!
//! - In every `mrkdwn` text object and in the message's `text` and attachments' `fallback`,
//!   alert text has `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;` ([`escape`]): no `<!channel>`,
//!   `<@U123>`, `<!subteam^…>`, `<!date^…>` or `<https://evil|label>` can come from an alert.
//!   The one mention left live is the output's configured `mention`.
//! - `mrkdwn` text objects carry `"verbatim": true`, so Slack does not turn bare URLs, channel
//!   names or `@here` in alert text into links or mentions.
//! - Alert text inside our own code spans (tags, and everything else in the footer that holds
//!   them) has its backticks as `ˋ` (U+02CB) ([`escape_code`]), so it cannot close the span.
//! - `*`, `_`, `~` and backticks elsewhere are left as they are: they can only change emphasis,
//!   and command lines full of globs and snake_case read better unaltered (mrkdwn has no escape
//!   for them). In the burst list, line breaks in alert text become spaces so that one alert
//!   stays one line and cannot pose as others.
//! - `plain_text` objects (headers) take the text raw: Slack parses no mentions or links there,
//!   and `"emoji": false` keeps `:shortcodes:` in rule names literal.

use peregrine_engine::{Alert, Priority};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};

use super::config::{SlackConfig, SlackFormat};
use crate::card::{color, important_fields, output_text, truncate, TRUNCATED};
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{HttpEncoder, HttpRequest, HttpResponse};
use crate::output::BatchLimits;
use crate::pacer::{self, Pacer};
use crate::secret::SecretUrl;

/// Up to this many alerts in one message are shown as full cards; more are listed.
pub const CARDS_MAX: usize = 5;
/// The most alerts one message carries (a list of one line each).
pub const ALERTS_MAX: usize = 100;
const LINE_MAX: usize = 300;
const SECTION_MAX: usize = 3000;

/// Alert text for mrkdwn and the message's `text`: Slack's three control characters as the
/// entities Slack documents; everything else as it is.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Alert text inside one of our `code` spans: [`escape`]d, with backticks as `ˋ` (U+02CB) so it
/// cannot end the span early.
pub fn escape_code(text: &str) -> String {
    escape(text).replace('`', "\u{2cb}")
}

/// [`truncate`] for mrkdwn holding escaped alert text: a cut never leaves part of an entity
/// (`&l`) before the marker.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let t = truncate(text, max);
    let kept = &t[..t.len() - TRUNCATED.len()];
    // An entity is at most `&amp;`: an `&` among the last four characters with no `;` after it
    // is one cut short.
    let kept = match kept.rfind('&') {
        Some(i) if kept.len() - i <= 4 && !kept[i..].contains(';') => &kept[..i],
        _ => kept,
    };
    format!("{kept}{TRUNCATED}")
}

/// A `mrkdwn` text object whose alert text is already escaped, cut to `max` characters.
fn mrkdwn(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, max), "verbatim": true})
}

pub struct SlackEncoder {
    url: SecretUrl,
    config: SlackConfig,
    pacer: std::sync::Arc<Pacer>,
}

impl SlackEncoder {
    pub fn new(config: &SlackConfig) -> Self {
        SlackEncoder {
            url: config.webhook_url.clone(),
            pacer: pacer::shared(
                config.webhook_url.expose().as_str(),
                config.rate_limit.per_second,
                config.rate_limit.burst,
            ),
            config: config.clone(),
        }
    }

    /// The message for a batch of alerts.
    pub fn body(&self, batch: &[Envelope]) -> Value {
        let alerts: Vec<&Alert> = batch.iter().map(|e| e.alert()).collect();
        let mention = self
            .config
            .mention
            .as_ref()
            .filter(|m| {
                alerts
                    .iter()
                    .any(|a| a.priority.is_at_least(m.min_priority))
            })
            .map(|m| m.text.as_str());
        let fallback = fallback_text(&alerts, mention);
        let mut body = match self.config.format {
            SlackFormat::Text => json!({ "text": text_message(&alerts, mention) }),
            SlackFormat::Blocks if batch.len() <= CARDS_MAX => {
                let attachments: Vec<Value> = batch.iter().map(card).collect();
                let mut v = json!({ "text": fallback, "attachments": attachments });
                if let Some(m) = mention {
                    v["blocks"] = json!([section(m)]);
                }
                v
            }
            SlackFormat::Blocks => {
                let mut blocks = Vec::new();
                if let Some(m) = mention {
                    blocks.push(section(m));
                }
                blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&count_title(&alerts), 150), "emoji": false}}));
                for text in pack(alerts.iter().map(|a| list_line(a)), SECTION_MAX) {
                    blocks.push(section(&text));
                }
                let first = alerts
                    .iter()
                    .map(|a| a.time)
                    .min()
                    .expect("a batch is never empty");
                let last = alerts
                    .iter()
                    .map(|a| a.time)
                    .max()
                    .expect("a batch is never empty");
                blocks.push(context(&format!("{first} … {last}")));
                json!({
                    "text": fallback,
                    "attachments": [{"color": color(most_severe(&alerts)), "fallback": cut(&fallback, 500), "blocks": blocks}]
                })
            }
        };
        for (key, value) in [
            ("channel", &self.config.channel),
            ("username", &self.config.username),
            ("icon_emoji", &self.config.icon_emoji),
        ] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        body
    }
}

/// One alert as a coloured attachment: header, output, fields, then host, tags, time and id.
fn card(e: &Envelope) -> Value {
    let a: &Alert = e.alert();
    let fields: Vec<Value> = important_fields(a, 10)
        .into_iter()
        .map(|(name, value)| mrkdwn(&format!("*{}*\n{}", escape(&name), escape(&value)), 2000))
        .collect();
    let mut blocks = vec![
        // plain_text: Slack parses no mentions or links in it, so the rule goes in raw.
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("{}: {}", a.priority, a.rule), 150), "emoji": false}}),
        section(&escape(&output_text(a))),
    ];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    // The footer holds our code spans (tags): no backtick from the alert anywhere in it.
    let mut footer = Vec::new();
    if let Some(h) = &a.hostname {
        footer.push(format!("host *{}*", escape_code(h)));
    }
    if !a.tags.is_empty() {
        footer.push(format!(
            "tags {}",
            a.tags
                .iter()
                .map(|t| format!("`{}`", escape_code(t)))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    footer.push(a.time.to_string());
    footer.push(format!("id {}", escape_code(e.id())));
    blocks.push(context(&footer.join(" · ")));
    json!({"color": color(a.priority), "fallback": cut(&summary(a), 500), "blocks": blocks})
}

/// A section of mrkdwn (alert text in it already escaped).
fn section(text: &str) -> Value {
    json!({"type": "section", "text": mrkdwn(text, SECTION_MAX)})
}

/// A context line of mrkdwn (alert text in it already escaped).
fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [mrkdwn(text, SECTION_MAX)]})
}

/// `[Priority] rule: output`, escaped for the message's `text`.
fn summary(a: &Alert) -> String {
    format!(
        "[{}] {}: {}",
        a.priority,
        escape(&a.rule),
        cut(&escape(&output_text(a)), 500)
    )
}

/// The notification text: what a phone or a screen reader shows.
fn fallback_text(alerts: &[&Alert], mention: Option<&str>) -> String {
    let text = match alerts {
        [one] => summary(one),
        _ => count_title(alerts),
    };
    // The configured mention is the only markup that stays live.
    cut(
        &mention.map_or(text.clone(), |m| format!("{m} {text}")),
        3900,
    )
}

/// `format: text`: one plain message, a line per alert.
fn text_message(alerts: &[&Alert], mention: Option<&str>) -> String {
    let mut lines: Vec<String> = mention.map(str::to_string).into_iter().collect();
    if alerts.len() > 1 {
        lines.push(count_title(alerts));
    }
    lines.extend(alerts.iter().map(|a| match alerts.len() {
        1 => summary(a),
        _ => list_line(a),
    }));
    cut(&lines.join("\n"), 39_000)
}

/// "37 alerts: 3 Critical, 34 Warning".
fn count_title(alerts: &[&Alert]) -> String {
    let mut counts: Vec<(Priority, usize)> = Vec::new();
    for a in alerts {
        match counts.iter_mut().find(|(p, _)| *p == a.priority) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.priority, 1)),
        }
    }
    counts.sort_by_key(|(p, _)| p.level());
    let parts: Vec<String> = counts.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("{} Falco alerts: {}", alerts.len(), parts.join(", "))
}

fn most_severe(alerts: &[&Alert]) -> Priority {
    alerts
        .iter()
        .map(|a| a.priority)
        .min_by_key(|p| p.level())
        .expect("a batch is never empty")
}

/// One alert in a list: priority, rule, host and the start of its output, escaped and on one
/// line (line breaks in alert text become spaces, so an alert cannot pose as more list lines).
fn list_line(a: &Alert) -> String {
    let one_line = |s: &str| escape(s).replace(['\r', '\n'], " ");
    let host = a
        .hostname
        .as_deref()
        .map(|h| format!(" · {}", one_line(h)))
        .unwrap_or_default();
    let head = format!("*{}* {}{host} — ", a.priority, one_line(&a.rule));
    let room = LINE_MAX.saturating_sub(head.chars().count()).max(40);
    cut(
        &format!("{head}{}", cut(&one_line(&output_text(a)), room)),
        LINE_MAX,
    )
}

/// Joins lines into texts of at most `max` characters each.
fn pack(lines: impl Iterator<Item = String>, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in lines {
        if !current.is_empty() && current.chars().count() + 1 + line.chars().count() > max {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl HttpEncoder for SlackEncoder {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.config.max_alerts_per_message,
            ..BatchLimits::SINGLE
        }
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers,
            body: serde_json::to_vec(&self.body(batch))
                .expect("a JSON value serialises")
                .into(),
        })
    }

    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        super::response::classify(response)
    }
}
