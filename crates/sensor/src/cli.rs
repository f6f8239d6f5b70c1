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
    /// Capture live with eBPF (not built yet).
    Run {
        #[arg(long = "rules", num_args = 1..)]
        rules: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MatchMode {
    First,
    All,
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
        Command::Run { .. } => (|| -> anyhow::Result<ExitCode> {
            let set: std::collections::BTreeSet<u32> = ["openat", "execve", "symlinkat", "ptrace", "connect", "unlinkat"].iter().filter_map(|n| crate::bpf::syscalls::number(n)).collect();
            let mut probe = crate::bpf::Probe::load(&set, 1 << 20)?;
            std::process::Command::new("sh").args(["-c", "cat /etc/hostname > /dev/null; ln -sf /etc/shadow /tmp/pg-x; true"]).status()?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            let ring = probe.ring.as_mut().unwrap();
            let mut n = 0;
            while let Some(item) = ring.next() {
                n += 1;
                match crate::bpf::records::decode(&item) {
                    Ok(r) => println!("{r:?}"),
                    Err(e) => println!("bad: {e}"),
                }
            }
            println!("{n} records, counters {:?}", probe.counters());
            Ok(ExitCode::SUCCESS)
        })(),
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
