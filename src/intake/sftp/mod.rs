//! The embedded SFTP server (`sftp_listen`): a channel that can do nothing but deliver packages.
//!
//! The institute connects with OpenSSH's `sftp` or `scp` (which speaks SFTP since 9.0) and a
//! key listed in `sftp_authorized_keys`. What a client sees is a virtual folder, `/`, holding
//! only the files this session uploaded and has not yet handed over ([`folder`]).
//!
//! This module is the listener: it accepts connections, drops the ones that may not even try,
//! and holds every connection to its time limits. The rest is in its parts:
//! - [`policy`]: the SSH side — keys only, what is refused, how login attempts are counted;
//! - [`folder`]: the virtual folder, its uploads and their delivery to the publisher;
//! - [`upload`]: one file being written, hashed and flushed while it arrives;
//! - [`session`]: what each session did, and each refusal, for the journal.
//!
//! # Guarantees
//! - Addresses outside `sftp_allow` are dropped before the SSH handshake, and so are
//!   connections past the places for connections still logging in (`sftp_max_startups`,
//!   `sftp_max_startups_per_address`, [`super::startups`]); both are journaled
//!   (`sftp-refused`) within the bounds of [`Throttle`], so that no flood of connections
//!   can flood the journal or the log. Those places are apart from the logged-in sessions'
//!   (`sftp_max_sessions`), so connections that never log in cannot keep an upload out.
//! - A connection is cut when it has not finished the SSH handshake within
//!   `sftp_handshake_timeout`, or logged in within `sftp_login_grace_time`, of connecting,
//!   and when its client has taken none of the server's replies for `sftp_idle_timeout`
//!   ([`stall`]), or, once logged in, has sent no SFTP request for `sftp_idle_timeout`
//!   (SSH keep-alives, which OpenSSH's `ServerAliveInterval` sends, and other messages do not
//!   count: a client left open holds no place for good), or when a file has stayed open for
//!   writing for `sftp_upload_timeout` (however slowly its client keeps writing), or at once
//!   when its client sends a request said to be longer than the SFTP server takes (256 KiB):
//!   nothing from there on is read as a request, and it costs the log one line, not one for
//!   every four bytes the client sends; or after [`policy`]'s few requests it refuses (a
//!   shell, a command, forwarding…) from a logged-in client. Whatever the session is doing,
//!   its socket is shut down, and its `sftp` subsystem works on none of the requests still
//!   waiting (sent before the cut: a close or a rename hands nothing over, a write writes
//!   nothing). The session entry says why, and names the upload discarded; a client that
//!   broke the protocol is journaled as cut for it even when its connection ended first.
//!   A client silent both ways while it logs in (when `sftp_login_grace_time` is longer
//!   than `sftp_idle_timeout`) is cut by the SSH library's silence timer, after
//!   `sftp_idle_timeout` and [`policy::SILENCE_BACKSTOP`] more, and journaled as cut for its
//!   silence, in these words, not as a connection that broke. That timer never comes before
//!   the listener's, so a cut the listener makes is never taken for it.
//! - Out of descriptors, connections wait in the kernel's queue: the run of failed accepts
//!   is logged when it begins, once a minute and when it ends ([`AcceptFailures`]).
//! - A connection runs its `sftp` subsystems one after another ([`policy`]; OpenSSH's
//!   `ControlMaster` asks for one at every `sftp` run), and every limit above holds for the
//!   connection as a whole: its time limits run on from one subsystem to the next (a
//!   connection kept open between runs is cut after `sftp_idle_timeout` without a request),
//!   and a cut stops the subsystem running.
//! - A session is journaled once its `sftp` subsystem has ended too (waited for at most
//!   [`SUBSYSTEM_END_WAIT`]), so its entry names the uploads it left unfinished, of every
//!   subsystem the connection ran: one entry a connection. A connection
//!   from an allowed address that ends neither logged in nor refused a login attempt (a port
//!   probe, a connection closed or cut in the handshake, a client that sends nothing) is
//!   journaled and logged within the bounds of [`Throttle`] as well: it is no strike towards
//!   a ban, so nothing else bounds how often it comes.
//! - An address whose connections end without logging in, after failed attempts,
//!   `sftp_ban_after` times within `sftp_ban_time` is dropped before the handshake for
//!   `sftp_ban_time` ([`super::ban`]); a connection that logs in in the end is no strike. The
//!   ban is journaled and logged once when it begins.

mod folder;
mod policy;
mod session;
mod settings;
mod stall;
mod upload;

pub(crate) use policy::ensure_host_key;

pub(crate) use settings::SftpSettings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use russh::keys::ssh_key::{PrivateKey, PublicKey};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::Channel;
use super::ban::Bans;
use super::late::{SignatureCheck, Taken};
use super::startups::{Startup, Startups, YIELD_AFTER};
use crate::http::accept::AcceptFailures;
use crate::http::refusals::Throttle;
use crate::journal::Journal;
use crate::publisher::{Fault, PublisherHandle};
use crate::store::space::Space;
use policy::{SshHandler, authorized_keys, ssh_config};
use session::{SessionStats, journal_session, refused, refused_before_handshake, with_stats};

/// Everything a running SFTP server needs.
pub(crate) struct SftpServer {
    /// Validated settings.
    pub(crate) settings: SftpSettings,
    /// Where uploads in progress are written.
    pub(crate) tmp_dir: PathBuf,
    /// The room they claim there, within the space kept free (`min_free_space`).
    pub(crate) space: Space,
    /// Largest file accepted.
    pub(crate) max_package_bytes: u64,
    /// What a signature put after its package is checked with.
    pub(crate) late_signatures: SignatureCheck,
    /// The way to the publisher.
    pub(crate) publisher: PublisherHandle,
    /// The journal.
    pub(crate) journal: Arc<Journal>,
}

/// The SFTP server's listener and keys, ready to serve.
pub(crate) struct Listening {
    listener: TcpListener,
    host_key: PrivateKey,
    keys: Vec<PublicKey>,
}

/// Reads the keys and binds the listener, so that a busy port or an unreadable key stops the
/// program before anything else happens.
pub(crate) async fn open(settings: &SftpSettings) -> anyhow::Result<Listening> {
    let host_key = ensure_host_key(&settings.host_key)?;
    let keys = authorized_keys(&settings.authorized_keys)?;
    if keys.is_empty() {
        tracing::warn!(path = %settings.authorized_keys.display(), "no SFTP key is authorized: nobody can upload");
    }
    let listener = TcpListener::bind(settings.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (setting `sftp_listen`): is another server using it?",
            settings.listen
        )
    })?;
    Ok(Listening {
        listener,
        host_key,
        keys,
    })
}

/// What every connection's task shares.
struct Shared {
    server: SftpServer,
    config: Arc<russh::server::Config>,
    keys: Vec<PublicKey>,
    /// Places for logged-in sessions.
    sessions: Arc<Semaphore>,
    bans: Bans,
    /// The packages sessions handed over lately (before this start too, as the journal
    /// tells), for evidence sent after its package.
    taken: Taken,
    /// Which connections that ended neither logged in nor refused a login attempt are
    /// journaled.
    never_tried: Throttle,
}

/// Accepts SFTP sessions until `shutdown`.
pub(crate) async fn serve(
    server: SftpServer,
    listening: Listening,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Listening {
        listener,
        host_key,
        keys,
    } = listening;
    let settings = &server.settings;
    let config = Arc::new(ssh_config(settings, host_key));
    tracing::info!(address = %listener.local_addr()?, "SFTP intake ready");
    let startups = Arc::new(Startups::new(
        settings.max_startups,
        settings.max_startups_per_address,
    ));
    let refusals = Throttle::default();
    let mut failing = AcceptFailures::new("the institute's SFTP connections");
    let taken = Taken::from_journal(&server.journal, Channel::Sftp);
    let shared = Arc::new(Shared {
        sessions: Arc::new(Semaphore::new(settings.max_sessions)),
        bans: Bans::new(settings.ban_after, settings.ban_time),
        config,
        keys,
        server,
        taken,
        never_tried: Throttle::default(),
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted.and_then(|(s, peer)| Ok((with_cutter(s)?, peer))) {
                Ok(a) => {
                    failing.recovered();
                    a
                }
                Err(e) => {
                    // Out of descriptors (for the socket, or its second handle): one run of
                    // failures, however often an accept succeeds in between.
                    failing.failed(&e).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let ip = peer.ip().to_canonical();
        let journal = &shared.server.journal;
        if !shared
            .server
            .settings
            .allow
            .iter()
            .any(|net| net.contains(&ip))
        {
            refused_before_handshake(journal, &refusals, peer, "address not in sftp_allow");
            drop(stream);
            continue;
        }
        if shared.bans.banned_until(ip, Instant::now()).is_some() {
            // Journaled and logged once, when the ban began; a reconnecting client must not
            // flood either.
            tracing::debug!(%peer, "SFTP connection dropped: the address is banned");
            drop(stream);
            continue;
        }
        let startup = match startups.admit(ip, Instant::now()) {
            Ok(startup) => startup,
            Err(reason) => {
                refused_before_handshake(journal, &refusals, peer, &reason);
                continue;
            }
        };
        tokio::spawn(connection(shared.clone(), stream, peer, startup));
    }
}

/// An accepted connection and a second handle on its socket, to cut it in whatever state
/// the SSH session is.
fn with_cutter(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let cutter = stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(stream)?, cutter))
}

/// Longest wait, once a connection has ended, for its `sftp` subsystem to end (it may be
/// handing a package over) before the session is journaled.
const SUBSYSTEM_END_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a connection is: the SSH handshake, authentication, logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Authenticating,
    LoggedIn,
}

/// Runs one connection to its end under the handshake and login time limits, then journals
/// it and counts a failed login against its address.
async fn connection(
    shared: Arc<Shared>,
    (stream, cutter): (tokio::net::TcpStream, std::net::TcpStream),
    peer: SocketAddr,
    startup: Startup,
) {
    let _ = stream.set_nodelay(true);
    let stats = Arc::new(Mutex::new(SessionStats::default()));
    let (phase_tx, mut phase) = watch::channel(Phase::Handshake);
    let traffic = Arc::new(stall::Traffic::default());
    // Held by the `sftp` subsystem while it runs: closed once it has ended.
    let (subsystem, mut subsystem_ended) = watch::channel(());
    let handler = SshHandler::new(
        peer,
        shared.clone(),
        stats.clone(),
        phase_tx,
        traffic.clone(),
        subsystem,
    );
    let mut run = Box::pin(async {
        russh::server::run_stream(shared.config.clone(), stream, handler)
            .await?
            .await
    });
    let settings = &shared.server.settings;
    let started = tokio::time::Instant::now();
    let mut startup = Some(startup);
    let mut phase_open = true;
    let cut = loop {
        let now = *phase.borrow();
        tokio::select! {
            // The connection ended. If the client broke the protocol before (its end and the
            // break may be seen at once, and `select!` takes either), that is why; else a
            // connection that broke is the transport's fault.
            ended = &mut run => break match stall::broken_now(&traffic) {
                Some(why) => {
                    traffic.cut();
                    Some((format!("cut: {why}"), Fault::Sender))
                }
                None => ended.err().map(|e| {
                    if silent(&e) {
                        traffic.cut();
                        (format!(
                            "cut: nothing came or went on the connection for over {} \
                             (sftp_idle_timeout)",
                            humantime(settings.idle_timeout)
                        ), Fault::Sender)
                    } else {
                        (format!("{e:#}"), Fault::Transport)
                    }
                }),
            },
            changed = phase.changed(), if phase_open => match changed {
                Err(_) => phase_open = false,
                Ok(()) => match *phase.borrow() {
                    Phase::Authenticating => {
                        if let Some(s) = &startup {
                            s.handshake_done();
                        }
                    }
                    Phase::LoggedIn => {
                        startup = None;
                        traffic.logged_in();
                    }
                    Phase::Handshake => {}
                },
            },
            _ = tokio::time::sleep_until(started + settings.handshake_timeout),
                if now == Phase::Handshake => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: the SSH handshake was not finished within {} (sftp_handshake_timeout)",
                    humantime(settings.handshake_timeout)
                )).await;
            }
            _ = tokio::time::sleep_until(started + settings.login_grace_time),
                if now != Phase::LoggedIn => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: not logged in within {} (sftp_login_grace_time)",
                    humantime(settings.login_grace_time)
                )).await;
            }
            () = stall::waited(&traffic, settings.idle_timeout) => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: the client took none of this server's replies for {} \
                     (sftp_idle_timeout)",
                    humantime(settings.idle_timeout)
                )).await;
            }
            () = stall::quiet(&traffic, settings.idle_timeout) => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: the client sent no SFTP request for {} (sftp_idle_timeout); \
                     keep-alive messages do not count",
                    humantime(settings.idle_timeout)
                )).await;
            }
            why = stall::broken(&traffic) => {
                break cut_off(&cutter, &traffic, &mut run, format!("cut: {why}")).await;
            }
            name = session::upload_overdue(&stats, settings.upload_timeout) => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: {name} was still open for writing {} after it was opened \
                     (sftp_upload_timeout); nothing of it is kept",
                    humantime(settings.upload_timeout)
                )).await;
            }
            () = told_to_give_way(&mut startup) => {
                break cut_off(&cutter, &traffic, &mut run, format!(
                    "cut: still in the SSH handshake after {}, when every place for \
                     connections logging in was taken (sftp_max_startups)",
                    humantime(YIELD_AFTER)
                )).await;
            }
        }
    };
    drop(startup);
    if let Some((reason, Fault::Sender)) = &cut {
        if with_stats(&stats, |s| s.tried_to_log_in()) {
            tracing::warn!(%peer, reason, "SFTP connection cut");
        } else {
            // Logged with its journal entry, if it has one.
            tracing::debug!(%peer, reason, "SFTP connection cut");
        }
    }
    // The session is over: its subsystem sees the channel end, and notes what it left.
    drop(run);
    traffic.end();
    let _ = tokio::time::timeout(SUBSYSTEM_END_WAIT, subsystem_ended.changed()).await;
    let stats = with_stats(&stats, |s| s.clone());
    journal_session(
        &shared.server.journal,
        &shared.never_tried,
        peer,
        &stats,
        cut.as_ref(),
    );
    let ip = peer.ip().to_canonical();
    if stats.fingerprint.is_some() {
        shared.bans.clear(ip);
    } else if stats.failed_auth > 0
        && let Some(time) = shared.bans.strike(ip, Instant::now())
    {
        refused(
            &shared.server.journal,
            peer,
            &format!(
                "banned for {} after {} connections that failed to log in \
                 (sftp_ban_after, sftp_ban_time)",
                humantime(time),
                settings.ban_after
            ),
        );
    }
}

/// Resolves when a connection still logging in must give way to a newer one; never once it
/// has logged in.
async fn told_to_give_way(startup: &mut Option<Startup>) {
    let told = match startup {
        Some(s) => (&mut s.cut).await.is_ok(),
        None => false,
    };
    if !told {
        // Logged in, or the places went with the server: never.
        std::future::pending::<()>().await;
    }
}

/// Whether the SSH session ended with `error` because its connection was silent both ways for
/// `sftp_idle_timeout` and [`policy::SILENCE_BACKSTOP`] more: a client logging in, when
/// `sftp_login_grace_time` is longer than that (once logged in, the listener's own limits cut
/// first, saying which).
fn silent(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<russh::Error>(),
        Some(russh::Error::InactivityTimeout)
    )
}

/// Cuts a connection: its `sftp` subsystem first (it works on none of the requests its client
/// sent, and waits no more to reply), then its socket (whatever the SSH session is doing, its
/// reads end and its writes fail); lets the session wind down, and returns `reason`, the
/// sender's fault.
async fn cut_off<F: std::future::Future + Unpin>(
    socket: &std::net::TcpStream,
    traffic: &stall::Traffic,
    session: &mut F,
    reason: String,
) -> Option<(String, Fault)> {
    traffic.cut();
    let _ = socket.shutdown(std::net::Shutdown::Both);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session).await;
    Some((reason, Fault::Sender))
}

/// A ban's length in words (`15m`, `1h 30m`).
fn humantime(d: std::time::Duration) -> String {
    jiff::SignedDuration::try_from(d)
        .map(|d| format!("{d:#}"))
        .unwrap_or_else(|_| format!("{}s", d.as_secs()))
}
