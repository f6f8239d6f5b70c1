//! Where alerts go: standard output, and gateways over HTTP with Falco's `http_output` body.
//!
//! Gateway delivery runs off the capture path: alerts wait in a bounded in-memory queue, and a
//! full queue drops (and counts) rather than slow the reading of kernel records.

use std::io::Write;
use std::time::Duration;

use peregrine_engine::Alert;
use prometheus::IntCounter;
use tokio::sync::mpsc;

/// Alerts waiting for the gateways.
const QUEUE: usize = 10_000;
const ATTEMPTS: u32 = 5;

pub struct Sinks {
    stdout: bool,
    gateway: Option<mpsc::Sender<Alert>>,
    dropped: IntCounter,
}

impl Sinks {
    pub fn new(
        stdout: bool,
        gateways: Vec<String>,
        dropped: IntCounter,
        failed: IntCounter,
    ) -> (Sinks, Option<tokio::task::JoinHandle<()>>) {
        if gateways.is_empty() {
            return (
                Sinks {
                    stdout,
                    gateway: None,
                    dropped,
                },
                None,
            );
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(post_all(rx, gateways, failed));
        (
            Sinks {
                stdout,
                gateway: Some(tx),
                dropped,
            },
            Some(task),
        )
    }

    pub fn send(&self, alert: Alert) {
        if self.stdout {
            let mut line = alert.to_json_bytes();
            line.push(b'\n');
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
        if let Some(tx) = &self.gateway {
            if tx.try_send(alert).is_err() {
                self.dropped.inc();
            }
        }
    }
}

async fn post_all(mut rx: mpsc::Receiver<Alert>, gateways: Vec<String>, failed: IntCounter) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    while let Some(alert) = rx.recv().await {
        let body = alert.to_json_bytes();
        for url in &gateways {
            let mut delay = Duration::from_millis(100);
            let mut sent = false;
            for _ in 0..ATTEMPTS {
                let answer = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        sent = true;
                        break;
                    }
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => break,
                    _ => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if !sent {
                failed.inc();
                tracing::warn!(rule = %alert.rule, "could not deliver an alert to a gateway");
            }
        }
    }
}
