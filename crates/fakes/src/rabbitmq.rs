//! Debian's `rabbitmq-server` as a child process on 127.0.0.1, with its own node name, port and
//! data directory, so a test can kill it (`SIGKILL`, the whole process group) and start it again
//! on the same data: durable queues keep the persistent messages the broker confirmed.
//! [`RabbitMq::messages`] reads a queue back with `basic_get`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

pub struct RabbitMq {
    pub port: u16,
    dir: PathBuf,
    node: String,
    child: Option<Child>,
}

/// A message read back: routing key, `message_id`, headers, body.
#[derive(Debug, Clone)]
pub struct Message {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub delivery_mode: Option<u8>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RabbitMq {
    /// A fresh broker (user `guest`, vhost `/`), up and listening.
    pub fn start() -> RabbitMq {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("peregrine-rabbitmq-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a data directory");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("a plugins file");
        let mut r = RabbitMq {
            port,
            node: format!("peregrine{}x{port}@localhost", std::process::id()),
            dir,
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts it (again, after [`RabbitMq::kill`]) on the same port, node and data, and waits
    /// until it takes connections.
    pub fn restart(&mut self) {
        let dist = free_port();
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed (scripts/setup.sh test installs Debian's rabbitmq-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not start on port {} in 60s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the broker answers AMQP's protocol header with `Connection.Start` (a method
    /// frame).
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut frame_type = [0u8; 1];
        s.write_all(b"AMQP\x00\x00\x09\x01").is_ok()
            && s.read_exact(&mut frame_type).is_ok()
            && frame_type[0] == 1
    }

    /// Makes what the broker has declared so far survive [`RabbitMq::kill`]. RabbitMQ 3.10 keeps
    /// queue and exchange definitions in Mnesia, whose transaction log is written lazily: a
    /// durable queue declared a moment before a `SIGKILL` is gone after the restart (seen here in
    /// two restarts of five). Messages are another matter: the broker confirms them only once
    /// they are on disk, which is what the tests check.
    fn sync_definitions(&self) {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .args(["-n", &self.node, "eval", "mnesia:sync_log()."])
            .stdin(Stdio::null())
            .output()
            .expect("rabbitmqctl is installed with rabbitmq-server");
        assert!(
            out.status.success(),
            "rabbitmqctl eval mnesia:sync_log(): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the broker at once (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = i32::try_from(c.id()).expect("a pid");
            // SAFETY: signalling our own child's process group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    async fn connection(&self) -> Connection {
        Connection::connect(&self.url(), ConnectionProperties::default())
            .await
            .expect("the broker takes connections")
    }

    /// A durable queue; bound to `exchange` (a durable topic exchange, declared) with
    /// `pattern` unless `exchange` is empty (the default exchange routes by queue name). The
    /// definitions are on disk when this returns, so they survive [`RabbitMq::kill`].
    pub async fn declare_queue(&self, queue: &str, exchange: &str, pattern: &str) {
        let c = self.connection().await;
        let ch = c.create_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(queue.into(), durable, FieldTable::default())
            .await
            .unwrap();
        if !exchange.is_empty() {
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            ch.exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        let _ = c.close(200, "OK".into()).await;
        self.sync_definitions();
    }

    /// Every message in the queue (taken with auto-ack).
    pub async fn messages(&self, queue: &str) -> Vec<Message> {
        let c = self.connection().await;
        let ch = c.create_channel().await.unwrap();
        let mut out = Vec::new();
        let options = BasicGetOptions { no_ack: true };
        while let Some(m) = ch.basic_get(queue.into(), options).await.unwrap() {
            let p = &m.delivery.properties;
            let headers = p
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                AMQPValue::LongString(s) => s.to_string(),
                                other => format!("{other:?}"),
                            };
                            (k.to_string(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Message {
                routing_key: m.delivery.routing_key.to_string(),
                message_id: p.message_id().as_ref().map(|s| s.to_string()),
                delivery_mode: *p.delivery_mode(),
                headers,
                body: m.delivery.data.clone(),
            });
        }
        let _ = c.close(200, "OK".into()).await;
        out
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
