//! One connection's life on a listener: what it is doing, and the deadlines that end it.
//!
//! Every accepted connection gets an [`Activity`]: how many requests it has in flight,
//! whether a request is arriving, since when it has been quiet, and whether a write is
//! blocked on a peer that does not read. [`Tracked`] (under TLS and HTTP) records the bytes
//! read and written, [`InFlight`] holds a request from the moment its headers are read until
//! the connection has taken all of its response body, and [`supervise`] ends the connection
//! when its [`Watch`] finds a deadline passed. The connection caps of [`super::limits`] read
//! the same state to choose which connections give way.
//!
//! A listener's connections are looked at together by one [`Watch`], every [`Watch::tick`],
//! rather than each on a timer of its own: a kept-alive connection whose deadline keeps
//! moving (a phone re-reading `main.json` every few seconds) costs no wake-up until one
//! passes, as nginx's timers do.
//!
//! # Guarantees
//! - Every deadline below is enforced within one tick after it passes: a tenth of the
//!   shorter of the two timeouts, between 10 ms and 1 s. A connection that has ended is
//!   forgotten by its watch at the next tick (until then the watch holds a weak reference:
//!   its small [`Activity`], not its buffers).
//! - A connection with no request in flight and no blocked write is closed `header_timeout`
//!   after it fell quiet (opened, answered its last request, or finished a blocked write of
//!   the end of a response): a client that never sends a byte, sends only part of a request
//!   or of the HTTP/2 preface, or leaves a kept-alive connection unused. (hyper's own header
//!   timeout covers HTTP/1.1 heads as well; the HTTP/2 preface sniffing has none.)
//! - Only a write that may carry bytes of a response restarts that quiet time: the
//!   connection counts an upper bound of the response bytes handed to it and not yet
//!   written ([`Activity::owed`]: heads, body frames, with what HTTP/2, chunked encoding and
//!   TLS add). Once every one is written, what the connection still writes with no request
//!   in flight is what the client provoked without asking for anything (HTTP/2 PING and
//!   SETTINGS acknowledgements), and the connection is closed `header_timeout` after it fell
//!   quiet whether those writes block or not: a client that floods PING or SETTINGS frames
//!   and reads the answers now and then holds its connection no longer than a silent one.
//! - A connection whose write has been blocked for `send_timeout` (the peer reads nothing),
//!   or whose response has waited that long for the connection to take its next frame or
//!   send its last (over HTTP/2, a peer that grants no flow-control window, whatever the
//!   response's size), is closed; every write that goes through and every frame taken
//!   starts the wait again, so a slow download that keeps moving is never cut (nginx's
//!   `send_timeout`).
//! - [`Activity::evict`] succeeds only on an idle connection: at that instant it waits for
//!   the first byte of a request (or of its TLS handshake) or of its next request, with no
//!   request in flight and no blocked write. An evicted connection is closed at once.
//! - No HEAD response carries a body, on any listener and protocol; its `Content-Length` is
//!   what GET would send ([`finish`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::limits::Alongside;
use super::{BoxedBody, full};

/// The instant the clock of every [`Activity`] counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since [`EPOCH`].
pub(crate) fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Set in [`Activity::state`] once the connection is evicted.
const EVICTED: u64 = 1 << 63;
/// Set in [`Activity::state`] while bytes of a request (or of a TLS handshake) have arrived
/// and the request is not in flight yet: the connection is no longer waiting for a first
/// byte, so it is not idle.
const RECEIVING: u64 = 1 << 62;
/// Set in [`Activity::state`] once the connection has ended and given its slot back.
const CLOSED: u64 = 1 << 61;
/// The bits of [`Activity::state`] that count requests in flight.
const IN_FLIGHT: u64 = u32::MAX as u64;

/// What one connection is doing; shared by its IO, its requests, its supervisor and the
/// connection table.
pub(crate) struct Activity {
    /// Requests in flight, with [`RECEIVING`], [`EVICTED`] and [`CLOSED`].
    state: AtomicU64,
    /// When it last fell quiet, in ms since [`EPOCH`].
    quiet_since: AtomicU64,
    /// At least as many bytes as the responses handed to the connection still have to be
    /// written (their heads and frames, with what framing and TLS add, counted generously,
    /// so it may stay above zero once they are out); 0 once they surely are.
    owed: AtomicU64,
    /// When its current write started to block, in ms since [`EPOCH`] plus one; 0 if none is.
    blocked_since: AtomicU64,
    /// Response bodies that handed the connection a frame and wait for it to ask for the
    /// next (over HTTP/2, a client that grants no window never does).
    waiting: AtomicU64,
    /// When a response body of the connection last handed over a frame or was asked for
    /// one, in ms since [`EPOCH`].
    moved_at: AtomicU64,
    /// Why its [`Watch`] ended it ([`Ended`] as `u8`, 0 while it has not).
    ended: AtomicU8,
    /// Wakes the supervisor: on eviction, or when its [`Watch`] ends it.
    end: Notify,
}

/// Why a connection was ended by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Ended {
    /// Nothing asked of it for `header_timeout`.
    Quiet = 1,
    /// A write blocked for `send_timeout`.
    Stalled = 2,
    /// It gave way to a new connection at a cap.
    Evicted = 3,
}

impl Activity {
    /// A connection opened now.
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            quiet_since: AtomicU64::new(now_ms()),
            owed: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            moved_at: AtomicU64::new(0),
            ended: AtomicU8::new(0),
            end: Notify::new(),
        }
    }

    /// A request starts; it is in flight until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        self.state.fetch_and(!RECEIVING, Ordering::AcqRel);
        Busy {
            activity: self.clone(),
            alongside: before & IN_FLIGHT != 0,
        }
    }

    /// The TLS handshake is over: the connection waits for the first byte of a request.
    pub(crate) fn handshake_done(&self) {
        self.state.fetch_and(!RECEIVING, Ordering::AcqRel);
    }

    /// Bytes arrived.
    fn received(&self) {
        if self.state.load(Ordering::Acquire) & IN_FLIGHT == 0 {
            self.state.fetch_or(RECEIVING, Ordering::AcqRel);
        }
    }

    /// Since when the connection has been idle (waiting for the first byte of a request, no
    /// request in flight, no blocked write, not evicted), in ms since [`EPOCH`]; `None` if
    /// it is not.
    pub(crate) fn idle_since(&self) -> Option<u64> {
        if self.blocked_since.load(Ordering::Acquire) != 0 {
            return None;
        }
        let state = self.state.load(Ordering::Acquire);
        (state == 0).then(|| self.quiet_since.load(Ordering::Acquire))
    }

    /// Whether it was evicted or has closed: it holds no slot.
    pub(crate) fn is_gone(&self) -> bool {
        self.state.load(Ordering::Acquire) & (EVICTED | CLOSED) != 0
    }

    /// Marks the connection closed; whether it had been evicted (its slot given back then).
    pub(crate) fn close(&self) -> bool {
        self.state.fetch_or(CLOSED, Ordering::AcqRel) & EVICTED != 0
    }

    /// Evicts the connection if it is idle; whether it was.
    pub(crate) fn evict(&self) -> bool {
        if self.blocked_since.load(Ordering::Acquire) != 0
            || self
                .state
                .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        self.end.notify_one();
        true
    }

    /// Why its [`Watch`] ended it, if it did.
    fn ended(&self) -> Option<Ended> {
        match self.ended.load(Ordering::Acquire) {
            n if n == Ended::Quiet as u8 => Some(Ended::Quiet),
            n if n == Ended::Stalled as u8 => Some(Ended::Stalled),
            _ => None,
        }
    }

    /// Ends the connection for `why` (its deadline passed).
    fn end(&self, why: Ended) {
        self.ended.store(why as u8, Ordering::Release);
        self.end.notify_one();
    }

    /// A write could not go through: the peer is not taking the bytes.
    fn write_blocked(&self) {
        let _ = self.blocked_since.compare_exchange(
            0,
            now_ms() + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// `n` bytes were written.
    fn wrote(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let owed = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                (owed != 0).then(|| owed.saturating_sub(n))
            })
            .unwrap_or(0);
        if self.blocked_since.load(Ordering::Acquire) != 0 {
            if owed != 0 {
                // The end of a response may have gone out: quiet from now on, set before
                // the block is lifted so that no one sees the connection unblocked with an
                // older quiet time.
                self.quiet_since.store(now_ms(), Ordering::Release);
            }
            self.blocked_since.store(0, Ordering::Release);
        }
    }

    /// A response was handed over with `bytes` of body to come (head and framing counted).
    fn owe(&self, bytes: u64) {
        self.owed.fetch_add(bytes, Ordering::AcqRel);
    }

    /// An upper bound of the response bytes not yet written ([`Activity::owed`]).
    #[cfg(test)]
    fn owed_now(&self) -> u64 {
        self.owed.load(Ordering::Acquire)
    }

    /// A response body handed over a frame (`true`) or was asked for the next (`false`).
    fn body_moved(&self, handed_over: bool) {
        self.moved_at.store(now_ms(), Ordering::Release);
        if handed_over {
            self.waiting.fetch_add(1, Ordering::AcqRel);
        } else {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The next deadline and what passing it means, or `None` while a request is in flight
    /// and nothing blocks. A request that is arriving (slowloris) counts as none.
    fn deadline(&self, timeouts: &Timeouts) -> Option<(u64, Ended)> {
        let blocked = self.blocked_since.load(Ordering::Acquire);
        let waiting = self.waiting.load(Ordering::Acquire);
        if blocked != 0 {
            let stalled = blocked - 1 + timeouts.send_ms();
            if waiting == 0
                && self.state.load(Ordering::Acquire) & IN_FLIGHT == 0
                && self.owed.load(Ordering::Acquire) == 0
            {
                // Every byte of its responses is out: what blocks is what the client
                // provoked without a request (PING or SETTINGS acknowledgements), held to
                // the quiet time as a silent connection is.
                let quiet = self.quiet_since.load(Ordering::Acquire) + timeouts.header_ms();
                if quiet < stalled {
                    return Some((quiet, Ended::Quiet));
                }
            }
            return Some((stalled, Ended::Stalled));
        }
        if waiting != 0 {
            let moved = self.moved_at.load(Ordering::Acquire);
            return Some((moved + timeouts.send_ms(), Ended::Stalled));
        }
        if self.state.load(Ordering::Acquire) & IN_FLIGHT != 0 {
            return None;
        }
        let quiet = self.quiet_since.load(Ordering::Acquire);
        Some((quiet + timeouts.header_ms(), Ended::Quiet))
    }
}

/// A request in flight; dropping it ends the request.
pub(crate) struct Busy {
    activity: Arc<Activity>,
    /// Another request of the connection was in flight when this one began (HTTP/2 streams
    /// at once).
    alongside: bool,
}

impl Busy {
    /// Whether another request of the connection was in flight when this one began.
    pub(crate) fn alongside(&self) -> bool {
        self.alongside
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Quiet from now, stored before the count drops so that an idle count is never
        // seen with an older quiet time.
        self.activity.quiet_since.store(now_ms(), Ordering::Release);
        self.activity.state.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The two waits a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Longest quiet time with no request in flight.
    pub(crate) header: Duration,
    /// Longest time a write may stay blocked.
    pub(crate) send: Duration,
}

impl Timeouts {
    fn header_ms(&self) -> u64 {
        u64::try_from(self.header.as_millis()).unwrap_or(u64::MAX / 4)
    }

    fn send_ms(&self) -> u64 {
        u64::try_from(self.send.as_millis()).unwrap_or(u64::MAX / 4)
    }
}

/// Waits until the connection must end, and says why: it was evicted, or its [`Watch`]
/// found a deadline passed. Run beside the connection; when it returns, drop the connection.
pub(crate) async fn supervise(activity: &Activity) -> Ended {
    loop {
        if activity.state.load(Ordering::Acquire) & EVICTED != 0 {
            return Ended::Evicted;
        }
        match activity.ended() {
            Some(why) => return why,
            None => activity.end.notified().await,
        }
    }
}

/// The open connections of one listener and the deadlines they are held to, looked at
/// together every [`Watch::tick`].
pub(crate) struct Watch {
    timeouts: Timeouts,
    /// Connections not yet seen ended; an entry whose connection is gone is dropped at the
    /// next sweep.
    open: Mutex<Vec<Weak<Activity>>>,
}

impl Watch {
    /// A watch over connections held to `timeouts`.
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            open: Mutex::new(Vec::new()),
        }
    }

    /// How often the connections are looked at: a tenth of the shorter timeout, between
    /// 10 ms and 1 s.
    fn tick(&self) -> Duration {
        (self.timeouts.header.min(self.timeouts.send) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Watches `activity` from now on.
    pub(crate) fn add(&self, activity: &Arc<Activity>) {
        self.lock().push(Arc::downgrade(activity));
    }

    /// Ends every connection whose deadline has passed, and forgets those that are gone.
    fn sweep(&self) {
        let now = now_ms();
        self.lock().retain(|weak| {
            let Some(activity) = weak.upgrade() else {
                return false;
            };
            if activity.is_gone() {
                return false;
            }
            match activity.deadline(&self.timeouts) {
                Some((at, why)) if at <= now => {
                    activity.end(why);
                    false
                }
                _ => true,
            }
        });
    }

    /// Sweeps every tick, for as long as it is awaited.
    pub(crate) async fn run(&self) {
        let mut ticks = tokio::time::interval(self.tick());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sweep();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Activity>>> {
        // Sweeping leaves the list whole at every step: a panic mid-way loses nothing.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream whose writes are recorded in an [`Activity`].
pub(crate) struct Tracked<S> {
    stream: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// `stream`, recording into `activity`.
    pub(crate) fn new(stream: S, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }

    fn record(&self, written: &Poll<io::Result<usize>>) {
        match written {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.wrote(*n),
            Poll::Ready(_) => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.received();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.record(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.record(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight until the connection has taken all of
/// it (and dropped it), and tells its [`Activity`] while it waits for the connection to ask
/// for its next frame or, after its last, to drop it (hyper's HTTP/2 keeps a body until its
/// last frame is sent).
pub(crate) struct InFlight {
    body: BoxedBody,
    busy: Busy,
    /// Its place among the requests in flight beside their connection's first, if it is one.
    _alongside: Option<Alongside>,
    /// A frame was handed over and the next one not asked for yet.
    waiting: bool,
}

impl Body for InFlight {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.waiting {
            this.waiting = false;
            this.busy.activity.body_moved(false);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            this.busy.activity.owe(framed(data.len()));
        }
        // The last frame too: over HTTP/2 the connection holds it (and this body) until the
        // client's window lets it out, and a client that never opens it would otherwise
        // keep the request in flight, and its connection, for ever.
        if matches!(frame, Poll::Ready(Some(Ok(_)))) {
            this.waiting = true;
            this.busy.activity.body_moved(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.waiting {
            self.busy.activity.body_moved(false);
        }
    }
}

/// What framing may add to the bytes of a body on their way out, per frame handed over and
/// per 16 KiB: an HTTP/2 frame head (9 bytes), a TLS record's head, type and tag (22), an
/// HTTP/1.1 chunk's size line and end (at most 20). Counted generously: more only lets the
/// end of a response keep its connection while it goes out.
const FRAMING: u64 = 64;

/// What a response's head may take on the wire beyond its header fields: the status line
/// or `:status`, `Date`, `Content-Length` or `Transfer-Encoding`, `Connection`, and TLS.
const HEAD_EXTRA: u64 = 256;

/// The most `len` bytes of body may take on the wire ([`FRAMING`]).
fn framed(len: usize) -> u64 {
    let len = u64::try_from(len).unwrap_or(u64::MAX / 2);
    len.saturating_add(FRAMING.saturating_mul(len / 16_384 + 1))
}

/// The response as it goes out: without a body for HEAD (with the `Content-Length` GET
/// would send), and holding its request in flight (and its place `alongside` another of
/// the connection's, if it has one) until sent.
pub(crate) fn finish(
    res: Response<BoxedBody>,
    head: bool,
    busy: Busy,
    alongside: Option<Alongside>,
) -> Response<InFlight> {
    let (mut parts, mut body) = res.into_parts();
    if head {
        let bodiless = parts.status.is_informational()
            || matches!(
                parts.status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            );
        if !bodiless
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
            && let Some(len) = body.size_hint().exact()
        {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        body = full(Bytes::new());
    }
    // The head: its fields as HTTP/1.1 writes them (HPACK only makes them smaller).
    let head_bytes = parts.headers.iter().fold(HEAD_EXTRA, |sum, (name, value)| {
        let field = name.as_str().len() + value.len() + 4;
        sum.saturating_add(u64::try_from(field).unwrap_or(u64::MAX))
    });
    busy.activity.owe(head_bytes);
    Response::from_parts(
        parts,
        InFlight {
            body,
            busy,
            _alongside: alongside,
            waiting: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_idle_connection_can_be_evicted() {
        let a = Arc::new(Activity::new());
        let busy = a.begin();
        assert_eq!(a.idle_since(), None);
        assert!(!a.evict(), "a request is in flight");
        drop(busy);
        assert!(a.idle_since().is_some());
        a.write_blocked();
        assert!(!a.evict(), "a write is blocked");
        a.wrote(1);
        a.received();
        assert!(!a.evict(), "a request is arriving");
        drop(a.begin());
        assert!(a.evict());
        assert_eq!(a.idle_since(), None, "evicted once");
        assert!(!a.evict());
    }

    #[tokio::test]
    async fn deadlines_follow_what_the_connection_does() {
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            send: Duration::from_secs(60),
        };
        let a = Arc::new(Activity::new());
        let busy = a.begin();
        assert_eq!(a.deadline(&timeouts), None);
        a.write_blocked();
        let (at, why) = a.deadline(&timeouts).unwrap();
        assert_eq!(why, Ended::Stalled);
        assert!(at >= now_ms() + 59_000);
        a.wrote(1);
        drop(busy);
        let (at, why) = a.deadline(&timeouts).unwrap();
        assert_eq!(why, Ended::Quiet);
        assert!(at >= now_ms() + 9_000);
        a.evict();
        assert_eq!(supervise(&a).await, Ended::Evicted);
    }

    #[tokio::test]
    async fn the_watch_ends_each_connection_when_its_deadline_passes() {
        let watch = Watch::new(Timeouts {
            header: Duration::from_millis(200),
            send: Duration::from_millis(2_000),
        });
        assert_eq!(watch.tick(), Duration::from_millis(20));
        let quiet = Arc::new(Activity::new());
        let busy = Arc::new(Activity::new());
        let stalled = Arc::new(Activity::new());
        let gone = Arc::new(Activity::new());
        for a in [&quiet, &busy, &stalled, &gone] {
            watch.add(a);
        }
        let _request = busy.begin();
        let _blocked_request = stalled.begin();
        stalled.write_blocked();
        drop(gone);
        watch.sweep();
        assert_eq!(watch.lock().len(), 3, "the gone one is forgotten");
        assert_eq!(quiet.ended(), None, "not yet");

        tokio::time::sleep(Duration::from_millis(300)).await;
        watch.sweep();
        assert_eq!(supervise(&quiet).await, Ended::Quiet);
        assert_eq!(busy.ended(), None, "a request in flight");
        assert_eq!(stalled.ended(), None, "blocked for less");
        assert_eq!(watch.lock().len(), 2, "an ended one is no longer watched");

        tokio::time::sleep(Duration::from_millis(1_800)).await;
        watch.sweep();
        assert_eq!(supervise(&stalled).await, Ended::Stalled);
        assert_eq!(busy.ended(), None);
    }

    #[test]
    fn only_writes_that_may_end_a_response_restart_the_quiet_time() {
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            send: Duration::from_secs(60),
        };
        // No response owed (PING acknowledgements): a write that blocks and goes through
        // leaves the quiet time where it was, and a blocked one is held to it.
        let a = Arc::new(Activity::new());
        let (opened, _) = a.deadline(&timeouts).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        a.write_blocked();
        assert_eq!(a.deadline(&timeouts), Some((opened, Ended::Quiet)));
        a.wrote(17);
        assert_eq!(a.deadline(&timeouts), Some((opened, Ended::Quiet)));

        // The end of a response still going out: each write that goes through restarts it,
        // and a blocked one is held to the send timeout, until every byte owed is written.
        let busy = a.begin();
        a.owe(framed(100_000));
        assert!(a.owed_now() > 100_000);
        drop(busy);
        let (answered, _) = a.deadline(&timeouts).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        a.write_blocked();
        assert_eq!(a.deadline(&timeouts).unwrap().1, Ended::Stalled);
        a.wrote(60_000);
        let (restarted, why) = a.deadline(&timeouts).unwrap();
        assert_eq!(why, Ended::Quiet);
        assert!(restarted > answered, "restarted by the end of the response");
        a.write_blocked();
        assert_eq!(a.deadline(&timeouts).unwrap().1, Ended::Stalled);
        a.wrote(1_000_000);
        assert_eq!(a.owed_now(), 0);
        std::thread::sleep(Duration::from_millis(20));
        a.write_blocked();
        assert_eq!(a.deadline(&timeouts), Some((restarted, Ended::Quiet)));
    }

    #[test]
    fn the_watch_ticks_a_tenth_of_the_shorter_timeout_within_bounds() {
        let tick = |header: u64, send: u64| {
            Watch::new(Timeouts {
                header: Duration::from_millis(header),
                send: Duration::from_millis(send),
            })
            .tick()
        };
        assert_eq!(tick(10_000, 60_000), Duration::from_secs(1));
        assert_eq!(tick(1_000, 60_000), Duration::from_millis(100));
        assert_eq!(tick(60_000, 2_000), Duration::from_millis(200));
        assert_eq!(tick(50, 50), Duration::from_millis(10));
        assert_eq!(tick(3_600_000, 3_600_000), Duration::from_secs(1));
    }
}
