//! Alerts to gateways over HTTP(S): NDJSON batches through the outputs crate's HTTP transport
//! and retry core, so the sensor backs off (with jitter), honours `Retry-After` and the gateway's
//! 503 when its spool is full, exactly as the gateway's own outputs do.
//!
//! Every alert has its uuid before the first attempt: a request that timed out after the
//! gateway stored it is sent again with the same ids, and the gateway stores each id once.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use peregrine_engine::Alert;
use peregrine_outputs::delivery::Failure;
use peregrine_outputs::envelope::Envelope;
use peregrine_outputs::http::{self, HttpEncoder, HttpOutput, HttpRequest, Tls};
use peregrine_outputs::output::BatchLimits;
use peregrine_outputs::retry::{
    deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy,
};
use peregrine_outputs::secret::{Secret, SecretUrl};
use prometheus::IntCounter;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Alerts waiting for one gateway; beyond it new alerts are dropped and counted, so a gateway
/// that is down never slows the reading of kernel records.
const QUEUE: usize = 10_000;

/// One request: up to 500 alerts or 512 KiB (half the gateway's default `max_body_bytes`),
/// after at most 50 ms of gathering.
const BATCH: BatchLimits = BatchLimits {
    max_events: 500,
    max_bytes: 512 * 1024,
    max_wait: Duration::from_millis(50),
};

/// The sensor keeps alerts only in memory, so it keeps trying for minutes, not hours.
const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 10,
    initial_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(30),
    timeout: Duration::from_secs(10),
};

/// How the sensor talks to every gateway: TLS, a bearer token and extra headers.
#[derive(Debug, Clone, Default)]
pub struct GatewayClient {
    pub tls: Tls,
    pub token: Option<Secret>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Falco's `http_output` body, many alerts per request as NDJSON.
struct GatewayEncoder {
    url: SecretUrl,
    headers: HeaderMap,
}

impl GatewayEncoder {
    fn new(url: SecretUrl, client: &GatewayClient) -> Self {
        let mut headers = HeaderMap::new();
        for (k, v) in &client.headers {
            headers.append(k.clone(), v.clone());
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        if let Some(token) = &client.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .expect("checked when the flag was read");
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        GatewayEncoder { url, headers }
    }
}

impl HttpEncoder for GatewayEncoder {
    fn kind(&self) -> &'static str {
        "gateway"
    }

    fn batch_limits(&self) -> BatchLimits {
        BATCH
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let mut body = BytesMut::with_capacity(batch.iter().map(|e| e.json.len() + 1).sum());
        for e in batch {
            body.put_slice(&e.json);
            body.put_u8(b'\n');
        }
        Ok(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: body.freeze(),
        })
    }
}

/// Logs retries; the core itself counts nothing.
struct LogRetries<'a> {
    url: &'a SecretUrl,
}

impl AttemptObserver for LogRetries<'_> {
    fn retrying(&self, failure: &Failure, alerts: usize) {
        tracing::debug!(gateway = %self.url, status = ?failure.status, reason = ?failure.reason, alerts, "retrying");
    }
}

/// Starts the sender for one gateway; alerts go in through the returned queue, and the task
/// ends once the queue is closed and emptied.
pub fn spawn(
    url: SecretUrl,
    client: &GatewayClient,
    failed: IntCounter,
) -> (mpsc::Sender<Alert>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let output = HttpOutput::new(
        GatewayEncoder::new(url.clone(), client),
        http::client_with_tls(1, &client.tls),
    );
    (tx, tokio::spawn(send_all(rx, output, url, failed)))
}

async fn send_all(
    mut rx: mpsc::Receiver<Alert>,
    output: HttpOutput<GatewayEncoder>,
    url: SecretUrl,
    failed: IntCounter,
) {
    let gate = PauseGate::default();
    let observer = LogRetries { url: &url };
    let mut carried = None;
    while let Some(batch) = gather(&mut rx, &mut carried).await {
        let outcomes = deliver_with_retries(&output, &batch, &POLICY, &gate, &observer).await;
        for (outcome, envelope) in outcomes.iter().zip(&batch) {
            if let Outcome::DeadLetter { failure, attempts } = outcome {
                failed.inc();
                tracing::warn!(
                    gateway = %url,
                    rule = ?envelope.alert().rule,
                    uuid = ?envelope.id(),
                    attempts,
                    reason = ?failure.reason,
                    "a gateway did not take an alert"
                );
            }
        }
    }
}

/// The next batch: what is waiting, up to the limits, gathered for at most `max_wait` after
/// the first alert. An alert that would overflow the bytes goes first in the next batch.
/// `None` once the queue is closed and empty.
async fn gather(
    rx: &mut mpsc::Receiver<Alert>,
    carried: &mut Option<Envelope>,
) -> Option<Vec<Envelope>> {
    let first = match carried.take() {
        Some(e) => e,
        None => Envelope::new(rx.recv().await?),
    };
    let deadline = tokio::time::Instant::now() + BATCH.max_wait;
    let mut bytes = first.json.len() + 1;
    let mut batch = vec![first];
    while batch.len() < BATCH.max_events {
        let Ok(Some(alert)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        let e = Envelope::new(alert);
        if bytes + e.json.len() + 1 > BATCH.max_bytes {
            *carried = Some(e);
            break;
        }
        bytes += e.json.len() + 1;
        batch.push(e);
    }
    Some(batch)
}

/// Parses `--gateway-header 'Name: value'`.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not 'Name: value'"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("header name: {e}"))?;
    let mut value =
        HeaderValue::try_from(value.trim()).map_err(|e| format!("header value: {e}"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(i: usize) -> Alert {
        let mut a = Alert::from_json(
            serde_json::json!({"hostname": "n", "output": format!("alert {i}"),
            "output_fields": {}, "priority": "Warning", "rule": "R", "source": "syscall",
            "tags": [], "time": "2026-11-28T10:00:00.000000000Z"}),
        )
        .unwrap();
        a.uuid = Some(peregrine_engine::AlertId::generate());
        a
    }

    #[test]
    fn a_batch_is_ndjson_with_the_token_and_the_given_headers() {
        let client = GatewayClient {
            tls: Tls::default(),
            token: Some(Secret::new("t0ken".to_string())),
            headers: vec![parse_header("X-Cluster: prod-eu").unwrap()],
        };
        let url = SecretUrl::parse("https://gw.example:2801/").unwrap();
        let encoder = GatewayEncoder::new(url, &client);
        let batch: Vec<Envelope> = (0..3).map(|i| Envelope::new(alert(i))).collect();
        let request = encoder.build(&batch).unwrap();
        let lines: Vec<serde_json::Value> = request
            .body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["output"], "alert 2");
        assert_eq!(lines[0]["uuid"], batch[0].id());
        assert_eq!(request.headers["content-type"], "application/x-ndjson");
        assert_eq!(request.headers["authorization"], "Bearer t0ken");
        assert_eq!(request.headers["x-cluster"], "prod-eu");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
    }

    #[tokio::test]
    async fn batches_stop_at_the_byte_limit_and_carry_the_rest() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let big = "x".repeat(100 * 1024);
        for i in 0..7 {
            let mut a = alert(i);
            a.output = big.clone();
            tx.send(a).await.unwrap();
        }
        drop(tx);
        let mut carried = None;
        let mut sizes = Vec::new();
        while let Some(batch) = gather(&mut rx, &mut carried).await {
            let bytes: usize = batch.iter().map(|e| e.json.len() + 1).sum();
            assert!(bytes <= BATCH.max_bytes);
            sizes.push(batch.len());
        }
        // Five 100 KiB alerts fit in 512 KiB; the sixth starts the next batch.
        assert_eq!(sizes, [5, 2]);
    }
}
