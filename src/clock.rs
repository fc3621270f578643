//! The check of this machine's clock, on which every corte time, the publication gate and the
//! lag depend: each of `ntp_servers` is asked the time over SNTP (RFC 4330) at start and every
//! `ntp_interval`, and systemd's own view (`timedatectl show -p NTPSynchronized`) is read
//! beside it. The clock is only checked, never set.
//!
//! The offset is the NTP time minus this clock's: positive when this clock is behind. The
//! answer with the shortest round trip is taken as the offset; every server's answer (or
//! error) is kept too. [`Clock::status`] is what the admin listener shows (`/status`, the
//! status page, `/metrics`).
//!
//! # Guarantees
//! - Every question is bounded: [`QUERY_TIMEOUT`] for the name lookup and the answer of one
//!   server, [`TIMEDATECTL_TIMEOUT`] for `timedatectl`; servers are asked at the same time.
//!   A server that does not answer, or answers nonsense (rejected by the SNTP client: wrong
//!   mode, version, origin, a kiss-of-death; or times that make a round trip below zero,
//!   which would otherwise win as the shortest), is an error on the status page, nothing
//!   more.
//!   A missing `timedatectl` is "unknown". It is not given the service manager's socket
//!   (`NOTIFY_SOCKET`, the watchdog's variables): systemd's tools tell it their own end.
//! - When the offset goes past `clock_max_offset`, that is logged loudly and journaled once
//!   (`warning`, check `clock`, with the offset). When no server answers, that is logged and
//!   journaled once until one answers again (`warning`, check `clock`, with each server's
//!   error, its control characters escaped). When the offset is known and within again
//!   after either, `clock-recovered` is journaled. Nothing is refused because of it.
//! - A jump of the clock (set forward or back by more than `clock_max_offset` beside the
//!   monotonic clock, looked at every [`JUMP_CHECK`]) is logged as an error and journaled
//!   (`warning`, check `clock`, `jump_seconds`) at once, and the servers are asked again:
//!   the gate opens by this clock, so a jump past `publish_start` is said the second it
//!   happens, not at the next `ntp_interval`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::config::{Config, Invalid, duration_at_least, positive_duration};
use crate::journal::{EventKind, Journal};
use crate::peer_text::PeerText;

/// Longest wait for one server: its name looked up and its answer.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for `timedatectl`.
pub(crate) const TIMEDATECTL_TIMEOUT: Duration = Duration::from_secs(2);
/// The environment by which a service manager addresses the server alone (`sd_notify(3)`):
/// removed from `timedatectl`'s, which would otherwise notify in the server's name.
const MANAGER_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];
/// The NTP port, when a server is given without one.
const NTP_PORT: u16 = 123;
/// Longest error text kept from a server's answer.
const MAX_ERROR_CHARS: usize = 200;

/// One of `ntp_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NtpServer {
    /// A host name or an address.
    host: String,
    /// Its port.
    port: u16,
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The clock check's settings.
#[derive(Debug, Clone)]
pub(crate) struct ClockSettings {
    /// `ntp_servers`; empty: only systemd's view is read.
    pub(crate) servers: Vec<NtpServer>,
    /// `clock_max_offset`.
    pub(crate) max_offset: Duration,
    /// `ntp_interval`.
    pub(crate) interval: Duration,
}

impl ClockSettings {
    /// The clock check's settings, validated.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        Ok(Self {
            servers: s
                .ntp_servers
                .iter()
                .map(|t| ntp_server(t))
                .collect::<Result<_, _>>()?,
            max_offset: positive_duration("clock_max_offset", &s.clock_max_offset, "1s")?,
            interval: duration_at_least(
                "ntp_interval",
                &s.ntp_interval,
                Duration::from_secs(1),
                "5m",
            )?,
        })
    }
}

/// `host`, `host:port`, an address, or `[v6 address]:port`.
fn ntp_server(text: &str) -> Result<NtpServer, Invalid> {
    let bad = || {
        Invalid::new(
            "ntp_servers",
            format!(
                "{:?} is not a server; write a host name or address, with a port if not 123: \
                 cronos.cenam.mx, pool.ntp.org, 10.0.0.1:123 or [2001:db8::1]:123",
                text.chars().take(80).collect::<String>()
            ),
        )
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(NtpServer {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(NtpServer {
            host: ip.to_string(),
            port: NTP_PORT,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
        None => (text, NTP_PORT),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if port == 0 || host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(NtpServer {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// What one server answered at the last check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerCheck {
    /// The server, `host:port`.
    pub(crate) server: String,
    /// When it was asked.
    pub(crate) checked_at: String,
    /// NTP time minus this clock's, in seconds, when it answered.
    pub(crate) offset_seconds: Option<f64>,
    /// The round trip of its answer, in seconds.
    pub(crate) delay_seconds: Option<f64>,
    /// Its stratum.
    pub(crate) stratum: Option<u8>,
    /// Why it gave no usable answer.
    pub(crate) error: Option<String>,
}

/// The clock as the admin listener shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClockStatus {
    /// Whether `ntp_servers` is set (the clock is checked against them).
    pub(crate) checked: bool,
    /// NTP time minus this clock's, in seconds, from the last check that had an answer.
    pub(crate) offset_seconds: Option<f64>,
    /// The server whose answer that was (the shortest round trip).
    pub(crate) server: Option<String>,
    /// When that answer came.
    pub(crate) offset_checked_at: Option<String>,
    /// When the servers were last asked.
    pub(crate) last_check: Option<String>,
    /// `clock_max_offset`, in seconds.
    pub(crate) max_offset_seconds: f64,
    /// Whether the offset is past `clock_max_offset`.
    pub(crate) offset_exceeded: bool,
    /// What a person must know, when the offset is past `clock_max_offset` or no server
    /// answers.
    pub(crate) warning: Option<String>,
    /// Each server at the last check.
    pub(crate) servers: Vec<ServerCheck>,
    /// systemd's view (`timedatectl show -p NTPSynchronized`): `None` when it cannot tell.
    pub(crate) ntp_synchronized: Option<bool>,
}

/// The clock check's state, shared with the admin listener.
pub(crate) struct Clock {
    settings: ClockSettings,
    state: Mutex<ClockStatus>,
}

impl Clock {
    /// A clock not checked yet.
    pub(crate) fn new(settings: ClockSettings) -> Arc<Self> {
        let state = ClockStatus {
            checked: !settings.servers.is_empty(),
            offset_seconds: None,
            server: None,
            offset_checked_at: None,
            last_check: None,
            max_offset_seconds: settings.max_offset.as_secs_f64(),
            offset_exceeded: false,
            warning: None,
            servers: Vec::new(),
            ntp_synchronized: None,
        };
        Arc::new(Self {
            settings,
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockStatus> {
        // Only plain values are written under the lock: a poisoned one is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock now, as last checked.
    pub(crate) fn status(&self) -> ClockStatus {
        self.state().clone()
    }

    /// Checks at once, then every `ntp_interval`, until `stop`; and every [`JUMP_CHECK`],
    /// whether the clock jumped ([`Jumps`]): a jump is said at once and the servers asked
    /// again.
    pub(crate) async fn run(
        self: Arc<Self>,
        journal: Arc<Journal>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(self.settings.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut jump_check = tokio::time::interval(JUMP_CHECK);
        jump_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut jumps = Jumps::new();
        loop {
            tokio::select! {
                _ = every.tick() => self.check(&journal).await,
                _ = jump_check.tick() => {
                    if let Some(jump) = jumps.jumped(self.settings.max_offset) {
                        self.jumped(jump, &journal);
                        self.check(&journal).await;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Says that the clock jumped by `jump` seconds (forward when positive): in the log as an
    /// error and in the journal as a `warning` (check `clock`).
    fn jumped(&self, jump: f64, journal: &Journal) {
        let (direction, cause) = if jump > 0.0 {
            (
                "forward",
                "someone or something set it, or the machine was suspended",
            )
        } else {
            ("back", "someone or something set it")
        };
        let warning = format!(
            "this machine's clock jumped {direction} by {:.1} s ({cause}); publish_start, corte \
             times and lags are read from it: check it against a time service",
            jump.abs()
        );
        tracing::error!(jump_seconds = jump, "CLOCK JUMPED: {warning}");
        journal.post(
            EventKind::Warning,
            None,
            json!({"warning": warning, "check": "clock", "jump_seconds": jump}),
        );
    }

    /// Asks every server and systemd, and records what they said.
    async fn check(&self, journal: &Journal) {
        let (answers, synchronized) = tokio::join!(
            futures_util::future::join_all(self.settings.servers.iter().map(ask)),
            ntp_synchronized(),
        );
        let now = Timestamp::now().to_string();
        let best = answers
            .iter()
            .filter(|a| a.offset_seconds.is_some())
            .min_by(|a, b| a.delay_seconds.total_cmp(&b.delay_seconds))
            .map(|a| (a.offset_seconds.unwrap_or_default(), a.server.clone()));
        let max = self.settings.max_offset.as_secs_f64();
        let mut state = self.state();
        state.ntp_synchronized = synchronized;
        if self.settings.servers.is_empty() {
            return;
        }
        let all_failed_before = state.last_check.is_some() && state.warning_no_answer();
        state.last_check = Some(now.clone());
        state.servers = answers.into_iter().map(ServerCheck::from).collect();
        let Some((offset, server)) = best else {
            let errors: Vec<String> = state
                .servers
                .iter()
                .map(|s| format!("{}: {}", s.server, s.error.as_deref().unwrap_or("?")))
                .collect();
            let warning = format!(
                "no NTP server answered, the clock is not checked: {}",
                errors.join("; ")
            );
            state.warning = Some(warning.clone());
            drop(state);
            if !all_failed_before {
                tracing::warn!(errors = %errors.join("; "), "no NTP server answered: the clock cannot be checked");
                journal.post(
                    EventKind::Warning,
                    None,
                    json!({"warning": warning, "check": "clock", "errors": errors}),
                );
            }
            return;
        };
        state.offset_seconds = Some(offset);
        state.server = Some(server.clone());
        state.offset_checked_at = Some(now);
        let exceeded = offset.abs() > max;
        let was = std::mem::replace(&mut state.offset_exceeded, exceeded);
        state.warning = exceeded.then(|| exceeded_text(offset, &server, max));
        drop(state);
        match (was, exceeded) {
            (false, true) => {
                let warning = exceeded_text(offset, &server, max);
                tracing::error!(
                    offset_seconds = offset,
                    %server,
                    max_offset_seconds = max,
                    "CLOCK OFF: {warning}"
                );
                journal.post(
                    EventKind::Warning,
                    None,
                    json!({"warning": warning, "check": "clock", "offset_seconds": offset,
                           "server": server, "max_offset_seconds": max}),
                );
            }
            (_, false) if was || all_failed_before => {
                tracing::info!(offset_seconds = offset, %server, "the clock is checked and within clock_max_offset again");
                journal.post(
                    EventKind::ClockRecovered,
                    None,
                    json!({"offset_seconds": offset, "server": server, "max_offset_seconds": max}),
                );
            }
            _ => tracing::debug!(offset_seconds = offset, %server, "clock checked"),
        }
    }
}

/// How often the clock is compared with the monotonic clock, to tell a jump.
const JUMP_CHECK: Duration = Duration::from_secs(1);

/// Tells a jump of the wall clock: how far it moved, beside the monotonic clock (which
/// nothing sets), since the last look.
struct Jumps {
    wall: std::time::SystemTime,
    steady: std::time::Instant,
}

impl Jumps {
    fn new() -> Self {
        Self {
            wall: std::time::SystemTime::now(),
            steady: std::time::Instant::now(),
        }
    }

    /// The jump in seconds since the last look (positive: forward), when it is past `max`.
    fn jumped(&mut self, max: Duration) -> Option<f64> {
        let (wall, steady) = (std::time::SystemTime::now(), std::time::Instant::now());
        let moved = match wall.duration_since(self.wall) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        let jump = moved - steady.duration_since(self.steady).as_secs_f64();
        (self.wall, self.steady) = (wall, steady);
        (jump.abs() > max.as_secs_f64()).then_some(jump)
    }
}

impl ClockStatus {
    /// Whether the warning in force says that no server answered.
    fn warning_no_answer(&self) -> bool {
        self.warning
            .as_deref()
            .is_some_and(|w| w.starts_with("no NTP server answered"))
    }
}

/// The warning of an offset past `clock_max_offset`.
fn exceeded_text(offset: f64, server: &str, max: f64) -> String {
    let direction = if offset > 0.0 { "behind" } else { "ahead of" };
    format!(
        "this machine's clock is {:.3} s {direction} {server} (clock_max_offset {max} s): corte \
         times, the publication gate and the lag are off by as much; fix the time service \
         (chrony, systemd-timesyncd)",
        offset.abs()
    )
}

/// One server's answer, or why there is none.
struct Answer {
    server: String,
    at: Timestamp,
    offset_seconds: Option<f64>,
    delay_seconds: f64,
    stratum: Option<u8>,
    error: Option<String>,
}

impl From<Answer> for ServerCheck {
    fn from(a: Answer) -> Self {
        Self {
            server: a.server,
            checked_at: a.at.to_string(),
            offset_seconds: a.offset_seconds,
            delay_seconds: a.offset_seconds.map(|_| a.delay_seconds),
            stratum: a.stratum,
            error: a.error,
        }
    }
}

/// What a server that did not answer in time is reported with.
fn no_answer() -> String {
    format!("no answer within {QUERY_TIMEOUT:?}")
}

/// Asks `server` the time, within [`QUERY_TIMEOUT`].
async fn ask(server: &NtpServer) -> Answer {
    let at = Timestamp::now();
    let name = server.to_string();
    let asked = tokio::time::timeout(QUERY_TIMEOUT, async {
        let addr = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .map_err(|e| format!("cannot look up {}: {e}", server.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", server.host))?;
        let bind: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let client = rsntp::AsyncSntpClient::with_config(
            rsntp::Config::default()
                .bind_address(bind)
                .timeout(QUERY_TIMEOUT),
        );
        client.synchronize(addr).await.map_err(|e| match e {
            // The client's own wait ran out before ours: the same silence.
            rsntp::SynchronizationError::IOError(io)
                if io.kind() == std::io::ErrorKind::TimedOut =>
            {
                no_answer()
            }
            other => other.to_string(),
        })
    })
    .await
    .unwrap_or_else(|_| Err(no_answer()));
    // A round trip below zero means the server claims it held the question longer than the
    // whole exchange took: its times cannot be right, and its answer would otherwise win
    // over every honest one (the shortest round trip is taken).
    let asked = asked.and_then(|result| {
        let delay = result.round_trip_delay().as_secs_f64();
        if delay < 0.0 {
            Err(format!(
                "its answer is inconsistent: it claims to have held the question {:.3} s longer \
                 than the round trip took",
                -delay
            ))
        } else {
            Ok(result)
        }
    });
    match asked {
        Ok(result) => Answer {
            server: name,
            at,
            offset_seconds: Some(result.clock_offset().as_secs_f64()),
            delay_seconds: result.round_trip_delay().as_secs_f64(),
            stratum: Some(result.stratum()),
            error: None,
        },
        Err(e) => {
            tracing::debug!(server = %name, error = %e, "NTP server gave no answer");
            Answer {
                server: name,
                at,
                offset_seconds: None,
                delay_seconds: f64::INFINITY,
                stratum: None,
                // It may quote a name server's words.
                error: Some(
                    PeerText(&e)
                        .to_string()
                        .chars()
                        .take(MAX_ERROR_CHARS)
                        .collect(),
                ),
            }
        }
    }
}

/// systemd's view of the clock: `timedatectl show -p NTPSynchronized --value`, `None` when
/// it cannot be had within [`TIMEDATECTL_TIMEOUT`]. It is not told the service manager's
/// socket ([`MANAGER_ENV`]): it would tell it its own end as the server's.
async fn ntp_synchronized() -> Option<bool> {
    let mut command = tokio::process::Command::new("timedatectl");
    for name in MANAGER_ENV {
        command.env_remove(name);
    }
    let run = command
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TIMEDATECTL_TIMEOUT, run)
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_hosts_or_addresses_with_an_optional_port() {
        for (text, shown) in [
            ("cronos.cenam.mx", "cronos.cenam.mx:123"),
            ("Pool.NTP.org:1123", "pool.ntp.org:1123"),
            ("10.0.0.1", "10.0.0.1:123"),
            ("127.0.0.1:5123", "127.0.0.1:5123"),
            ("::1", "[::1]:123"),
            ("[2001:db8::1]:123", "[2001:db8::1]:123"),
        ] {
            assert_eq!(ntp_server(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "ntp://pool.ntp.org",
            "pool.ntp.org:0",
            "pool.ntp.org:99999",
            "pool..ntp.org",
            "-pool.ntp.org",
            "pool ntp.org",
        ] {
            let err = ntp_server(bad).unwrap_err().to_string();
            assert!(err.starts_with("setting `ntp_servers`: "), "{bad}: {err}");
        }
    }
}
