//! Prometheus metrics. Labels hold only output names, output types, priorities, sources and
//! fixed reason words — never a URL, key or token.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Distinct `source` label values kept before the rest are counted as `other`: sources come
/// from senders, and an unbounded label would let any client blow up the series count.
const MAX_SOURCES: usize = 32;

pub struct Metrics {
    registry: Registry,
    received: IntCounterVec,
    pub rejected: IntCounterVec,
    pub sent: IntCounterVec,
    pub retries: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub dead_lettered_by_reason: IntCounterVec,
    pub suppressed: IntCounterVec,
    pub digests: IntCounterVec,
    pub filtered: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub backlog_bytes: IntGaugeVec,
    pub in_flight: IntGaugeVec,
    pub oldest_pending_seconds: IntGaugeVec,
    pub paused: IntGaugeVec,
    pub delivery_seconds: HistogramVec,
    pub spool_bytes: IntGauge,
    pub spool_max_bytes: IntGauge,
    pub spool_segments: IntGauge,
    pub spool_commits: IntCounter,
    pub spool_records: IntCounter,
    pub spool_corrupt: IntCounter,
    pub panics: IntCounterVec,
    pub dead_letter_bytes: IntGaugeVec,
    pub dead_letter_write_errors: IntCounterVec,
    pub kafka_lag: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub connections: IntGauge,
    pub connections_max: IntGauge,
    pub connections_closed: IntCounterVec,
    pub body_bytes_in_flight: IntGauge,
    sources: Mutex<HashSet<String>>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let out = &["output", "type"];
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "peregrine_output_delivery_seconds",
                "Time from an alert's acceptance to its delivery to the output.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0, 900.0, 3600.0,
            ]),
            out,
        )
        .expect("valid metric");
        r.register(Box::new(delivery_seconds.clone()))
            .expect("unique metric");
        let single = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let single_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        Metrics {
            received: counter(
                &r,
                "peregrine_alerts_received_total",
                "Alerts accepted and durably stored.",
                &["source", "priority"],
            ),
            kafka_lag: gauge(
                &r,
                "peregrine_input_kafka_lag",
                "Messages of a Kafka partition assigned to this replica that are not yet in its spool (high watermark minus the next offset to store), refreshed every 5 s.",
                &["topic", "partition"],
            ),
            rejected: counter(
                &r,
                "peregrine_alerts_rejected_total",
                "Alert requests refused, by reason.",
                &["reason"],
            ),
            sent: counter(
                &r,
                "peregrine_output_sent_total",
                "Alerts delivered to an output.",
                out,
            ),
            retries: counter(
                &r,
                "peregrine_output_retries_total",
                "Alerts whose delivery attempt failed and will be retried.",
                out,
            ),
            dead_lettered: counter(
                &r,
                "peregrine_output_dead_lettered_total",
                "Alerts written to an output's dead-letter file.",
                out,
            ),
            dead_lettered_by_reason: counter(
                &r,
                "peregrine_output_dead_lettered_by_reason_total",
                "Alerts dead-lettered, by the destination's reason word (channel_not_found, invalid_event, retries_exhausted, http_404, ...).",
                &["output", "type", "reason"],
            ),
            suppressed: counter(
                &r,
                "peregrine_output_suppressed_total",
                "Alerts storm control held back from an output (counted in its next digest; other outputs still get them).",
                out,
            ),
            digests: counter(
                &r,
                "peregrine_output_digests_total",
                "Storm-control digest messages delivered to an output.",
                out,
            ),
            filtered: counter(
                &r,
                "peregrine_output_filtered_total",
                "Alerts an output's routing did not select.",
                out,
            ),
            queue_depth: gauge(
                &r,
                "peregrine_output_queue_depth",
                "Alerts in the spool that an output has not finished with.",
                out,
            ),
            backlog_bytes: gauge(
                &r,
                "peregrine_output_backlog_bytes",
                "Bytes of spool from an output's cursor to the end of the log (what max_backlog bounds).",
                out,
            ),
            in_flight: gauge(
                &r,
                "peregrine_output_in_flight",
                "Alerts in delivery attempts (including backoff) right now.",
                out,
            ),
            oldest_pending_seconds: gauge(
                &r,
                "peregrine_output_oldest_pending_age_seconds",
                "Age of the oldest alert an output is still working on.",
                out,
            ),
            paused: gauge(
                &r,
                "peregrine_output_paused",
                "1 while a Retry-After from the destination pauses the output.",
                out,
            ),
            delivery_seconds,
            spool_bytes: single(
                "peregrine_spool_bytes",
                "Bytes of accepted alerts kept on disk.",
            ),
            spool_max_bytes: single(
                "peregrine_spool_max_bytes",
                "Spool size at which ingest answers 503.",
            ),
            spool_segments: single("peregrine_spool_segments", "Segment files in the spool."),
            spool_commits: single_counter(
                "peregrine_spool_commits_total",
                "Group commits (one fsync each).",
            ),
            spool_records: single_counter(
                "peregrine_spool_records_total",
                "Alerts written by group commits.",
            ),
            dead_letter_bytes: gauge(
                &r,
                "peregrine_dead_letter_bytes",
                "Bytes of dead letters an output keeps on disk (bounded by dead_letter.max_bytes).",
                &["output"],
            ),
            panics: counter(
                &r,
                "peregrine_output_panics_total",
                "Batches during which the output panicked (a bug); retried, then dead-lettered with reason panic.",
                &["output", "type"],
            ),
            dead_letter_write_errors: counter(
                &r,
                "peregrine_dead_letter_write_errors_total",
                "Dead-letter writes that failed (disk full, I/O error) and will be tried again.",
                &["output", "type"],
            ),
            spool_corrupt: single_counter(
                "peregrine_spool_corrupt_records_total",
                "Stored records lost to damage on disk (found at recovery or while reading); the intact records around them are kept.",
            ),
            config_reloads: counter(
                &r,
                "peregrine_config_reloads_total",
                "Configuration reloads (SIGHUP), by result: ok, or error (the running configuration was kept).",
                &["result"],
            ),
            config_info: gauge(
                &r,
                "peregrine_config_info",
                "1 for the running configuration; hash is the start of the SHA-256 of its file.",
                &["hash"],
            ),
            connections: single("peregrine_http_connections", "HTTP connections open now."),
            connections_max: single(
                "peregrine_http_connections_max",
                "Connections allowed at once (limits.max_connections, kept below the file descriptor limit).",
            ),
            connections_closed: counter(
                &r,
                "peregrine_http_connections_closed_total",
                "Connections the gateway closed: timeout (a deadline of limits passed) or evicted (to make room under max_connections).",
                &["reason"],
            ),
            body_bytes_in_flight: single(
                "peregrine_http_body_bytes_in_flight",
                "Request body bytes held in memory now (limited by limits.inflight_body_bytes).",
            ),
            registry: r,
            sources: Mutex::new(HashSet::new()),
        }
    }

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
    fn output_counters(&self) -> [&IntCounterVec; 8] {
        [
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

    /// Counts accepted alerts, folding sources beyond the first few into `other`.
    pub fn received(&self, source: &str, priority: &str, n: u64) {
        let source = {
            let mut seen = self.sources.lock().expect("sources lock");
            if seen.contains(source)
                || (seen.len() < MAX_SOURCES && seen.insert(source.to_string()))
            {
                source
            } else {
                "other"
            }
        };
        self.received
            .with_label_values(&[source, priority])
            .inc_by(n);
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
