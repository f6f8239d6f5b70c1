//! Wiring: open the spool, start the outputs and inputs, serve HTTP, reload on demand, and shut
//! down in order.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::console::index::feed::IndexPosition;
use crate::console::Console;
use crate::front::conn::Connections;
use crate::front::{self, AppState};
use crate::input::InputSet;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::output_set::OutputSet;
use crate::reload::{self, Live, Reloader};
use crate::spool::Spool;
use crate::worker::OutputStatus;

/// How often fully passed segments are deleted, unless the spool is filling up.
const COMPACT_EVERY: Duration = Duration::from_secs(1);

/// The least time between two compactions (each fsyncs every cursor).
const COMPACT_GAP: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    // `cause`, not `source`: the message already says it, and a source would repeat it.
    #[error("cannot open the spool at {dir}: {cause}")]
    Spool { dir: String, cause: io::Error },
    #[error("cannot set up output '{output}': {cause}")]
    Output { output: String, cause: io::Error },
    #[error("cannot listen on {addr}: {cause}")]
    Bind { addr: SocketAddr, cause: io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(io::Error),
    #[error("the spool writer stopped; exiting so that a supervisor restarts the gateway on what is on disk")]
    WriterStopped,
    #[error("cannot start the console: {0}")]
    Console(#[from] crate::console::index::IndexError),
}

/// A gateway that is listening.
pub struct Gateway {
    pub local_addr: SocketAddr,
    serve: tokio::task::JoinHandle<Result<(), GatewayError>>,
    reloader: Reloader,
    delivery: DeliveryRuntime,
}

impl Gateway {
    /// Binds the listener, opens the spool, starts the outputs and inputs. Serving begins at
    /// once and lasts until `shutdown` resolves; then [`Gateway::wait`] finishes the shutdown.
    pub async fn start(
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Gateway, GatewayError> {
        // The listener first: a port in use is the likeliest start-up failure, and nothing has
        // been started yet that would need stopping.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|cause| GatewayError::Bind {
                addr: config.listen,
                cause,
            })?;
        let local_addr = listener.local_addr().map_err(GatewayError::Serve)?;
        let spool = Spool::open(&config.spool).map_err(|cause| GatewayError::Spool {
            dir: config.spool.dir.display().to_string(),
            cause,
        })?;
        let metrics = Arc::new(Metrics::new());
        metrics.register_rejection_reasons(front::REJECTION_REASONS);
        for result in ["ok", "error"] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        let stop = CancellationToken::new();
        let delivery = DeliveryRuntime::new().map_err(GatewayError::Serve)?;

        let mut outputs = OutputSet::new(
            spool.clone(),
            metrics.clone(),
            delivery.handle(),
            stop.clone(),
        );
        outputs
            .apply(&config.outputs, config.shutdown_grace, config.dead_letter)
            .await?;
        note_stale_cursors(&spool, &config);
        let statuses = outputs.statuses();
        let console = start_console(&config, &spool, &outputs, &metrics, &delivery, &stop)?;
        delivery.handle().spawn(compact(
            spool.clone(),
            statuses.clone(),
            console.as_ref().map(|c| c.position.clone()),
            stop.clone(),
        ));
        let intake = Intake {
            spool: spool.clone(),
            metrics: metrics.clone(),
            custom_fields: Arc::new(ArcSwap::from_pointee(config.custom_fields.clone())),
            seen: Arc::default(),
            outputs: statuses.clone(),
        };
        let inputs = InputSet::start(&config.inputs, &intake, config.max_body_bytes, &stop);
        let fd_limit = reload::raise_fd_limit();
        let connections = Connections::new(config.limits.max_connections);
        let front = Arc::new(ArcSwap::from_pointee(reload::front(&config, None)));
        let state = Arc::new(AppState {
            intake: intake.clone(),
            outputs: statuses,
            front: front.clone(),
            connections: connections.clone(),
            console: console.clone(),
        });
        let live = Live {
            config,
            outputs,
            inputs: Some(inputs),
            intake,
            front,
            connections,
            metrics,
            stop: stop.clone(),
            fd_limit,
            console,
        };
        let reloader = Reloader::new(live.started(local_addr));

        let serve = tokio::spawn(serve(listener, state, reloader.clone(), shutdown, stop));
        Ok(Gateway {
            local_addr,
            serve,
            reloader,
            delivery,
        })
    }

    /// Applies configurations to this gateway while it runs (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Waits until the gateway has shut down.
    pub async fn wait(self) -> Result<(), GatewayError> {
        let served = self
            .serve
            .await
            .map_err(|e| GatewayError::Serve(io::Error::other(e)));
        // The workers have finished; nothing on this runtime holds an alert any more.
        drop(self.delivery);
        served?
    }
}

/// The web console, when `ui.enabled`: its index fills on the delivery runtime.
fn start_console(
    config: &Config,
    spool: &Spool,
    outputs: &OutputSet,
    metrics: &Arc<Metrics>,
    delivery: &DeliveryRuntime,
    stop: &CancellationToken,
) -> Result<Option<Arc<Console>>, GatewayError> {
    let Some(ui) = &config.ui else {
        return Ok(None);
    };
    let parts = crate::console::Parts {
        spool: spool.clone(),
        outputs: outputs.statuses(),
        metrics: metrics.clone(),
        dead_lettered: outputs.dead_lettered(),
    };
    Ok(Some(Console::start(
        ui,
        parts,
        &delivery.handle(),
        stop.clone(),
    )?))
}

/// Serves until `shutdown`, then stops intake, inputs and outputs in order.
async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    reloader: Reloader,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop: CancellationToken,
) -> Result<(), GatewayError> {
    let grace = reloader.shutdown_grace().await;
    // One signal stops both intake and workers: in-flight requests finish storing their
    // alerts while in-flight deliveries get their grace period, side by side.
    let server = front::server::serve(
        listener,
        front::Routes::new(state.clone()),
        state.front.clone(),
        state.connections.clone(),
        stop.clone(),
    );
    let writer_stopped = state.intake.spool.writer_stopped();
    let signal = async {
        tokio::select! {
            _ = shutdown => {
                tracing::info!("shutting down: no new requests");
                false
            }
            _ = writer_stopped => {
                tracing::error!("the spool writer stopped: shutting down");
                true
            }
        }
    };
    // A client holding a keep-alive connection open must not hold up the exit.
    tokio::pin!(server);
    let failed = tokio::select! {
        _ = &mut server => false,
        failed = signal => failed,
    };
    stop.cancel();
    tokio::select! {
        _ = server => {}
        _ = tokio::time::sleep(grace) => {}
    }
    reloader.stop_all().await;
    if let Some(console) = &state.console {
        console.finish().await;
    }
    tracing::info!("gateway stopped; undelivered alerts stay in the spool");
    if failed {
        return Err(GatewayError::WriterStopped);
    }
    Ok(())
}

/// The runtime that delivers: its own threads, at a lower scheduling priority (nice 10) than
/// ingest.
///
/// When the machine is saturated, accepting alerts comes first: a slow answer to Falco's
/// `http_output` makes Falco drop events, while a delivery that runs late only leaves alerts
/// waiting in the spool, which is what the spool is for. When there is CPU to spare, niceness
/// changes nothing.
///
/// Dropped from inside the main runtime (on any exit path, errors included), so it shuts down in
/// the background rather than block — which tokio forbids there.
struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    fn new() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
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
            .build()?;
        Ok(DeliveryRuntime(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("runtime until dropped")
            .handle()
            .clone()
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Niceness of delivery threads (0 is normal, 19 the lowest priority).
const DELIVERY_NICE: libc::c_int = 10;

/// Deletes segments every output has passed (and the console's index, while the spool has
/// room): every second, and as soon as the spool is more than half full. Cursors are fsync'd
/// first, so a power loss can never leave a cursor pointing into a deleted segment.
async fn compact(
    spool: Spool,
    outputs: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
    index: Option<Arc<IndexPosition>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = spool.pressure() => {}
            _ = stop.cancelled() => return,
        }
        let outputs = outputs.load_full();
        let spool = spool.clone();
        let index = index.clone();
        let result = tokio::task::spawn_blocking(move || -> io::Result<usize> {
            let mut min = index
                .map_or(u64::MAX, |i| i.hold(&spool))
                .min(spool.end().offset);
            // Every output's cursor is flushed even when one fails: the failing one keeps the
            // whole spool for this round.
            let mut failed = None;
            for o in outputs.iter() {
                match o.save_cursor() {
                    Ok(saved) => min = min.min(saved.offset),
                    Err(e) => {
                        tracing::error!(output = %o.name, error = %e, "could not save the cursor");
                        failed = Some(e);
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => spool.release_before(min),
            }
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(segments = n, "released spool segments"),
            Ok(Err(e)) => tracing::error!(error = %e, "spool compaction failed"),
            Err(e) => tracing::error!(error = %e, "spool compaction task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(COMPACT_GAP) => {}
            _ = stop.cancelled() => return,
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
