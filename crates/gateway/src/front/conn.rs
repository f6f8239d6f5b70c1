//! What each open connection is doing, and the deadlines that follow from it.
//!
//! A connection is always in one [`Phase`]. Its reads have a deadline that depends on the phase —
//! an idle keep-alive connection gets `idle_timeout`, a request head `header_timeout` from its
//! first byte — and a write that cannot proceed (a client that does not read its answer) gets
//! `body_timeout`. [`Watched`] enforces them on the socket itself, so they hold whatever hyper
//! is waiting for; the body's own deadline is the handler's, which can still answer 408.
//!
//! [`Connections`] counts the open connections. When `max_connections` are open, the one that
//! has waited longest without a request being worked on is closed to make room: a crowd of
//! stalled clients can delay a legitimate sender by one accept, never lock it out. The body
//! budget is defended the same way: when it is spent, the bodies that have been arriving
//! longest give theirs up ([`Connections::evict_for_body`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::limits::Limits;

/// What a connection is doing. The order is the order of eviction: idle connections go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for the next request on a kept-alive connection.
    Idle = 0,
    /// Inside a TLS handshake or a request head.
    Head = 1,
    /// The head was read; the handler is reading the body.
    Body = 2,
    /// The body was read; the alerts are being stored. Never evicted.
    Working = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Head,
            2 => Phase::Body,
            _ => Phase::Working,
        }
    }
}

/// Connections closed by the limits, for `/metrics`.
#[derive(Debug, Default)]
pub struct Closed {
    /// To make room under `max_connections`, or when out of file descriptors.
    pub evicted: AtomicU64,
    /// A deadline of their phase passed.
    pub timed_out: AtomicU64,
}

/// One connection's phase and when it began, shared by its socket, its service and the registry.
pub struct ConnState {
    closed: Arc<Closed>,
    phase: AtomicU8,
    /// Milliseconds after `origin` at which the phase began.
    since_ms: AtomicU64,
    origin: Instant,
    /// Set once when the registry closes the connection; `close_waker` wakes its task.
    closing: AtomicBool,
    close_waker: AtomicWaker,
    /// Bytes of the body budget its request holds.
    body_bytes: AtomicUsize,
}

impl ConnState {
    fn new(origin: Instant, closed: Arc<Closed>) -> Self {
        let state = ConnState {
            closed,
            phase: AtomicU8::new(Phase::Head as u8),
            since_ms: AtomicU64::new(0),
            origin,
            closing: AtomicBool::new(false),
            close_waker: AtomicWaker::new(),
            body_bytes: AtomicUsize::new(0),
        };
        state.enter(Phase::Head);
        state
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// When the current phase began.
    pub fn since(&self) -> Instant {
        self.origin + Duration::from_millis(self.since_ms.load(Ordering::Acquire))
    }

    pub fn enter(&self, phase: Phase) {
        let ms = Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64;
        self.since_ms.store(ms, Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Resolves when the registry closes this connection to make room.
    ///
    /// A flag and an `AtomicWaker` rather than a `CancellationToken`: the connection's task polls
    /// this at every wake, and polling the token took a lock each time (1 % of the instructions
    /// ingest spends per alert). The waker holds one task: only the connection's own task may
    /// wait for this.
    pub fn evicted(&self) -> Evicted<'_> {
        Evicted(self)
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Records how much of the body budget the current request holds.
    pub fn set_body_bytes(&self, n: usize) {
        self.body_bytes.store(n, Ordering::Relaxed);
    }

    /// Counts a connection closed because a deadline passed.
    pub fn note_timeout(&self) {
        self.closed.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The read deadline the phase implies (none while alerts are being stored).
    fn read_deadline(&self, limits: &Limits) -> Option<Instant> {
        let wait = match self.phase() {
            Phase::Idle => limits.idle_timeout,
            Phase::Head => limits.header_timeout,
            // The handler answers 408 at body_timeout; this only catches a handler that does
            // not read its body at all.
            Phase::Body => limits.body_timeout + BODY_GRACE,
            Phase::Working => return None,
        };
        Some(self.since() + wait)
    }
}

/// How long after `body_timeout` the socket itself gives up, leaving the handler time to answer.
const BODY_GRACE: Duration = Duration::from_secs(2);

/// See [`ConnState::evicted`].
pub struct Evicted<'a>(&'a ConnState);

impl Future for Evicted<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_closing() {
            return Poll::Ready(());
        }
        self.0.close_waker.register(cx.waker());
        // Closed between the check and the registration: the wake may have gone to the old waker.
        if self.0.is_closing() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The open connections, and the choice of which to close when there are too many.
pub struct Connections {
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    max: AtomicU64,
    /// Open connections already told to close; they no longer count against the limit.
    closing: AtomicU64,
    freed: Notify,
    origin: Instant,
    pub closed: Arc<Closed>,
}

/// A registered connection; dropping it frees its place.
pub struct Registration {
    id: u64,
    pub state: Arc<ConnState>,
    connections: Arc<Connections>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().expect("connections lock");
        open.remove(&self.id);
        if self.state.is_closing() {
            self.connections.closing.fetch_sub(1, Ordering::Relaxed);
        }
        drop(open);
        self.connections.freed.notify_one();
    }
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max: AtomicU64::new(max as u64),
            closing: AtomicU64::new(0),
            freed: Notify::new(),
            origin: Instant::now(),
            closed: Arc::default(),
        })
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max as u64, Ordering::Relaxed);
    }

    /// Connections open now (including those being closed).
    pub fn len(&self) -> usize {
        self.open.lock().expect("connections lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a new connection, closing the longest-waiting idle or stalled one if the limit
    /// is reached. When every connection is storing alerts, waits for one to finish.
    pub async fn admit(self: &Arc<Self>) -> Registration {
        loop {
            let freed = self.freed.notified();
            if let Some(r) = self.try_admit() {
                return r;
            }
            // Every open connection is storing alerts; that ends within a commit or two.
            let _ = tokio::time::timeout(Duration::from_millis(100), freed).await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Registration> {
        let mut open = self.open.lock().expect("connections lock");
        let counted = open.len() as u64 - self.closing.load(Ordering::Relaxed);
        if counted >= self.max.load(Ordering::Relaxed) {
            let victim = open
                .values()
                .filter(|c| !c.is_closing() && c.phase() < Phase::Working)
                .min_by_key(|c| (c.phase(), c.since()))?;
            self.close(victim);
            tracing::debug!(phase = ?victim.phase(), "connection limit reached; closed the longest-waiting connection");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.origin, self.closed.clone()));
        open.insert(id, state.clone());
        Some(Registration {
            id,
            state,
            connections: self.clone(),
        })
    }

    /// Closes the longest-idle connection, if any (when the process is out of descriptors).
    pub fn close_one_idle(&self) -> bool {
        let open = self.open.lock().expect("connections lock");
        let victim = open
            .values()
            .filter(|c| !c.is_closing() && c.phase() <= Phase::Head)
            .min_by_key(|c| (c.phase(), c.since()));
        match victim {
            Some(v) => {
                self.close(v);
                true
            }
            None => false,
        }
    }

    /// Closes connections whose bodies have been arriving for at least `min_age`, oldest first,
    /// until together they hold `needed` bytes of the budget. Returns whether they do: their
    /// reservations come back as their tasks end, a moment later.
    pub fn evict_for_body(&self, needed: usize, me: &ConnState, min_age: Duration) -> bool {
        let open = self.open.lock().expect("connections lock");
        let Some(started_before) = Instant::now().checked_sub(min_age) else {
            return false;
        };
        let mut slow: Vec<&Arc<ConnState>> = open
            .values()
            .filter(|c| {
                !std::ptr::eq(c.as_ref(), me)
                    && !c.is_closing()
                    && c.phase() == Phase::Body
                    && c.since() <= started_before
                    && c.body_bytes.load(Ordering::Relaxed) > 0
            })
            .collect();
        let held: usize = slow
            .iter()
            .map(|c| c.body_bytes.load(Ordering::Relaxed))
            .sum();
        if held < needed {
            return false;
        }
        slow.sort_by_key(|c| c.since());
        let mut freed = 0;
        for c in slow {
            if freed >= needed {
                break;
            }
            freed += c.body_bytes.load(Ordering::Relaxed);
            self.close(c);
        }
        tracing::debug!(freed, "body budget spent; closed the slowest bodies");
        true
    }

    fn close(&self, connection: &ConnState) {
        connection.closing.store(true, Ordering::Release);
        self.closing.fetch_add(1, Ordering::Relaxed);
        self.closed.evicted.fetch_add(1, Ordering::Relaxed);
        connection.close_waker.wake();
    }
}

/// A socket with the deadlines of its connection's phase.
pub struct Watched<IO> {
    io: IO,
    state: Arc<ConnState>,
    limits: Limits,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: Option<Instant>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, state: Arc<ConnState>, limits: Limits) -> Self {
        let far = Instant::now() + Duration::from_secs(86_400);
        Watched {
            io,
            state,
            limits,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_armed: None,
        }
    }
}

/// Whether `deadline` has passed; if not, `timer` wakes the task at or before it.
///
/// The timer is moved only to an earlier deadline. A keep-alive connection's idle deadline moves
/// later with every request, and moving the timer each time was 1 % of the instructions of an
/// accepted alert; a timer left early fires, finds the deadline still ahead and is moved then:
/// about once per timeout, not at every request.
fn expired(
    timer: &mut Pin<Box<Sleep>>,
    armed: &mut Option<Instant>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    if armed.is_none_or(|at| deadline < at) {
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
    }
    while timer.as_mut().poll(cx).is_ready() {
        if *armed == Some(deadline) || Instant::now() >= deadline {
            return true;
        }
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
    }
    false
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.state.phase() == Phase::Idle {
                    this.state.enter(Phase::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = this.state.read_deadline(&this.limits) else {
                    return Poll::Pending;
                };
                if expired(&mut this.read_timer, &mut this.read_armed, deadline, cx) {
                    this.state.note_timeout();
                    return Poll::Ready(Err(timed_out("the client took too long")));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    /// A write that cannot proceed gets `body_timeout`, counted from when it first could not.
    fn poll_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut IO>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Ready(r) => {
                self.write_armed = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let deadline = self
                    .write_armed
                    .unwrap_or_else(|| Instant::now() + self.limits.body_timeout);
                if expired(&mut self.write_timer, &mut self.write_armed, deadline, cx) {
                    self.state.note_timeout();
                    return Poll::Ready(Err(timed_out("the client stopped reading")));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_stalled(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_stalled(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_stalled(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_stalled(cx, |io, cx| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_connection_waiting_for_its_eviction_is_woken_by_it() {
        let connections = Connections::new(1);
        let first = connections.admit().await;
        first.state.enter(Phase::Idle);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut evicted = std::pin::pin!(first.state.evicted());
        assert!(evicted.as_mut().poll(&mut cx).is_pending());
        let _second = connections.admit().await;
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "not woken");
        assert!(evicted.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_waiting_connection_without_work_makes_room() {
        let connections = Connections::new(3);
        let idle = connections.admit().await;
        idle.state.enter(Phase::Idle);
        tokio::time::advance(Duration::from_millis(10)).await;
        let storing = connections.admit().await;
        storing.state.enter(Phase::Working);
        let head = connections.admit().await;
        assert_eq!(connections.len(), 3);

        // Full: the idle one goes first, though the head began later.
        tokio::time::advance(Duration::from_millis(10)).await;
        let fourth = connections.admit().await;
        assert!(idle.state.is_closing());
        assert!(!head.state.is_closing());
        drop(idle);
        // Then the stalled head; never the one storing alerts.
        let _fifth = connections.admit().await;
        assert!(head.state.is_closing());
        assert!(!storing.state.is_closing());
        drop(head);
        fourth.state.enter(Phase::Working);
        assert!(connections.try_admit().is_some_and(|r| {
            drop(r);
            true
        }));
        assert_eq!(connections.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_bodies_give_up_their_budget() {
        let connections = Connections::new(10);
        let slow = connections.admit().await;
        slow.state.enter(Phase::Body);
        slow.state.set_body_bytes(600);
        tokio::time::advance(Duration::from_secs(2)).await;
        let slower_but_young = connections.admit().await;
        slower_but_young.state.enter(Phase::Body);
        slower_but_young.state.set_body_bytes(600);
        tokio::time::advance(Duration::from_millis(500)).await;
        let me = connections.admit().await;
        me.state.enter(Phase::Body);
        let age = Duration::from_secs(1);

        // Only the body older than a second may go, and it cannot free 1000 bytes alone.
        assert!(!connections.evict_for_body(1000, &me.state, age));
        assert!(!slow.state.is_closing());
        assert!(connections.evict_for_body(500, &me.state, age));
        assert!(slow.state.is_closing());
        assert!(!slower_but_young.state.is_closing());
        assert_eq!(connections.closed.evicted.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_house_of_work_waits_for_a_place() {
        let connections = Connections::new(1);
        let busy = connections.admit().await;
        busy.state.enter(Phase::Working);
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.admit().await.id }
        });
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(!waiting.is_finished());
        drop(busy);
        assert!(waiting.await.is_ok());
    }

    /// An idle connection watched with `limits`, and a task that sends its client's first byte
    /// `after` from now and then hands the client back.
    async fn idle_connection(
        limits: Limits,
        after: Duration,
    ) -> (
        Registration,
        Watched<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<tokio::io::DuplexStream>,
    ) {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(64);
        let reg = Connections::new(10).admit().await;
        reg.state.enter(Phase::Idle);
        let watched = Watched::new(server, reg.state.clone(), limits);
        let first_byte = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            client.write_all(b"P").await.unwrap();
            client
        });
        (reg, watched, first_byte)
    }

    #[tokio::test(start_paused = true)]
    async fn reads_time_out_by_phase() {
        use tokio::io::AsyncReadExt;
        let limits = Limits {
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        // Idle: 60 s allowed. A byte arrives after 30 s and starts a head.
        let (reg, mut watched, first_byte) = idle_connection(limits, Duration::from_secs(30)).await;
        let mut buf = [0u8; 16];
        assert_eq!(watched.read(&mut buf).await.unwrap(), 1);
        assert_eq!(reg.state.phase(), Phase::Head);
        let _client = first_byte.await.unwrap();
        // The rest of the head never comes: 2 s later the read fails.
        let started = Instant::now();
        let e = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    /// The idle deadline counts from the last request: a timer armed for an earlier request's
    /// deadline that fires meanwhile does not close the connection.
    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_times_out_from_its_last_request() {
        use tokio::io::AsyncReadExt;
        let limits = Limits {
            idle_timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        // A request's first byte 8 s into the idle time; its answer leaves the connection idle.
        let (reg, mut watched, first_byte) = idle_connection(limits, Duration::from_secs(8)).await;
        let mut buf = [0u8; 16];
        assert_eq!(watched.read(&mut buf).await.unwrap(), 1);
        let _client = first_byte.await.unwrap();
        reg.state.enter(Phase::Idle);
        let idle_since = Instant::now();
        // The timer armed for the first deadline fires 2 s from now; the read fails at 10 s (and
        // a timer never moved to the new deadline fails the test at 60 s rather than hang it).
        let read = tokio::time::timeout(Duration::from_secs(60), watched.read(&mut buf));
        let e = read
            .await
            .expect("the idle deadline closed the read")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(idle_since.elapsed(), Duration::from_secs(10));
    }
}
