//! The spool under the faults a disk and a deployment bring, through the real gateway binary.

use std::time::{Duration, Instant};

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_spool_with_default_segments_never_wedges() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    // Before: 64 MiB segments in a 1 MiB spool — the active segment could never be released,
    // and after ~1 800 alerts every POST got 503 for good.
    let config = format!(
        "spool: {{ dir: \"{}\", max_bytes: 1MiB }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"{}\", retry: {{ initial_backoff: 10ms, max_backoff: 50ms }} }}\n",
        tmp.path().join("spool").display(),
        hook.url("/")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let total = 4000;
    let deadline = Instant::now() + Duration::from_secs(120);
    let client = reqwest::Client::new();
    let mut sent = 0;
    let mut refused = 0;
    while sent < total {
        let batch: Vec<serde_json::Value> = (sent..(sent + 50).min(total))
            .map(|i| falco_alert(&format!("small spool {i}"), "Warning", &[]))
            .collect();
        let answer = client
            .post(format!("{}/", gw.base))
            .json(&batch)
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            200 => sent += batch.len(),
            503 => {
                refused += 1;
                assert!(
                    Instant::now() < deadline,
                    "ingest never resumed: {sent} of {total} accepted"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("answered {other}"),
        }
    }
    hook.wait_for(total, Duration::from_secs(60)).await;
    println!("small spool: {total} alerts (~{} MiB) through a 1 MiB spool, {refused} requests answered 503 while the output caught up", (total * 600) >> 20);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Posts one alert; its uuid when the gateway accepted it.
async fn post_one(client: &reqwest::Client, gw: &GatewayProcess, i: usize) -> Option<String> {
    let mut alert = falco_alert(&format!("disk full {i}"), "Warning", &[]);
    alert["output"] = "padding ".repeat(150).into();
    let uuid = format!("enospc-{i:05}");
    alert["uuid"] = uuid.clone().into();
    let answer = client
        .post(format!("{}/", gw.base))
        .json(&alert)
        .send()
        .await
        .ok()?;
    (answer.status() == 200).then_some(uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a small tmpfs in a private mount namespace (make test runs it as root)"]
async fn a_full_disk_loses_nothing_and_ingest_resumes_by_itself() {
    assert!(is_root());
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    let good = Receiver::ok().await;
    let bad = Receiver::scripted(|_, _| peregrine_e2e::receiver::Reply::status(400)).await;
    let config = format!(
        "spool: {{ dir: \"{}\", max_bytes: 64MiB, segment_bytes: 256KiB }}\noutputs:\n  - {{ name: good, type: webhook, url: \"{}\" }}\n  - {{ name: bad, type: webhook, url: \"{}\" }}\n",
        fs.join("spool").display(),
        good.url("/"),
        bad.url("/")
    );
    // A 4 MiB file system, 3 MiB of it taken: the spool and the dead letters share what is left.
    let script = "mount -t tmpfs -o size=4m tmpfs \"$0\" && head -c 3145728 /dev/zero > \"$0/filler\" && exec \"$@\"";
    let launch = peregrine_e2e::gateway::Launch {
        via: [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([fs.display().to_string()])
        .collect(),
        ..Default::default()
    };
    let gw = GatewayProcess::launch(tmp.path(), &config, launch).await;
    let inside = |p: &std::path::Path| {
        std::path::PathBuf::from(format!("/proc/{}/root", gw.pid()))
            .join(p.strip_prefix("/").unwrap())
    };

    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    // Until the disk is full: ingest answers 503, and nothing refused is stored.
    while refused < 20 {
        match post_one(&client, &gw, i).await {
            Some(uuid) => accepted.push(uuid),
            None => refused += 1,
        }
        i += 1;
        assert!(i < 20_000, "the disk never filled");
    }
    let errors = "peregrine_dead_letter_write_errors_total{output=\"bad\",type=\"webhook\"}";
    gw.wait_metric(errors, 1.0, Duration::from_secs(30)).await;
    let full_at = Instant::now();

    // Space comes back; nobody restarts anything.
    std::fs::remove_file(inside(&fs.join("filler"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(uuid) = post_one(&client, &gw, i).await {
            accepted.push(uuid);
            break;
        }
        i += 1;
        assert!(
            Instant::now() < deadline,
            "ingest did not resume:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed_after = full_at.elapsed();

    // Every accepted alert reached the good output and the bad one's dead letters, once.
    let delivered = good.wait_for(accepted.len(), Duration::from_secs(60)).await;
    let got = uuids_of(&delivered);
    let mut want = accepted.clone();
    want.sort();
    assert_eq!(got, want, "the good output got every accepted alert");
    let dead_letters = inside(&fs.join("spool/dead-letter/bad.jsonl"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead: Vec<String> = loop {
        let uuids = dead_letter_uuids(&dead_letters, None);
        if uuids.len() >= accepted.len() || Instant::now() > deadline {
            break uuids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut unique = dead.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique, want,
        "every accepted alert is in the bad output's dead letters"
    );
    println!(
        "disk full: {} alerts accepted, {refused} refused while full, {} duplicate dead letters, ingest resumed {resumed_after:?} after space came back",
        accepted.len(),
        dead.len() - unique.len()
    );
}

/// Runs `peregrine-gateway` with `args` to its exit: whether it succeeded, stdout, stderr.
fn gateway_cli(args: &[&str]) -> (bool, String, String) {
    let run = peregrine_e2e::gateway::run_cli(args, &[]);
    (run.code == Some(0), run.stdout, run.stderr)
}

/// The uuids of alerts a receiver got, sorted and without repeats.
fn uuids_of(received: &[peregrine_e2e::receiver::Received]) -> Vec<String> {
    let mut uuids: Vec<String> = received
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    uuids.sort();
    uuids.dedup();
    uuids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_to_their_output_only() {
    let tmp = tempfile::tempdir().unwrap();
    let other = Receiver::ok().await;
    let config_with = |hook_url: &str| {
        format!(
            "outputs:\n  - {{ name: hook, type: webhook, url: \"{hook_url}\", retry: {{ max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }} }}\n  - {{ name: other, type: webhook, url: \"{}\" }}\n",
            other.url("/")
        )
    };
    // The hook refuses everything: three alerts are dead-lettered.
    let refusing = Receiver::scripted(|_, _| peregrine_e2e::receiver::Reply::status(400)).await;
    let gw = GatewayProcess::start(tmp.path(), &config_with(&refusing.url("/"))).await;
    for i in 0..3 {
        let mut a = falco_alert(&format!("redrive {i}"), "Warning", &[]);
        a["uuid"] = format!("redrive-{i}").into();
        assert_eq!(gw.post(&a).await.status(), 200);
    }
    gw.wait_metric(
        "peregrine_output_dead_lettered_total{output=\"hook\",type=\"webhook\"}",
        3.0,
        Duration::from_secs(20),
    )
    .await;
    other.wait_for(3, Duration::from_secs(20)).await;
    let config_path = tmp.path().join("gateway.yaml");
    let config = config_path.to_str().unwrap();

    // Listing works while the gateway runs; replay needs it stopped.
    let (ok, listed, _) = gateway_cli(&[
        "dead-letters",
        "list",
        "--config",
        config,
        "--reason",
        "http_400",
    ]);
    assert!(ok);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed
            .lines()
            .all(|l| l.contains("\thook\thttp_400\t400\t")),
        "{listed}"
    );
    let replay = [
        "dead-letters",
        "replay",
        "--config",
        config,
        "--output",
        "hook",
    ];
    let (ok, _, err) = gateway_cli(&replay);
    assert!(!ok && err.contains("stop the gateway first"), "{err}");
    assert_eq!(gw.terminate(Duration::from_secs(20)).await.code(), Some(0));

    let (ok, said, err) = gateway_cli(&replay);
    assert!(ok, "{err}");
    assert!(
        said.contains("replayed 3 dead letter(s) of output hook"),
        "{said}"
    );
    let (_, listed, _) = gateway_cli(&["dead-letters", "list", "--config", config]);
    assert_eq!(
        listed.lines().count(),
        0,
        "replayed ones leave the dead letters"
    );

    // The hook works again: it gets the three, with their uuids; the other output nothing new.
    let accepting = Receiver::ok().await;
    let text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace(&refusing.url("/"), &accepting.url("/"));
    let spool_line = text
        .lines()
        .find(|l| l.starts_with("spool:"))
        .unwrap()
        .to_string();
    let rest: String = text
        .lines()
        .filter(|l| !l.starts_with("listen:") && !l.starts_with("spool:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let gw = GatewayProcess::start(tmp.path(), &format!("{spool_line}\n{rest}")).await;
    let got = accepting.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "each replayed alert once");
    assert_eq!(uuids_of(&got), ["redrive-0", "redrive-1", "redrive-2"]);
    gw.wait_metric(
        "peregrine_output_sent_total{output=\"hook\",type=\"webhook\"}",
        3.0,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        other.requests().len(),
        3,
        "the other output does not get them again"
    );
    let replayed =
        std::fs::read_to_string(tmp.path().join("spool/dead-letter/replayed/hook.jsonl")).unwrap();
    assert_eq!(replayed.lines().count(), 3);
    assert!(replayed.contains("\"replayed_at\""));
}

/// Posts alerts `from..to` (about 1 KiB each, uuid `{tag}-{i}`): the status and body of the answer.
async fn post_batch(
    client: &reqwest::Client,
    gw: &GatewayProcess,
    tag: &str,
    from: usize,
    to: usize,
) -> (u16, String) {
    let batch: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            let mut a = falco_alert(&format!("backlog {i}"), "Warning", &[]);
            a["output"] = "padding ".repeat(120).into();
            a["uuid"] = format!("{tag}-{i:05}").into();
            a
        })
        .collect();
    let answer = client
        .post(format!("{}/", gw.base))
        .json(&batch)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

/// The uuids in an output's dead-letter file (those with `code`, when given), in file order.
fn dead_letter_uuids(path: &std::path::Path, code: Option<&str>) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("whole lines only"))
        .filter(|v| code.is_none_or(|c| v["code"] == c))
        .map(|v| v["alert"]["uuid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_output_with_block_stops_ingest_until_it_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let fast = Receiver::ok().await;
    let port = peregrine_e2e::receiver::unused_port();
    let config = format!(
        "spool: {{ dir: \"{}\", max_bytes: 16MiB }}\noutputs:\n  - {{ name: fast, type: webhook, url: \"{}\" }}\n  - {{ name: siem, type: webhook, url: \"http://127.0.0.1:{port}/\", max_backlog: 256KiB, on_backlog_full: block, retry: {{ max_attempts: 10000, initial_backoff: 20ms, max_backoff: 100ms }} }}\n",
        tmp.path().join("spool").display(),
        fast.url("/"),
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let client = reqwest::Client::new();

    // The SIEM is down: ingest goes on until its backlog passes 256 KiB, then refuses.
    let mut accepted = 0;
    let refusal = loop {
        let (status, body) = post_batch(&client, &gw, "block", accepted, accepted + 20).await;
        match status {
            200 => accepted += 20,
            503 => break body,
            other => panic!("answered {other}: {body}"),
        }
        assert!(accepted < 2000, "ingest never stopped for the SIEM");
    };
    assert!(
        refusal.contains("output 'siem' is") && refusal.contains("max_backlog"),
        "{refusal}"
    );
    let backlog = gw
        .metric("peregrine_output_backlog_bytes{output=\"siem\",type=\"webhook\"}")
        .await;
    assert!(backlog > 256.0 * 1024.0, "backlog {backlog}");
    assert!(
        accepted * 1000 < 1 << 20,
        "stopped near 256 KiB, not at the spool's 16 MiB"
    );
    // Refused means not stored: the fast output gets exactly what was accepted.
    let got = fast.wait_for(accepted, Duration::from_secs(30)).await;
    assert_eq!(uuids_of(&got).len(), accepted);
    assert_eq!(
        gw.metric("peregrine_alerts_rejected_total{reason=\"output_behind\"}")
            .await,
        1.0
    );

    // The SIEM comes back: it catches up and ingest resumes by itself.
    let back_at = Instant::now();
    let siem =
        Receiver::scripted_on(port, |_, _| peregrine_e2e::receiver::Reply::status(200)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = post_batch(&client, &gw, "block", accepted, accepted + 20).await;
        if status == 200 {
            accepted += 20;
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "ingest did not resume:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed_after = back_at.elapsed();
    let want: Vec<String> = (0..accepted).map(|i| format!("block-{i:05}")).collect();
    let got = siem.wait_for(accepted, Duration::from_secs(60)).await;
    assert_eq!(uuids_of(&got), want, "the SIEM gets every accepted alert");
    let got = fast.wait_for(accepted, Duration::from_secs(30)).await;
    assert_eq!(uuids_of(&got), want);
    println!(
        "block: {accepted} alerts accepted, none lost; ingest resumed {resumed_after:?} after the SIEM came back; {} duplicate deliveries to it",
        siem.requests().len() - accepted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_output_with_dead_letter_oldest_sheds_and_ingest_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let fast = Receiver::ok().await;
    let port = peregrine_e2e::receiver::unused_port();
    let spool = tmp.path().join("spool");
    let config = format!(
        "spool: {{ dir: \"{}\", max_bytes: 4MiB, segment_bytes: 256KiB }}\noutputs:\n  - {{ name: fast, type: webhook, url: \"{}\" }}\n  - {{ name: chat, type: webhook, url: \"http://127.0.0.1:{port}/\", max_backlog: 512KiB, on_backlog_full: dead_letter_oldest, max_in_flight: 2, retry: {{ max_attempts: 10000, initial_backoff: 20ms, max_backoff: 100ms }} }}\n",
        spool.display(),
        fast.url("/"),
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let client = reqwest::Client::new();

    // Twice the spool's size while the chat output is down: every request is accepted. (Paced
    // by the other output, one request per alert, so that its own backlog stays small.)
    let total = 8000;
    let mut peak_spool = 0.0f64;
    for from in (0..total).step_by(40) {
        let (status, body) = post_batch(&client, &gw, "shed", from, from + 40).await;
        assert_eq!(
            status,
            200,
            "refused at alert {from}: {body}\n{}",
            gw.logs()
        );
        if from % 800 == 760 {
            peak_spool = peak_spool.max(gw.metric("peregrine_spool_bytes").await);
            fast.wait_for(from + 40, Duration::from_secs(30)).await;
        }
    }
    let want: Vec<String> = (0..total).map(|i| format!("shed-{i:05}")).collect();
    let got = fast.wait_for(total, Duration::from_secs(60)).await;
    assert_eq!(uuids_of(&got), want, "the other output got everything");
    let overflow = "peregrine_output_dead_lettered_by_reason_total{output=\"chat\",reason=\"overflow\",type=\"webhook\"}";
    let shed = gw.wait_metric(overflow, 1.0, Duration::from_secs(10)).await;
    assert!(
        peak_spool < (4 << 20) as f64,
        "the spool stayed under its limit: peak {peak_spool}"
    );

    // The chat destination comes back: it gets what was not shed; the shed ones are in its
    // dead letters; together they are every accepted alert.
    let chat =
        Receiver::scripted_on(port, |_, _| peregrine_e2e::receiver::Reply::status(200)).await;
    let dead_letters = spool.join("dead-letter/chat.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (delivered, dead) = loop {
        let delivered = uuids_of(&chat.requests());
        let dead = dead_letter_uuids(&dead_letters, Some("overflow"));
        let mut all: Vec<String> = delivered.iter().chain(&dead).cloned().collect();
        all.sort();
        all.dedup();
        if all == want {
            break (delivered, dead);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {total} alerts delivered or dead-lettered:\n{}",
            all.len(),
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len() as f64, shed, "each shed alert counted once");
    // The oldest went: what was delivered is the newest part.
    let first_delivered = delivered.iter().min().unwrap();
    let kept_old = dead.iter().filter(|u| *u > first_delivered).count();
    let both = delivered.iter().filter(|u| dead.contains(u)).count();
    println!(
        "dead_letter_oldest: {total} alerts (~{} MiB) through a 4 MiB spool, none refused; peak spool {:.0} KiB; {} shed to dead letters, {} delivered after the output came back, {both} in both (cancelled in flight), {kept_old} shed alerts newer than the first delivered",
        (total * 1100) >> 20,
        peak_spool / 1024.0,
        dead.len(),
        delivered.len(),
    );
    assert!(
        both <= 2 * 20,
        "only batches in flight can be in both: {both}"
    );
}
