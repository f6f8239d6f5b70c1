//! The fakes answer as the services do: each one is started on 127.0.0.1 and sent real HTTP
//! requests, a valid body per the published API and the bodies the real service turns away.
//!
//! Every request has a deadline (the client's timeout), so a fake that does not answer fails the
//! test instead of hanging it.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// What a client sees of an answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON answer")
    }
}

/// One client per test (building one loads the system's root certificates); its timeout is
/// every request's deadline.
struct Http {
    client: reqwest::Client,
}

impl Http {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client");
        Http { client }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the fake answers");
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        Answer {
            status: response.status().as_u16(),
            retry_after,
            body: response.text().await.expect("a body"),
        }
    }

    async fn post_json(&self, url: &str, body: &Value) -> Answer {
        self.send(self.client.post(url).json(body)).await
    }

    async fn post_bytes(&self, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// The first 429 among up to five back-to-back posts of `body`. Back-to-back requests come
    /// far faster than any limit here; five tries make a stall of the machine between two of
    /// them harmless.
    async fn first_rate_limited(&self, url: &str, body: &Value) -> Option<Answer> {
        for _ in 0..5 {
            let answer = self.post_json(url, body).await;
            if answer.status == 429 {
                return Some(answer);
            }
        }
        None
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

mod slack {
    use super::*;
    use peregrine_fakes::slack;

    fn valid_message() -> Value {
        json!({
            "text": "1 alert: Read sensitive file untrusted",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Falco alert", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Rule*: Read sensitive file"},
                 "fields": [{"type": "mrkdwn", "text": "*Priority*\nWarning"}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "node-1", "verbatim": true}]},
                {"type": "divider"}
            ],
            "attachments": [{"color": "#ff9900", "fallback": "Warning",
                "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "cat /etc/shadow"}}]}]
        })
    }

    #[tokio::test]
    async fn accepts_a_block_kit_message_with_ok() {
        let http = Http::new();
        let fake = slack::start().await;
        let answer = http
            .post_json(&fake.url("/services/T0/B0/x"), &valid_message())
            .await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
        assert_eq!(fake.accepted(), [valid_message()]);
    }

    #[tokio::test]
    async fn rejects_what_block_kit_does_not_allow_with_slacks_error_words() {
        let http = Http::new();
        let long = |n: usize| "x".repeat(n);
        let section = |text: Value| json!({"blocks": [{"type": "section", "text": text}]});
        let cases = [
            ("an empty message", json!({}), "no_text"),
            ("blank text", json!({"text": "  "}), "no_text"),
            (
                "text over 40 000 characters",
                json!({"text": long(40_001)}),
                "invalid_payload",
            ),
            (
                "51 blocks",
                json!({"blocks": vec![json!({"type": "divider"}); 51]}),
                "invalid_payload",
            ),
            (
                "a mrkdwn header",
                json!({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}),
                "invalid_payload",
            ),
            (
                "a header over 150 characters",
                json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": long(151)}}]}),
                "invalid_payload",
            ),
            (
                "a section text over 3 000 characters",
                section(json!({"type": "mrkdwn", "text": long(3001)})),
                "invalid_payload",
            ),
            (
                "verbatim on plain_text",
                section(json!({"type": "plain_text", "text": "x", "verbatim": true})),
                "invalid_payload",
            ),
            (
                "11 section fields",
                json!({"blocks": [{"type": "section",
                    "fields": vec![json!({"type": "mrkdwn", "text": "f"}); 11]}]}),
                "invalid_payload",
            ),
            (
                "an unknown block type",
                json!({"blocks": [{"type": "video"}]}),
                "invalid_payload",
            ),
            (
                "101 attachments",
                json!({"attachments": vec![json!({"color": "good"}); 101]}),
                "too_many_attachments",
            ),
            (
                "a numeric attachment color",
                json!({"text": "x", "attachments": [{"color": 3}]}),
                "invalid_payload",
            ),
        ];
        let fake = slack::start().await;
        // One webhook per case: Slack's limit of one message a second is per webhook.
        for (i, (what, body, word)) in cases.into_iter().enumerate() {
            let answer = http
                .post_json(&fake.url(&format!("/services/T0/B0/case{i}")), &body)
                .await;
            assert_eq!((answer.status, answer.body.as_str()), (400, word), "{what}");
        }
        let not_json = http
            .post_bytes(&fake.url("/services/T0/B0/raw"), &[], b"{".to_vec())
            .await;
        assert_eq!(
            (not_json.status, not_json.body.as_str()),
            (400, "invalid_payload")
        );
        assert!(fake.accepted().is_empty());
    }

    #[tokio::test]
    async fn a_second_message_within_a_second_gets_429_with_retry_after() {
        let http = Http::new();
        let fake = slack::start().await;
        let webhook = fake.url("/services/T0/B0/busy");
        let first = http.post_json(&webhook, &valid_message()).await;
        assert_eq!(first.status, 200);
        let limited = http.first_rate_limited(&webhook, &valid_message()).await;
        let limited = limited.expect("a 429 for back-to-back messages");
        assert_eq!(limited.retry_after.as_deref(), Some("1"));
        assert_eq!(
            limited.json(),
            json!({"ok": false, "error": "rate_limited"})
        );
        // Another webhook has its own limit.
        let other = http
            .post_json(&fake.url("/services/T0/B0/quiet"), &valid_message())
            .await;
        assert_eq!(other.status, 200);
    }

    #[tokio::test]
    async fn a_forced_answer_is_given_once_and_every_request_is_recorded() {
        let http = Http::new();
        let fake = slack::start().await;
        fake.force(slack::error(404, "channel_not_found"), 1);
        let webhook = fake.url("/services/T0/B0/x");
        let forced = http.post_json(&webhook, &valid_message()).await;
        assert_eq!(
            (forced.status, forced.body.as_str()),
            (404, "channel_not_found")
        );
        let next = http.post_json(&webhook, &valid_message()).await;
        assert_eq!(next.status, 200);
        let seen = fake.wait_accepted(1, Duration::from_secs(5)).await;
        let statuses: Vec<u16> = seen.iter().map(|m| m.status).collect();
        assert_eq!(statuses, [404, 200]);
        assert_eq!(seen[1].path, "/services/T0/B0/x");
    }
}

mod teams {
    use super::*;
    use peregrine_fakes::teams;

    fn card(version: &str, text: &str) -> Value {
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "version": version,
                    "body": [
                        {"type": "TextBlock", "text": text},
                        {"type": "FactSet", "facts": [{"title": "Rule", "value": "Read sensitive file"}]}
                    ]
                }
            }]
        })
    }

    #[tokio::test]
    async fn a_workflows_url_accepts_an_adaptive_card_with_202() {
        let http = Http::new();
        let fake = teams::start().await;
        let answer = http
            .post_json(&fake.url("/workflows/a"), &card("1.4", "Falco alert"))
            .await;
        assert_eq!((answer.status, answer.body.as_str()), (202, ""));
        assert!(fake.messages()[0].problems.is_empty());
    }

    #[tokio::test]
    async fn a_card_the_flow_cannot_post_is_still_accepted_and_its_problem_recorded() {
        let http = Http::new();
        let fake = teams::start().await;
        let answer = http
            .post_json(&fake.url("/workflows/a"), &card("1.6", "Falco alert"))
            .await;
        assert_eq!(answer.status, 202);
        assert_eq!(
            fake.messages()[0].problems,
            ["attachments[0].content.version is not one Teams renders"]
        );
    }

    #[tokio::test]
    async fn a_connector_accepts_a_message_card_with_1_and_needs_text() {
        let http = Http::new();
        let fake = teams::start().await;
        let card = json!({"@type": "MessageCard", "summary": "Falco alert", "text": "x"});
        let answer = http.post_json(&fake.url("/webhookb2/a"), &card).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "1"));
        let empty = json!({"@type": "MessageCard", "themeColor": "ff0000"});
        let answer = http.post_json(&fake.url("/webhookb2/b"), &empty).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (400, "Summary or Text is required.")
        );
    }

    #[tokio::test]
    async fn rejects_a_message_over_28_kb_and_a_body_that_is_not_json() {
        let http = Http::new();
        let fake = teams::start().await;
        let big = card("1.4", &"x".repeat(teams::MAX_BYTES));
        let answer = http.post_json(&fake.url("/workflows/a"), &big).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (413, "Request Entity Too Large")
        );
        let answer = http
            .post_bytes(&fake.url("/workflows/b"), &[], b"not json".to_vec())
            .await;
        assert_eq!((answer.status, answer.body.as_str()), (400, "Invalid JSON"));
    }

    #[tokio::test]
    async fn a_fifth_request_within_a_second_gets_429_with_retry_after() {
        let http = Http::new();
        let fake = teams::start().await;
        let url = fake.url("/workflows/busy");
        for _ in 0..4 {
            assert_eq!(http.post_json(&url, &card("1.4", "x")).await.status, 202);
        }
        let limited = http.first_rate_limited(&url, &card("1.4", "x")).await;
        let limited = limited.expect("a 429 after four back-to-back requests");
        assert_eq!(limited.retry_after.as_deref(), Some("1"));
        let other = http
            .post_json(&fake.url("/workflows/quiet"), &card("1.4", "x"))
            .await;
        assert_eq!(other.status, 202);
    }
}

mod pagerduty {
    use super::*;
    use peregrine_fakes::pagerduty;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn trigger(routing_key: &str) -> Value {
        json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": "alert-1",
            "payload": {
                "summary": "Read sensitive file untrusted",
                "source": "node-1",
                "severity": "warning",
                "timestamp": "2026-06-12T09:23:10.123Z",
                "custom_details": {"proc.name": "cat"}
            }
        })
    }

    #[tokio::test]
    async fn accepts_a_trigger_with_202_and_its_dedup_key() {
        let http = Http::new();
        let fake = pagerduty::start().await;
        let answer = http
            .post_json(&fake.url("/v2/enqueue"), &trigger(KEY))
            .await;
        assert_eq!(answer.status, 202);
        assert_eq!(
            answer.json(),
            json!({"status": "success", "message": "Event processed", "dedup_key": "alert-1"})
        );
    }

    #[tokio::test]
    async fn rejects_an_invalid_event_with_400_and_the_reason() {
        let http = Http::new();
        // A valid event with the value at a JSON pointer replaced.
        let with = |pointer: &str, value: Value| {
            let mut event = trigger(KEY);
            *event
                .pointer_mut(pointer)
                .expect("a key of the valid event") = value;
            event
        };
        let without = |key: &str| {
            let mut event = trigger(KEY);
            event.as_object_mut().unwrap().remove(key);
            event
        };
        let cases = [
            (
                with("/routing_key", json!("short")),
                "Length of 'routing_key' is incorrect (should be 32 characters)",
            ),
            (without("routing_key"), "'routing_key' is missing or blank"),
            (
                with("/event_action", json!("fire")),
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')",
            ),
            (
                json!({"routing_key": KEY, "event_action": "resolve"}),
                "'dedup_key' is required for acknowledge and resolve",
            ),
            (
                with("/payload/summary", json!("")),
                "'payload.summary' is missing or blank",
            ),
            (
                with("/payload/summary", json!("x".repeat(1025))),
                "'payload.summary' is too long (maximum is 1024 characters)",
            ),
            (
                with("/payload/source", Value::Null),
                "'payload.source' is missing or blank",
            ),
            (
                with("/payload/severity", json!("high")),
                "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')",
            ),
            (
                with("/payload/timestamp", json!("yesterday")),
                "'payload.timestamp' is not a valid ISO 8601 timestamp",
            ),
            (
                with("/payload/custom_details", json!("cat")),
                "'payload.custom_details' must be an object",
            ),
            (
                with("/payload/custom_details", json!({"big": "x".repeat(600 * 1024)})),
                "Event is larger than 512 KB",
            ),
        ];
        let fake = pagerduty::start().await;
        for (event, reason) in cases {
            let answer = http.post_json(&fake.url("/v2/enqueue"), &event).await;
            assert_eq!(answer.status, 400, "{reason}");
            let body = answer.json();
            assert_eq!(body["status"], "invalid event");
            assert_eq!(body["errors"], json!([reason]));
        }
        let answer = http
            .post_bytes(&fake.url("/v2/enqueue"), &[], b"{".to_vec())
            .await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["errors"], json!(["Malformed JSON"]));
        let answer = http.post_json(&fake.url("/v2/events"), &trigger(KEY)).await;
        assert_eq!(answer.status, 404);
    }

    #[tokio::test]
    async fn the_121st_event_in_a_minute_for_a_routing_key_gets_429() {
        let http = Http::new();
        let fake = pagerduty::start().await;
        let url = fake.url("/v2/enqueue");
        for n in 0..120 {
            assert_eq!(
                http.post_json(&url, &trigger(KEY)).await.status,
                202,
                "event {n}"
            );
        }
        assert_eq!(http.post_json(&url, &trigger(KEY)).await.status, 429);
        let other_key = "fedcba9876543210fedcba9876543210";
        assert_eq!(http.post_json(&url, &trigger(other_key)).await.status, 202);
    }
}

mod elasticsearch {
    use super::*;
    use peregrine_fakes::elasticsearch as es;

    const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");

    fn bulk_body(ids: &[&str]) -> Vec<u8> {
        let mut body = String::new();
        for id in ids {
            body.push_str(&json!({"create": {"_index": "falco", "_id": id}}).to_string());
            body.push('\n');
            body.push_str(&json!({"rule": "R", "id": id}).to_string());
            body.push('\n');
        }
        body.into_bytes()
    }

    fn statuses(answer: &Answer) -> Vec<u64> {
        answer.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["create"]["status"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn creates_each_document_and_answers_item_by_item() {
        let http = Http::new();
        let (fake, state) = es::start().await;
        let url = fake.url("/_bulk");
        let answer = http
            .post_bytes(&url, &[NDJSON], bulk_body(&["a", "b"]))
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["errors"], false);
        assert_eq!(statuses(&answer), [201, 201]);
        assert_eq!(state.lock().unwrap().documents["a"].0, "falco");

        // A second create of an `_id` is a conflict, as in Elasticsearch.
        let again = http
            .post_bytes(&url, &[NDJSON], bulk_body(&["a", "c"]))
            .await;
        assert_eq!(again.json()["errors"], true);
        assert_eq!(statuses(&again), [409, 201]);
        let conflict = &again.json()["items"][0]["create"]["error"]["type"];
        assert_eq!(conflict, "version_conflict_engine_exception");
    }

    #[tokio::test]
    async fn an_injected_item_failure_is_answered_once_then_the_retry_is_created() {
        let http = Http::new();
        let (fake, state) = es::start().await;
        state
            .lock()
            .unwrap()
            .inject
            .insert("a".into(), [429].into());
        let url = fake.url("/_bulk");
        let answer = http.post_bytes(&url, &[NDJSON], bulk_body(&["a"])).await;
        assert_eq!((answer.status, statuses(&answer)), (200, vec![429]));
        let error = &answer.json()["items"][0]["create"]["error"]["type"];
        assert_eq!(error, "es_rejected_execution_exception");
        let retry = http.post_bytes(&url, &[NDJSON], bulk_body(&["a"])).await;
        assert_eq!(statuses(&retry), [201]);
    }

    #[tokio::test]
    async fn accepts_a_gzipped_bulk_body() {
        let http = Http::new();
        let (fake, state) = es::start().await;
        let headers = [NDJSON, ("content-encoding", "gzip")];
        let body = gzip(&bulk_body(&["a"]));
        let answer = http
            .post_bytes(&fake.url("/falco/_bulk"), &headers, body)
            .await;
        assert_eq!(statuses(&answer), [201]);
        assert_eq!(
            state.lock().unwrap().requests,
            [(1, bulk_body(&["a"]).len())]
        );
    }

    #[tokio::test]
    async fn rejects_a_malformed_bulk_body_with_400_and_the_error_type() {
        let http = Http::new();
        let create = bulk_body(&["a"]);
        let ndjson = "application/x-ndjson";
        let unterminated = "The bulk request must be terminated by a newline [\\n]";
        let cases = [
            (
                ndjson,
                create[..create.len() - 1].to_vec(),
                "illegal_argument_exception",
                unterminated,
            ),
            (
                "application/json",
                create.clone(),
                "illegal_argument_exception",
                unterminated,
            ),
            (
                ndjson,
                b"{\"create\":{\"_index\":\"falco\",\"_id\":\"a\"}}\n".to_vec(),
                "illegal_argument_exception",
                "Malformed action/metadata line",
            ),
            (
                ndjson,
                b"{\"create\":{}}\nnot json\n".to_vec(),
                "x_content_parse_exception",
                "bad JSON line",
            ),
            (
                ndjson,
                b"{\"index\":{\"_index\":\"falco\"}}\n{}\n".to_vec(),
                "action_request_validation_exception",
                "only create with _index and _id is expected here",
            ),
        ];
        let (fake, state) = es::start().await;
        for (content_type, body, error, reason) in cases {
            let headers = [("content-type", content_type)];
            let answer = http.post_bytes(&fake.url("/_bulk"), &headers, body).await;
            assert_eq!(answer.status, 400, "{reason}");
            let expected = json!({"type": error, "reason": reason});
            assert_eq!(answer.json()["error"], expected);
        }
        assert!(state.lock().unwrap().documents.is_empty());
    }

    #[tokio::test]
    async fn a_request_over_the_size_limit_gets_413() {
        let http = Http::new();
        let (fake, state) = es::start().await;
        let body = bulk_body(&["a"]);
        state.lock().unwrap().max_request_bytes = Some(body.len() - 1);
        let answer = http.post_bytes(&fake.url("/_bulk"), &[NDJSON], body).await;
        assert_eq!(answer.status, 413);
    }

    #[tokio::test]
    async fn installs_an_index_template() {
        let http = Http::new();
        let (fake, state) = es::start().await;
        let template = json!({"index_patterns": ["falco-*"]});
        let url = fake.url("/_index_template/falco");
        let answer = http.send(http.client.put(&url).json(&template)).await;
        assert_eq!(answer.json(), json!({"acknowledged": true}));
        assert_eq!(state.lock().unwrap().templates["falco"], template);
        let bad = http.send(http.client.put(&url).body("not json")).await;
        assert_eq!(bad.status, 400);
        let get = http.send(http.client.get(fake.url("/_bulk"))).await;
        assert_eq!(get.status, 404);
    }
}

mod loki {
    use super::*;
    use peregrine_fakes::loki;
    use prost::Message as _;

    const JSON: (&str, &str) = ("content-type", "application/json");
    const PATH: &str = "/loki/api/v1/push";

    fn now_ns() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    }

    fn push(labels: Value, values: Value) -> Value {
        json!({"streams": [{"stream": labels, "values": values}]})
    }

    async fn push_json(http: &Http, fake: &peregrine_fakes::FakeService, body: &Value) -> Answer {
        http.post_bytes(&fake.url(PATH), &[JSON], body.to_string().into_bytes())
            .await
    }

    /// `logproto.PushRequest` from Loki's `push.proto`: the fields these tests send.
    #[derive(Clone, PartialEq, prost::Message)]
    struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Stream {
        #[prost(string, tag = "1")]
        labels: String,
        #[prost(message, repeated, tag = "2")]
        entries: Vec<Entry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Entry {
        #[prost(message, optional, tag = "1")]
        timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        line: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    struct Timestamp {
        #[prost(int64, tag = "1")]
        seconds: i64,
        #[prost(int32, tag = "2")]
        nanos: i32,
    }

    #[tokio::test]
    async fn accepts_a_json_push_with_204_and_stores_its_entries() {
        let http = Http::new();
        let (fake, state) = loki::start().await;
        let ts = now_ns();
        let body = push(
            json!({"job": "falco", "priority": "Warning"}),
            json!([[ts.to_string(), "an alert", {"rule": "R"}]]),
        );
        let answer = push_json(&http, &fake, &body).await;
        assert_eq!((answer.status, answer.body.as_str()), (204, ""));
        let state = state.lock().unwrap();
        assert_eq!(state.formats, ["json"]);
        let entry = &state.entries[0];
        assert_eq!(
            (
                entry.labels["job"].as_str(),
                entry.timestamp_ns,
                entry.line.as_str()
            ),
            ("falco", ts, "an alert")
        );
        assert_eq!(entry.metadata["rule"], "R");
    }

    #[tokio::test]
    async fn accepts_gzipped_json_and_snappy_protobuf() {
        let http = Http::new();
        let (fake, state) = loki::start().await;
        let ts = now_ns();
        let body = push(json!({"job": "falco"}), json!([[ts.to_string(), "gz"]]));
        let headers = [JSON, ("content-encoding", "gzip")];
        let answer = http
            .post_bytes(&fake.url(PATH), &headers, gzip(body.to_string().as_bytes()))
            .await;
        assert_eq!(answer.status, 204);

        let request = PushRequest {
            streams: vec![Stream {
                labels: r#"{job="falco", host="node-1"}"#.into(),
                entries: vec![Entry {
                    timestamp: Some(Timestamp {
                        seconds: ts / 1_000_000_000,
                        nanos: (ts % 1_000_000_000) as i32,
                    }),
                    line: "pb".into(),
                }],
            }],
        };
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        let headers = [("content-type", "application/x-protobuf")];
        let answer = http.post_bytes(&fake.url(PATH), &headers, snappy).await;
        assert_eq!(answer.status, 204);

        let state = state.lock().unwrap();
        assert_eq!(state.formats, ["json", "protobuf"]);
        assert_eq!(state.entries[1].labels["host"], "node-1");
        assert_eq!(state.entries[1].timestamp_ns, ts);
    }

    #[tokio::test]
    async fn rejects_what_the_distributor_rejects_with_400_and_lokis_message() {
        let http = Http::new();
        let now = now_ns();
        let hour = 3600 * 1_000_000_000_i64;
        let at = |ts: i64| json!([ts.to_string(), "x"]);
        let sixteen: serde_json::Map<String, Value> =
            (0..16).map(|i| (format!("l{i}"), json!("v"))).collect();
        let cases = [
            (
                push(json!({"job": "falco"}), json!([at(now), at(now - 1)])),
                "'entry out of order'",
            ),
            (
                push(json!({"job": "falco"}), json!([at(now - 8 * 24 * hour)])),
                "has timestamp too old",
            ),
            (
                push(json!({"job": "falco"}), json!([at(now + hour)])),
                "has timestamp too new",
            ),
            (
                push(json!({}), json!([at(now)])),
                "error at least one label pair is required per stream",
            ),
            (
                push(Value::Object(sixteen), json!([at(now)])),
                "has 16 label names; limit 15",
            ),
            (
                push(json!({"1job": "falco"}), json!([at(now)])),
                "invalid label name",
            ),
            (
                push(json!({"job": ""}), json!([at(now)])),
                "label job has an empty value",
            ),
            (
                push(
                    json!({"job": "f"}),
                    json!([[now.to_string(), "x", {"a-b": "c"}]]),
                ),
                "invalid structured metadata name \"a-b\"",
            ),
            (
                push(json!({"job": "f"}), json!([[now, "x"]])),
                "a timestamp must be a string of nanoseconds",
            ),
        ];
        let (fake, state) = loki::start().await;
        for (body, message) in cases {
            let answer = push_json(&http, &fake, &body).await;
            assert_eq!(answer.status, 400, "{message}");
            assert!(answer.body.contains(message), "{message}: {}", answer.body);
        }
        let malformed = http
            .post_bytes(&fake.url(PATH), &[JSON], b"{".to_vec())
            .await;
        assert_eq!(malformed.status, 400);
        assert!(malformed.body.starts_with("loghttp.PushRequest"));
        let protobuf = [("content-type", "application/x-protobuf")];
        let not_snappy = http
            .post_bytes(&fake.url(PATH), &protobuf, b"\xff\xff".to_vec())
            .await;
        assert_eq!(not_snappy.status, 400);
        assert!(state.lock().unwrap().entries.is_empty());
    }

    #[tokio::test]
    async fn an_unsupported_body_format_gets_415_and_another_path_404() {
        let http = Http::new();
        let (fake, _state) = loki::start().await;
        let plain = [("content-type", "text/plain")];
        let answer = http
            .post_bytes(&fake.url(PATH), &plain, b"x".to_vec())
            .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (415, "unsupported Content-Type\n")
        );
        let headers = [
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ];
        let answer = http
            .post_bytes(&fake.url(PATH), &headers, b"x".to_vec())
            .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (415, "Content-Encoding gzip not supported\n")
        );
        let answer = http
            .post_bytes(&fake.url("/api/prom/push"), &[JSON], b"{}".to_vec())
            .await;
        assert_eq!(answer.status, 404);
    }
}
