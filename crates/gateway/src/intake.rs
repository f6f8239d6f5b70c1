//! The one way into the spool, whatever carried the alerts (HTTP or a Kafka topic): each alert
//! gets its identity and the configured custom fields, and is counted as received only once it
//! is durably stored.

use std::sync::Arc;

use arc_swap::ArcSwap;
use peregrine_engine::raw_alert::RawAlert;
use peregrine_engine::{Alert, AlertId};
use serde_json::{Map, Value};

use crate::metrics::Metrics;
use crate::seen::SeenIds;
use crate::spool::{AppendError, NewRecord, PendingAppend, Spool};
use crate::worker::OutputStatus;

#[derive(Clone)]
pub struct Intake {
    pub spool: Spool,
    pub metrics: Arc<Metrics>,
    /// Added to every alert's `output_fields`; a reload replaces them.
    pub custom_fields: Arc<ArcSwap<Map<String, Value>>>,
    /// Ids stored lately, so a retried request stores nothing twice.
    pub seen: Arc<SeenIds>,
    /// The running outputs: one with `on_backlog_full: block` over its `max_backlog` stops
    /// ingest.
    pub outputs: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
}

impl Intake {
    /// Refuses alerts while an output with `on_backlog_full: block` is over its `max_backlog`.
    fn room(&self) -> Result<(), AppendError> {
        let end = self.spool.end();
        for o in self.outputs.load().iter() {
            if let Some(backlog) = o.blocking_backlog(end) {
                return Err(AppendError::OutputBehind {
                    output: o.name.clone(),
                    backlog,
                    max: o.backlog.max_bytes.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Assigns ids where absent, adds custom fields, and appends durably (fsync). Returns the
    /// count stored; on an error nothing of `alerts` is stored.
    pub async fn store(
        &self,
        alerts: Vec<Alert>,
        record_flags: u8,
        pending: PendingAppend<'_>,
    ) -> Result<usize, AppendError> {
        let n = alerts.len();
        if n == 0 {
            return Ok(0);
        }
        self.room()?;
        let mut counts = Vec::with_capacity(n);
        let mut records = Vec::with_capacity(n);
        let custom_fields = self.custom_fields.load();
        for mut alert in alerts {
            alert.uuid.get_or_insert_with(AlertId::generate);
            for (k, v) in custom_fields.iter() {
                alert.output_fields.insert(k.clone(), v.clone());
            }
            records.push(NewRecord {
                payload: alert.to_json_bytes(),
                flags: record_flags,
            });
            counts.push((alert.source, alert.priority, alert.rule));
        }
        pending.append(records).await?;
        for (source, priority, rule) in counts {
            self.metrics.received(&source, priority, &rule);
        }
        Ok(n)
    }

    /// Whether [`Intake::store_raw`] can take an alert: only when no custom fields are to be
    /// merged into its `output_fields`.
    pub fn takes_raw(&self) -> bool {
        self.custom_fields.load().is_empty()
    }

    /// Stores alerts checked in place, their free-form parts copied as they came (see
    /// [`RawAlert`]). Callers check [`Intake::takes_raw`] first (a request that was checked just
    /// before a reload added custom fields is stored without them).
    pub async fn store_raw(
        &self,
        alerts: Vec<RawAlert<'_>>,
        record_flags: u8,
        pending: PendingAppend<'_>,
    ) -> Result<usize, AppendError> {
        let n = alerts.len();
        if n == 0 {
            return Ok(0);
        }
        self.room()?;
        let records = alerts
            .iter()
            .map(|alert| {
                let uuid = alert.uuid.clone().unwrap_or_else(AlertId::generate);
                let mut payload = Vec::with_capacity(1024);
                alert.encode(&uuid, &mut payload);
                NewRecord {
                    payload,
                    flags: record_flags,
                }
            })
            .collect();
        pending.append(records).await?;
        for alert in &alerts {
            self.metrics
                .received(&alert.source, alert.priority, &alert.rule);
        }
        Ok(n)
    }
}
