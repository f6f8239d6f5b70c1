//! A preset's message text: a Jinja template (`minijinja`) over one alert, every value escaped
//! for the service's markup unless the template marks it `| safe`, fitted to the service's
//! length limit.
//!
//! Each preset ships a template; users replace it with the `template` key. Either way the
//! template is compiled and rendered on a sample alert when the configuration is checked, so a
//! syntax error or an unknown filter is a config error, not a dead letter.
//!
//! Variables: `rule`, `priority`, `output` (without Falco's leading time and priority),
//! `hostname`, `source`, `tags`, `time`, `uuid`, `fields` (every output field by name) and
//! `important` (up to ten `[name, value]` pairs, the fields a responder looks at first).

use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::json;

use super::markup::{Markup, Measure};
use crate::card::{important_fields, output_text, truncate};
use crate::delivery::Failure;
use crate::envelope::Envelope;

const TEMPLATE: &str = "text";
/// How many times the alert's long values are cut shorter before the text itself is cut.
const FIT_ROUNDS: u32 = 6;

/// A compiled message template for one service.
#[derive(Clone)]
pub struct MessageText {
    env: Arc<Environment<'static>>,
    markup: Markup,
    max_units: usize,
    measure: Measure,
}

impl std::fmt::Debug for MessageText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageText({:?}, {})", self.markup, self.max_units)
    }
}

impl MessageText {
    /// Compiles `source` and renders it on a sample alert; the error says what and where.
    pub fn new(source: &str, markup: Markup, max_units: usize) -> Result<MessageText, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_formatter(move |out, _state, value| {
            if value.is_undefined() || value.is_none() {
                return Ok(());
            }
            let text = value.to_string();
            let text = if value.is_safe() {
                text
            } else {
                markup.escape(&text)
            };
            out.write_str(&text).map_err(minijinja::Error::from)
        });
        env.add_template_owned(TEMPLATE, source.to_string())
            .map_err(|e| describe(&e))?;
        let text = MessageText {
            env: Arc::new(env),
            markup,
            max_units,
            measure: Measure::Utf16,
        };
        let sample = Envelope::sample();
        text.render(&sample).map_err(|f| f.reason)?;
        Ok(text)
    }

    pub fn markup(&self) -> Markup {
        self.markup
    }

    /// The same template, its limit counted in UTF-8 bytes.
    pub fn counting_bytes(mut self) -> Self {
        self.measure = Measure::Bytes;
        self
    }

    /// The text for one alert, at most the service's limit: the output and field values are
    /// cut shorter until it fits, and only then the text itself.
    pub fn render(&self, alert: &Envelope) -> Result<String, Failure> {
        let mut budget = self.max_units;
        for _ in 0..FIT_ROUNDS {
            let text = self.render_with(alert, budget)?;
            if self.measure.of(&text) <= self.max_units {
                return Ok(text);
            }
            budget /= 2;
        }
        let text = self.render_with(alert, budget)?;
        Ok(self.markup.cut_in(&text, self.max_units, self.measure))
    }

    fn render_with(&self, alert: &Envelope, budget: usize) -> Result<String, Failure> {
        let template = self
            .env
            .get_template(TEMPLATE)
            .map_err(|e| template_error(&e))?;
        let text = template
            .render(context(alert, budget))
            .map_err(|e| template_error(&e))?;
        Ok(text.trim().to_string())
    }
}

/// What the template sees of an alert, its long values cut to `budget` characters.
fn context(envelope: &Envelope, budget: usize) -> Value {
    let a = envelope.alert();
    let field_budget = (budget / 4).clamp(16, 500);
    let important: Vec<[String; 2]> = important_fields(a, 10)
        .into_iter()
        .map(|(name, value)| [name, truncate(&value, field_budget)])
        .collect();
    Value::from_serialize(json!({
        "rule": truncate(&a.rule, budget.clamp(16, 500)),
        "priority": a.priority.as_str(),
        "output": truncate(&output_text(a), budget),
        "hostname": a.hostname,
        "source": a.source,
        "tags": a.tags,
        "time": a.time,
        "uuid": envelope.id(),
        "fields": a.output_fields,
        "important": important,
    }))
}

fn template_error(e: &minijinja::Error) -> Failure {
    Failure::new(
        None,
        format!("the message template failed: {}", describe(e)),
    )
    .with_code("template_error")
}

/// A template error as one line: what went wrong, and where.
fn describe(e: &minijinja::Error) -> String {
    let text = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    match e.line() {
        Some(line) => format!("line {line}: {text}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::length;
    use crate::testing::envelope;

    fn alert(output: &str, rule: &str) -> Envelope {
        envelope(json!({
            "rule": rule, "priority": "Critical", "time": "2026-06-12T09:23:10Z",
            "output": output, "hostname": "node-1", "source": "syscall",
            "output_fields": {"proc.name": "sh", "fd.name": "<b>x</b>"}, "tags": []
        }))
    }

    #[test]
    fn values_are_escaped_and_the_template_is_not() {
        let t = MessageText::new(
            "<b>{{ rule }}</b> {{ fields['fd.name'] }} {{ '<i>ok</i>' | safe }}",
            Markup::Html,
            100,
        )
        .unwrap();
        let got = t.render(&alert("x", "A <tag> & more")).unwrap();
        assert_eq!(
            got,
            "<b>A &lt;tag&gt; &amp; more</b> &lt;b&gt;x&lt;/b&gt; <i>ok</i>"
        );
    }

    #[test]
    fn a_long_output_is_cut_until_the_text_fits() {
        let t = MessageText::new("<b>{{ rule }}</b>\n{{ output }}", Markup::Html, 200).unwrap();
        let long = "&".repeat(1000);
        let got = t.render(&alert(&long, "R")).unwrap();
        assert!(length(&got) <= 200, "{}", length(&got));
        assert!(got.starts_with("<b>R</b>\n&amp;&amp;"), "{got}");
        assert!(got.ends_with(crate::card::TRUNCATED), "{got}");
    }

    #[test]
    fn template_mistakes_are_found_when_checked() {
        let e = MessageText::new("{{ rule | no_such_filter }}", Markup::Plain, 100).unwrap_err();
        assert!(e.contains("no_such_filter"), "{e}");
        let e = MessageText::new("{% if %}", Markup::Plain, 100).unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }
}
