//! The HTTP server every fake shares: recording, forced answers, rate limiting.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use tokio::sync::Notify;

use crate::bucket::{Limit, Limiter};

/// One request as the fake saw it, with the answer it gave.
#[derive(Debug, Clone)]
pub struct Message {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
    /// Format problems the service would only report elsewhere (a Teams flow's run history).
    pub problems: Vec<String>,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub problems: Vec<String>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            problems: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What one service does with a request.
pub trait Api: Send + Sync + 'static {
    /// The rate limit key of a request (the webhook URL's path, a routing key); `None` for no
    /// limit.
    fn rate_key(&self, path: &str, body: &[u8]) -> Option<String>;
    /// The limit each key has.
    fn limit(&self) -> Limit;
    /// The answer over the limit.
    fn rate_limited(&self) -> Reply;
    /// The answer to a request within the limit.
    fn answer(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply;
    /// Like [`Api::answer`], for services that read the query too (credentials in it).
    fn answer_query(&self, request: &Request<'_>) -> Reply {
        self.answer(request.method, request.path, request.headers, request.body)
    }
}

/// A request as [`Api::answer_query`] sees it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The value of query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

struct Shared {
    api: Box<dyn Api>,
    messages: Mutex<Vec<Message>>,
    forced: Mutex<VecDeque<Reply>>,
    limiters: Mutex<HashMap<String, Limiter>>,
    arrived: Notify,
}

/// A running fake service on 127.0.0.1.
pub struct FakeService {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeService {
    pub async fn start(api: impl Api) -> FakeService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            api: Box::new(api),
            messages: Mutex::new(Vec::new()),
            forced: Mutex::new(VecDeque::new()),
            limiters: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/", any(handle))
            .route("/{*path}", any(handle))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake serves");
        });
        FakeService {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next `times` requests with `reply`, whatever they hold.
    pub fn force(&self, reply: Reply, times: usize) {
        let mut forced = self.shared.forced.lock().unwrap();
        for _ in 0..times {
            forced.push_back(reply.clone());
        }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// The bodies answered with a 2xx, as JSON.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.messages()
            .iter()
            .filter(|m| m.accepted())
            .map(Message::json)
            .collect()
    }

    /// Waits until `pred` holds for the messages so far (or panics after `timeout`).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Message]) -> bool,
    ) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.messages();
            if pred(&got) {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "waited {timeout:?} for {what}; {} requests arrived, {} accepted",
                    got.len(),
                    got.iter().filter(|m| m.accepted()).count()
                );
            }
        }
    }

    /// Waits for `n` accepted messages.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Message> {
        self.wait_until(timeout, &format!("{n} accepted messages"), |m| {
            m.iter().filter(|m| m.accepted()).count() >= n
        })
        .await
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
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
    let at = Instant::now();
    let path = uri.path().to_string();
    let reply = match shared.forced.lock().unwrap().pop_front() {
        Some(forced) => forced,
        None => {
            let admitted = match shared.api.rate_key(&path, &body) {
                None => true,
                Some(key) => shared
                    .limiters
                    .lock()
                    .unwrap()
                    .entry(key)
                    .or_insert_with(|| Limiter::new(shared.api.limit()))
                    .admit(at),
            };
            if admitted {
                shared.api.answer_query(&Request {
                    method: &method,
                    path: &path,
                    query: uri.query(),
                    headers: &headers,
                    body: &body,
                })
            } else {
                shared.api.rate_limited()
            }
        }
    };
    shared.messages.lock().unwrap().push(Message {
        at,
        method,
        path,
        query: uri.query().map(str::to_string),
        headers,
        body,
        status: reply.status,
        problems: reply.problems.clone(),
    });
    shared.arrived.notify_waiters();
    let mut response = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response
        .body(Body::from(reply.body))
        .expect("a valid response")
}
