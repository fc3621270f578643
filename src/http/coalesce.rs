//! Coalesced writes for HTTP/2 over TLS: the responses a connection's task produces in one
//! turn leave in one TLS record and one system call, not one each.
//!
//! The HTTP/2 codec hands a DATA frame of more than 1 KiB (256 bytes on a stream that takes
//! vectored writes) to the stream as a chunk of its own and flushes after each such frame.
//! Over TLS every write is sealed into its own record and written to the socket at once, so
//! ten responses answered together cost ten records and ten `writev`s, and wake the client
//! ten times. [`Coalesced`] takes the connection's writes into a buffer of up to [`HELD`]
//! bytes and treats the codec's flushes as a request to send *by the end of this turn*; the
//! connection's task is wrapped by [`Flush::around`], which hands everything held to TLS after
//! each poll of the connection, in one write. A write that would overflow the buffer sends
//! what is held and the write together, at once.
//!
//! Over HTTP/1.1 nothing is held and every call passes through: hyper's HTTP/1 writer already
//! leaves a response's head and body in one write.
//!
//! Guarantees: bytes leave in the order they were accepted; at most [`HELD`] bytes are held;
//! nothing accepted is held past the end of the task's poll that accepted it unless the socket
//! cannot take it, in which case the task is woken when it can; `poll_shutdown` hands
//! everything on before it shuts the stream; a connection that holds nothing holds no buffer;
//! a failed send is returned by the connection's next read or write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most held back: one TLS record's worth of plaintext.
const HELD: usize = 16 * 1024;

/// The stream and what is held for it, shared by [`Coalesced`] and [`Flush`].
struct State<S> {
    inner: S,
    /// Accepted bytes not yet handed on; `held[sent..]` remains.
    held: Vec<u8>,
    sent: usize,
    /// Why handing on failed; returned by every later call.
    failed: Option<io::ErrorKind>,
}

/// `S` as the connection sees it (see the module's doc).
pub(crate) struct Coalesced<S> {
    state: Arc<Mutex<State<S>>>,
    /// False: every call passes through (HTTP/1.1).
    hold: bool,
}

/// Sends what a [`Coalesced`] holds at the end of each poll of its connection.
pub(crate) struct Flush<S> {
    state: Arc<Mutex<State<S>>>,
    hold: bool,
}

/// `inner` for a connection, holding writes back only if `hold` (HTTP/2), and its [`Flush`].
pub(crate) fn coalesced<S>(inner: S, hold: bool) -> (Coalesced<S>, Flush<S>) {
    let state = Arc::new(Mutex::new(State {
        inner,
        held: Vec::new(),
        sent: 0,
        failed: None,
    }));
    (
        Coalesced {
            state: state.clone(),
            hold,
        },
        Flush { state, hold },
    )
}

/// The shared state; a panic elsewhere while it was locked leaves nothing half-done in it
/// that the next call could not resume.
fn lock<S>(state: &Mutex<State<S>>) -> MutexGuard<'_, State<S>> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncWrite + Unpin> State<S> {
    fn check(&self) -> io::Result<()> {
        self.failed.map_or(Ok(()), |kind| Err(kind.into()))
    }

    /// Hands everything held to `inner`; ready once nothing is held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        while self.sent < self.held.len() {
            let written = Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]);
            match ready!(written) {
                Ok(0) => return Poll::Ready(Err(self.fail(io::ErrorKind::WriteZero))),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(self.fail(e.kind()))),
            }
        }
        // Nothing held: give the buffer back, an idle connection keeps none.
        self.held = Vec::new();
        self.sent = 0;
        // TLS may keep sealed records the socket could not take yet.
        match ready!(Pin::new(&mut self.inner).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(self.fail(e.kind()))),
        }
    }

    fn fail(&mut self, kind: io::ErrorKind) -> io::Error {
        self.failed = Some(kind);
        kind.into()
    }

    /// Takes `buf`: held if it fits beside what is held, else sent with it.
    fn poll_hold(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check()?;
        loop {
            let pending = self.held.len() - self.sent;
            if pending + buf.len() <= HELD {
                if self.held.capacity() == 0 {
                    // Once, whole: growing by doubling would copy what is held again and again.
                    self.held.reserve_exact(HELD);
                } else if self.sent > 0 {
                    // Part went before the socket filled: keep the rest at the front, so
                    // the buffer never grows past `HELD`.
                    self.held.drain(..self.sent);
                    self.sent = 0;
                }
                self.held.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            if pending == 0 {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
            let both = [
                io::IoSlice::new(&self.held[self.sent..]),
                io::IoSlice::new(buf),
            ];
            let n = match ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &both)) {
                Ok(0) => return Poll::Ready(Err(self.fail(io::ErrorKind::WriteZero))),
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(self.fail(e.kind()))),
            };
            if n < pending {
                self.sent += n;
                continue;
            }
            self.held = Vec::new();
            self.sent = 0;
            if n > pending {
                return Poll::Ready(Ok(n - pending));
            }
            // Exactly what was held went: take this write anew.
        }
    }
}

impl<S: AsyncWrite + Unpin> Flush<S> {
    /// Drives `conn`, sending what it wrote at the end of each of its polls; once `conn` is
    /// done, finishes sending before returning its output.
    pub(crate) fn around<F: Future>(self, conn: F) -> Around<S, F> {
        Around {
            flush: self,
            conn,
            output: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection driven by [`Flush::around`]. (A named future rather than an `async fn`:
    /// an `async fn` would keep the connection's future twice in every connection's task,
    /// once as the argument and once pinned.)
    pub(crate) struct Around<S, F: Future> {
        flush: Flush<S>,
        #[pin]
        conn: F,
        output: Option<F::Output>,
    }
}

impl<S: AsyncWrite + Unpin, F: Future> Future for Around<S, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !this.flush.hold {
            return this.conn.poll(cx);
        }
        if this.output.is_none()
            && let Poll::Ready(out) = this.conn.poll(cx)
        {
            *this.output = Some(out);
        }
        // A failure is kept and returned by the connection's next read or write.
        let drained = lock(&this.flush.state).poll_drain(cx).is_ready();
        match this.output.take() {
            Some(out) if drained => Poll::Ready(out),
            out => {
                *this.output = out;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(&self.state);
        state.check()?;
        Pin::new(&mut state.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.state);
        if self.hold && !buf.is_empty() {
            state.poll_hold(cx, buf)
        } else {
            Pin::new(&mut state.inner).poll_write(cx, buf)
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.state);
        if self.hold {
            // Not asked for (`is_write_vectored` is false): the first non-empty slice.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            if first.is_empty() {
                return Poll::Ready(Ok(0));
            }
            state.poll_hold(cx, first)
        } else {
            Pin::new(&mut state.inner).poll_write_vectored(cx, bufs)
        }
    }

    fn is_write_vectored(&self) -> bool {
        !self.hold && lock(&self.state).inner.is_write_vectored()
    }

    /// Holding: ready at once, what is held leaves at the end of the task's poll
    /// ([`Flush::around`]).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.state);
        if self.hold {
            state.check()?;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut state.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.state);
        ready!(state.poll_drain(cx))?;
        Pin::new(&mut state.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    /// A socket that records each write, takes at most `take` bytes per write, can be full
    /// (`Pending`) or broken, and joins vectored writes as TLS does.
    #[derive(Default)]
    struct Sink {
        writes: Vec<Vec<u8>>,
        take: Option<usize>,
        /// Bytes it takes before it fills (`None`: no end).
        budget: Option<usize>,
        full: bool,
        broken: bool,
        flushes: usize,
        shut: bool,
    }

    impl Sink {
        fn bytes(&self) -> Vec<u8> {
            self.writes.concat()
        }

        fn write_all_of(&mut self, parts: &[&[u8]]) -> Poll<io::Result<usize>> {
            if self.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if self.full || self.budget == Some(0) {
                return Poll::Pending;
            }
            let mut joined = parts.concat();
            joined.truncate(self.take.unwrap_or(usize::MAX));
            joined.truncate(self.budget.unwrap_or(usize::MAX));
            let n = joined.len();
            self.budget = self.budget.map(|b| b - n);
            self.writes.push(joined);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncRead for Sink {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().write_all_of(&[buf])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let parts: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
            self.get_mut().write_all_of(&parts)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if this.full {
                return Poll::Pending;
            }
            this.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    /// Writes `buf` whole through `io`, as a codec does.
    fn write(io: &mut Coalesced<Sink>, mut buf: &[u8]) {
        while !buf.is_empty() {
            match Pin::new(&mut *io).poll_write(&mut cx(), buf) {
                Poll::Ready(Ok(n)) => buf = &buf[n..],
                other => panic!("write: {other:?}"),
            }
        }
    }

    fn flush_now(io: &mut Coalesced<Sink>) -> Poll<io::Result<()>> {
        Pin::new(io).poll_flush(&mut cx())
    }

    fn sink<S>(flush: &Flush<S>) -> MutexGuard<'_, State<S>> {
        lock(&flush.state)
    }

    /// One poll of `around` over a connection that is never done.
    fn end_of_turn(flush: Flush<Sink>) -> Poll<()> {
        let mut turn = pin!(flush.around(std::future::pending::<()>()));
        turn.as_mut().poll(&mut cx())
    }

    /// A payload that tells its bytes apart.
    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn small_writes_and_flushes_leave_together_at_the_end_of_the_turn() {
        let (mut io, flush) = coalesced(Sink::default(), true);
        let frames: Vec<Vec<u8>> = (0..10).map(|i| payload(9 + 1029, i)).collect();
        for frame in &frames {
            write(&mut io, frame);
            assert!(flush_now(&mut io).is_ready());
        }
        assert!(
            sink(&flush).inner.writes.is_empty(),
            "held until the turn ends"
        );
        let state = flush.state.clone();
        assert!(end_of_turn(flush).is_pending());
        let state = lock(&state);
        assert_eq!(state.inner.writes.len(), 1, "ten responses, one write");
        assert_eq!(state.inner.bytes(), frames.concat());
        assert!(state.inner.flushes >= 1, "TLS is flushed after handing on");
        assert_eq!(state.held.capacity(), 0, "nothing held, no buffer kept");
    }

    #[test]
    fn a_write_past_the_limit_goes_out_with_what_is_held_in_order() {
        let (mut io, flush) = coalesced(Sink::default(), true);
        let (head, big) = (payload(9, 1), payload(HELD + 100, 2));
        write(&mut io, &head);
        write(&mut io, &big);
        let state = lock(&flush.state);
        assert_eq!(
            state.inner.writes.len(),
            1,
            "header and payload in one write"
        );
        assert_eq!(state.inner.bytes(), [head, big].concat());
        assert!(state.held.len() == state.sent, "nothing held after");
    }

    #[test]
    fn a_socket_taking_a_little_at_a_time_gets_every_byte_in_order() {
        let sink = Sink {
            take: Some(700),
            ..Sink::default()
        };
        let (mut io, flush) = coalesced(sink, true);
        let parts: Vec<Vec<u8>> = [5, 3000, HELD, 1, HELD * 2 + 7, 40]
            .iter()
            .enumerate()
            .map(|(i, &len)| payload(len, i as u8))
            .collect();
        for part in &parts {
            write(&mut io, part);
        }
        let state = flush.state.clone();
        assert!(end_of_turn(flush).is_pending());
        let state = lock(&state);
        assert_eq!(state.inner.bytes(), parts.concat());
        assert!(state.inner.writes.iter().all(|w| w.len() <= 700));
    }

    #[test]
    fn a_full_socket_keeps_the_bytes_and_the_connection_waits() {
        let sink = Sink {
            full: true,
            ..Sink::default()
        };
        let (mut io, flush) = coalesced(sink, true);
        let data = payload(4000, 7);
        write(&mut io, &data);
        let state = flush.state.clone();
        // The connection is done, but what it wrote is not out yet: not done either.
        let mut turn = pin!(flush.around(std::future::ready(())));
        assert!(turn.as_mut().poll(&mut cx()).is_pending());
        assert_eq!(lock(&state).held.len(), 4000);
        lock(&state).inner.full = false;
        assert!(turn.as_mut().poll(&mut cx()).is_ready());
        assert_eq!(lock(&state).inner.bytes(), data);
    }

    #[test]
    fn after_a_partial_send_the_buffer_stays_within_the_limit() {
        // The socket takes 1,000 bytes and fills.
        let sink = Sink {
            budget: Some(1000),
            ..Sink::default()
        };
        let (mut io, flush) = coalesced(sink, true);
        let first = payload(HELD - 10, 1);
        write(&mut io, &first);
        assert!(lock(&flush.state).poll_drain(&mut cx()).is_pending());
        assert_eq!(lock(&flush.state).sent, 1000);
        let more = payload(900, 2);
        write(&mut io, &more);
        assert!(lock(&flush.state).held.capacity() <= HELD, "never grown");
        lock(&flush.state).inner.budget = None;
        let state = flush.state.clone();
        assert!(end_of_turn(flush).is_pending());
        assert_eq!(lock(&state).inner.bytes(), [first, more].concat());
    }

    #[test]
    fn shutdown_sends_everything_first() {
        let (mut io, flush) = coalesced(Sink::default(), true);
        let data = payload(100, 3);
        write(&mut io, &data);
        assert!(Pin::new(&mut io).poll_shutdown(&mut cx()).is_ready());
        let state = sink(&flush);
        assert!(state.inner.shut);
        assert_eq!(state.inner.bytes(), data);
    }

    #[test]
    fn a_failed_send_is_returned_by_the_next_read_and_write() {
        let sink = Sink {
            broken: true,
            ..Sink::default()
        };
        let (mut io, flush) = coalesced(sink, true);
        write(&mut io, b"held");
        assert!(end_of_turn(flush).is_pending());
        let mut buf = [0u8; 8];
        let mut read = ReadBuf::new(&mut buf);
        let err = |p: Poll<io::Result<()>>| match p {
            Poll::Ready(Err(e)) => e.kind(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            err(Pin::new(&mut io).poll_read(&mut cx(), &mut read)),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(err(flush_now(&mut io)), io::ErrorKind::BrokenPipe);
        assert!(matches!(
            Pin::new(&mut io).poll_write(&mut cx(), b"more"),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn over_http1_every_call_passes_through() {
        let (mut io, flush) = coalesced(Sink::default(), false);
        assert!(io.is_write_vectored(), "the stream's own answer");
        write(&mut io, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(sink(&flush).inner.writes.len(), 1, "written at once");
        assert!(flush_now(&mut io).is_ready());
        assert_eq!(sink(&flush).inner.flushes, 1, "flushed at once");
        assert_eq!(sink(&flush).held.capacity(), 0);
    }
}
