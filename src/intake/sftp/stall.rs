//! The stream of the `sftp` subsystem, watched for replies the client does not take.
//!
//! A client that sends requests and never reads the replies fills the channel's window: the
//! server's reply waits, the subsystem stops reading requests, and the SSH session stops
//! reading the socket while it waits to hand the next request on. Its silence timer
//! (`sftp_idle_timeout`) is not looked at meanwhile, so such a session would hold its place
//! (`sftp_max_sessions`) for good. [`Watched`] notes since when a reply has been waiting;
//! the listener cuts the connection once that is `sftp_idle_timeout` ([`waited`]).
//!
//! A reply waiting for room in the channel's window waits even after the connection has
//! gone: the listener ends the stream's writes ([`Replies::end`]), so the subsystem goes
//! through the requests it was sent (their replies go nowhere), reaches the end of its
//! input and stops, discarding what it holds.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Since when a reply of the server has been waiting for the client to take it, and whether
/// the connection has ended.
#[derive(Debug, Default)]
pub(super) struct Replies {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    waiting_since: Option<Instant>,
    /// The waiting writer's, woken when the connection ends.
    waker: Option<Waker>,
    ended: bool,
}

impl Replies {
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

    fn ended(&self) -> bool {
        self.with(|s| s.ended)
    }

    fn waiting_since(&self) -> Option<Instant> {
        self.with(|s| s.waiting_since)
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
pub(super) async fn waited(replies: &Replies, limit: Duration) {
    loop {
        match replies.waiting_since() {
            Some(since) if since + limit <= Instant::now() => return,
            Some(since) => tokio::time::sleep_until(since + limit).await,
            None => tokio::time::sleep(limit.min(Duration::from_secs(1))).await,
        }
    }
}

/// A stream whose writes say to [`Replies`] whether they wait.
pub(super) struct Watched<S> {
    inner: S,
    replies: Arc<Replies>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, replies: Arc<Replies>) -> Self {
        Self { inner, replies }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replies.ended() {
            return Poll::Ready(Err(ended()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.replies.note(polled, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replies.ended() {
            return Poll::Ready(Err(ended()));
        }
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.replies.note(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
