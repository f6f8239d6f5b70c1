//! Which alerts an output receives.

use globset::{Glob, GlobSet, GlobSetBuilder};
use peregrine_engine::{Alert, Priority};

/// An output's filter. Every given condition must hold; an empty list means "any".
#[derive(Debug, Clone)]
pub struct Route {
    min_priority: Priority,
    rules: Option<GlobSet>,
    tags: Vec<String>,
    sources: Vec<String>,
}

impl Route {
    /// Everything, at any priority.
    pub fn all() -> Self {
        Route {
            min_priority: Priority::Debug,
            rules: None,
            tags: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// `rules` are globs on the rule name (`Read sensitive file*`); `tags` match when the alert
    /// has any of them; `sources` when its source is one of them.
    pub fn new(
        min_priority: Priority,
        rules: Vec<String>,
        tags: Vec<String>,
        sources: Vec<String>,
    ) -> Result<Self, String> {
        let rules = if rules.is_empty() {
            None
        } else {
            let mut builder = GlobSetBuilder::new();
            for pattern in &rules {
                let glob = Glob::new(pattern)
                    .map_err(|e| format!("'{pattern}' is not a valid glob: {}", e.kind()))?;
                builder.add(glob);
            }
            Some(builder.build().map_err(|e| e.to_string())?)
        };
        Ok(Route {
            min_priority,
            rules,
            tags,
            sources,
        })
    }

    /// Whether every alert matches, so that matching needs none of its fields.
    pub fn is_all(&self) -> bool {
        self.min_priority == Priority::Debug
            && self.rules.is_none()
            && self.tags.is_empty()
            && self.sources.is_empty()
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        alert.priority.is_at_least(self.min_priority)
            && self
                .rules
                .as_ref()
                .is_none_or(|set| set.is_match(&alert.rule))
            && (self.tags.is_empty() || alert.tags.iter().any(|t| self.tags.contains(t)))
            && (self.sources.is_empty() || self.sources.contains(&alert.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, priority: &str, tags: &[&str], source: &str) -> Alert {
        Alert::from_json(serde_json::json!({
            "rule": rule, "priority": priority, "time": "2026-01-01T00:00:00Z",
            "tags": tags, "source": source,
        }))
        .unwrap()
    }

    #[test]
    fn every_condition_must_hold() {
        let route = Route::new(
            Priority::Warning,
            vec!["Read sensitive file*".into(), "Clear Log*".into()],
            vec!["mitre_credential_access".into(), "T1070".into()],
            vec!["syscall".into()],
        )
        .unwrap();
        let hit = alert(
            "Read sensitive file untrusted",
            "Warning",
            &["filesystem", "mitre_credential_access"],
            "syscall",
        );
        assert!(route.matches(&hit));
        assert!(route.matches(&alert(
            "Clear Log Activities",
            "Critical",
            &["T1070"],
            "syscall"
        )));
        assert!(!route.matches(&alert(
            "Read sensitive file untrusted",
            "Notice",
            &["mitre_credential_access"],
            "syscall"
        )));
        assert!(!route.matches(&alert(
            "Terminal shell in container",
            "Warning",
            &["mitre_credential_access"],
            "syscall"
        )));
        assert!(!route.matches(&alert(
            "Read sensitive file untrusted",
            "Warning",
            &["filesystem"],
            "syscall"
        )));
        assert!(!route.matches(&alert(
            "Read sensitive file untrusted",
            "Warning",
            &["mitre_credential_access"],
            "k8s_audit"
        )));
    }

    #[test]
    fn empty_route_takes_everything_and_bad_globs_are_reported() {
        assert!(Route::all().matches(&alert("x", "Debug", &[], "internal")));
        let e = Route::new(Priority::Debug, vec!["a[".into()], vec![], vec![]).unwrap_err();
        assert!(e.contains("'a['"), "{e}");
    }
}
