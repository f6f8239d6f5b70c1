//! `peregrine-backlogmem`: the gateway's resident memory with a large backlog behind a dead
//! output, against a baseline in the same run.
//!
//! Two runs of the release gateway, each fed the same N alerts (arrays of 1 000, two senders):
//! - **backlog**: one webhook output pointed at a loopback port nobody listens on, so all N
//!   alerts wait in the spool for it (`peregrine_output_queue_depth` = N);
//! - **baseline**: the same output with `min_priority: critical`, so its route passes none of
//!   the (Warning) alerts and the backlog is empty; everything else (ingest, spool, the worker
//!   reading the log) is the same.
//!
//! Resident memory (VmRSS) and its peak (VmHWM) are read from /proc once the alerts are in. The
//! claim being measured: a backlog lives on disk, not in memory, so the ratio is about 1.
//!
//! ```text
//! cargo build --release --bins && target/release/peregrine-backlogmem [--alerts 1000000]
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Gateway memory with a backlog behind a dead output, against a baseline in the same run.
#[derive(clap::Parser)]
struct Options {
    /// Alerts posted in each run.
    #[arg(long, default_value_t = 1_000_000)]
    alerts: usize,
    /// The gateway binary (by default the one beside this program).
    #[arg(long, default_value_os_t = peregrine_e2e::sibling_bin("peregrine-gateway"))]
    gateway_bin: PathBuf,
}

fn memory_kib(pid: u32) -> (u64, u64) {
    let field = |name| peregrine_e2e::proc_status_kib(pid, name);
    (field("VmRSS"), field("VmHWM"))
}

struct Run {
    rss_kib: u64,
    peak_kib: u64,
    queue_depth: f64,
    spool_bytes: f64,
    seconds: f64,
}

fn main() {
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
        "peregrine-backlogmem: {} alerts into the gateway, one output",
        o.alerts
    );
    let backlog = rt.block_on(run(&o, "warning"));
    let baseline = rt.block_on(run(&o, "critical"));
    for (name, r) in [("dead output", &backlog), ("baseline", &baseline)] {
        println!(
            "{name:<12} queue depth {:>9}  spool {:>6} MiB  RSS {:>5} MiB  peak {:>5} MiB  ({:.0} s to ingest)",
            r.queue_depth,
            r.spool_bytes as u64 >> 20,
            r.rss_kib / 1024,
            r.peak_kib / 1024,
            r.seconds
        );
    }
    println!(
        "RSS with a {}-alert backlog behind a dead output: {:.2}x the baseline (peak {:.2}x)",
        o.alerts,
        backlog.rss_kib as f64 / baseline.rss_kib as f64,
        backlog.peak_kib as f64 / baseline.peak_kib as f64
    );
}

/// Starts the gateway with a dead webhook output taking alerts from `min_priority` up, posts
/// every alert, and measures.
async fn run(o: &Options, min_priority: &str) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dead_port = peregrine_e2e::receiver::unused_port();
    let gw_port = peregrine_e2e::receiver::unused_port();
    let config = format!(
        "listen: \"127.0.0.1:{gw_port}\"\nmax_body_bytes: 16MiB\nspool: {{ dir: \"{}\", max_bytes: 8GiB }}\noutputs:\n  - {{ name: out, type: webhook, url: \"http://127.0.0.1:{dead_port}/\", min_priority: {min_priority}, retry: {{ max_attempts: 1000000, initial_backoff: 100ms, max_backoff: 1s }} }}\n",
        tmp.path().join("spool").display()
    );
    let mut gateway = start(&o.gateway_bin, tmp.path(), &config, gw_port);
    let base = format!("http://127.0.0.1:{gw_port}");
    let started = Instant::now();
    let senders = 2;
    let mut tasks = Vec::new();
    for s in 0..senders {
        let base = base.clone();
        let alerts = o.alerts;
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for from in (s * 1000..alerts).step_by(senders * 1000) {
                let body: Vec<serde_json::Value> = (from..(from + 1000).min(alerts))
                    .map(|i| peregrine_e2e::falco_alert(&format!("backlog {i}"), "Warning", &[]))
                    .collect();
                let answer = client.post(&base).json(&body).send().await.unwrap();
                assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let depth = "peregrine_output_queue_depth{output=\"out\",type=\"webhook\"}";
    let want = if min_priority == "critical" {
        0.0
    } else {
        o.alerts as f64
    };
    // The baseline's worker reads and skips the whole log: wait until it has.
    let deadline = Instant::now() + Duration::from_secs(300);
    let queue_depth = loop {
        let depth = metric(&base, depth).await;
        if depth == want || Instant::now() > deadline {
            break depth;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spool_bytes = metric(&base, "peregrine_spool_bytes").await;
    let (rss_kib, peak_kib) = memory_kib(gateway.id());
    let _ = gateway.kill();
    let _ = gateway.wait();
    Run {
        rss_kib,
        peak_kib,
        queue_depth,
        spool_bytes,
        seconds,
    }
}

fn start(bin: &Path, dir: &Path, config: &str, port: u16) -> Child {
    let path = dir.join("gateway.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .env("PEREGRINE_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The value of one series from the gateway's `/metrics`.
async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    peregrine_e2e::gateway::metric_value(&text, series)
}
