//! The transport shared by every HTTP destination.
//!
//! An HTTP output is an [`HttpEncoder`]: it turns a batch into a request and reads the answer.
//! [`HttpOutput`] wraps it into an [`Output`](crate::Output), sending with one pooled client per
//! output and turning transport errors into retryable failures with the URL stripped.

mod classify;
mod plain;
mod tls;

pub use classify::{classify_status, parse_retry_after};
pub use tls::Tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::secret::SecretUrl;

/// A request ready to send. Outputs fill it; only the transport touches the network.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub url: SecretUrl,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The answer, read whole (destinations answer with small bodies; the read is capped).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Largest response body read for classification; the rest is discarded.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What an HTTP destination knows: how to build its request and how to read its answers.
pub trait HttpEncoder: Send + Sync + 'static {
    fn kind(&self) -> &'static str;

    fn batch_limits(&self) -> BatchLimits {
        BatchLimits::SINGLE
    }

    /// The pacer for this destination, if it has a published rate.
    fn pacer(&self) -> Option<&crate::pacer::Pacer> {
        None
    }

    /// Builds the request for `batch`. An error is permanent: the batch can never be sent as is.
    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure>;

    /// See [`Output::reads_alert`].
    fn reads_alert(&self) -> bool {
        true
    }

    /// Reads the destination's answer. The default is the generic webhook table
    /// ([`classify_status`]).
    fn classify(&self, response: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        classify_status(response.status, &response.headers)
    }
}

/// `Basic base64(user:password)`: an `Authorization` value for HTTP basic authentication.
pub fn basic_credentials(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// gzip at a fast level: alert batches compress about tenfold and the CPU is better spent
/// elsewhere than on the last few percent.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// The client every HTTP output sends with: reqwest for HTTPS, proxies and URLs with credentials,
/// and the lean [`plain`] path for plain `http://` destinations, which is most of the cost of a
/// delivery to a webhook next door. Cloning shares the connections.
#[derive(Clone)]
pub struct Client {
    reqwest: reqwest::Client,
    plain: Option<Arc<plain::PlainPool>>,
}

impl Client {
    /// Whether a request to `url` takes the lean path.
    fn plain_for(&self, url: &SecretUrl) -> Option<&plain::PlainPool> {
        self.plain
            .as_deref()
            .filter(|_| plain::serves(url.expose()))
    }
}

/// How long a pooled connection may sit idle before it is closed rather than reused, on both
/// paths.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long opening a connection may take, on both paths.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the client every HTTP output uses: a connection pool sized to its concurrency, no
/// redirects (a redirect to another host would carry a credential-bearing body along), and
/// Nagle's algorithm off for small requests.
pub fn client(max_in_flight: usize) -> Client {
    client_with_tls(max_in_flight, &Tls::default())
}

/// Like [`client`], with an output's `tls` settings. The system's CA store is trusted as well
/// as webpki's roots, so a corporate CA installed on the host works without `ca_file`.
pub fn client_with_tls(max_in_flight: usize, tls: &Tls) -> Client {
    let builder = reqwest::Client::builder()
        .pool_max_idle_per_host(max_in_flight.max(1))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT);
    let reqwest = tls
        .apply(builder)
        .build()
        .expect("the HTTP client builds with checked settings");
    let plain =
        (!plain::proxy_in_environment()).then(|| Arc::new(plain::PlainPool::new(max_in_flight)));
    Client { reqwest, plain }
}

/// An [`HttpEncoder`] made into an [`Output`].
pub struct HttpOutput<E> {
    encoder: E,
    client: Client,
}

impl<E: HttpEncoder> HttpOutput<E> {
    pub fn new(encoder: E, client: Client) -> Self {
        HttpOutput { encoder, client }
    }

    pub fn encoder(&self) -> &E {
        &self.encoder
    }
}

#[async_trait]
impl<E: HttpEncoder> Output for HttpOutput<E> {
    fn kind(&self) -> &'static str {
        self.encoder.kind()
    }

    fn batch_limits(&self) -> BatchLimits {
        self.encoder.batch_limits()
    }

    async fn ready(&self) {
        if let Some(p) = self.encoder.pacer() {
            p.until_available().await;
        }
    }

    async fn pace(&self) {
        if let Some(p) = self.encoder.pacer() {
            p.acquire().await;
        }
    }

    fn reads_alert(&self) -> bool {
        self.encoder.reads_alert()
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let request = match self.encoder.build(batch) {
            Ok(r) => r,
            Err(failure) => return Delivery::Permanent(failure),
        };
        match send(&self.client, request).await {
            Ok(response) => self.encoder.classify(&response, batch),
            Err(failure) => Delivery::Retry(failure),
        }
    }
}

/// Sends one request. Errors are described without the URL, which may hold a credential.
pub async fn send(client: &Client, request: HttpRequest) -> Result<HttpResponse, Failure> {
    send_capped(client, request, MAX_RESPONSE_BODY).await
}

/// Like [`send`], reading at most `max_body` bytes of the answer (bulk APIs answer per item).
pub async fn send_capped(
    client: &Client,
    request: HttpRequest,
    max_body: usize,
) -> Result<HttpResponse, Failure> {
    if let Some(plain) = client.plain_for(&request.url) {
        return plain.send(request, max_body).await;
    }
    let response = client
        .reqwest
        .request(request.method, request.url.expose().clone())
        .headers(request.headers)
        .body(request.body)
        .send()
        .await
        .map_err(|e| Failure::new(None, describe_transport_error(&e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response, max_body).await;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

async fn read_capped(mut response: reqwest::Response, max_body: usize) -> Bytes {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = max_body - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= max_body {
            break;
        }
    }
    Bytes::from(body)
}

/// A short, URL-free description of a transport error with its root cause. reqwest's own message
/// includes the URL, so only the innermost source is kept, and dropped if it names a URL too.
fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response could not be read"
    } else {
        "request failed"
    };
    let mut root = std::error::Error::source(e);
    while let Some(next) = root.and_then(|r| r.source()) {
        root = Some(next);
    }
    match root.map(|r| r.to_string()) {
        Some(cause) if !cause.contains("://") => format!("{kind}: {cause}"),
        _ => kind.to_string(),
    }
}
