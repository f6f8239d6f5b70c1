//! moto's server mode (PyPI `moto[server]`) as a child process on 127.0.0.1: real SNS, SQS,
//! Kinesis, CloudWatch Logs and S3 APIs to send to and read back from. moto takes any credentials and does not check
//! signatures, so tests give the gateway dummy keys.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Moto {
    pub url: String,
    child: Child,
    client: reqwest::Client,
}

/// The account moto gives every resource.
pub const ACCOUNT: &str = "123456789012";

/// moto routes by the service named in the credential scope.
fn auth(service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0")
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (scripts/setup.sh test installs it: pip install 'moto[server]')");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{url}/moto-api/")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Moto { url, child, client }
    }

    async fn sns(&self, params: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("Version", "2010-03-31"));
        self.client
            .post(&self.url)
            .header("authorization", auth("sns"))
            .form(&form)
            .send()
            .await
            .expect("moto answers")
            .text()
            .await
            .unwrap()
    }

    async fn sqs(&self, action: &str, body: Value) -> Value {
        self.client
            .post(&self.url)
            .header("authorization", auth("sqs"))
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// A call to a JSON-protocol service (`Kinesis_20131202`, `Logs_20140328`).
    async fn json_call(&self, service: &str, target: &str, body: Value) -> Value {
        let r = self
            .client
            .post(&self.url)
            .header("authorization", auth(service))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{target}: {status} {v}");
        v
    }

    /// Creates a queue (FIFO when the name ends in `.fifo`) and returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        let attributes = if name.ends_with(".fifo") {
            json!({"FifoQueue": "true"})
        } else {
            json!({})
        };
        let q = self
            .sqs(
                "CreateQueue",
                json!({"QueueName": name, "Attributes": attributes}),
            )
            .await;
        q["QueueUrl"].as_str().expect("a queue URL").to_string()
    }

    /// Creates a Kinesis stream with one shard.
    pub async fn create_stream(&self, name: &str) {
        self.json_call(
            "kinesis",
            "Kinesis_20131202.CreateStream",
            json!({"StreamName": name, "ShardCount": 1}),
        )
        .await;
    }

    /// Every record in the stream's one shard: (partition key, data).
    pub async fn stream_records(&self, name: &str) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let it = self
            .json_call(
                "kinesis",
                "Kinesis_20131202.GetShardIterator",
                json!({"StreamName": name, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
        let mut iterator = it["ShardIterator"].as_str().map(str::to_string);
        let mut out = Vec::new();
        for _ in 0..1000 {
            let Some(i) = iterator.take() else { break };
            let r = self
                .json_call(
                    "kinesis",
                    "Kinesis_20131202.GetRecords",
                    json!({"ShardIterator": i, "Limit": 10000}),
                )
                .await;
            let records = r["Records"].as_array().cloned().unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for rec in records {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(rec["Data"].as_str().unwrap_or(""))
                    .expect("base64 data");
                out.push((rec["PartitionKey"].as_str().unwrap_or("").to_string(), data));
            }
            iterator = r["NextShardIterator"].as_str().map(str::to_string);
        }
        out
    }

    /// Every event of a log stream, oldest first: (timestamp in ms, message).
    pub async fn log_events(&self, group: &str, stream: &str) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut body = json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true, "limit": 10000});
            if let Some(t) = &token {
                body["nextToken"] = t.clone().into();
            }
            let r = self
                .json_call("logs", "Logs_20140328.GetLogEvents", body)
                .await;
            let events = r["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                break;
            }
            out.extend(events.iter().map(|e| {
                (
                    e["timestamp"].as_i64().unwrap_or(0),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            }));
            token = r["nextForwardToken"].as_str().map(str::to_string);
        }
        out
    }

    /// Creates an S3 bucket.
    pub async fn create_bucket(&self, name: &str) {
        let r = self
            .client
            .put(format!("{}/{name}", self.url))
            .header("authorization", auth("s3"))
            .send()
            .await
            .expect("moto answers");
        assert!(r.status().is_success(), "CreateBucket: {}", r.status());
    }

    /// Every object in a bucket: (key, content type, content encoding, body).
    pub async fn objects(&self, bucket: &str) -> Vec<(String, String, String, Vec<u8>)> {
        let list = self
            .client
            .get(format!("{}/{bucket}?list-type=2&max-keys=1000", self.url))
            .header("authorization", auth("s3"))
            .send()
            .await
            .expect("moto answers")
            .text()
            .await
            .unwrap();
        let mut out = Vec::new();
        for part in list.split("<Key>").skip(1) {
            let key = part.split("</Key>").next().unwrap_or("").to_string();
            let r = self
                .client
                .get(format!("{}/{bucket}/{key}", self.url))
                .header("authorization", auth("s3"))
                .send()
                .await
                .expect("moto answers");
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let (ct, ce) = (header("content-type"), header("content-encoding"));
            out.push((key, ct, ce, r.bytes().await.unwrap().to_vec()));
        }
        out
    }

    /// Creates a topic (FIFO when the name ends in `.fifo`) and returns its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        let mut params = vec![("Action", "CreateTopic"), ("Name", name)];
        if name.ends_with(".fifo") {
            params.extend([
                ("Attributes.entry.1.key", "FifoTopic"),
                ("Attributes.entry.1.value", "true"),
            ]);
        }
        let text = self.sns(&params).await;
        let start = text.find("<TopicArn>").expect("a topic ARN") + "<TopicArn>".len();
        let end = text.find("</TopicArn>").unwrap();
        text[start..end].to_string()
    }

    /// A queue subscribed to `topic_arn` with raw delivery (FIFO when the name ends in `.fifo`);
    /// returns the queue URL.
    pub async fn subscribe_queue(&self, topic_arn: &str, queue: &str) -> String {
        let queue_url = self.create_queue(queue).await;
        let queue_arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}");
        self.sns(&[
            ("Action", "Subscribe"),
            ("TopicArn", topic_arn),
            ("Protocol", "sqs"),
            ("Endpoint", &queue_arn),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ])
        .await;
        queue_url
    }

    /// Every message body in the queue (received once each, kept invisible afterwards).
    pub async fn drain_queue(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let r = self
                .sqs("ReceiveMessage", json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 3600}))
                .await;
            let Some(messages) = r["Messages"].as_array().filter(|m| !m.is_empty()) else {
                return bodies;
            };
            bodies.extend(
                messages
                    .iter()
                    .map(|m| m["Body"].as_str().unwrap_or("").to_string()),
            );
        }
    }

    /// What was published to a topic: (message, subject, attributes as name → value).
    pub async fn notifications(&self, topic_arn: &str) -> Vec<(String, Option<String>, Value)> {
        let data: Value = self
            .client
            .get(format!("{}/moto-api/data.json", self.url))
            .send()
            .await
            .expect("moto answers")
            .json()
            .await
            .unwrap();
        let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        let topic = topics
            .iter()
            .find(|t| t["arn"] == topic_arn)
            .cloned()
            .unwrap_or(Value::Null);
        topic["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|n| {
                let attributes: serde_json::Map<String, Value> = n[3]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v["Value"].clone()))
                    .collect();
                (
                    n[1].as_str().unwrap_or("").to_string(),
                    n[2].as_str().map(str::to_string),
                    Value::Object(attributes),
                )
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
