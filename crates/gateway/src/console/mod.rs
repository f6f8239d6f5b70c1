//! The web console under `/ui/`: recent alerts from an index the gateway keeps ([`index`]),
//! output health and dead-letter redrive, for signed-in users only ([`auth`]). Its JSON API
//! ([`api`], documented in `docs/console.md`) is what the page uses, so scripts can use it too;
//! the page itself is built into the binary ([`assets`]).

pub mod api;
pub mod assets;
pub mod auth;
pub mod config;
pub mod index;
mod live;
mod outcomes;
mod session;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::deadletter::DeadLettered;
use crate::metrics::Metrics;
use crate::spool::Spool;
use crate::worker::OutputStatus;
use config::UiConfig;
use index::{AlertIndex, AlertRow, IndexError};

/// Alerts buffered for a slow live view before it is told to catch up from the index.
const LIVE_BUFFER: usize = 1024;

/// What the console's handlers share.
pub struct Console {
    pub index: Arc<AlertIndex>,
    pub auth: auth::Auth,
    /// Every alert as it is indexed.
    pub live: broadcast::Sender<Arc<AlertRow>>,
    pub outputs: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
    pub metrics: Arc<Metrics>,
    pub spool: Spool,
    /// How far the index has read, for compaction.
    pub position: Arc<index::feed::IndexPosition>,
    /// The dead-letter notes' task, told to finish by [`Console::finish`].
    notes: NotesTask,
}

/// The dead-letter notes' task and its own stop (see [`outcomes::record_dead_letters`]).
struct NotesTask {
    stop: CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How long [`Console::finish`] waits for the notes to be written or kept.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the console needs from the running gateway.
pub struct Parts {
    pub spool: Spool,
    pub outputs: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
    pub metrics: Arc<Metrics>,
    pub dead_lettered: broadcast::Receiver<DeadLettered>,
}

impl Console {
    /// Opens the index and starts filling it (on `runtime`, the delivery runtime: below
    /// ingest's priority).
    pub fn start(
        ui: &UiConfig,
        parts: Parts,
        runtime: &tokio::runtime::Handle,
        stop: CancellationToken,
    ) -> Result<Arc<Console>, IndexError> {
        let index = Arc::new(AlertIndex::open(&ui.index_path, ui.retention)?);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let position = Arc::new(index::feed::IndexPosition::default());
        runtime.spawn(index::feed::run(
            index.clone(),
            parts.spool.clone(),
            live.clone(),
            position.clone(),
            stop.clone(),
        ));
        let notes = outcomes::Notes {
            index: index.clone(),
            spool: parts.spool.clone(),
            position: position.clone(),
        };
        let notes_stop = CancellationToken::new();
        let notes_task = runtime.spawn(outcomes::record_dead_letters(
            notes,
            parts.dead_lettered,
            notes_stop.clone(),
        ));
        let auth = auth::Auth::new(ui.users.clone(), ui.proxy_auth.clone(), ui.session_ttl);
        auth.replace_certificates(ui.client_certificates.clone());
        Ok(Arc::new(Console {
            index,
            auth,
            live,
            outputs: parts.outputs,
            metrics: parts.metrics,
            spool: parts.spool,
            position,
            notes: NotesTask {
                stop: notes_stop,
                task: std::sync::Mutex::new(Some(notes_task)),
            },
        }))
    }

    /// Once the outputs have stopped: writes the dead-letter notes whose alerts are indexed and
    /// keeps the others in the index for the next start (waiting at most [`FINISH_WAIT`]).
    pub async fn finish(&self) {
        self.notes.stop.cancel();
        let task = self.notes.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            if tokio::time::timeout(FINISH_WAIT, task).await.is_err() {
                tracing::warn!(
                    "the console's dead-letter notes were not all kept for the next start"
                );
            }
        }
    }
}

/// The routes under `/ui/`.
pub fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/session", get(session::whoami))
        .route("/alerts", get(api::alerts))
        .route("/alerts/{uuid}", get(api::alert))
        .route("/overview", get(api::overview))
        .route("/outputs", get(api::outputs))
        .route("/outputs/{name}/dead-letters", get(api::dead_letters))
        .route("/outputs/{name}/redrive", post(api::redrive))
        .route("/events", get(live::events))
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY));
    Router::new()
        .route("/ui", get(assets::to_slash))
        .route("/ui/", get(assets::index))
        .route("/ui/assets/{file}", get(assets::file))
        .nest("/ui/api", api)
        .layer(axum::middleware::map_response(assets::protect))
        .with_state(console)
}
