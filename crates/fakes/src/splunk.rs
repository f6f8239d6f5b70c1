//! Splunk's HTTP Event Collector, as "Format events for HTTP Event Collector", "HTTP Event
//! Collector REST API endpoints" and "Troubleshoot HEC" describe it:
//!
//! - `POST /services/collector/event` with `Authorization: Splunk <token>`; the body is event
//!   objects one after another (not an array), each with a non-empty `event` and optional
//!   `time` (epoch seconds), `host`, `source`, `sourcetype`, `index`, `fields`;
//! - answers `{"text": ..., "code": N}`: 0 Success (200); 2 Token is required and 3 Invalid
//!   authorization (401); 4 Invalid token (403); 5 No data, 6 Invalid data format, 7 Incorrect
//!   index, 10 Data channel is missing, 12 Event field is required, 13 Event field cannot be
//!   blank (400); 9 Server is busy (503);
//! - with indexer acknowledgement on, every request names a channel
//!   (`X-Splunk-Request-Channel`), a success carries an `ackId`, and
//!   `POST /services/collector/ack?channel=…` with `{"acks": [ids]}` answers
//!   `{"acks": {"id": true|false}}`. Here an event is indexed (and its ack true) on the second
//!   status query, as on an indexer that takes a moment.
//!
//! [`Splunk::events`] are the events indexed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::Method;
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply, Request};

/// What the collector holds: indexed events, and per channel the requests waiting for their ack.
#[derive(Default)]
pub struct Store {
    pub events: Vec<Value>,
    /// channel → ack id → (events of the request, status queries so far).
    pending: HashMap<String, HashMap<u64, (Vec<Value>, u32)>>,
    next_ack: u64,
}

pub struct Splunk {
    token: String,
    indexes: Vec<String>,
    ack: bool,
    store: Arc<Mutex<Store>>,
}

/// A collector that takes `token` and the named indexes (plus `main`), with indexer
/// acknowledgement on when `ack`.
pub async fn start(token: &str, indexes: &[&str], ack: bool) -> (FakeService, Arc<Mutex<Store>>) {
    let store = Arc::new(Mutex::new(Store::default()));
    let mut indexes: Vec<String> = indexes.iter().map(|s| s.to_string()).collect();
    indexes.push("main".into());
    let fake = FakeService::start(Splunk {
        token: token.to_string(),
        indexes,
        ack,
        store: store.clone(),
    })
    .await;
    (fake, store)
}

/// HEC's answer body.
pub fn reply(status: u16, code: u32, text: &str) -> Reply {
    Reply::new(status, json!({"text": text, "code": code}).to_string())
        .header("content-type", "application/json")
}

impl Splunk {
    fn authorized(&self, r: &Request<'_>) -> Result<(), Reply> {
        match r.headers.get("authorization").and_then(|v| v.to_str().ok()) {
            None => Err(reply(401, 2, "Token is required")),
            Some(v) => match v.strip_prefix("Splunk ") {
                None => Err(reply(401, 3, "Invalid authorization")),
                Some(t) if t == self.token => Ok(()),
                Some(_) => Err(reply(403, 4, "Invalid token")),
            },
        }
    }

    fn channel(r: &Request<'_>) -> Option<String> {
        r.headers
            .get("x-splunk-request-channel")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| r.param("channel"))
    }

    /// The events of a body, or HEC's complaint.
    fn parse(&self, body: &[u8]) -> Result<Vec<Value>, Reply> {
        let mut events = Vec::new();
        for item in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
            let Ok(event) = item else {
                return Err(reply(400, 6, "Invalid data format"));
            };
            match event.get("event") {
                None => return Err(reply(400, 12, "Event field is required")),
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(reply(400, 13, "Event field cannot be blank"))
                }
                Some(_) => {}
            }
            if let Some(index) = event.get("index").and_then(Value::as_str) {
                if !self.indexes.iter().any(|i| i == index) {
                    return Err(reply(400, 7, "Incorrect index"));
                }
            }
            events.push(event);
        }
        if events.is_empty() {
            return Err(reply(400, 5, "No data"));
        }
        Ok(events)
    }

    fn collect(&self, r: &Request<'_>) -> Reply {
        let channel = Self::channel(r);
        if self.ack && channel.is_none() {
            return reply(400, 10, "Data channel is missing");
        }
        let events = match self.parse(r.body) {
            Ok(e) => e,
            Err(reply) => return reply,
        };
        let mut store = self.store.lock().unwrap();
        let Some(channel) = channel.filter(|_| self.ack) else {
            store.events.extend(events);
            return reply(200, 0, "Success");
        };
        let id = store.next_ack;
        store.next_ack += 1;
        store
            .pending
            .entry(channel)
            .or_default()
            .insert(id, (events, 0));
        Reply::new(
            200,
            json!({"text": "Success", "code": 0, "ackId": id}).to_string(),
        )
        .header("content-type", "application/json")
    }

    fn ack_status(&self, r: &Request<'_>) -> Reply {
        if !self.ack {
            return reply(400, 14, "ACK is disabled");
        }
        let Some(channel) = Self::channel(r) else {
            return reply(400, 10, "Data channel is missing");
        };
        let Ok(query) = serde_json::from_slice::<Value>(r.body) else {
            return reply(400, 6, "Invalid data format");
        };
        let ids: Vec<u64> = query["acks"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let mut store = self.store.lock().unwrap();
        let mut answer = serde_json::Map::new();
        for id in ids {
            let pending = store.pending.entry(channel.clone()).or_default();
            let done = match pending.get_mut(&id) {
                Some((_, polls)) if *polls == 0 => {
                    *polls += 1;
                    false
                }
                Some(_) => {
                    let (events, _) = pending.remove(&id).expect("present");
                    store.events.extend(events);
                    true
                }
                None => false,
            };
            answer.insert(id.to_string(), done.into());
        }
        Reply::new(200, json!({"acks": answer}).to_string())
            .header("content-type", "application/json")
    }
}

impl Api for Splunk {
    fn rate_key(&self, _path: &str, _body: &[u8]) -> Option<String> {
        None
    }

    fn limit(&self) -> Limit {
        Limit::Window {
            count: usize::MAX,
            window: std::time::Duration::from_secs(1),
        }
    }

    fn rate_limited(&self) -> Reply {
        reply(503, 9, "Server is busy")
    }

    fn answer(&self, _: &Method, _: &str, _: &axum::http::HeaderMap, _: &[u8]) -> Reply {
        unreachable!("answer_query is used")
    }

    fn answer_query(&self, r: &Request<'_>) -> Reply {
        if r.method != Method::POST {
            return reply(404, 404, "The requested URL was not found on this server.");
        }
        if let Err(reply) = self.authorized(r) {
            return reply;
        }
        match r.path {
            "/services/collector/event" | "/services/collector/event/1.0" => self.collect(r),
            "/services/collector/ack" => self.ack_status(r),
            _ => reply(404, 404, "The requested URL was not found on this server."),
        }
    }
}
