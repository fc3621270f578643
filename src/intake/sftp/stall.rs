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
//! A request said to be longer than the subsystem takes breaks the protocol: the subsystem
//! would log it, skip its length alone and read what follows as the next request, logging a
//! line for every four bytes the client sends, at the speed it sends them. [`Watched`]
//! follows the requests' lengths as they come: what arrives with such a length is never
//! handed on, the subsystem finds the end of its input instead, and the listener cuts the
//! connection ([`broken`]), saying why.
//!
//! A reply waiting for room in the channel's window waits even after the connection has
//! gone: the listener ends the stream's writes ([`Traffic::end`]), so the subsystem goes
//! through the requests it was sent (their replies go nowhere, and cost the log nothing),
//! reaches the end of its input and stops, discarding what it holds. When the listener cuts
//! the connection ([`Traffic::cut`]), the subsystem's input ends at once instead: it works on
//! none of the requests its client sent before the cut and that still wait (a write, a close,
//! a rename), and hands nothing more over.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Since when a reply of the server has been waiting for the client to take it, since when the
/// session has waited for its client's next request, whether the client broke the protocol,
/// and whether the connection has ended.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    state: Mutex<State>,
    /// Told when the client broke the protocol.
    broke: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    waiting_since: Option<Instant>,
    /// Since when the session has waited for its client's next SFTP request (none before it
    /// logged in, nor while a request is read or worked on).
    quiet_since: Option<Instant>,
    /// How the client broke the protocol, if it did.
    broken: Option<String>,
    /// The waiting writer's, woken when the connection ends.
    waker: Option<Waker>,
    ended: bool,
    /// Set once the listener cut the connection: the subsystem's input ends there.
    cut: bool,
}

impl Traffic {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The connection has ended: the stream's writes go nowhere from now on, a waiting one
    /// too.
    pub(super) fn end(&self) {
        let waker = self.with(|s| {
            s.ended = true;
            s.waker.take()
        });
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The listener cut the connection: the stream's writes go nowhere, and its reads find the end
    /// of the client's requests, those already sent too, so that nothing more is worked on.
    pub(super) fn cut(&self) {
        self.with(|s| s.cut = true);
        self.end();
    }

    /// The client has logged in: from now on the session waits for its SFTP requests.
    pub(super) fn logged_in(&self) {
        self.with(|s| {
            s.quiet_since.get_or_insert_with(Instant::now);
        });
    }

    /// The client sent what no client of this server sends, as `why` says: the listener cuts
    /// the connection.
    pub(super) fn broke(&self, why: String) {
        self.with(|s| {
            s.broken.get_or_insert(why);
        });
        self.broke.notify_one();
    }

    fn ended(&self) -> bool {
        self.with(|s| s.ended)
    }

    fn was_cut(&self) -> bool {
        self.with(|s| s.cut)
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
    /// is done with, as `gone` says: the reply goes nowhere.
    fn note<T>(
        &self,
        polled: Poll<io::Result<T>>,
        cx: &Context<'_>,
        gone: impl FnOnce() -> T,
    ) -> Poll<io::Result<T>> {
        self.with(|s| {
            if polled.is_ready() {
                s.waiting_since = None;
                s.waker = None;
                polled
            } else if s.ended {
                Poll::Ready(Ok(gone()))
            } else {
                s.waiting_since.get_or_insert_with(Instant::now);
                s.waker = Some(cx.waker().clone());
                polled
            }
        })
    }
}

/// Resolves once a reply has waited `limit` for the client to take it.
pub(super) async fn waited(traffic: &Traffic, limit: Duration) {
    lasted(traffic, limit, |s| s.waiting_since).await;
}

/// Resolves once the session has waited `limit` for its client's next SFTP request.
pub(super) async fn quiet(traffic: &Traffic, limit: Duration) {
    lasted(traffic, limit, |s| s.quiet_since).await;
}

/// How the client broke the protocol, if it has: what [`broken`] resolves with.
pub(super) fn broken_now(traffic: &Traffic) -> Option<String> {
    traffic.with(|s| s.broken.clone())
}

/// Resolves once the client has sent what no client of this server sends, with what.
pub(super) async fn broken(traffic: &Traffic) -> String {
    loop {
        if let Some(why) = broken_now(traffic) {
            return why;
        }
        // Told since it looked, or once it is told.
        traffic.broke.notified().await;
    }
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

/// How the client's requests run in the stream, each a 4-byte length and as many bytes.
#[derive(Debug, Default)]
struct Framing {
    /// The length being read, and how many of its bytes have come.
    length: u32,
    length_bytes: u8,
    /// Bytes of the current request still to come.
    remaining: usize,
}

impl Framing {
    /// Follows `bytes`: the length of a request longer than `max`, if one is in them.
    fn follow(&mut self, mut bytes: &[u8], max: u32) -> Option<u32> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                bytes = bytes.get(n..).unwrap_or_default();
            } else if let Some((&byte, rest)) = bytes.split_first() {
                bytes = rest;
                self.length = (self.length << 8) | u32::from(byte);
                self.length_bytes += 1;
                if self.length_bytes == 4 {
                    let length = std::mem::take(&mut self.length);
                    self.length_bytes = 0;
                    if length > max {
                        return Some(length);
                    }
                    self.remaining = usize::try_from(length).unwrap_or(usize::MAX);
                }
            }
        }
        None
    }
}

/// A stream whose writes say to [`Traffic`] whether they wait, and its reads whether
/// requests come, and whether they break the protocol.
pub(super) struct Watched<S> {
    inner: S,
    traffic: Arc<Traffic>,
    /// The longest request the subsystem takes.
    max_request: u32,
    framing: Framing,
    /// Set once a request too long came: the input ends there.
    broken: bool,
}

impl<S> Watched<S> {
    /// `inner`, for a subsystem taking requests of at most `max_request` bytes.
    pub(super) fn new(inner: S, traffic: Arc<Traffic>, max_request: u32) -> Self {
        Self {
            inner,
            traffic,
            max_request,
            framing: Framing::default(),
            broken: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken || this.traffic.was_cut() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let came = buf.filled().get(before..).unwrap_or_default();
        if let Some(length) = this.framing.follow(came, this.max_request) {
            // Nothing that came with it is handed on: the subsystem's input ends here.
            buf.set_filled(before);
            this.broken = true;
            this.traffic.broke(format!(
                "the client broke the SFTP protocol (a request said to be {length} bytes long, \
                 over the {} bytes this server takes)",
                this.max_request
            ));
            return Poll::Ready(Ok(()));
        }
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
        // Nobody is left to reply to: the reply goes nowhere, and costs no error (which the
        // subsystem would log, for every request left).
        if this.traffic.ended() {
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.traffic.note(polled, cx, || buf.len())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.traffic.ended() {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.traffic.note(polled, cx, || ())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lengths are followed however the stream is cut into reads.
    #[test]
    fn a_request_too_long_is_found_wherever_the_reads_split_it() {
        let mut stream = Vec::new();
        for body in [&[1u8, 0, 0, 0, 3][..], &[7; 300]] {
            stream.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            stream.extend_from_slice(body);
        }
        stream.extend_from_slice(&1001u32.to_be_bytes());
        for split in 1..stream.len() {
            let mut framing = Framing::default();
            let found: Vec<_> = stream
                .chunks(split)
                .filter_map(|chunk| framing.follow(chunk, 1000))
                .collect();
            assert_eq!(found, [1001], "reads of {split} bytes");
        }
    }
}
