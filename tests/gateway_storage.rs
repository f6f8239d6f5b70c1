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
