//! `inputs: [{type: kafka}]` — alerts consumed from a Kafka topic, one consumer group for
//! all gateway replicas.
//!
//! A message is a Falco alert (or a JSON array of them), the body `POST /` takes, and is stored
//! as `POST /` stores it (as sent, unless custom fields are to be merged). Messages are read in
//! batches; a batch is appended to the spool with one fsync, and only then are its
//! offsets committed. So a gateway that dies loses nothing: what it stored is in its spool
//! (delivered when it restarts), and what it had not stored is consumed again by whichever
//! replica gets the partition. The price is at-least-once: a crash between the fsync and the
//! commit stores a batch twice, and the copies carry the same uuid.
//!
//! A message that is not a valid alert, or is larger than `max_body_bytes`, is counted in
//! `peregrine_alerts_rejected_total`, logged with its partition and offset, and skipped: retrying
//! it would never succeed and would stop its partition for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peregrine_engine::raw_alert::RawAlert;
use peregrine_engine::{Alert, AlertId};
use peregrine_outputs::kafka::client::{self, Brokers, KafkaTls, Properties, Sasl};
use peregrine_outputs::settings::SettingsError;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::front::decode::{self, ForSpool};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::seen::keep;
use crate::spool::AppendError;

/// Messages stored with one fsync at most.
const MAX_BATCH: usize = 1000;
/// How long to wait before trying a full or failing spool again.
const APPEND_RETRY: Duration = Duration::from_secs(1);
/// How often the lag gauge is refreshed (one watermark request per assigned partition).
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for the broker's answer to a watermark or committed-offset request.
const LAG_TIMEOUT: Duration = Duration::from_secs(3);

/// Per partition, the offset after the last message this replica stored in its spool.
type StoredOffsets = Arc<Mutex<HashMap<i32, i64>>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaInputConfig {
    pub brokers: Brokers,
    pub topic: String,
    /// Every replica uses the same group, so each partition is read by one of them.
    #[serde(default = "default_group")]
    pub group_id: String,
    pub sasl: Option<Sasl>,
    pub tls: Option<KafkaTls>,
    /// librdkafka consumer properties, applied last.
    #[serde(default)]
    pub librdkafka: Properties,
}

fn default_group() -> String {
    "peregrine-gateway".to_string()
}

impl KafkaInputConfig {
    pub fn check(&self) -> Result<(), SettingsError> {
        client::check_topic(&self.topic)?;
        if self.group_id.is_empty() {
            return Err(SettingsError::new("group_id", "must not be empty"));
        }
        client::check_tls(self.tls.as_ref())?;
        // librdkafka checks its own property names and values when a client is made.
        let probe: rdkafka::consumer::BaseConsumer = self
            .client_config()
            .create()
            .map_err(|e| SettingsError::new("librdkafka", client::creation_error(&e)))?;
        drop(probe);
        Ok(())
    }

    fn client_config(&self) -> rdkafka::ClientConfig {
        client::client_config(
            &self.brokers,
            self.sasl.as_ref(),
            self.tls.as_ref(),
            &self.librdkafka,
            &[
                ("group.id", &self.group_id),
                // An offset is stored by hand once its alert is in the spool (after the
                // fsync); librdkafka commits stored offsets only, on its own timer, when
                // partitions are revoked in a rebalance and when the consumer closes. Each
                // batch also commits at once (below) to keep the duplicate window short.
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                // A new group starts at the beginning: alerts already in the topic count.
                ("auto.offset.reset", "earliest"),
            ],
        )
    }
}

/// Logs what the group does with this replica: partitions taken and given up, and commits
/// that failed (a failed commit means duplicates after the next rebalance).
struct GroupLog {
    stored: StoredOffsets,
}

impl ClientContext for GroupLog {}

impl ConsumerContext for GroupLog {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?partitions(tpl), "Kafka partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                // Another replica may move them on; if they come back, ask the broker again.
                let mut stored = self.stored.lock().expect("stored offsets lock");
                for p in partitions(tpl) {
                    stored.remove(&p);
                }
                tracing::info!(partitions = ?partitions(tpl), "Kafka partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Kafka rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = ?offsets.to_topic_map(), "Kafka offsets committed"),
            Err(e) => tracing::warn!(error = %e, "Kafka offset commit failed"),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Consumes until `stop`, storing each batch before committing its offsets. A message is held to
/// `max_body_bytes` as a request body is.
pub async fn run(
    config: KafkaInputConfig,
    intake: Intake,
    max_body_bytes: usize,
    stop: CancellationToken,
) {
    let stored = StoredOffsets::default();
    let consumer: Arc<StreamConsumer<GroupLog>> = match config.client_config().create_with_context(
        GroupLog {
            stored: stored.clone(),
        },
    ) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, topic = %config.topic, "cannot create the Kafka consumer");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[&config.topic]) {
        tracing::error!(error = %e, topic = %config.topic, "cannot subscribe to the Kafka topic");
        return;
    }
    tracing::info!(topic = %config.topic, group = %config.group_id, "consuming alerts from Kafka");
    let lag = tokio::spawn(keep_lag(
        consumer.clone(),
        stored.clone(),
        intake.metrics.clone(),
        stop.clone(),
    ));
    let mut batches = Batches {
        consumer: &consumer,
        max_bytes: max_body_bytes,
        carried: None,
    };
    while let Some(batch) = batches.next(&stop).await {
        if !store(&intake, &batch, max_body_bytes, &stop).await {
            // Stopping before the batch was stored: it is not committed, so it is read again.
            break;
        }
        {
            let mut next = stored.lock().expect("stored offsets lock");
            for m in &batch {
                next.insert(m.partition(), m.offset() + 1);
            }
        }
        for m in &batch {
            if let Err(e) = consumer.store_offset_from_message(m) {
                tracing::warn!(error = %e, "cannot store a Kafka offset");
            }
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(error = %e, "Kafka offset commit not sent");
        }
    }
    // The last batches' offsets, before leaving the group.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final Kafka offset commit");
    }
    lag.abort();
    tracing::info!(topic = %config.topic, "stopped consuming from Kafka");
}

/// Keeps `peregrine_input_kafka_lag`: per partition assigned to this replica, the messages
/// after the last one in its spool (the partition's high watermark minus the next offset to
/// store; before this replica stored any, its group's committed offset, else the partition's
/// start). Its own task, because the consumer stops reading while the spool is full, which is
/// when the gauge matters most.
async fn keep_lag(
    consumer: Arc<StreamConsumer<GroupLog>>,
    stored: StoredOffsets,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut shown: Vec<(String, i32)> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        let consumer = consumer.clone();
        let stored = stored.clone();
        // Broker round trips: off the async threads.
        let lags = tokio::task::spawn_blocking(move || partition_lags(&consumer, &stored)).await;
        let lags = match lags {
            Ok(Ok(lags)) => lags,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Kafka lag not measured this time");
                continue;
            }
            Err(_) => continue,
        };
        for (topic, partition) in &shown {
            if !lags.iter().any(|(t, p, _)| t == topic && p == partition) {
                let _ = metrics
                    .kafka_lag
                    .remove_label_values(&[topic, &partition.to_string()]);
            }
        }
        shown.clear();
        for (topic, partition, lag) in lags {
            metrics
                .kafka_lag
                .with_label_values(&[&topic, &partition.to_string()])
                .set(lag);
            shown.push((topic, partition));
        }
    }
}

fn partition_lags(
    consumer: &StreamConsumer<GroupLog>,
    stored: &StoredOffsets,
) -> rdkafka::error::KafkaResult<Vec<(String, i32, i64)>> {
    let assigned = consumer.assignment()?;
    let mut committed = None;
    let mut lags = Vec::new();
    for e in assigned.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), LAG_TIMEOUT)?;
        let known = stored
            .lock()
            .expect("stored offsets lock")
            .get(&e.partition())
            .copied();
        let next = match known {
            Some(next) => next,
            None => {
                if committed.is_none() {
                    committed = Some(consumer.committed_offsets(assigned.clone(), LAG_TIMEOUT)?);
                }
                let offset = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .map(|c| c.offset());
                match offset {
                    Some(Offset::Offset(n)) => n,
                    _ => low,
                }
            }
        };
        lags.push((e.topic().to_string(), e.partition(), (high - next).max(0)));
    }
    Ok(lags)
}

/// The consumer's messages in batches of at most [`MAX_BATCH`] messages and `max_bytes` of
/// payload, the most `POST /` takes in one body: the spool is at least that large, so a batch
/// always fits once the outputs have made room.
struct Batches<'c> {
    consumer: &'c StreamConsumer<GroupLog>,
    max_bytes: usize,
    /// The message that would have made the last batch too large: the next one starts with it.
    carried: Option<BorrowedMessage<'c>>,
}

impl<'c> Batches<'c> {
    /// Waits for a message, then takes whatever else has already arrived.
    async fn next(&mut self, stop: &CancellationToken) -> Option<Vec<BorrowedMessage<'c>>> {
        let first = match self.carried.take() {
            Some(m) => m,
            None => loop {
                let received = tokio::select! {
                    m = self.consumer.recv() => m,
                    _ = stop.cancelled() => return None,
                };
                match received {
                    Ok(m) => break m,
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
        };
        let mut bytes = payload_len(&first);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            // A zero timeout polls once: only messages already fetched are taken.
            match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    bytes += payload_len(&m);
                    if bytes > self.max_bytes {
                        self.carried = Some(m);
                        break;
                    }
                    batch.push(m);
                }
                _ => break,
            }
        }
        Some(batch)
    }
}

fn payload_len(m: &BorrowedMessage<'_>) -> usize {
    m.payload().map_or(0, <[u8]>::len)
}

/// Appends the batch's valid alerts durably, waiting out a full spool. False if stopped first.
async fn store(
    intake: &Intake,
    batch: &[BorrowedMessage<'_>],
    max_message_bytes: usize,
    stop: &CancellationToken,
) -> bool {
    let Decoded { raw, full } = decode_all(intake, batch, max_message_bytes);
    let before = raw.len() + full.len();
    // Skip ids stored lately (a redelivery) and ids repeated in this same batch.
    let ids = raw
        .iter()
        .map(|a| a.uuid.as_ref().map(AlertId::as_str))
        .chain(full.iter().map(|a| a.uuid.as_ref().map(AlertId::as_str)));
    let claim = intake.seen.claim(ids).await;
    let (keep_raw, keep_full) = claim.keep.split_at(raw.len());
    let (raw, full) = (keep(raw, keep_raw), keep(full, keep_full));
    if raw.len() + full.len() < before {
        tracing::info!(
            skipped = before - raw.len() - full.len(),
            "Kafka messages read again were already stored"
        );
    }
    // The two parts are appended one after the other; a part stored is not stored again
    // while the other waits for room.
    let (mut raw_stored, mut full_stored) = (raw.is_empty(), full.is_empty());
    while !(raw_stored && full_stored) {
        let result = if !raw_stored {
            let pending = intake.spool.prepare_append();
            intake
                .store_raw(raw.clone(), 0, pending)
                .await
                .map(|_| raw_stored = true)
        } else {
            let pending = intake.spool.prepare_append();
            intake
                .store(full.clone(), 0, pending)
                .await
                .map(|_| full_stored = true)
        };
        match result {
            Ok(()) => {}
            Err(AppendError::Closed) => return false,
            Err(e @ AppendError::TooLarge(_)) => {
                // Cannot be stored however long we wait (messages are held to max_body_bytes,
                // so only enormous custom fields get here): refuse the part, as POST / would.
                tracing::error!(error = %e, "alerts from Kafka refused");
                intake
                    .metrics
                    .rejected
                    .with_label_values(&["body_too_large"])
                    .inc();
                if raw_stored {
                    full_stored = true;
                } else {
                    raw_stored = true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot store alerts from Kafka yet; consumption waits");
                tokio::select! {
                    _ = tokio::time::sleep(APPEND_RETRY) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
    }
    claim.stored();
    true
}

/// A batch's alerts: checked in place and stored as sent when the intake allows it (no custom
/// fields to merge), as `POST /` does; decoded in full otherwise.
struct Decoded<'m> {
    raw: Vec<RawAlert<'m>>,
    full: Vec<Alert>,
}

fn decode_all<'m>(
    intake: &Intake,
    batch: &'m [BorrowedMessage<'_>],
    max_message_bytes: usize,
) -> Decoded<'m> {
    let mut decoded = Decoded {
        raw: Vec::new(),
        full: Vec::new(),
    };
    for m in batch {
        let Some(payload) = m.payload() else {
            continue; // a tombstone: nothing to store
        };
        if payload.len() > max_message_bytes {
            intake
                .metrics
                .rejected
                .with_label_values(&["body_too_large"])
                .inc();
            tracing::warn!(
                partition = m.partition(),
                offset = m.offset(),
                bytes = payload.len(),
                max_body_bytes = max_message_bytes,
                "skipped a Kafka message larger than max_body_bytes"
            );
            continue;
        }
        match decode::for_spool(payload, false, intake.takes_raw()) {
            Ok(ForSpool::AsSent(mut alerts)) => decoded.raw.append(&mut alerts),
            Ok(ForSpool::Decoded(mut alerts)) => decoded.full.append(&mut alerts),
            Err(e) => {
                intake.metrics.rejected.with_label_values(&[e.reason]).inc();
                tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    error = ?e.message,
                    "skipped a Kafka message that is not a Falco alert"
                );
            }
        }
    }
    decoded
}
