//! `peregrine-gateway`: run the gateway, or check a configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use peregrine_gateway::{Config, Gateway};
use tracing_subscriber::EnvFilter;

/// mimalloc: ingest and delivery allocate many small, short-lived buffers; glibc's allocator
/// spent about a tenth of the gateway's CPU on them under load (perf, see the README benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Durable Falco-compatible alert gateway (the Falcosidekick role).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The YAML configuration file.
    #[arg(
        long,
        global = true,
        env = "PEREGRINE_CONFIG",
        default_value = "/etc/peregrine/gateway.yaml"
    )]
    config: PathBuf,
    /// Validate the configuration, print every problem with its key path, and exit 0, or 78
    /// (EX_CONFIG) when it has problems.
    #[arg(long)]
    check_config: bool,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Look at dead letters, or put them back in the spool for their output.
    #[command(subcommand)]
    DeadLetters(DeadLetters),
    /// Print a Peregrine configuration made from a Falcosidekick configuration (the file and
    /// Falcosidekick's environment variables, such as SLACK_WEBHOOKURL), and on stderr every
    /// setting that could not be carried over and why.
    Migrate {
        /// Falcosidekick's config.yaml (`-` for none: environment variables only).
        #[arg(long, value_name = "FILE")]
        from_falcosidekick: PathBuf,
    },
    /// Read a password on stdin (without echo on a terminal) and print its argon2id hash for
    /// `ui.users[].password_hash`.
    HashPassword,
    /// Exit 0 when the gateway of this configuration answers `/healthz` with 200 (for a
    /// container HEALTHCHECK in an image without a shell or curl), 1 otherwise.
    Healthcheck,
}

#[derive(clap::Subcommand)]
enum DeadLetters {
    /// One line per dead letter (time, output, reason, status, attempts, uuid, rule).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the stored JSON lines instead.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in the spool for their output only (with the gateway stopped;
    /// they are delivered when it starts). Replayed ones move to dead-letter/replayed/.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(clap::Args)]
struct FilterArgs {
    /// Only this output's dead letters (required for replay).
    #[arg(long)]
    output: Option<String>,
    /// Only this reason word (http_400, retries_exhausted, channel_not_found, …) or reason text.
    #[arg(long)]
    reason: Option<String>,
    /// Only those since this RFC 3339 time (2026-12-03T08:00:00Z) or this long ago (2h, 30m).
    #[arg(long)]
    since: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> anyhow::Result<peregrine_gateway::redrive::Filter> {
        let since = match self.since {
            None => None,
            Some(s) => Some(match s.parse::<peregrine_outputs::duration::ConfigDuration>() {
                Ok(ago) => {
                    let now = peregrine_engine::EventTime::now().unix_nanos();
                    let then = now.saturating_sub(ago.0.as_nanos() as i64);
                    peregrine_engine::EventTime::from_unix_nanos(then).to_string()
                }
                Err(_) if s.contains('T') => s,
                Err(_) => anyhow::bail!("--since: '{s}' is neither a time (2026-12-03T08:00:00Z) nor a duration (2h)"),
            }),
        };
        Ok(peregrine_gateway::redrive::Filter {
            output: self.output,
            reason: self.reason,
            since,
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.log_json);
    if let Some(Command::Migrate { from_falcosidekick }) = &args.command {
        return migrate(from_falcosidekick);
    }
    if let Some(Command::HashPassword) = &args.command {
        return hash_password();
    }
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", args.config.display());
            }
            eprintln!("{}: {} problem(s)", args.config.display(), errors.0.len());
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Some(Command::Healthcheck) = args.command {
        return match healthcheck(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("peregrine-gateway healthcheck: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::DeadLetters(command)) = args.command {
        return match dead_letters(&config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("peregrine-gateway: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.check_config {
        print_checked_config(&args.config, &config);
        return ExitCode::SUCCESS;
    }
    match run(config, args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `migrate --from-falcosidekick FILE`: the config on stdout, the notes on stderr.
fn migrate(file: &Path) -> ExitCode {
    let text = if file == Path::new("-") {
        Ok(String::new())
    } else {
        std::fs::read_to_string(file)
    };
    let migrated = text.map_err(|e| e.to_string()).and_then(|text| {
        peregrine_gateway::migrate::from_falcosidekick(&text, std::env::vars().collect())
    });
    match migrated {
        Ok(migration) => {
            print!("{}", migration.config);
            for note in &migration.notes {
                eprintln!("{note}");
            }
            eprintln!("{} setting(s) to look at", migration.notes.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// `hash-password`: one line from stdin (a terminal is asked twice, without echo), its hash on
/// stdout. An empty password is refused: the console has no passwordless users.
fn hash_password() -> ExitCode {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let read = |prompt: &str| -> std::io::Result<String> {
        if stdin.is_terminal() {
            eprint!("{prompt}");
        }
        let _quiet = stdin.is_terminal().then(NoEcho::new);
        let mut line = String::new();
        stdin.read_line(&mut line)?;
        if stdin.is_terminal() {
            eprintln!();
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let password = match read("Password: ") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("peregrine-gateway hash-password: cannot read stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    if password.is_empty() {
        eprintln!("peregrine-gateway hash-password: the password is empty");
        return ExitCode::FAILURE;
    }
    if stdin.is_terminal() && read("Again: ").ok().as_deref() != Some(password.as_str()) {
        eprintln!("peregrine-gateway hash-password: the passwords differ");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        peregrine_gateway::console::config::hash_password(&password)
    );
    ExitCode::SUCCESS
}

/// Turns the terminal's echo off on stdin while it lives.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own; failures leave echo on.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return NoEcho(None);
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &quiet);
            NoEcho(Some(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

/// GETs `/healthz` on the configured listener (its loopback side when it listens on every
/// address) within two seconds. Over TLS the certificate is not checked: the probe runs beside
/// the gateway and asks only whether it answers.
fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{addr}/healthz");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .danger_accept_invalid_certs(true)
            .build()?;
        let answer = client.get(&url).send().await.context(url.clone())?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{url}: {status} {body}");
        println!("{url}: {body}");
        Ok(())
    })
}

/// Logs go to stderr: stdout belongs to the `stdout` output.
fn init_logs(json: bool) {
    let filter =
        EnvFilter::try_from_env("PEREGRINE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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

/// `--check-config`: what the gateway would run with, without a secret.
fn print_checked_config(path: &Path, config: &Config) {
    println!("{}: OK (sha256 {}…)", path.display(), config.hash);
    println!("  listen {}", config.listen);
    match &config.tls {
        None => println!("  tls off (plaintext)"),
        Some(tls) => {
            let clients = tls
                .files
                .client_ca_file
                .as_ref()
                .map_or(String::new(), |ca| {
                    format!(", clients signed by {}", ca.display())
                });
            let mode = if tls.is_mutual() { "mutual" } else { "server" };
            println!(
                "  tls {mode} with {}{clients}",
                tls.files.cert_file.display()
            );
        }
    }
    let l = &config.limits;
    println!(
        "  limits: header {}s, body {}s, idle {}s, {} connections, {} body bytes in flight",
        l.header_timeout.as_secs_f64(),
        l.body_timeout.as_secs_f64(),
        l.idle_timeout.as_secs_f64(),
        l.max_connections,
        l.inflight_body_bytes
    );
    let auth = match config.bearer_token {
        Some(_) => "bearer token (***)",
        None => "off",
    };
    println!("  auth {auth}");
    println!(
        "  spool {} (max {} bytes)",
        config.spool.dir.display(),
        config.spool.max_bytes
    );
    for o in &config.outputs {
        let describe = o.settings.describe();
        println!("  output {} ({}) -> {describe}", o.name, o.output_type);
        if let Some(storm) = &o.storm {
            println!(
                "    dedup: one alert per {} per {}s window, then a digest",
                storm.fingerprint.fields().join(" + "),
                storm.window.as_secs_f64()
            );
        }
    }
    for i in &config.inputs {
        println!("  input <- {}", i.describe());
    }
    match &config.ui {
        None => println!("  ui off"),
        Some(ui) => {
            let users: Vec<String> = ui
                .users
                .iter()
                .map(|u| format!("{} ({})", u.name, u.role.as_str()))
                .collect();
            if let Some(p) = &ui.proxy_auth {
                let from: Vec<String> = p.trusted_proxies.iter().map(|ip| ip.to_string()).collect();
                println!(
                    "  ui sign-in by header {} from {} (others: {})",
                    p.header,
                    from.join(", "),
                    p.default_role.as_str()
                );
            }
            for c in &ui.client_certificates {
                println!(
                    "  ui sign-in by client certificate {}… as {} ({})",
                    &c.sha256[..16],
                    c.name,
                    c.role.as_str()
                );
            }
            println!(
                "  ui on /ui/ for {}; index {} (keeps {}s, {} bytes)",
                users.join(", "),
                ui.index_path.display(),
                ui.retention.max_age.as_secs(),
                ui.retention.max_bytes
            );
        }
    }
}

fn dead_letters(config: &Config, command: DeadLetters) -> anyhow::Result<()> {
    use peregrine_gateway::redrive;
    match command {
        DeadLetters::List { filter, json } => {
            let entries = redrive::list(config, &filter.filter()?)?;
            for e in &entries {
                println!("{}", if json { e.line.clone() } else { e.summary() });
            }
            eprintln!("{} dead letter(s)", entries.len());
        }
        DeadLetters::Replay { filter } => {
            let filter = filter.filter()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let n = runtime.block_on(redrive::replay(config, &filter))?;
            println!(
                "replayed {n} dead letter(s) of output {} into the spool; they are delivered when the gateway starts",
                filter.output.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// sysexits.h's EX_CONFIG: the configuration is wrong, restarting will not help.
const EX_CONFIG: u8 = 78;

#[tokio::main]
async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    // Installed first: until then SIGHUP's default action would end the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    let gateway = Gateway::start(config, shutdown_signal())
        .await
        .context("gateway failed to start")?;
    let reloader = gateway.reloader();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
            reloader.reload(&path).await;
        }
    });
    gateway.wait().await.context("gateway failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
