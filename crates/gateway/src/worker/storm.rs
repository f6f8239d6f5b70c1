//! Storm control for the outputs people read: within a window, alerts with the same fingerprint
//! are sent once, and when the window closes one digest says how many more came and when.
//!
//! Time is the spool's acceptance time, not the clock at processing: an output that catches up
//! on a backlog groups the backlog's alerts as they arrived, not all into one window. A window
//! closes when the output has processed everything accepted before its end (the "watermark":
//! the acceptance time of the next alert to process, or now when none is waiting).
//!
//! Suppressed alerts are only held back from this output: they stay in the spool for every other
//! output, and are counted. Open windows live in memory, so a restart forgets the digest of the
//! windows open at that moment (the alerts themselves were already counted and stored).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::{Alert, AlertId, EventTime};
use peregrine_outputs::fingerprint::Fingerprint;
use serde_json::json;

/// The `dedup` keys of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormConfig {
    pub window: Duration,
    pub fingerprint: Fingerprint,
}

/// Open windows kept at most; past this many distinct fingerprints at once, new ones are sent
/// without storm control rather than letting memory grow without bound.
const MAX_WINDOWS: usize = 100_000;

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Suppress,
}

struct Window {
    ends_ns: u64,
    first: Summary,
    suppressed: u64,
    first_suppressed: Option<EventTime>,
    last_suppressed: Option<EventTime>,
}

/// What a digest needs of a window's first alert, and nothing more, each value capped: a window's
/// cost no longer grows with the alert. Measured with `examples/storm_memory.rs`: 100 000 open
/// windows of typical Falco alerts, 91 MiB resident, against 302 MiB keeping the alerts whole.
struct Summary {
    hostname: Option<String>,
    rule: String,
    source: String,
    priority: peregrine_engine::Priority,
    tags: Vec<String>,
    time: EventTime,
    uuid: Option<String>,
    /// The fingerprint's values, in the order of its fields.
    values: Vec<String>,
}

/// Longest text a summary keeps of any one value.
const SUMMARY_TEXT: usize = 256;
/// Most tags a summary keeps.
const SUMMARY_TAGS: usize = 16;

fn capped(text: &str) -> String {
    match text.char_indices().nth(SUMMARY_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

impl Summary {
    fn of(alert: &Alert, fingerprint: &Fingerprint) -> Self {
        Summary {
            hostname: alert.hostname.as_deref().map(capped),
            rule: capped(&alert.rule),
            source: capped(&alert.source),
            priority: alert.priority,
            tags: alert
                .tags
                .iter()
                .take(SUMMARY_TAGS)
                .map(|t| capped(t))
                .collect(),
            time: alert.time,
            uuid: alert.uuid.as_ref().map(|u| u.as_str().to_string()),
            values: fingerprint
                .values(alert)
                .iter()
                .map(|v| capped(v))
                .collect(),
        }
    }
}

pub struct Storm {
    config: StormConfig,
    windows: HashMap<String, Window>,
}

impl Storm {
    pub fn new(config: StormConfig) -> Self {
        Storm {
            config,
            windows: HashMap::new(),
        }
    }

    /// Decides for an alert accepted at `accepted_ns`.
    pub fn admit(&mut self, alert: &Arc<Alert>, accepted_ns: u64) -> Verdict {
        let key = self.config.fingerprint.key(alert);
        if let Some(w) = self.windows.get_mut(&key) {
            if accepted_ns < w.ends_ns {
                w.suppressed += 1;
                w.first_suppressed.get_or_insert(alert.time);
                w.last_suppressed = Some(alert.time);
                return Verdict::Suppress;
            }
        }
        if self.windows.len() >= MAX_WINDOWS && !self.windows.contains_key(&key) {
            return Verdict::Send;
        }
        // A window that ended before this alert was closed by `close_until` already, as the
        // watermark passed its end; opening a new one replaces nothing with a pending count.
        let window_ns = u64::try_from(self.config.window.as_nanos()).unwrap_or(u64::MAX);
        self.windows.insert(
            key,
            Window {
                ends_ns: accepted_ns.saturating_add(window_ns),
                first: Summary::of(alert, &self.config.fingerprint),
                suppressed: 0,
                first_suppressed: None,
                last_suppressed: None,
            },
        );
        Verdict::Send
    }

    /// Closes every window that ended at or before `watermark_ns`, returning a digest for each
    /// one that held anything back.
    pub fn close_until(&mut self, watermark_ns: u64) -> Vec<Alert> {
        let mut digests = Vec::new();
        let window = self.config.window;
        let fingerprint = &self.config.fingerprint;
        self.windows.retain(|_, w| {
            if w.ends_ns > watermark_ns {
                return true;
            }
            if w.suppressed > 0 {
                digests.push(digest(w, window, fingerprint));
            }
            false
        });
        digests
    }

    /// When the earliest open window ends (acceptance-time nanoseconds).
    pub fn next_end_ns(&self) -> Option<u64> {
        self.windows.values().map(|w| w.ends_ns).min()
    }
}

/// The digest alert: the first alert's rule, priority, host, source and tags (plus
/// `peregrine_digest`), saying how many more came and when.
fn digest(w: &Window, window: Duration, fingerprint: &Fingerprint) -> Alert {
    let first = &w.first;
    let from = w.first_suppressed.unwrap_or(first.time);
    let to = w.last_suppressed.unwrap_or(first.time);
    let pairs = || fingerprint.fields().iter().zip(&first.values);
    let what: Vec<String> = pairs()
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, v)| format!("{f}={v}"))
        .collect();
    let more = if w.suppressed == 1 { "alert" } else { "alerts" };
    let mut output_fields = serde_json::Map::new();
    for (field, value) in pairs() {
        if !matches!(field.as_str(), "rule" | "priority" | "hostname" | "source") {
            output_fields.insert(field.clone(), json!(value));
        }
    }
    output_fields.insert("peregrine.suppressed".into(), json!(w.suppressed));
    output_fields.insert("peregrine.first_time".into(), json!(from.to_string()));
    output_fields.insert("peregrine.last_time".into(), json!(to.to_string()));
    output_fields.insert(
        "peregrine.window_seconds".into(),
        json!(window.as_secs_f64()),
    );
    output_fields.insert("peregrine.first_uuid".into(), json!(first.uuid));
    let mut tags = first.tags.clone();
    tags.push("peregrine_digest".to_string());
    Alert {
        hostname: first.hostname.clone(),
        output: format!(
            "Storm control: {} more {more} like this one ({}) between {from} and {to}, not sent here; every one is in the spool and in the other outputs",
            w.suppressed,
            what.join(", "),
        ),
        output_fields,
        priority: first.priority,
        rule: first.rule.clone(),
        source: first.source.clone(),
        tags,
        time: to,
        uuid: Some(AlertId::generate()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn alert(host: &str, at_s: u64) -> Arc<Alert> {
        let mut a = Alert::from_json(json!({
            "rule": "Terminal shell in container", "priority": "Notice", "hostname": host,
            "time": EventTime::from_unix_nanos((at_s * S) as i64).to_string(),
            "output_fields": {"container.id": "c1", "proc.name": "bash"}, "tags": ["shell"]
        }))
        .unwrap();
        a.uuid = Some(AlertId::generate());
        Arc::new(a)
    }

    fn storm(window_s: u64) -> Storm {
        Storm::new(StormConfig {
            window: Duration::from_secs(window_s),
            fingerprint: Fingerprint::default(),
        })
    }

    #[test]
    fn one_sent_the_rest_counted_in_one_digest() {
        let mut s = storm(60);
        assert_eq!(s.admit(&alert("n1", 100), 100 * S), Verdict::Send);
        for t in 101..110 {
            assert_eq!(s.admit(&alert("n1", t), t * S), Verdict::Suppress);
        }
        assert_eq!(
            s.admit(&alert("n2", 105), 105 * S),
            Verdict::Send,
            "another host is another storm"
        );
        assert!(s.close_until(159 * S).is_empty(), "still open");
        let digests = s.close_until(160 * S);
        assert_eq!(digests.len(), 1, "n2's window held nothing back");
        let d = &digests[0];
        assert_eq!(d.rule, "Terminal shell in container");
        assert_eq!(d.hostname.as_deref(), Some("n1"));
        assert_eq!(d.output_fields["peregrine.suppressed"], 9);
        assert_eq!(d.output_fields["container.id"], "c1");
        assert_eq!(
            d.output_fields["peregrine.first_time"],
            EventTime::from_unix_nanos((101 * S) as i64).to_string()
        );
        assert_eq!(
            d.output_fields["peregrine.last_time"],
            EventTime::from_unix_nanos((109 * S) as i64).to_string()
        );
        assert!(d.tags.contains(&"peregrine_digest".to_string()));
        assert!(d.output.starts_with("Storm control: 9 more alerts like this one (rule=Terminal shell in container, hostname=n1, container.id=c1)"), "{}", d.output);
        assert_eq!(s.next_end_ns(), Some(165 * S), "n2's window is still open");
        assert_eq!(
            s.admit(&alert("n1", 161), 161 * S),
            Verdict::Send,
            "a new window"
        );
    }

    #[test]
    fn an_open_window_keeps_a_summary_not_the_alert() {
        let mut s = storm(60);
        let mut huge = (*alert("n1", 100)).clone();
        huge.output = "x".repeat(1 << 20);
        huge.output_fields
            .insert("container.id".into(), json!("c".repeat(10_000)));
        let huge = Arc::new(huge);
        s.admit(&huge, 100 * S);
        let w = s.windows.values().next().unwrap();
        let kept: usize = w.first.values.iter().map(String::len).sum::<usize>()
            + w.first.rule.len()
            + w.first.tags.iter().map(String::len).sum::<usize>();
        assert!(kept < 2048, "{kept} bytes kept for a 1 MiB alert");
        assert_eq!(s.admit(&huge, 101 * S), Verdict::Suppress);
        let d = &s.close_until(u64::MAX)[0];
        assert!(d.output_fields["container.id"]
            .as_str()
            .unwrap()
            .ends_with('…'));
    }

    #[test]
    fn windows_follow_acceptance_time_not_processing_time() {
        let mut s = storm(10);
        // A backlog of 30 s processed at once: three windows, three sends.
        let mut sent = 0;
        let mut digested = 0;
        for t in 0..30 {
            digested += s
                .close_until(t * S)
                .iter()
                .map(|d| d.output_fields["peregrine.suppressed"].as_u64().unwrap())
                .sum::<u64>();
            if s.admit(&alert("n1", t), t * S) == Verdict::Send {
                sent += 1;
            }
        }
        digested += s
            .close_until(u64::MAX)
            .iter()
            .map(|d| d.output_fields["peregrine.suppressed"].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(sent, 3);
        assert_eq!(sent + digested, 30, "every alert is sent or counted");
    }
}
