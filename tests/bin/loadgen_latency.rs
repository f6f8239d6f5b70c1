//! `peregrine-loadgen --latency RATE`: how long an alert takes from its POST to each delivery.
//!
//! An open-loop load (each alert has its slot in a steady schedule, whatever the answers before
//! it) posts single alerts at RATE per second, stamped with their scheduled time, first straight
//! to a receiver (the baseline: client, loopback and receiver alone), then to the release gateway
//! whose webhook outputs deliver to the same receiver. The receiver subtracts the stamp from its
//! clock on arrival. Stamping the schedule rather than the send keeps a stalled client from hiding
//! a stall (coordinated omission). Rounds alternate the two; the median round's figures are the
//! result.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::{get, runtime, spawn_gateway, spawn_self, Options, ALERT};

/// The field carrying an alert's scheduled send time (ns since the Unix epoch).
const STAMP: &str = "\"bench.sent_ns\":";

/// One phase's latencies.
struct Distribution {
    /// Microseconds, sorted.
    micros: Vec<u64>,
    posted: u64,
    errors: u64,
}

impl Distribution {
    fn ms_at(&self, p: f64) -> f64 {
        let i = ((self.micros.len() as f64 * p) as usize).min(self.micros.len().saturating_sub(1));
        self.micros
            .get(i)
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    }

    fn print(&self, target: &str, round: u16) {
        println!(
            "{target:<10} {round:>5} {:>7} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            self.posted,
            self.micros.len(),
            self.ms_at(0.50),
            self.ms_at(0.90),
            self.ms_at(0.99),
            self.ms_at(0.999),
            self.micros
                .last()
                .map_or(f64::NAN, |&us| us as f64 / 1000.0),
            self.errors
        );
    }
}

pub fn run(o: &Options, rate: u32) {
    let rt = runtime();
    let (mut receiver, receiver_addr) = spawn_self("serve-latency", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (mut gateway, gateway_addr) = spawn_gateway(o, tmp.path(), receiver_addr, false);
    println!(
        "peregrine-loadgen --latency {rate}: {rate} alerts/s for {}s per phase over {} connections, {} rounds; \
         gateway with durable spool and {} webhook outputs against posting straight to the receiver",
        o.seconds, o.connections, o.rounds, o.outputs
    );
    println!(
        "{:<10} {:>5} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "target",
        "round",
        "posted",
        "arrived",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors"
    );
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        let d = rt.block_on(phase(o, rate, receiver_addr, receiver_addr, 1));
        d.print("direct", round);
        direct.push(d);
        let g = rt.block_on(phase(o, rate, gateway_addr, receiver_addr, o.outputs));
        g.print("gateway", round);
        through.push(g);
    }
    let median = |mut runs: Vec<Distribution>| {
        runs.sort_by(|a, b| a.ms_at(0.99).total_cmp(&b.ms_at(0.99)));
        runs.swap_remove(runs.len() / 2)
    };
    let (d, g) = (median(direct), median(through));
    println!();
    println!(
        "median round: direct p50 {:.2} ms p99 {:.2} ms; through the gateway to each of {} outputs p50 {:.2} ms p99 {:.2} ms (goal p99 ≤ 5 ms); p99 ratio gateway/direct {:.1}",
        d.ms_at(0.5),
        d.ms_at(0.99),
        o.outputs,
        g.ms_at(0.5),
        g.ms_at(0.99),
        g.ms_at(0.99) / d.ms_at(0.99)
    );
    for child in [&mut gateway, &mut receiver] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Posts at `rate` to `target` for the round's length, waits until the receiver has every
/// delivery (`copies` per accepted alert, bounded by a deadline), and collects the latencies.
async fn phase(
    o: &Options,
    rate: u32,
    target: SocketAddr,
    receiver: SocketAddr,
    copies: usize,
) -> Distribution {
    let (posted, errors) = paced(target, rate, o.seconds, o.connections).await;
    let want = posted * copies as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while Instant::now() < deadline {
        got = get(receiver, "/count").await.trim().parse().unwrap_or(0);
        if got >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if got < want {
        println!("  deliveries incomplete after 60s: {got} of {want}");
    }
    let text = get(receiver, "/take").await;
    let mut micros: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    micros.sort_unstable();
    Distribution {
        micros,
        posted,
        errors,
    }
}

/// `connections` keep-alive connections, each posting on its own share of a steady schedule of
/// `rate` alerts/s for `seconds`: (accepted, errors).
async fn paced(addr: SocketAddr, rate: u32, seconds: u64, connections: usize) -> (u64, u64) {
    let connections = connections.max(1);
    let period = Duration::from_secs_f64(connections as f64 / f64::from(rate.max(1)));
    let per_connection = (u64::from(rate) * seconds).div_ceil(connections as u64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let start_ns = now_ns() + 50_000_000;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let offset = period.mul_f64(c as f64 / connections as f64);
        tasks.push(tokio::spawn(async move {
            let mut sender = peregrine_e2e::http1_connect(addr).await;
            let mut ticks = tokio::time::interval_at(start + offset, period);
            let (mut ok, mut errors) = (0u64, 0u64);
            for _ in 0..per_connection {
                let tick = ticks.tick().await;
                let scheduled = start_ns + (tick - start).as_nanos() as u64;
                let req = Request::post("/")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(stamped(scheduled)))
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.into_body().collect().await;
                        ok += 1;
                    }
                    Ok(resp) => {
                        let _ = resp.into_body().collect().await;
                        errors += 1;
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (ok, errors)
        }));
    }
    let mut totals = (0, 0);
    for t in tasks {
        let (ok, errors) = t.await.unwrap();
        totals = (totals.0 + ok, totals.1 + errors);
    }
    totals
}

/// The benchmark's alert with its scheduled send time among its output fields.
fn stamped(sent_ns: u64) -> Bytes {
    let at = ALERT.find("\"evt.time\":").expect("the alert has evt.time");
    Bytes::from(format!("{}{STAMP}{sent_ns},{}", &ALERT[..at], &ALERT[at..]))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The stamp's age in µs, read straight from the body's bytes (no JSON parse on the clock).
fn age_micros(body: &[u8], now: u64) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let digits = &text[text.find(STAMP)? + STAMP.len()..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    let sent: u64 = digits[..end].parse().ok()?;
    Some(now.saturating_sub(sent) / 1000)
}

/// The receiver: answers 200 at once, records each stamped body's age; `GET /count` says how
/// many arrived, `GET /take` hands over the ages recorded so far (one per line) and forgets them
/// and the count.
pub fn serve() {
    let rt = runtime();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let ages: Arc<Mutex<Vec<u64>>> = Arc::default();
        let count = Arc::new(AtomicU64::new(0));
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (ages, count) = (ages.clone(), count.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (ages, count) = (ages.clone(), count.clone());
                    async move { Ok::<_, Infallible>(answer(req, &ages, &count).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    req: Request<Incoming>,
    ages: &Mutex<Vec<u64>>,
    count: &AtomicU64,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = match path.as_str() {
        "/count" => count.load(Ordering::Relaxed).to_string(),
        "/take" => {
            let taken = std::mem::take(&mut *ages.lock().unwrap());
            count.store(0, Ordering::Relaxed);
            taken.iter().map(|us| format!("{us}\n")).collect()
        }
        _ => {
            if let Some(age) = age_micros(&body, now_ns()) {
                ages.lock().unwrap().push(age);
            }
            count.fetch_add(1, Ordering::Relaxed);
            String::new()
        }
    };
    Response::new(Full::new(Bytes::from(text)))
}
