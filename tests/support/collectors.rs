//! Services difusor reports to, in the test: an SNTP server answering with a clock skewed as
//! the test says ([`SntpResponder`]), and syslog collectors over UDP, TCP (octet counting) and
//! a unix datagram socket ([`SyslogReceiver`]) whose messages are parsed as RFC 5424
//! ([`Rfc5424`]). Written with std only.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from 1900 (NTP's era) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// An SNTP server on 127.0.0.1 (RFC 4330, answering NTPv4 server packets) whose clock is this
/// machine's plus a skew the test sets; stops when dropped.
pub struct SntpResponder {
    pub addr: SocketAddr,
    skew_ms: Arc<AtomicI64>,
    answered: Arc<AtomicI64>,
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl SntpResponder {
    /// Answers on a UDP port the kernel picks, its clock `skew_ms` milliseconds ahead of this
    /// machine's (behind when negative).
    pub fn start(skew_ms: i64) -> SntpResponder {
        Self::claiming_hold(skew_ms, 0)
    }

    /// As [`SntpResponder::start`], its answers claiming that it held each request `hold_ms`
    /// milliseconds between receiving it and answering (its transmit time that much past its
    /// receive time), though it answers at once: with a hold longer than the round trip, the
    /// answer's times make a round trip below zero.
    pub fn claiming_hold(skew_ms: i64, hold_ms: i64) -> SntpResponder {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let responder = SntpResponder {
            addr: socket.local_addr().unwrap(),
            skew_ms: Arc::new(AtomicI64::new(skew_ms)),
            answered: Arc::new(AtomicI64::new(0)),
            silent: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (skew, answered, silent, stop) = (
            responder.skew_ms.clone(),
            responder.answered.clone(),
            responder.silent.clone(),
            responder.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut request = [0u8; 512];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut request) else {
                    continue;
                };
                // A client's request: 48 bytes or more, mode 3.
                if n < 48 || request[0] & 0x07 != 3 || silent.load(Ordering::SeqCst) {
                    continue;
                }
                let now = ntp_time(skew.load(Ordering::SeqCst));
                let mut reply = [0u8; 48];
                reply[0] = (4 << 3) | 4; // no leap warning, version 4, mode 4 (server)
                reply[1] = 1; // stratum 1: a reference clock
                reply[2] = request[2]; // poll
                reply[3] = (-20i8) as u8; // precision, about a microsecond
                reply[12..16].copy_from_slice(b"LOCL");
                reply[16..24].copy_from_slice(&now); // reference time
                reply[24..32].copy_from_slice(&request[40..48]); // originate: their transmit
                reply[32..40].copy_from_slice(&now); // receive
                let transmit = ntp_time(skew.load(Ordering::SeqCst) + hold_ms);
                reply[40..48].copy_from_slice(&transmit);
                if socket.send_to(&reply, from).is_ok() {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        responder
    }

    /// `127.0.0.1:<port>`, as `ntp_servers` takes it.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// Sets the skew from now on.
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::SeqCst);
    }

    /// Stops answering (requests are read and left unanswered), or answers again.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn answered(&self) -> i64 {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for SntpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// This machine's time plus `skew_ms`, as an NTP timestamp (seconds since 1900, 32.32 fixed).
fn ntp_time(skew_ms: i64) -> [u8; 8] {
    let now = SystemTime::now();
    let skew = Duration::from_millis(skew_ms.unsigned_abs());
    let t = if skew_ms >= 0 { now + skew } else { now - skew };
    let since = t.duration_since(UNIX_EPOCH).unwrap();
    let seconds = (since.as_secs() + NTP_UNIX_OFFSET) as u32;
    let fraction = ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&seconds.to_be_bytes());
    out[4..].copy_from_slice(&fraction.to_be_bytes());
    out
}

/// A syslog collector in the test: every message it receives, as text.
pub struct SyslogReceiver {
    /// What `syslog` is set to for difusor to reach it.
    pub target: String,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SyslogReceiver {
    /// A collector on a UDP port of 127.0.0.1: one datagram, one message.
    pub fn udp() -> SyslogReceiver {
        Self::udp_on(UdpSocket::bind("127.0.0.1:0").unwrap())
    }

    /// The same on `socket`.
    pub fn udp_on(socket: UdpSocket) -> SyslogReceiver {
        let target = format!("udp://{}", socket.local_addr().unwrap());
        Self::datagrams(target, move |buf| socket.recv(buf))
    }

    /// A collector on a unix datagram socket at `path`.
    pub fn unix(path: &Path) -> SyslogReceiver {
        let socket = UnixDatagram::bind(path).unwrap();
        Self::datagrams(format!("unix:{}", path.display()), move |buf| {
            socket.recv(buf)
        })
    }

    /// A collector at `target` whose every datagram, read by `recv`, is one message.
    fn datagrams(
        target: String,
        mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize> + Send + 'static,
    ) -> SyslogReceiver {
        let receiver = Self::new(target);
        let messages = receiver.messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = recv(&mut buf) {
                push(&messages, &buf[..n]);
            }
        });
        receiver
    }

    /// A collector on a TCP port of 127.0.0.1 taking octet-counted frames (RFC 6587 §3.4.1:
    /// `<length> <message>`); a stream that breaks the framing is recorded as
    /// `FRAMING ERROR: …`, which no test expects.
    pub fn tcp() -> SyslogReceiver {
        Self::tcp_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// The same on `listener`.
    pub fn tcp_on(listener: TcpListener) -> SyslogReceiver {
        let receiver = Self::new(format!("tcp://{}", listener.local_addr().unwrap()));
        let messages = receiver.messages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let messages = messages.clone();
                std::thread::spawn(move || {
                    loop {
                        let mut length = Vec::new();
                        let mut byte = [0u8; 1];
                        loop {
                            match stream.read(&mut byte) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if byte[0] == b' ' => break,
                                Ok(_) if byte[0].is_ascii_digit() && length.len() < 6 => {
                                    length.push(byte[0]);
                                }
                                Ok(_) => {
                                    push(&messages, b"FRAMING ERROR: not an octet count");
                                    return;
                                }
                            }
                        }
                        let n: usize = String::from_utf8_lossy(&length).parse().unwrap_or(0);
                        let mut message = vec![0u8; n];
                        if n == 0 || stream.read_exact(&mut message).is_err() {
                            push(&messages, b"FRAMING ERROR: short frame");
                            return;
                        }
                        push(&messages, &message);
                    }
                });
            }
        });
        receiver
    }

    fn new(target: String) -> SyslogReceiver {
        SyslogReceiver {
            target,
            messages: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits up to 60 s for a message whose MSGID is `msgid`; the first one, parsed.
    pub fn wait_for(&self, msgid: &str) -> Rfc5424 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = self.messages();
            for m in &all {
                assert!(!m.starts_with("FRAMING ERROR"), "{m}");
            }
            if let Some(m) = all
                .iter()
                .filter_map(|m| Rfc5424::parse(m))
                .find(|m| m.msgid == msgid)
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no `{msgid}` message at {}; received: {all:#?}",
                self.target
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn push(messages: &Mutex<Vec<String>>, bytes: &[u8]) {
    messages
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(bytes).into_owned());
}

/// A syslog message as RFC 5424 §6 lays it out.
#[derive(Debug, Clone)]
pub struct Rfc5424 {
    pub pri: u8,
    pub version: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    /// Each SD-ELEMENT: its SD-ID and its parameters, unescaped.
    pub structured_data: Vec<(String, Vec<(String, String)>)>,
    pub msg: String,
}

impl Rfc5424 {
    /// Parses `text`, or `None` if it is not an RFC 5424 message.
    pub fn parse(text: &str) -> Option<Rfc5424> {
        let rest = text.strip_prefix('<')?;
        let (pri, rest) = rest.split_once('>')?;
        if pri.is_empty() || pri.len() > 3 {
            return None;
        }
        let pri: u8 = pri.parse().ok().filter(|p| *p <= 191)?;
        let mut fields = rest.splitn(7, ' ');
        let version: u8 = fields.next()?.parse().ok()?;
        let timestamp = fields.next()?.to_owned();
        let hostname = fields.next()?.to_owned();
        let app_name = fields.next()?.to_owned();
        let procid = fields.next()?.to_owned();
        let msgid = fields.next()?.to_owned();
        let rest = fields.next()?;
        let (structured_data, msg) = if let Some(msg) = rest.strip_prefix('-') {
            (Vec::new(), msg)
        } else {
            structured_data(rest)?
        };
        let msg = match msg.strip_prefix(' ') {
            Some(m) => m.strip_prefix('\u{feff}').unwrap_or(m).to_owned(),
            None if msg.is_empty() => String::new(),
            None => return None,
        };
        Some(Rfc5424 {
            pri,
            version,
            timestamp,
            hostname,
            app_name,
            procid,
            msgid,
            structured_data,
            msg,
        })
    }

    /// The value of parameter `name` of the SD-ELEMENT `id`.
    pub fn param(&self, id: &str, name: &str) -> Option<&str> {
        self.structured_data
            .iter()
            .find(|(i, _)| i == id)?
            .1
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// MSG as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.msg)
            .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {self:?}"))
    }
}

/// SD-ELEMENTs at the start of `text`, and what follows them.
#[allow(clippy::type_complexity)]
fn structured_data(mut text: &str) -> Option<(Vec<(String, Vec<(String, String)>)>, &str)> {
    let mut elements = Vec::new();
    while let Some(rest) = text.strip_prefix('[') {
        let end_id = rest.find([' ', ']'])?;
        let id = rest[..end_id].to_owned();
        let mut rest = &rest[end_id..];
        let mut params = Vec::new();
        while let Some(p) = rest.strip_prefix(' ') {
            let (name, after) = p.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            params.push((name.to_owned(), value));
            rest = &after[end?..];
        }
        text = rest.strip_prefix(']')?;
        elements.push((id, params));
    }
    (!elements.is_empty()).then_some((elements, text))
}
