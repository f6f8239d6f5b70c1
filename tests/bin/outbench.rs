//! `peregrine-outbench`: how fast each output drains a backlog into a local peer that answers
//! every request at once, measured in one run so the figures compare.
//!
//! For each output type (webhook, elasticsearch, loki, alertmanager), with batch defaults:
//! 1. start the release gateway with that one output, pointed at a loopback port nobody listens
//!    on yet (the output fails fast and retries every few milliseconds);
//! 2. post N alerts (arrays of 1 000), so the whole backlog is in the spool;
//! 3. start the peer on that port and time until the gateway's `peregrine_output_sent_total`
//!    reaches N.
//!
//! The peer answers `POST /_bulk` with `{"errors":false}`, `POST /loki/api/v1/push` with 204 and
//! anything else with 200, without parsing. Everything binds 127.0.0.1; the run is bounded by N
//! and a 300 s limit per output.
//!
//! ```text
//! cargo build --release --bins && target/release/peregrine-outbench [--alerts 100000]
//! ```

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

fn alert(i: usize) -> serde_json::Value {
    let mut a = peregrine_e2e::falco_alert(
        "Read sensitive file untrusted",
        "Warning",
        &["filesystem", "mitre_credential_access"],
    );
    a["hostname"] = format!("node-{}", i % 8).into();
    a["output_fields"]["container.id"] = format!("c{}", i % 64).into();
    a
}

/// How fast each output drains a backlog into a local peer, in one run.
#[derive(clap::Parser)]
struct Options {
    /// Alerts per output.
    #[arg(long, default_value_t = 100_000)]
    alerts: usize,
    /// The gateway binary (by default the one beside this program).
    #[arg(long, default_value_os_t = peregrine_e2e::sibling_bin("peregrine-gateway"))]
    gateway_bin: PathBuf,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-sink") {
        return sink(args[2].parse().expect("a port"));
    }
    let o = <Options as clap::Parser>::parse();
    assert!(
        o.gateway_bin.exists(),
        "{} not found: run `cargo build --release --bins` first",
        o.gateway_bin.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "peregrine-outbench: {} alerts per output, batch defaults, peer answering at once",
        o.alerts
    );
    println!(
        "{:<15} {:>12} {:>14} {:>10}",
        "output", "alerts/s", "drain seconds", "requests"
    );
    let mut rates = Vec::new();
    for (kind, keys) in [
        ("webhook", "url: \"http://{peer}/hook\""),
        ("elasticsearch", "url: \"http://{peer}\""),
        ("loki", "url: \"http://{peer}\""),
        ("alertmanager", "urls: \"http://{peer}\""),
    ] {
        let (rate, secs, requests) = rt.block_on(run(&o, kind, keys));
        println!("{kind:<15} {rate:>12.0} {secs:>14.2} {requests:>10}");
        rates.push((kind, rate));
    }
    let webhook = rates[0].1;
    println!();
    for (kind, rate) in &rates[1..] {
        println!(
            "{kind}: {rate:.0} alerts/s, {:.1}x the webhook output in the same run",
            rate / webhook
        );
    }
}

/// Drains `o.alerts` alerts through one output of `kind`; alerts/s, seconds, requests the peer saw.
async fn run(o: &Options, kind: &str, keys: &str) -> (f64, f64, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let peer_port = free_port();
    let gw_port = free_port();
    let keys = keys.replace("{peer}", &format!("127.0.0.1:{peer_port}"));
    let config = format!(
        "listen: \"127.0.0.1:{gw_port}\"\nmax_body_bytes: 16MiB\nspool: {{ dir: \"{}\" }}\noutputs:\n  - name: out\n    type: {kind}\n    {keys}\n    retry: {{ max_attempts: 1000000, initial_backoff: 5ms, max_backoff: 10ms }}\n",
        tmp.path().join("spool").display()
    );
    let path = tmp.path().join("gateway.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let mut gateway = Command::new(&o.gateway_bin)
        .arg("--config")
        .arg(&path)
        .env("PEREGRINE_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let gw: SocketAddr = format!("127.0.0.1:{gw_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(gw).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    for start in (0..o.alerts).step_by(1000) {
        let body: Vec<serde_json::Value> =
            (start..(start + 1000).min(o.alerts)).map(alert).collect();
        let (status, _) = request(gw, "POST", "/", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "the gateway accepts the backlog");
    }

    let mut peer = spawn_sink(peer_port);
    let started = Instant::now();
    let limit = started + Duration::from_secs(300);
    loop {
        let sent = metric(gw, "peregrine_output_sent_total{output=\"out\"").await;
        if sent >= o.alerts as f64 {
            break;
        }
        assert!(
            Instant::now() < limit,
            "{kind}: only {sent} of {} delivered in 300 s",
            o.alerts
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (_, count) = request(
        SocketAddr::from(([127, 0, 0, 1], peer_port)),
        "GET",
        "/count",
        Vec::new(),
    )
    .await;
    for child in [&mut gateway, &mut peer] {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        o.alerts as f64 / secs,
        secs,
        count.trim().parse().unwrap_or(0),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_sink(port: u16) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["serve-sink", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child
}

/// The value of the first sample whose line starts with `prefix`.
async fn metric(addr: SocketAddr, prefix: &str) -> f64 {
    let (_, text) = request(addr, "GET", "/metrics", Vec::new()).await;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.expect("an answer");
    let status = resp.status();
    let text =
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, text)
}

/// The peer: answers at once, counts requests, reports the count on `GET /count`.
fn sink(port: u16) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        println!("{}", listener.local_addr().unwrap());
        let counter = Arc::new(AtomicU64::new(0));
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let _ = req.into_body().collect().await;
                        let response = match path.as_str() {
                            "/count" => Response::new(Full::new(Bytes::from(
                                counter.load(Ordering::Relaxed).to_string(),
                            ))),
                            "/_bulk" => {
                                counter.fetch_add(1, Ordering::Relaxed);
                                Response::new(Full::new(Bytes::from_static(br#"{"errors":false}"#)))
                            }
                            "/loki/api/v1/push" => {
                                counter.fetch_add(1, Ordering::Relaxed);
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NO_CONTENT;
                                r
                            }
                            _ => {
                                counter.fetch_add(1, Ordering::Relaxed);
                                Response::new(Full::new(Bytes::new()))
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
