//! The rule engine's throughput with Falco's stable rules on a realistic event mix.
//!
//! Per 1000 events: 850 of types no stable rule needs (read, write, close, futex, mmap...), 100
//! opens of ordinary files and 40 execs of everyday commands (which reach the open and exec
//! rules and match none), and 10 that match (a read of /etc/shadow, shred, a symlink over
//! /etc/shadow, ...). Events are table-backed, as the sensor fills them.
//!
//! ```text
//! cargo bench -p peregrine-engine --bench engine
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peregrine_engine::event_types::index_of;
use peregrine_engine::table::TableEvent;
use peregrine_engine::{Matching, RulesLoader, Ruleset};

fn stable() -> Ruleset {
    let mut loader = RulesLoader::new();
    loader.add_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/falco-rules/falco_rules.yaml"),
    );
    let result = loader.load();
    assert!(!result.has_errors());
    let mut ruleset = result.ruleset;
    ruleset.matching = Matching::First;
    ruleset
}

fn process(
    e: &mut TableEvent<'static>,
    name: &'static str,
    cmdline: &'static str,
    args: &'static str,
) {
    e.set_str("proc.name", name).unwrap();
    e.set_str("proc.exe", name).unwrap();
    e.set_str("proc.exepath", "/usr/bin/x").unwrap();
    e.set_str("proc.cmdline", cmdline).unwrap();
    e.set_str("proc.args", args).unwrap();
    e.set_str("proc.pname", "bash").unwrap();
    e.set_str("proc.pcmdline", "bash").unwrap();
    e.set_str("proc.pexe", "/bin/bash").unwrap();
    e.set_str("proc.aname[2]", "sshd").unwrap();
    e.set_str("proc.aname[3]", "systemd").unwrap();
    e.set_str("proc.cwd", "/root/").unwrap();
    e.set_int("proc.tty", 34816).unwrap();
    e.set_str("user.name", "root").unwrap();
    e.set_int("user.uid", 0).unwrap();
    e.set_int("user.loginuid", 0).unwrap();
    e.set_str("container.id", "host").unwrap();
    e.set_int("evt.num", 7).unwrap();
    e.set_int("evt.time", 1_781_256_190_123_456_789).unwrap();
}

fn open(
    name: &'static str,
    path: &'static str,
    dir: &'static str,
    file: &'static str,
    flags: &'static str,
) -> TableEvent<'static> {
    let mut e = TableEvent::new(index_of("openat"));
    process(&mut e, name, name, path);
    e.set_str("evt.type", "openat").unwrap();
    e.set_str("fd.name", path).unwrap();
    e.set_str("fd.directory", dir).unwrap();
    e.set_str("fd.filename", file).unwrap();
    e.set_str("fd.typechar", "f").unwrap();
    e.set_int("fd.num", 3).unwrap();
    e.set_str("evt.arg.flags", flags).unwrap();
    e.set_bool("evt.is_open_read", flags.contains("O_RDONLY"))
        .unwrap();
    e.set_bool("evt.is_open_write", flags.contains("O_WRONLY"))
        .unwrap();
    e
}

fn exec(name: &'static str, cmdline: &'static str, args: &'static str) -> TableEvent<'static> {
    let mut e = TableEvent::new(index_of("execve"));
    process(&mut e, name, cmdline, args);
    e.set_str("evt.type", "execve").unwrap();
    e.set_str("evt.arg.flags", "EXE_LOWER_LAYER").unwrap();
    e.set_bool("proc.is_exe_from_memfd", false).unwrap();
    e
}

fn other(t: &'static str) -> TableEvent<'static> {
    let mut e = TableEvent::new(index_of(t));
    process(&mut e, "nginx", "nginx: worker process", "");
    e.set_str("evt.type", t).unwrap();
    e
}

fn symlink() -> TableEvent<'static> {
    let mut e = TableEvent::new(index_of("symlinkat"));
    process(
        &mut e,
        "ln",
        "ln -s /etc/shadow /tmp/x",
        "-s /etc/shadow /tmp/x",
    );
    e.set_str("evt.type", "symlinkat").unwrap();
    e.set_str("evt.arg.target", "/etc/shadow").unwrap();
    e.set_str("evt.arg.linkpath", "/tmp/x").unwrap();
    e
}

/// 1000 events in the mix described at the top.
fn mix() -> Vec<TableEvent<'static>> {
    let quiet = [
        "read",
        "write",
        "close",
        "futex",
        "mmap",
        "epoll_wait",
        "fstat",
        "lseek",
        "getpid",
        "clock_nanosleep",
    ];
    let files = [
        ("nginx", "/var/www/index.html", "/var/www", "index.html"),
        (
            "python3",
            "/usr/lib/python3.11/os.py",
            "/usr/lib/python3.11",
            "os.py",
        ),
        ("cat", "/etc/hosts", "/etc", "hosts"),
        ("node", "/srv/app/package.json", "/srv/app", "package.json"),
    ];
    let commands = [
        ("ls", "ls -la /tmp", "-la /tmp"),
        ("ps", "ps aux", "aux"),
        ("git", "git status", "status"),
        (
            "curl",
            "curl -s https://example.com",
            "-s https://example.com",
        ),
    ];
    let mut events = Vec::with_capacity(1000);
    for i in 0..850 {
        events.push(other(quiet[i % quiet.len()]));
    }
    for i in 0..100 {
        let (p, path, dir, file) = files[i % files.len()];
        events.push(open(p, path, dir, file, "O_RDONLY|O_CLOEXEC"));
    }
    for i in 0..40 {
        let (name, cmd, args) = commands[i % commands.len()];
        events.push(exec(name, cmd, args));
    }
    for i in 0..10 {
        events.push(match i % 4 {
            0 => open("cat", "/etc/shadow", "/etc", "shadow", "O_RDONLY"),
            1 => exec("shred", "shred -u /var/lib/db", "-u /var/lib/db"),
            2 => symlink(),
            _ => exec(
                "grep",
                "grep -r BEGIN RSA PRIVATE /home",
                "-r BEGIN RSA PRIVATE /home",
            ),
        });
    }
    // Interleave deterministically so the branch predictor sees a mix, not runs.
    let mut shuffled = Vec::with_capacity(events.len());
    let n = events.len();
    let mut slots: Vec<Option<TableEvent<'static>>> = events.into_iter().map(Some).collect();
    let mut i = 0usize;
    for _ in 0..n {
        while slots[i].is_none() {
            i = (i + 1) % n;
        }
        shuffled.push(slots[i].take().unwrap());
        i = (i + 389) % n;
    }
    shuffled
}

fn bench(c: &mut Criterion) {
    let ruleset = stable();
    let events = mix();
    let mut matched = Vec::with_capacity(4);
    let mut total = 0usize;
    for e in &events {
        matched.clear();
        ruleset.evaluate(e, &mut matched);
        total += matched.len();
    }
    assert_eq!(total, 10, "the mix has exactly 10 matching events");

    let mut group = c.benchmark_group("stable_rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("evaluate_1000_event_mix", |b| {
        b.iter(|| {
            let mut hits = 0;
            for e in &events {
                matched.clear();
                ruleset.evaluate(black_box(e), &mut matched);
                hits += matched.len();
            }
            black_box(hits)
        })
    });
    let reaching: Vec<&TableEvent<'static>> = events
        .iter()
        .filter(|e| e.event_type().is_some_and(|t| ruleset.candidates(t) > 0))
        .collect();
    group.throughput(Throughput::Elements(reaching.len() as u64));
    group.bench_function("evaluate_only_events_that_reach_rules", |b| {
        b.iter(|| {
            for e in &reaching {
                matched.clear();
                ruleset.evaluate(black_box(*e), &mut matched);
            }
        })
    });
    group.finish();
}

use peregrine_engine::Event as _;

criterion_group!(benches, bench);
criterion_main!(benches);
