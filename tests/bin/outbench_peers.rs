//! The peer each output drains into in `peregrine-outbench`, and the output's keys for it
//! (`{addr}` stands for the relay in front of the peer).

use std::any::Any;
use std::net::SocketAddr;
use std::process::Child;

use peregrine_fakes::{
    alertmanager::Alertmanager, datadog, mosquitto::Mosquitto, moto::Moto, nats::NatsServer, otlp,
    rabbitmq::RabbitMq, redis::Redis, rsyslog::Rsyslog, smtp, smtp::SmtpServer, splunk,
};

/// Every output measured, the baseline first.
pub const KINDS: &[&str] = &[
    "webhook",
    "elasticsearch",
    "loki",
    "alertmanager",
    "syslog",
    "redis",
    "mqtt",
    "nats",
    "rabbitmq",
    "smtp",
    "datadog",
    "splunk",
    "otlp",
    "sqs",
    "kinesis",
    "cloudwatch_logs",
    "s3",
];

/// Dummy credentials for the AWS outputs' standard chain: moto checks none.
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

pub struct Peer {
    /// What answers: the real server's or the fake's name.
    pub name: &'static str,
    pub addr: SocketAddr,
    /// The output's keys, one per line, indented for the gateway config.
    pub keys: String,
    _running: Box<dyn Any>,
}

/// The HTTP sink child, killed when dropped.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn url_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a URL with a port")
}

fn peer(name: &'static str, port: u16, keys: &[&str], running: impl Any) -> Peer {
    Peer {
        name,
        addr: local(port),
        keys: keys.join("\n    "),
        _running: Box::new(running),
    }
}

/// Starts the peer for `kind`.
pub async fn start(kind: &str) -> Peer {
    let aws = ["region: us-east-1", "endpoint_url: \"http://{addr}\""];
    match kind {
        "webhook" | "elasticsearch" | "loki" => {
            let port = super::free_port();
            let sink = Sink(super::spawn_sink(port));
            let url = if kind == "webhook" {
                "url: \"http://{addr}/hook\""
            } else {
                "url: \"http://{addr}\""
            };
            peer("sink answering at once", port, &[url], sink)
        }
        "datadog" | "splunk" | "otlp" => saas_peer(kind).await,
        "sqs" | "kinesis" | "cloudwatch_logs" | "s3" => aws_peer(kind, aws).await,
        _ => server_peer(kind).await,
    }
}

/// The real servers that install here.
async fn server_peer(kind: &str) -> Peer {
    match kind {
        "alertmanager" => {
            let am = Alertmanager::start().await;
            let port = url_port(&am.url);
            peer(
                "prometheus-alertmanager",
                port,
                &["urls: \"http://{addr}\""],
                am,
            )
        }
        "syslog" => {
            let rs = Rsyslog::start();
            peer(
                "rsyslogd (imtcp)",
                rs.tcp,
                &["address: \"tcp://{addr}\""],
                rs,
            )
        }
        "redis" => {
            let r = Redis::start();
            peer(
                "redis-server",
                r.port,
                &["url: \"redis://{addr}\"", "stream: falco"],
                r,
            )
        }
        "mqtt" => {
            let m = Mosquitto::start();
            let keys = ["url: \"mqtt://{addr}\"", "topic: \"falco/{priority}\""];
            peer("mosquitto", m.port, &keys, m)
        }
        "nats" => {
            let n = NatsServer::start();
            peer(
                "nats-server",
                n.port,
                &["url: \"nats://{addr}\"", "subject: falco"],
                n,
            )
        }
        "rabbitmq" => {
            let r = RabbitMq::start();
            r.declare_queue("falco", "", "").await;
            let keys = ["url: \"amqp://guest:guest@{addr}/%2f\""];
            peer("rabbitmq-server", r.port, &keys, r)
        }
        "smtp" => {
            let s = SmtpServer::start();
            let ca = format!("ca_file: \"{}\"", s.ca_file().display());
            let user = format!("username: {}", smtp::USER);
            let password = format!("password: \"{}\"", smtp::PASSWORD);
            let keys = [
                "host: localhost",
                "port: {port}",
                "encryption: starttls",
                &user,
                &password,
                &ca,
                "from: \"Peregrine <falco@example.com>\"",
                "to: [secops@example.com]",
            ];
            peer("aiosmtpd (python3-aiosmtpd)", s.port, &keys, s)
        }
        other => panic!("no peer for {other}"),
    }
}

/// The fakes of SaaS intakes, in this process.
async fn saas_peer(kind: &str) -> Peer {
    match kind {
        "datadog" => {
            let (fake, logs) = datadog::start("bench-key").await;
            let port = fake.addr.port();
            let keys = ["api_key: bench-key", "url: \"http://{addr}\""];
            peer("fake of the Logs intake", port, &keys, (fake, logs))
        }
        "splunk" => {
            let (fake, store) = splunk::start("bench-token", &[], false).await;
            let port = fake.addr.port();
            let keys = ["token: bench-token", "url: \"http://{addr}\""];
            peer("fake HEC", port, &keys, (fake, store))
        }
        "otlp" => {
            let (fake, requests) = otlp::start(None).await;
            let port = fake.addr.port();
            peer(
                "fake OTLP receiver",
                port,
                &["endpoint: \"http://{addr}\""],
                (fake, requests),
            )
        }
        other => panic!("no peer for {other}"),
    }
}

async fn aws_peer(kind: &str, aws: [&str; 2]) -> Peer {
    let moto = Moto::start().await;
    let port = url_port(&moto.url);
    let own = match kind {
        "sqs" => {
            let url = moto.create_queue("falco").await;
            let path = url.splitn(4, '/').nth(3).unwrap_or("").to_string();
            format!("queue_url: \"http://{{addr}}/{path}\"")
        }
        "kinesis" => {
            moto.create_stream("falco").await;
            "stream_name: falco".to_string()
        }
        "cloudwatch_logs" => "log_group: /falco/bench".to_string(),
        "s3" => {
            moto.create_bucket("falco-bench").await;
            "bucket: falco-bench".to_string()
        }
        other => panic!("no peer for {other}"),
    };
    let keys = [own.as_str(), aws[0], aws[1]];
    peer("moto_server", port, &keys, moto)
}
