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
                return Reply::new(400, json!({"error": {"type": "parse_exception", "reason": "not JSON"}, "status": 400}).to_string());
            };
            state.templates.insert(name.to_string(), v);
            return Reply::new(200, r#"{"acknowledged":true}"#);
        }
        if method != Method::POST || !path.ends_with("/_bulk") {
            return Reply::new(404, "");
        }
        let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
        let mut text = Vec::new();
        if gzip {
            if flate2::read::GzDecoder::new(body)
                .read_to_end(&mut text)
                .is_err()
            {
                return Reply::new(400, json!({"error": {"type": "parse_exception", "reason": "bad gzip"}, "status": 400}).to_string());
            }
        } else {
            text = body.to_vec();
        }
        if state.max_request_bytes.is_some_and(|max| text.len() > max) {
            return Reply::new(413, "");
        }
        if headers
            .get("content-type")
            .is_none_or(|v| v != "application/x-ndjson")
            || !text.ends_with(b"\n")
        {
            return Reply::new(400, json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}).to_string());
        }
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if !lines.len().is_multiple_of(2) {
            return Reply::new(400, json!({"error": {"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}, "status": 400}).to_string());
        }
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let (Ok(action), Ok(doc)) = (
                serde_json::from_slice::<Value>(pair[0]),
                serde_json::from_slice::<Value>(pair[1]),
            ) else {
                return Reply::new(400, json!({"error": {"type": "x_content_parse_exception", "reason": "bad JSON line"}, "status": 400}).to_string());
            };
            let meta = &action["create"];
            let (Some(index), Some(id)) = (meta["_index"].as_str(), meta["_id"].as_str()) else {
                return Reply::new(400, json!({"error": {"type": "action_request_validation_exception", "reason": "only create with _index and _id is expected here"}, "status": 400}).to_string());
            };
            let injected = state.inject.get_mut(id).and_then(VecDeque::pop_front);
            let status = match injected {
                Some(s) => s,
                None if state.documents.contains_key(id) => 409,
                None => {
                    state
                        .documents
                        .insert(id.to_string(), (index.to_string(), doc));
                    201
                }
            };
            if status >= 300 {
                errors = true;
                items.push(json!({"create": {"_index": index, "_id": id, "status": status,
                    "error": {"type": error_type(status), "reason": format!("injected {status} for [{id}]")}}}));
            } else {
                items.push(json!({"create": {"_index": index, "_id": id, "status": status, "result": "created", "_version": 1}}));
            }
        }
        state.requests.push((items.len(), text.len()));
        Reply::new(
            200,
            json!({"took": 1, "errors": errors, "items": items}).to_string(),
        )
        .header("content-type", "application/json")
    }
}
