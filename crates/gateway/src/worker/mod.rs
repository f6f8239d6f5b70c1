//! One worker per output: read the spool from the output's cursor, pick the alerts its route
//! selects, deliver them with bounded concurrency through the shared retry core, dead-letter what
//! can never be delivered, and move the cursor.
//!
//! Each output reads the log independently, so a dead or black-holed destination only lets its
//! own backlog grow on disk; it never slows another output. How far it may grow before ingest
//! waits for it, or its oldest alerts go to its dead letters, is its [`BacklogLimit`].

pub mod backlog;
pub mod storm;
mod tracker;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peregrine_engine::Alert;
use peregrine_outputs::retry::{
    deliver_in_slots, AttemptObserver, AttemptSlot, AttemptSlots, Outcome, PauseGate, RetryPolicy,
};
use peregrine_outputs::{BatchLimits, Envelope, Failure, Output};
use prometheus::{Histogram, IntCounter};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::deadletter::{DeadLetter, DeadLetterFile};
use crate::metrics::Metrics;
use crate::routing::Route;
use crate::spool::{flags, split_replay, Position, Reader, StoredRecord};

pub use backlog::{BacklogLimit, BacklogPolicy};
pub use storm::{Storm, StormConfig, Verdict};
pub use tracker::{Progress, Tracker};

/// How much of the log a worker reads at once.
const READ_BYTES: usize = 256 * 1024;

/// Alerts per dead-letter write when a backlog is shed.
const SHED_CHUNK: usize = 1000;

/// How often an output that keeps shedding says so at warn level.
const SHED_WARN_EVERY: Duration = Duration::from_secs(60);

/// About how many alerts an output may have waiting for a retry besides the `max_in_flight`
/// batches it is sending. Waiting holds no delivery slot (a destination failing some requests
/// would otherwise leave the output's slots asleep in backoffs), so this bounds the waiting
/// instead, and with it what is sent again after a crash: the cursor records each one.
/// Sized by Little's law: with full-jitter backoff from 200 ms, an alert through a receiver
/// failing 30 % of requests waits 75 ms on average, so 4 096 waiting places carry ~50 000
/// alerts/s; 1 024 capped the drain at ~14 000/s (`make bench-flaky`: ratio 0.38 against 0.50).
const WAITING_ALERTS: usize = 4096;

/// The most batches an output may have under way, sending or waiting for a retry.
pub fn max_batches(max_in_flight: usize, max_events: usize) -> usize {
    max_in_flight + (WAITING_ALERTS / max_events.max(1)).max(max_in_flight)
}

/// What the rest of the gateway can see of a running output.
pub struct OutputStatus {
    pub name: String,
    pub kind: &'static str,
    tracker: Mutex<Tracker>,
    in_flight: AtomicI64,
    /// Acceptance time of the next alert waiting to be read, when one is buffered.
    next_waiting_ns: AtomicU64,
    gate: PauseGate,
    pub dead_letters: Arc<DeadLetterFile>,
    pub backlog: BacklogLimit,
    /// Which alerts it takes, for the console's view of an alert's deliveries.
    pub route: Route,
    /// Whether storm control may fold alerts into a digest.
    pub has_storm_control: bool,
}

impl OutputStatus {
    /// Its metric labels: `output` and `type`.
    pub fn labels(&self) -> [&str; 2] {
        [self.name.as_str(), self.kind]
    }

    /// Where the record `seq` is for this output.
    pub fn progress_of(&self, seq: u64) -> Progress {
        self.tracker.lock().expect("tracker lock").progress_of(seq)
    }

    /// Everything before this is finished. The cursor file may lag behind it until its next
    /// write; [`save_cursor`](Self::save_cursor) says what the file holds.
    pub fn committed(&self) -> Position {
        self.tracker.lock().expect("tracker lock").committed()
    }

    /// With `on_backlog_full: block`, the output's backlog in bytes when it is over its
    /// `max_backlog` (ingest then refuses alerts).
    pub fn blocking_backlog(&self, end: Position) -> Option<u64> {
        // Asked on every ingest request: outputs without a limit cost no tracker lock.
        if !self.backlog.blocks() {
            return None;
        }
        self.backlog.excess(self.committed().offset, end.offset)
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How long a destination's Retry-After still pauses the output.
    pub fn paused_for(&self) -> Option<Duration> {
        self.gate
            .paused_until()
            .map(|until| until.saturating_duration_since(tokio::time::Instant::now()))
    }

    pub fn is_paused(&self) -> bool {
        self.gate.paused_until().is_some()
    }

    /// Age of the oldest alert this output has not finished with.
    pub fn oldest_pending_age(&self) -> Duration {
        let in_flight = self
            .tracker
            .lock()
            .expect("tracker lock")
            .oldest_in_flight_ns();
        let waiting = match self.next_waiting_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        };
        let oldest = match (in_flight, waiting) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        if oldest == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(now_ns().saturating_sub(oldest))
    }

    /// Writes a moved cursor and makes it durable (the sync runs without the tracker's lock).
    /// Returns the position the saved cursor holds: what compaction may release before (the
    /// output's [`committed`](Self::committed) may be ahead of the file by then).
    pub fn save_cursor(&self) -> std::io::Result<Position> {
        let (handle, saved) = {
            let mut tracker = self.tracker.lock().expect("tracker lock");
            if tracker.is_dirty() {
                tracker.persist()?;
            }
            (
                tracker.cursor().sync_handle()?,
                tracker.cursor().committed(),
            )
        };
        handle.sync_data()?;
        Ok(saved)
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Everything a worker needs.
pub struct Worker {
    pub output: Arc<dyn Output>,
    pub route: Route,
    pub policy: RetryPolicy,
    pub max_in_flight: usize,
    pub reader: Reader,
    pub dead_letters: Arc<DeadLetterFile>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<OutputStatus>,
    /// Storm control, for outputs configured with `dedup`.
    pub storm: Option<Storm>,
}

impl Worker {
    pub fn status(
        name: &str,
        kind: &'static str,
        tracker: Tracker,
        dead_letters: Arc<DeadLetterFile>,
        backlog: BacklogLimit,
        route: Route,
        has_storm_control: bool,
    ) -> Arc<OutputStatus> {
        Arc::new(OutputStatus {
            dead_letters,
            backlog,
            route,
            has_storm_control,
            name: name.to_string(),
            kind,
            tracker: Mutex::new(tracker),
            in_flight: AtomicI64::new(0),
            next_waiting_ns: AtomicU64::new(0),
            gate: PauseGate::default(),
        })
    }

    /// Runs until `stop` is cancelled, then gives in-flight deliveries `grace` to finish. Alerts
    /// still unfinished after that stay in the spool for the next start.
    pub async fn run(mut self, stop: CancellationToken, grace: Duration) {
        let limits = self.output.batch_limits();
        let batches = Arc::new(Semaphore::new(max_batches(
            self.max_in_flight,
            limits.max_events,
        )));
        let shared = self.delivering(&stop);
        let mut pending = Pending::default();
        let mut ends = self.reader.watch_end();
        let mut tasks = JoinSet::new();
        // Every alert before this log offset has been shed (or is being: cancelled batches
        // settle on their own), so it no longer counts in the backlog.
        let mut shed_through = 0;
        let mut warned_at = None;

        loop {
            while tasks.try_join_next().is_some() {}
            let end = ends.borrow().offset;
            if let Some(before) = self.shed_before(end, shed_through) {
                shed_through = before;
                self.shed(before, &shared, &mut pending, &mut warned_at)
                    .await;
                continue;
            }
            if pending.carried.is_none() && pending.digests.is_empty() {
                tokio::select! {
                    _ = self.wait_for_work(&mut pending) => continue,
                    _ = stop.cancelled() => break,
                }
            }
            let (room, slot) = match self
                .ready(&batches, &shared.slots, &mut ends, shed_through, &stop)
                .await
            {
                Wake::Ready(ready) => ready,
                Wake::Overflow => continue,
                Wake::Stop => break,
            };
            let batch = tokio::select! {
                batch = self.next_batch(&mut pending, limits) => batch,
                _ = stop.cancelled() => break,
            };
            let overflow = shared.track(&batch);
            let shared = shared.clone();
            tasks.spawn(async move {
                shared.deliver(batch, overflow, slot).await;
                drop(room);
            });
        }
        self.finish(tasks, grace).await;
    }

    /// What every delivery task of this worker shares.
    fn delivering(&self, stop: &CancellationToken) -> Arc<Delivering> {
        Arc::new(Delivering {
            output: self.output.clone(),
            policy: self.policy,
            dead_letters: self.dead_letters.clone(),
            metrics: self.metrics.clone(),
            status: self.status.clone(),
            counters: DeliveryMetrics::new(&self.metrics, &self.status),
            logged: Mutex::new(HashSet::new()),
            stop: stop.clone(),
            slots: AttemptSlots::new(self.max_in_flight),
            batches: self.status.backlog.sheds().then(Mutex::default),
            restarts_counted: AtomicU64::new(0),
        })
    }

    /// Waits until a batch may be sent: room for one more batch under way, a free delivery
    /// slot, no pause from a `Retry-After`, and a paced output's token due. The batch is
    /// gathered only then, so the alerts that arrived meanwhile travel together.
    async fn ready(
        &self,
        batches: &Arc<Semaphore>,
        slots: &AttemptSlots,
        ends: &mut watch::Receiver<Position>,
        shed_through: u64,
        stop: &CancellationToken,
    ) -> Wake<(OwnedSemaphorePermit, AttemptSlot)> {
        let room = match self
            .wait(batches.clone().acquire_owned(), ends, shed_through, stop)
            .await
        {
            Wake::Ready(room) => room.expect("semaphore never closes"),
            Wake::Overflow => return Wake::Overflow,
            Wake::Stop => return Wake::Stop,
        };
        let slot = match self.wait(slots.take(), ends, shed_through, stop).await {
            Wake::Ready(slot) => slot,
            Wake::Overflow => return Wake::Overflow,
            Wake::Stop => return Wake::Stop,
        };
        let paused = self.wait(self.status.gate.wait(), ends, shed_through, stop);
        if let Some(stopped) = paused.await.interrupted() {
            return stopped;
        }
        let paced = self.wait(self.output.ready(), ends, shed_through, stop);
        if let Some(stopped) = paced.await.interrupted() {
            return stopped;
        }
        Wake::Ready((room, slot))
    }

    /// Waits up to `grace` for the deliveries in flight, then saves the cursor.
    async fn finish(&self, mut tasks: JoinSet<()>, grace: Duration) {
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                output = %self.status.name,
                alerts = self.status.in_flight(),
                "shutdown grace over; unfinished alerts stay in the spool for the next start"
            );
            tasks.abort_all();
        }
        if let Err(e) = self.status.save_cursor() {
            tracing::error!(output = %self.status.name, error = %e, "could not save the cursor");
        }
    }

    /// Waits for `ready`, unless the worker is stopped or the backlog must be shed first.
    async fn wait<T>(
        &self,
        ready: impl Future<Output = T>,
        ends: &mut watch::Receiver<Position>,
        shed_through: u64,
        stop: &CancellationToken,
    ) -> Wake<T> {
        let overflow = async {
            loop {
                let end = ends.borrow_and_update().offset;
                if self.shed_before(end, shed_through).is_some() {
                    return;
                }
                if ends.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => Wake::Stop,
            _ = overflow, if self.status.backlog.sheds() => {
                Wake::Overflow
            }
            value = ready => Wake::Ready(value),
        }
    }

    /// With `dead_letter_oldest`, when the backlog (from the cursor, or from what was already
    /// shed) to the log's `end` is over the limit: the offset before which alerts must go.
    fn shed_before(&self, end: u64, shed_through: u64) -> Option<u64> {
        // Asked before every batch: outputs that never shed cost no tracker lock.
        if !self.status.backlog.sheds() {
            return None;
        }
        let from = self.status.committed().offset.max(shed_through);
        self.status.backlog.shed_before(from, end)
    }

    /// Moves every alert before log offset `before` that this output would still send to its
    /// dead letters, with reason `overflow`: batches in flight that hold one are cancelled (and
    /// dead-letter themselves), and alerts not sent yet are read and written out in chunks.
    /// A backlog that stays at its limit is shed again and again: that is said at warn level
    /// once a minute (`warned_at`), and counted in the dead-letter metrics each time.
    async fn shed(
        &mut self,
        before: u64,
        shared: &Arc<Delivering>,
        pending: &mut Pending,
        warned_at: &mut Option<std::time::Instant>,
    ) {
        let end = self.reader.watch_end().borrow().offset;
        let backlog = end.saturating_sub(self.status.committed().offset);
        let cancelled = shared.cancel_batches_before(before);
        let (name, max) = (&self.status.name, self.status.backlog.max_bytes);
        if warned_at.is_some_and(|at| at.elapsed() < SHED_WARN_EVERY) {
            tracing::debug!(output = %name, backlog, max_backlog = max, cancelled_batches = cancelled, "shedding the backlog");
        } else {
            *warned_at = Some(std::time::Instant::now());
            tracing::warn!(
                output = %name,
                backlog,
                max_backlog = max,
                cancelled_batches = cancelled,
                "the output is over its max_backlog: its oldest alerts go to its dead letters (reason overflow); `peregrine-gateway dead-letters replay` sends them again"
            );
        }
        let mut chunk = Vec::new();
        if let Some(item) = pending
            .carried
            .take_if(|i| i.position.is_some_and(|p| p.offset < before))
        {
            chunk.push(item);
        }
        while !shared.stop.is_cancelled() {
            let Some(front) = pending.records.front() else {
                if self.reader.position().offset >= before {
                    break;
                }
                match self.reader.read(READ_BYTES).await {
                    Ok(records) => pending.records.extend(records),
                    Err(e) => {
                        tracing::error!(output = %self.status.name, error = %e, "cannot read the spool to shed the backlog");
                        break;
                    }
                }
                continue;
            };
            if front.position.offset >= before {
                break;
            }
            let record = pending.records.pop_front().expect("not empty");
            chunk.extend(self.admit(record, &mut pending.digests));
            if chunk.len() >= SHED_CHUNK {
                shared.overflowed(std::mem::take(&mut chunk)).await;
            }
        }
        if !chunk.is_empty() {
            shared.overflowed(chunk).await;
        }
        self.note_waiting(&pending.records);
    }

    /// The next batch of alerts this output's route selects, as the output's limits allow.
    /// Waits for the first alert; after it, waits at most `max_wait` for the batch to fill (with
    /// no `max_wait`, it still takes the alerts already read, up to `max_events`). Digests of
    /// closed storm windows go first.
    async fn next_batch(&mut self, pending: &mut Pending, limits: BatchLimits) -> Vec<Item> {
        let mut batch: Vec<Item> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline = None;
        if let Some(item) = pending.carried.take() {
            bytes += item.envelope.json.len();
            batch.push(item);
        }
        loop {
            while batch.len() < limits.max_events {
                let Some(digest) = pending.digests.pop_front() else {
                    break;
                };
                batch.push(Item {
                    position: None,
                    accepted_at_ns: now_ns(),
                    envelope: Envelope::new(digest),
                });
            }
            if batch.len() >= limits.max_events {
                return batch;
            }
            // The wait for company starts with the batch's first item, whether that is the
            // alert carried over, a digest or an alert read now.
            if deadline.is_none() && !batch.is_empty() {
                deadline = Some(tokio::time::Instant::now() + limits.max_wait);
            }
            if pending.records.is_empty() {
                if !batch.is_empty() && limits.max_wait.is_zero() {
                    return batch;
                }
                if !self.read_more(pending, deadline).await {
                    return batch;
                }
                continue;
            }
            let record = pending.records.pop_front().expect("not empty");
            let Some(item) = self.admit(record, &mut pending.digests) else {
                continue;
            };
            let len = item.envelope.json.len();
            if !batch.is_empty() && bytes + len > limits.max_bytes {
                pending.carried = Some(item);
                return batch;
            }
            bytes += len;
            batch.push(item);
            self.note_waiting(&pending.records);
            if batch.len() >= limits.max_events {
                return batch;
            }
        }
    }

    /// Waits until this output has something to send: an alert admitted (kept in
    /// `pending.carried`, where the next batch starts) or a storm digest. The worker waits
    /// here before it takes a delivery slot, so an idle output holds none: a batch waiting
    /// for its retry needs one.
    async fn wait_for_work(&mut self, pending: &mut Pending) {
        while pending.carried.is_none() && pending.digests.is_empty() {
            match pending.records.pop_front() {
                Some(record) => {
                    pending.carried = self.admit(record, &mut pending.digests);
                    self.note_waiting(&pending.records);
                }
                None => {
                    self.read_more(pending, None).await;
                }
            }
        }
    }

    /// Reads more records from the log into `pending`, or the digests of storm windows that
    /// ended meanwhile. Returns `false`, having read nothing, when `deadline` comes first.
    async fn read_more(
        &mut self,
        pending: &mut Pending,
        deadline: Option<tokio::time::Instant>,
    ) -> bool {
        let window_end = self.storm.as_ref().and_then(Storm::next_end_ns).map(|end| {
            tokio::time::Instant::now() + Duration::from_nanos(end.saturating_sub(now_ns()))
        });
        let read = tokio::select! {
            read = self.reader.read(READ_BYTES) => Some(read),
            _ = sleep_until_or_never(deadline) => return false,
            _ = sleep_until_or_never(window_end) => None,
        };
        match read {
            // Nothing left to read and a storm window is over: everything accepted before its
            // end has been seen.
            None => {
                let storm = self
                    .storm
                    .as_mut()
                    .expect("a window end implies storm control");
                pending.digests.extend(storm.close_until(now_ns()));
            }
            Some(Ok(records)) => pending.records.extend(records),
            Some(Err(e)) => {
                tracing::error!(output = %self.status.name, error = %e, "cannot read the spool; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        self.note_waiting(&pending.records);
        true
    }

    /// Takes one record from the log: skips what this output does not send (finished in the
    /// previous run, another output's replay, not routed here, held back by storm control) and
    /// starts tracking the rest, which it returns ready to deliver.
    fn admit(&mut self, record: StoredRecord, digests: &mut VecDeque<Alert>) -> Option<Item> {
        let next = record.next_position();
        {
            let mut tracker = self.status.tracker.lock().expect("tracker lock");
            if tracker.finished_before(record.position.seq) {
                tracker.skipped(next);
                return None;
            }
        }
        if let Some(storm) = self.storm.as_mut() {
            digests.extend(storm.close_until(record.accepted_at_ns));
        }
        let replay = record.flags & flags::REPLAY != 0;
        let payload = if replay {
            match split_replay(&record.payload) {
                Some((target, start)) if target == self.status.name => {
                    record.payload.slice(start..)
                }
                _ => {
                    self.skip(next);
                    return None;
                }
            }
        } else {
            record.payload.clone()
        };
        // Test alerts go everywhere, and a replay is the operator's choice: neither is
        // routed or held back by storm control.
        let is_test = record.flags & flags::TEST != 0 || replay;
        let envelope = if self.needs_fields(is_test) {
            let alert = match Alert::from_json_slice(&payload) {
                Ok(alert) => Arc::new(alert),
                Err(e) => {
                    // The gateway validated this JSON before storing it and the record's
                    // checksum held, so this is a bug; say so loudly rather than stall the output.
                    tracing::error!(output = %self.status.name, seq = record.position.seq, error = %e, "stored alert does not decode; skipping it");
                    self.skip(next);
                    return None;
                }
            };
            if !self.selects(&alert, is_test, record.accepted_at_ns) {
                self.skip(next);
                return None;
            }
            Envelope::decoded(alert, payload)
        } else {
            // Nothing here reads the alert: it goes out as stored, decoded only if the
            // output's error path ever asks for it.
            Envelope::stored(payload)
        };
        self.status.tracker.lock().expect("tracker lock").started(
            record.position,
            next,
            record.accepted_at_ns,
        );
        Some(Item {
            position: Some(record.position),
            accepted_at_ns: record.accepted_at_ns,
            envelope,
        })
    }

    /// Whether admitting an alert needs its fields: for the output itself, its route or its
    /// storm control. Decoding every stored alert once per output was a tenth of the gateway's
    /// CPU per delivery for webhooks, which forward the stored JSON as it is.
    fn needs_fields(&self, is_test: bool) -> bool {
        self.output.reads_alert() || (!is_test && (!self.route.is_all() || self.storm.is_some()))
    }

    /// Whether the output takes this alert: its route selects it and storm control lets it
    /// through (counting the ones they hold back).
    fn selects(&mut self, alert: &Arc<Alert>, is_test: bool, accepted_at_ns: u64) -> bool {
        if is_test {
            return true;
        }
        if !self.route.matches(alert) {
            self.metrics
                .filtered
                .with_label_values(&self.status.labels())
                .inc();
            return false;
        }
        if let Some(storm) = self.storm.as_mut() {
            if storm.admit(alert, accepted_at_ns) == Verdict::Suppress {
                self.metrics
                    .suppressed
                    .with_label_values(&self.status.labels())
                    .inc();
                return false;
            }
        }
        true
    }

    /// Moves past a record this output does not send.
    fn skip(&self, next: Position) {
        self.status
            .tracker
            .lock()
            .expect("tracker lock")
            .skipped(next);
    }

    fn note_waiting(&self, buffered: &VecDeque<StoredRecord>) {
        let ns = buffered.front().map_or(0, |r| r.accepted_at_ns);
        self.status.next_waiting_ns.store(ns, Ordering::Relaxed);
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a worker waiting for something woke up to.
enum Wake<T> {
    Ready(T),
    /// The backlog is over the limit: shed it first.
    Overflow,
    Stop,
}

impl Wake<()> {
    /// The wake-up that interrupts a wait for something else, if this was not `Ready`.
    fn interrupted<U>(self) -> Option<Wake<U>> {
        match self {
            Wake::Ready(()) => None,
            Wake::Overflow => Some(Wake::Overflow),
            Wake::Stop => Some(Wake::Stop),
        }
    }
}

/// Alerts taken from the log but not yet in a batch.
#[derive(Default)]
struct Pending {
    /// Records read and not yet looked at.
    records: VecDeque<StoredRecord>,
    /// Digests of closed storm windows, sent first.
    digests: VecDeque<Alert>,
    /// An alert taken for delivery that did not fit in the last batch; it starts the next.
    carried: Option<Item>,
}

/// One alert in a batch.
struct Item {
    /// Where the alert is in the spool; `None` for a storm digest, which only exists in memory.
    position: Option<Position>,
    accepted_at_ns: u64,
    envelope: Envelope,
}

/// What a delivery task shares with its worker.
struct Delivering {
    output: Arc<dyn Output>,
    policy: RetryPolicy,
    dead_letters: Arc<DeadLetterFile>,
    metrics: Arc<Metrics>,
    status: Arc<OutputStatus>,
    counters: DeliveryMetrics,
    /// Dead-letter reasons already logged at warn level: a misconfigured destination
    /// (`channel_not_found`) says so once, not once per alert.
    logged: Mutex<HashSet<String>>,
    /// The worker's stop: a dead-letter write that keeps failing gives up only then.
    stop: CancellationToken,
    /// The output's `max_in_flight` attempts at once.
    slots: AttemptSlots,
    /// Batches in flight by their first alert's log offset, each with the token that cancels it
    /// when the output sheds its backlog; `None` for an output that never sheds, which then
    /// spends nothing per batch on it.
    batches: Option<Mutex<BTreeMap<u64, CancellationToken>>>,
    /// The output's restart count last added to the metric.
    restarts_counted: AtomicU64,
}

/// The metrics counted per delivery, with the output's labels already looked up: a lookup
/// hashes both labels under a lock, twice per delivered alert.
struct DeliveryMetrics {
    sent: IntCounter,
    delivery_seconds: Histogram,
    retries: IntCounter,
}

impl DeliveryMetrics {
    fn new(metrics: &Metrics, status: &OutputStatus) -> Self {
        let labels = status.labels();
        DeliveryMetrics {
            sent: metrics.sent.with_label_values(&labels),
            delivery_seconds: metrics.delivery_seconds.with_label_values(&labels),
            retries: metrics.retries.with_label_values(&labels),
        }
    }
}

/// Tries at a batch that panicked before it is dead-lettered.
const PANIC_ATTEMPTS: u32 = 3;

/// A future that turns a panic into an error, so one batch's bug cannot pin its alerts.
struct CatchPanic<'a, T>(std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>);

impl<T> Future for CatchPanic<'_, T> {
    type Output = Result<T, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                std::task::Poll::Ready(Err(message))
            }
        }
    }
}

/// Why an alert shed from an output's backlog was dead-lettered. `attempts` is 0: the alert's
/// delivery was given up, not tried to the end.
fn overflow_outcome() -> Outcome {
    let failure = Failure::new(
        None,
        "the output's backlog passed its max_backlog; its oldest alerts were moved to dead letters",
    )
    .with_code("overflow");
    Outcome::DeadLetter {
        failure,
        attempts: 0,
    }
}

/// A bounded word for why an alert was dead-lettered: the output's code (`channel_not_found`),
/// else the HTTP status, else `error`. Never free text from the destination.
fn reason_label(f: &Failure) -> String {
    match (f.code, f.status) {
        (Some(code), _) => code.to_string(),
        (None, Some(status)) => format!("http_{status}"),
        (None, None) => "error".to_string(),
    }
}

impl AttemptObserver for Delivering {
    fn retrying(&self, failure: &Failure, alerts: usize) {
        self.counters.retries.inc_by(alerts as u64);
        self.count_restarts();
        tracing::debug!(output = %self.status.name, failure = ?failure.to_string(), alerts, "delivery failed; retrying");
    }
}

impl Delivering {
    /// Adds the output's restarts since the last look to `peregrine_output_plugin_restarts_total`
    /// (batches in flight at once may look together: each restart is added once).
    fn count_restarts(&self) {
        let restarts = self.output.restarts();
        let counted = self.restarts_counted.fetch_max(restarts, Ordering::Relaxed);
        if restarts > counted {
            self.metrics
                .plugin_restarts
                .with_label_values(&self.status.labels())
                .inc_by(restarts - counted);
        }
    }

    /// Delivers `batch` and settles every alert in it: delivered, or dead-lettered. `overflow`
    /// cancels the delivery when the output sheds its backlog: the batch is dead-lettered with
    /// reason `overflow` (alerts an earlier attempt delivered may then be in the dead letters
    /// too; their uuids let a receiver drop the copies after a replay).
    async fn deliver(
        self: Arc<Self>,
        batch: Vec<Item>,
        overflow: Option<CancellationToken>,
        slot: AttemptSlot,
    ) {
        let n = batch.len() as i64;
        self.status.in_flight.fetch_add(n, Ordering::Relaxed);
        let envelopes: Vec<Envelope> = batch.iter().map(|i| i.envelope.clone()).collect();
        let outcomes = match &overflow {
            Some(overflow) => tokio::select! {
                biased;
                _ = overflow.cancelled() => vec![overflow_outcome(); batch.len()],
                outcomes = self.attempt(&envelopes, slot) => outcomes,
            },
            None => self.attempt(&envelopes, slot).await,
        };
        self.settle(batch.iter(), outcomes).await;
        self.count_restarts();
        if let (Some(batches), Some(first)) = (&self.batches, batch.iter().find_map(|i| i.position))
        {
            batches.lock().expect("batches lock").remove(&first.offset);
        }
        self.status.in_flight.fetch_sub(n, Ordering::Relaxed);
    }

    /// One delivery through the retry core, the first attempt in `slot`. A panic in the output
    /// (a bug) is retried [`PANIC_ATTEMPTS`] times, then the batch is dead-lettered with reason
    /// `panic`: its alerts never stay pinned in the spool.
    async fn attempt(&self, envelopes: &[Envelope], slot: AttemptSlot) -> Vec<Outcome> {
        let mut first = Some(slot);
        for attempt in 1..=PANIC_ATTEMPTS {
            let attempted = CatchPanic(Box::pin(deliver_in_slots(
                self.output.as_ref(),
                envelopes,
                &self.policy,
                &self.status.gate,
                self,
                Some((&self.slots, first.take())),
            )))
            .await;
            match attempted {
                Ok(outcomes) => return outcomes,
                Err(message) => {
                    tracing::error!(output = %self.status.name, attempt, panic = ?message, alerts = envelopes.len(), "the output panicked delivering a batch");
                    self.metrics
                        .panics
                        .with_label_values(&self.status.labels())
                        .inc();
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
        let failure = Failure::new(None, "the output panicked on every attempt at this batch")
            .with_code("panic");
        vec![
            Outcome::DeadLetter {
                failure,
                attempts: PANIC_ATTEMPTS,
            };
            envelopes.len()
        ]
    }

    /// Registers a batch about to be delivered, for an output that may shed its backlog: the
    /// token cancels the batch when it does.
    fn track(&self, batch: &[Item]) -> Option<CancellationToken> {
        let batches = self.batches.as_ref()?;
        let token = CancellationToken::new();
        if let Some(first) = batch.iter().find_map(|i| i.position) {
            batches
                .lock()
                .expect("batches lock")
                .insert(first.offset, token.clone());
        }
        Some(token)
    }

    /// Cancels the batches in flight that hold an alert before log offset `before`.
    fn cancel_batches_before(&self, before: u64) -> usize {
        let Some(batches) = &self.batches else {
            return 0;
        };
        let batches = batches.lock().expect("batches lock");
        batches.range(..before).map(|(_, t)| t.cancel()).count()
    }

    /// Dead-letters alerts shed from the backlog before they were sent.
    async fn overflowed(&self, items: Vec<Item>) {
        let outcomes = vec![overflow_outcome(); items.len()];
        self.settle(items.iter(), outcomes).await;
    }

    /// Records each alert's fate and moves the cursor past the settled ones.
    async fn settle(&self, batch: impl Iterator<Item = &Item>, outcomes: Vec<Outcome>) {
        let mut finished = Vec::with_capacity(outcomes.len());
        let mut dead = Vec::new();
        let now = now_ns();
        for (item, outcome) in batch.zip(&outcomes) {
            match outcome {
                Outcome::Delivered if item.position.is_none() => {
                    self.metrics
                        .digests
                        .with_label_values(&self.status.labels())
                        .inc();
                }
                Outcome::Delivered => {
                    self.counters.sent.inc();
                    let secs = now.saturating_sub(item.accepted_at_ns) as f64 / 1e9;
                    self.counters.delivery_seconds.observe(secs);
                    finished.extend(item.position);
                }
                Outcome::DeadLetter { failure, attempts } => dead.push((item, failure, *attempts)),
            }
        }

        if !dead.is_empty() && self.write_dead_letters(&dead).await {
            for (item, failure, _) in &dead {
                let reason = reason_label(failure);
                let [name, kind] = self.status.labels();
                self.metrics
                    .dead_lettered_by_reason
                    .with_label_values(&[name, kind, &reason])
                    .inc();
                let first = self
                    .logged
                    .lock()
                    .expect("logged lock")
                    .insert(reason.clone());
                if first {
                    tracing::warn!(
                        output = %self.status.name,
                        %reason,
                        uuid = ?item.envelope.id(),
                        rule = ?item.envelope.alert().rule,
                        failure = ?failure.to_string(),
                        "alert dead-lettered; later alerts dead-lettered for the same reason are counted in peregrine_output_dead_lettered_by_reason_total and logged at debug level"
                    );
                } else {
                    tracing::debug!(output = %self.status.name, %reason, uuid = ?item.envelope.id(), failure = ?failure.to_string(), "alert dead-lettered");
                }
                finished.extend(item.position);
            }
            self.metrics
                .dead_lettered
                .with_label_values(&self.status.labels())
                .inc_by(dead.len() as u64);
        }

        if let Err(e) = self
            .status
            .tracker
            .lock()
            .expect("tracker lock")
            .finished(finished)
        {
            tracing::error!(output = %self.status.name, error = %e, "could not write the cursor; alerts may be delivered again after a restart");
        }
    }

    /// Writes dead letters durably, trying again (with backoff, counted) until it succeeds: a
    /// full or failing disk delays the cursor, never drops the alerts and never pins them. False
    /// only when the gateway stops first; the alerts then stay in the spool for the next start.
    async fn write_dead_letters(&self, dead: &[(&Item, &Failure, u32)]) -> bool {
        let mut wait = Duration::from_millis(500);
        loop {
            match self.try_write_dead_letters(dead).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::error!(output = %self.status.name, error = %e, path = %self.dead_letters.path().display(), retry_in = ?wait, "cannot write dead letters; the alerts stay in the spool until it works");
                    self.metrics
                        .dead_letter_write_errors
                        .with_label_values(&self.status.labels())
                        .inc();
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.cancelled() => return false,
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    async fn try_write_dead_letters(&self, dead: &[(&Item, &Failure, u32)]) -> std::io::Result<()> {
        let owned: Vec<(Option<u16>, String, String, u32, bytes::Bytes)> = dead
            .iter()
            .map(|(item, f, attempts)| {
                (
                    f.status,
                    reason_label(f),
                    f.reason.clone(),
                    *attempts,
                    item.envelope.json.clone(),
                )
            })
            .collect();
        let file = self.dead_letters.clone();
        let written = tokio::task::spawn_blocking(move || {
            let entries: Vec<DeadLetter<'_>> = owned
                .iter()
                .map(|(status, code, reason, attempts, json)| DeadLetter {
                    status: *status,
                    code,
                    reason,
                    attempts: *attempts,
                    alert_json: json,
                })
                .collect();
            file.write(&entries)
        })
        .await;
        written.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use peregrine_outputs::Delivery;

    use super::*;
    use crate::spool::CursorFile;

    /// An output with a bug: it panics on its first `panics` attempts, then delivers.
    struct Buggy {
        panics: u32,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Output for Buggy {
        fn kind(&self) -> &'static str {
            "webhook"
        }

        async fn deliver(&self, _batch: &[Envelope]) -> Delivery {
            if self.calls.fetch_add(1, Ordering::Relaxed) < self.panics {
                panic!("index out of bounds in the encoder");
            }
            Delivery::Delivered
        }
    }

    fn item(seq: u64) -> Item {
        let mut alert = Alert::from_json(serde_json::json!({"output": "o", "priority": "Warning",
            "rule": "r", "time": "2026-12-03T10:00:00Z", "output_fields": {}}))
        .unwrap();
        alert.uuid = Some(peregrine_engine::AlertId::generate());
        Item {
            position: Some(Position {
                offset: seq * 100,
                seq,
            }),
            accepted_at_ns: 0,
            envelope: Envelope::new(alert),
        }
    }

    fn delivering(dir: &std::path::Path, panics: u32) -> Arc<Delivering> {
        let cursor = CursorFile::open_or_create(&dir.join("c"), Position::default(), 8).unwrap();
        let dead_letters = Arc::new(
            DeadLetterFile::open(&dir.join("dl.jsonl"), "hook", Default::default()).unwrap(),
        );
        let status = Worker::status(
            "hook",
            "webhook",
            Tracker::new(cursor),
            dead_letters.clone(),
            BacklogLimit::default(),
            Route::all(),
            false,
        );
        {
            let mut tracker = status.tracker.lock().unwrap();
            for seq in 0..2 {
                let next = Position {
                    offset: (seq + 1) * 100,
                    seq: seq + 1,
                };
                tracker.started(item(seq).position.unwrap(), next, 0);
            }
        }
        let metrics = Arc::new(Metrics::new());
        Arc::new(Delivering {
            output: Arc::new(Buggy {
                panics,
                calls: AtomicU32::new(0),
            }),
            policy: RetryPolicy::default(),
            dead_letters,
            counters: DeliveryMetrics::new(&metrics, &status),
            metrics,
            status,
            logged: Mutex::new(HashSet::new()),
            stop: CancellationToken::new(),
            slots: AttemptSlots::new(1),
            batches: None,
            restarts_counted: AtomicU64::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_panicked_is_tried_again() {
        let tmp = tempfile::tempdir().unwrap();
        let d = delivering(tmp.path(), 1);
        let slot = d.slots.take().await;
        d.clone().deliver(vec![item(0), item(1)], None, slot).await;
        assert_eq!(d.status.committed().seq, 2, "both alerts settled");
        assert_eq!(
            d.metrics.sent.with_label_values(&d.status.labels()).get(),
            2
        );
        assert_eq!(
            d.metrics.panics.with_label_values(&d.status.labels()).get(),
            1
        );
        assert_eq!(d.status.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_always_panics_is_dead_lettered_not_pinned() {
        let tmp = tempfile::tempdir().unwrap();
        let d = delivering(tmp.path(), u32::MAX);
        let slot = d.slots.take().await;
        d.clone().deliver(vec![item(0), item(1)], None, slot).await;
        assert_eq!(d.status.committed().seq, 2, "the cursor moves past them");
        let lines = std::fs::read_to_string(tmp.path().join("dl.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 2);
        assert!(lines.contains("the output panicked on every attempt"));
        let reason = d
            .metrics
            .dead_lettered_by_reason
            .with_label_values(&["hook", "webhook", "panic"])
            .get();
        assert_eq!(reason, 2);
    }
}
