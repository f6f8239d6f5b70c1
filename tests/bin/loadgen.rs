//! `peregrine-loadgen`: the gateway's ingest benchmark.
//!
//! In one run it measures, over the same keep-alive HTTP/1.1 client:
//! 1. a bare hyper server that only answers 200 (the baseline),
//! 2. the durable floor: the same server answering only after each body is written and
//!    `fdatasync`ed by a group commit, and nothing else (`loadgen_durable.rs`), and
//! 3. `peregrine-gateway` (release build) with its durable spool and three webhook outputs to a
//!    local receiver,
//!
//! each over N connections posting single Falco alerts, and prints alerts/s, p50/p99 accept
//! latency, the ratios of the median rates and each round's own ratios (the host's speed can
//! drift within a run). It then waits until the three outputs have delivered every accepted alert
//! and reports that end-to-end rate too. Rounds alternate the three so machine noise hits all of
//! them; each target's median round is reported. Last, it times what one group commit costs on
//! this disk (write + `fdatasync`), so the run says how much of the machine durability took.
//!
//! Everything binds 127.0.0.1; each load phase is bounded in time and request count.
//!
//! ```text
//! cargo build --release --bins && target/release/peregrine-loadgen
//! ```

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[path = "loadgen_durable.rs"]
mod durable;
#[path = "loadgen_latency.rs"]
mod latency;

const ALERT: &str = r#"{"hostname":"node-1","output":"09:23:10.123456789: Warning Sensitive file opened for reading by non-trusted program | file=/etc/shadow gparent=systemd ggparent=<NA> gggparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 process=cat proc_exepath=/usr/bin/cat parent=bash command=cat /etc/shadow terminal=34816 container_id=host container_name=host","output_fields":{"container.id":"host","container.name":"host","evt.time":1781256190123456789,"evt.type":"openat","fd.name":"/etc/shadow","proc.aname[2]":"systemd","proc.cmdline":"cat /etc/shadow","proc.exepath":"/usr/bin/cat","proc.name":"cat","proc.pname":"bash","proc.tty":34816,"user.loginuid":-1,"user.name":"root","user.uid":0},"priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","tags":["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"],"time":"2026-06-12T09:23:10.123456789Z"}"#;

/// Ingest throughput of the gateway against a bare hyper server, in one run (or, with
/// `--console`, of the gateway with its web console's index against the same gateway without).
#[derive(clap::Parser)]
struct Options {
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Length of each round.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Requests at most per round.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Rounds of each phase, alternated (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Outputs configured on the gateway.
    #[arg(long, default_value_t = 3)]
    outputs: usize,
    /// Measure the console's cost instead: the baseline is the gateway with `ui` off, the target
    /// the same gateway with `ui.enabled` (every accepted alert indexed); also reports the
    /// index's bytes per alert.
    #[arg(long)]
    console: bool,
    /// Measure latency instead: post at this steady rate (alerts/s) and time each alert from its
    /// POST to each delivery, against posting straight to the receiver (see `loadgen_latency.rs`).
    #[arg(long)]
    latency: Option<u32>,
    /// The gateway binary (by default the one beside this program).
    #[arg(long, default_value_os_t = peregrine_e2e::sibling_bin("peregrine-gateway"))]
    gateway_bin: PathBuf,
    /// Post to a server already running at this address instead (a gateway under valgrind, for
    /// `scripts/ingest-instructions.sh`): exactly `--max-requests` alerts over `--connections`
    /// within `--seconds`, then exit, non-zero unless every one was accepted.
    #[arg(long)]
    post: Option<SocketAddr>,
}

fn main() {
    // Child modes: a bare server or a counting receiver, each in its own process.
    match std::env::args().nth(1).as_deref() {
        Some("serve-bare") => return serve(false),
        Some("serve-receiver") => return serve(true),
        Some("serve-durable") => return durable::serve(std::env::args().nth(2).unwrap().into()),
        Some("serve-latency") => return latency::serve(),
        _ => {}
    }
    let o = <Options as clap::Parser>::parse();
    if let Some(addr) = o.post {
        return post_only(addr, &o);
    }
    assert!(
        o.gateway_bin.exists(),
        "{} not found: run `cargo build --release --bins` first",
        o.gateway_bin.display()
    );
    if let Some(rate) = o.latency {
        return latency::run(&o, rate);
    }
    let rt = runtime();

    let (mut receiver, receiver_addr) = spawn_self("serve-receiver", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (mut bare, bare_addr) = if o.console {
        spawn_gateway(&o, &tmp.path().join("ui-off"), receiver_addr, false)
    } else {
        spawn_self("serve-bare", &[])
    };
    let mut floor = (!o.console).then(|| spawn_self("serve-durable", &[tmp.path().as_os_str()]));
    let (mut gateway, gateway_addr) =
        spawn_gateway(&o, &tmp.path().join("gw"), receiver_addr, o.console);
    let targets = Targets {
        bare: bare_addr,
        durable: floor.as_ref().map(|(_, addr)| *addr),
        gateway: gateway_addr,
        receiver: receiver_addr,
    };
    let (baseline, target) = names(&o);

    println!(
        "peregrine-loadgen: {} connections, {}s per phase, {} rounds, gateway with durable spool and {} webhook outputs; {target} against {baseline}",
        o.connections,
        o.seconds,
        o.rounds,
        o.outputs
    );
    println!(
        "{:<10} {:>6} {:>12} {:>10} {:>10} {:>10}",
        "target", "round", "alerts/s", "p50 ms", "p99 ms", "errors"
    );
    let mut rounds = Rounds::default();
    for round in 1..=o.rounds {
        rounds.run(&rt, &o, targets, round);
    }
    let (commits, records) = rounds.report(&rt, &o, gateway_addr);
    if o.console {
        rt.block_on(print_index_cost(
            gateway_addr,
            &tmp.path().join("gw"),
            records,
        ));
    }
    let floor = floor.as_mut().map(|(child, _)| child);
    for child in [
        Some(&mut gateway),
        Some(&mut bare),
        Some(&mut receiver),
        floor,
    ]
    .into_iter()
    .flatten()
    {
        let _ = child.kill();
        let _ = child.wait();
    }
    print_fsync_cost(tmp.path(), &rounds.gateway, commits, records);
}

/// The runtime of each of this program's processes: two workers, like the gateway's on these
/// two-core machines.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `--post`: the alert posted `--max-requests` times to a running server; exits non-zero unless
/// every one was accepted.
fn post_only(addr: SocketAddr, o: &Options) {
    let rt = runtime();
    let stats = rt.block_on(load(addr, o));
    println!(
        "{} accepted, {} refused or failed, {:.0} alerts/s",
        stats.ok, stats.errors, stats.rate
    );
    if stats.ok != o.max_requests {
        std::process::exit(1);
    }
}

/// The baseline's and the target's names in the report.
fn names(o: &Options) -> (&'static str, &'static str) {
    if o.console {
        ("ui-off", "ui-on")
    } else {
        ("bare", "gateway")
    }
}

/// Where the load goes: the bare server, the durable floor (not with `--console`), the gateway,
/// and the receiver behind its outputs.
#[derive(Clone, Copy)]
struct Targets {
    bare: SocketAddr,
    durable: Option<SocketAddr>,
    gateway: SocketAddr,
    receiver: SocketAddr,
}

/// What the rounds measured.
#[derive(Default)]
struct Rounds {
    bare: Vec<Stats>,
    durable: Vec<Stats>,
    gateway: Vec<Stats>,
    /// Alerts per second accepted and delivered to every output, per round.
    end_to_end: Vec<f64>,
    accepted: u64,
}

impl Rounds {
    /// One round: the bare server, the durable floor, then the gateway until every output has
    /// every alert.
    fn run(&mut self, rt: &tokio::runtime::Runtime, o: &Options, to: Targets, round: u16) {
        let b = rt.block_on(load(to.bare, o));
        print_row(names(o).0, round, &b);
        self.bare.push(b);
        if let Some(durable) = to.durable {
            let d = rt.block_on(load(durable, o));
            print_row("durable", round, &d);
            self.durable.push(d);
        }
        let before = rt.block_on(received(to.receiver));
        let started = Instant::now();
        let g = rt.block_on(load(to.gateway, o));
        print_row(names(o).1, round, &g);
        if o.console {
            // The index catches up before the baseline's next phase, not during it.
            rt.block_on(wait_indexed(to.gateway));
        }
        self.accepted += g.ok;
        let want = before + g.ok * o.outputs as u64;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let got = rt.block_on(received(to.receiver));
            if got >= want {
                break;
            }
            if Instant::now() > deadline {
                println!("  deliveries incomplete after 300s: {got} of {want}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.end_to_end
            .push((g.ok as f64) / started.elapsed().as_secs_f64());
        self.gateway.push(g);
    }

    /// Prints the medians and ratios, and the group commit's figures; returns the gateway's
    /// (fsyncs, alerts written).
    fn report(
        &mut self,
        rt: &tokio::runtime::Runtime,
        o: &Options,
        gateway: SocketAddr,
    ) -> (f64, f64) {
        let (b, g) = (median(&self.bare), median(&self.gateway));
        self.end_to_end.sort_by(|a, b| a.total_cmp(b));
        let e2e = self.end_to_end[self.end_to_end.len() / 2];
        println!();
        let (baseline, target) = names(o);
        println!(
            "median {baseline:<8} {:>9.0} alerts/s  p50 {:.2} ms  p99 {:.2} ms",
            b.rate, b.p50_ms, b.p99_ms
        );
        println!(
            "median {target:<8} {:>9.0} alerts/s  p50 {:.2} ms  p99 {:.2} ms",
            g.rate, g.p50_ms, g.p99_ms
        );
        println!(
            "ratio {target}/{baseline} (accept rate): {:.2}",
            g.rate / b.rate
        );
        println!("{}", per_round_ratios(&self.bare, &self.gateway));
        if !self.durable.is_empty() {
            self.report_floor(&b, &g);
        }
        println!(
            "end to end (accepted and delivered to all {} outputs): {:.0} alerts/s, ratio to bare {:.2}",
            o.outputs,
            e2e,
            e2e / b.rate
        );
        let metrics = rt.block_on(get(gateway, "/metrics"));
        let value = |name: &str| {
            metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.trim().parse::<f64>().ok())
                })
                .unwrap_or(0.0)
        };
        let (commits, records) = (
            value("peregrine_spool_commits_total"),
            value("peregrine_spool_records_total"),
        );
        println!(
            "group commit: {records:.0} alerts in {commits:.0} fsyncs ({:.1} alerts per fsync); {} accepted in all",
            records / commits.max(1.0),
            self.accepted
        );
        (commits, records)
    }

    /// The durable floor's median, and both ratios it splits the gateway's into: what
    /// durability itself leaves of the bare server's rate, and what the gateway reaches of that.
    fn report_floor(&self, bare: &Stats, gateway: &Stats) {
        let d = median(&self.durable);
        println!(
            "median durable  {:>9.0} alerts/s  p50 {:.2} ms  p99 {:.2} ms  (hyper + group commit, nothing else)",
            d.rate, d.p50_ms, d.p99_ms
        );
        println!(
            "ratio durable/bare: {:.2}; {}",
            d.rate / bare.rate,
            per_round_ratios(&self.bare, &self.durable)
        );
        println!(
            "ratio gateway/durable: {:.2}; {}",
            gateway.rate / d.rate,
            per_round_ratios(&self.durable, &self.gateway)
        );
    }
}

/// The round of median rate.
fn median(runs: &[Stats]) -> Stats {
    let mut runs = runs.to_vec();
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[runs.len() / 2].clone()
}

/// Each round's ratio of its two phases, which ran seconds apart: on a shared host whose speed
/// drifts, these say how far apart the two medians' ratio could land.
fn per_round_ratios(baseline: &[Stats], target: &[Stats]) -> String {
    let mut ratios: Vec<f64> = baseline
        .iter()
        .zip(target)
        .map(|(b, t)| t.rate / b.rate)
        .collect();
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    format!(
        "per round: {} (median {:.2})",
        listed.join(" / "),
        ratios[ratios.len() / 2]
    )
}

/// What durability costs on this disk, measured on the now idle machine: the gateway's CPU
/// budget per alert is small enough that one fsync's CPU time is worth several alerts.
fn print_fsync_cost(dir: &Path, gateway_runs: &[Stats], commits: f64, records: f64) {
    let load_seconds: f64 = gateway_runs.iter().map(|r| r.ok as f64 / r.rate).sum();
    let fsync = fsync_cost(dir, records / commits.max(1.0));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_second = commits / load_seconds.max(f64::EPSILON);
    println!(
        "fsync on this disk (write of one group + fdatasync, idle machine): p50 {:.0} µs wall, {:.0} µs CPU per call; \
         {per_second:.0} fsyncs/s during the gateway phases = {:.0} % of {cores} cores",
        fsync.p50_wall_us,
        fsync.cpu_us,
        100.0 * per_second * fsync.cpu_us / 1e6 / cores
    );
}

struct FsyncCost {
    p50_wall_us: f64,
    cpu_us: f64,
}

/// Times writes of one average group followed by `fdatasync`, as the spool writer does, in a
/// scratch file on the spool's filesystem: over zeros written (and synced) ahead, as the writer
/// keeps them, so that an fsync need not make a new file size durable. CPU time is this
/// thread's (user + system).
fn fsync_cost(dir: &std::path::Path, alerts_per_group: f64) -> FsyncCost {
    const CALLS: usize = 1000;
    let path = dir.join("fsync-calibration");
    let mut file = std::fs::File::create(&path).expect("create the calibration file");
    let group = vec![b'x'; (alerts_per_group.max(1.0) * (ALERT.len() + 64) as f64) as usize];
    file.write_all(&vec![0; group.len() * CALLS])
        .and_then(|()| file.sync_data())
        .expect("write zeros ahead in the calibration file");
    let thread_cpu = || {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        us(usage.ru_utime) + us(usage.ru_stime)
    };
    let mut walls = Vec::with_capacity(CALLS);
    let cpu_before = thread_cpu();
    for _ in 0..CALLS {
        let started = Instant::now();
        file.write_all_at(&group, (walls.len() * group.len()) as u64)
            .expect("write the calibration file");
        file.sync_data().expect("fdatasync the calibration file");
        walls.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let cpu = (thread_cpu() - cpu_before) / CALLS as f64;
    drop(file);
    let _ = std::fs::remove_file(&path);
    walls.sort_by(|a, b| a.total_cmp(b));
    FsyncCost {
        p50_wall_us: walls[CALLS / 2],
        cpu_us: cpu,
    }
}

#[derive(Clone)]
struct Stats {
    ok: u64,
    errors: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn print_row(target: &str, round: u16, s: &Stats) {
    println!(
        "{target:<10} {round:>6} {:>12.0} {:>10.2} {:>10.2} {:>10}",
        s.rate, s.p50_ms, s.p99_ms, s.errors
    );
}

/// N keep-alive connections, each posting one alert at a time until the time or count runs out.
async fn load(addr: SocketAddr, o: &Options) -> Stats {
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let sent = sent.clone();
        let max = o.max_requests;
        tasks.push(tokio::spawn(async move {
            let mut sender = peregrine_e2e::http1_connect(addr).await;
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max {
                let req = Request::post("/")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(ALERT.as_bytes())))
                    .unwrap();
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            latencies.push(t.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    Stats {
        ok: all.len() as u64,
        errors,
        rate: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// Starts this binary in a server mode (with its arguments) and reads the address it prints.
fn spawn_self(mode: &str, args: &[&std::ffi::OsStr]) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(mode)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        child,
        line.trim().parse().expect("the server prints its address"),
    )
}

/// The console's user for `--console` runs.
const BENCH_PASSWORD: &str = "bench-password";

/// The gateway's `ui` section with one user whose hash `hash-password` makes.
fn console_section(o: &Options) -> String {
    let mut child = Command::new(&o.gateway_bin)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    writeln!(child.stdin.take().unwrap(), "{BENCH_PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    format!(
        "ui:\n  enabled: true\n  users: [{{ name: bench, password_hash: \"{}\", role: viewer }}]\n",
        hash.trim()
    )
}

/// Waits (at most 300 s) until the console has indexed every alert the gateway stored, so that
/// its catching up does not run into the next phase; false if it did not.
async fn wait_indexed(gateway: SocketAddr) -> bool {
    let cookie = login(gateway).await;
    let metrics = get(gateway, "/metrics").await;
    let records = metrics
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_spool_records_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let page = get_with(gateway, "/ui/api/alerts?limit=1", &cookie).await;
        let newest = serde_json::from_str::<serde_json::Value>(&page)
            .ok()
            .and_then(|v| v["alerts"][0]["seq"].as_f64());
        if newest.is_some_and(|seq| seq + 1.0 >= records) {
            return true;
        }
        if Instant::now() > deadline {
            println!("index incomplete after 300 s: newest {newest:?} of {records} alerts");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints the index's size per alert (the SQLite file and its write-ahead log) once it holds
/// every stored alert.
async fn print_index_cost(gateway: SocketAddr, dir: &Path, records: f64) {
    if !wait_indexed(gateway).await {
        return;
    }
    let index = dir.join("spool/console/index.sqlite");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let bytes = size(&index) + size(&PathBuf::from(format!("{}-wal", index.display())));
    println!(
        "console index: {records:.0} alerts in {bytes} bytes on disk, {:.0} bytes per alert (the alert's JSON is {} bytes)",
        bytes as f64 / records.max(1.0),
        ALERT.len()
    );
}

/// Signs in to the console; returns the `Cookie` header value.
async fn login(addr: SocketAddr) -> String {
    let mut sender = peregrine_e2e::http1_connect(addr).await;
    let body = format!("{{\"name\":\"bench\",\"password\":\"{BENCH_PASSWORD}\"}}");
    let req = Request::post("/ui/api/login")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.expect("answer");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// GETs `path`, with a `Cookie` header unless `cookie` is empty.
async fn get_with(addr: SocketAddr, path: &str, cookie: &str) -> String {
    let mut sender = peregrine_e2e::http1_connect(addr).await;
    let mut req = Request::get(path).header("host", "127.0.0.1");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = sender.send_request(req).await.expect("answer");
    String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

fn spawn_gateway(
    o: &Options,
    dir: &std::path::Path,
    receiver: SocketAddr,
    console: bool,
) -> (Child, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = format!(
        "listen: \"127.0.0.1:{port}\"\nspool: {{ dir: \"{}\" }}\noutputs:\n",
        dir.join("spool").display()
    );
    for i in 0..o.outputs {
        config.push_str(&format!(
            "  - {{ name: hook{i}, type: webhook, url: \"http://{receiver}/hook{i}\" }}\n"
        ));
    }
    if console {
        config.push_str(&console_section(o));
    }
    let path = dir.join("gateway.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let child = Command::new(&o.gateway_bin)
        .arg("--config")
        .arg(&path)
        .env("PEREGRINE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

async fn get(addr: SocketAddr, path: &str) -> String {
    get_with(addr, path, "").await
}

/// Requests the receiver has counted.
async fn received(addr: SocketAddr) -> u64 {
    get(addr, "/count").await.trim().parse().unwrap_or(0)
}

/// A hyper server on 127.0.0.1 that answers 200 to everything. As a receiver it also counts the
/// requests it got and reports the count on `GET /count`.
fn serve(count: bool) {
    let counter = Arc::new(AtomicU64::new(0));
    serve_http(move |req| {
        let counter = counter.clone();
        async move {
            let is_count = count && req.uri().path() == "/count";
            let _ = req.into_body().collect().await;
            let body = if is_count {
                counter.load(Ordering::Relaxed).to_string()
            } else {
                if count {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                String::new()
            };
            Response::new(Full::new(Bytes::from(body)))
        }
    });
}

/// Serves HTTP/1.1 on 127.0.0.1 on this program's runtime, printing the address first; `handle`
/// answers every request.
fn serve_http<F, A>(handle: F)
where
    F: Fn(Request<Incoming>) -> A + Clone + Send + Sync + 'static,
    A: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = handle(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
