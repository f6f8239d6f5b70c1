//! The outputs that are running: start one, stop one, and bring the set in line with a new
//! configuration.
//!
//! An output is known by its name, which names its cursor and dead-letter files: an output that
//! is stopped and started again under the same name resumes where it stopped, with its backlog.
//! A reload therefore restarts only outputs whose settings changed, starts new names and stops
//! names that are gone; the others keep running untouched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use peregrine_outputs::BuildContext;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::OutputConfig;
use crate::deadletter::{DeadLetterFile, DeadLetterLimits, DeadLettered};

/// Dead-letter events buffered for a slow console before the oldest are dropped.
const DEAD_LETTER_EVENTS: usize = 1024;
use crate::metrics::Metrics;
use crate::spool::Spool;
use crate::worker::{OutputStatus, Storm, Tracker, Worker};
use crate::GatewayError;

/// How long past its grace a stopping worker may take before it is aborted.
const STUCK_MARGIN: Duration = Duration::from_secs(5);

/// One running output.
struct Running {
    config: OutputConfig,
    status: Arc<OutputStatus>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What changed when the set was brought in line with a configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

pub struct OutputSet {
    spool: Spool,
    metrics: Arc<Metrics>,
    delivery: Handle,
    /// Cancelled at shutdown; every output's own stop token is a child of it.
    stop: CancellationToken,
    running: HashMap<String, Running>,
    /// How long a stopping output's deliveries in flight may take (`shutdown_grace`).
    grace: Duration,
    /// How much each output's dead letters may hold.
    dead_letter: DeadLetterLimits,
    /// In configuration order, for `/metrics`, `/readyz` and compaction.
    statuses: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
    /// Every output's dead-letter events, for the console.
    dead_lettered: tokio::sync::broadcast::Sender<DeadLettered>,
}

impl OutputSet {
    pub fn new(
        spool: Spool,
        metrics: Arc<Metrics>,
        delivery: Handle,
        stop: CancellationToken,
    ) -> Self {
        OutputSet {
            spool,
            metrics,
            delivery,
            stop,
            running: HashMap::new(),
            grace: Duration::from_secs(10),
            dead_letter: DeadLetterLimits::default(),
            statuses: Arc::new(ArcSwap::from_pointee(Vec::new())),
            dead_lettered: tokio::sync::broadcast::channel(DEAD_LETTER_EVENTS).0,
        }
    }

    /// Events for alerts dead-lettered by any output from now on (a receiver that lags loses
    /// the oldest: they feed a view, the dead-letter files hold the truth).
    pub fn dead_lettered(&self) -> tokio::sync::broadcast::Receiver<DeadLettered> {
        self.dead_lettered.subscribe()
    }

    /// The running outputs' status, replaced whenever the set changes.
    pub fn statuses(&self) -> Arc<ArcSwap<Vec<Arc<OutputStatus>>>> {
        self.statuses.clone()
    }

    /// Starts, restarts and stops outputs so that exactly `outputs` run. Outputs whose settings
    /// are unchanged are left alone; a stopped output gets `grace` for deliveries in flight.
    pub async fn apply(
        &mut self,
        outputs: &[OutputConfig],
        grace: Duration,
        dead_letter: DeadLetterLimits,
    ) -> Result<Changes, GatewayError> {
        self.grace = grace;
        self.dead_letter = dead_letter;
        let mut changes = Changes::default();
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !names.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(kind) = self.stop_one(&name).await {
                self.metrics.unregister_output(&name, kind);
            }
            changes.removed.push(name);
        }
        for o in outputs {
            match self.running.get(&o.name) {
                Some(r) if r.config.fingerprint == o.fingerprint => continue,
                Some(_) => {
                    self.stop_one(&o.name).await;
                    changes.changed.push(o.name.clone());
                }
                None => changes.added.push(o.name.clone()),
            }
            let running = self.start_one(o)?;
            self.running.insert(o.name.clone(), running);
        }
        let statuses = outputs
            .iter()
            .filter_map(|o| self.running.get(&o.name).map(|r| r.status.clone()))
            .collect();
        self.statuses.store(Arc::new(statuses));
        Ok(changes)
    }

    /// Opens the output's cursor and dead-letter file and starts its worker.
    fn start_one(&self, o: &OutputConfig) -> Result<Running, GatewayError> {
        let setup = |cause| GatewayError::Output {
            output: o.name.clone(),
            cause,
        };
        let output = o.settings.build(BuildContext {
            name: o.name.clone(),
            max_in_flight: o.max_in_flight,
            timeout: o.policy.timeout,
        });
        let max_events = output.batch_limits().max_events;
        let capacity = crate::worker::max_batches(o.max_in_flight, max_events) * max_events;
        let cursor = self.spool.open_cursor(&o.name, capacity).map_err(setup)?;
        let dead_letters = DeadLetterFile::open(
            &self.spool.dead_letter_path(&o.name),
            &o.name,
            self.dead_letter,
        )
        .map_err(setup)?
        .with_events(self.dead_lettered.clone());
        let dead_letters = Arc::new(dead_letters);
        let tracker = Tracker::new(cursor);
        let reader = self.spool.reader(tracker.start());
        let status = Worker::status(
            &o.name,
            output.kind(),
            tracker,
            dead_letters.clone(),
            o.backlog,
            o.route.clone(),
            o.storm.is_some(),
        );
        self.metrics.register_output(&o.name, output.kind());
        tracing::info!(
            output = %o.name,
            r#type = output.kind(),
            to = %o.settings.describe(),
            from = reader.position().seq,
            "output ready"
        );
        let worker = Worker {
            output,
            route: o.route.clone(),
            policy: o.policy,
            max_in_flight: o.max_in_flight,
            reader,
            dead_letters,
            metrics: self.metrics.clone(),
            status: status.clone(),
            storm: o.storm.clone().map(Storm::new),
        };
        let stop = self.stop.child_token();
        let task = self.delivery.spawn(worker.run(stop.clone(), self.grace));
        Ok(Running {
            config: o.clone(),
            status,
            stop,
            task,
        })
    }

    /// Stops one output: its worker gives deliveries in flight the grace period, then saves its
    /// cursor. Alerts not finished stay in the spool for whoever reads it next under that name.
    /// Returns the output's type, if it was running.
    async fn stop_one(&mut self, name: &str) -> Option<&'static str> {
        let running = self.running.remove(name)?;
        running.stop.cancel();
        let mut task = running.task;
        // The worker bounds its own wait by the grace; this only guards against a stuck one.
        if tokio::time::timeout(self.grace + STUCK_MARGIN, &mut task)
            .await
            .is_err()
        {
            tracing::error!(output = name, "the output's worker did not stop; aborted (its alerts are delivered again from the spool)");
            task.abort();
            let _ = task.await;
            // The worker could not save its cursor; what it wrote lazily is saved here, so the
            // next worker under this name resends only what was unfinished.
            if let Err(e) = running.status.save_cursor() {
                tracing::error!(output = name, error = %e, "could not save the cursor");
            }
        }
        tracing::info!(output = name, "output stopped");
        Some(running.status.kind)
    }

    /// Stops every output at once (at shutdown) and waits for them all.
    pub async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for r in self.running.values() {
            r.stop.cancel();
        }
        for name in names {
            self.stop_one(&name).await;
        }
    }
}
