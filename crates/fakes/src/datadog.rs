//! Datadog's Logs intake v2 (`POST /api/v2/logs` with `DD-API-KEY`), as its API reference
//! describes it: a JSON array of logs, gzip or deflate allowed (`Content-Encoding`), at most
//! 1 000 logs and 5 MB uncompressed a request, a log at most 1 MB; 202 `{}` when accepted;
//! `{"errors": [...]}` with 400 (not a JSON array of objects), 403 (`Forbidden`: a bad key) and
//! 413 (too large); 429 when forced. [`Datadog::logs`] are the logs it accepted.

use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

pub struct Datadog {
    key: String,
    logs: Arc<Mutex<Vec<Value>>>,
}

/// An intake that takes `key`; the logs it accepted are in the returned list.
pub async fn start(key: &str) -> (FakeService, Arc<Mutex<Vec<Value>>>) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeService::start(Datadog {
        key: key.to_string(),
        logs: logs.clone(),
    })
    .await;
    (fake, logs)
}

/// Datadog's error body.
pub fn error(status: u16, message: &str) -> Reply {
    Reply::new(status, json!({"errors": [message]}).to_string())
        .header("content-type", "application/json")
}

impl Api for Datadog {
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
        error(429, "Too Many Requests")
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if path != "/api/v2/logs" || method != Method::POST {
            return error(404, "Not Found");
        }
        if headers.get("dd-api-key").and_then(|v| v.to_str().ok()) != Some(self.key.as_str()) {
            return error(403, "Forbidden");
        }
        let raw = match headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
        {
            Some("gzip") => {
                let mut out = Vec::new();
                if flate2::read::GzDecoder::new(body)
                    .read_to_end(&mut out)
                    .is_err()
                {
                    return error(400, "Bad Request: the body is not gzip");
                }
                out
            }
            None | Some("identity") => body.to_vec(),
            Some(other) => return error(415, &format!("Unsupported Content-Encoding {other}")),
        };
        if raw.len() > 5_000_000 {
            return error(413, "Payload too large");
        }
        let Ok(Value::Array(logs)) = serde_json::from_slice::<Value>(&raw) else {
            return error(400, "Bad Request: the body must be a JSON array of logs");
        };
        if logs.len() > 1000 {
            return error(413, "Payload too large: more than 1000 logs");
        }
        for log in &logs {
            if !log.is_object() || log.to_string().len() > 1_000_000 {
                return error(400, "Bad Request: a log must be an object of at most 1MB");
            }
        }
        self.logs.lock().unwrap().extend(logs);
        Reply::new(202, "{}").header("content-type", "application/json")
    }
}
