//! Teams message bodies, kept under 28 KB.
//!
//! Alert text is attacker-controlled, and both formats render markdown: an Adaptive Card's
//! `TextBlock` and `Fact` title and value take a CommonMark subset (bold, italic, lists, links
//! `[x](y)`, and `{{DATE(…)}}` functions), a MessageCard's text fields take Markdown and some
//! HTML. So every piece of alert text is escaped before it goes in ([`escape_markdown`],
//! [`escape_messagecard`]): each CommonMark punctuation character that could start a link,
//! emphasis, code, heading, list, quote, table, entity or date function gets a backslash, and
//! in MessageCards `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;` so no HTML tag can form. Our
//! own formatting (the bold coloured title, the subtle footer) is set by card properties, not
//! markdown, so it is unaffected.

use std::time::{Duration, SystemTime};

use peregrine_engine::{Alert, Priority};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};

use super::config::{TeamsConfig, TeamsFormat};
use crate::card::{color, important_fields, truncate, TRUNCATED};
use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{classify_status, parse_retry_after, HttpEncoder, HttpRequest, HttpResponse};
use crate::pacer::{self, Pacer};
use crate::secret::SecretUrl;

/// Teams rejects larger messages; a margin under its 28 KB.
pub const MAX_BYTES: usize = 28_000;

/// The CommonMark punctuation alert text has backslash-escaped: what could open a link (`[`,
/// `]`, `(`, `)`, `<`, `>`, `!`), emphasis or code (`*`, `_`, `~`, `` ` ``), a heading, list, quote
/// or table (`#`, `+`, `-`, `.`, `=`, `|`, `>`), an entity (`&`) or a date function (`{`, `}`),
/// and the backslash itself.
const MARKDOWN_SPECIAL: &str = "\\`*_{}[]()#+-.!|<>~=&";

/// Alert text for an Adaptive Card `TextBlock` or `Fact`: every [`MARKDOWN_SPECIAL`] character
/// backslash-escaped, so it renders literally and forms no markup.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if MARKDOWN_SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Alert text for a MessageCard field: `&`, `<`, `>` as HTML entities (the connector renders
/// some HTML), the rest of [`MARKDOWN_SPECIAL`] backslash-escaped.
pub fn escape_messagecard(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if MARKDOWN_SPECIAL.contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// [`truncate`] for escaped text: a cut never leaves an escaping backslash without its
/// character, nor (MessageCard) part of an entity, before the marker.
pub(super) fn cut(text: &str, max: usize, entities: bool) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let t = truncate(text, max);
    let mut kept = &t[..t.len() - TRUNCATED.len()];
    if entities {
        if let Some(i) = kept.rfind('&') {
            if kept.len() - i <= 4 && !kept[i..].contains(';') {
                kept = &kept[..i];
            }
        }
    }
    let backslashes = kept.len() - kept.trim_end_matches('\\').len();
    if backslashes % 2 == 1 {
        kept = &kept[..kept.len() - 1];
    }
    format!("{kept}{TRUNCATED}")
}

pub struct TeamsEncoder {
    url: SecretUrl,
    format: TeamsFormat,
    pacer: std::sync::Arc<Pacer>,
}

/// How much of an alert a card shows; cut step by step until the card fits — the fields first,
/// then the output.
#[derive(Clone, Copy)]
struct Budget {
    output: usize,
    fact_value: usize,
    facts: usize,
}

const BUDGETS: [Budget; 7] = [
    Budget {
        output: 20_000,
        fact_value: 2_000,
        facts: 15,
    },
    Budget {
        output: 20_000,
        fact_value: 300,
        facts: 15,
    },
    Budget {
        output: 20_000,
        fact_value: 100,
        facts: 6,
    },
    Budget {
        output: 12_000,
        fact_value: 100,
        facts: 6,
    },
    Budget {
        output: 6_000,
        fact_value: 100,
        facts: 6,
    },
    Budget {
        output: 3_000,
        fact_value: 60,
        facts: 6,
    },
    Budget {
        output: 1_000,
        fact_value: 0,
        facts: 0,
    },
];

fn text_color(p: Priority) -> &'static str {
    match p {
        Priority::Emergency | Priority::Alert | Priority::Critical | Priority::Error => "Attention",
        Priority::Warning => "Warning",
        Priority::Notice => "Good",
        Priority::Informational => "Accent",
        Priority::Debug => "Default",
    }
}

impl TeamsEncoder {
    pub fn new(config: &TeamsConfig) -> Self {
        TeamsEncoder {
            url: config.webhook_url.clone(),
            format: config.format,
            pacer: pacer::shared(
                config.webhook_url.expose().as_str(),
                config.rate_limit.per_second,
                config.rate_limit.burst,
            ),
        }
    }

    /// The message, within [`MAX_BYTES`].
    pub fn body(&self, envelope: &Envelope) -> Vec<u8> {
        let mut last = Vec::new();
        for budget in BUDGETS {
            let bytes = serde_json::to_vec(&self.card(envelope, budget)).expect("JSON");
            if bytes.len() <= MAX_BYTES {
                return bytes;
            }
            last = bytes;
        }
        last
    }

    fn card(&self, e: &Envelope, b: Budget) -> Value {
        let a: &Alert = e.alert();
        let (esc, entities): (fn(&str) -> String, bool) = match self.format {
            TeamsFormat::Adaptive => (escape_markdown, false),
            TeamsFormat::Messagecard => (escape_messagecard, true),
        };
        let facts: Vec<(String, String)> = if b.facts == 0 {
            Vec::new()
        } else {
            important_fields(a, b.facts)
                .into_iter()
                .map(|(n, v)| (esc(&n), cut(&esc(&v), b.fact_value, entities)))
                .collect()
        };
        let title = cut(&format!("{}: {}", a.priority, esc(&a.rule)), 300, entities);
        let mut footer = vec![a.time.to_string()];
        if let Some(h) = &a.hostname {
            footer.insert(0, format!("host {}", esc(h)));
        }
        if !a.tags.is_empty() {
            footer.push(format!("tags {}", esc(&a.tags.join(", "))));
        }
        footer.push(format!("id {}", esc(e.id())));
        let footer = cut(&footer.join(" · "), 1000, entities);
        let output = cut(&esc(&a.output), b.output, entities);
        match self.format {
            TeamsFormat::Adaptive => {
                let mut body = vec![
                    json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Large", "color": text_color(a.priority), "wrap": true}),
                    json!({"type": "TextBlock", "text": output, "wrap": true}),
                ];
                if !facts.is_empty() {
                    body.push(json!({"type": "FactSet", "facts": facts.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()}));
                }
                body.push(json!({"type": "TextBlock", "text": footer, "isSubtle": true, "size": "Small", "wrap": true}));
                json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": null,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "msteams": {"width": "Full"},
                            "body": body
                        }
                    }]
                })
            }
            TeamsFormat::Messagecard => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": cut(&title, 200, entities),
                "themeColor": color(a.priority).trim_start_matches('#'),
                "title": title,
                "sections": [{
                    "text": output,
                    "facts": facts.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
                    "activitySubtitle": footer
                }]
            }),
        }
    }
}

impl HttpEncoder for TeamsEncoder {
    fn kind(&self) -> &'static str {
        "teams"
    }

    fn pacer(&self) -> Option<&Pacer> {
        Some(&self.pacer)
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let [envelope] = batch else {
            return Err(Failure::new(None, "teams sends one alert per message"));
        };
        let body = self.body(envelope);
        if body.len() > MAX_BYTES {
            return Err(Failure::new(
                None,
                format!(
                    "message is {} bytes even cut down; Teams takes at most 28 KB",
                    body.len()
                ),
            )
            .with_code("too_large"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers,
            body: body.into(),
        })
    }

    /// 200 and 202 (a queued Workflows run, empty body) are delivered. Old connectors report
    /// throttling inside a 200 body.
    fn classify(&self, r: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        let body = String::from_utf8_lossy(&r.body);
        match r.status.as_u16() {
            200 if body.contains("HTTP error 429") => Delivery::RetryAfter(
                Failure::new(Some(429), "throttled (reported in a 200 body)")
                    .with_code("rate_limited"),
                Duration::from_secs(1),
            ),
            200 | 202 => Delivery::Delivered,
            429 => {
                let wait = parse_retry_after(&r.headers, SystemTime::now())
                    .unwrap_or(Duration::from_secs(1));
                Delivery::RetryAfter(
                    Failure::new(Some(429), "rate limited").with_code("rate_limited"),
                    wait,
                )
            }
            413 => Delivery::Permanent(
                Failure::new(Some(413), "message too large").with_code("too_large"),
            ),
            _ => match classify_status(r.status, &r.headers) {
                Delivery::Permanent(f) => Delivery::Permanent(f.with_code("rejected")),
                other => other,
            },
        }
    }
}
