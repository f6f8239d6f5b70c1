//! `body_template` and templated header values: Jinja syntax (`minijinja`), rendered per alert.
//!
//! Variables: the alert's keys (`rule`, `priority`, `output`, `hostname`, `source`, `tags`,
//! `time`, `uuid`) and `fields`, its `output_fields` (`{{ fields["proc.name"] }}`). Filters:
//! Jinja's built-ins (`escape`, `upper`, `default`, `join`, …) plus `json` (a JSON value, quotes
//! and escapes included) and `truncate(n)` (at most `n` characters, `…` when cut). Nothing is
//! escaped unless a filter says so: the body may be JSON, XML or text.

use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::envelope::Envelope;

/// The compiled templates of one webhook.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// The name the body's template is kept under.
pub const BODY: &str = "body";

impl Templates {
    /// Compiles `templates` (name, source); an error names the template and its line.
    pub fn compile(templates: Vec<(String, String)>) -> Result<Templates, (String, String)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_filter("json", json);
        env.add_filter("truncate", truncate);
        for (name, source) in templates {
            env.add_template_owned(name.clone(), source)
                .map_err(|e| (name, describe(&e)))?;
        }
        Ok(Templates { env: Arc::new(env) })
    }

    /// Whether a template called `name` was compiled.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Renders template `name` with one alert's [`context`].
    pub fn render(&self, name: &str, context: &Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| describe(&e))?;
        template.render(context).map_err(|e| describe(&e))
    }
}

/// What a template sees of an alert: its JSON keys, and `fields` for `output_fields`. Made once
/// per alert for the body and every templated header.
pub fn context(alert: &Envelope) -> Result<Value, String> {
    let mut json: serde_json::Value = serde_json::from_slice(&alert.json)
        .map_err(|e| format!("the stored alert is not JSON: {e}"))?;
    if let Some(map) = json.as_object_mut() {
        let fields = map
            .get("output_fields")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        map.insert("fields".to_string(), fields);
    }
    Ok(Value::from_serialize(&json))
}

/// A template error as one line: what went wrong, and where.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    if let Some(line) = e.line() {
        text = format!("line {line}: {text}");
    }
    text
}

fn json(value: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

fn truncate(value: String, length: usize) -> String {
    if value.chars().count() <= length {
        return value;
    }
    let mut cut: String = value.chars().take(length.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
