//! Delivery over SFTP (`--sftp user@host[:port]`) into a difusor's embedded SFTP intake
//! ([`crate::intake::sftp`]), as an institute would upload.
//!
//! One SSH connection (and one SFTP session on it) is kept for the whole run, so that the
//! evidence uploaded for a package and the package meet in the same session, as the intake
//! requires. For each package: every evidence file under its final name (the intake keeps it
//! for its package when it is closed), then the package as `.<name>.part`, renamed to
//! `<name>` once complete: the rename hands it to the publisher, and its answer is the
//! package's outcome.
//!
//! # Who uses whom
//! This module uses [`super::deliver`] (what a [`Delivery`] holds) and nothing else of the
//! delivery modules; [`super::target`] uses it for `--sftp`.
//!
//! # Guarantees
//! - The server's host key is checked against a known_hosts file before anything is sent:
//!   an unknown host is refused with its SHA-256 fingerprint and the exact line to add, or,
//!   with `--sftp-accept-new`, appended to the file; a changed key is always refused.
//! - Only the private key given is offered (Ed25519 or ECDSA; the intake refuses RSA).
//! - A lost connection is made again and the corte delivered again, a few times with a
//!   growing pause; a package already delivered is then a duplicate, which the server
//!   accepts. A package the server refuses, a refused key or a host key problem is never
//!   retried.
//! - Every error says what to fix.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use russh::client::{self, Handle};
use russh::keys::ssh_key::{HashAlg, PrivateKey, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt as _;

use super::deliver::Delivery;

/// Attempts to deliver one corte before giving up.
const ATTEMPTS: u32 = 4;
/// Pause before the first retry; doubled before each next one.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Longest wait for one SFTP answer: a rename waits for the package to be published.
const REQUEST_TIMEOUT_SECS: u64 = 300;
/// Longest wait for the TCP connection and the SSH handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// `user@host[:port]` of `--sftp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// User name (the intake journals it; any name works).
    pub(crate) user: String,
    /// Host name or address.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
}

impl std::str::FromStr for Address {
    type Err = String;

    /// Parses `user@host[:port]` (`user@[v6 address]:port` for IPv6); the port defaults
    /// to 22.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage =
            || format!("{text:?}: expected user@host[:port], e.g. prep@difusor.example.mx:2222");
        let (user, rest) = text.split_once('@').ok_or_else(usage)?;
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(usage)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(usage)?)),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if user.is_empty() || host.is_empty() {
            return Err(usage());
        }
        let port = match port {
            None => 22,
            Some(p) => p.parse().map_err(|_| usage())?,
        };
        Ok(Self {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

impl Address {
    /// `host:port` (`[v6]:port`).
    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Address {
    /// `user@host:port` (`user@[v6]:port`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.host_port())
    }
}

/// Where and how to connect (`--sftp`, `--sftp-key`, `--sftp-known-hosts`,
/// `--sftp-accept-new`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The server and the user name.
    pub(crate) address: Address,
    /// OpenSSH private key file.
    pub(crate) key: PathBuf,
    /// known_hosts file.
    pub(crate) known_hosts: PathBuf,
    /// Whether an unknown host key is appended to `known_hosts` rather than refused.
    pub(crate) accept_new: bool,
}

/// Why a delivery over SFTP failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SftpError {
    /// No TCP connection.
    #[error(
        "cannot connect to {address}: {why}; is the difusor's SFTP intake (`sftp_listen`) \
         running on that address and port?"
    )]
    Connect {
        /// host:port.
        address: String,
        /// What the system said.
        why: String,
    },
    /// The connection was closed or failed during the handshake.
    #[error(
        "{address} closed the connection during the SSH handshake ({why}): is this machine's \
         address in the server's `sftp_allow`, and is the server under `sftp_max_sessions`?"
    )]
    Handshake {
        /// host:port.
        address: String,
        /// What russh said.
        why: String,
    },
    /// The host key is not in known_hosts.
    #[error(
        "the host key of {host} is unknown: {fingerprint}. Check it with the difusor's \
         operator (`ssh-keygen -lf <data_dir>/sftp_host_key` on the server), then add this \
         line to {known_hosts}:\n{line}\nor run again with --sftp-accept-new to add it"
    )]
    UnknownHost {
        /// `[host]:port` as known_hosts writes it.
        host: String,
        /// `SHA256:…`.
        fingerprint: String,
        /// The known_hosts file.
        known_hosts: String,
        /// The line to add.
        line: String,
    },
    /// The host key differs from the one recorded.
    #[error(
        "HOST KEY CHANGED: {host} now presents {fingerprint}, which differs from the key \
         recorded at line {line} of {known_hosts}. Someone may be intercepting the \
         connection, or the server's host key was replaced: ask the difusor's operator, and \
         only if the new key is right, remove that line"
    )]
    HostKeyChanged {
        /// `[host]:port`.
        host: String,
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// The known_hosts file.
        known_hosts: String,
        /// Line of the recorded key.
        line: usize,
    },
    /// known_hosts cannot be read or written.
    #[error("cannot use the known_hosts file {known_hosts}: {why}")]
    KnownHosts {
        /// The known_hosts file.
        known_hosts: String,
        /// What went wrong.
        why: String,
    },
    /// The server refused the key.
    #[error(
        "{address} refused the key {key} ({fingerprint}): add its public key ({key}.pub) to \
         the server's `sftp_authorized_keys`, or give the right one with --sftp-key"
    )]
    KeyRefused {
        /// user@host:port.
        address: String,
        /// The private key file.
        key: String,
        /// `SHA256:…` of the key.
        fingerprint: String,
    },
    /// The server answered a request with a failure.
    #[error("{address} refused {name}: {message}")]
    Refused {
        /// user@host:port.
        address: String,
        /// The file.
        name: String,
        /// The server's message.
        message: String,
    },
    /// The connection failed after the handshake, before SFTP was ready.
    #[error("the connection to {address} failed while setting up SFTP: {why}")]
    Setup {
        /// user@host:port.
        address: String,
        /// What failed.
        why: String,
    },
    /// The connection was lost or timed out.
    #[error("the connection to {address} was lost while sending {name}: {why}")]
    Lost {
        /// user@host:port.
        address: String,
        /// The file.
        name: String,
        /// What failed.
        why: String,
    },
}

impl SftpError {
    /// Whether connecting again may help.
    fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Handshake { .. } | Self::Setup { .. } | Self::Lost { .. }
        )
    }
}

/// Delivers corte after corte over one SSH connection, made again when lost.
pub(crate) struct Uploader {
    options: Options,
    key: Arc<PrivateKey>,
    connection: Option<Connection>,
}

/// One SSH connection and its SFTP session.
struct Connection {
    ssh: Handle<HostCheck>,
    sftp: SftpSession,
}

impl Uploader {
    /// Reads the key and connects, so that a wrong key or host stops the run before the
    /// first corte.
    pub(crate) async fn connect(options: Options) -> Result<Self> {
        let key = Arc::new(load_key(&options.key)?);
        let mut uploader = Self {
            options,
            key,
            connection: None,
        };
        let connection = uploader.open().await?;
        uploader.connection = Some(connection);
        Ok(uploader)
    }

    /// `sftp://user@host:port`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("sftp://{}", self.options.address)
    }

    /// Delivers the packages of one corte, connecting again and retrying on a lost
    /// connection.
    pub(crate) async fn deliver(&mut self, corte: &[Delivery]) -> Result<()> {
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            match self.try_deliver(corte).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable() && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, retry_in = ?pause, "SFTP delivery failed; connecting again");
                    self.connection = None;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    self.connection = None;
                    let tries = if e.retryable() {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return Err(anyhow::Error::new(e).context(format!(
                        "cannot deliver over SFTP to {}{tries}",
                        self.options.address
                    )));
                }
            }
        }
    }

    /// Ends the SFTP session and the connection cleanly.
    pub(crate) async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.sftp.close().await;
            let _ = connection
                .ssh
                .disconnect(russh::Disconnect::ByApplication, "done", "en")
                .await;
            // The disconnect is sent once the session's task runs to its end.
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.ssh).await;
        }
    }

    /// One attempt at delivering a corte.
    async fn try_deliver(&mut self, corte: &[Delivery]) -> Result<(), SftpError> {
        if self.connection.as_ref().is_some_and(|c| c.ssh.is_closed()) {
            tracing::info!("the SFTP connection was closed; connecting again");
            self.connection = None;
        }
        let connection = match self.connection.take() {
            Some(c) => c,
            None => self.open().await?,
        };
        let address = self.options.address.to_string();
        for delivery in corte {
            for (name, text) in &delivery.evidence {
                upload(&connection, &address, name, text.as_bytes()).await?;
            }
            let part = format!(".{}.part", delivery.name);
            upload(&connection, &address, &part, &delivery.bytes).await?;
            connection
                .sftp
                .rename(part.as_str(), delivery.name.as_str())
                .await
                .map_err(|e| classify(&connection, &address, &delivery.name, e))?;
            tracing::info!(package = %delivery.name, bytes = delivery.bytes.len(), to = %address, "simulate: delivered over SFTP");
        }
        self.connection = Some(connection);
        Ok(())
    }

    /// Connects, checks the host key, authenticates and starts SFTP.
    async fn open(&self) -> Result<Connection, SftpError> {
        let o = &self.options;
        let address = o.address.to_string();
        let (host, port) = (o.address.host.as_str(), o.address.port);
        let host_port = o.address.host_port();
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| SftpError::Connect {
            address: host_port.clone(),
            why: "no answer within 20 s".to_owned(),
        })?
        .map_err(|e| SftpError::Connect {
            address: host_port.clone(),
            why: e.to_string(),
        })?;
        let _ = stream.set_nodelay(true);
        let problem = Arc::new(Mutex::new(None));
        let check = HostCheck {
            host: host.to_owned(),
            port,
            known_hosts: o.known_hosts.clone(),
            accept_new: o.accept_new,
            problem: Arc::clone(&problem),
        };
        let config = Arc::new(client::Config {
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let handshake = tokio::time::timeout(
            CONNECT_TIMEOUT,
            client::connect_stream(config, stream, check),
        )
        .await;
        let mut ssh = match handshake {
            Ok(Ok(ssh)) => ssh,
            failed => {
                let recorded = problem.lock().map(|mut p| p.take()).unwrap_or_default();
                if let Some(problem) = recorded {
                    return Err(problem);
                }
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer within 20 s".to_owned(),
                };
                return Err(SftpError::Handshake {
                    address: host_port,
                    why,
                });
            }
        };
        let key = PrivateKeyWithHashAlg::new(Arc::clone(&self.key), None);
        let lost = |why: String| SftpError::Setup {
            address: address.clone(),
            why,
        };
        let auth = ssh
            .authenticate_publickey(o.address.user.as_str(), key)
            .await
            .map_err(|e| lost(format!("authentication failed: {e}")))?;
        if !auth.success() {
            return Err(SftpError::KeyRefused {
                address,
                key: o.key.display().to_string(),
                fingerprint: self
                    .key
                    .public_key()
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
            });
        }
        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|e| lost(format!("cannot open a session: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| lost(format!("cannot start SFTP: {e}")))?;
        let config = russh_sftp::client::Config {
            request_timeout_secs: REQUEST_TIMEOUT_SECS,
            ..Default::default()
        };
        let sftp = SftpSession::new_with_config(channel.into_stream(), config)
            .await
            .map_err(|e| lost(format!("cannot start SFTP: {e}")))?;
        tracing::info!(to = %address, "SFTP connected");
        Ok(Connection { ssh, sftp })
    }
}

/// Uploads `bytes` as `name` and closes it, which hands a final name over.
async fn upload(
    connection: &Connection,
    address: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), SftpError> {
    let mut file = connection
        .sftp
        .create(name)
        .await
        .map_err(|e| classify(connection, address, name, e))?;
    let written = async {
        file.write_all(bytes).await?;
        file.shutdown().await
    }
    .await;
    written.map_err(|e| classify_io(connection, address, name, &e))
}

/// A refusal when the server answered, a lost connection otherwise.
fn classify(
    connection: &Connection,
    address: &str,
    name: &str,
    error: russh_sftp::client::error::Error,
) -> SftpError {
    match error {
        russh_sftp::client::error::Error::Status(status) if !connection.ssh.is_closed() => {
            SftpError::Refused {
                address: address.to_owned(),
                name: name.to_owned(),
                message: status.error_message,
            }
        }
        other => SftpError::Lost {
            address: address.to_owned(),
            name: name.to_owned(),
            why: other.to_string(),
        },
    }
}

/// As [`classify`], for the I/O errors of a file: a server's answer arrives as a bare
/// message, a transport failure as an SFTP client error.
fn classify_io(
    connection: &Connection,
    address: &str,
    name: &str,
    error: &std::io::Error,
) -> SftpError {
    let transport = error
        .get_ref()
        .is_some_and(|inner| inner.is::<russh_sftp::client::error::Error>());
    if transport || connection.ssh.is_closed() {
        SftpError::Lost {
            address: address.to_owned(),
            name: name.to_owned(),
            why: error.to_string(),
        }
    } else {
        SftpError::Refused {
            address: address.to_owned(),
            name: name.to_owned(),
            message: error.to_string(),
        }
    }
}

/// Reads an unencrypted OpenSSH private key the intake accepts.
fn load_key(path: &Path) -> Result<PrivateKey> {
    let key = russh::keys::load_secret_key(path, None).map_err(|e| {
        let hint = match e {
            russh::keys::Error::KeyIsEncrypted => {
                "it is protected by a passphrase; use a key without one (ssh-keygen -N '')"
                    .to_owned()
            }
            russh::keys::Error::IO(ref io) => io.to_string(),
            ref other => format!(
                "{other}; it must be an OpenSSH private key, Ed25519 or ECDSA (ssh-keygen -t \
                 ed25519)"
            ),
        };
        anyhow::anyhow!(
            "cannot use the SFTP key {} (--sftp-key): {hint}",
            path.display()
        )
    })?;
    let algorithm = key.algorithm();
    if !(algorithm.clone().is_ed25519() || algorithm.clone().is_ecdsa()) {
        anyhow::bail!(
            "cannot use the SFTP key {} (--sftp-key): it is {}, and the difusor's SFTP intake \
             accepts only Ed25519 and ECDSA keys; make one with ssh-keygen -t ed25519",
            path.display(),
            algorithm.as_str()
        );
    }
    Ok(key)
}

/// The client side of the SSH handshake: checks the server's host key against known_hosts.
struct HostCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    /// Why the key was refused, for the message the handshake's error cannot carry.
    problem: Arc<Mutex<Option<SftpError>>>,
}

impl HostCheck {
    /// `host` or `[host]:port`, as known_hosts names it.
    fn known_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// Whether the key is trusted; the reason is kept when it is not.
    fn trusted(&self, key: &PublicKey) -> Result<bool, SftpError> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let known_hosts = self.known_hosts.display().to_string();
        let unusable = |why: String| SftpError::KnownHosts {
            known_hosts: known_hosts.clone(),
            why,
        };
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) if self.accept_new => {
                russh::keys::known_hosts::learn_known_hosts_path(
                    &self.host,
                    self.port,
                    key,
                    &self.known_hosts,
                )
                .map_err(|e| unusable(format!("cannot add the new host key: {e}")))?;
                tracing::warn!(host = %self.known_name(), %fingerprint, file = %known_hosts, "new SFTP host key added to known_hosts (--sftp-accept-new)");
                Ok(true)
            }
            Ok(false) => {
                let openssh = key
                    .to_openssh()
                    .map_err(|e| unusable(format!("cannot encode the host key: {e}")))?;
                Err(SftpError::UnknownHost {
                    host: self.known_name(),
                    fingerprint,
                    known_hosts,
                    line: format!("{} {openssh}", self.known_name()),
                })
            }
            Err(russh::keys::Error::KeyChanged { line }) => Err(SftpError::HostKeyChanged {
                host: self.known_name(),
                fingerprint,
                known_hosts,
                line,
            }),
            Err(e) => Err(unusable(e.to_string())),
        }
    }
}

impl client::Handler for HostCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let outcome = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.trusted(key),
            PublicKeyOrCertificate::Certificate(_) => Err(SftpError::KnownHosts {
                known_hosts: self.known_hosts.display().to_string(),
                why: "the server presents a host certificate, which is not supported".to_owned(),
            }),
        };
        match outcome {
            Ok(trusted) => Ok(trusted),
            Err(problem) => {
                if let Ok(mut slot) = self.problem.lock() {
                    *slot = Some(problem);
                }
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn addresses_parse_with_and_without_a_port() {
        let a = |user: &str, host: &str, port| Address {
            user: user.into(),
            host: host.into(),
            port,
        };
        assert_eq!(
            "prep@example.mx:2222".parse(),
            Ok(a("prep", "example.mx", 2222))
        );
        assert_eq!("prep@example.mx".parse(), Ok(a("prep", "example.mx", 22)));
        assert_eq!("root@[::1]:2200".parse(), Ok(a("root", "::1", 2200)));
        assert_eq!(a("root", "::1", 2200).to_string(), "root@[::1]:2200");
        for bad in ["example.mx", "@h", "u@", "u@h:x", "u@[::1", "u@h:99999"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
