//! The SSH side of the SFTP server: its keys, the russh server configuration and the handler
//! of each connection, up to the start of the `sftp` subsystem ([`super::folder`] from there).
//!
//! # Guarantees
//! - Public keys only, from `sftp_authorized_keys`; no password, keyboard-interactive, shell,
//!   exec, pty, forwarding, agent or subsystem other than `sftp`. A password, and every
//!   request of a logged-in client this server refuses (a shell, a command, a pty, port,
//!   socket, X11 or agent forwarding both ways, a signal or window change, another subsystem
//!   or an extra channel) is noted in the session's journal entry; a logged-in client asking
//!   for [`MAX_REFUSED_REQUESTS`] of them (no SFTP client asks for any) is cut, and its entry
//!   says why, so that it cannot cost the journal and the log a refusal for every request it
//!   sends, nor ask for them without end. `env` requests (OpenSSH's `SendEnv`) are ignored;
//!   past [`MAX_ENV_REQUESTS`] before one `sftp` subsystem, each is one of those refusals.
//!   What the SSH library answers by itself without asking this handler (requests and
//!   channel types it does not know, such as a `break` or a keep-alive) keeps nothing and
//!   costs a reply each; its log is held to nothing (`crate`'s logging) unless `RUST_LOG`
//!   names it.
//! - The key exchange costs the server no more than it costs the client: only the
//!   elliptic-curve exchanges ([`KEX`]: `mlkem768x25519-sha256`, `curve25519-sha256`, which
//!   every OpenSSH client since 6.5 offers) are offered: under a millisecond of CPU for a
//!   whole login.
//!   The finite-field Diffie-Hellman ones are not (a client offering nothing else is refused
//!   at the key exchange): the SSH library computes them with a private exponent as long as
//!   the group, hundreds of milliseconds of a core on the async runtime's threads, for a
//!   client that has shown no key and need compute nothing itself.
//! - A connection is cut after `sftp_max_auth_attempts` failed attempts (each key offered and
//!   refused is one; OpenSSH's first `none` probe is not), and after `sftp_idle_timeout` and
//!   [`SILENCE_BACKSTOP`] more of silence both ways: the listener's own limits, which say
//!   why they cut, come first (after `sftp_idle_timeout` without an SFTP request, whatever
//!   else the client sends). Failed attempts are counted for the listener's bans.
//! - A login past `sftp_max_sessions` is refused (journaled, `sftp-refused`) and disconnected;
//!   a session opens channels only once it holds a place: at most two open at once (one its
//!   client closed before asking for a subsystem no longer counts), and one `sftp`
//!   subsystem at a time. Another is taken once the one before has ended (its client closed
//!   its channel), as OpenSSH's `ControlMaster` asks the connection it keeps open
//!   (`ControlPersist`) for one at every `sftp` run; a channel opened, or a subsystem asked
//!   for, while one runs is refused as above. The connection's limits hold for all its
//!   subsystems together (the listener's time limits, the refused requests, the session's
//!   bytes), and its one entry names the uploads of each.
//! - Nothing a client sends on a channel can stop the session from reading its connection: a
//!   channel not yet given to the `sftp` subsystem is read all the while ([`Held`]), and what
//!   is sent on it before the subsystem is asked for (data, `env`, `window-change`…) is set
//!   aside, never taken for SFTP requests; data there is noted in the session's entry. (russh
//!   queues a channel's messages for its reader and, once that queue is full, reads the
//!   connection no more until one is taken: such a session would see neither its silence
//!   timer nor its client's end, and keep its place for good.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use russh::keys::ssh_key::{AuthorizedKeys, HashAlg, LineEnding, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet, kex};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::SftpSettings;
use super::folder::SftpHandler;
use super::session::{SessionStats, note_refusal, refused, with_stats};
use super::stall::{Traffic, Watched};
use super::{Phase, Shared};
use crate::peer_text::PeerText;

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
pub(super) fn authorized_keys(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
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

/// How much longer than `sftp_idle_timeout` the SSH library's own silence timer waits: the
/// listener's time limits, which say why they cut, come first; the library's is the backstop
/// for a connection silent both ways (its cut is said in the listener's words too).
pub(super) const SILENCE_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(5);

/// The key exchanges offered: the elliptic-curve ones (and their post-quantum hybrid), which
/// every OpenSSH client since 6.5 offers and prefers, with the markers of extension
/// negotiation and strict key exchange. Not the finite-field Diffie-Hellman ones the SSH
/// library offers by default: it computes them with a private exponent as long as the group
/// (8192 bits for `diffie-hellman-group18-sha512`, and for the group exchange OpenSSH asks
/// for), a third of a second of a core each, on the async runtime's threads, for a client
/// that has shown no key and may have computed nothing.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// The russh server's configuration: `host_key`, public keys only, the elliptic-curve key
/// exchanges ([`KEX`]), the settings' attempt and silence limits.
pub(super) fn ssh_config(settings: &SftpSettings, host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        preferred: russh::Preferred {
            kex: std::borrow::Cow::Borrowed(KEX),
            ..Default::default()
        },
        keys: vec![host_key],
        inactivity_timeout: Some(settings.idle_timeout.saturating_add(SILENCE_BACKSTOP)),
        // russh counts the `none` probe OpenSSH clients send first; OpenSSH does not.
        max_auth_attempts: settings.max_auth_attempts.saturating_add(1),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        ..Default::default()
    }
}

/// One SSH connection.
pub(super) struct SshHandler {
    peer: SocketAddr,
    shared: Arc<Shared>,
    stats: Arc<Mutex<SessionStats>>,
    /// Session channels opened and not yet given to the `sftp` subsystem (or refused).
    channels: HashMap<ChannelId, Held>,
    /// Tells the connection's task how far the connection got.
    phase: watch::Sender<Phase>,
    /// The place of a logged-in session, held to the end.
    session: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Where the `sftp` subsystem's stream notes replies the client does not take, and the
    /// requests it sends.
    traffic: Arc<Traffic>,
    /// A copy is handed to each `sftp` subsystem, which holds it while it runs: one runs
    /// while there is more than this one.
    subsystem: watch::Sender<()>,
    /// Requests of the logged-in client refused so far.
    refused: u32,
    /// Environment variables the client sent since its last `sftp` subsystem began (`env`
    /// requests).
    env: u32,
}

/// Refused requests of a logged-in client (a shell, a command, forwarding, another subsystem
/// or channel…) after which its connection is cut: no SFTP client sends any, and each costs
/// the journal and the log.
const MAX_REFUSED_REQUESTS: u32 = 8;

/// Environment variables (`env` requests) a connection may send before each `sftp` subsystem,
/// ignored, before each counts as a refused request: OpenSSH sends those its `SendEnv` names
/// (Debian's sends `LANG` and `LC_*`, a dozen on a desktop set to a region) before every
/// subsystem request, and a connection has at most two session channels at once.
const MAX_ENV_REQUESTS: u32 = 64;

impl SshHandler {
    /// The handler of a new connection from `peer`, which tells `phase` how far it got; its
    /// `sftp` subsystem notes in `traffic` the replies its client does not take and the
    /// requests it sends, and each holds a copy of `subsystem` while it runs.
    pub(super) fn new(
        peer: SocketAddr,
        shared: Arc<Shared>,
        stats: Arc<Mutex<SessionStats>>,
        phase: watch::Sender<Phase>,
        traffic: Arc<Traffic>,
        subsystem: watch::Sender<()>,
    ) -> Self {
        Self {
            peer,
            shared,
            stats,
            channels: HashMap::new(),
            phase,
            session: None,
            traffic,
            subsystem,
            refused: 0,
            env: 0,
        }
    }

    /// Whether an `sftp` subsystem of this connection is running (it ends when its client
    /// closes its channel, or the connection ends).
    fn sftp_running(&self) -> bool {
        self.subsystem.sender_count() > 1
    }

    /// Refuses a request of the logged-in client (a shell, a command, forwarding, another
    /// subsystem or channel…), noted in the session's entry; past [`MAX_REFUSED_REQUESTS`],
    /// the listener cuts the connection.
    fn refuse(&mut self, what: String) {
        note_refusal(&self.stats, what);
        self.refused += 1;
        if self.refused == MAX_REFUSED_REQUESTS {
            self.traffic.broke(format!(
                "the client sent {MAX_REFUSED_REQUESTS} requests this server refuses (a shell, \
                 a command, forwarding, another subsystem or channel…); an SFTP client sends none"
            ));
        }
    }

    /// Refuses a request on `channel` that wants no more than a failure in reply (a pty,
    /// X11 or agent forwarding…), counted as [`Self::refuse`] does; the channel stays open.
    fn fail(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
        what: String,
    ) -> Result<(), anyhow::Error> {
        self.refuse(what);
        session.channel_failure(channel)?;
        Ok(())
    }
}

/// A client-given name (a user, a host, a path, a subsystem) cut to 64 characters, for the
/// journal; shown with `{:?}` or [`PeerText`], so that its control characters are visible.
fn short(name: &str) -> String {
    name.chars().take(64).collect()
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
                s.user = Some(short(user));
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
        // Counted among the login attempts, not among a logged-in client's refused requests.
        note_refusal(
            &self.stats,
            "password authentication (only public keys are accepted)".to_owned(),
        );
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
        // One `sftp` subsystem after another (OpenSSH's `ControlMaster` asks the connection it
        // keeps open for one at every `sftp` run), never two at once.
        if self.channels.len() >= 2 || self.sftp_running() {
            self.refuse("a further session channel".to_owned());
            return Ok(()); // dropping the reply refuses the channel
        }
        self.channels
            .insert(channel.id(), Held::read(channel, self.stats.clone()));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // One closed before its subsystem was asked for no longer counts among the two.
        self.channels.remove(&channel);
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
        self.fail(channel, session, "a pty".to_owned())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.fail(channel, session, "X11 forwarding".to_owned())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse("agent forwarding".to_owned());
        Ok(false)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.env = self.env.saturating_add(1);
        if self.env > MAX_ENV_REQUESTS {
            let name = short(variable_name);
            return self.fail(
                channel,
                session,
                format!("environment variable {name:?}, past {MAX_ENV_REQUESTS}"),
            );
        }
        // Ignored; a reply, if one is wanted, says it was not set.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        _channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No pty is ever given: no window changes.
        self.refuse("a window-change without a pty".to_owned());
        Ok(())
    }

    async fn signal(
        &mut self,
        _channel: ChannelId,
        signal: russh::Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let name = match signal {
            russh::Sig::Custom(name) => short(&name),
            known => format!("{known:?}"),
        };
        self.refuse(format!("signal {name:?}"));
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let address = short(address);
        self.refuse(format!(
            "forwarding of port {port} on the server ({address:?}) to the client"
        ));
        Ok(false)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let address = short(address);
        self.refuse(format!("end of a forwarding of port {port} ({address:?})"));
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let path = short(socket_path);
        self.refuse(format!(
            "forwarding of a socket on the server ({path:?}) to the client"
        ));
        Ok(false)
    }

    async fn cancel_streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let path = short(socket_path);
        self.refuse(format!("end of a forwarding of a socket ({path:?})"));
        Ok(false)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        _reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let host = short(host_to_connect);
        self.refuse(format!(
            "forwarding to {}:{port_to_connect} (a direct-tcpip channel)",
            PeerText(&host)
        ));
        Ok(()) // dropping the reply refuses the channel
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        _reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let path = short(socket_path);
        self.refuse(format!(
            "forwarding to the socket {path:?} (a direct-streamlocal channel)"
        ));
        Ok(()) // dropping the reply refuses the channel
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        _reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("a forwarded-tcpip channel, for no forwarding asked".to_owned());
        Ok(()) // dropping the reply refuses the channel
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        _reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("an X11 channel".to_owned());
        Ok(()) // dropping the reply refuses the channel
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" || self.sftp_running() {
            let name = short(name);
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
        let Some(channel) = channel.take().await else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        self.env = 0;
        session.channel_success(channel_id)?;
        let fingerprint = with_stats(&self.stats, |s| s.fingerprint.clone());
        let origin = format!(
            "{} {}",
            self.peer,
            fingerprint.as_deref().unwrap_or("(no key)")
        );
        let sftp = SftpHandler::new(
            origin,
            self.shared.clone(),
            self.stats.clone(),
            self.subsystem.clone(),
        );
        let config = russh_sftp::server::Config::default();
        let stream = Watched::new(
            channel.into_stream(),
            self.traffic.clone(),
            config.max_client_packet_len,
        );
        russh_sftp::server::run_with_config(stream, sftp, config).await;
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

/// A session channel opened and not yet given to the `sftp` subsystem, read all the while.
///
/// russh hands each message of a channel (its data, and requests such as `env`) to a queue of
/// `channel_buffer_size` for the channel's reader, and waits, reading the connection no more,
/// while that queue is full. A channel held unread would let a client stop its session for
/// good with a hundred messages; so a task reads it, and sets aside what it reads, until the
/// channel is taken for the subsystem ([`Held::take`]) or dropped.
struct Held {
    /// Sent to take the channel back; dropped to let it go.
    take: oneshot::Sender<()>,
    /// The reading task, which gives the channel back.
    reader: JoinHandle<Option<Channel<Msg>>>,
}

impl Held {
    /// Starts reading `channel`; data sent on it is noted in `stats` as a refusal, once.
    fn read(mut channel: Channel<Msg>, stats: Arc<Mutex<SessionStats>>) -> Self {
        let (take, mut taken) = oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut noted = false;
            let mut note = |msg: &ChannelMsg| {
                let data = matches!(
                    msg,
                    ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. }
                );
                if data && !noted {
                    noted = true;
                    let what = "data on a session channel before the sftp subsystem was asked \
                                for (set aside)";
                    note_refusal(&stats, what.to_owned());
                }
                matches!(msg, ChannelMsg::RequestSubsystem { .. })
            };
            // Whether the subsystem request, which comes just before the channel is taken,
            // has been read (a request for another subsystem drops the channel instead).
            let mut asked = false;
            let take = loop {
                tokio::select! {
                    biased;
                    take = &mut taken => break take.is_ok(),
                    msg = channel.wait() => match msg {
                        Some(msg) => asked |= note(&msg),
                        None => break taken.await.is_ok(),
                    },
                }
            };
            if !take {
                return None;
            }
            // What came before the subsystem request is set aside, never handed on as SFTP.
            while !asked {
                match channel.wait().await {
                    Some(msg) => asked = note(&msg),
                    None => break,
                }
            }
            Some(channel)
        });
        Self { take, reader }
    }

    /// Stops reading and gives the channel back, ready for the subsystem whose request was
    /// its last message.
    async fn take(self) -> Option<Channel<Msg>> {
        let _ = self.take.send(());
        self.reader.await.ok().flatten()
    }
}
