//! Microsoft Teams: a Workflows webhook (Adaptive Cards, `202` with an empty body) or a legacy
//! Office 365 connector (MessageCard, `200` with body `1`); 28 KB per message, 4 requests a
//! second.
//!
//! A Workflows URL queues the flow run before looking at the card, so a card the flow cannot
//! post still gets a 202; the problem shows only in the run history. The fake answers the same
//! way and lists such problems in [`Message::problems`](crate::Message).
//!
//! [`texts`] and [`received_texts`] list what a card shows people, and [`Text`] says what a
//! renderer would make of it: links a reader could click ([`Text::links`]), HTML tags
//! ([`Text::html_tags`], MessageCards only), markdown syntax left unescaped
//! ([`Text::unescaped`]) and the text as read ([`Text::shown`]) — for tests that alert text
//! cannot plant a link or formatting in a card.

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

/// Teams' message size limit.
pub const MAX_BYTES: usize = 28 * 1024;

pub struct Teams;

pub async fn start() -> FakeService {
    FakeService::start(Teams).await
}

impl Api for Teams {
    fn rate_key(&self, path: &str, _body: &[u8]) -> Option<String> {
        Some(path.to_string())
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 4.0,
            burst: 4.0,
            slack: 0.05,
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "").header("retry-after", "1")
    }

    fn answer(&self, method: &Method, _path: &str, _headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST {
            return Reply::new(405, "");
        }
        if body.len() > MAX_BYTES {
            return Reply::new(413, "Request Entity Too Large");
        }
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            return Reply::new(400, "Invalid JSON");
        };
        if msg["@type"] == "MessageCard" {
            let has_text = ["summary", "text", "title"]
                .iter()
                .any(|k| msg[k].as_str().is_some_and(|s| !s.is_empty()));
            return if has_text {
                Reply::new(200, "1")
            } else {
                Reply::new(400, "Summary or Text is required.")
            };
        }
        let mut reply = Reply::new(202, "");
        reply.problems = adaptive_problems(&msg);
        reply
    }
}

/// What a Workflows flow would fail on when posting the card.
fn adaptive_problems(msg: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if msg["type"] != "message" {
        problems.push("type must be 'message'".to_string());
    }
    let Some(attachments) = msg["attachments"].as_array().filter(|a| !a.is_empty()) else {
        problems.push("attachments must be a non-empty array".to_string());
        return problems;
    };
    for (i, a) in attachments.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            problems.push(format!(
                "attachments[{i}].contentType is not an Adaptive Card"
            ));
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" {
            problems.push(format!(
                "attachments[{i}].content: Property 'type' must be 'AdaptiveCard'"
            ));
        }
        match card["version"].as_str() {
            Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") => {}
            _ => problems.push(format!(
                "attachments[{i}].content.version is not one Teams renders"
            )),
        }
        let Some(body) = card["body"].as_array() else {
            problems.push(format!("attachments[{i}].content.body must be an array"));
            continue;
        };
        for (j, element) in body.iter().enumerate() {
            match element["type"].as_str() {
                Some("TextBlock") if element["text"].is_string() => {}
                Some("FactSet") => {
                    let ok = element["facts"].as_array().is_some_and(|f| {
                        f.iter()
                            .all(|f| f["title"].is_string() && f["value"].is_string())
                    });
                    if !ok {
                        problems.push(format!(
                            "body[{j}]: a FactSet needs facts with string title and value"
                        ));
                    }
                }
                Some("Container" | "ColumnSet" | "Image") => {}
                other => problems.push(format!(
                    "body[{j}]: unknown or incomplete element {other:?}"
                )),
            }
        }
    }
    problems
}

/// How Teams renders a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// An Adaptive Card `TextBlock` or `Fact` title or value: a CommonMark subset (emphasis,
    /// lists, `[label](url)` links), backslash escapes, no HTML.
    Markdown,
    /// A MessageCard text field (`title`, `summary`, `text`, a section's titles and texts, a
    /// fact's name and value): Markdown and some HTML.
    MarkdownHtml,
    /// A `TextRun` in a `RichTextBlock`: shown as sent.
    Plain,
}

/// One text a card shows: where it is (a JSON path such as
/// `attachments[0].content.body[2].facts[0].value`), how it is rendered, and the text as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub path: String,
    pub markup: Markup,
    pub text: String,
}

/// A link a reader could click, and the text they would see for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub target: String,
}

/// The markdown characters that format, link or escape when not backslash-escaped.
const SYNTAX: &str = "\\`*_{}[]()#+-.!|<>~=&";

#[derive(Default)]
struct Scan {
    shown: String,
    links: Vec<Link>,
    html: Vec<String>,
    unescaped: String,
}

impl Text {
    /// The links a reader could click: CommonMark inline links `[label](target)` and autolinks
    /// `<scheme:…>` that no backslash neutralises, and in MessageCards `<a …>` tags. Bare URLs,
    /// which a client may still linkify, show their own target and are not listed.
    pub fn links(&self) -> Vec<Link> {
        self.scan().links
    }

    /// Raw HTML tags (`<b>`, `<a href=…>`, `<img …>`) a MessageCard would interpret; always
    /// empty for Adaptive Cards, which render no HTML.
    pub fn html_tags(&self) -> Vec<String> {
        self.scan().html
    }

    /// Markdown syntax characters left unescaped (not after an escaping backslash, not part of
    /// an entity or of a link already reported by [`Text::links`]), in order. Alert text
    /// escaped for Teams leaves none; our own text may (`-` and `.` in a time, the `[truncated]`
    /// marker).
    pub fn unescaped(&self) -> String {
        self.scan().unescaped
    }

    /// What a reader sees: backslash escapes removed, entities decoded (`&lt;`, `&gt;`, `&amp;`,
    /// `&quot;`, `&#39;`, numeric), a link as its label, HTML tags dropped. Emphasis markers are
    /// kept.
    pub fn shown(&self) -> String {
        self.scan().shown
    }

    fn scan(&self) -> Scan {
        match self.markup {
            Markup::Plain => Scan {
                shown: self.text.clone(),
                ..Scan::default()
            },
            Markup::Markdown => scan(&self.text, false),
            Markup::MarkdownHtml => scan(&self.text, true),
        }
    }
}

fn scan(text: &str, html: bool) -> Scan {
    let chars: Vec<char> = text.chars().collect();
    let mut s = Scan::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1).is_some_and(char::is_ascii_punctuation) {
            s.shown.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '&' {
            if let Some((decoded, len)) = entity(&chars[i..]) {
                s.shown.push(decoded);
                i += len;
                continue;
            }
        }
        if c == '[' {
            if let Some((close, end)) = inline_link(&chars, i) {
                let label = scan(&chars[i + 1..close].iter().collect::<String>(), html);
                let target = scan(&chars[close + 2..end].iter().collect::<String>(), html);
                s.links.push(Link {
                    label: label.shown.clone(),
                    target: target.shown,
                });
                s.links.extend(label.links);
                s.html.extend(label.html);
                s.shown.push_str(&label.shown);
                i = end + 1;
                continue;
            }
        }
        if c == '<' {
            if let Some(len) = chars[i + 1..].iter().position(|&c| c == '>') {
                let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                if is_autolink(&inner) {
                    s.links.push(Link {
                        label: inner.clone(),
                        target: inner.clone(),
                    });
                    s.shown.push_str(&inner);
                    i += len + 2;
                    continue;
                }
                if html && is_tag(&inner) {
                    if let Some(href) = href(&inner) {
                        s.links.push(Link {
                            label: String::new(),
                            target: href,
                        });
                    }
                    s.html.push(format!("<{inner}>"));
                    i += len + 2;
                    continue;
                }
            }
        }
        if SYNTAX.contains(c) {
            s.unescaped.push(c);
        }
        s.shown.push(c);
        i += 1;
    }
    s
}

/// An entity at the start of `chars`: the character and the entity's length.
fn entity(chars: &[char]) -> Option<(char, usize)> {
    let end = chars.iter().take(12).position(|&c| c == ';')?;
    let name: String = chars[1..end].iter().collect();
    let c = match name.as_str() {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        n => {
            let n = n.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

/// `[label](target)` starting at `open`: the index of `]` and of the closing `)`.
fn inline_link(chars: &[char], open: usize) -> Option<(usize, usize)> {
    let close = matching(chars, open + 1, '[', ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = matching(chars, close + 2, '(', ')')?;
    Some((close, end))
}

/// The index of the unescaped `close` that ends a group opened just before `from`.
fn matching(chars: &[char], from: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0;
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1).is_some_and(char::is_ascii_punctuation) => i += 1,
            c if c == open => depth += 1,
            c if c == close && depth == 0 => return Some(i),
            c if c == close => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A CommonMark autolink's inside: `scheme:rest` or an e-mail address, without spaces.
fn is_autolink(inner: &str) -> bool {
    if inner.is_empty() || inner.contains(|c: char| c.is_whitespace() || c == '<') {
        return false;
    }
    if let Some((scheme, _)) = inner.split_once(':') {
        let mut cs = scheme.chars();
        return (2..=32).contains(&scheme.len())
            && cs.next().is_some_and(|c| c.is_ascii_alphabetic())
            && cs.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    }
    inner
        .split_once('@')
        .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
}

/// An HTML tag's inside: `b`, `/b`, `a href="…"`, `!-- … --`.
fn is_tag(inner: &str) -> bool {
    let name = inner.strip_prefix('/').unwrap_or(inner);
    name.starts_with(|c: char| c.is_ascii_alphabetic()) || inner.starts_with('!')
}

/// The `href` of an `a` tag.
fn href(inner: &str) -> Option<String> {
    let lower = inner.to_ascii_lowercase();
    if !lower.starts_with("a ") {
        return None;
    }
    let at = lower.find("href=")? + 5;
    let rest = &inner[at..];
    let value = match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next()?,
        _ => rest.split(|c: char| c.is_whitespace() || c == '>').next()?,
    };
    Some(value.to_string())
}

/// Every text one message body shows. Adaptive Cards: `TextBlock` texts, fact titles and
/// values, `TextRun` texts, inside containers and columns too. MessageCards: `title`,
/// `summary`, `text`, and each section's `title`, `activityTitle`, `activitySubtitle`,
/// `activityText`, `text` and facts.
pub fn texts(body: &Value) -> Vec<Text> {
    let mut out = Vec::new();
    if body["@type"] == "MessageCard" {
        let mut push = |path: String, v: &Value| {
            if let Some(t) = v.as_str() {
                out.push(Text {
                    path,
                    markup: Markup::MarkdownHtml,
                    text: t.to_string(),
                });
            }
        };
        for key in ["title", "summary", "text"] {
            push(key.to_string(), &body[key]);
        }
        for (i, section) in body["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in [
                "title",
                "activityTitle",
                "activitySubtitle",
                "activityText",
                "text",
            ] {
                push(format!("sections[{i}].{key}"), &section[key]);
            }
            for (j, f) in section["facts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                push(format!("sections[{i}].facts[{j}].name"), &f["name"]);
                push(format!("sections[{i}].facts[{j}].value"), &f["value"]);
            }
        }
        return out;
    }
    for (i, a) in body["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(elements) = a["content"]["body"].as_array() {
            element_texts(
                &format!("attachments[{i}].content.body"),
                elements,
                &mut out,
            );
        }
    }
    out
}

/// The texts of every message the fake accepted, in arrival order.
pub fn received_texts(fake: &FakeService) -> Vec<Text> {
    fake.accepted().iter().flat_map(texts).collect()
}

fn element_texts(path: &str, elements: &[Value], out: &mut Vec<Text>) {
    let mut push = |path: String, markup: Markup, v: &Value| {
        if let Some(t) = v.as_str() {
            out.push(Text {
                path,
                markup,
                text: t.to_string(),
            });
        }
    };
    let mut nested = Vec::new();
    for (i, e) in elements.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match e["type"].as_str() {
            Some("TextBlock") => push(format!("{at}.text"), Markup::Markdown, &e["text"]),
            Some("FactSet") => {
                for (j, f) in e["facts"].as_array().into_iter().flatten().enumerate() {
                    push(
                        format!("{at}.facts[{j}].title"),
                        Markup::Markdown,
                        &f["title"],
                    );
                    push(
                        format!("{at}.facts[{j}].value"),
                        Markup::Markdown,
                        &f["value"],
                    );
                }
            }
            Some("RichTextBlock") => {
                for (j, r) in e["inlines"].as_array().into_iter().flatten().enumerate() {
                    let v = if r.is_string() { r } else { &r["text"] };
                    push(format!("{at}.inlines[{j}]"), Markup::Plain, v);
                }
            }
            Some("Container") => nested.push((format!("{at}.items"), &e["items"])),
            Some("ColumnSet") => {
                for (j, c) in e["columns"].as_array().into_iter().flatten().enumerate() {
                    nested.push((format!("{at}.columns[{j}].items"), &c["items"]));
                }
            }
            _ => {}
        }
    }
    for (at, items) in nested {
        if let Some(items) = items.as_array() {
            element_texts(&at, items, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(markup: Markup, t: &str) -> Text {
        Text {
            path: "x".into(),
            markup,
            text: t.into(),
        }
    }

    #[test]
    fn links_tags_and_what_a_reader_sees() {
        let live = text(
            Markup::Markdown,
            "see [the runbook](https://evil.example) or <https://x.example> *now*",
        );
        assert_eq!(
            live.links(),
            [
                Link {
                    label: "the runbook".into(),
                    target: "https://evil.example".into()
                },
                Link {
                    label: "https://x.example".into(),
                    target: "https://x.example".into()
                }
            ]
        );
        assert_eq!(live.shown(), "see the runbook or https://x.example *now*");
        assert_eq!(live.unescaped(), "**");

        let escaped = text(
            Markup::Markdown,
            r"see \[the runbook\]\(https://evil\.example\) or \<https://x\.example\> \*now\* \&lt;",
        );
        assert!(escaped.links().is_empty());
        assert_eq!(escaped.unescaped(), "");
        assert_eq!(
            escaped.shown(),
            "see [the runbook](https://evil.example) or <https://x.example> *now* &lt;"
        );

        let card = text(
            Markup::MarkdownHtml,
            r#"<a href="https://evil.example">docs</a> &lt;b&gt;x&lt;/b&gt;"#,
        );
        assert_eq!(
            card.html_tags(),
            [r#"<a href="https://evil.example">"#, "</a>"]
        );
        assert_eq!(card.links()[0].target, "https://evil.example");
        assert_eq!(card.shown(), "docs <b>x</b>");
        assert!(text(Markup::Markdown, "<b>x</b>").html_tags().is_empty());
    }

    #[test]
    fn every_text_of_both_formats_is_listed() {
        let adaptive = json!({"type": "message", "attachments": [{"content": {"body": [
            {"type": "TextBlock", "text": "t"},
            {"type": "FactSet", "facts": [{"title": "a", "value": "b"}]},
            {"type": "Container", "items": [{"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "r"}]}]}
        ]}}]});
        let got: Vec<(String, Markup)> = texts(&adaptive)
            .into_iter()
            .map(|t| (t.path, t.markup))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "attachments[0].content.body[0].text".into(),
                    Markup::Markdown
                ),
                (
                    "attachments[0].content.body[1].facts[0].title".into(),
                    Markup::Markdown
                ),
                (
                    "attachments[0].content.body[1].facts[0].value".into(),
                    Markup::Markdown
                ),
                (
                    "attachments[0].content.body[2].items[0].inlines[0]".into(),
                    Markup::Plain
                ),
            ]
        );
        let card = json!({"@type": "MessageCard", "title": "t", "summary": "s",
            "sections": [{"text": "x", "activitySubtitle": "f", "facts": [{"name": "n", "value": "v"}]}]});
        let paths: Vec<String> = texts(&card).into_iter().map(|t| t.path).collect();
        assert_eq!(
            paths,
            [
                "title",
                "summary",
                "sections[0].activitySubtitle",
                "sections[0].text",
                "sections[0].facts[0].name",
                "sections[0].facts[0].value"
            ]
        );
    }
}
