//! An OTLP/HTTP logs receiver, as the OTLP specification describes it: `POST /v1/logs` with an
//! `ExportLogsServiceRequest` in protobuf (`Content-Type: application/x-protobuf`, gzip allowed
//! by `Content-Encoding`), decoded with the upstream definitions (`opentelemetry-proto`). It
//! answers 200 with an `ExportLogsServiceResponse`; 400 with a `google.rpc.Status` for a body
//! that does not decode, 415 for another content type, 401 without the expected header.
//! [`Otlp::requests`] are the decoded requests it accepted.

use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message as _;

use crate::bucket::Limit;
use crate::server::{Api, FakeService, Reply};

/// `google.rpc.Status`: the body of OTLP's error answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

pub struct Otlp {
    header: Option<(String, String)>,
    requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

/// A receiver that wants `header` (name, value) on every request when given.
pub async fn start(
    header: Option<(&str, &str)>,
) -> (FakeService, Arc<Mutex<Vec<ExportLogsServiceRequest>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeService::start(Otlp {
        header: header.map(|(k, v)| (k.to_string(), v.to_string())),
        requests: requests.clone(),
    })
    .await;
    (fake, requests)
}

/// An OTLP error answer: the status with a `google.rpc.Status` body.
pub fn error(status: u16, message: &str) -> Reply {
    let body = Status {
        code: 3,
        message: message.to_string(),
    }
    .encode_to_vec();
    Reply::new(status, String::from_utf8_lossy(&body).into_owned())
        .header("content-type", "application/x-protobuf")
}

impl Api for Otlp {
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
        error(429, "too many requests").header("retry-after", "1")
    }

    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if path != "/v1/logs" || method != Method::POST {
            return error(404, "not found");
        }
        if let Some((name, value)) = &self.header {
            if headers.get(name.as_str()).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
                return error(401, "missing or wrong credentials");
            }
        }
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        if content_type != Some("application/x-protobuf") {
            return error(415, "only application/x-protobuf here");
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
                    return error(400, "the body is not gzip");
                }
                out
            }
            None => body.to_vec(),
            Some(other) => return error(415, &format!("unsupported encoding {other}")),
        };
        let Ok(request) = ExportLogsServiceRequest::decode(&raw[..]) else {
            return error(400, "the body is not an ExportLogsServiceRequest");
        };
        self.requests.lock().unwrap().push(request);
        let answer = ExportLogsServiceResponse::default().encode_to_vec();
        Reply::new(200, String::from_utf8_lossy(&answer).into_owned())
            .header("content-type", "application/x-protobuf")
    }
}
