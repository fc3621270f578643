//! The stream of the `sftp` subsystem, watched for replies the client does not take and for
//! requests it does not send.
//!
//! A client that sends requests and never reads the replies fills the channel's window: the
//! server's reply waits, the subsystem stops reading requests, and the SSH session stops
//! reading the socket while it waits to hand the next request on. Its silence timer
//! (`sftp_idle_timeout`) is not looked at meanwhile, so such a session would hold its place
//! (`sftp_max_sessions`) for good. [`Watched`] notes since when a reply has been waiting;
//! the listener cuts the connection once that is `sftp_idle_timeout` ([`waited`]).
//!
//! The SSH session's silence timer is also put back by anything the client sends: an
//! OpenSSH client left open with `ServerAliveInterval` (or any client sending keep-alives)
//! is never silent, though it asks for nothing. So [`Traffic`] also notes since when the
//! session has waited for its client's next SFTP request: from its login until the client
//! sends one, then from each time the subsystem is ready for the next one (its reply sent)
//! until bytes of it arrive, and from the end of the client's requests. Not while the server
//! works on a request (a package being handed over). The listener cuts the connection once
//! that is `sftp_idle_timeout` ([`quiet`]), whatever else the client sends meanwhile.
//!
//! A reply waiting for room in the channel's window waits even after the connection has
//! gone: the listener ends the stream's writes ([`Traffic::end`]), so the subsystem goes
//! through the requests it was sent (their replies go nowhere), reaches the end of its
//! input and stops, discarding what it holds.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Since when a reply of the server has been waiting for the client to take it, since when the
/// session has waited for its client's next request, and whether the connection has ended.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    waiting_since: Option<Instant>,
    /// Since when the session has waited for its client's next SFTP request (none before it
    /// logged in, nor while a request is read or worked on).
    quiet_since: Option<Instant>,
    /// The waiting writer's, woken when the connection ends.
    waker: Option<Waker>,
    ended: bool,
}

impl Traffic {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The connection has ended: the stream's writes fail from now on, a waiting one too.
    pub(super) fn end(&self) {
        let waker = self.with(|s| {
            s.ended = true;
            s.waker.take()
        });
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The client has logged in: from now on the session waits for its SFTP requests.
    pub(super) fn logged_in(&self) {
        self.with(|s| {
            s.quiet_since.get_or_insert_with(Instant::now);
        });
    }

    fn ended(&self) -> bool {
        self.with(|s| s.ended)
    }

    /// Notes a read of the stream as polled, `got` telling whether it gave bytes: bytes of a
    /// request end the session's wait for it; a read that waits, or finds the end of the
    /// client's requests, starts the wait unless it runs already.
    fn note_read(&self, polled: &Poll<io::Result<()>>, got: bool) {
        self.with(|s| match polled {
            Poll::Ready(Ok(())) if got => s.quiet_since = None,
            Poll::Ready(Err(_)) => {}
            Poll::Ready(Ok(())) | Poll::Pending => {
                s.quiet_since.get_or_insert_with(Instant::now);
            }
        });
    }

    /// Notes a write or flush as polled; a pending one that the connection's end overtook
    /// fails.
    fn note<T>(&self, polled: Poll<io::Result<T>>, cx: &Context<'_>) -> Poll<io::Result<T>> {
        self.with(|s| {
            if polled.is_ready() {
                s.waiting_since = None;
                s.waker = None;
                polled
            } else if s.ended {
                Poll::Ready(Err(ended()))
            } else {
                s.waiting_since.get_or_insert_with(Instant::now);
                s.waker = Some(cx.waker().clone());
                polled
            }
        })
    }
}

fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the SFTP connection has ended")
}

/// Resolves once a reply has waited `limit` for the client to take it.
pub(super) async fn waited(traffic: &Traffic, limit: Duration) {
    lasted(traffic, limit, |s| s.waiting_since).await;
}

/// Resolves once the session has waited `limit` for its client's next SFTP request.
pub(super) async fn quiet(traffic: &Traffic, limit: Duration) {
    lasted(traffic, limit, |s| s.quiet_since).await;
}

/// Resolves once the wait `since` tells has lasted `limit`.
async fn lasted(traffic: &Traffic, limit: Duration, since: impl Fn(&State) -> Option<Instant>) {
    loop {
        match traffic.with(|s| since(s)) {
            Some(since) if since + limit <= Instant::now() => return,
            Some(since) => tokio::time::sleep_until(since + limit).await,
            None => tokio::time::sleep(limit.min(Duration::from_secs(1))).await,
        }
    }
}

/// A stream whose writes say to [`Traffic`] whether they wait, and its reads whether
/// requests come.
pub(super) struct Watched<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, traffic: Arc<Traffic>) -> Self {
        Self { inner, traffic }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.traffic.note_read(&polled, buf.filled().len() > before);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.traffic.ended() {
            return Poll::Ready(Err(ended()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.traffic.note(polled, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.traffic.ended() {
            return Poll::Ready(Err(ended()));
        }
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.traffic.note(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
