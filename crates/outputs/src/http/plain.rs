//! A lean HTTP/1.1 transport for plain `http://` destinations.
//!
//! Why it exists: draining a backlog into a webhook on the same host or in the same cluster, the
//! gateway's cost per delivery was about a fifth reqwest's own layers (the URL turned into a URI
//! per request, the redirect policy, a pool looked up per request, header maps merged), next to
//! the socket work itself (issue 20). A plain destination needs none of those layers: this keeps
//! hyper's HTTP/1.1 connections to each origin in a stack and sends on them directly.
//!
//! [`Client`](super::Client) uses it only where reqwest would do exactly the same thing: an `http`
//! URL without credentials in it, and no proxy named by the environment. Everything else (TLS,
//! proxies, basic auth from the URL) stays with reqwest.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT, HOST};
use hyper::Uri;
use hyper_util::rt::TokioIo;

use super::{HttpRequest, HttpResponse, CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT};
use crate::delivery::Failure;
use crate::secret::SecretUrl;

/// How long an idle connection may take to be ready for the next request (hyper may still be
/// writing the last request's body to a peer that answered early) before another is used.
const READY_TIMEOUT: Duration = Duration::from_millis(100);

/// TCP keepalive and user timeout as reqwest sets them by default: a pooled connection whose peer
/// vanished without a word (a deleted pod, a NAT entry dropped) is found dead in about 30 s
/// instead of holding the next request until its attempt times out.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// URLs whose [`Target`] a pool keeps: an output sends to one or a few (Alertmanager's nodes,
/// Splunk's event and acknowledgement endpoints).
const TARGETS: usize = 8;

/// Idle HTTP/1.1 connections per origin, most recently used on top.
pub(super) struct PlainPool {
    idle: Mutex<Vec<(Origin, Vec<Idle>)>>,
    max_idle: usize,
    /// Where the last few URLs sent to point, worked out once each: an output sends to the same
    /// URLs again and again, and parsing the target and Host per request was a twentieth of the
    /// gateway's CPU per webhook delivery.
    targets: Mutex<Vec<(SecretUrl, Arc<Target>)>>,
}

/// What a request to one URL needs besides its method, headers and body.
struct Target {
    origin: Origin,
    /// The origin-form request target: path and query.
    uri: Uri,
    /// `Host`, as reqwest sends it: the port only when the URL names one.
    host: HeaderValue,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Origin {
    host: String,
    port: u16,
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

impl Idle {
    /// Still worth reusing: open, and not idle longer than [`POOL_IDLE_TIMEOUT`].
    fn usable(&self) -> bool {
        self.since.elapsed() <= POOL_IDLE_TIMEOUT && !self.sender.is_closed()
    }
}

/// Whether the lean path sends to `url` the way reqwest would: plain `http`, no user or password
/// to turn into a header, and a host to connect to.
pub(super) fn serves(url: &url::Url) -> bool {
    url.scheme() == "http"
        && url.username().is_empty()
        && url.password().is_none()
        && url.host().is_some()
}

/// Whether the environment names a proxy reqwest would send plain `http` requests through.
pub(super) fn proxy_in_environment() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

impl PlainPool {
    pub(super) fn new(max_idle: usize) -> Self {
        PlainPool {
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            targets: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (whose URL [`serves`] accepted) and reads at most `max_body` bytes of the
    /// answer. A request that an idle connection refused before any byte of it was written is
    /// sent again on a new connection, once.
    pub(super) async fn send(
        &self,
        request: HttpRequest,
        max_body: usize,
    ) -> Result<HttpResponse, Failure> {
        let target = self.target(&request.url)?;
        let origin = &target.origin;
        let mut message = to_hyper(request, &target);
        loop {
            let (mut sender, reused) = match self.checkout(origin).await {
                Some(sender) => (sender, true),
                None => (connect(origin).await?, false),
            };
            match sender.try_send_request(message).await {
                Ok(response) => return self.read(response, sender, origin, max_body).await,
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => message = unsent,
                    _ => return Err(transport_failure("request failed", &e.into_error())),
                },
            }
        }
    }

    /// Where `url` points, worked out once while it is among the last [`TARGETS`] URLs used.
    fn target(&self, url: &SecretUrl) -> Result<Arc<Target>, Failure> {
        let mut targets = self
            .targets
            .lock()
            .expect("the targets' lock is never poisoned");
        if let Some((_, target)) = targets.iter().find(|(u, _)| u == url) {
            return Ok(target.clone());
        }
        let target = Arc::new(Target::of(url.expose())?);
        if targets.len() == TARGETS {
            targets.remove(0);
        }
        targets.push((url.clone(), target.clone()));
        Ok(target)
    }

    /// The most recently used connection to `origin` that is still open, young enough and ready
    /// within [`READY_TIMEOUT`]. Connections past their use are dropped (which closes them).
    async fn checkout(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let idle = {
                let mut pool = self.idle.lock().expect("the pool's lock is never poisoned");
                let stack = &mut pool.iter_mut().find(|(o, _)| o == origin)?.1;
                stack.retain(Idle::usable);
                stack.pop()?
            };
            let mut sender = idle.sender;
            let ready = tokio::time::timeout(READY_TIMEOUT, sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                return Some(sender);
            }
        }
    }

    /// Keeps a connection whose answer was read whole for the next request to `origin`, up to
    /// `max_idle` of them after the stale ones are dropped.
    fn checkin(&self, origin: &Origin, sender: SendRequest<Full<Bytes>>) {
        let mut pool = self.idle.lock().expect("the pool's lock is never poisoned");
        let idle = Idle {
            sender,
            since: Instant::now(),
        };
        match pool.iter_mut().find(|(o, _)| o == origin) {
            Some((_, stack)) => {
                stack.retain(Idle::usable);
                if stack.len() < self.max_idle {
                    stack.push(idle);
                }
            }
            None => pool.push((origin.clone(), vec![idle])),
        }
    }

    /// Reads the answer; the connection goes back to the pool only when the body was read whole.
    async fn read(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        sender: SendRequest<Full<Bytes>>,
        origin: &Origin,
        max_body: usize,
    ) -> Result<HttpResponse, Failure> {
        let (parts, mut incoming) = response.into_parts();
        let mut body = Vec::new();
        let mut whole = false;
        while body.len() < max_body {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(chunk) = frame.into_data() {
                        let room = max_body - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                // As reqwest's `chunk()` does for `send`: a broken body ends what was read.
                Some(Err(_)) => break,
                None => {
                    whole = true;
                    break;
                }
            }
        }
        if whole {
            self.checkin(origin, sender);
        }
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::from(body),
        })
    }
}

impl Target {
    /// Splits a URL [`serves`] accepted into what each request to it needs.
    fn of(url: &url::Url) -> Result<Target, Failure> {
        let origin = Origin {
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or(80),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let uri = Uri::try_from(target)
            .map_err(|_| Failure::new(None, "the URL's path is not a valid request target"))?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", origin.host),
            None => origin.host.clone(),
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| Failure::new(None, "the URL's host is not a valid Host header"))?;
        Ok(Target { origin, uri, host })
    }
}

/// The request as hyper sends it to `target`: origin-form, `Host` from the URL, and reqwest's
/// default `Accept: */*` where the output set none.
fn to_hyper(request: HttpRequest, target: &Target) -> hyper::Request<Full<Bytes>> {
    let mut message = hyper::Request::new(Full::new(request.body));
    *message.method_mut() = request.method;
    *message.uri_mut() = target.uri.clone();
    let headers = message.headers_mut();
    *headers = request.headers;
    if !headers.contains_key(HOST) {
        headers.insert(HOST, target.host.clone());
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    message
}

/// Opens a connection to `origin` ([`configure`]d), and starts its task.
async fn connect(origin: &Origin) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let host = origin.host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, origin.port)),
    )
    .await
    .map_err(|_| {
        let limit = CONNECT_TIMEOUT.as_secs();
        Failure::new(
            None,
            format!("timed out: connecting took longer than {limit}s"),
        )
    })?
    .map_err(|e| Failure::new(None, format!("connection failed: {e}")))?;
    configure(&stream).map_err(|e| Failure::new(None, format!("connection failed: {e}")))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport_failure("connection failed", &e))?;
    tokio::spawn(async move {
        // The connection ends when the peer closes it or every sender is dropped; either way
        // the next request opens another.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Nagle's algorithm off for small requests; keepalive and user timeout as reqwest has them.
fn configure(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))
}

/// `kind: root cause`, like the reqwest path's descriptions (hyper's errors carry no URL).
fn transport_failure(kind: &str, e: &hyper::Error) -> Failure {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    Failure::new(None, format!("{kind}: {root}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use reqwest::header::HeaderMap;
    use reqwest::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::super::{client, send, send_capped, HttpRequest};
    use crate::secret::SecretUrl;

    /// How the test destination treats a connection after its first answer.
    #[derive(Clone, Copy)]
    enum After {
        KeepAlive,
        /// Answers with `Connection: close` and closes.
        SaysClose,
        /// Closes without a word, as a server whose keep-alive timeout ran out.
        Hangs,
    }

    /// A raw HTTP/1.1 destination on 127.0.0.1: answers 200 with `body`, reports each request's
    /// head on `heads` and each connection it closed on `closed`, counts connections.
    struct Destination {
        url: String,
        connections: Arc<AtomicUsize>,
        heads: mpsc::UnboundedReceiver<String>,
        closed: mpsc::UnboundedReceiver<()>,
    }

    async fn destination(after: After, body: &'static str) -> Destination {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/in?x=1", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let (heads_tx, heads) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (heads, closed) = (heads_tx.clone(), closed_tx.clone());
                tokio::spawn(async move {
                    serve(stream, after, body, heads).await;
                    let _ = closed.send(());
                });
            }
        });
        Destination {
            url,
            connections,
            heads,
            closed,
        }
    }

    async fn serve(
        mut stream: TcpStream,
        after: After,
        body: &str,
        heads: mpsc::UnboundedSender<String>,
    ) {
        let mut buf = Vec::new();
        loop {
            let Some(end) = read_head(&mut stream, &mut buf).await else {
                return;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed in the middle of a body");
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + length);
            heads.send(head).unwrap();
            let close = if matches!(after, After::SaysClose) {
                "connection: close\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\n{close}content-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            if !matches!(after, After::KeepAlive) {
                return;
            }
        }
    }

    /// Reads until a request's head is complete; its length including the blank line, or None
    /// at the end of the connection.
    async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(i + 4);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn post(url: &str, body: &'static str) -> HttpRequest {
        HttpRequest {
            method: Method::POST,
            url: SecretUrl::parse(url).unwrap(),
            headers: HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn only_plain_urls_without_credentials_take_the_lean_path() {
        let serves = |u: &str| super::serves(&url::Url::parse(u).unwrap());
        assert!(serves("http://127.0.0.1:8080/hook"));
        assert!(serves("http://hooks.internal/hook?x=1"));
        assert!(!serves("https://hooks.example/hook"));
        assert!(!serves("http://user:pass@hooks.internal/hook"));
        assert!(!serves("http://user@hooks.internal/hook"));
    }

    #[tokio::test]
    async fn requests_share_one_keep_alive_connection_and_carry_host_and_accept() {
        let mut d = destination(After::KeepAlive, "ok").await;
        let client = client(4);
        for _ in 0..5 {
            let answer = send(&client, post(&d.url, "{\"a\":1}")).await.unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(&answer.body[..], b"ok");
        }
        assert_eq!(d.connections.load(Ordering::SeqCst), 1);
        let head = d.heads.recv().await.unwrap();
        let port = d.url.split(':').nth(2).unwrap().split('/').next().unwrap();
        assert!(head.starts_with("post /in?x=1 http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("accept: */*\r\n"), "{head}");
        assert!(head.contains("content-length: 7\r\n"), "{head}");
    }

    #[tokio::test]
    async fn each_url_gets_its_own_request_target_and_host() {
        let mut a = destination(After::KeepAlive, "a").await;
        let mut b = destination(After::KeepAlive, "b").await;
        let other = b.url.replace("/in?x=1", "/other");
        let client = client(4);
        for url in [&a.url, &other, &a.url, &b.url] {
            send(&client, post(url, "{}")).await.unwrap();
        }
        let host = |url: &str| url.split('/').nth(2).unwrap().to_string();
        for (d, paths) in [
            (&mut a, ["/in?x=1", "/in?x=1"]),
            (&mut b, ["/other", "/in?x=1"]),
        ] {
            for path in paths {
                let head = d.heads.recv().await.unwrap();
                assert!(
                    head.starts_with(&format!("post {path} http/1.1\r\n")),
                    "{head}"
                );
                assert!(
                    head.contains(&format!("host: {}\r\n", host(&d.url))),
                    "{head}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_connection_the_destination_said_it_closes_is_not_reused() {
        let d = destination(After::SaysClose, "ok").await;
        let client = client(4);
        for _ in 0..3 {
            assert_eq!(send(&client, post(&d.url, "{}")).await.unwrap().status, 200);
        }
        assert_eq!(d.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_for_a_connection_closed_while_idle_goes_out_on_a_new_one() {
        let mut d = destination(After::Hangs, "ok").await;
        let client = client(4);
        assert_eq!(send(&client, post(&d.url, "{}")).await.unwrap().status, 200);
        // The destination has closed the idle connection before the next delivery (whether the
        // pool sees it closed or hyper hands the unsent request back, it goes out on a new one).
        d.closed.recv().await.unwrap();
        let answer = send(&client, post(&d.url, "{}")).await;
        assert_eq!(
            answer.map(|a| a.status).map_err(|f| f.reason),
            Ok(200.try_into().unwrap())
        );
        assert_eq!(d.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_have_reqwests_keepalive_and_user_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        super::configure(&stream).unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.tcp_nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), super::KEEPALIVE_IDLE);
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            super::KEEPALIVE_INTERVAL
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(std::time::Duration::from_secs(30))
        );
    }

    #[tokio::test]
    async fn an_answer_past_the_cap_is_cut_and_its_connection_not_reused() {
        let d = destination(After::KeepAlive, "0123456789abcdef").await;
        let client = client(4);
        for _ in 0..2 {
            let answer = send_capped(&client, post(&d.url, "{}"), 10).await.unwrap();
            assert_eq!(&answer.body[..], b"0123456789");
        }
        assert_eq!(d.connections.load(Ordering::SeqCst), 2);
    }
}
