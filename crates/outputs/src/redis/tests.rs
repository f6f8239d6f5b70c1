//! Redis against the real `redis-server`, read back with Redis's own commands.

use std::collections::HashMap;
use std::time::Duration;

use peregrine_fakes::redis::Redis;
use redis::AsyncCommands;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, shadow_read};

fn output(keys: serde_json::Value) -> Arc<dyn Output> {
    checked::<RedisSettings>(keys)
        .unwrap()
        .build(build_context())
}

async fn connect(r: &Redis) -> MultiplexedConnection {
    redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

type Entry = (String, HashMap<String, String>);

async fn entries(c: &mut MultiplexedConnection, stream: &str) -> Vec<Entry> {
    let reply: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .unwrap();
    reply
        .into_iter()
        .map(|(id, fields)| (id, fields.into_iter().collect()))
        .collect()
}

#[tokio::test]
async fn a_batch_is_xadded_in_order_with_its_fields_and_the_stream_is_trimmed() {
    let r = Redis::start();
    let out = output(json!({"url": r.url(), "stream": "falco", "max_len": 100}));
    let batch: Vec<Envelope> = (0..300).map(|_| shadow_read("Critical")).collect();
    assert_eq!(out.deliver(&batch[..3]).await, Delivery::Delivered);
    let mut c = connect(&r).await;
    let got = entries(&mut c, "falco").await;
    let ids: Vec<&str> = got.iter().map(|(_, f)| f["uuid"].as_str()).collect();
    assert_eq!(ids, batch[..3].iter().map(Envelope::id).collect::<Vec<_>>());
    let fields = &got[0].1;
    assert_eq!(fields["rule"], "Read sensitive file untrusted");
    assert_eq!(fields["priority"], "Critical");
    assert_eq!(fields["hostname"], "node-1");
    let alert: serde_json::Value = serde_json::from_str(&fields["alert"]).unwrap();
    assert_eq!(alert["uuid"], batch[0].id());
    assert_eq!(out.deliver(&batch[3..]).await, Delivery::Delivered);
    let len: u64 = c.xlen("falco").await.unwrap();
    assert!((100..=200).contains(&len), "MAXLEN ~ 100 kept {len}");
}

#[tokio::test]
async fn lists_and_channels_get_the_json() {
    let r = Redis::start_with_password(Some("s3cret-pw"));
    let alert = shadow_read("Warning");
    let list = output(json!({"url": r.url(), "list": "alerts"}));
    assert_eq!(
        list.deliver(std::slice::from_ref(&alert)).await,
        Delivery::Delivered
    );
    let mut c = connect(&r).await;
    let pushed: Vec<String> = c.lrange("alerts", 0, -1).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pushed[0]).unwrap()["uuid"],
        alert.id()
    );

    let client = redis::Client::open(r.url()).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("falco-live").await.unwrap();
    let channel = output(json!({"url": r.url(), "channel": "falco-live"}));
    assert_eq!(
        channel.deliver(std::slice::from_ref(&alert)).await,
        Delivery::Delivered
    );
    use futures_util::StreamExt;
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    let payload: String = msg.get_payload().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap()["uuid"],
        alert.id()
    );

    let wrong =
        output(json!({"url": format!("redis://:nope@127.0.0.1:{}", r.port), "list": "alerts"}));
    match wrong.deliver(std::slice::from_ref(&alert)).await {
        Delivery::Permanent(f) => {
            assert!(
                f.reason.starts_with("Password authentication failed"),
                "{}",
                f.reason
            );
            assert!(!f.reason.contains("nope"), "{}", f.reason);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_of_another_type_is_refused_with_redis_words() {
    let r = Redis::start();
    let mut c = connect(&r).await;
    let _: () = c.set("falco", "a string").await.unwrap();
    match output(json!({"url": r.url()}))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert!(f.reason.contains("WRONGTYPE"), "{}", f.reason),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_loses_nothing_it_acknowledged_and_delivery_resumes() {
    let mut r = Redis::start();
    let out = output(json!({"url": r.url(), "stream": "falco"}));
    let mut acknowledged = Vec::new();
    for round in 0..6 {
        if round == 3 {
            r.kill();
            let batch = vec![shadow_read("Error")];
            assert!(
                matches!(out.deliver(&batch).await, Delivery::Retry(_)),
                "a dead Redis is a retry"
            );
            r.restart();
        }
        let batch: Vec<Envelope> = (0..50).map(|_| shadow_read("Error")).collect();
        // The first batch after the restart may meet the dead connection: it is retried.
        let mut answer = out.deliver(&batch).await;
        if matches!(answer, Delivery::Retry(_)) {
            answer = out.deliver(&batch).await;
        }
        assert_eq!(answer, Delivery::Delivered, "round {round}");
        acknowledged.extend(batch.iter().map(|e| e.id().to_string()));
    }
    let mut c = connect(&r).await;
    let stored: std::collections::HashSet<String> = entries(&mut c, "falco")
        .await
        .into_iter()
        .map(|(_, f)| f["uuid"].clone())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alerts lost",
        lost.len(),
        acknowledged.len()
    );
}

#[test]
fn keys_are_checked_and_the_password_never_printed() {
    let s = checked::<RedisSettings>(
        json!({"url": "redis://:hunter2@redis.example:6379/2", "list": "q"}),
    )
    .unwrap();
    assert_eq!(s.describe(), "Redis redis.example:6379/2 list q");
    assert!(!format!("{s:?}").contains("hunter2"));
    let e = |keys| checked::<RedisSettings>(keys).unwrap_err().path;
    assert_eq!(e(json!({"url": "http://x"})), "url");
    assert_eq!(
        e(json!({"url": "redis://x", "stream": "a", "list": "b"})),
        "stream"
    );
    assert_eq!(
        e(json!({"url": "redis://x", "list": "b", "max_len": 5})),
        "max_len"
    );
}
