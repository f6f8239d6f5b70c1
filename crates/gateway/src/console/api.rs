//! The console's JSON API (documented in `docs/console.md`): alerts with filters and search,
//! one alert with where it was delivered, the overview's counts, output health, dead letters
//! and their redrive.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peregrine_engine::{Alert, EventTime, Priority};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::Role;
use super::index::{IndexedAlert, Query, MAX_PAGE};
use super::session::Signed;
use super::Console;
use crate::redrive::{self, Filter};
use crate::worker::{OutputStatus, Progress};

/// The largest request body the API reads (sign-in and redrive are small JSON objects).
pub const MAX_BODY: usize = 16 * 1024;
/// Dead letters listed at most per request.
const MAX_DEAD_LETTERS: usize = 500;

/// The one error type of the console's API: a status and a message for the person.
#[derive(Debug)]
pub enum ApiError {
    SignInFirst,
    WrongCredentials,
    Forbidden(String),
    BadRequest(String),
    NotFound(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::SignInFirst => (StatusCode::UNAUTHORIZED, "sign in first".to_string()),
            ApiError::WrongCredentials => (
                StatusCode::UNAUTHORIZED,
                "wrong user name or password".to_string(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// Runs an index call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, super::index::IndexError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A time parameter: RFC 3339, or a duration meaning that long ago (`90m`, `2h`).
fn time_param(key: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(ago) = value.parse::<peregrine_outputs::duration::ConfigDuration>() {
        return Ok(EventTime::now().unix_nanos() - ago.0.as_nanos() as i64);
    }
    EventTime::parse_rfc3339(value)
        .map(EventTime::unix_nanos)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{key}: '{value}' is neither an RFC 3339 time nor a duration like 2h"
            ))
        })
}

/// The alerts page's filters from the query string; unknown keys are refused so that a typo
/// does not silently show everything.
pub fn parse_query(params: &HashMap<String, String>) -> Result<Query, ApiError> {
    let mut q = Query {
        limit: 100,
        ..Query::default()
    };
    for (key, value) in params {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let text = Some(value.chars().take(512).collect::<String>());
        match key.as_str() {
            "priority" => {
                let p = value
                    .parse::<Priority>()
                    .map_err(|e| ApiError::BadRequest(format!("priority: {e}")))?;
                q.min_priority = Some(p);
            }
            "rule" => q.rule = text,
            "host" | "hostname" => q.hostname = text,
            "source" => q.source = text,
            "tag" => q.tag = text,
            "container" => q.container = text,
            "q" => q.text = text,
            "since" => q.since_ns = Some(time_param(key, value)?),
            "until" => q.until_ns = Some(time_param(key, value)?),
            "before" => {
                q.before_seq = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("before: '{value}' is not an alert's seq"))
                })?)
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit: must be 1 to {MAX_PAGE}"))
                    })?
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter '{other}' (priority, rule, host, source, tag, container, q, since, until, before, limit)"
                )))
            }
        }
    }
    Ok(q)
}

/// `GET /ui/api/alerts?priority=&rule=&host=&source=&tag=&container=&q=&since=&until=&before=&limit=`
pub async fn alerts(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(&params)?;
    let limit = query.limit;
    let index = console.index.clone();
    let rows = blocking(move || index.search(&query)).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({ "alerts": rows, "next_before": next })))
}

/// `GET /ui/api/alerts/{uuid}`: every field, and per output where the alert is.
pub async fn alert(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let index = console.index.clone();
    let key = uuid.clone();
    let found = blocking(move || index.get(&key))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {uuid} in the console's index")))?;
    let deliveries = deliveries(&found, &console.outputs.load());
    Ok(Json(json!({
        "alert": found.alert,
        "seq": found.row.seq,
        "test": found.row.test,
        "deliveries": deliveries,
    })))
}

/// Where an alert is at each output: `not_routed`, `waiting`, `in_flight` (being sent or
/// waiting for a retry), `sent`, `dead_lettered` (with the reason) or `redriven`.
fn deliveries(found: &IndexedAlert, outputs: &[Arc<OutputStatus>]) -> Vec<Value> {
    let alert = Alert::from_json(found.alert.clone()).ok();
    outputs
        .iter()
        .map(|o| {
            let routed = found.row.test || alert.as_ref().is_some_and(|a| o.route.matches(a));
            let noted = found.outcomes.iter().find(|x| x.output == o.name);
            let (state, detail) = match (noted, o.progress_of(found.row.seq)) {
                (Some(n), _) => (n.state.clone(), n.reason.clone()),
                (None, _) if !routed => (
                    "not_routed".into(),
                    "its route does not select this alert".into(),
                ),
                (None, Progress::Waiting) => ("waiting".into(), String::new()),
                (None, Progress::InFlight) => (
                    "in_flight".into(),
                    "being sent, or waiting for its next attempt".into(),
                ),
                (None, Progress::Passed) if o.has_storm_control => (
                    "sent".into(),
                    "delivered, or counted in a storm-control digest".into(),
                ),
                (None, Progress::Passed) => ("sent".into(), String::new()),
            };
            json!({"output": o.name, "type": o.kind, "state": state, "detail": detail})
        })
        .collect()
}

#[derive(Deserialize)]
pub struct OverviewParams {
    hours: Option<u64>,
}

/// `GET /ui/api/overview?hours=6`: alerts per minute (per 5 minutes past 6 hours) by priority,
/// top rules and hosts.
pub async fn overview(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Params(params): Params<OverviewParams>,
) -> Result<Json<Value>, ApiError> {
    let hours = params.hours.unwrap_or(6).clamp(1, 24 * 7);
    let bucket = if hours <= 6 { 60 } else { 300 };
    let since = EventTime::now().unix_nanos() - (hours * 3600) as i64 * 1_000_000_000;
    let index = console.index.clone();
    let overview = blocking(move || index.overview(since, bucket)).await?;
    Ok(Json(json!({"hours": hours, "overview": overview})))
}

/// `GET /ui/api/outputs`: per output its totals, latency, queue, pause and dead letters.
pub async fn outputs(State(console): State<Arc<Console>>, _signed: Signed) -> Json<Value> {
    let end = console.spool.end();
    let m = &console.metrics;
    let list: Vec<Value> = console
        .outputs
        .load()
        .iter()
        .map(|o| {
            let labels = o.labels();
            let latency = m.delivery_seconds.with_label_values(&labels);
            let (count, sum) = (latency.get_sample_count(), latency.get_sample_sum());
            json!({
                "name": o.name,
                "type": o.kind,
                "sent": m.sent.with_label_values(&labels).get(),
                "retries": m.retries.with_label_values(&labels).get(),
                "dead_lettered": m.dead_lettered.with_label_values(&labels).get(),
                "dead_letters_by_reason": m.dead_letter_reasons(&o.name),
                "dead_letter_bytes": o.dead_letters.bytes(),
                "suppressed": m.suppressed.with_label_values(&labels).get(),
                "mean_latency_seconds": if count > 0 { sum / count as f64 } else { 0.0 },
                "queue_depth": end.seq.saturating_sub(o.committed().seq),
                "in_flight": o.in_flight(),
                "oldest_pending_seconds": o.oldest_pending_age().as_secs_f64(),
                "paused_for_seconds": o.paused_for().map(|d| d.as_secs_f64()),
            })
        })
        .collect();
    Json(json!({ "outputs": list, "at": EventTime::now().to_string() }))
}

fn output_named(console: &Console, name: &str) -> Result<Arc<OutputStatus>, ApiError> {
    console
        .outputs
        .load()
        .iter()
        .find(|o| o.name == name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no output named '{name}'")))
}

/// `GET /ui/api/outputs/{name}/dead-letters`: the newest dead letters first, at most 500.
pub async fn dead_letters(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let output = output_named(&console, &name)?;
    let path = output.dead_letters.path().to_path_buf();
    let entries = tokio::task::spawn_blocking(move || redrive::read_all(&path, &name))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    let total = entries.len();
    let newest: Vec<&Value> = entries
        .iter()
        .rev()
        .take(MAX_DEAD_LETTERS)
        .map(|e| &e.value)
        .collect();
    Ok(Json(json!({ "total": total, "dead_letters": newest })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this reason word or text.
    reason: Option<String>,
    /// Only those dead-lettered since this RFC 3339 time or duration ago.
    since: Option<String>,
}

/// `POST /ui/api/outputs/{name}/redrive` (operators; CSRF token required): puts the output's
/// dead letters (all, or by `reason` / `since`) back in the spool for that output, as
/// `dead-letters replay` does, recording who asked.
pub async fn redrive(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<RedriveRequest>>,
) -> Result<Json<Value>, ApiError> {
    signed.check_csrf(&headers)?;
    signed.require(Role::Operator)?;
    let output = output_named(&console, &name)?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let since = match request.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(EventTime::from_unix_nanos(time_param("since", s)?).to_string()),
    };
    let filter = Filter {
        output: Some(name.clone()),
        reason: request.reason.filter(|r| !r.is_empty()),
        since,
    };
    let by = format!("{} (console)", signed.session.user);
    let uuids = redrive::replay_live(&console.spool, &output.dead_letters, &name, &filter, &by)
        .await
        .map_err(|e| ApiError::Internal(format!("redrive failed: {e:#}")))?;
    let n = uuids.len();
    let index = console.index.clone();
    let (output_name, note) = (name.clone(), format!("by {}", signed.session.user));
    let now = EventTime::now().unix_nanos();
    blocking(move || {
        for uuid in &uuids {
            // An alert trimmed from the index has no row to note it on; the redrive stands.
            index.record_outcome(uuid, &output_name, "redriven", &note, now)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(user = %signed.session.user, output = %name, alerts = n, "console redrive");
    Ok(Json(
        json!({ "redriven": n, "output": name, "by": signed.session.user }),
    ))
}
