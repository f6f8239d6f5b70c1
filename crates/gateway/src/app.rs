//! Wiring: open the spool, start one worker per output, serve HTTP, and shut down in order.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_outputs::config::BuildContext;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::deadletter::DeadLetterFile;
use crate::delivery::{OutputStatus, Storm, Tracker, Worker};
use crate::http::{self, AppState};
use crate::input::{self, InputConfig};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::spool::Spool;

/// How often fully passed segments are deleted.
const COMPACT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot open the spool at {dir}: {source}")]
    Spool { dir: String, source: io::Error },
    #[error("cannot set up output '{output}': {source}")]
    Output { output: String, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(io::Error),
}

/// A gateway that is listening.
pub struct Gateway {
    pub local_addr: SocketAddr,
    serve: tokio::task::JoinHandle<Result<(), GatewayError>>,
    delivery: tokio::runtime::Runtime,
}

impl Gateway {
    /// Opens the spool, starts the workers and binds the listener. Serving begins at once and
    /// lasts until `shutdown` resolves; then [`Gateway::wait`] finishes the shutdown.
    pub async fn start(
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Gateway, GatewayError> {
        let spool = Spool::open(&config.spool).map_err(|source| GatewayError::Spool {
            dir: config.spool.dir.display().to_string(),
            source,
        })?;
        let metrics = Arc::new(Metrics::new());
        metrics.register_rejection_reasons(http::REJECTION_REASONS);
        let stop = CancellationToken::new();
        let delivery = delivery_runtime().map_err(GatewayError::Serve)?;
        let mut workers = JoinSet::new();
        let mut statuses: Vec<Arc<OutputStatus>> = Vec::new();

        for o in &config.outputs {
            let setup = |source| GatewayError::Output {
                output: o.name.clone(),
                source,
            };
            let output = o.settings.build(BuildContext {
                max_in_flight: o.max_in_flight,
                timeout: o.policy.timeout,
            });
            let capacity = o.max_in_flight * output.batch_limits().max_events;
            let cursor = spool.open_cursor(&o.name, capacity).map_err(setup)?;
            let dead_letters =
                DeadLetterFile::open(&spool.dead_letter_path(&o.name), &o.name).map_err(setup)?;
            let tracker = Tracker::new(cursor);
            let reader = spool.reader(tracker.start());
            let status = Worker::status(&o.name, output.kind(), tracker);
            metrics.register_output(&o.name, output.kind());
            tracing::info!(
                output = %o.name,
                r#type = output.kind(),
                to = %o.settings.describe(),
                from = reader.position().seq,
                "output ready"
            );
            statuses.push(status.clone());
            let worker = Worker {
                output,
                route: o.route.clone(),
                policy: o.policy,
                max_in_flight: o.max_in_flight,
                reader,
                dead_letters: Arc::new(dead_letters),
                metrics: metrics.clone(),
                status,
                storm: o.storm.clone().map(Storm::new),
            };
            workers.spawn_on(
                worker.run(stop.clone(), config.shutdown_grace),
                delivery.handle(),
            );
        }
        note_stale_cursors(&spool, &config);
        delivery.spawn(compact(spool.clone(), statuses.clone(), stop.clone()));

        let intake = Intake {
            spool: spool.clone(),
            metrics,
            custom_fields: Arc::new(config.custom_fields.clone()),
        };
        let mut inputs = JoinSet::new();
        for input in &config.inputs {
            tracing::info!(from = %input.describe(), "input ready");
            match input.clone() {
                InputConfig::Kafka(c) => {
                    inputs.spawn(input::kafka::run(
                        c,
                        intake.clone(),
                        config.max_body_bytes,
                        stop.clone(),
                    ));
                }
            }
        }
        let state = Arc::new(AppState {
            intake: intake.clone(),
            outputs: statuses,
            bearer_token: config.bearer_token.clone(),
            max_body_bytes: config.max_body_bytes,
        });
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(GatewayError::Serve)?;
        tracing::info!(%local_addr, outputs = config.outputs.len(), spool = %spool.dir().display(), "gateway listening");

        let grace = config.shutdown_grace;
        let serve = tokio::spawn(async move {
            // One signal stops both intake and workers: in-flight requests finish storing their
            // alerts while in-flight deliveries get their grace period, side by side.
            let server = http::server::serve(listener, http::router(state), stop.clone());
            let signal = async {
                shutdown.await;
                tracing::info!("shutting down: no new requests");
                stop.cancel();
            };
            // A client holding a keep-alive connection open must not hold up the exit.
            tokio::pin!(server);
            tokio::select! {
                _ = &mut server => {}
                _ = signal => {}
            }
            tokio::select! {
                _ = server => {}
                _ = tokio::time::sleep(grace) => {}
            }
            // Inputs finish storing their batch and commit their offsets.
            while inputs.join_next().await.is_some() {}
            while workers.join_next().await.is_some() {}
            tracing::info!("gateway stopped; undelivered alerts stay in the spool");
            Ok(())
        });
        Ok(Gateway {
            local_addr,
            serve,
            delivery,
        })
    }

    /// Waits until the gateway has shut down.
    pub async fn wait(self) -> Result<(), GatewayError> {
        let served = self
            .serve
            .await
            .map_err(|e| GatewayError::Serve(io::Error::other(e)));
        // The workers have finished; nothing on this runtime holds an alert any more.
        self.delivery.shutdown_background();
        served?
    }
}

/// The runtime that delivers: its own threads, at a lower scheduling priority (nice 10) than
/// ingest.
///
/// When the machine is saturated, accepting alerts comes first: a slow answer to Falco's
/// `http_output` makes Falco drop events, while a delivery that runs late only leaves alerts
/// waiting in the spool, which is what the spool is for. When there is CPU to spare, niceness
/// changes nothing.
fn delivery_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("delivery")
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| {
            // SAFETY: setpriority on the calling thread (Linux applies nice per thread); a
            // failure only leaves the default priority.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, DELIVERY_NICE);
            }
        })
        .build()
}

/// Niceness of delivery threads (0 is normal, 19 the lowest priority).
const DELIVERY_NICE: libc::c_int = 10;

/// Deletes segments every output has passed. Cursors are fsync'd first, so a power loss can
/// never leave a cursor pointing into a deleted segment.
async fn compact(spool: Spool, outputs: Vec<Arc<OutputStatus>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let outputs = outputs.clone();
        let spool = spool.clone();
        let result = tokio::task::spawn_blocking(move || -> io::Result<usize> {
            let mut min = spool.end().offset;
            for o in &outputs {
                let handle = o.flush_cursor()?;
                handle.sync_data()?;
                min = min.min(o.committed().offset);
            }
            spool.release_before(min)
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(segments = n, "released spool segments"),
            Ok(Err(e)) => tracing::error!(error = %e, "spool compaction failed"),
            Err(e) => tracing::error!(error = %e, "spool compaction task failed"),
        }
    }
}

/// Cursors of outputs no longer configured do not hold segments back; say so once.
fn note_stale_cursors(spool: &Spool, config: &Config) {
    let Ok(entries) = std::fs::read_dir(spool.dir().join("cursors")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(output) = name.to_str().and_then(|n| n.strip_suffix(".cursor")) else {
            continue;
        };
        if !config.outputs.iter().any(|o| o.name == output) {
            tracing::info!(output, "cursor of an output that is no longer configured; it is ignored (delete it to forget the output)");
        }
    }
}
