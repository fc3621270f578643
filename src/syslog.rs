//! Journal events sent to syslog (`syslog`, `syslog_facility`) as RFC 5424 messages, so that a
//! site's central log collector holds what the journal holds.
//!
//! Each event written to the journal (received, rejected, published, notice on and off, start,
//! stop, warnings, refusals: every [`EventKind`]) becomes one message: APP-NAME `difusor`,
//! PROCID the process id, MSGID the event's kind (`published`), the package, its file name
//! and corte as structured data (`[difusor@32473 package="<sha256>" name="…" corte="…"]`;
//! 32473 is the enterprise number RFC 5612 sets aside for examples), the event's detail as
//! JSON in MSG, and a severity by kind ([`severity`]). Over `unix:` (a datagram socket such as
//! `/dev/log`) and `udp://` one message is one datagram; over `tcp://` messages are framed by
//! octet counting (RFC 6587 §3.4.1).
//!
//! # Guarantees
//! - Nothing waits for the collector: the journal's writer hands each event to a bounded
//!   queue ([`QUEUE`]) and goes on; a thread of its own, `syslog`, formats and sends. A
//!   full queue drops the event, counted (`/status`, `/metrics`).
//! - A collector that is down stops nothing: every connection and write is bounded in time
//!   ([`CONNECT_TIMEOUT`], [`WRITE_TIMEOUT`]); the thread keeps the message, tries again
//!   after a wait that doubles up to [`MAX_BACKOFF`], and logs once when sending starts
//!   failing and once when it works again. When sending starts failing, that is also
//!   journaled once (`warning`, check `syslog`, with the collector, and the error, its
//!   control characters escaped, in the warning's text), so the journal says from when
//!   syslog's copy has a gap; the warning itself waits in the queue and reaches the
//!   collector when it is back. A collector
//!   that stops reading is said so in plain words, not as the socket's "Resource temporarily
//!   unavailable". A UDP collector that refused messages ("port unreachable", which the
//!   system reports only at the send after the message refused) is taken to be back once a
//!   message went out with no refusal of the one before it reported, not at the first send
//!   that seems to work: so it is journaled as failing once, not again with every message.
//! - A TCP collector that closed its connection (one restarting) is connected to again
//!   before the next message ([`Conn::closed_by_peer`]), so that message is not written into
//!   the closed connection, lost and counted as sent. What a collector took and had not read
//!   when it went down is lost: TCP syslog has no acknowledgement. One whose machine went
//!   away without closing it (powered off, its network cut) is given up once what it was
//!   sent stays unacknowledged for [`UNACKED_TIMEOUT`], and is then a collector that is
//!   down; what was sent into the connection in that time is lost.
//! - A `unix:` path that names a regular file or a folder is refused at the start of
//!   `serve` ([`Target::check`]); one that does not exist yet is a collector that is down.
//! - A message is at most [`MAX_MESSAGE_BYTES`]: a longer detail is replaced by a JSON
//!   object saying it was cut, with its beginning.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use fasyslog::{Facility, SDElement, Severity, format::SyslogContext};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use crate::config::{Config, Invalid};
use crate::journal::{EventKind, Follower, Journal, Written};
use crate::peer_text::PeerText;

/// Most events waiting to be sent; past it, events are dropped and counted.
pub(crate) const QUEUE: usize = 4096;
/// Longest wait for a TCP connection to the collector.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one message to be taken by the collector's socket.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a TCP collector's machine may leave what it was sent unacknowledged before the
/// connection is given up (`TCP_USER_TIMEOUT`): one that went away without a word (powered
/// off, its network cut) is otherwise found only after the system's quarter of an hour of
/// retransmissions, every message meanwhile taken into the connection and lost.
pub(crate) const UNACKED_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait before trying a collector that failed again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Largest message sent, in bytes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 8192;
/// Most bytes a TCP collector's talk is read and dropped before each message.
const PEER_BYTES_DROPPED: usize = 64 * 1024;
/// The structured data's SD-ID.
const SD_ID: &str = "difusor@32473";

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A local datagram socket (`unix:/dev/log`).
    Unix(PathBuf),
    /// `udp://host:port`.
    Udp(String),
    /// `tcp://host:port`.
    Tcp(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Udp(addr) => write!(f, "udp://{addr}"),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// The syslog settings.
#[derive(Debug, Clone)]
pub(crate) struct SyslogSettings {
    /// `syslog`.
    pub(crate) target: Target,
    /// `syslog_facility`.
    pub(crate) facility: Facility,
}

impl Target {
    /// Refuses, at the start, a `unix:` path that names something other than a socket (a
    /// regular file, a folder): a mistake that no waiting would fix. A path that does not
    /// exist yet is a collector not started yet, and is tried as one that is down.
    pub(crate) fn check(&self) -> Result<(), Invalid> {
        use std::os::unix::fs::FileTypeExt as _;
        let Self::Unix(path) = self else {
            return Ok(());
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let kind = meta.file_type();
        if kind.is_socket() {
            return Ok(());
        }
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        Err(Invalid::new(
            "syslog",
            format!(
                "{} is {what}, not the collector's socket; name the datagram socket the \
                 collector listens on, e.g. unix:/dev/log",
                path.display()
            ),
        ))
    }
}

impl SyslogSettings {
    /// The settings, when `syslog` is set.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let s = &config.settings;
        let facility: Facility = s.syslog_facility.parse().map_err(|()| {
            Invalid::new(
                "syslog_facility",
                format!(
                    "{:?} is not a syslog facility; use daemon, local0 … local7, user, auth, …",
                    s.syslog_facility.chars().take(40).collect::<String>()
                ),
            )
        })?;
        if s.syslog.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            target: target(&s.syslog)?,
            facility,
        }))
    }
}

/// `unix:/path`, `udp://host:port` or `tcp://host:port`.
fn target(text: &str) -> Result<Target, Invalid> {
    let bad = |why: &str| {
        Invalid::new(
            "syslog",
            format!(
                "{:?} {why}; write unix:/dev/log, udp://10.0.0.9:514 or tcp://logs.example.mx:601",
                text.chars().take(100).collect::<String>()
            ),
        )
    };
    if let Some(path) = text.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(bad("needs an absolute socket path"));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a syslog address ({e})")))?;
    let wrap: fn(String) -> Target = match url.scheme() {
        "udp" => Target::Udp,
        "tcp" => Target::Tcp,
        _ => return Err(bad("names no known transport (unix, udp, tcp)")),
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad("must be only a host and a port"));
    }
    let port = url.port().ok_or_else(|| bad("needs a port"))?;
    let host = match url.host() {
        Some(url::Host::Domain(name))
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')) =>
        {
            name.to_ascii_lowercase()
        }
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(bad("has no valid host")),
    };
    if port == 0 {
        return Err(bad("has no valid port"));
    }
    Ok(wrap(format!("{host}:{port}")))
}

/// The severity of an event of `kind`.
pub(crate) fn severity(kind: EventKind) -> Severity {
    use EventKind as K;
    match kind {
        K::PublisherDied => Severity::CRITICAL,
        K::Rejected | K::IntakeError => Severity::ERROR,
        K::Warning | K::Held | K::SetAside | K::PullError => Severity::WARNING,
        K::Start
        | K::Stop
        | K::NoticeOn
        | K::NoticeOff
        | K::Rollback
        | K::Draining
        | K::EvidenceLate
        | K::SftpRefused
        | K::PullRecovered
        | K::PurgeRecovered
        | K::ClockRecovered
        | K::AcmeCertificate
        | K::AcmeRecovered => Severity::NOTICE,
        K::Received
        | K::Archived
        | K::Verified
        | K::Published
        | K::Duplicate
        | K::Older
        | K::RejectedRemoved
        | K::Rebuilt
        | K::SftpSession => Severity::INFORMATIONAL,
    }
}

/// What the admin listener shows of syslog.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SyslogStatus {
    /// Where messages go.
    pub(crate) target: String,
    /// Messages the collector's socket took since the start.
    pub(crate) sent: u64,
    /// Events not sent (queue full, or a send that failed) since the start.
    pub(crate) dropped: u64,
    /// Since when sending fails, while it does.
    pub(crate) failing_since: Option<String>,
    /// Why it fails, while it does.
    pub(crate) error: Option<String>,
}

/// Counters and state shared with the sending thread.
#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    dropped: AtomicU64,
    /// Events handed over and not yet sent or dropped.
    pending: AtomicU64,
    failing: std::sync::Mutex<Option<(Timestamp, String)>>,
}

/// The sender of journal events to syslog.
pub(crate) struct Syslog {
    target: Target,
    queue: crossbeam_channel::Sender<Written>,
    shared: Arc<Shared>,
}

impl Syslog {
    /// Starts the sending thread. Nothing is connected yet: a collector that is down does not
    /// stop the start. `journal` is where a failing collector is journaled; held weakly, as
    /// the journal holds this sender as its follower.
    pub(crate) fn start(
        settings: &SyslogSettings,
        journal: Weak<Journal>,
    ) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let shared = Arc::new(Shared::default());
        let mut context = SyslogContext::new();
        context
            .appname("difusor")
            .procid(std::process::id().to_string())
            .facility(settings.facility);
        std::thread::Builder::new().name("syslog".into()).spawn({
            let (target, shared) = (settings.target.clone(), shared.clone());
            move || send_loop(&target, &context, &rx, &shared, &journal)
        })?;
        tracing::info!(collector = %settings.target, "journal events are also sent to syslog");
        Ok(Arc::new(Self {
            target: settings.target.clone(),
            queue: tx,
            shared,
        }))
    }

    /// What the journal hands each event written: queued, or dropped if the queue is full.
    pub(crate) fn follower(self: &Arc<Self>) -> Follower {
        let this = self.clone();
        Box::new(move |event| {
            this.shared.pending.fetch_add(1, Ordering::Relaxed);
            if this.queue.try_send(event).is_err() {
                this.shared.pending.fetch_sub(1, Ordering::Relaxed);
                this.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Its state now.
    pub(crate) fn status(&self) -> SyslogStatus {
        let failing = self
            .shared
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        SyslogStatus {
            target: self.target.to_string(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failing_since: failing.as_ref().map(|(since, _)| since.to_string()),
            error: failing.map(|(_, e)| e),
        }
    }

    /// Waits up to `within` for the events handed over to be sent (at a stop).
    pub(crate) async fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.shared.pending.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An open way to the collector.
enum Conn {
    Unix(UnixDatagram),
    /// A UDP socket, and whether a message went out on it already: a collector's refusal
    /// ("port unreachable") is reported only at the send after the message it refused.
    Udp(UdpSocket, bool),
    Tcp(TcpStream),
}

impl Conn {
    /// Connects to `target`, within [`CONNECT_TIMEOUT`] for each of its addresses.
    fn open(target: &Target) -> std::io::Result<Self> {
        match target {
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path)?;
                socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
                Ok(Self::Unix(socket))
            }
            Target::Udp(addr) => {
                let mut last = None;
                for a in addr.to_socket_addrs()? {
                    let local: std::net::SocketAddr = if a.is_ipv4() {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    match UdpSocket::bind(local).and_then(|s| s.connect(a).map(|()| s)) {
                        Ok(s) => return Ok(Self::Udp(s, false)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
            }
            Target::Tcp(addr) => {
                let mut last = None;
                for a in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                            s.set_nodelay(true)?;
                            rustix::net::sockopt::set_tcp_user_timeout(
                                &s,
                                u32::try_from(UNACKED_TIMEOUT.as_millis()).unwrap_or(u32::MAX),
                            )?;
                            return Ok(Self::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
            }
        }
    }

    /// Whether the collector has closed (or reset) this TCP connection. Written into such a
    /// connection, a message is taken by this side's socket and lost, the failure showing
    /// only at the write after it: looked at before each message, a collector that restarted
    /// is connected to again, and the message reaches it. What the collector sends (nothing,
    /// by RFC 6587) is read and dropped, [`PEER_BYTES_DROPPED`] at most each time.
    fn closed_by_peer(&self) -> bool {
        use std::io::Read as _;
        let Self::Tcp(s) = self else { return false };
        if s.set_nonblocking(true).is_err() {
            return true;
        }
        let mut buf = [0u8; 512];
        let mut left = PEER_BYTES_DROPPED;
        let closed = loop {
            match (&*s).read(&mut buf) {
                Ok(0) => break true,
                Ok(n) if n < left => left -= n,
                Ok(_) => break false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
            }
        };
        closed || s.set_nonblocking(false).is_err()
    }

    /// Sends one message, framed for its transport; whether the collector is known to take
    /// messages: over UDP, not before a second message went out on the socket with no
    /// refusal of the first reported.
    fn send(&mut self, message: &[u8]) -> std::io::Result<bool> {
        match self {
            Self::Unix(s) => s.send(message).map(|_| true),
            Self::Udp(s, carried) => {
                s.send(message)?;
                Ok(std::mem::replace(carried, true))
            }
            Self::Tcp(s) => {
                let mut framed = format!("{} ", message.len()).into_bytes();
                framed.extend_from_slice(message);
                s.write_all(&framed).map(|()| true)
            }
        }
    }
}

/// The `syslog` thread: each event formatted and sent, in order, until the journal is gone.
fn send_loop(
    target: &Target,
    context: &SyslogContext,
    queue: &crossbeam_channel::Receiver<Written>,
    shared: &Shared,
    journal: &Weak<Journal>,
) {
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_secs(1);
    let mut reported_dropped = 0;
    while let Ok(event) = queue.recv() {
        let message = format(context, &event);
        loop {
            if conn.as_ref().is_some_and(Conn::closed_by_peer) {
                tracing::debug!(collector = %target, "the syslog collector closed the connection; connecting again");
                conn = None;
            }
            if conn.is_none() {
                match Conn::open(target) {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        failed(target, shared, journal, e.to_string());
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match c.send(message.as_bytes()) {
                Ok(taken) => {
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    backoff = Duration::from_secs(1);
                    // A UDP collector that refuses says so only at the next message: until
                    // then, one that failed is not taken to be back (nor journaled as failing
                    // again with every message, each warning another message).
                    if taken {
                        let mut failing = shared.failing.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some((since, _)) = failing.take() {
                            tracing::info!(collector = %target, %since, "the syslog collector takes messages again");
                        }
                    }
                    break;
                }
                Err(e) => {
                    conn = None;
                    failed(target, shared, journal, send_failure(&e));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported_dropped {
            tracing::warn!(collector = %target, dropped = dropped - reported_dropped, "journal events not sent to syslog: its queue was full");
            reported_dropped = dropped;
        }
    }
}

/// Notes that sending to `target` fails; logged and journaled when it starts failing.
fn failed(target: &Target, shared: &Shared, journal: &Weak<Journal>, error: String) {
    // The error may quote a name server's or the collector's words.
    let error = PeerText(&error).to_string();
    let mut failing = shared.failing.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, why)) = failing.as_mut() {
        *why = error;
        return;
    }
    *failing = Some((Timestamp::now(), error.clone()));
    drop(failing);
    tracing::warn!(collector = %target, %error, "cannot send to the syslog collector; messages wait, and are dropped when too many wait");
    if let Some(journal) = journal.upgrade() {
        journal.post(
            EventKind::Warning,
            None,
            json!({
                "warning": format!(
                    "cannot send journal events to the syslog collector {target}: {error}; \
                     they wait, and are dropped when more than {QUEUE} wait"
                ),
                "check": "syslog",
                "collector": target.to_string(),
            }),
        );
    }
}

/// Why sending a message failed, in plain words where the system's are obscure: a socket's
/// write timeout is reported as "Resource temporarily unavailable".
fn send_failure(error: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::WouldBlock | K::TimedOut => format!(
            "the collector took no message within {} s: it does not read what it is sent",
            WRITE_TIMEOUT.as_secs()
        ),
        _ => error.to_string(),
    }
}

/// The RFC 5424 message of `event`.
fn format(context: &SyslogContext, event: &Written) -> String {
    let mut element = SDElement::new(SD_ID).ok();
    let mut add = |name: &str, value: &str| {
        if let Some(e) = element.as_mut() {
            // Names are fixed and valid; values are escaped by the formatter.
            let _ = e.add_param(name, value);
        }
    };
    if let Some((sha, name)) = &event.package {
        add("package", &sha.to_hex());
        add("name", name);
    }
    if let Some(corte) = event.detail.get("corte").and_then(|c| c.as_str()) {
        add("corte", corte);
    }
    add("at", &event.at.to_string());
    let elements = element.into_iter().collect();
    let mut detail = event.detail.to_string();
    // Room for the header and the structured data, whose values are bounded by the journal.
    let room = MAX_MESSAGE_BYTES / 2;
    if detail.len() > room {
        let mut cut = room / 2;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail =
            serde_json::json!({"truncated": true, "bytes": detail.len(), "start": &detail[..cut]})
                .to_string();
    }
    let mut message = context
        .format_rfc5424(
            severity(event.kind),
            Some(event.kind.as_str()),
            elements,
            Some(detail),
        )
        .to_string();
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_socket_path_or_a_host_and_port() {
        assert_eq!(
            target("unix:/dev/log").unwrap(),
            Target::Unix("/dev/log".into())
        );
        assert_eq!(
            target("udp://10.0.0.9:514").unwrap(),
            Target::Udp("10.0.0.9:514".into())
        );
        assert_eq!(
            target("tcp://[::1]:601").unwrap(),
            Target::Tcp("[::1]:601".into())
        );
        assert_eq!(
            target("tcp://Logs.Example.MX:601").unwrap(),
            Target::Tcp("logs.example.mx:601".into())
        );
        for bad in [
            "/dev/log",
            "unix:dev/log",
            "udp://10.0.0.9",
            "tcp://:601",
            "http://logs:514",
            "tcp://logs example:601",
            "tcp://[::1:601",
            "tcp://host:99999",
            "tcp://host:0",
            "udp://user@10.0.0.9:514",
            "tcp://logs:601/path",
            "tcp://logs:601?x",
            "tcp://l%C3%B6gs:601",
        ] {
            let err = target(bad).unwrap_err().to_string();
            assert!(err.starts_with("setting `syslog`: "), "{bad}: {err}");
        }
    }
}
