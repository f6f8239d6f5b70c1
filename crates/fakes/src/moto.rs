//! moto's server mode (PyPI `moto[server]`) as a child process on 127.0.0.1: a real SNS (and
//! SQS) API to publish to and read back from. moto takes any credentials and does not check
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

const SNS_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0";
const SQS_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";

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
            .header("authorization", SNS_AUTH)
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
            .header("authorization", SQS_AUTH)
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
        let mut attributes = json!({});
        if queue.ends_with(".fifo") {
            attributes = json!({"FifoQueue": "true"});
        }
        let q = self
            .sqs(
                "CreateQueue",
                json!({"QueueName": queue, "Attributes": attributes}),
            )
            .await;
        let queue_url = q["QueueUrl"].as_str().expect("a queue URL").to_string();
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
