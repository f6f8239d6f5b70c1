//! The front door: connections, TLS and limits (`server`, `conn`, `tls`, `limits`), and the HTTP
//! API — Falco's `http_output` body on `POST /`, probes, `POST /test` and `/metrics`.

mod body;
pub mod conn;
pub(crate) mod decode;
pub mod limits;
pub mod server;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peregrine_engine::{Alert, AlertId, EventTime, Priority};
use peregrine_outputs::secret::Secret;
use serde_json::json;
use tokio::time::Instant;

use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::seen::keep;
use crate::spool::{flags, AppendError, PendingAppend};
use crate::worker::OutputStatus;
use body::RequestBody;
use conn::{ConnState, Phase};
use decode::ForSpool;
use limits::{BodyBudget, Limits};
use tls::ListenerTls;

/// Every `reason` label `peregrine_alerts_rejected_total` can carry.
pub const REJECTION_REASONS: &[&str] = &[
    "malformed_json",
    "empty_body",
    "not_an_object",
    "missing_rule",
    "bad_rule",
    "missing_priority",
    "unknown_priority",
    "missing_time",
    "bad_time",
    "bad_field",
    "body_too_large",
    "body_unreadable",
    "body_timeout",
    "overloaded",
    "unauthorized",
    "spool_full",
    "output_behind",
    "spool_error",
];

/// Seconds a client is asked to wait when the spool is full.
const FULL_RETRY_AFTER_SECS: u64 = 5;
/// Seconds a client is asked to wait when too many bodies are being read at once.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// The settings of the front door, replaced whole by a reload. Connections take a snapshot of
/// the limits and TLS when they open; requests read the token and body limits as they arrive.
pub struct Front {
    pub limits: Limits,
    pub tls: Option<ListenerTls>,
    /// When set, `POST` routes need `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub budget: BodyBudget,
}

pub struct AppState {
    pub intake: Intake,
    /// The running outputs; a reload replaces the list.
    pub outputs: Arc<ArcSwap<Vec<Arc<OutputStatus>>>>,
    pub front: Arc<ArcSwap<Front>>,
    pub connections: Arc<conn::Connections>,
    /// The web console's routes are served when it is enabled.
    pub console: Option<Arc<crate::console::Console>>,
}

/// What the server answers each request with. Falco's `POST /`, the one route under load, goes
/// straight to the ingest handler; every other request goes through the router.
///
/// Straight, because under ingest load the router took about 7 % of the gateway's CPU (route
/// matching, the `MatchedPath` and URL-parameter extensions, a boxed service, body and future
/// per request) for a route that uses none of it. The router keeps `POST /` with the same
/// handler: it is what answers other methods on `/` with 405 and `Allow: POST`.
#[derive(Clone)]
pub struct Routes {
    app: Arc<AppState>,
    router: Router,
}

impl Routes {
    pub fn new(app: Arc<AppState>) -> Self {
        Routes {
            router: router(app.clone()),
            app,
        }
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Whether a request is Falco's `POST /` (whatever its query string).
    pub fn is_ingest<B>(request: &axum::http::Request<B>) -> bool {
        request.method() == axum::http::Method::POST && request.uri().path() == "/"
    }

    /// Answers a `POST /` that arrived on `conn`, as the router's route would.
    pub fn ingest(
        &self,
        conn: Arc<ConnState>,
        request: axum::http::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Response> + Send + 'static {
        let app = self.app.clone();
        async move {
            let (parts, body) = request.into_parts();
            answer_ingest(&app, &parts.headers, body, Some(&conn)).await
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let console = state.console.clone().map(crate::console::router);
    let router = Router::new()
        .route("/", post(ingest))
        .route("/test", post(test_alert))
        .route("/ping", get(|| async { "pong" }))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state);
    match console {
        Some(console) => router.merge(console),
        None => router,
    }
}

/// A refused request: status, a message for the sender, and a bounded metrics reason.
struct Rejection {
    status: StatusCode,
    message: String,
    reason: &'static str,
    retry_after: Option<u64>,
    /// The body was not read to its end, so the connection cannot carry another request.
    close: bool,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
            reason,
            retry_after: None,
            close: false,
        }
    }

    /// The body was left unread: answer and close the connection.
    fn closing(self) -> Self {
        Rejection {
            close: true,
            ..self
        }
    }

    fn into_response(self, metrics: &Metrics) -> Response {
        metrics.rejected.with_label_values(&[self.reason]).inc();
        let mut response = (self.status, Json(json!({"error": self.message}))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `POST /` through the router. The server answers `POST /` with [`Routes::ingest`] and never
/// reaches this; the route is registered so that other methods on `/` get 405 with
/// `Allow: POST`, and answers as the server does for a caller of the router itself.
async fn ingest(State(app): State<Arc<AppState>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let conn = parts.extensions.get::<Arc<ConnState>>();
    answer_ingest(&app, &parts.headers, body, conn).await
}

/// Stores the alerts of one `POST /` and answers with their count, or why they were refused.
async fn answer_ingest<B: RequestBody>(
    app: &AppState,
    headers: &HeaderMap,
    body: B,
    conn: Option<&Arc<ConnState>>,
) -> Response {
    let front = app.front.load_full();
    match accept(app, &front, headers, body, conn).await {
        Ok(n) => accepted(n),
        Err(rejection) => rejection.into_response(&app.intake.metrics),
    }
}

/// `{"accepted":N}`, built as it is sent: axum's conversion of a header array and a `String`
/// writes the content type twice. The answer to one alert, which is what Falco's `http_output`
/// posts, is a constant: formatting it was 1 % of the instructions of an accepted alert.
fn accepted(n: usize) -> Response {
    let body = match n {
        1 => axum::body::Body::from("{\"accepted\":1}"),
        n => axum::body::Body::from(format!("{{\"accepted\":{n}}}")),
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn accept<B: RequestBody>(
    app: &AppState,
    front: &Front,
    headers: &HeaderMap,
    body: B,
    conn: Option<&Arc<ConnState>>,
) -> Result<usize, Rejection> {
    authorize(front, headers)?;
    // The body's deadline counts from the end of the head, when the handler was called.
    let deadline = conn.map_or_else(Instant::now, |c| c.since()) + front.limits.body_timeout;
    let reader = body::Reader {
        front,
        connections: &app.connections,
        conn: conn.map(Arc::as_ref),
        deadline,
    };
    let (bytes, _held) = reader.read(body, headers).await?;
    if let Some(c) = conn {
        c.enter(Phase::Working);
    }
    let pending = app.intake.spool.prepare_append();
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("ndjson"));
    let alerts = decode::for_spool(&bytes, ndjson, app.intake.takes_raw())
        .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, e.reason, e.message))?;
    match alerts {
        ForSpool::AsSent(alerts) => {
            let ids = alerts.iter().map(|a| a.uuid.as_ref().map(AlertId::as_str));
            let claim = app.intake.seen.claim(ids).await;
            let n = alerts.len();
            let new = keep(alerts, &claim.keep);
            outcome(app.intake.store_raw(new, 0, pending).await)?;
            claim.stored();
            Ok(n)
        }
        ForSpool::Decoded(alerts) => {
            let ids = alerts.iter().map(|a| a.uuid.as_ref().map(AlertId::as_str));
            let claim = app.intake.seen.claim(ids).await;
            let n = alerts.len();
            let new = keep(alerts, &claim.keep);
            store(app, new, 0, pending).await?;
            claim.stored();
            Ok(n)
        }
    }
}

/// Stores through the intake; a failure becomes the answer the sender should see.
async fn store(
    app: &AppState,
    alerts: Vec<Alert>,
    record_flags: u8,
    pending: PendingAppend<'_>,
) -> Result<usize, Rejection> {
    outcome(app.intake.store(alerts, record_flags, pending).await)
}

/// A spool answer as the sender should see it.
fn outcome(stored: Result<usize, AppendError>) -> Result<usize, Rejection> {
    match stored {
        Ok(n) => Ok(n),
        Err(e @ AppendError::Full { .. }) => Err(Rejection {
            retry_after: Some(FULL_RETRY_AFTER_SECS),
            ..Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "spool_full", e.to_string())
        }),
        Err(e @ AppendError::OutputBehind { .. }) => Err(Rejection {
            retry_after: Some(FULL_RETRY_AFTER_SECS),
            ..Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "output_behind",
                e.to_string(),
            )
        }),
        Err(e @ AppendError::TooLarge(_)) => Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "could not store alerts");
            Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "spool_error",
                e.to_string(),
            ))
        }
    }
}

fn authorize(front: &Front, headers: &HeaderMap) -> Result<(), Rejection> {
    let Some(token) = &front.bearer_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(Rejection::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        ))
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess is right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Falcosidekick's test alert, delivered to every output whatever its routing.
async fn test_alert(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(rejection) = authorize(&app.front.load(), &headers) {
        return rejection.into_response(&app.intake.metrics);
    }
    let alert = Alert {
        hostname: Some(hostname()),
        output: "This is a test from peregrine-gateway".to_string(),
        output_fields: [
            ("proc.name".to_string(), json!("peregrine-gateway")),
            ("user.name".to_string(), json!("peregrine-gateway")),
        ]
        .into_iter()
        .collect(),
        priority: Priority::Debug,
        rule: "Test rule".to_string(),
        source: "internal".to_string(),
        tags: vec!["example".to_string(), "test".to_string()],
        time: EventTime::now(),
        uuid: None,
    };
    match store(
        &app,
        vec![alert],
        flags::TEST,
        app.intake.spool.prepare_append(),
    )
    .await
    {
        Ok(n) => Json(json!({"accepted": n})).into_response(),
        Err(rejection) => rejection.into_response(&app.intake.metrics),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "peregrine-gateway".to_string())
}

/// Alive unless the spool's writer thread died (then nothing can be stored until a restart).
async fn health(State(app): State<Arc<AppState>>) -> Response {
    probe(
        app.intake.spool.writer_alive(),
        "ok",
        "failed",
        "the spool writer stopped",
    )
}

async fn ready(State(app): State<Arc<AppState>>) -> Response {
    probe(
        app.intake.spool.is_writable(),
        "ready",
        "not ready",
        "the spool is not writable",
    )
}

/// A probe's answer: 200 with `status`, or 503 with `failed` and the reason.
fn probe(ok: bool, status: &str, failed: &str, reason: &str) -> Response {
    if ok {
        Json(json!({ "status": status })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": failed, "reason": reason })),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    refresh_gauges(&app);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.intake.metrics.render(),
    )
        .into_response()
}

/// Gauges are computed at scrape time from the spool and the workers' state.
fn refresh_gauges(app: &AppState) {
    let m = &app.intake.metrics;
    let end = app.intake.spool.end();
    for o in app.outputs.load().iter() {
        let labels = o.labels();
        let depth = end.seq.saturating_sub(o.committed().seq);
        m.queue_depth.with_label_values(&labels).set(depth as i64);
        let backlog = end.offset.saturating_sub(o.committed().offset);
        m.backlog_bytes
            .with_label_values(&labels)
            .set(backlog as i64);
        m.in_flight.with_label_values(&labels).set(o.in_flight());
        m.oldest_pending_seconds
            .with_label_values(&labels)
            .set(o.oldest_pending_age().as_secs() as i64);
        m.paused
            .with_label_values(&labels)
            .set(i64::from(o.is_paused()));
        m.dead_letter_bytes
            .with_label_values(&[o.name.as_str()])
            .set(o.dead_letters.bytes() as i64);
    }
    m.connections.set(app.connections.len() as i64);
    let closed = &app.connections.closed;
    for (reason, count) in [("evicted", &closed.evicted), ("timeout", &closed.timed_out)] {
        let counter = m.connections_closed.with_label_values(&[reason]);
        let now = count.load(std::sync::atomic::Ordering::Relaxed);
        counter.inc_by(now.saturating_sub(counter.get()));
    }
    let budget = &app.front.load().budget;
    m.body_bytes_in_flight
        .set((budget.total() - budget.available()) as i64);
    m.spool_bytes.set(app.intake.spool.disk_bytes() as i64);
    m.spool_max_bytes.set(app.intake.spool.max_bytes() as i64);
    m.spool_segments
        .set(app.intake.spool.segment_count() as i64);
    let (commits, records) = app.intake.spool.commit_stats();
    m.spool_commits
        .inc_by(commits.saturating_sub(m.spool_commits.get()));
    m.spool_records
        .inc_by(records.saturating_sub(m.spool_records.get()));
    let corrupt = app.intake.spool.corrupt_records();
    m.spool_corrupt
        .inc_by(corrupt.saturating_sub(m.spool_corrupt.get()));
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
