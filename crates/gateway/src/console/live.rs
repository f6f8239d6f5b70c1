//! `GET /ui/api/events`: new alerts as server-sent events, with the alerts page's filters.
//!
//! Each event's `id` is the alert's seq: a browser that reconnects (the front door closes a
//! stream that has been idle for `limits.idle_timeout`) sends `Last-Event-ID` and first gets
//! what it missed from the index, so a reconnect loses nothing the index holds. A page opening
//! the stream passes `after` (the newest alert it listed) for the same reason.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query as Params, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;

use super::api::{parse_query, ApiError};
use super::index::{AlertRow, Query, MAX_PAGE};
use super::session::Signed;
use super::Console;

fn event(row: &AlertRow) -> Event {
    Event::default()
        .id(row.seq.to_string())
        .event("alert")
        .json_data(row)
        .expect("a row serialises")
}

/// The alerts after seq `after` (-1: from the first) that the index already holds, oldest
/// first (at most a page).
async fn missed(console: &Console, query: &Query, after: i64) -> Result<Vec<AlertRow>, ApiError> {
    let index = console.index.clone();
    let mut q = Query {
        limit: MAX_PAGE,
        before_seq: None,
        ..query.clone()
    };
    q.since_ns = None;
    let mut rows = tokio::task::spawn_blocking(move || index.search(&q))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    rows.retain(|r| r.seq as i64 > after);
    rows.reverse();
    Ok(rows)
}

pub async fn events(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    headers: HeaderMap,
    Params(mut params): Params<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // `after`: the newest seq the page already shows, so that alerts indexed between its list
    // and this stream are not missed. A reconnect's `Last-Event-ID` takes its place.
    let after_param = match params.remove("after") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("after: '{v}' is not an alert's seq")))?,
        ),
    };
    let query = parse_query(&params)?;
    // Subscribed before reading the index: nothing falls between the two.
    let receiver = console.live.subscribe();
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(after_param);
    let (catch_up, after) = match last_seen {
        Some(after) => {
            let rows = missed(&console, &query, after).await?;
            let newest = rows.last().map_or(after, |r| r.seq as i64);
            (rows, newest)
        }
        None => (Vec::new(), -1),
    };
    let first = stream::iter(catch_up.into_iter().map(|r| Ok(event(&r))));
    let live = stream::unfold(
        (receiver, query, after),
        |(mut rx, query, after)| async move {
            loop {
                match rx.recv().await {
                    Ok(row) if row.seq as i64 > after && query.matches(&row) => {
                        let e = event(&row);
                        return Some((Ok(e), (rx, query, after)));
                    }
                    Ok(_) => {}
                    // Too slow to keep up: say so; the page reloads its list from the index.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = Event::default().event("lagged").data("reload");
                        return Some((Ok(e), (rx, query, after)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(first.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
