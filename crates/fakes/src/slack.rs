//! Slack incoming webhooks: `200 ok`, error words in 4xx bodies, one message per second.
//!
//! Checks (Block Kit reference): the body is a JSON object with `text`, `blocks` or
//! `attachments`; at most 50 blocks in the message and in each attachment, at most 100
//! attachments; a header's text is plain_text of at most 150 characters; a section's text at
//! most 3 000 characters, at most 10 fields of at most 2 000; a context at most 10 elements;
//! the top-level `text` at most 40 000 characters; `verbatim` only on mrkdwn and `emoji` only on
//! plain_text text objects, both booleans.
//!
//! [`texts`] and [`received_texts`] list what a message shows people, and [`Text`] says which
//! parts of it Slack would act on ([`Text::live`]: mentions, links, dates) and what a reader
//! sees ([`Text::shown`]), for tests that alert text cannot ping a channel or disguise a link.

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

pub struct Slack {
    limit: Limit,
}

/// A Slack fake allowing one message a second per webhook (50 ms early still counts as on time).
pub async fn start() -> FakeService {
    start_with(Limit::Bucket {
        per_second: 1.0,
        burst: 1.0,
        slack: 0.05,
    })
    .await
}

pub async fn start_with(limit: Limit) -> FakeService {
    FakeService::start(Slack { limit }).await
}

/// Slack's answer for an error word.
pub fn error(status: u16, word: &str) -> Reply {
    Reply::new(status, word).header("content-type", "text/plain")
}

/// A 429 with `Retry-After`.
pub fn rate_limited(seconds: u64) -> Reply {
    Reply::new(429, r#"{"ok":false,"error":"rate_limited"}"#)
        .header("content-type", "application/json")
        .header("retry-after", seconds.to_string())
}

impl Api for Slack {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        self.limit
    }

    fn rate_limited(&self) -> Reply {
        rate_limited(1)
    }

    fn answer(&self, method: &Method, _path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST {
            return error(405, "invalid_payload");
        }
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(body) else {
            return error(400, "invalid_payload");
        };
        match check(&msg) {
            Ok(()) => Reply::new(200, "ok").header("content-type", "text/html"),
            Err(word) => error(400, word),
        }
    }
}

fn check(msg: &serde_json::Map<String, Value>) -> Result<(), &'static str> {
    let text = msg.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = msg.get("blocks").and_then(Value::as_array);
    let attachments = msg.get("attachments").and_then(Value::as_array);
    if text.trim().is_empty()
        && blocks.is_none_or(Vec::is_empty)
        && attachments.is_none_or(Vec::is_empty)
    {
        return Err("no_text");
    }
    if text.chars().count() > 40_000 {
        return Err("invalid_payload");
    }
    if let Some(blocks) = blocks {
        check_blocks(blocks)?;
    }
    if let Some(attachments) = attachments {
        if attachments.len() > 100 {
            return Err("too_many_attachments");
        }
        for a in attachments {
            if let Some(blocks) = a.get("blocks") {
                check_blocks(blocks.as_array().ok_or("invalid_payload")?)?;
            }
            if let Some(c) = a.get("color") {
                c.as_str().ok_or("invalid_payload")?;
            }
        }
    }
    Ok(())
}

fn check_blocks(blocks: &[Value]) -> Result<(), &'static str> {
    if blocks.len() > 50 {
        return Err("invalid_payload");
    }
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text"
                    || text_len(&b["text"]) > 150
                    || !text_object_ok(&b["text"])
                {
                    return Err("invalid_payload");
                }
            }
            Some("section") => {
                let has_text = b.get("text").is_some();
                let fields = b.get("fields").and_then(Value::as_array);
                if !has_text && fields.is_none() {
                    return Err("invalid_payload");
                }
                if has_text
                    && (text_len(&b["text"]) == 0
                        || text_len(&b["text"]) > 3000
                        || !text_object_ok(&b["text"]))
                {
                    return Err("invalid_payload");
                }
                if let Some(fields) = fields {
                    if fields.is_empty()
                        || fields.len() > 10
                        || fields
                            .iter()
                            .any(|f| text_len(f) == 0 || text_len(f) > 2000 || !text_object_ok(f))
                    {
                        return Err("invalid_payload");
                    }
                }
            }
            Some("context") => {
                let elements = b["elements"].as_array().ok_or("invalid_payload")?;
                if elements.is_empty()
                    || elements.len() > 10
                    || elements
                        .iter()
                        .any(|e| text_len(e) > 3000 || (e["type"] != "image" && !text_object_ok(e)))
                {
                    return Err("invalid_payload");
                }
            }
            Some("divider") => {}
            _ => return Err("invalid_payload"),
        }
    }
    Ok(())
}

/// A text object's type and flags as the Block Kit reference allows them: `verbatim` (a boolean)
/// only on mrkdwn, `emoji` (a boolean) only on plain_text.
fn text_object_ok(t: &Value) -> bool {
    let kind = t["type"].as_str();
    let flag_ok = |name: &str, on: &str| match t.get(name) {
        None => true,
        Some(v) => v.is_boolean() && kind == Some(on),
    };
    matches!(kind, Some("plain_text" | "mrkdwn"))
        && t["text"].is_string()
        && flag_ok("verbatim", "mrkdwn")
        && flag_ok("emoji", "plain_text")
}

/// The length of a text object's `text`, 0 when it is not one.
fn text_len(t: &Value) -> usize {
    match (t["type"].as_str(), t["text"].as_str()) {
        (Some("plain_text" | "mrkdwn"), Some(s)) => s.chars().count(),
        _ => 0,
    }
}

/// How Slack treats a piece of text in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// The message's top-level `text`: mrkdwn, and the notification text when there are blocks.
    Message,
    /// An attachment's `fallback`, the summary shown where attachments are not. Treated like
    /// mrkdwn here (Slack's one escaping system applies to all text).
    Fallback,
    /// A `mrkdwn` text object; without `verbatim`, Slack also links bare URLs and names.
    Mrkdwn { verbatim: bool },
    /// A `plain_text` text object: Slack parses no mentions, links or formatting in it.
    PlainText,
}

/// One text a message shows: where it is (a JSON path such as
/// `attachments[0].blocks[2].fields[1]`), how Slack treats it, and the text as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub path: String,
    pub kind: TextKind,
    pub text: String,
}

impl Text {
    /// What Slack would act on in this text: every `<…>` control sequence as sent (`<!here>`,
    /// `<!channel>`, `<@U123>`, `<#C123>`, `<!subteam^S1>`, `<!date^…>`, `<https://x|label>`);
    /// in a mrkdwn object without `verbatim` also bare `@here`, `@channel`, `@everyone` and bare
    /// `http(s)://` URLs, which Slack parses automatically there. Empty for plain_text.
    pub fn live(&self) -> Vec<String> {
        if self.kind == TextKind::PlainText {
            return Vec::new();
        }
        let mut live: Vec<String> = sequences(&self.text)
            .into_iter()
            .map(|s| format!("<{s}>"))
            .collect();
        if self.kind == (TextKind::Mrkdwn { verbatim: false }) {
            for word in without_sequences(&self.text).split(|c: char| c.is_whitespace()) {
                let bare = ["@here", "@channel", "@everyone"]
                    .iter()
                    .any(|m| word.starts_with(m));
                if bare || word.starts_with("http://") || word.starts_with("https://") {
                    live.push(word.to_string());
                }
            }
        }
        live
    }

    /// The mentions among [`Text::live`]: `<!here>`, `<!channel>`, `<!everyone>`,
    /// `<!subteam^…>`, `<@…>`, and bare `@here`/`@channel`/`@everyone`.
    pub fn mentions(&self) -> Vec<String> {
        self.live()
            .into_iter()
            .filter(|s| {
                s.starts_with("<!here")
                    || s.starts_with("<!channel")
                    || s.starts_with("<!everyone")
                    || s.starts_with("<!subteam^")
                    || s.starts_with("<@")
                    || s.starts_with('@')
            })
            .collect()
    }

    /// The links among [`Text::live`], as (target, label): `<https://x|click>` is
    /// `("https://x", "click")`, `<https://x>` and a bare URL have the URL as label.
    pub fn links(&self) -> Vec<(String, String)> {
        self.live()
            .into_iter()
            .filter_map(|s| {
                let inner = s.strip_prefix('<').and_then(|s| s.strip_suffix('>'));
                match inner {
                    Some(inner) if !inner.starts_with(['!', '@', '#']) => {
                        let (target, label) = inner.split_once('|').unwrap_or((inner, inner));
                        Some((target.to_string(), label.to_string()))
                    }
                    Some(_) => None,
                    None if s.starts_with("http") => Some((s.clone(), s)),
                    None => None,
                }
            })
            .collect()
    }

    /// What a reader sees: control sequences as Slack shows them (a link as its label, `<!here>`
    /// as `@here`, `<@U123>` as `@U123`, a date as its fallback text), then `&lt;`, `&gt;`,
    /// `&amp;` decoded. Formatting characters (`*`, `_`, `~`, backticks) are kept. A plain_text
    /// object shows as sent.
    pub fn shown(&self) -> String {
        if self.kind == TextKind::PlainText {
            return self.text.clone();
        }
        let mut out = String::new();
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find('<') {
            let Some(len) = rest[start..].find('>') else {
                break;
            };
            out.push_str(&decode(&rest[..start]));
            out.push_str(&decode(&show_sequence(&rest[start + 1..start + len])));
            rest = &rest[start + len + 1..];
        }
        out.push_str(&decode(rest));
        out
    }
}

/// The contents of the `<…>` sequences in `text`.
fn sequences(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        found.push(rest[start + 1..start + len].to_string());
        rest = &rest[start + len + 1..];
    }
    found
}

/// `text` with its `<…>` sequences removed.
fn without_sequences(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// One control sequence (without its `<>`) as Slack shows it.
fn show_sequence(inner: &str) -> String {
    let (target, label) = match inner.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inner, None),
    };
    if let Some(special) = target.strip_prefix('!') {
        return match (special, label) {
            (_, Some(label)) if special.starts_with("date^") => label.to_string(),
            (_, Some(label)) => label.to_string(),
            (s, None) => match s.split_once('^') {
                Some((_, id)) => format!("@{id}"),
                None => format!("@{s}"),
            },
        };
    }
    if let Some(id) = target.strip_prefix('@') {
        return format!("@{}", label.unwrap_or(id));
    }
    if let Some(id) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or(id));
    }
    label.unwrap_or(target).to_string()
}

/// `&lt;`, `&gt;` and `&amp;` decoded, in one pass (`&amp;lt;` is `&lt;`).
fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (c, len) = if tail.starts_with("&lt;") {
            ('<', 4)
        } else if tail.starts_with("&gt;") {
            ('>', 4)
        } else if tail.starts_with("&amp;") {
            ('&', 5)
        } else {
            ('&', 1)
        };
        out.push(c);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Every text one message body shows: its `text`, each attachment's `fallback`, and every text
/// object in its blocks and its attachments' blocks (headers, sections and their fields,
/// context elements).
pub fn texts(body: &Value) -> Vec<Text> {
    let mut out = Vec::new();
    if let Some(t) = body["text"].as_str() {
        out.push(Text {
            path: "text".to_string(),
            kind: TextKind::Message,
            text: t.to_string(),
        });
    }
    if let Some(blocks) = body["blocks"].as_array() {
        block_texts("blocks", blocks, &mut out);
    }
    for (i, a) in body["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(t) = a["fallback"].as_str() {
            out.push(Text {
                path: format!("attachments[{i}].fallback"),
                kind: TextKind::Fallback,
                text: t.to_string(),
            });
        }
        if let Some(blocks) = a["blocks"].as_array() {
            block_texts(&format!("attachments[{i}].blocks"), blocks, &mut out);
        }
    }
    out
}

/// The texts of every message the fake accepted, in arrival order.
pub fn received_texts(fake: &FakeService) -> Vec<Text> {
    fake.accepted().iter().flat_map(texts).collect()
}

fn block_texts(path: &str, blocks: &[Value], out: &mut Vec<Text>) {
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("{path}[{i}]");
        text_object(&format!("{at}.text"), &b["text"], out);
        for (j, f) in b["fields"].as_array().into_iter().flatten().enumerate() {
            text_object(&format!("{at}.fields[{j}]"), f, out);
        }
        for (j, e) in b["elements"].as_array().into_iter().flatten().enumerate() {
            text_object(&format!("{at}.elements[{j}]"), e, out);
        }
    }
}

fn text_object(path: &str, t: &Value, out: &mut Vec<Text>) {
    let kind = match t["type"].as_str() {
        Some("mrkdwn") => TextKind::Mrkdwn {
            verbatim: t["verbatim"].as_bool().unwrap_or(false),
        },
        Some("plain_text") => TextKind::PlainText,
        _ => return,
    };
    if let Some(text) = t["text"].as_str() {
        out.push(Text {
            path: path.to_string(),
            kind,
            text: text.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mrkdwn(text: &str, verbatim: bool) -> Text {
        Text {
            path: "x".into(),
            kind: TextKind::Mrkdwn { verbatim },
            text: text.into(),
        }
    }

    #[test]
    fn live_sequences_and_what_a_reader_sees() {
        let t = mrkdwn(
            "<!here> see <https://evil.example|the runbook> &lt;!channel&gt; &amp;lt; <@U1|bob>",
            true,
        );
        assert_eq!(
            t.live(),
            ["<!here>", "<https://evil.example|the runbook>", "<@U1|bob>"]
        );
        assert_eq!(t.mentions(), ["<!here>", "<@U1|bob>"]);
        assert_eq!(
            t.links(),
            [(
                "https://evil.example".to_string(),
                "the runbook".to_string()
            )]
        );
        assert_eq!(t.shown(), "@here see the runbook <!channel> &lt; @bob");

        let auto = mrkdwn("ping @channel at https://x.example now", false);
        assert_eq!(auto.live(), ["@channel", "https://x.example"]);
        assert!(mrkdwn("ping @channel at https://x.example", true)
            .live()
            .is_empty());
        let plain = Text {
            kind: TextKind::PlainText,
            ..mrkdwn("<!channel>", false)
        };
        assert!(plain.live().is_empty());
        assert_eq!(plain.shown(), "<!channel>");
    }

    #[test]
    fn every_text_of_a_message_is_listed() {
        let body = json!({
            "text": "<!here> 2 alerts",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "<!here>", "verbatim": true}}],
            "attachments": [{"fallback": "f", "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "h", "emoji": false}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "a"}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "c", "verbatim": true}]}
            ]}]
        });
        let paths: Vec<String> = texts(&body).into_iter().map(|t| t.path).collect();
        assert_eq!(
            paths,
            [
                "text",
                "blocks[0].text",
                "attachments[0].fallback",
                "attachments[0].blocks[0].text",
                "attachments[0].blocks[1].fields[0]",
                "attachments[0].blocks[2].elements[0]"
            ]
        );
        assert!(check(body.as_object().unwrap()).is_ok());
    }

    #[test]
    fn text_object_flags_are_checked() {
        let with = |t: Value| json!({"blocks": [{"type": "section", "text": t}]});
        let ok = |v: Value| check(v.as_object().unwrap());
        assert!(ok(with(
            json!({"type": "mrkdwn", "text": "x", "verbatim": true})
        ))
        .is_ok());
        assert!(ok(with(
            json!({"type": "plain_text", "text": "x", "verbatim": true})
        ))
        .is_err());
        assert!(ok(with(json!({"type": "mrkdwn", "text": "x", "emoji": true}))).is_err());
        assert!(ok(with(
            json!({"type": "mrkdwn", "text": "x", "verbatim": "yes"})
        ))
        .is_err());
    }
}
