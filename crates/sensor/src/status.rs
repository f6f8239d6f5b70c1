//! The sensor's HTTP side: `/metrics` for Prometheus and `/healthz` for a supervisor (a
//! Kubernetes liveness probe, systemd's watchdog script).
//!
//! Healthy means the event loop is turning: it beats once a second while it drains the ring
//! buffer, so a loop that is stuck (or never started because the kernel side did not attach)
//! shows as 503 within [`STALE_AFTER`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::Registry;

/// How long without a beat before `/healthz` says the loop is stalled.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The event loop's heartbeat.
#[derive(Default)]
pub struct Health {
    /// Milliseconds since the epoch of the last beat; 0 before the loop runs.
    last_beat_ms: AtomicU64,
}

impl Health {
    pub fn beat(&self) {
        self.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// `(healthy, JSON body)` as `/healthz` answers.
    fn report(&self) -> (bool, serde_json::Value) {
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        if last == 0 {
            return (false, serde_json::json!({"status": "starting"}));
        }
        let age = Duration::from_millis(now_ms().saturating_sub(last));
        if age > STALE_AFTER {
            let body =
                serde_json::json!({"status": "stalled", "seconds_since_loop": age.as_secs()});
            return (false, body);
        }
        (true, serde_json::json!({"status": "ok"}))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Binds `addr` and serves `/metrics` and `/healthz` in the background.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut buf = Vec::new();
                    let _ = prometheus::Encoder::encode(
                        &prometheus::TextEncoder::new(),
                        &registry.gather(),
                        &mut buf,
                    );
                    String::from_utf8(buf).unwrap_or_default()
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let (ok, body) = health.report();
                let status = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                async move { (status, axum::Json(body)).into_response() }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics and health server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_the_loop_beats() {
        let h = Health::default();
        assert_eq!(h.report().1["status"], "starting");
        h.beat();
        assert_eq!(h.report(), (true, serde_json::json!({"status": "ok"})));
        h.last_beat_ms.store(now_ms() - 6_000, Ordering::Relaxed);
        let (ok, body) = h.report();
        assert!(!ok);
        assert_eq!(body["status"], "stalled");
        assert_eq!(body["seconds_since_loop"], 6);
    }
}
