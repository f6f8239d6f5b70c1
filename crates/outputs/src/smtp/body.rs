//! The mail for a batch: a subject, a text part and an HTML part (alert text escaped).

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::card::{important_fields, output_text, truncate};
use crate::delivery::Failure;
use crate::envelope::Envelope;

/// Who a mail is from and to.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

impl Mail {
    /// One alert's mail, or a digest of several.
    pub fn message(&self, batch: &[Envelope]) -> Result<Message, Failure> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(batch));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let text: Vec<String> = batch.iter().map(text_part).collect();
        let html: Vec<String> = batch.iter().map(html_part).collect();
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.join("\n---\n\n")),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(format!("<html><body>{}</body></html>", html.join("<hr>"))),
            );
        builder
            .multipart(body)
            .map_err(|e| Failure::new(None, format!("the mail could not be built: {e}")))
    }
}

/// `[Critical] Rule on host`, or `12 Falco alerts: 3 Critical, …` for a digest.
fn subject(batch: &[Envelope]) -> String {
    if let [one] = batch {
        let a = one.alert();
        let host = a
            .hostname
            .as_deref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        return truncate(&format!("[{}] {}{host}", a.priority, a.rule), 200);
    }
    let mut counts: Vec<(peregrine_engine::Priority, usize)> = Vec::new();
    for e in batch {
        match counts.iter_mut().find(|(p, _)| *p == e.alert().priority) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.alert().priority, 1)),
        }
    }
    counts.sort_by_key(|(p, _)| p.level());
    let parts: Vec<String> = counts.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("{} Falco alerts: {}", batch.len(), parts.join(", "))
}

fn text_part(e: &Envelope) -> String {
    let a = e.alert();
    let mut out = format!("{}: {}\n{}\n\n", a.priority, a.rule, output_text(a));
    for (name, value) in important_fields(a, 20) {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push_str(&format!(
        "time: {}\nid: {}\n",
        crate::preset::time_millis(a.time),
        e.id()
    ));
    out
}

fn html_part(e: &Envelope) -> String {
    let a = e.alert();
    let rows: String = important_fields(a, 20)
        .into_iter()
        .map(|(n, v)| {
            format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                html_escape(&n),
                html_escape(&v)
            )
        })
        .collect();
    format!(
        "<h3 style=\"color:{}\">{}: {}</h3><p>{}</p><table>{rows}</table><p><small>{} · {}</small></p>",
        crate::card::color(a.priority),
        a.priority,
        html_escape(&a.rule),
        html_escape(&output_text(a)),
        crate::preset::time_millis(a.time),
        html_escape(e.id())
    )
}

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
