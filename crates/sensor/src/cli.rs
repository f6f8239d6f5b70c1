//! Subcommands.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use peregrine_engine::replay::JsonEvent;
use peregrine_engine::{Matching, RulesLoader};
use peregrine_outputs::http::Tls;
use peregrine_outputs::secret::{Secret, SecretUrl};
use reqwest::header::{HeaderName, HeaderValue};

/// Peregrine's sensor: Falco rules on live syscalls, and the rule engine's tools.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Exit 0 when a running sensor's `/healthz` answers 200 (for a container HEALTHCHECK in an
    /// image without a shell or curl), 1 otherwise.
    Healthcheck {
        /// The sensor's --metrics-listen address.
        #[arg(long, default_value = "127.0.0.1:8765")]
        addr: String,
    },
    /// Capture live with eBPF (root, or CAP_BPF and CAP_PERFMON) and raise alerts.
    Run {
        #[arg(long = "rules", required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// Gateway URL to POST alerts to (NDJSON batches of Falco's http_output body); may
        /// repeat. Every gateway gets every alert.
        #[arg(long, value_parser = SecretUrl::parse)]
        gateway: Vec<SecretUrl>,
        #[command(flatten)]
        gateway_auth: GatewayArgs,
        /// Kafka brokers to produce alerts to (host:port, comma-separated), with --kafka-topic.
        #[arg(long, requires = "kafka_topic")]
        kafka_brokers: Option<String>,
        /// The Kafka topic gateways consume (see the gateway's `inputs`).
        #[arg(long, requires = "kafka_brokers")]
        kafka_topic: Option<String>,
        #[command(flatten)]
        kafka_security: KafkaArgs,
        /// Reload the rules files when one changes (as Falco's watch_config_files); SIGHUP
        /// reloads them in any case.
        #[arg(long)]
        watch_rules: bool,
        /// Print each alert as one JSON line.
        #[arg(long)]
        stdout: bool,
        /// Serve Prometheus metrics (`/metrics`) and a liveness check (`/healthz`) on this
        /// address (e.g. 127.0.0.1:8765).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
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

/// How the sensor authenticates to gateways.
#[derive(clap::Args)]
struct GatewayArgs {
    /// CA certificate(s), PEM, that signed the gateways' certificate (besides the system's).
    #[arg(long)]
    gateway_ca: Option<PathBuf>,
    /// Client certificate, PEM, for gateways that require mutual TLS (with --gateway-key).
    #[arg(long, requires = "gateway_key")]
    gateway_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, requires = "gateway_cert")]
    gateway_key: Option<PathBuf>,
    /// Bearer token for gateways with auth.bearer_token. Prefer the environment variable: a
    /// flag's value is visible to every user in the process list.
    #[arg(long, env = "PEREGRINE_GATEWAY_TOKEN", hide_env_values = true)]
    gateway_token: Option<String>,
    /// An extra request header, 'Name: value'; may repeat.
    #[arg(long, value_parser = crate::sink::parse_header)]
    gateway_header: Vec<(HeaderName, HeaderValue)>,
}

impl GatewayArgs {
    fn client(self) -> anyhow::Result<crate::sink::GatewayClient> {
        let tls = Tls::from_files(
            self.gateway_ca.as_deref(),
            self.gateway_cert.as_deref(),
            self.gateway_key.as_deref(),
            false,
        )
        .map_err(|(key, m)| anyhow::anyhow!("--gateway-{}: {m}", key.trim_end_matches("_file")))?;
        let token = self.gateway_token.filter(|t| !t.is_empty());
        if let Some(t) = &token {
            HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| anyhow::anyhow!("--gateway-token: not a valid header value"))?;
        }
        Ok(crate::sink::GatewayClient {
            tls,
            token: token.map(Secret::new),
            headers: self.gateway_header,
        })
    }
}

/// SASL and TLS for the Kafka producer, the same settings as the gateway's `kafka` output.
#[derive(clap::Args)]
struct KafkaArgs {
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with --kafka-username and
    /// PEREGRINE_KAFKA_PASSWORD).
    #[arg(long, requires = "kafka_username")]
    kafka_sasl_mechanism: Option<String>,
    #[arg(long, requires = "kafka_sasl_mechanism")]
    kafka_username: Option<String>,
    /// SASL password; prefer PEREGRINE_KAFKA_PASSWORD (a flag shows in the process list).
    #[arg(long, env = "PEREGRINE_KAFKA_PASSWORD", hide_env_values = true)]
    kafka_password: Option<String>,
    /// Use TLS to the brokers, trusting this CA (PEM).
    #[arg(long)]
    kafka_ca: Option<PathBuf>,
    /// Client certificate for brokers that require mutual TLS (with --kafka-key).
    #[arg(long, requires = "kafka_key")]
    kafka_cert: Option<PathBuf>,
    #[arg(long, requires = "kafka_cert")]
    kafka_key: Option<PathBuf>,
}

impl KafkaArgs {
    fn target(self, brokers: String, topic: String) -> anyhow::Result<crate::sink::KafkaTarget> {
        use peregrine_outputs::kafka::client::{check_tls, Brokers, KafkaTls, Sasl};
        let brokers: Brokers = serde_json::from_value(serde_json::Value::String(brokers))
            .map_err(|e| anyhow::anyhow!("--kafka-brokers: {e}"))?;
        let sasl = match (self.kafka_sasl_mechanism, self.kafka_username) {
            (Some(mechanism), Some(username)) => Some(Sasl {
                mechanism: serde_json::from_value(serde_json::Value::String(mechanism.clone()))
                    .map_err(|_| {
                        anyhow::anyhow!("--kafka-sasl-mechanism: '{mechanism}' is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
                    })?,
                username,
                password: Secret::new(self.kafka_password.ok_or_else(|| {
                    anyhow::anyhow!("--kafka-sasl-mechanism needs PEREGRINE_KAFKA_PASSWORD (or --kafka-password)")
                })?),
            }),
            _ => None,
        };
        let tls = (self.kafka_ca.is_some() || self.kafka_cert.is_some()).then_some(KafkaTls {
            ca_file: self.kafka_ca,
            cert_file: self.kafka_cert,
            key_file: self.kafka_key,
            insecure_skip_verify: false,
        });
        check_tls(tls.as_ref())
            .map_err(|e| anyhow::anyhow!("--kafka {}: {}", e.path, e.message))?;
        Ok(crate::sink::KafkaTarget {
            brokers,
            topic,
            sasl,
            tls,
        })
    }
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

/// GETs `http://ADDR/healthz` within two seconds.
fn healthcheck(addr: &str) -> anyhow::Result<ExitCode> {
    let url = format!("http://{addr}/healthz");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()?;
        let answer = client.get(&url).send().await?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{url}: {status} {body}");
        println!("{url}: {body}");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Validate { files } => validate(&files),
        Command::Healthcheck { addr } => healthcheck(&addr),
        Command::Replay {
            rules,
            events,
            rule_matching,
            hostname,
        } => replay(&rules, &events, rule_matching, hostname),
        Command::Run {
            rules,
            gateway,
            gateway_auth,
            kafka_brokers,
            kafka_topic,
            kafka_security,
            watch_rules,
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
            log_json,
        } => {
            init_logs(log_json);
            let kafka = match kafka_brokers.zip(kafka_topic) {
                Some((brokers, topic)) => match kafka_security.target(brokers, topic) {
                    Ok(t) => Some(t),
                    Err(e) => return fail(e),
                },
                None => None,
            };
            let gateway_client = match gateway_auth.client() {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let opts = crate::run::Options {
                rules,
                watch_rules,
                gateways: gateway,
                gateway_client,
                kafka,
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
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("peregrine-sensor: {e:#}");
    ExitCode::FAILURE
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

/// Logs go to stderr (stdout carries alerts with `--stdout`); as text, or JSON lines with
/// `--log-json`, like the gateway.
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEREGRINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
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
