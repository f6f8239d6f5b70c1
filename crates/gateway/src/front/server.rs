//! The HTTP/1.1 server loop: accept, admit under `max_connections`, TLS, and one hyper
//! connection per socket with the deadlines of [`conn`](super::conn).
//!
//! hyper's HTTP/1 connection directly, rather than `axum::serve`: Falco's `http_output` and
//! Falcosidekick-style senders speak HTTP/1.1, and skipping the HTTP/2 detection that
//! `axum::serve` does on every connection made ingest measurably cheaper under load.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::conn::{ConnState, Connections, Phase, Registration, Watched};
use super::{Front, Routes};

/// The largest request head, and the most a connection buffers from its socket at once. Falco's
/// headers are a few hundred bytes; a small buffer keeps ten thousand stalled connections cheap.
const READ_BUFFER: usize = 16 * 1024;

/// Serves `routes` until `stop` is cancelled, then lets requests in progress finish and closes
/// idle keep-alive connections.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    front: Arc<ArcSwap<Front>>,
    connections: Arc<Connections>,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e, &connections).await;
                continue;
            }
        };
        let registration = tokio::select! {
            r = connections.admit() => r,
            _ = stop.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(connection(
            stream,
            registration,
            front.load_full(),
            routes.clone(),
            graceful.watcher(),
        ));
    }
    graceful.shutdown().await;
}

/// After a failed accept: out of descriptors, make one free by closing an idle connection;
/// anything else, wait a moment rather than spin.
async fn accept_failed(e: &io::Error, connections: &Connections) {
    let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
    if out_of_fds && connections.close_one_idle() {
        tracing::warn!(error = %e, open = connections.len(), "out of file descriptors; closed an idle connection");
        tokio::time::sleep(Duration::from_millis(5)).await;
    } else {
        tracing::warn!(error = %e, "accept failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection, from the TLS handshake (if any) to its close.
async fn connection(
    stream: TcpStream,
    registration: Registration,
    front: Arc<Front>,
    routes: Routes,
    graceful: Watcher,
) {
    let state = registration.state.clone();
    let limits = front.limits;
    let peer = stream.peer_addr().ok().map(PeerAddr);
    let mut client_certificate = None;
    let io = match &front.tls {
        None => Either::Left(stream),
        Some(tls) => {
            let deadline = tokio::time::Instant::now() + limits.header_timeout;
            let handshake = tokio::time::timeout_at(deadline, tls.acceptor.accept(stream));
            tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => {
                        client_certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|cert| ClientCertificate::of(cert.as_ref()));
                        Either::Right(stream)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        state.note_timeout();
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                },
                _ = state.evicted() => return,
            }
        }
    };
    // A new connection's first request is held to header_timeout from the accept, as a
    // request head is: a client that connects and says nothing is not waiting politely.
    let io = Watched::new(io, state.clone(), limits);
    let service = Tracked {
        routes,
        state: state.clone(),
        peer,
        client_certificate,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        done = graceful.watch(conn) => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = state.evicted() => {}
    }
    drop(registration);
}

/// The routes, telling the connection's state when a request starts and when its answer is
/// ready. Handlers behind the router find the state in the request's extensions.
#[derive(Clone)]
struct Tracked {
    routes: Routes,
    state: Arc<ConnState>,
    peer: Option<PeerAddr>,
    client_certificate: Option<ClientCertificate>,
}

/// The SHA-256 of the client certificate a mutual-TLS connection presented (lower-case hex), in
/// the extensions of its requests that go through the router: the console can sign a person in
/// by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub sha256: String,
}

impl ClientCertificate {
    fn of(der: &[u8]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(der);
        ClientCertificate {
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The client's address, in the extensions of every request that goes through the router (the
/// console throttles sign-ins by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        self.state.enter(Phase::Body);
        if Routes::is_ingest(&request) {
            let ingest = self.routes.ingest(self.state.clone(), request);
            return Answer {
                inner: Box::pin(async move { Ok(ingest.await) }),
                state: self.state.clone(),
            };
        }
        request.extensions_mut().insert(self.state.clone());
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(peer);
        }
        if let Some(cert) = &self.client_certificate {
            request.extensions_mut().insert(cert.clone());
        }
        let router = self.routes.router().clone();
        Answer {
            inner: Box::pin(router.oneshot(request.map(Body::new))),
            state: self.state.clone(),
        }
    }
}

/// The answer; once it is ready the connection waits for its next request.
struct Answer {
    inner: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
    state: Arc<ConnState>,
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = std::task::ready!(self.inner.as_mut().poll(cx));
        self.state.enter(Phase::Idle);
        Poll::Ready(answer)
    }
}
