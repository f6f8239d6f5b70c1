//! Prometheus metrics. Labels hold only output names, output types, priorities, sources, rule
//! names and fixed reason words — never a URL, key or token. Beside Peregrine's own series the
//! registry exports `peregrine_build_info` and the standard `process_*` series (CPU, memory,
//! descriptors, start time) that dashboards and the `up`-style alerts expect.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use peregrine_engine::Priority;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Distinct `source` label values kept before the rest are counted as `other`: sources come
/// from senders, and an unbounded label would let any client blow up the series count.
const MAX_SOURCES: usize = 32;

/// Distinct `rule` label values kept before the rest are counted as `other`. Falco's default
/// rules have about a hundred; a sender inventing rule names cannot add more series than this.
const MAX_RULES: usize = 256;

/// A label whose values come from senders: the first `max` distinct values are kept, later ones
/// are folded into `other`, so the series count stays bounded whatever clients send.
struct CappedLabel {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl CappedLabel {
    fn new(max: usize) -> Self {
        CappedLabel {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `value` if it is (or can become) one of the kept values, else `"other"`.
    fn fold<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.seen.lock().expect("capped label lock");
        if seen.contains(value) || (seen.len() < self.max && seen.insert(value.to_string())) {
            value
        } else {
            "other"
        }
    }
}

/// `peregrine_alerts_received_total`'s counter for each source, rule and priority seen, by the
/// names as sent: finding it was two locked folds and the registry hashing three labels under
/// its lock for every accepted alert, 3 % of ingest's instructions.
///
/// Hashed with foldhash rather than SipHash (half the instructions of this lookup): the names come
/// from senders, but only names kept as labels are inserted (`MAX_SOURCES` + 1 maps of at most
/// `MAX_RULES` + 1 names), so colliding names can lengthen a probe by a few hundred at worst.
type ReceivedCounters = HashMap<String, ReceivedByRule, foldhash::fast::RandomState>;
type ReceivedByRule =
    HashMap<String, [Option<IntCounter>; Priority::ALL.len()], foldhash::fast::RandomState>;

/// Makes one metric of its type; the labels are ignored by the unlabelled types.
trait Make: Clone + prometheus::core::Collector + 'static {
    fn make(name: &str, help: &str, labels: &[&str]) -> Self;
}

impl Make for IntCounterVec {
    fn make(name: &str, help: &str, labels: &[&str]) -> Self {
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
    }
}

impl Make for IntGaugeVec {
    fn make(name: &str, help: &str, labels: &[&str]) -> Self {
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
    }
}

impl Make for IntCounter {
    fn make(name: &str, help: &str, _: &[&str]) -> Self {
        IntCounter::new(name, help).expect("valid metric")
    }
}

impl Make for IntGauge {
    fn make(name: &str, help: &str, _: &[&str]) -> Self {
        IntGauge::new(name, help).expect("valid metric")
    }
}

impl Make for HistogramVec {
    /// Delivery latencies, from a millisecond (a local peer) to an hour (a long outage).
    fn make(name: &str, help: &str, labels: &[&str]) -> Self {
        let buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            300.0, 900.0, 3600.0,
        ];
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric")
    }
}

/// `peregrine_build_info{version, revision}` at 1, and the `process_*` collector. The revision
/// is the `PEREGRINE_REVISION` the image build passes in, `unknown` for a plain `cargo build`.
fn register_process_and_build(registry: &Registry) {
    let info: IntGaugeVec = register(
        registry,
        "peregrine_build_info",
        "1, labelled with the running gateway's version and source revision.",
        &["version", "revision"],
    );
    let revision = option_env!("PEREGRINE_REVISION").unwrap_or("unknown");
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), revision])
        .set(1);
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("one process collector");
}

fn register<M: Make>(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> M {
    let metric = M::make(name, help, labels);
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// Declares the `Metrics` struct and its constructor from one table: each row is a field, its
/// type, the series name, its help text and its labels.
macro_rules! metrics_table {
    ($($vis:vis $field:ident: $kind:ident = $name:literal, $help:literal, [$($label:literal),*];)*) => {
        pub struct Metrics {
            registry: Registry,
            sources: CappedLabel,
            rules: CappedLabel,
            received_by_name: Mutex<ReceivedCounters>,
            $($vis $field: $kind,)*
        }

        impl Metrics {
            pub fn new() -> Self {
                let registry = Registry::new();
                register_process_and_build(&registry);
                Metrics {
                    $($field: register(&registry, $name, $help, &[$($label),*]),)*
                    registry,
                    sources: CappedLabel::new(MAX_SOURCES),
                    rules: CappedLabel::new(MAX_RULES),
                    received_by_name: Mutex::default(),
                }
            }
        }
    };
}

metrics_table! {
    received: IntCounterVec = "peregrine_alerts_received_total",
        "Alerts accepted and durably stored, by source, priority and rule (sources beyond 32 and rules beyond 256 distinct names are counted as other).",
        ["source", "priority", "rule"];
    pub rejected: IntCounterVec = "peregrine_alerts_rejected_total",
        "Alert requests refused, by reason.", ["reason"];
    pub kafka_lag: IntGaugeVec = "peregrine_input_kafka_lag",
        "Messages of a Kafka partition assigned to this replica that are not yet in its spool (high watermark minus the next offset to store), refreshed every 5 s.",
        ["topic", "partition"];

    pub sent: IntCounterVec = "peregrine_output_sent_total",
        "Alerts delivered to an output.", ["output", "type"];
    pub retries: IntCounterVec = "peregrine_output_retries_total",
        "Alerts whose delivery attempt failed and will be retried.", ["output", "type"];
    pub dead_lettered: IntCounterVec = "peregrine_output_dead_lettered_total",
        "Alerts written to an output's dead-letter file.", ["output", "type"];
    pub dead_lettered_by_reason: IntCounterVec = "peregrine_output_dead_lettered_by_reason_total",
        "Alerts dead-lettered, by the destination's reason word (channel_not_found, invalid_event, retries_exhausted, http_404, ...).",
        ["output", "type", "reason"];
    pub suppressed: IntCounterVec = "peregrine_output_suppressed_total",
        "Alerts storm control held back from an output (counted in its next digest; other outputs still get them).",
        ["output", "type"];
    pub digests: IntCounterVec = "peregrine_output_digests_total",
        "Storm-control digest messages delivered to an output.", ["output", "type"];
    pub filtered: IntCounterVec = "peregrine_output_filtered_total",
        "Alerts an output's routing did not select.", ["output", "type"];
    pub queue_depth: IntGaugeVec = "peregrine_output_queue_depth",
        "Alerts in the spool that an output has not finished with.", ["output", "type"];
    pub backlog_bytes: IntGaugeVec = "peregrine_output_backlog_bytes",
        "Bytes of spool from an output's cursor to the end of the log (what max_backlog bounds).",
        ["output", "type"];
    pub in_flight: IntGaugeVec = "peregrine_output_in_flight",
        "Alerts in delivery attempts (including backoff) right now.", ["output", "type"];
    pub oldest_pending_seconds: IntGaugeVec = "peregrine_output_oldest_pending_age_seconds",
        "Age of the oldest alert an output is still working on.", ["output", "type"];
    pub paused: IntGaugeVec = "peregrine_output_paused",
        "1 while a Retry-After from the destination pauses the output.", ["output", "type"];
    pub delivery_seconds: HistogramVec = "peregrine_output_delivery_seconds",
        "Time from an alert's acceptance to its delivery to the output.", ["output", "type"];
    pub panics: IntCounterVec = "peregrine_output_panics_total",
        "Batches during which the output panicked (a bug); retried, then dead-lettered with reason panic.",
        ["output", "type"];
    pub dead_letter_bytes: IntGaugeVec = "peregrine_dead_letter_bytes",
        "Bytes of dead letters an output keeps on disk (bounded by dead_letter.max_bytes).",
        ["output"];
    pub plugin_restarts: IntCounterVec = "peregrine_output_plugin_restarts_total",
        "Times an exec output's plugin process was stopped (it exited, broke the protocol or hung) or failed to start; it starts again with a growing wait.",
        ["output", "type"];
    pub dead_letter_write_errors: IntCounterVec = "peregrine_dead_letter_write_errors_total",
        "Dead-letter writes that failed (disk full, I/O error) and will be tried again.",
        ["output", "type"];

    pub spool_bytes: IntGauge = "peregrine_spool_bytes",
        "Bytes of accepted alerts kept on disk.", [];
    pub spool_max_bytes: IntGauge = "peregrine_spool_max_bytes",
        "Spool size at which ingest answers 503.", [];
    pub spool_segments: IntGauge = "peregrine_spool_segments",
        "Segment files in the spool.", [];
    pub spool_commits: IntCounter = "peregrine_spool_commits_total",
        "Group commits (one fsync each).", [];
    pub spool_records: IntCounter = "peregrine_spool_records_total",
        "Alerts written by group commits.", [];
    pub spool_corrupt: IntCounter = "peregrine_spool_corrupt_records_total",
        "Stored records lost to damage on disk (found at recovery or while reading); the intact records around them are kept.",
        [];

    pub config_reloads: IntCounterVec = "peregrine_config_reloads_total",
        "Configuration reloads (SIGHUP), by result: ok, or error (the running configuration was kept).",
        ["result"];
    pub config_info: IntGaugeVec = "peregrine_config_info",
        "1 for the running configuration; hash is the start of the SHA-256 of its file.",
        ["hash"];

    pub connections: IntGauge = "peregrine_http_connections",
        "HTTP connections open now.", [];
    pub connections_max: IntGauge = "peregrine_http_connections_max",
        "Connections allowed at once (limits.max_connections, kept below the file descriptor limit).",
        [];
    pub connections_closed: IntCounterVec = "peregrine_http_connections_closed_total",
        "Connections the gateway closed: timeout (a deadline of limits passed) or evicted (to make room under max_connections).",
        ["reason"];
    pub body_bytes_in_flight: IntGauge = "peregrine_http_body_bytes_in_flight",
        "Request body bytes held in memory now (limited by limits.inflight_body_bytes).", [];
}

impl Metrics {
    /// Creates an output's series at zero, so dashboards and `rate()` see it before its first
    /// event.
    pub fn register_output(&self, name: &str, kind: &str) {
        let labels = [name, kind];
        for c in self.output_counters() {
            c.with_label_values(&labels);
        }
        for g in self.output_gauges() {
            g.with_label_values(&labels);
        }
        self.delivery_seconds.with_label_values(&labels);
        self.dead_letter_bytes.with_label_values(&[name]);
    }

    /// The counters labelled by output and type.
    fn output_counters(&self) -> [&IntCounterVec; 9] {
        [
            &self.plugin_restarts,
            &self.sent,
            &self.retries,
            &self.dead_lettered,
            &self.filtered,
            &self.suppressed,
            &self.digests,
            &self.panics,
            &self.dead_letter_write_errors,
        ]
    }

    /// The gauges labelled by output and type.
    fn output_gauges(&self) -> [&IntGaugeVec; 5] {
        [
            &self.queue_depth,
            &self.backlog_bytes,
            &self.in_flight,
            &self.oldest_pending_seconds,
            &self.paused,
        ]
    }

    /// Removes an output's series once it is no longer configured, so dashboards do not show a
    /// ghost frozen at its last values.
    pub fn unregister_output(&self, name: &str, kind: &str) {
        let labels = [name, kind];
        for c in self.output_counters() {
            let _ = c.remove_label_values(&labels);
        }
        for g in self.output_gauges() {
            let _ = g.remove_label_values(&labels);
        }
        let _ = self.delivery_seconds.remove_label_values(&labels);
        let _ = self.dead_letter_bytes.remove_label_values(&[name]);
        for family in self.registry.gather() {
            if family.name() != "peregrine_output_dead_lettered_by_reason_total" {
                continue;
            }
            for metric in family.get_metric() {
                let label = |n: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                };
                if label("output").as_deref() == Some(name) {
                    if let Some(reason) = label("reason") {
                        let _ = self
                            .dead_lettered_by_reason
                            .remove_label_values(&[name, kind, &reason]);
                    }
                }
            }
        }
    }

    /// Marks `hash` as the running configuration's.
    pub fn set_config(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }

    /// Creates the rejection series at zero for every reason the gateway can give.
    pub fn register_rejection_reasons(&self, reasons: &[&str]) {
        for reason in reasons {
            self.rejected.with_label_values(&[reason]);
        }
    }

    /// Counts one accepted alert, folding sources and rules beyond the first few into `other`.
    pub fn received(&self, source: &str, priority: Priority, rule: &str) {
        let mut known = self
            .received_by_name
            .lock()
            .expect("received counters lock");
        let slot = usize::from(priority.level());
        let counters = known.get(source).and_then(|rules| rules.get(rule));
        if let Some(counter) = counters.and_then(|c| c[slot].as_ref()) {
            counter.inc();
            return;
        }
        let (folded_source, folded_rule) = (self.sources.fold(source), self.rules.fold(rule));
        let counter =
            self.received
                .with_label_values(&[folded_source, priority.as_str(), folded_rule]);
        counter.inc();
        // Only names kept as labels are remembered, so the map is as bounded as the labels.
        if folded_source == source && folded_rule == rule {
            let by_rule = known.entry(source.to_string()).or_default();
            by_rule.entry(rule.to_string()).or_default()[slot] = Some(counter);
        }
    }

    /// An output's dead letters counted by reason word since the start, most first.
    pub fn dead_letter_reasons(&self, output: &str) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = self
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "peregrine_output_dead_lettered_by_reason_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "output" && l.value() == output)
            })
            .filter_map(|m| {
                let reason = m.get_label().iter().find(|l| l.name() == "reason")?;
                Some((
                    reason.value().to_string(),
                    m.get_counter().get_value() as u64,
                ))
            })
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `peregrine_alerts_received_total` for one set of labels, as scraped.
    fn received(metrics: &Metrics, source: &str, priority: &str, rule: &str) -> Option<u64> {
        let series = format!(
            "peregrine_alerts_received_total{{priority=\"{priority}\",rule=\"{rule}\",source=\"{source}\"}} "
        );
        let text = metrics.render();
        let line = text.lines().find(|l| l.starts_with(&series))?;
        line[series.len()..].parse().ok()
    }

    #[test]
    fn received_alerts_are_counted_by_name_until_the_caps_then_as_other() {
        let m = Metrics::new();
        for i in 0..MAX_RULES + 10 {
            m.received("syscall", Priority::Warning, &format!("rule {i}"));
        }
        for _ in 0..3 {
            m.received("syscall", Priority::Warning, "rule 0");
            m.received("syscall", Priority::Warning, "rule 0");
            m.received("syscall", Priority::Error, "rule 0");
            m.received("syscall", Priority::Warning, "rule 300");
        }
        for i in 0..MAX_SOURCES + 1 {
            m.received(&format!("source {i}"), Priority::Notice, "rule 1");
        }
        assert_eq!(received(&m, "syscall", "Warning", "rule 0"), Some(7));
        assert_eq!(received(&m, "syscall", "Error", "rule 0"), Some(3));
        assert_eq!(received(&m, "syscall", "Warning", "rule 255"), Some(1));
        assert_eq!(received(&m, "syscall", "Warning", "rule 256"), None);
        assert_eq!(received(&m, "syscall", "Warning", "other"), Some(13));
        // "syscall" took one of the source labels.
        assert_eq!(received(&m, "source 30", "Notice", "rule 1"), Some(1));
        assert_eq!(received(&m, "source 31", "Notice", "rule 1"), None);
        assert_eq!(received(&m, "other", "Notice", "rule 1"), Some(2));
    }
}
