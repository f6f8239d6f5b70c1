//! `peregrine-sensor validate` and `replay` as users run them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn sensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine-sensor"))
        .args(args)
        .output()
        .unwrap()
}

fn anchor(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/falco-rules")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_accepts_falcos_files_alone_and_stacked() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["falco_rules.yaml"],
            "ok: 25 rules, 87 macros, 49 lists, 0 errors, 0 warnings",
        ),
        (
            &["falco_rules.yaml", "falco-incubating_rules.yaml"],
            "ok: 56 rules, 157 macros, 83 lists, 0 errors, 0 warnings",
        ),
        (
            &[
                "falco_rules.yaml",
                "falco-incubating_rules.yaml",
                "falco-sandbox_rules.yaml",
            ],
            "ok: 93 rules, 315 macros, 118 lists, 0 errors, 0 warnings",
        ),
    ];
    for (files, summary) in cases {
        let mut args = vec!["validate".to_string()];
        args.extend(files.iter().map(|f| anchor(f)));
        let out = sensor(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(0), "{files:?}: {}", stdout(&out));
        assert_eq!(stdout(&out).trim(), summary, "{files:?}");
    }
}

#[test]
fn validate_reports_errors_with_location_caret_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let custom = tmp.path().join("custom.yaml");
    std::fs::write(
        &custom,
        "- rule: Shell in my app\n  desc: d\n  condition: spawned_process and proc.name = bash and not known_good\n  output: shell %proc.name\n  priority: URGENT\n\n- macro: m\n  condition: (proc.name = a\n",
    )
    .unwrap();
    let out = sensor(&[
        "validate",
        &anchor("falco_rules.yaml"),
        custom.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let name = custom.display().to_string();
    assert!(
        text.contains(&format!(
            "{name}:5:13: error: rule 'Shell in my app': Invalid priority 'URGENT'"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{name}:8:14: error: macro 'm': unbalanced parentheses"
        )),
        "{text}"
    );
    assert!(
        text.contains("      condition: (proc.name = a\n                 ^"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("2 errors, 0 warnings"), "{text}");
}

#[test]
fn replay_prints_one_falco_alert_per_match_in_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"evt.type":"openat","evt.time":"2026-06-12T09:23:10.5Z","evt.is_open_read":true,"fd.typechar":"f","fd.num":3,"fd.name":"/etc/shadow","fd.directory":"/etc","proc.name":"cat","proc.cmdline":"cat /etc/shadow","user.name":"root","user.uid":0,"container.id":"host"}"#,
            "\n",
            r#"{"evt.type":"openat","evt.time":1781256191000000000,"evt.is_open_read":true,"fd.typechar":"f","fd.num":3,"fd.name":"/etc/hosts","proc.name":"cat","container.id":"host"}"#,
            "\n\n",
            r#"{"evt.type":"execve","evt.time":1781256192000000000,"proc.name":"shred","proc.args":"-u x","proc.cmdline":"shred -u x","container.id":"host"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = sensor(&[
        "replay",
        "--rules",
        &anchor("falco_rules.yaml"),
        "--events",
        events.to_str().unwrap(),
        "--hostname",
        "node-1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["rule"], "Read sensitive file untrusted");
    assert_eq!(alerts[0]["time"], "2026-06-12T09:23:10.500000000Z");
    assert_eq!(alerts[0]["hostname"], "node-1");
    assert_eq!(
        alerts[0]["output_fields"]["evt.time"],
        1781256190500000000u64
    );
    assert_eq!(alerts[1]["rule"], "Remove Bulk Data from Disk");
    // Keys come out sorted, as Falco's JSON writer sorts them.
    let line = stdout(&out).lines().next().unwrap().to_string();
    let keys: Vec<&str> = [
        "\"hostname\"",
        "\"output\"",
        "\"output_fields\"",
        "\"priority\"",
        "\"rule\"",
        "\"source\"",
        "\"tags\"",
        "\"time\"",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = keys.iter().map(|k| line.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
}

#[test]
fn replay_refuses_rules_that_do_not_load_and_reports_bad_event_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_rules = tmp.path().join("bad.yaml");
    std::fs::write(&bad_rules, "- macro: m\n  condition: proc.name = \n").unwrap();
    let events = tmp.path().join("e.jsonl");
    std::fs::write(&events, "{\"evt.type\":\"execve\"}\nnot json\n").unwrap();
    let out = sensor(&[
        "replay",
        "--rules",
        bad_rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the rules do not load"));

    let out = sensor(&[
        "replay",
        "--rules",
        &anchor("falco_rules.yaml"),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("e.jsonl:2: not a JSON object"), "{err}");
}
