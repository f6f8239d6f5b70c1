//! Subcommands.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use peregrine_engine::replay::JsonEvent;
use peregrine_engine::{Matching, RulesLoader};

/// Peregrine's sensor: Falco rules on live syscalls, and the rule engine's tools.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load rules files in order (later files may append/override) and report every problem.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evaluate JSON-lines events against rules and print one Falco JSON alert per match.
    Replay {
        #[arg(long = "rules", required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// JSON-lines events; `-` reads standard input.
        #[arg(long)]
        events: PathBuf,
        /// Falco's rule_matching: the first matching rule only, or every one.
        #[arg(long, value_enum, default_value_t = MatchMode::First)]
        rule_matching: MatchMode,
        /// The alerts' hostname (default: this machine's).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Capture live with eBPF (root, or CAP_BPF and CAP_PERFMON) and raise alerts.
    Run {
        #[arg(long = "rules", required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// Gateway URL to POST alerts to (Falco's http_output body); may repeat.
        #[arg(long)]
        gateway: Vec<String>,
        /// Kafka brokers to produce alerts to (host:port, comma-separated), with --kafka-topic.
        #[arg(long, requires = "kafka_topic")]
        kafka_brokers: Option<String>,
        /// The Kafka topic gateways consume (see the gateway's `inputs`).
        #[arg(long, requires = "kafka_brokers")]
        kafka_topic: Option<String>,
        /// Print each alert as one JSON line.
        #[arg(long)]
        stdout: bool,
        /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:8765).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Write every evaluated event as a replay JSON line.
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Ring buffer size in bytes (a power of two, at least one page).
        #[arg(long, default_value_t = 8 << 20)]
        ring_bytes: u32,
        /// The alerts' hostname (default: FALCO_HOSTNAME or this machine's).
        #[arg(long)]
        hostname: Option<String>,
        /// Drop share per second above which a drop alert is raised (Falco's default 0.1).
        #[arg(long, default_value_t = 0.1)]
        drop_threshold: f64,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Send every event of the needed syscalls to user space, without the kernel-side
        /// filters derived from the rules (for comparison and debugging).
        #[arg(long)]
        no_kernel_filters: bool,
        /// A Docker Engine API socket (Docker, or Podman's compatible socket) to read container
        /// names and images from; may repeat. Default: /var/run/docker.sock and
        /// /run/podman/podman.sock, those that exist.
        #[arg(long)]
        docker_socket: Vec<PathBuf>,
        /// A Kubernetes CRI socket (containerd, CRI-O) to read container names, images and pods
        /// from; may repeat. Default: containerd's, CRI-O's and k3s's usual sockets that exist.
        #[arg(long)]
        cri_socket: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MatchMode {
    First,
    All,
}

/// The runtimes to ask about containers: those given, or else the usual sockets present.
fn engines(docker: Vec<PathBuf>, cri: Vec<PathBuf>) -> Vec<crate::runtime::Engine> {
    use crate::runtime::{CriApi, DockerApi, Engine};
    if docker.is_empty() && cri.is_empty() {
        return crate::runtime::default_engines();
    }
    let docker = docker
        .into_iter()
        .map(|s| Engine::Docker(DockerApi::new(s)));
    docker
        .chain(cri.into_iter().map(|s| Engine::Cri(CriApi::new(s))))
        .collect()
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Validate { files } => validate(&files),
        Command::Replay {
            rules,
            events,
            rule_matching,
            hostname,
        } => replay(&rules, &events, rule_matching, hostname),
        Command::Run {
            rules,
            gateway,
            kafka_brokers,
            kafka_topic,
            stdout,
            metrics_listen,
            capture,
            ring_bytes,
            hostname,
            drop_threshold,
            duration,
            no_kernel_filters,
            docker_socket,
            cri_socket,
        } => {
            init_logs();
            let opts = crate::run::Options {
                rules,
                gateways: gateway,
                kafka: kafka_brokers
                    .zip(kafka_topic)
                    .map(|(brokers, topic)| crate::sink::KafkaTarget { brokers, topic }),
                stdout,
                metrics_listen,
                capture,
                ring_bytes,
                hostname: hostname.unwrap_or_else(local_hostname),
                drop_threshold,
                duration: duration.map(std::time::Duration::from_secs_f64),
                kernel_filters: !no_kernel_filters,
                container_engines: engines(docker_socket, cri_socket),
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(crate::run::run(opts)))
                .map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("peregrine-sensor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(files: &[PathBuf]) -> peregrine_engine::LoadResult {
    let mut loader = RulesLoader::new();
    for f in files {
        loader.add_file(f);
    }
    loader.load()
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let result = load(files);
    let mut out = std::io::stdout().lock();
    for line in result.render() {
        writeln!(out, "{line}")?;
    }
    let errors = result.errors().count();
    let warnings = result.warnings().count();
    writeln!(
        out,
        "{}: {} rules, {} macros, {} lists, {errors} errors, {warnings} warnings",
        if errors == 0 { "ok" } else { "invalid" },
        result.counts.rules,
        result.counts.macros,
        result.counts.lists
    )?;
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn replay(
    rules: &[PathBuf],
    events: &PathBuf,
    mode: MatchMode,
    hostname: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut result = load(rules);
    if result.has_errors() {
        for line in result.render() {
            eprintln!("{line}");
        }
        anyhow::bail!("the rules do not load");
    }
    result.ruleset.matching = match mode {
        MatchMode::First => Matching::First,
        MatchMode::All => Matching::All,
    };
    let hostname = hostname.unwrap_or_else(local_hostname);
    let input: Box<dyn BufRead> = if events.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(events)
                .with_context(|| format!("cannot open {}", events.display()))?,
        ))
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut matches = Vec::new();
    let mut bad_lines = 0usize;
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", events.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = match JsonEvent::parse(&line) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}:{}: {e}", events.display(), n + 1);
                bad_lines += 1;
                continue;
            }
        };
        matches.clear();
        result.ruleset.evaluate(&event, &mut matches);
        for rule in &matches {
            let alert = rule.alert(&event, &hostname);
            out.write_all(&alert.to_json_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(if bad_lines == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEREGRINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn local_hostname() -> String {
    std::env::var("FALCO_HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".to_string())
}
