//! An Elasticsearch `_bulk` endpoint that answers item by item, for the failures a real cluster
//! cannot be made to produce on demand: per-item 429 and 400, and 413 above a request size.
//! Round trips against a real search engine use `osmem-server` ([`crate::osmem`]).
//!
//! Documents are kept by `_id`; a second `create` of one answers 409 as Elasticsearch does.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

#[derive(Default)]
pub struct State {
    /// `_id` → (index, document).
    pub documents: HashMap<String, (String, Value)>,
    /// Statuses to answer for an `_id`'s next `create`s, before it is stored.
    pub inject: HashMap<String, VecDeque<u16>>,
    /// Items per bulk request, and its body size (uncompressed).
    pub requests: Vec<(usize, usize)>,
    /// Templates installed, by name.
    pub templates: HashMap<String, Value>,
    /// Requests above this many bytes answer 413.
    pub max_request_bytes: Option<usize>,
}

pub type Handle = Arc<Mutex<State>>;

struct Bulk(Handle);

pub async fn start() -> (FakeService, Handle) {
    let state: Handle = Arc::default();
    (FakeService::start(Bulk(state.clone())).await, state)
}

fn error_type(status: u16) -> &'static str {
    match status {
        429 => "es_rejected_execution_exception",
        400 => "mapper_parsing_exception",
        409 => "version_conflict_engine_exception",
        _ => "unavailable_shards_exception",
    }
}

impl Api for Bulk {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        None
    }

    fn limit(&self) -> Limit {
        Limit::Bucket {
            per_second: 1e9,
            burst: 1e9,
            slack: 0.0,
        }
    }

    fn rate_limited(&self) -> Reply {
        Reply::new(429, "")
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        let mut state = self.0.lock().unwrap();
        if let (true, Some((_, name))) =
            (method == Method::PUT, path.split_once("/_index_template/"))
        {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return bad_request("parse_exception", "not JSON");
            };
            state.templates.insert(name.to_string(), v);
            return Reply::new(200, r#"{"acknowledged":true}"#);
        }
        if method != Method::POST || !path.ends_with("/_bulk") {
            return Reply::new(404, "");
        }
        bulk(&mut state, headers, body)
    }
}

/// Elasticsearch's 400: an error `type` and `reason`.
fn bad_request(kind: &str, reason: &str) -> Reply {
    let body = json!({"error": {"type": kind, "reason": reason}, "status": 400});
    Reply::new(400, body.to_string())
}

/// A `_bulk` request: size and framing checked first, then each action pair read and answered
/// in order (pairs before a malformed one stay stored although the request is answered 400).
fn bulk(state: &mut State, headers: &HeaderMap, body: &[u8]) -> Reply {
    let text = match bulk_body(headers, body, state.max_request_bytes) {
        Ok(text) => text,
        Err(reply) => return reply,
    };
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.len().is_multiple_of(2) {
        return bad_request(
            "illegal_argument_exception",
            "Malformed action/metadata line",
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let (action, doc) = match (
            serde_json::from_slice::<Value>(pair[0]),
            serde_json::from_slice::<Value>(pair[1]),
        ) {
            (Ok(action), Ok(doc)) => (action, doc),
            _ => return bad_request("x_content_parse_exception", "bad JSON line"),
        };
        let meta = &action["create"];
        let (Some(index), Some(id)) = (meta["_index"].as_str(), meta["_id"].as_str()) else {
            return bad_request(
                "action_request_validation_exception",
                "only create with _index and _id is expected here",
            );
        };
        let status = state.create(index, id, doc);
        errors |= status >= 300;
        items.push(item_result(index, id, status));
    }
    state.requests.push((items.len(), text.len()));
    Reply::new(
        200,
        json!({"took": 1, "errors": errors, "items": items}).to_string(),
    )
    .header("content-type", "application/json")
}

/// The bulk body, gunzipped if it says so, when it is within the size limit (413 otherwise)
/// and is NDJSON ending in a newline.
fn bulk_body(headers: &HeaderMap, body: &[u8], max: Option<usize>) -> Result<Vec<u8>, Reply> {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let mut text = Vec::new();
    if gzip {
        if flate2::read::GzDecoder::new(body)
            .read_to_end(&mut text)
            .is_err()
        {
            return Err(bad_request("parse_exception", "bad gzip"));
        }
    } else {
        text = body.to_vec();
    }
    if max.is_some_and(|max| text.len() > max) {
        return Err(Reply::new(413, ""));
    }
    if headers
        .get("content-type")
        .is_none_or(|v| v != "application/x-ndjson")
        || !text.ends_with(b"\n")
    {
        return Err(bad_request(
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    Ok(text)
}

impl State {
    /// One `create`: an injected status if any is queued for the `_id`, 409 if the `_id` is
    /// stored already, else stored and 201.
    fn create(&mut self, index: &str, id: &str, doc: Value) -> u16 {
        if let Some(status) = self.inject.get_mut(id).and_then(VecDeque::pop_front) {
            return status;
        }
        if self.documents.contains_key(id) {
            return 409;
        }
        self.documents
            .insert(id.to_string(), (index.to_string(), doc));
        201
    }
}

/// A bulk response item for a `create`.
fn item_result(index: &str, id: &str, status: u16) -> Value {
    if status >= 300 {
        json!({"create": {"_index": index, "_id": id, "status": status,
            "error": {"type": error_type(status), "reason": format!("injected {status} for [{id}]")}}})
    } else {
        json!({"create": {"_index": index, "_id": id, "status": status, "result": "created", "_version": 1}})
    }
}
