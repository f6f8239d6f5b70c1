//! The one way into the spool, whatever carried the alerts (HTTP or a Kafka topic): each alert
//! gets its identity and the configured custom fields, and is counted as received only once it
//! is durably stored.

use std::sync::Arc;

use peregrine_engine::{Alert, AlertId};
use serde_json::{Map, Value};

use crate::metrics::Metrics;
use crate::spool::{AppendError, NewRecord, PendingAppend, Spool};

#[derive(Clone)]
pub struct Intake {
    pub spool: Spool,
    pub metrics: Arc<Metrics>,
    /// Added to every alert's `output_fields`.
    pub custom_fields: Arc<Map<String, Value>>,
}

impl Intake {
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
        let mut counts = Vec::with_capacity(n);
        let mut records = Vec::with_capacity(n);
        for mut alert in alerts {
            alert.uuid.get_or_insert_with(AlertId::generate);
            for (k, v) in self.custom_fields.iter() {
                alert.output_fields.insert(k.clone(), v.clone());
            }
            records.push(NewRecord {
                payload: alert.to_json_bytes(),
                flags: record_flags,
            });
            counts.push((alert.source, alert.priority));
        }
        pending.append(records).await?;
        for (source, priority) in counts {
            self.metrics.received(&source, priority.as_str(), 1);
        }
        Ok(n)
    }
}
