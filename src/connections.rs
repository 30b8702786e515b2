//! Connection limits the HTTP framework leaves to us: how long a client may take to send a
//! request's headers, how long a kept-alive connection may sit idle, and how many connections
//! are open at once.
//!
//! Without them an idle or half-sent connection stays open for ever, and a few hundred of them
//! use up the process's open files until `/health` itself cannot be answered. poem's own
//! `idle_timeout` counts a request the handler is still working on as idle, so it would cut a
//! turn waiting for a droplet; here a connection is judged by what it is doing:
//!
//! - **waiting for a request** (nothing read since the last response): closed after the idle
//!   timeout;
//! - **sending headers** (bytes read, no request started yet): closed when the headers have
//!   not all arrived within the header-read timeout of the first byte, however slowly it
//!   trickles (the slow-client attack);
//! - **being answered** (a handler runs) or **upgraded** to a WebSocket (which keeps its own
//!   ping and idle limits): no limit here.
//!
//! The [`Guard`] middleware tells the connection when a request starts and ends; it finds the
//! connection by the peer address, which is unique per open TCP connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The limits, each a setting (`HEADER_READ_TIMEOUT`, `BODY_READ_TIMEOUT`, `IDLE_TIMEOUT`,
/// `WRITE_TIMEOUT`, `MAX_CONNECTIONS`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive once its headers have (enforced where the
    /// body is read, `api::limits`).
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a write may wait on a client that does not read what it is sent (an answer, a
    /// stream, a WebSocket frame) before the connection is closed.
    pub write_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
        }
    }
}

/// Open files kept free for everything that is not an inbound connection: the session store,
/// outbound calls to droplets and the model, configuration files, logs.
const FILES_KEPT_FREE: u64 = 128;

/// As many connections as the open-files limit allows with room to spare (at most 10,000, at
/// least 32), so a flood of connections waits in the listen queue instead of starving the
/// process of files.
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(10_240);
    limit.saturating_sub(FILES_KEPT_FREE).clamp(32, 10_000) as usize
}

/// What one open connection is doing, shared by its IO and the middleware.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being answered right now.
    answering: AtomicUsize,
    /// Switched to another protocol (a WebSocket): this module's limits no longer apply.
    upgraded: AtomicBool,
    /// A request ended; the IO starts a new idle wait at its next read.
    request_ended: AtomicBool,
}

/// Open connections by peer address, for the middleware.
#[derive(Debug, Default)]
pub struct Registry {
    open: Mutex<HashMap<SocketAddr, Weak<Activity>>>,
}

impl Registry {
    fn insert(&self, peer: SocketAddr, activity: &Arc<Activity>) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, Arc::downgrade(activity));
    }

    fn remove(&self, peer: &SocketAddr) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(peer);
    }

    fn find(&self, peer: &SocketAddr) -> Option<Arc<Activity>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(peer).and_then(Weak::upgrade)
    }
}

/// Wraps an acceptor: at most `max_connections` open at once, each timed as described above.
pub struct LimitedAcceptor<A> {
    inner: A,
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
    registry: Arc<Registry>,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, limits: ConnectionLimits, registry: Arc<Registry>) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        LimitedAcceptor { inner, limits, permits, registry }
    }
}

impl<A: Acceptor> Acceptor for LimitedAcceptor<A> {
    type Io = Limited<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        // at the bound, new connections wait in the kernel's listen queue until one closes
        let permit = self.permits.clone().acquire_owned().await.map_err(io::Error::other)?;
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let activity = Arc::new(Activity::default());
        let peer = remote.as_socket_addr().copied();
        if let Some(peer) = peer {
            self.registry.insert(peer, &activity);
        }
        let limits = self.limits;
        let deadline = Box::pin(tokio::time::sleep(limits.idle_timeout));
        let io = Limited {
            io,
            activity,
            limits,
            phase: Phase::Waiting,
            deadline,
            write_stalled: None,
            peer,
            registry: self.registry.clone(),
            _permit: permit,
        };
        Ok((io, local, remote, scheme))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing read since the connection opened or the last request ended.
    Waiting,
    /// Bytes of a request read; its handler has not started.
    Sending,
    /// A handler runs, or the connection was upgraded.
    Busy,
}

/// The phase after one look at the connection, and whether a new phase (with a fresh deadline)
/// began. `ended`: a request finished since the last look — a quick one may have started and
/// finished in between, never seen as busy, and the bytes read now are the next request's.
fn next_phase(phase: Phase, busy: bool, ended: bool, read_something: bool) -> (Phase, bool) {
    if busy {
        return (Phase::Busy, false);
    }
    let mut next = phase;
    let mut restart = false;
    if ended || phase == Phase::Busy {
        next = Phase::Waiting;
        restart = true;
    }
    if read_something && next == Phase::Waiting {
        next = Phase::Sending;
        restart = true;
    }
    (next, restart)
}

/// A connection's IO with its deadline.
pub struct Limited<T> {
    io: T,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// Set while a write waits on a client that does not read; cleared by any progress.
    write_stalled: Option<Pin<Box<Sleep>>>,
    peer: Option<SocketAddr>,
    registry: Arc<Registry>,
    _permit: OwnedSemaphorePermit,
}

impl<T> Drop for Limited<T> {
    fn drop(&mut self) {
        if let Some(peer) = &self.peer {
            self.registry.remove(peer);
        }
    }
}

impl<T> Limited<T> {
    /// Moves to the phase the connection is in now, restarting the deadline when a phase begins.
    fn update_phase(&mut self, read_something: bool) {
        let busy =
            self.activity.answering.load(Ordering::Acquire) > 0 || self.activity.upgraded.load(Ordering::Acquire);
        let ended = self.activity.request_ended.swap(false, Ordering::AcqRel);
        let (next, restart) = next_phase(self.phase, busy, ended, read_something);
        self.phase = next;
        if restart {
            let limit = match next {
                Phase::Waiting => self.limits.idle_timeout,
                Phase::Sending => self.limits.header_read_timeout,
                Phase::Busy => return,
            };
            self.deadline.as_mut().reset(Instant::now() + limit);
        }
    }

    /// `Err(TimedOut)` once the current phase's deadline has passed.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.phase == Phase::Busy {
            return Ok(());
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let what = if self.phase == Phase::Sending { "request headers" } else { "a request" };
                tracing::debug!(peer = ?self.peer, "closing a connection that waited too long for {what}");
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no {what} in time")))
            }
            Poll::Pending => Ok(()),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.update_phase(buf.filled().len() > before);
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.update_phase(false);
                match this.check_deadline(cx) {
                    Ok(()) => Poll::Pending,
                    Err(error) => Poll::Ready(Err(error)),
                }
            }
        }
    }
}

impl<T> Limited<T> {
    /// A write's outcome, with the write deadline kept: progress clears it, waiting starts it,
    /// and waiting past it closes the connection (a client that never reads holds nothing).
    fn written<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.write_stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.limits.write_timeout;
                let stalled = self.write_stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::debug!(peer = ?self.peer, "closing a connection whose client does not read");
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client did not read in time")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, data);
        self.written(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.written(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.written(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Marks a request as being answered for as long as its handler runs.
struct Answering(Arc<Activity>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::AcqRel);
        self.0.request_ended.store(true, Ordering::Release);
    }
}

/// Middleware function for `EndpointExt::around`: tells the request's connection that it is
/// being answered, and that it was upgraded when the answer is `101 Switching Protocols`.
pub async fn guard<E: Endpoint>(endpoint: Arc<E>, request: Request, registry: Arc<Registry>) -> poem::Result<Response> {
    let activity = request.remote_addr().as_socket_addr().and_then(|peer| registry.find(peer));
    let answering = activity.map(|activity| {
        activity.answering.fetch_add(1, Ordering::AcqRel);
        Answering(activity)
    });
    let response = endpoint.call(request).await.map(IntoResponse::into_response);
    if let (Some(answering), Ok(response)) = (&answering, &response) {
        if response.status() == poem::http::StatusCode::SWITCHING_PROTOCOLS {
            answering.0.upgraded.store(true, Ordering::Release);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_requests() {
        use Phase::*;
        assert_eq!(next_phase(Waiting, false, false, false), (Waiting, false), "still idle: the deadline runs on");
        assert_eq!(next_phase(Waiting, false, false, true), (Sending, true), "first bytes: the header clock starts");
        assert_eq!(next_phase(Sending, false, false, true), (Sending, false), "more header bytes: the clock runs on");
        assert_eq!(next_phase(Sending, true, false, false), (Busy, false), "a handler runs");
        assert_eq!(next_phase(Busy, false, true, false), (Waiting, true), "answered: the idle clock starts");
        // a quick request began and ended between two looks: the next request gets its own clock
        assert_eq!(next_phase(Sending, false, true, true), (Sending, true));
        assert_eq!(next_phase(Sending, false, true, false), (Waiting, true));
    }
}
