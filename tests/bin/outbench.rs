//! `peregrine-outbench`: how fast each output drains a backlog into a local peer, measured in
//! one run so the figures compare as ratios of the webhook output's rate.
//!
//! For each output type, with batch defaults:
//! 1. start its peer (a real server where one installs here: Alertmanager, rsyslog, Redis,
//!    mosquitto, nats-server, RabbitMQ, aiosmtpd, moto; the fakes for SaaS intakes; for the
//!    webhook, Elasticsearch and Loki a sink that answers every request at once);
//! 2. start the release gateway with that one output pointed at a relay port nobody listens on
//!    yet (the output fails fast and retries every few milliseconds), and post N alerts (arrays
//!    of 1 000), so the whole backlog is in the spool;
//! 3. open the relay (plain TCP, forwarding to the peer; TLS passes through) and time until the
//!    gateway's `peregrine_output_sent_total` reaches N.
//!
//! Every output goes through the same relay, the webhook baseline too. Everything binds
//! 127.0.0.1; the run is bounded by N and a 300 s limit per output.
//!
//! ```text
//! cargo build --release --bins && target/release/peregrine-outbench [--alerts 100000] [--only redis,nats]
//! target/release/peregrine-outbench --fanout 3 --alerts 100000   # three webhooks against a lean client
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

#[path = "outbench_peers.rs"]
mod peer;

fn alert(i: usize) -> serde_json::Value {
    let mut a = peregrine_e2e::falco_alert(
        "Read sensitive file untrusted",
        "Warning",
        &["filesystem", "mitre_credential_access"],
    );
    a["hostname"] = format!("node-{}", i % 8).into();
    // Now: CloudWatch Logs refuses events older than 14 days.
    a["time"] = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
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
    /// Only these outputs (comma-separated; the webhook baseline always runs).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Instead: the webhook output with its default retry policy draining into a sink that
    /// answers 500 to this share of requests at random, against the same sink healthy.
    #[arg(long)]
    flaky: Option<f64>,
    /// Instead: three webhook outputs draining a backlog of `--alerts` into one sink, against a
    /// lean client posting the same bodies into the same sink over as many connections; this
    /// many rounds of both, alternated.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    fanout: Option<u16>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-sink") {
        let fail_ratio = args.get(3).map_or(0.0, |r| r.parse().expect("a ratio"));
        return sink(args[2].parse().expect("a port"), fail_ratio);
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
    if let Some(fail_ratio) = o.flaky {
        return rt.block_on(flaky(&o, fail_ratio));
    }
    if let Some(rounds) = o.fanout {
        return rt.block_on(fanout(&o, rounds));
    }
    println!(
        "peregrine-outbench: {} alerts per output, batch defaults, peer answering at once",
        o.alerts
    );
    println!(
        "{:<16} {:>10} {:>14} {:>8}  peer",
        "output", "alerts/s", "drain seconds", "ratio"
    );
    let mut webhook = None;
    for kind in peer::KINDS {
        if *kind != "webhook" && !o.only.is_empty() && !o.only.iter().any(|k| k == kind) {
            continue;
        }
        let (rate, secs, peer) = rt.block_on(async {
            let peer = peer::start(kind).await;
            let (rate, secs) = run(&o, kind, &peer).await;
            (rate, secs, peer.name)
        });
        let base = *webhook.get_or_insert(rate);
        println!(
            "{kind:<16} {rate:>10.0} {secs:>14.2} {:>8.2}  {peer}",
            rate / base
        );
    }
}

/// The webhook output, default retry policy, into a sink failing `fail_ratio` of requests,
/// against the same sink healthy: drain rates and their ratio.
async fn flaky(o: &Options, fail_ratio: f64) {
    println!(
        "peregrine-outbench --flaky {fail_ratio}: {} alerts, webhook output with its default retry policy",
        o.alerts
    );
    println!(
        "{:<18} {:>12} {:>9} {:>13} {:>15}",
        "receiver", "alerts/s 99%", "retries", "dead letters", "last 1 % took"
    );
    let mut healthy = None;
    for ratio in [0.0, fail_ratio] {
        let port = free_port();
        let _sink = KillOnDrop(spawn_sink_failing(port, ratio));
        let drained = drain_while_posting(o, port).await;
        let base = *healthy.get_or_insert(drained.rate);
        let receiver = format!("failing {:.0} %", ratio * 100.0);
        println!(
            "{receiver:<18} {:>12.0} {:>9} {:>13} {:>14.2}s   ratio {:.2}",
            drained.rate,
            drained.retries,
            drained.dead_letters,
            drained.tail.as_secs_f64(),
            drained.rate / base
        );
    }
}

/// Webhook outputs in the fan-out run, each with the default `max_in_flight` of 4: the lean
/// client gets as many connections.
const FANOUT_OUTPUTS: usize = 3;
const FANOUT_CONNECTIONS: usize = FANOUT_OUTPUTS * 4;

/// Deliveries per second of three webhook outputs draining a backlog into one sink, against a
/// lean HTTP/1.1 client (hyper, keep-alive, one request at a time per connection) posting the
/// same alert bodies into the same sink over as many connections; `rounds` of each, alternated.
async fn fanout(o: &Options, rounds: u16) {
    println!(
        "peregrine-outbench --fanout: {} alerts to {FANOUT_OUTPUTS} webhook outputs ({} deliveries) \
         against a lean client on {FANOUT_CONNECTIONS} connections",
        o.alerts,
        o.alerts * FANOUT_OUTPUTS
    );
    let bodies: Vec<Bytes> = (0..o.alerts)
        .map(|i| {
            let mut a = alert(i);
            // The gateway gives each alert a uuid; the lean client's bodies carry one too.
            a["uuid"] = format!("{:032x}", rand::random::<u128>()).into();
            Bytes::from(serde_json::to_vec(&a).unwrap())
        })
        .collect();
    let (mut gateway_rates, mut lean_rates) = (Vec::new(), Vec::new());
    let (mut gateway_cpu, mut lean_cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (gateway, g_cpu) = fanout_gateway(o).await;
        let (lean, l_cpu) = fanout_lean(&bodies).await;
        println!(
            "round {round}: gateway {gateway:>8.0} deliveries/s, lean client {lean:>8.0}/s, ratio {:.2}; \
             CPU per delivery: gateway {g_cpu:.1} µs, lean client {l_cpu:.1} µs",
            gateway / lean
        );
        gateway_rates.push(gateway);
        lean_rates.push(lean);
        gateway_cpu.push(g_cpu);
        lean_cpu.push(l_cpu);
    }
    println!(
        "median CPU per delivery: gateway {:.1} µs, lean client {:.1} µs (the sink's not counted)",
        median(gateway_cpu),
        median(lean_cpu)
    );
    let ratios: Vec<f64> = gateway_rates
        .iter()
        .zip(&lean_rates)
        .map(|(g, l)| g / l)
        .collect();
    println!(
        "median ratio {:.2} (gateway {:.0}/s, lean client {:.0}/s)",
        median(ratios),
        median(gateway_rates),
        median(lean_rates)
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time (user and system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("(comm)") + 2..]
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The gateway's part: the backlog is posted while the outputs' sink is not listening yet (they
/// retry every 5–10 ms), then the sink starts and the drain is timed until it counted every
/// delivery. Returns deliveries/s and the gateway's CPU µs per delivery during the drain.
async fn fanout_gateway(o: &Options) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = format!(
        "max_body_bytes: 16MiB\nspool: {{ dir: \"{}\" }}\noutputs:\n",
        tmp.path().join("spool").display()
    );
    for n in 0..FANOUT_OUTPUTS {
        config.push_str(&format!(
            "  - name: out{n}\n    type: webhook\n    url: \"http://127.0.0.1:{port}/hook\"\n    \
             retry: {{ max_attempts: 1000000, initial_backoff: 5ms, max_backoff: 10ms }}\n"
        ));
    }
    let (mut gateway, gw) = start_gateway(o, tmp.path(), &config);
    post_backlog(gw, o.alerts).await;
    let pid = gateway.id().to_string();
    let _sink = KillOnDrop(spawn_sink(port));
    let cpu_before = cpu_seconds(&pid);
    let started = Instant::now();
    let counted = wait_for_count(port, o.alerts * FANOUT_OUTPUTS, started).await;
    let rate = counted as f64 / started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(&pid) - cpu_before) * 1e6 / counted as f64;
    let _ = gateway.kill();
    let _ = gateway.wait();
    (rate, cpu)
}

/// The baseline: the same bodies, each posted once per output, by a lean client. Returns
/// deliveries/s and this process's CPU µs per delivery meanwhile (the client's; the sink is a
/// process of its own).
async fn fanout_lean(bodies: &[Bytes]) -> (f64, f64) {
    let port = free_port();
    let _sink = KillOnDrop(spawn_sink(port));
    let sink: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..FANOUT_CONNECTIONS {
        let mine: Vec<Bytes> = (0..FANOUT_OUTPUTS)
            .flat_map(|_| bodies.iter().skip(c).step_by(FANOUT_CONNECTIONS).cloned())
            .collect();
        clients.spawn(async move {
            let mut sender = peregrine_e2e::http1_connect(sink).await;
            for body in mine {
                let req = Request::builder()
                    .method("POST")
                    .uri("/hook")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .unwrap();
                let resp = sender.send_request(req).await.expect("an answer");
                assert_eq!(resp.status(), StatusCode::OK);
                resp.into_body().collect().await.unwrap();
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let counted = wait_for_count(port, bodies.len() * FANOUT_OUTPUTS, started).await;
    let rate = counted as f64 / started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds("self") - cpu_before) * 1e6 / counted as f64;
    (rate, cpu)
}

/// Polls the sink's count every 10 ms until it reaches `want` (or 300 s from `started` pass);
/// returns the count.
async fn wait_for_count(port: u16, want: usize, started: Instant) -> usize {
    let sink: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    loop {
        let (_, text) = request(sink, "GET", "/count", Vec::new()).await;
        let count: usize = text.trim().parse().unwrap_or(0);
        if count >= want || started.elapsed() > Duration::from_secs(300) {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Drained {
    /// Alerts/s from the first post until 99 % of them are settled (delivery starts while the
    /// backlog is still being posted, as it does for a gateway in service).
    rate: f64,
    /// How long the last 1 % took after that: the alerts unlucky enough to fail several times
    /// in a row wait out exponential backoffs (seconds after the 5th failure), whatever the
    /// throughput.
    tail: Duration,
    retries: u64,
    dead_letters: u64,
}

/// Posts `o.alerts` alerts to a gateway whose one webhook output (default retry policy) sends to
/// the sink on `port`, and times the drain from the first post until 99 % of them are settled
/// (sent or dead-lettered), then until all are.
async fn drain_while_posting(o: &Options, port: u16) -> Drained {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "max_body_bytes: 16MiB\nspool: {{ dir: \"{}\" }}\noutputs:\n  - name: out\n    type: webhook\n    url: \"http://127.0.0.1:{port}/hook\"\n",
        tmp.path().join("spool").display()
    );
    let (mut gateway, gw) = start_gateway(o, tmp.path(), &config);
    let started = Instant::now();
    post_backlog(gw, o.alerts).await;
    let settled = || async {
        metric(gw, "peregrine_output_sent_total{output=\"out\"").await
            + metric(gw, "peregrine_output_dead_lettered_total{output=\"out\"").await
    };
    let limit = started + Duration::from_secs(300);
    let (mut done, mut most) = (settled().await, None);
    while done < o.alerts as f64 && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
        done = settled().await;
        if most.is_none() && done >= 0.99 * o.alerts as f64 {
            most = Some((done, started.elapsed()));
        }
    }
    let (most_done, most_took) = most.unwrap_or((done, started.elapsed()));
    let drained = Drained {
        rate: most_done / most_took.as_secs_f64(),
        tail: started.elapsed().saturating_sub(most_took),
        retries: metric(gw, "peregrine_output_retries_total{output=\"out\"").await as u64,
        dead_letters: metric(gw, "peregrine_output_dead_lettered_total{output=\"out\"").await
            as u64,
    };
    let _ = gateway.kill();
    let _ = gateway.wait();
    drained
}

/// Posts `alerts` alerts to the gateway at `gw`, in arrays of 1 000.
async fn post_backlog(gw: SocketAddr, alerts: usize) {
    for start in (0..alerts).step_by(1000) {
        let body: Vec<serde_json::Value> = (start..(start + 1000).min(alerts)).map(alert).collect();
        let (status, _) = request(gw, "POST", "/", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "the gateway accepts the backlog");
    }
}

/// Starts the release gateway on a free port with `config` (a `listen` line is added) and
/// waits until it takes connections.
fn start_gateway(o: &Options, dir: &std::path::Path, config: &str) -> (Child, SocketAddr) {
    let gw: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, format!("listen: \"{gw}\"\n{config}")).unwrap();
    let gateway = Command::new(&o.gateway_bin)
        .arg("--config")
        .arg(&path)
        .env(
            "PEREGRINE_LOG",
            std::env::var("OUTBENCH_GATEWAY_LOG").unwrap_or_else(|_| "error".into()),
        )
        .envs(peer::AWS_ENV)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(gw).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (gateway, gw)
}

/// Drains `o.alerts` alerts through one output of `kind` into `peer`: alerts/s and seconds.
async fn run(o: &Options, kind: &str, peer: &peer::Peer) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let gw_port = free_port();
    let keys = peer
        .keys
        .replace("{addr}", &format!("127.0.0.1:{relay_port}"))
        .replace("{port}", &relay_port.to_string());
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
        .env(
            "PEREGRINE_LOG",
            std::env::var("OUTBENCH_GATEWAY_LOG").unwrap_or_else(|_| "error".into()),
        )
        .envs(peer::AWS_ENV)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let gw: SocketAddr = format!("127.0.0.1:{gw_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(gw).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    post_backlog(gw, o.alerts).await;

    let relay = relay(relay_port, peer.addr).await;
    let started = Instant::now();
    let limit = started + Duration::from_secs(300);
    loop {
        let sent = metric(gw, "peregrine_output_sent_total{output=\"out\"").await;
        if sent >= o.alerts as f64 {
            break;
        }
        if Instant::now() >= limit {
            // Too slow to finish: the rate so far, marked, and the run goes on.
            println!("{kind}: only {sent} of {} delivered in 300 s", o.alerts);
            relay.abort();
            let _ = gateway.kill();
            let _ = gateway.wait();
            return (sent / 300.0, 300.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let retried = metric(gw, "peregrine_output_retries_total{output=\"out\"").await;
    if std::env::var_os("OUTBENCH_DEBUG").is_some() {
        eprintln!("{kind}: {retried} retries in all (most before the relay opened)");
    }
    relay.abort();
    let _ = gateway.kill();
    let _ = gateway.wait();
    (o.alerts as f64 / secs, secs)
}

/// Listens on `port` and forwards every connection to `to`, byte for byte, until aborted.
/// Both its sockets acknowledge at once (`TCP_QUICKACK` after every read): a relay that
/// delayed its ACKs would stall peers that write an answer in pieces without `TCP_NODELAY`
/// (Python's servers) by 40 ms a request, measuring the relay instead of the output.
async fn relay(port: u16, to: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the relay port is free");
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(pump(in_read, out_write), pump(out_read, in_write));
            });
        }
    })
}

/// Copies one direction until end of stream, acknowledging every read at once.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = to.as_ref().set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let one: libc::c_int = 1;
        // SAFETY: setting an int option on a socket this task owns.
        unsafe {
            libc::setsockopt(
                from.as_ref().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn_sink(port: u16) -> Child {
    spawn_sink_failing(port, 0.0)
}

/// A sink that answers 500 to `fail_ratio` of its requests, at random.
fn spawn_sink_failing(port: u16, fail_ratio: f64) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["serve-sink", &port.to_string(), &fail_ratio.to_string()])
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
    let mut sender = peregrine_e2e::http1_connect(addr).await;
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

/// The peer: answers at once (500 to `fail_ratio` of the requests, at random), counts
/// requests, reports the count on `GET /count`.
fn sink(port: u16, fail_ratio: f64) {
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
                            _ if rand::random_bool(fail_ratio) => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
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
