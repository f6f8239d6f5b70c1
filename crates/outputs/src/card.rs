//! What the chat and paging outputs show of an alert: its most useful fields, truncation with a
//! visible marker, and colours by priority.

use peregrine_engine::{Alert, Priority};
use serde_json::Value;

/// Shown where text was cut.
pub const TRUNCATED: &str = "… [truncated]";

/// Fields a responder looks at first, in this order; the rest follow alphabetically.
const FIRST: [&str; 12] = [
    "proc.name",
    "proc.cmdline",
    "fd.name",
    "user.name",
    "proc.pname",
    "evt.type",
    "container.id",
    "container.name",
    "container.image.repository",
    "k8s.ns.name",
    "k8s.pod.name",
    "proc.exepath",
];

/// Up to `max` non-null output fields as (name, text), numbers and booleans included.
pub fn important_fields(alert: &Alert, max: usize) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for name in FIRST {
        if let Some(t) = alert.output_fields.get(name).and_then(text) {
            out.push((name.to_string(), t));
        }
    }
    for (name, v) in &alert.output_fields {
        if FIRST.contains(&name.as_str()) || name == "evt.time" {
            continue;
        }
        if let Some(t) = text(v) {
            out.push((name.clone(), t));
        }
    }
    out.truncate(max);
    out
}

/// `text` cut to at most `max` characters, ending with [`TRUNCATED`] when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(TRUNCATED);
    cut
}

/// The output without Falco's leading `time: Priority ` (cards show both elsewhere).
pub fn output_text(a: &Alert) -> String {
    let prefix = format!(": {} ", a.priority);
    match a.output.find(&prefix) {
        Some(i) if i < 40 => a.output[i + prefix.len()..].to_string(),
        _ => a.output.clone(),
    }
}

/// A colour for the priority, from red (Emergency) to grey (Debug).
pub fn color(priority: Priority) -> &'static str {
    match priority {
        Priority::Emergency | Priority::Alert | Priority::Critical => "#e01e5a",
        Priority::Error => "#e8912d",
        Priority::Warning => "#ecb22e",
        Priority::Notice => "#2eb67d",
        Priority::Informational => "#36c5f0",
        Priority::Debug => "#9e9e9e",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_first_the_useful_ones_and_never_null() {
        let a = Alert::from_json(serde_json::json!({
            "rule": "r", "priority": "Warning", "time": "2026-01-01T00:00:00Z",
            "output_fields": {"zz.last": "z", "proc.name": "cat", "user.uid": 0, "proc.pname": null, "evt.time": 5, "fd.name": "/etc/shadow", "container.privileged": false}
        }))
        .unwrap();
        let f = important_fields(&a, 10);
        assert_eq!(f[0], ("proc.name".to_string(), "cat".to_string()));
        assert_eq!(f[1].0, "fd.name");
        assert!(f.iter().any(|(n, v)| n == "user.uid" && v == "0"));
        assert!(f
            .iter()
            .any(|(n, v)| n == "container.privileged" && v == "false"));
        assert!(!f.iter().any(|(n, _)| n == "proc.pname" || n == "evt.time"));
        assert_eq!(important_fields(&a, 2).len(), 2);
    }

    #[test]
    fn truncation_is_visible() {
        assert_eq!(truncate("short", 10), "short");
        let t = truncate(&"x".repeat(100), 20);
        assert_eq!(t.chars().count(), 20);
        assert!(t.ends_with(TRUNCATED));
    }
}
