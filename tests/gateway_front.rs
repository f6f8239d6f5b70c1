//! The gateway's front door against hostile clients, on 127.0.0.1: floods of stalled
//! connections, TLS and mutual TLS, and reload on SIGHUP.
//!
//! The flood tests print what they measured (legitimate requests served, their slowest answer,
//! the gateway's RSS); run with `--nocapture` to see the figures.

use std::time::{Duration, Instant};

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::{GatewayProcess, Launch};
use peregrine_e2e::receiver::Receiver;
use peregrine_e2e::tls::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway's file descriptor limit in the head flood: the flood is several times larger.
const GATEWAY_NOFILE: u64 = 256;
const HEAD_FLOOD: usize = 1100;
const BODY_FLOOD: usize = 400;

fn webhook(name: &str, url: &str) -> String {
    format!(
        "  - name: {name}\n    type: webhook\n    url: \"{url}\"\n    retry: {{ initial_backoff: 20ms, max_backoff: 200ms }}\n"
    )
}

/// Lets this test process hold the flood's sockets.
fn raise_own_fd_limit(needed: u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    assert!(
        l.rlim_cur >= needed,
        "this test needs {needed} file descriptors; the hard limit is {}",
        l.rlim_cur
    );
}

/// What legitimate senders saw while a flood was on.
#[derive(Default)]
struct Served {
    ok: usize,
    other: Vec<String>,
    slowest: Duration,
}

/// POSTs an alert every 200 ms on a fresh connection until `until`, as a sender would.
async fn legitimate_sender(base: String, until: Instant) -> Served {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut served = Served::default();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        let answer = client
            .post(format!("{base}/"))
            .json(&falco_alert(&format!("legit {n}"), "Warning", &[]))
            .send()
            .await;
        served.slowest = served.slowest.max(started.elapsed());
        match answer {
            Ok(r) if r.status() == 200 => served.ok += 1,
            Ok(r) => served.other.push(format!("{}", r.status())),
            Err(e) => served.other.push(format!("{e}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served
}

/// Waits until the peer closes `stream` (EOF or reset), up to `deadline`; returns when it did.
async fn closed_by_peer(mut stream: TcpStream, deadline: tokio::time::Instant) -> Option<Instant> {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {} // an error answer (408, 503) before the close
        }
    }
}

/// Samples the gateway's RSS every 100 ms until `until`; the largest value.
async fn peak_rss(gw: &GatewayProcess, until: Instant) -> u64 {
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(gw.rss_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_heads_does_not_lock_out_alerts() {
    raise_own_fd_limit(HEAD_FLOOD as u64 + 256);
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!(
        "limits: {{ header_timeout: 3s }}\noutputs:\n{}",
        webhook("hook", &hook.url("/"))
    );
    let launch = Launch {
        nofile: Some(GATEWAY_NOFILE),
        ..Launch::default()
    };
    let gw = GatewayProcess::launch(tmp.path(), &config, launch).await;
    let rss_before = gw.rss_bytes();

    let flood_started = Instant::now();
    let sender = tokio::spawn(legitimate_sender(
        gw.base.clone(),
        flood_started + Duration::from_secs(6),
    ));
    let mut stalled = Vec::with_capacity(HEAD_FLOOD);
    for _ in 0..HEAD_FLOOD {
        let mut s = TcpStream::connect(gw.addr()).await.unwrap();
        // Most of a head, then nothing: no blank line ever comes.
        let _ = s
            .write_all(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n")
            .await;
        stalled.push(s);
    }
    let flood_opened = flood_started.elapsed();
    let rss_peak = peak_rss(&gw, flood_started + Duration::from_secs(4)).await;

    // Every stalled connection is closed: evicted to make room, or at header_timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let closes = stalled
        .into_iter()
        .map(|s| tokio::spawn(closed_by_peer(s, deadline)));
    let mut still_open = 0;
    let mut last_close = Duration::ZERO;
    for c in closes {
        match c.await.unwrap() {
            Some(at) => last_close = last_close.max(at - flood_started),
            None => still_open += 1,
        }
    }
    let served = sender.await.unwrap();
    let metrics = gw.metrics().await;
    let evicted = peregrine_e2e::gateway::metric_value(
        &metrics,
        "peregrine_http_connections_closed_total{reason=\"evicted\"}",
    );
    let timed_out = peregrine_e2e::gateway::metric_value(
        &metrics,
        "peregrine_http_connections_closed_total{reason=\"timeout\"}",
    );
    println!(
        "head flood: {HEAD_FLOOD} stalled connections opened in {flood_opened:?} against RLIMIT_NOFILE {GATEWAY_NOFILE}; \
         legitimate POSTs: {} answered 200, {:?} otherwise, slowest {:?}; \
         gateway closed {evicted} by eviction and {timed_out} at header_timeout, last at {last_close:?}; \
         RSS {} MiB before, {} MiB peak",
        served.ok,
        served.other,
        served.slowest,
        rss_before >> 20,
        rss_peak >> 20
    );
    assert!(served.other.is_empty(), "refused: {:?}", served.other);
    assert!(served.ok >= 10, "only {} legitimate alerts sent", served.ok);
    assert!(
        served.slowest < Duration::from_secs(3),
        "{:?}",
        served.slowest
    );
    assert_eq!(still_open, 0, "stalled connections left open past 10 s");
    assert!(evicted > 0.0 && timed_out > 0.0, "{metrics}");
    hook.wait_for(served.ok, Duration::from_secs(10)).await;
    assert!(rss_peak < 128 << 20, "RSS peaked at {} MiB", rss_peak >> 20);
}

/// Opens a connection that sends a head declaring a 1 MB body and 900 kB of it, then stalls.
async fn stall_mid_body(addr: String) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = "POST / HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
    s.write_all(head.as_bytes()).await.ok()?;
    let chunk = vec![b' '; 900_000];
    // A refused body stops being read; the write then stalls, which is what we want anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await;
    Some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_bodies_holds_memory_to_the_budget() {
    raise_own_fd_limit(BODY_FLOOD as u64 + 256);
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!(
        "limits: {{ body_timeout: 6s, inflight_body_bytes: 64MiB }}\noutputs:\n{}",
        webhook("hook", &hook.url("/"))
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let rss_before = gw.rss_bytes();

    let flood_started = Instant::now();
    let sender = tokio::spawn(legitimate_sender(
        gw.base.clone(),
        flood_started + Duration::from_secs(8),
    ));
    let floods: Vec<_> = (0..BODY_FLOOD)
        .map(|_| tokio::spawn(stall_mid_body(gw.addr())))
        .collect();
    let rss_peak = peak_rss(&gw, flood_started + Duration::from_secs(8)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut still_open = 0;
    for f in floods {
        if let Some(s) = f.await.unwrap() {
            if closed_by_peer(s, deadline).await.is_none() {
                still_open += 1;
            }
        }
    }
    let served = sender.await.unwrap();
    let metrics = gw.metrics().await;
    let series = |s: &str| peregrine_e2e::gateway::metric_value(&metrics, s);
    println!(
        "body flood: {BODY_FLOOD} connections stalled after 900 kB of a 1 MB body, budget 64 MiB; \
         legitimate POSTs: {} answered 200, {:?} otherwise, slowest {:?}; \
         RSS {} MiB before, {} MiB peak; closed: {} evicted, {} timed out; 503 overloaded: {}",
        served.ok,
        served.other,
        served.slowest,
        rss_before >> 20,
        rss_peak >> 20,
        series("peregrine_http_connections_closed_total{reason=\"evicted\"}"),
        series("peregrine_http_connections_closed_total{reason=\"timeout\"}"),
        series("peregrine_alerts_rejected_total{reason=\"overloaded\"}"),
    );
    assert!(served.other.is_empty(), "refused: {:?}", served.other);
    assert!(served.ok >= 10, "only {} legitimate alerts sent", served.ok);
    assert!(
        served.slowest < Duration::from_secs(5),
        "{:?}",
        served.slowest
    );
    assert_eq!(still_open, 0, "stalled bodies left open past the timeout");
    // The budget, what the allocator keeps around it, and the process itself.
    assert!(rss_peak < 192 << 20, "RSS peaked at {} MiB", rss_peak >> 20);
    hook.wait_for(served.ok, Duration::from_secs(10)).await;
}

fn tls_config(pki: &Pki, mutual: bool, outputs: &str) -> String {
    let client_ca = if mutual {
        format!(", client_ca_file: \"{}\"", pki.ca.display())
    } else {
        String::new()
    };
    format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\"{client_ca} }}\noutputs:\n{outputs}",
        pki.server_cert.display(),
        pki.server_key.display()
    )
}

async fn post_with(client: &reqwest::Client, base: &str) -> Result<u16, String> {
    client
        .post(format!("{base}/"))
        .json(&falco_alert("tls", "Warning", &[]))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_alerts_only_from_clients_the_ca_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let hook = Receiver::ok().await;
    let good = pki.client(Some((&pki.client_cert, &pki.client_key)));
    let launch = Launch {
        tls_client: Some(good.clone()),
        ..Launch::default()
    };
    let config = tls_config(&pki, true, &webhook("hook", &hook.url("/")));
    let gw = GatewayProcess::launch(&tmp.path().join("gw"), &config, launch).await;

    assert_eq!(post_with(&good, &gw.base).await, Ok(200));
    let anonymous = pki.client(None);
    assert!(post_with(&anonymous, &gw.base).await.is_err());
    let stranger = pki.client(Some((&pki.stranger_cert, &pki.stranger_key)));
    assert!(post_with(&stranger, &gw.base).await.is_err());
    let plain = reqwest::Client::new();
    let http = gw.base.replace("https://", "http://");
    assert!(post_with(&plain, &http).await.is_err());

    // Only the one from the signed client arrived.
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        gw.metric("peregrine_alerts_received_total{priority=\"Warning\",source=\"syscall\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_are_served_after_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    let first = Pki::create(&pki_dir);
    let first_client = first.client(None);
    let launch = Launch {
        tls_client: Some(first_client.clone()),
        ..Launch::default()
    };
    let config = tls_config(&first, false, "  - { name: out, type: stdout }\n");
    let gw = GatewayProcess::launch(&tmp.path().join("gw"), &config, launch).await;
    assert_eq!(post_with(&first_client, &gw.base).await, Ok(200));

    // New CA and certificate under the same file names; the config text is unchanged.
    let second = Pki::create(&pki_dir);
    let second_client = second.client(None);
    assert!(post_with(&second_client, &gw.base).await.is_err());
    gw.reload(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while post_with(&second_client, &gw.base).await != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(post_with(&first_client, &gw.base).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_added_before_sighup_receives_the_next_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Receiver::ok().await;
    let added = Receiver::ok().await;
    let one = format!("outputs:\n{}", webhook("first", &first.url("/")));
    let gw = GatewayProcess::start(tmp.path(), &one).await;
    assert_eq!(
        gw.post(&falco_alert("before", "Warning", &[]))
            .await
            .status(),
        200
    );
    first.wait_for(1, Duration::from_secs(10)).await;

    let two = format!("{one}{}", webhook("added", &added.url("/")));
    gw.reload(&two);
    gw.wait_metric(
        "peregrine_config_reloads_total{result=\"ok\"}",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        gw.post(&falco_alert("after", "Warning", &[]))
            .await
            .status(),
        200
    );
    let got = added.wait_for(1, Duration::from_secs(10)).await;
    let rule = |r: &peregrine_e2e::receiver::Received| {
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["rule"].clone()
    };
    assert_eq!(
        rule(&got[0]),
        "after",
        "the added output starts at the next alert"
    );
    // The unchanged output kept its cursor: it gets "after" once, not "before" again.
    let got = first.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(rule).collect::<Vec<_>>(),
        ["before", "after"]
    );

    // A broken file is refused and the running config keeps delivering to both.
    gw.reload(
        "outputs:\n  - { name: broken, type: webhook, url: 42, retry: { max_backoff: soon } }\n",
    );
    gw.wait_metric(
        "peregrine_config_reloads_total{result=\"error\"}",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        gw.logs().contains("outputs[0].retry.max_backoff"),
        "{}",
        gw.logs()
    );
    assert_eq!(
        gw.post(&falco_alert("still", "Warning", &[]))
            .await
            .status(),
        200
    );
    added.wait_for(2, Duration::from_secs(10)).await;
    first.wait_for(3, Duration::from_secs(10)).await;
    let info = gw.metrics().await;
    assert!(info.contains("peregrine_config_info{hash=\""), "{info}");
}

/// Runs the gateway binary to its exit with `config`; the exit code and everything it printed.
fn run_to_exit(dir: &std::path::Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("start.yaml");
    std::fs::write(&path, config).unwrap();
    let run =
        peregrine_e2e::gateway::run_cli(&[std::ffi::OsStr::new("--config"), path.as_os_str()], &[]);
    (run.code, run.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&tmp.path().join("gw"), "outputs: []\n").await;
    let spool = tmp.path().join("spool2");

    let in_use = format!(
        "listen: \"{}\"\nspool: {{ dir: \"{}\" }}\noutputs: []\n",
        gw.addr(),
        spool.display()
    );
    let (code, text) = run_to_exit(tmp.path(), &in_use);
    assert_eq!(code, Some(1), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0].contains(&format!(
            "cannot listen on {}: Address already in use",
            gw.addr()
        )),
        "{text}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );

    let unreadable_cert = format!(
        "listen: \"127.0.0.1:0\"\nspool: {{ dir: \"{}\" }}\ntls: {{ cert_file: /nonexistent/server.pem, key_file: /nonexistent/server.key }}\noutputs: []\n",
        spool.display()
    );
    let (code, text) = run_to_exit(tmp.path(), &unreadable_cert);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("tls.cert_file: cannot read /nonexistent/server.pem"),
        "{text}"
    );

    let file_as_spool = tmp.path().join("not-a-dir");
    std::fs::write(&file_as_spool, "").unwrap();
    let bad_spool = format!(
        "listen: \"127.0.0.1:0\"\nspool: {{ dir: \"{}\" }}\noutputs: []\n",
        file_as_spool.display()
    );
    let (code, text) = run_to_exit(tmp.path(), &bad_spool);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "cannot open the spool at {}",
            file_as_spool.display()
        )),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_output_presents_its_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    // The destination: a second gateway that takes alerts only over mutual TLS.
    let launch = Launch {
        tls_client: Some(pki.client(Some((&pki.client_cert, &pki.client_key)))),
        ..Launch::default()
    };
    let downstream = GatewayProcess::launch(
        &tmp.path().join("downstream"),
        &tls_config(&pki, true, "  - { name: out, type: stdout }\n"),
        launch,
    )
    .await;
    let tls = |with_cert: bool| {
        let cert = if with_cert {
            format!(
                ", cert_file: \"{}\", key_file: \"{}\"",
                pki.client_cert.display(),
                pki.client_key.display()
            )
        } else {
            String::new()
        };
        format!("    tls: {{ ca_file: \"{}\"{cert} }}\n", pki.ca.display())
    };
    let config = format!(
        "outputs:\n{}{}{}{}",
        webhook("with_cert", &format!("{}/", downstream.base)),
        tls(true),
        webhook("without_cert", &format!("{}/", downstream.base)),
        tls(false),
    );
    let upstream = GatewayProcess::start(&tmp.path().join("upstream"), &config).await;
    assert_eq!(
        upstream
            .post(&falco_alert("relayed", "Warning", &[]))
            .await
            .status(),
        200
    );

    upstream
        .wait_metric(
            "peregrine_output_sent_total{output=\"with_cert\",type=\"webhook\"}",
            1.0,
            Duration::from_secs(15),
        )
        .await;
    upstream
        .wait_metric(
            "peregrine_output_retries_total{output=\"without_cert\",type=\"webhook\"}",
            1.0,
            Duration::from_secs(15),
        )
        .await;
    let received = "peregrine_alerts_received_total{priority=\"Warning\",source=\"syscall\"}";
    assert_eq!(downstream.metric(received).await, 1.0);
    assert_eq!(
        upstream
            .metric("peregrine_output_sent_total{output=\"without_cert\",type=\"webhook\"}")
            .await,
        0.0
    );

    // A certificate without its key is a config error with the key's path.
    let half = format!(
        "outputs:\n{}    tls: {{ cert_file: \"{}\" }}\n",
        webhook("half", "https://127.0.0.1:1/"),
        pki.client_cert.display()
    );
    let (code, text) = run_to_exit(tmp.path(), &format!("listen: \"127.0.0.1:0\"\n{half}"));
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("outputs[0].tls: cert_file and key_file go together"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_stores_its_alerts_once() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let gw = GatewayProcess::start(
        tmp.path(),
        &format!("outputs:\n{}", webhook("hook", &hook.url("/"))),
    )
    .await;
    let ndjson = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                let mut a = falco_alert(&format!("rule {id}"), "Warning", &[]);
                a["uuid"] = (*id).into();
                format!("{a}\n")
            })
            .collect::<String>()
    };
    let post = |body: String| {
        let url = format!("{}/", gw.base);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // The first attempt, its retry (the sender never saw the answer), and the retry racing a
    // third copy: every answer says accepted, each id is stored once.
    assert_eq!(post(ndjson(&["id-1", "id-2"])).await.status(), 200);
    let (a, b) = tokio::join!(
        post(ndjson(&["id-1", "id-2", "id-3"])),
        post(ndjson(&["id-3", "id-3"]))
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(
        a.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"accepted": 3})
    );
    let got = hook.wait_for(3, Duration::from_secs(10)).await;
    let received = "peregrine_alerts_received_total{priority=\"Warning\",source=\"syscall\"}";
    assert_eq!(gw.metric(received).await, 3.0);
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["uuid"].to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["\"id-1\"", "\"id-2\"", "\"id-3\""]);
}
