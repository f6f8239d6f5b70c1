//! Loki's push API (`POST /loki/api/v1/push`): snappy-compressed protobuf or JSON (optionally
//! gzip), `204` on success, `400` with Loki's message for a bad stream or entry.
//!
//! Checks, as Loki's distributor does: every stream has a label set in selector form with valid,
//! distinct names and non-empty values, at most 15 labels; entries in one stream come in time
//! order; no entry is older than a week or more than 10 minutes ahead. The protobuf schema is
//! written out here from Loki's `push.proto`, independently of the output's own copy, so a
//! mistake in one is caught by the other.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method};
use prost::Message as _;
use serde_json::Value;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

/// `logproto.PushRequest` and its parts, from Loki's `pkg/push/push.proto`.
mod schema {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<GoogleTimestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct GoogleTimestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub labels: BTreeMap<String, String>,
    pub timestamp_ns: i64,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct State {
    pub entries: Vec<Entry>,
    /// Entries per accepted push, and the body's size on the wire.
    pub pushes: Vec<(usize, usize)>,
    /// Which body format each push used: `protobuf` or `json`.
    pub formats: Vec<&'static str>,
}

pub type Handle = Arc<Mutex<State>>;

struct Loki(Handle);

pub async fn start() -> (FakeService, Handle) {
    let state: Handle = Arc::default();
    (FakeService::start(Loki(state.clone())).await, state)
}

/// Loki's 429 body.
pub fn rate_limited() -> Reply {
    Reply::new(429, "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '1000' lines totaling '1048576' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n")
}

fn bad(message: impl Into<String>) -> Reply {
    Reply::new(400, format!("{}\n", message.into()))
}

impl Api for Loki {
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
        rate_limited()
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if method != Method::POST || !path.ends_with("/loki/api/v1/push") {
            return Reply::new(404, "404 page not found\n");
        }
        let (streams, format) = match decode(headers, body) {
            Ok(decoded) => decoded,
            Err(reply) => return reply,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let accepted = match validate(streams, now) {
            Ok(entries) => entries,
            Err(message) => return bad(message),
        };
        let mut state = self.0.lock().unwrap();
        state.pushes.push((accepted.len(), body.len()));
        state.formats.push(format);
        state.entries.extend(accepted);
        Reply::new(204, "")
    }
}

/// The body's streams and which format it was (`json` or `protobuf`), read by Content-Type and
/// Content-Encoding as Loki reads them; otherwise the answer Loki gives.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<(Streams, &'static str), Reply> {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (content_type, encoding) = (header("content-type"), header("content-encoding"));
    let decoded = if content_type.starts_with("application/json") {
        let mut text = Vec::new();
        if encoding == "gzip" {
            if flate2::read::GzDecoder::new(body)
                .read_to_end(&mut text)
                .is_err()
            {
                return Err(bad("gzip: invalid header"));
            }
        } else {
            text = body.to_vec();
        }
        decode_json(&text).map(|s| (s, "json"))
    } else if content_type == "application/x-protobuf" {
        if !matches!(encoding, "" | "snappy") {
            let message = format!("Content-Encoding {encoding} not supported\n");
            return Err(Reply::new(415, message));
        }
        decode_protobuf(body).map(|s| (s, "protobuf"))
    } else {
        return Err(Reply::new(415, "unsupported Content-Type\n"));
    };
    decoded.map_err(bad)
}

/// Loki's distributor checks on every stream and entry, `now` being the time of the push: the
/// entries to store, or the first problem found (Loki rejects the whole push for it).
fn validate(streams: Streams, now: i64) -> Result<Vec<Entry>, String> {
    let oldest = now - 7 * 24 * 3600 * 1_000_000_000;
    let newest = now + 10 * 60 * 1_000_000_000;
    let mut accepted = Vec::new();
    for (selector, entries) in streams {
        let labels = stream_labels(&selector)?;
        let mut last = i64::MIN;
        for (ts, line, metadata) in entries {
            if ts < last {
                return Err(format!("entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {selector}"));
            }
            last = ts;
            if ts < oldest {
                return Err(format!("entry for stream '{selector}' has timestamp too old: {ts}, oldest acceptable timestamp is: {oldest}"));
            }
            if ts > newest {
                return Err(format!(
                    "entry for stream '{selector}' has timestamp too new: {ts}"
                ));
            }
            if let Some(name) = metadata.keys().find(|name| !valid_name(name)) {
                return Err(format!("invalid structured metadata name {name:?}"));
            }
            accepted.push(Entry {
                labels: labels.clone(),
                timestamp_ns: ts,
                line,
                metadata,
            });
        }
    }
    Ok(accepted)
}

/// A stream's labels: a valid selector with between 1 and 15 labels.
fn stream_labels(selector: &str) -> Result<BTreeMap<String, String>, String> {
    let labels =
        parse_selector(selector).map_err(|e| format!("error parsing labels {selector}: {e}"))?;
    if labels.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    if labels.len() > 15 {
        return Err(format!(
            "entry for stream '{selector}' has {} label names; limit 15",
            labels.len()
        ));
    }
    Ok(labels)
}

type Streams = Vec<(String, Vec<(i64, String, BTreeMap<String, String>)>)>;

fn decode_protobuf(body: &[u8]) -> Result<Streams, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let request = schema::PushRequest::decode(raw.as_slice()).map_err(|e| format!("proto: {e}"))?;
    Ok(request
        .streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let t = e.timestamp.unwrap_or_default();
                    (
                        t.seconds * 1_000_000_000 + i64::from(t.nanos),
                        e.line,
                        e.structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    )
                })
                .collect();
            (s.labels, entries)
        })
        .collect())
}

fn decode_json(body: &[u8]) -> Result<Streams, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("loghttp.PushRequest: {e}"))?;
    let streams = v["streams"].as_array().ok_or("streams is missing")?;
    let mut out = Vec::new();
    for s in streams {
        let labels = s["stream"]
            .as_object()
            .ok_or("stream must be an object of labels")?;
        let selector = format!(
            "{{{}}}",
            labels
                .iter()
                .map(|(k, v)| format!(
                    "{k}={}",
                    serde_json::to_string(v.as_str().unwrap_or("")).unwrap()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut entries = Vec::new();
        for value in s["values"].as_array().ok_or("values must be an array")? {
            let ts: i64 = value[0]
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or("a timestamp must be a string of nanoseconds")?;
            let line = value[1]
                .as_str()
                .ok_or("a line must be a string")?
                .to_string();
            let metadata = match value.get(2) {
                None => BTreeMap::new(),
                Some(m) => m
                    .as_object()
                    .ok_or("structured metadata must be an object")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect(),
            };
            entries.push((ts, line, metadata));
        }
        out.push((selector, entries));
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{a="b", c="d"}` (Prometheus selector syntax, `=` only).
pub fn parse_selector(s: &str) -> Result<BTreeMap<String, String>, String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("expected {...}")?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("expected name=\"value\"")?;
        let name = rest[..eq].trim().to_string();
        if !valid_name(&name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let after = rest[eq + 1..].trim_start();
        let mut chars = after.char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("expected a quoted value".into());
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end.ok_or("unterminated value")?;
        if value.is_empty() {
            return Err(format!("label {name} has an empty value"));
        }
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("duplicate label name {name}"));
        }
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(labels)
}
