//! Reading a request body within `max_body_bytes`, `body_timeout` and the shared body budget.
//!
//! A body holds budget for the bytes it declares (or, without a `Content-Length`, for the bytes
//! that arrived) from the moment it starts until its alerts are stored. When the budget is spent,
//! the bodies that have been arriving longest are closed to make room: a crowd of clients that
//! stall mid-body can hold memory for a moment, never lock legitimate senders out.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::conn::{ConnState, Connections};
use super::{Front, Rejection, BUSY_RETRY_AFTER_SECS};

/// A body younger than this is never closed to make room: a sender on a normal link finishes
/// well within it.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);
/// How long a request waits for budget before it is answered 503.
const ROOM_WAIT: Duration = Duration::from_secs(3);
/// How often a waiting request looks again for bodies old enough to close.
const EVICTION_RECHECK: Duration = Duration::from_millis(100);

/// A request body as the router hands it over (`axum::body::Body`) or as hyper does, for the
/// route the server answers without the router (`hyper::body::Incoming`).
pub(super) trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: std::fmt::Display> + Unpin
{
}

impl<B> RequestBody for B where B: hyper::body::Body<Data = Bytes, Error: std::fmt::Display> + Unpin {}

/// What a request needs to read its body.
pub(super) struct Reader<'a> {
    pub front: &'a Front,
    pub connections: &'a Connections,
    /// The request's connection; `None` only when the router is called without the server.
    pub conn: Option<&'a ConnState>,
    pub deadline: Instant,
}

/// Budget held by one request; noted on its connection so the slowest can be found.
pub(super) struct Held<'a> {
    permit: Option<OwnedSemaphorePermit>,
    conn: Option<&'a ConnState>,
}

impl Held<'_> {
    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        if let (Some(c), Some(p)) = (self.conn, &self.permit) {
            c.set_body_bytes(p.num_permits());
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn {
            c.set_body_bytes(0);
        }
    }
}

impl<'a> Reader<'a> {
    /// Reads the whole body. The budget it returns lasts as long as the body is kept.
    pub async fn read(
        &self,
        mut body: impl RequestBody,
        headers: &HeaderMap,
    ) -> Result<(Bytes, Held<'a>), Rejection> {
        let limit = self.front.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut held = Held {
            permit: None,
            conn: self.conn,
        };
        let mut collected = Collected::default();
        if let Some(len) = declared {
            if len > limit as u64 {
                return Err(too_large(limit));
            }
            held.add(self.reserve(len as usize).await?);
            collected.expect = len as usize;
        }
        while let Some(data) = self.next_chunk(&mut body).await? {
            if collected.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            if declared.is_none() {
                held.add(self.reserve(data.len()).await?);
            }
            collected.push(data);
        }
        Ok((collected.into_bytes(), held))
    }

    /// The next piece of data, `None` at the end of the body.
    async fn next_chunk(&self, body: &mut impl RequestBody) -> Result<Option<Bytes>, Rejection> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, body.frame()).await {
                Err(_) => return Err(self.timed_out()),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(Rejection::new(
                        StatusCode::BAD_REQUEST,
                        "body_unreadable",
                        format!("could not read the body: {e}"),
                    )
                    .closing())
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry no data.
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// `n` bytes of the budget: free ones, or ones the slowest bodies are made to give back.
    /// Waits up to [`ROOM_WAIT`], in the order requests asked, so a flood of stalled bodies
    /// delays a legitimate one by about [`EVICTABLE_AFTER`] rather than refusing it.
    async fn reserve(&self, n: usize) -> Result<OwnedSemaphorePermit, Rejection> {
        let budget = &self.front.budget;
        let give_up = Instant::now() + ROOM_WAIT;
        loop {
            if let Some(p) = budget.try_reserve(n) {
                return Ok(p);
            }
            if let Some(me) = self.conn {
                self.connections.evict_for_body(n, me, EVICTABLE_AFTER);
            }
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            let wait = (give_up - now).min(EVICTION_RECHECK);
            if let Some(p) = budget.reserve_within(n, wait).await {
                return Ok(p);
            }
        }
        Err(Rejection {
            retry_after: Some(BUSY_RETRY_AFTER_SECS),
            ..Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many request bodies are being read at once; retry shortly",
            )
            .closing()
        })
    }

    fn timed_out(&self) -> Rejection {
        if let Some(c) = self.conn {
            c.note_timeout();
        }
        Rejection::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within body_timeout ({}s)",
                self.front.limits.body_timeout.as_secs_f64()
            ),
        )
        .closing()
    }
}

/// A body's pieces as they arrive. The first is kept as hyper handed it over, so a body that
/// arrives in one piece — an alert usually does — is never copied; later pieces are copied after
/// it.
#[derive(Default)]
struct Collected {
    first: Bytes,
    rest: Option<BytesMut>,
    /// The declared length, to copy into a buffer of the right size at once.
    expect: usize,
}

impl Collected {
    fn len(&self) -> usize {
        self.rest.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match &mut self.rest {
            Some(rest) => rest.extend_from_slice(&data),
            None if self.first.is_empty() => self.first = data,
            None => {
                // `first` is a slice of hyper's read buffer: once copied, let it go, or a
                // connection mid-body would hold that buffer beyond what the budget counts.
                let first = std::mem::take(&mut self.first);
                let mut rest = BytesMut::with_capacity(self.expect.max(first.len() + data.len()));
                rest.extend_from_slice(&first);
                rest.extend_from_slice(&data);
                self.rest = Some(rest);
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        self.rest.map_or(self.first, BytesMut::freeze)
    }
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("body is larger than max_body_bytes ({limit} bytes)"),
    )
    .closing()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_one_piece_is_kept_as_it_came() {
        let piece = Bytes::from_static(b"{\"rule\":\"r\"}");
        let mut collected = Collected::default();
        collected.push(piece.clone());
        let body = collected.into_bytes();
        assert_eq!(body.as_ptr(), piece.as_ptr(), "copied");
    }

    #[test]
    fn pieces_are_joined_in_order() {
        let mut collected = Collected {
            expect: 9,
            ..Collected::default()
        };
        for piece in ["abc", "", "def", "ghi"] {
            collected.push(Bytes::from_static(piece.as_bytes()));
            assert!(collected.len() <= 9);
        }
        assert_eq!(collected.len(), 9);
        assert!(collected.first.is_empty(), "the first piece is still held");
        assert_eq!(&collected.into_bytes()[..], b"abcdefghi");
        assert!(Collected::default().into_bytes().is_empty());
    }
}
