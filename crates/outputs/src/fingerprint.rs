//! What makes two alerts "the same" for a human: the fields storm control groups by and the
//! template PagerDuty's `dedup_key` is built from.
//!
//! A field is an alert's top-level `rule`, `priority`, `hostname` or `source`, or any key of its
//! `output_fields` (`container.id`, `k8s.ns.name`, ...). A field the alert lacks reads as empty, so
//! a host-level alert and one from a container never share a fingerprint by accident.

use std::fmt;

use peregrine_engine::Alert;
use serde::Deserialize;
use serde_json::Value;

/// The fields identifying an alert's kind, by default rule, hostname and container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    fields: Vec<String>,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            fields: ["rule", "hostname", "container.id"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Fingerprint {
    pub fn new(fields: Vec<String>) -> Result<Self, String> {
        if fields.is_empty() {
            return Err("needs at least one field".to_string());
        }
        if let Some(bad) = fields.iter().find(|f| f.trim().is_empty()) {
            return Err(format!("'{bad}' is not a field name"));
        }
        Ok(Fingerprint { fields })
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The alert's value of each field, in order.
    pub fn values(&self, alert: &Alert) -> Vec<String> {
        self.fields.iter().map(|f| field_text(alert, f)).collect()
    }

    /// One string that is equal for two alerts exactly when every field is.
    pub fn key(&self, alert: &Alert) -> String {
        let mut key = String::new();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                key.push('\u{1f}');
            }
            key.push_str(&field_text(alert, field));
        }
        key
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = Vec::<String>::deserialize(d)?;
        Fingerprint::new(fields).map_err(serde::de::Error::custom)
    }
}

/// The text of one field of an alert; empty when the alert lacks it or it is null.
pub fn field_text(alert: &Alert, field: &str) -> String {
    match field {
        "rule" => alert.rule.clone(),
        "priority" => alert.priority.to_string(),
        "hostname" => alert.hostname.clone().unwrap_or_default(),
        "source" => alert.source.clone(),
        name => match alert.output_fields.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        },
    }
}

/// A text with `{field}` placeholders, such as `{rule}|{hostname}|{container.id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

impl KeyTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = Self::parse_any(text)?;
        if !t.parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(
                "must contain at least one {field}, or every alert would share one key".to_string(),
            );
        }
        Ok(t)
    }

    /// Like [`KeyTemplate::parse`], where text without any `{field}` is fine too (a fixed MQTT
    /// topic or NATS subject).
    pub fn parse_any(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!(
                    "unclosed '{{' at character {}",
                    text.len() - rest.len() + open + 1
                ));
            };
            let name = after[..close].trim();
            if name.is_empty() || name.contains('{') {
                return Err(format!("'{{{}}}' does not name a field", &after[..close]));
            }
            parts.push(Part::Field(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(KeyTemplate { parts })
    }

    pub fn render(&self, alert: &Alert) -> String {
        self.render_with(alert, |v| v)
    }

    /// Renders with each value from the alert passed through `value` first (made into one
    /// topic level or subject token); the template's own text is kept as written.
    pub fn render_with(&self, alert: &Alert, value: impl Fn(String) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(&value(field_text(alert, f))),
            }
        }
        out
    }

    /// The template's own text, between the placeholders.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            Part::Field(_) => None,
        })
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Field(name) => write!(f, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for KeyTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KeyTemplate::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// FNV-1a, 64 bits: a stable hash (the same in every build and process) for keys that must be
/// shortened. Not for security: a fingerprint is not a secret.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(host: &str, container: Option<&str>) -> Alert {
        let mut fields = serde_json::json!({"proc.name": "cat", "user.uid": 0});
        if let Some(c) = container {
            fields["container.id"] = c.into();
        }
        Alert::from_json(serde_json::json!({
            "rule": "Read sensitive file untrusted", "priority": "Warning", "hostname": host,
            "time": "2026-06-12T09:23:10Z", "output_fields": fields
        }))
        .unwrap()
    }

    #[test]
    fn default_fields_separate_hosts_and_containers() {
        let f = Fingerprint::default();
        assert_eq!(
            f.key(&alert("a", Some("c1"))),
            f.key(&alert("a", Some("c1")))
        );
        assert_ne!(
            f.key(&alert("a", Some("c1"))),
            f.key(&alert("b", Some("c1")))
        );
        assert_ne!(f.key(&alert("a", Some("c1"))), f.key(&alert("a", None)));
        assert_eq!(
            f.values(&alert("a", None)),
            ["Read sensitive file untrusted", "a", ""]
        );
    }

    #[test]
    fn numbers_are_fields_too() {
        let f = Fingerprint::new(vec!["user.uid".into(), "priority".into()]).unwrap();
        assert_eq!(f.values(&alert("a", None)), ["0", "Warning"]);
        assert!(Fingerprint::new(vec![]).is_err());
    }

    #[test]
    fn templates_render_and_reject_nonsense() {
        let t = KeyTemplate::parse("{rule}|{hostname}|{container.id}").unwrap();
        assert_eq!(
            t.render(&alert("n1", Some("abc"))),
            "Read sensitive file untrusted|n1|abc"
        );
        assert_eq!(t.to_string(), "{rule}|{hostname}|{container.id}");
        assert!(KeyTemplate::parse("static")
            .unwrap_err()
            .contains("at least one"));
        assert!(KeyTemplate::parse("{rule")
            .unwrap_err()
            .contains("unclosed"));
        assert!(KeyTemplate::parse("{}").is_err());
    }

    #[test]
    fn the_stable_hash_is_stable() {
        // FNV-1a test vectors.
        assert_eq!(stable_hash(""), 0xcbf29ce484222325);
        assert_eq!(stable_hash("a"), 0xaf63dc4c8601ec8c);
    }
}
