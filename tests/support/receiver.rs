//! A local HTTP receiver that records every request and answers from a script.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

type Script = Box<dyn FnMut(usize, &Received) -> Reply + Send>;

struct Shared {
    requests: Mutex<Vec<Received>>,
    /// When each reply left, by request index (for "no request before X after that answer").
    answered: Mutex<Vec<Instant>>,
    script: Mutex<Script>,
    arrived: Notify,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver answering 200 to everything.
    pub async fn ok() -> Self {
        Self::scripted(|_, _| Reply::status(200)).await
    }

    /// A receiver whose answer to the n-th request (from 0) is `script(n, request)`.
    pub async fn scripted(script: impl FnMut(usize, &Received) -> Reply + Send + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(listener, Box::new(script))
    }

    /// Like [`Receiver::scripted`], on a given port (to bring a "down" destination back up).
    pub async fn scripted_on(
        port: u16,
        script: impl FnMut(usize, &Received) -> Reply + Send + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the reserved port");
        Self::serve(listener, Box::new(script))
    }

    fn serve(listener: tokio::net::TcpListener, script: Script) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
            script: Mutex::new(script),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/", any(handle))
            .route("/{*path}", any(handle))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn answered_at(&self) -> Vec<Instant> {
        self.shared.answered.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.requests();
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {count} requests within {timeout:?}, got {}",
                    self.requests().len()
                );
            }
        }
    }

    /// The `uuid` of every alert received with a 2xx answer... or any answer: the caller filters.
    pub fn uuids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.json()["uuid"].as_str().expect("uuid").to_string())
            .collect()
    }

    /// Stops answering and closes the port.
    pub fn stop(self) {
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        at: Instant::now(),
        method,
        path: uri.path().to_string(),
        headers,
        body,
    };
    let reply = {
        let mut requests = shared.requests.lock().unwrap();
        let n = requests.len();
        let reply = (shared.script.lock().unwrap())(n, &received);
        requests.push(received);
        reply
    };
    shared.arrived.notify_waiters();
    let mut response =
        Response::builder().status(StatusCode::from_u16(reply.status).expect("status"));
    for (name, value) in &reply.headers {
        response = response.header(*name, value.as_str());
    }
    let response = response
        .body(axum::body::Body::from(reply.body))
        .expect("response");
    shared.answered.lock().unwrap().push(Instant::now());
    response
}

/// A port with nothing listening (connections are refused), kept free for a later
/// [`Receiver::scripted_on`].
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A destination that accepts connections and never answers.
pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
}

impl BlackHole {
    pub fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        BlackHole {
            addr: listener.local_addr().expect("addr"),
            _listener: listener,
        }
    }
}

impl Default for BlackHole {
    fn default() -> Self {
        Self::new()
    }
}
