//! The embedded SFTP server (`sftp_listen`): a channel that can do nothing but deliver packages.
//!
//! The institute connects with OpenSSH's `sftp` or `scp` (which speaks SFTP since 9.0) and a
//! key listed in `sftp_authorized_keys`. What a client sees is a virtual folder, `/`, holding
//! only the files this session uploaded and has not yet handed over. Uploads are written to a
//! hidden temporary file in `<data_dir>/tmp` and handed to the publisher
//! ([`PublisherHandle::ingest`], channel `sftp`) when the file is closed, or, for a hidden name
//! (`.name.part`), once the client renames it to its final name. A `<name>.sha256` or
//! `<name>.minisig` uploaded in the same session before the package goes with it as evidence.
//!
//! # Guarantees
//! - Addresses outside `sftp_allow` are dropped before the SSH handshake, and so are
//!   connections past the places for connections still logging in (`sftp_max_startups`,
//!   `sftp_max_startups_per_address`, [`super::startups`]); both are journaled
//!   (`sftp-refused`). Those places are apart from the logged-in sessions'
//!   (`sftp_max_sessions`), so connections that never log in cannot keep an upload out.
//! - A connection is cut when it has not finished the SSH handshake within
//!   `sftp_handshake_timeout`, or logged in within `sftp_login_grace_time`, of connecting;
//!   whatever the session is doing, its socket is shut down. The session entry says why.
//! - Public keys only; no password, keyboard-interactive, shell, exec, pty, forwarding, agent
//!   or subsystem other than `sftp`. A connection is cut after `sftp_max_auth_attempts`
//!   failed attempts (each key offered and refused is one; OpenSSH's first `none` probe is
//!   not), and after `sftp_idle_timeout` of silence. An address whose connections end without
//!   logging in, after failed attempts, `sftp_ban_after` times within `sftp_ban_time` is
//!   dropped before the handshake for `sftp_ban_time` ([`super::ban`]); a connection that logs
//!   in in the end is no strike. The ban is journaled once when it begins.
//! - Every client path is normalised before use: `..`, sub-folders (hence any absolute path
//!   other than `/<name>`), names with control characters (a newline, a tab), hidden evidence
//!   names and names the publisher would refuse are refused with a message, journaled with
//!   the session. Nothing on disk is ever named by the client: no path, symlink
//!   or rename can reach outside the intake, and no symlink or folder is made.
//! - Nothing can be read back (files open only for writing), and nothing handed over can be
//!   deleted or renamed; a session may remove only its own upload still in progress.
//! - A file over `max_package_bytes`, or a session over `sftp_max_session_bytes`, fails at
//!   the write that passes the limit; the partial file is discarded, never handed over.
//! - Each session is journaled once it ends (`sftp-session`: address, key fingerprint, user,
//!   files with their outcome, bytes, refusals).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use jiff::Timestamp;
use russh::keys::ssh_key::{AuthorizedKeys, HashAlg, LineEnding, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use russh_sftp::protocol::{
    Attrs, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
};
use russh_sftp::server::StatusReply;
use serde_json::json;
use tempfile::TempPath;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::ban::Bans;
use super::file::read_evidence;
use super::startups::{Startup, Startups, YIELD_AFTER};
use crate::config::SftpSettings;
use crate::journal::{EventKind, Journal};
use crate::package::{MAX_EVIDENCE_BYTES, PackageName, is_evidence};
use crate::publisher::{Fault, Outcome, PublisherHandle};

/// Most files one session may hold open at once.
const MAX_OPEN_HANDLES: usize = 16;
/// Most uploads one session may keep waiting for a rename.
const MAX_PENDING: usize = 64;
/// Most refusals listed in a session's journal entry (the count is always exact).
const MAX_LISTED_REFUSALS: usize = 32;
/// Most files listed in a session's journal entry (the count is always exact).
const MAX_LISTED_FILES: usize = 256;
/// Longest file name accepted from a client, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Everything a running SFTP server needs.
pub(crate) struct SftpServer {
    /// Validated settings.
    pub(crate) settings: SftpSettings,
    /// Where uploads in progress are written.
    pub(crate) tmp_dir: PathBuf,
    /// Largest file accepted.
    pub(crate) max_package_bytes: u64,
    /// The way to the publisher.
    pub(crate) publisher: PublisherHandle,
    /// The journal.
    pub(crate) journal: Arc<Journal>,
}

/// Reads the host key at `path`, or makes an Ed25519 one there (mode 0600) if it is missing.
pub(crate) fn ensure_host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return PrivateKey::read_openssh_file(path).with_context(|| {
            format!(
                "cannot read the SFTP host key {} (setting `sftp_host_key`); it must be an \
                 unencrypted OpenSSH private key",
                path.display()
            )
        });
    }
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| anyhow::anyhow!("no randomness available to make the SFTP host key"))?;
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::from(pair);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    key.write_openssh_file(path, LineEnding::LF)
        .with_context(|| format!("cannot write the SFTP host key {}", path.display()))?;
    tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(HashAlg::Sha256), "made the SFTP host key");
    Ok(key)
}

/// Reads the keys allowed to upload.
fn authorized_keys(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let entries = AuthorizedKeys::read_file(path).with_context(|| {
        format!(
            "cannot read the SFTP keys {} (setting `sftp_authorized_keys`, OpenSSH \
             authorized_keys format)",
            path.display()
        )
    })?;
    Ok(entries
        .into_iter()
        .map(|e| e.public_key().clone())
        .collect())
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
    let config = Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host_key],
        inactivity_timeout: Some(settings.idle_timeout),
        // russh counts the `none` probe OpenSSH clients send first; OpenSSH does not.
        max_auth_attempts: settings.max_auth_attempts.saturating_add(1),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        ..Default::default()
    });
    tracing::info!(address = %listener.local_addr()?, "SFTP intake ready");
    let startups = Arc::new(Startups::new(
        settings.max_startups,
        settings.max_startups_per_address,
    ));
    let shared = Arc::new(Shared {
        sessions: Arc::new(Semaphore::new(settings.max_sessions)),
        bans: Bans::new(settings.ban_after, settings.ban_time),
        config,
        keys,
        server,
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "SFTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
            refused(journal, peer, "address not in sftp_allow");
            drop(stream);
            continue;
        }
        if shared.bans.banned_until(ip, Instant::now()).is_some() {
            // Journaled once, when the ban began; a reconnecting client must not flood it.
            tracing::warn!(%peer, "SFTP connection dropped: the address is banned");
            drop(stream);
            continue;
        }
        let startup = match startups.admit(ip, Instant::now()) {
            Ok(startup) => startup,
            Err(reason) => {
                refused(journal, peer, &reason);
                continue;
            }
        };
        tokio::spawn(connection(shared.clone(), stream, peer, startup));
    }
}

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
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    startup: Startup,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to cut it in whatever state the SSH session is.
    let Ok((stream, cutter)) = stream.into_std().and_then(|s| {
        let cutter = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, cutter))
    }) else {
        tracing::warn!(%peer, "SFTP connection dropped: its socket could not be set up");
        return;
    };
    let stats = Arc::new(Mutex::new(SessionStats::default()));
    let (phase_tx, mut phase) = watch::channel(Phase::Handshake);
    let handler = SshHandler {
        peer,
        shared: shared.clone(),
        stats: stats.clone(),
        channels: HashMap::new(),
        sftp_started: false,
        phase: phase_tx,
        session: None,
    };
    let run = async {
        russh::server::run_stream(shared.config.clone(), stream, handler)
            .await?
            .await
    };
    tokio::pin!(run);
    let settings = &shared.server.settings;
    let started = tokio::time::Instant::now();
    let mut startup = Some(startup);
    let mut phase_open = true;
    let cut = loop {
        let now = *phase.borrow();
        tokio::select! {
            // The connection broke, or the client broke the protocol: the transport's fault.
            ended = &mut run => break ended.err().map(|e| (format!("{e:#}"), Fault::Transport)),
            changed = phase.changed(), if phase_open => match changed {
                Err(_) => phase_open = false,
                Ok(()) => match *phase.borrow() {
                    Phase::Authenticating => {
                        if let Some(s) = &startup {
                            s.handshake_done();
                        }
                    }
                    Phase::LoggedIn => startup = None,
                    Phase::Handshake => {}
                },
            },
            _ = tokio::time::sleep_until(started + settings.handshake_timeout),
                if now == Phase::Handshake => {
                break cut_off(&cutter, &mut run, format!(
                    "cut: the SSH handshake was not finished within {} (sftp_handshake_timeout)",
                    humantime(settings.handshake_timeout)
                )).await;
            }
            _ = tokio::time::sleep_until(started + settings.login_grace_time),
                if now != Phase::LoggedIn => {
                break cut_off(&cutter, &mut run, format!(
                    "cut: not logged in within {} (sftp_login_grace_time)",
                    humantime(settings.login_grace_time)
                )).await;
            }
            () = told_to_give_way(&mut startup) => {
                break cut_off(&cutter, &mut run, format!(
                    "cut: still in the SSH handshake after {}, when every place for \
                     connections logging in was taken (sftp_max_startups)",
                    humantime(YIELD_AFTER)
                )).await;
            }
        }
    };
    drop(startup);
    let stats = match stats.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    journal_session(&shared.server.journal, peer, &stats, cut.as_ref());
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

/// Cuts a connection's socket (whatever the SSH session is doing, its reads end and its
/// writes fail), lets the session wind down, and returns `reason`.
async fn cut_off<F: std::future::Future + Unpin>(
    socket: &std::net::TcpStream,
    session: &mut F,
    reason: String,
) -> Option<(String, Fault)> {
    tracing::warn!(reason, "SFTP connection cut");
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

/// Journals a connection dropped before authentication.
fn refused(journal: &Journal, peer: SocketAddr, reason: &str) {
    tracing::warn!(%peer, reason, "SFTP connection refused");
    journal.post(
        EventKind::SftpRefused,
        None,
        json!({"address": peer.to_string(), "reason": reason}),
    );
}

/// Journals a session's end; `ended` is why it ended early, and whose fault that was.
fn journal_session(
    journal: &Journal,
    peer: SocketAddr,
    stats: &SessionStats,
    ended: Option<&(String, Fault)>,
) {
    let detail = json!({
        "address": peer.to_string(),
        "user": stats.user,
        "fingerprint": stats.fingerprint,
        "authenticated": stats.fingerprint.is_some(),
        "failed_auth": stats.failed_auth,
        "files": stats.files,
        "file_count": stats.file_count,
        "bytes": stats.bytes,
        "refusals": stats.refusals,
        "refusal_count": stats.refusal_count,
        "error": ended.map(|(error, _)| error),
        "fault": ended.map(|(_, fault)| fault),
    });
    tracing::info!(%peer, files = stats.file_count, bytes = stats.bytes, "SFTP session ended");
    journal.post(EventKind::SftpSession, None, detail);
}

/// What one session did, for the journal.
#[derive(Debug, Clone, Default)]
struct SessionStats {
    user: Option<String>,
    fingerprint: Option<String>,
    failed_auth: u64,
    files: Vec<serde_json::Value>,
    file_count: u64,
    bytes: u64,
    refusals: Vec<String>,
    refusal_count: u64,
}

fn with_stats(stats: &Mutex<SessionStats>, f: impl FnOnce(&mut SessionStats)) {
    match stats.lock() {
        Ok(mut s) => f(&mut s),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// One SSH connection.
struct SshHandler {
    peer: SocketAddr,
    shared: Arc<Shared>,
    stats: Arc<Mutex<SessionStats>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    sftp_started: bool,
    /// Tells the connection's task how far the connection got.
    phase: watch::Sender<Phase>,
    /// The place of a logged-in session, held to the end.
    session: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl SshHandler {
    fn refuse(&self, what: String) {
        tracing::warn!(refusal = %what, "SFTP request refused");
        with_stats(&self.stats, |s| {
            s.refusal_count += 1;
            if s.refusals.len() < MAX_LISTED_REFUSALS {
                s.refusals.push(what);
            }
        });
    }
}

impl russh::server::Handler for SshHandler {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let known = self
            .shared
            .keys
            .iter()
            .any(|k| k.key_data() == offer.public_key.key_data());
        if !known {
            with_stats(&self.stats, |s| s.failed_auth += 1);
        }
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let known = self
            .shared
            .keys
            .iter()
            .any(|k| k.key_data() == key.public_key.key_data());
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        with_stats(&self.stats, |s| {
            if known {
                s.user = Some(user.chars().take(64).collect());
                s.fingerprint = Some(fingerprint);
            } else {
                s.failed_auth += 1;
            }
        });
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        // Asked when the client starts authenticating: the SSH handshake is over.
        let _ = self.phase.send(Phase::Authenticating);
        Ok(None)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        match self.shared.sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                self.session = Some(permit);
                let _ = self.phase.send(Phase::LoggedIn);
            }
            Err(_) => {
                refused(
                    &self.shared.server.journal,
                    self.peer,
                    "too many SFTP sessions (sftp_max_sessions)",
                );
                session.disconnect(
                    russh::Disconnect::TooManyConnections,
                    "too many SFTP sessions at once; try again in a moment",
                    "en",
                )?;
            }
        }
        Ok(())
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        with_stats(&self.stats, |s| s.failed_auth += 1);
        self.refuse("password authentication (only public keys are accepted)".to_owned());
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.session.is_none() {
            self.refuse("a session channel without a place (sftp_max_sessions)".to_owned());
            return Ok(()); // dropping the reply refuses the channel
        }
        if self.channels.len() >= 2 || self.sftp_started {
            self.refuse("a further session channel".to_owned());
            return Ok(()); // dropping the reply refuses the channel
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The client is done (scp checks the exit status its ssh reports).
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("shell".to_owned());
        self.deny(
            channel,
            session,
            "no shell: this server only receives packages over SFTP\r\n",
        )
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command: String = String::from_utf8_lossy(data).chars().take(80).collect();
        self.refuse(format!("exec {command:?}"));
        self.deny(
            channel,
            session,
            "no commands: this server only receives packages over SFTP\r\n",
        )
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" || self.sftp_started {
            let name: String = name.chars().take(64).collect();
            self.refuse(format!("subsystem {name:?}"));
            return self.deny(
                channel_id,
                session,
                "only the sftp subsystem is offered here\r\n",
            );
        }
        let Some(channel) = self.channels.remove(&channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        self.sftp_started = true;
        session.channel_success(channel_id)?;
        let fingerprint = match self.stats.lock() {
            Ok(s) => s.fingerprint.clone(),
            Err(p) => p.into_inner().fingerprint.clone(),
        };
        let sftp = SftpHandler {
            origin: format!(
                "{} {}",
                self.peer,
                fingerprint.as_deref().unwrap_or("(no key)")
            ),
            shared: self.shared.clone(),
            stats: self.stats.clone(),
            handles: HashMap::new(),
            next_handle: 0,
            pending: HashMap::new(),
            evidence: HashMap::new(),
            session_bytes: 0,
            initialized: false,
        };
        russh_sftp::server::run(channel.into_stream(), sftp).await;
        Ok(())
    }
}

impl SshHandler {
    /// Refuses a request on `channel` with a message on its error stream, and closes it.
    fn deny(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
        message: &str,
    ) -> Result<(), anyhow::Error> {
        session.channel_failure(channel)?;
        session.extended_data(channel, 1, message.as_bytes().to_vec())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        self.channels.remove(&channel);
        Ok(())
    }
}

/// An upload written by this session.
struct Upload {
    /// The temporary file (removed when dropped).
    tmp: TempPath,
    /// Bytes written so far (the highest offset reached).
    len: u64,
}

/// An open handle.
enum OpenHandle {
    /// A file open for writing, with its client name.
    File {
        name: String,
        file: Arc<std::fs::File>,
        upload: Upload,
    },
    /// The root folder being listed; `true` once listed.
    Dir(bool),
}

/// One SFTP subsystem: the virtual intake folder of one session.
struct SftpHandler {
    /// The client's address and key fingerprint, for the journal.
    origin: String,
    shared: Arc<Shared>,
    stats: Arc<Mutex<SessionStats>>,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
    /// Closed uploads under a hidden name, waiting to be renamed to their final name.
    pending: HashMap<String, Upload>,
    /// Text of `.sha256` / `.minisig` files uploaded this session, by their name.
    evidence: HashMap<String, String>,
    session_bytes: u64,
    initialized: bool,
}

/// A refusal with its message, as the client shows it.
fn deny(code: StatusCode, message: impl Into<String>) -> StatusReply {
    StatusReply::new(code).with_message(message)
}

fn ok_status(id: u32, message: &str) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: message.to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

/// What a client path names in the virtual folder.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// The folder itself.
    Root,
    /// A file in it.
    File(String),
}

/// Normalises a client path. Only `/`, `.` and `/<name>` (or `<name>`) exist.
fn resolve(path: &str) -> Result<Target, StatusReply> {
    if path.len() > 4096 || path.contains('\\') {
        return Err(deny(
            StatusCode::PermissionDenied,
            "refused: the path is too long or holds backslash characters",
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(deny(
            StatusCode::PermissionDenied,
            "refused: names with control characters (a newline, a tab, NUL…) are not taken; \
             use a plain name",
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(deny(
                    StatusCode::PermissionDenied,
                    "refused: `..` is not allowed; only the intake folder `/` can be reached",
                ));
            }
            p => parts.push(p),
        }
    }
    match parts.as_slice() {
        [] => Ok(Target::Root),
        [name] if name.len() <= MAX_NAME_BYTES => Ok(Target::File((*name).to_owned())),
        [_] => Err(deny(
            StatusCode::PermissionDenied,
            format!("refused: names are limited to {MAX_NAME_BYTES} bytes"),
        )),
        _ => Err(deny(
            StatusCode::PermissionDenied,
            format!(
                "refused: {path:?} is outside the intake folder; upload into `/` only (no \
                 sub-folders, no absolute paths elsewhere)"
            ),
        )),
    }
}

/// Whether the publisher takes `name` as a package file name (not hidden, no folders).
fn is_final_name(name: &str) -> bool {
    PackageName::new(name).is_some()
}

fn file_attrs(len: u64) -> FileAttributes {
    FileAttributes {
        size: Some(len),
        permissions: Some(0o100_600),
        ..FileAttributes::empty()
    }
}

fn dir_attrs() -> FileAttributes {
    FileAttributes {
        permissions: Some(0o040_300),
        ..FileAttributes::empty()
    }
}

impl SftpHandler {
    /// Notes a refusal in the session's journal entry and returns it for the client.
    fn refuse(&self, what: &str, reply: StatusReply) -> StatusReply {
        let message = reply.error_message.clone().unwrap_or_default();
        tracing::warn!(request = what, %message, "SFTP request refused");
        with_stats(&self.stats, |s| {
            s.refusal_count += 1;
            if s.refusals.len() < MAX_LISTED_REFUSALS {
                s.refusals.push(format!("{what}: {message}"));
            }
        });
        reply
    }

    fn resolve_file(&self, what: &str, path: &str) -> Result<String, StatusReply> {
        match resolve(path).map_err(|r| self.refuse(what, r))? {
            Target::Root => Err(self.refuse(
                what,
                deny(
                    StatusCode::Failure,
                    "refused: `/` is the intake folder, not a file",
                ),
            )),
            Target::File(name) => Ok(name),
        }
    }

    fn new_handle(&mut self, handle: OpenHandle) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_OPEN_HANDLES {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::Failure,
                    format!("refused: at most {MAX_OPEN_HANDLES} files open at once"),
                ),
            ));
        }
        self.next_handle += 1;
        let id = self.next_handle.to_string();
        self.handles.insert(id.clone(), handle);
        Ok(id)
    }

    /// Hands a complete upload to the publisher, or keeps evidence for its package.
    async fn deliver(
        &mut self,
        id: u32,
        name: String,
        upload: Upload,
    ) -> Result<Status, StatusReply> {
        if is_evidence(&name) {
            let text = (upload.len <= MAX_EVIDENCE_BYTES)
                .then(|| read_evidence(&upload.tmp))
                .flatten();
            let Some(text) = text else {
                return Err(self.refuse(
                    "close",
                    deny(
                        StatusCode::Failure,
                        format!("refused: {name} is not a text evidence file of at most 64 KiB"),
                    ),
                ));
            };
            if self.evidence.len() >= MAX_PENDING {
                return Err(self.refuse(
                    "close",
                    deny(
                        StatusCode::Failure,
                        "refused: too many evidence files this session",
                    ),
                ));
            }
            self.evidence.insert(name, text);
            return Ok(ok_status(id, "evidence kept for its package"));
        }
        let Some(package) = PackageName::new(&name) else {
            return Err(self.refuse(
                "close",
                deny(StatusCode::Failure, "refused: not a package file name"),
            ));
        };
        let received = super::Received {
            sidecar: self.evidence.remove(&format!("{name}.sha256")),
            signature: self.evidence.remove(&format!("{name}.minisig")),
            name: package,
            path: upload.tmp.to_path_buf(),
            channel: super::Channel::Sftp,
            origin: Some(self.origin.clone()),
            received_at: Timestamp::now(),
        };
        let failed = |e: &str| deny(StatusCode::Failure, format!("not delivered: {e}"));
        let Ok(outcome) = self.shared.server.publisher.ingest(received).await else {
            tracing::error!(%name, "an SFTP upload was not delivered: the publisher is not running");
            return Err(failed(
                "the server cannot take packages now (it is stopping or restarting); upload it \
                 again shortly",
            ));
        };
        drop(upload); // archived (or refused) by now: the temporary copy goes
        let entry = json!({"name": name, "outcome": outcome});
        with_stats(&self.stats, |s| {
            s.file_count += 1;
            if s.files.len() < MAX_LISTED_FILES {
                s.files.push(entry);
            }
        });
        match outcome {
            Outcome::Published { corte, .. } => {
                Ok(ok_status(id, &format!("delivered: corte {corte} is live")))
            }
            Outcome::Duplicate { .. } => Ok(ok_status(id, "delivered: already received before")),
            Outcome::Older { corte, .. } => Ok(ok_status(
                id,
                &format!("delivered: corte {corte} is older than the live one; archived"),
            )),
            Outcome::Held { corte, .. } => Ok(ok_status(
                id,
                &format!("delivered: corte {corte} is held for an operator (see its corte time)"),
            )),
            Outcome::Rejected { reason, .. } => Err(deny(
                StatusCode::Failure,
                format!("delivered but rejected: {reason}"),
            )),
            Outcome::Failed { error, .. } => Err(failed(&format!(
                "this server failed to keep it (not a fault of the package): {error}; upload it \
                 again later"
            ))),
        }
    }
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        deny(
            StatusCode::OpUnsupported,
            "not offered: this server only receives uploads",
        )
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<russh_sftp::protocol::Version, Self::Error> {
        if self.initialized {
            return Err(deny(
                StatusCode::BadMessage,
                "the session is already set up",
            ));
        }
        self.initialized = true;
        Ok(russh_sftp::protocol::Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let name = self.resolve_file("open", &filename)?;
        if pflags.contains(OpenFlags::READ) || !pflags.contains(OpenFlags::WRITE) {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {name} cannot be read; this server only receives uploads"),
                ),
            ));
        }
        if name.starts_with('.') && is_evidence(&name)
            || !name.starts_with('.') && !is_final_name(&name)
        {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {name:?} is not a name the intake takes"),
                ),
            ));
        }
        let tmp = tempfile::Builder::new()
            .prefix(".sftp-")
            .tempfile_in(&self.shared.server.tmp_dir)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot create an SFTP upload file");
                deny(StatusCode::Failure, "the server cannot store uploads now")
            })?;
        let (file, tmp) = tmp.into_parts();
        let handle = self.new_handle(OpenHandle::File {
            name,
            file: Arc::new(file),
            upload: Upload { tmp, len: 0 },
        })?;
        Ok(Handle { id, handle })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let limit = self.shared.server.max_package_bytes;
        let session_limit = self.shared.server.settings.max_session_bytes;
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let end = offset.saturating_add(len);
        let Some(OpenHandle::File { name, file, upload }) = self.handles.get_mut(&handle) else {
            return Err(deny(StatusCode::Failure, "no such open file"));
        };
        let over = if end > limit {
            Some(format!(
                "refused: {name} is larger than the limit of {limit} bytes (max_package_bytes); \
                 nothing of it is kept"
            ))
        } else if self.session_bytes.saturating_add(len) > session_limit {
            Some(format!(
                "refused: this session passed its limit of {session_limit} bytes \
                 (sftp_max_session_bytes); nothing of {name} is kept"
            ))
        } else {
            None
        };
        if let Some(message) = over {
            self.handles.remove(&handle); // drops the partial file
            return Err(self.refuse("write", deny(StatusCode::Failure, message)));
        }
        // The disk may be slow: written off the async threads that serve visitors.
        let written = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || file.write_all_at(&data, offset)).await
        };
        if let Err(e) = written.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
            tracing::error!(error = %e, "cannot write an SFTP upload");
            self.handles.remove(&handle);
            return Err(deny(
                StatusCode::Failure,
                "the server cannot store this upload now",
            ));
        }
        upload.len = upload.len.max(end);
        self.session_bytes += len;
        with_stats(&self.stats, |s| s.bytes += len);
        Ok(ok_status(id, "Ok"))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(OpenHandle::Dir(_)) => Ok(ok_status(id, "Ok")),
            Some(OpenHandle::File { name, file, upload }) => {
                drop(file);
                if name.starts_with('.') {
                    if self.pending.len() >= MAX_PENDING {
                        return Err(self.refuse(
                            "close",
                            deny(
                                StatusCode::Failure,
                                "refused: too many uploads wait for a rename",
                            ),
                        ));
                    }
                    self.pending.insert(name, upload);
                    return Ok(ok_status(
                        id,
                        "kept; rename it to its final name to deliver it",
                    ));
                }
                self.deliver(id, name, upload).await
            }
            None => Err(deny(StatusCode::Failure, "no such handle")),
        }
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let old = self.resolve_file("rename", &oldpath)?;
        let new = self.resolve_file("rename", &newpath)?;
        let Some(upload) = self.pending.remove(&old) else {
            return Err(self.refuse(
                "rename",
                deny(
                    StatusCode::PermissionDenied,
                    format!(
                        "refused: {old:?} is not an upload of this session waiting for its \
                         name; files handed over cannot be renamed"
                    ),
                ),
            ));
        };
        if new.starts_with('.') {
            if is_evidence(&new) {
                self.pending.insert(old, upload);
                return Err(self.refuse(
                    "rename",
                    deny(
                        StatusCode::PermissionDenied,
                        format!("refused: {new:?} is not a name the intake takes"),
                    ),
                ));
            }
            self.pending.insert(new, upload);
            return Ok(ok_status(id, "Ok"));
        }
        if !is_final_name(&new) {
            self.pending.insert(old, upload);
            return Err(self.refuse(
                "rename",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {new:?} is not a name the intake takes"),
                ),
            ));
        }
        self.deliver(id, new, upload).await
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let name = self.resolve_file("remove", &filename)?;
        if self.pending.remove(&name).is_some() {
            return Ok(ok_status(id, "Ok"));
        }
        Err(self.refuse(
            "remove",
            deny(
                StatusCode::PermissionDenied,
                format!("refused: {name:?} cannot be deleted; files handed over stay"),
            ),
        ))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        match resolve(&path).map_err(|r| self.refuse("opendir", r))? {
            Target::Root => {
                let handle = self.new_handle(OpenHandle::Dir(false))?;
                Ok(Handle { id, handle })
            }
            Target::File(_) => Err(deny(StatusCode::NoSuchFile, "no such folder")),
        }
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let names: Vec<File> = self
            .pending
            .iter()
            .map(|(name, u)| File::new(name.clone(), file_attrs(u.len)))
            .collect();
        match self.handles.get_mut(&handle) {
            Some(OpenHandle::Dir(done)) if !*done => {
                *done = true;
                Ok(Name { id, files: names })
            }
            Some(OpenHandle::Dir(_)) => Err(StatusReply::new(StatusCode::Eof)),
            _ => Err(deny(StatusCode::Failure, "no such folder handle")),
        }
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let shown = match resolve(&path).map_err(|r| self.refuse("realpath", r))? {
            Target::Root => "/".to_owned(),
            Target::File(name) => format!("/{name}"),
        };
        Ok(Name {
            id,
            files: vec![File::dummy(shown)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.attrs_of(id, &path)
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.attrs_of(id, &path)
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.handles.get(&handle) {
            Some(OpenHandle::File { upload, .. }) => Ok(Attrs {
                id,
                attrs: file_attrs(upload.len),
            }),
            Some(OpenHandle::Dir(_)) => Ok(Attrs {
                id,
                attrs: dir_attrs(),
            }),
            None => Err(deny(StatusCode::Failure, "no such handle")),
        }
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        // Times and modes of an upload mean nothing here; accepted and ignored (scp -p).
        self.resolve_file("setstat", &path)?;
        Ok(ok_status(id, "Ok"))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if self.handles.contains_key(&handle) {
            Ok(ok_status(id, "Ok"))
        } else {
            Err(deny(StatusCode::Failure, "no such handle"))
        }
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let shown: String = path.chars().take(80).collect();
        Err(self.refuse(
            "mkdir",
            deny(
                StatusCode::PermissionDenied,
                format!("refused: folders cannot be made ({shown:?}); upload into `/` only"),
            ),
        ))
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(self.refuse(
            "rmdir",
            deny(
                StatusCode::PermissionDenied,
                "refused: nothing can be deleted here",
            ),
        ))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse(
            "symlink",
            deny(
                StatusCode::PermissionDenied,
                "refused: symbolic links cannot be made here",
            ),
        ))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, Self::Error> {
        Err(deny(
            StatusCode::NoSuchFile,
            "there are no symbolic links here",
        ))
    }
}

impl SftpHandler {
    fn attrs_of(&self, id: u32, path: &str) -> Result<Attrs, StatusReply> {
        match resolve(path)? {
            Target::Root => Ok(Attrs {
                id,
                attrs: dir_attrs(),
            }),
            Target::File(name) => match self.pending.get(&name) {
                Some(u) => Ok(Attrs {
                    id,
                    attrs: file_attrs(u.len),
                }),
                None => Err(deny(
                    StatusCode::NoSuchFile,
                    format!("{name}: no such file"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_folder() {
        assert_eq!(resolve("/"), Ok(Target::Root));
        assert_eq!(resolve("."), Ok(Target::Root));
        assert_eq!(resolve("//./"), Ok(Target::Root));
        assert_eq!(resolve("/a.zip"), Ok(Target::File("a.zip".into())));
        assert_eq!(resolve("./a.zip"), Ok(Target::File("a.zip".into())));
        for bad in [
            "../a.zip",
            "/../a",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "x/../y",
            "a\0",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
    }
}
