//! Nothing accepted is lost: `kill -9`, SIGTERM and restarts with the real binary.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::{unused_port, Received, Receiver, Reply};
use peregrine_e2e::wait_until;

fn config(port: u16, grace: &str) -> String {
    format!(
        "shutdown_grace: {grace}\noutputs:\n  - name: hook\n    type: webhook\n    url: \"http://127.0.0.1:{port}/hook\"\n    retry: {{ max_attempts: 1000, initial_backoff: 20ms, max_backoff: 200ms }}\n"
    )
}

async fn post_many(gw: &GatewayProcess, n: usize, tag: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for chunk in 0..n / 10 {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                let id = format!("{tag}-{}", chunk * 10 + i);
                ids.insert(id.clone());
                let mut a = falco_alert("Read sensitive file untrusted", "Warning", &[]);
                a["uuid"] = id.into();
                a
            })
            .collect();
        let r = gw.post(&serde_json::Value::Array(batch)).await;
        assert_eq!(r.status(), 200);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_webhook_is_down_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = unused_port();
    let gw = GatewayProcess::start(tmp.path(), &config(port, "10s")).await;
    let sent = post_many(&gw, 500, "crash").await;
    gw.kill9();

    let gw = GatewayProcess::start(tmp.path(), &config(port, "10s")).await;
    assert_eq!(
        gw.metric(r#"peregrine_output_queue_depth{output="hook",type="webhook"}"#)
            .await,
        500.0,
        "after the restart every alert is pending"
    );
    let hook = Receiver::scripted_on(port, |_, _| Reply::status(200)).await;
    hook.wait_for(500, Duration::from_secs(30)).await;
    let got: BTreeSet<String> = hook.uuids().into_iter().collect();
    assert_eq!(got, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_duplicates_at_most_what_was_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let port = unused_port();
    // A slow receiver: each answer takes 20 ms, so deliveries are in flight at the kill.
    let hook = Receiver::scripted_on(port, |_, _| {
        std::thread::sleep(Duration::from_millis(20));
        Reply::status(200)
    })
    .await;
    let gw = GatewayProcess::start(tmp.path(), &config(port, "10s")).await;
    let sent = post_many(&gw, 300, "mid").await;
    hook.wait_for(50, Duration::from_secs(10)).await;
    gw.kill9();
    let before_restart = hook.requests().len();

    let gw = GatewayProcess::start(tmp.path(), &config(port, "10s")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<String> = hook.uuids().into_iter().collect();
        if got == sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} arrived",
            got.len(),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = hook.requests().len();
    let duplicates = total - sent.len();
    // max_in_flight is 4: at most the 4 requests open at the kill come again.
    assert!(
        duplicates <= 4,
        "{duplicates} duplicates ({before_restart} before the restart, {total} in all)"
    );
    drop(gw);
}

/// The uuid of the alert a webhook request carries.
fn uuid_of(r: &Received) -> String {
    r.json()["uuid"].as_str().expect("uuid").to_string()
}

/// A `kill -9` with hundreds of alerts waiting for retries (more than 64: the cursor is then
/// written once per 1/64 of them finished, not at each) loses none of those still waiting and
/// sends again at most the documented few of those delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_hundreds_waiting_for_retries_loses_none_and_resends_a_bounded_few() {
    const SENT: usize = 600;
    let tmp = tempfile::tempdir().unwrap();
    let port = unused_port();
    let config = format!(
        "outputs:\n  - name: hook\n    type: webhook\n    url: \"http://127.0.0.1:{port}/hook\"\n    max_in_flight: 4\n    retry: {{ max_attempts: 1000, initial_backoff: 1s, max_backoff: 1s }}\n"
    );
    // Until the kill, odd alerts are taken and even ones refused with 500: half of them wait for
    // retries. After it, everything is taken. `accepted` holds each uuid answered 200, `taken`
    // counts those answers.
    let odd = |uuid: &str| uuid.ends_with(['1', '3', '5', '7', '9']);
    let accept_all = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let taken = Arc::new(AtomicUsize::new(0));
    let _hook = Receiver::scripted_on(port, {
        let (accept_all, accepted, taken) = (accept_all.clone(), accepted.clone(), taken.clone());
        move |_, r| {
            let uuid = uuid_of(r);
            if !(odd(&uuid) || accept_all.load(Ordering::SeqCst)) {
                return Reply::status(500);
            }
            accepted.lock().unwrap().insert(uuid);
            taken.fetch_add(1, Ordering::SeqCst);
            Reply::status(200)
        }
    })
    .await;
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let sent = post_many(&gw, SENT, "wait").await;
    wait_until(
        "every odd alert is delivered",
        Duration::from_secs(30),
        || taken.load(Ordering::SeqCst) >= SENT / 2,
    )
    .await;
    // Every odd alert is delivered, once; the 300 even ones wait, far more than 64.
    gw.kill9();
    accept_all.store(true, Ordering::SeqCst);
    let taken_before = taken.load(Ordering::SeqCst);
    assert_eq!(taken_before, SENT / 2, "each odd alert delivered once");
    assert_eq!(accepted.lock().unwrap().len(), SENT / 2);

    let gw = GatewayProcess::start(tmp.path(), &config).await;
    wait_until("every alert is delivered", Duration::from_secs(30), || {
        *accepted.lock().unwrap() == sent
    })
    .await;
    // Nothing left to resend once the queue is empty (its depth is the log's end minus the
    // cursor's committed position).
    let depth = r#"peregrine_output_queue_depth{output="hook",type="webhook"}"#;
    gw.wait_metric_at_most(depth, 0.0, Duration::from_secs(30))
        .await;
    let delivered_twice = taken.load(Ordering::SeqCst) - SENT;
    // Delivered but not yet in the cursor at the kill: the 4 in flight, and fewer than 1/64 of
    // the at most 304 outstanding.
    let bound = 4 + (SENT / 2 + 4).div_ceil(64);
    assert!(
        delivered_twice <= bound,
        "{delivered_twice} delivered alerts sent again after the restart (bound {bound})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_the_next_start_delivers_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let port = unused_port();
    let gw = GatewayProcess::start(tmp.path(), &config(port, "1s")).await;
    let sent = post_many(&gw, 100, "term").await;
    let status = gw.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");

    let gw = GatewayProcess::start(tmp.path(), &config(port, "1s")).await;
    let hook = Receiver::scripted_on(port, |_, _| Reply::status(200)).await;
    hook.wait_for(100, Duration::from_secs(20)).await;
    let got: BTreeSet<String> = hook.uuids().into_iter().collect();
    assert_eq!(got, sent);
    assert!(gw.logs().contains("output ready"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_segments_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!(
        "spool: {{ dir: \"{}\", segment_bytes: 4096 }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"{}\" }}\n",
        tmp.path().join("spool").display(),
        hook.url("/")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    post_many(&gw, 200, "gc").await;
    hook.wait_for(200, Duration::from_secs(20)).await;
    let segments = || {
        std::fs::read_dir(tmp.path().join("spool/segments"))
            .unwrap()
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while segments() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} segments left after delivery",
            segments()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gw.metric("peregrine_spool_segments").await, 1.0);
}

/// `kill -9` at different moments while alerts are being accepted, segments rotated (16 KiB
/// segments: one every few requests), delivered segments deleted, and cursors written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_rotation_and_compaction_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!(
        "spool: {{ dir: \"{}\", max_bytes: 8MiB, segment_bytes: 16KiB }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"{}\", retry: {{ initial_backoff: 10ms, max_backoff: 50ms }} }}\n",
        tmp.path().join("spool").display(),
        hook.url("/")
    );
    let mut accepted = BTreeSet::new();
    for round in 0..6u64 {
        let gw = GatewayProcess::start(tmp.path(), &config).await;
        let base = gw.base.clone();
        let poster = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ok = BTreeSet::new();
            for i in 0..400 {
                let id = format!("r{round}-{i}");
                let mut a = falco_alert("Read sensitive file untrusted", "Warning", &[]);
                a["uuid"] = id.clone().into();
                match client.post(format!("{base}/")).json(&a).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.insert(id);
                    }
                    Ok(_) => {}
                    Err(_) => break, // the gateway is gone
                }
            }
            ok
        });
        // A different moment each round, while requests and deliveries run.
        tokio::time::sleep(Duration::from_millis(30 + 70 * round)).await;
        gw.kill9();
        accepted.extend(poster.await.unwrap());
    }
    let _gw = GatewayProcess::start(tmp.path(), &config).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = hook.uuids().into_iter().collect();
        let missing: Vec<&String> = accepted.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} accepted alerts never arrived, e.g. {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "kill -9 six times mid-rotation: {} alerts accepted, all delivered, {} requests in all",
        accepted.len(),
        hook.requests().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_cursors_are_replaced_at_start_replays_nothing() {
    const OUTPUTS: usize = 40;
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let mut config = String::from("outputs:\n");
    for o in 0..OUTPUTS {
        config += &format!(
            "  - {{ name: o{o:02}, type: webhook, url: \"{}\" }}\n",
            hook.url(&format!("/o{o:02}"))
        );
    }
    let cursors = tmp.path().join("spool/cursors");
    let mut posted = 0;
    let mut kills = Vec::new();
    for round in 0..6 {
        // Alerts delivered everywhere, so every cursor has moved since the last start.
        let gw = GatewayProcess::start(tmp.path(), &config).await;
        assert!(!gw.logs().contains("unreadable"), "{}", gw.logs());
        posted += post_many(&gw, 10, &format!("r{round}")).await.len();
        wait_all_finished(&gw).await;
        gw.kill9();

        // Start again and die while a cursor is being replaced: from the moment a temporary
        // cursor file exists, before it is renamed. From output k on, so that the kills land
        // at different places; a busy machine may let every window pass unseen, which the end
        // of the test counts.
        let launch = peregrine_e2e::gateway::Launch {
            unready: true,
            ..Default::default()
        };
        let gw = GatewayProcess::launch(tmp.path(), &config, launch).await;
        let k = 3 + 6 * round;
        let dir = cursors.clone();
        let pid = gw.pid();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                let replacing = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_prefix('o')
                            .and_then(|n| n.strip_suffix(".cursor.tmp"))
                            .and_then(|n| n.parse::<usize>().ok())
                            .is_some_and(|n| n >= k)
                    });
                if replacing {
                    break;
                }
            }
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
        .await
        .unwrap();
        gw.kill9();
        let left = std::fs::read_dir(&cursors)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        kills.push((k, left));
    }
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    posted += post_many(&gw, 10, "last").await.len();
    wait_all_finished(&gw).await;
    let gw_logs = gw.logs();
    assert_eq!(gw.terminate(Duration::from_secs(20)).await.code(), Some(0));
    // No cursor came back older than it was: nothing delivered was sent again.
    let requests = hook.requests();
    let counts: Vec<usize> = (0..OUTPUTS)
        .map(|o| {
            let path = format!("/o{o:02}");
            requests.iter().filter(|r| r.path == path).count()
        })
        .collect();
    assert!(
        counts.iter().all(|&n| n == posted),
        "requests per output for {posted} alerts: {counts:?}\n{gw_logs}"
    );
    println!(
        "kill -9 during cursor replacement at start (output k, temporary cursor files left): {kills:?}; {posted} alerts x {OUTPUTS} outputs, 0 sent twice"
    );
    let inside = kills.iter().filter(|&&(_, left)| left > 0).count();
    assert!(
        inside >= 2,
        "only {inside} of 6 kills landed before a rename: {kills:?}"
    );
}

/// Waits until every output has finished every alert (delivered and acknowledged: the gateway
/// saw the answer, so no delivery is in flight).
async fn wait_all_finished(gw: &GatewayProcess) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = gw.metrics().await;
        let mut depths = metrics
            .lines()
            .filter(|l| l.starts_with("peregrine_output_queue_depth{"))
            .peekable();
        assert!(depths.peek().is_some(), "no queue depth in /metrics");
        if depths.all(|l| l.ends_with(" 0")) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outputs still behind:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
