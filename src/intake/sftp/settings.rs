//! The SFTP server's settings (`sftp_*`), validated next to the server that uses them; each
//! invalid value is refused with the setting's name and a good value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    Config, Invalid, Settings, duration, networks, positive, positive_count, positive_duration,
    socket_addr,
};
use crate::store::layout::Layout;

/// Where the SFTP host key is kept.
fn sftp_host_key_path(s: &Settings, data_dir: &Path) -> PathBuf {
    if s.sftp_host_key.as_os_str().is_empty() {
        Layout::new(data_dir).default_sftp_host_key()
    } else {
        s.sftp_host_key.clone()
    }
}

/// The embedded SFTP server's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct SftpSettings {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Who may connect.
    pub(crate) allow: Vec<ipnet::IpNet>,
    /// OpenSSH `authorized_keys` file.
    pub(crate) authorized_keys: PathBuf,
    /// Host key file.
    pub(crate) host_key: PathBuf,
    /// Sessions logged in at once.
    pub(crate) max_sessions: usize,
    /// Connections logging in at once.
    pub(crate) max_startups: usize,
    /// Connections logging in at once from one address.
    pub(crate) max_startups_per_address: usize,
    /// Longest SSH handshake.
    pub(crate) handshake_timeout: std::time::Duration,
    /// Longest time from connecting to logging in.
    pub(crate) login_grace_time: std::time::Duration,
    /// Bytes one session may upload.
    pub(crate) max_session_bytes: u64,
    /// Idle time before a session is closed.
    pub(crate) idle_timeout: std::time::Duration,
    /// Longest time a file may stay open for writing.
    pub(crate) upload_timeout: std::time::Duration,
    /// Failed authentication attempts per connection.
    pub(crate) max_auth_attempts: usize,
    /// Failed connections from one address before it is banned (0: never).
    pub(crate) ban_after: u64,
    /// How long strikes count, and how long a ban lasts.
    pub(crate) ban_time: std::time::Duration,
}

impl SftpSettings {
    /// The SFTP server's settings, when `sftp_listen` is set.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let (s, data_dir) = (&config.settings, config.data_dir.as_path());
        if s.sftp_listen.is_empty() {
            return Ok(None);
        }
        let listen = socket_addr("sftp_listen", &s.sftp_listen)?;
        let allow = networks("sftp_allow", &s.sftp_allow, "203.0.113.7 or 203.0.113.0/24")?;
        if allow.is_empty() {
            return Err(Invalid::new(
                "sftp_allow",
                "no address may connect; add the institute's addresses",
            ));
        }
        let idle = positive_duration("sftp_idle_timeout", &s.sftp_idle_timeout, "5m")?;
        let ban_time = duration("sftp_ban_time", &s.sftp_ban_time)?.unsigned_abs();
        if ban_time.is_zero() && s.sftp_ban_after > 0 {
            return Err(Invalid::new(
                "sftp_ban_time",
                "must be greater than zero; 15m is a good value",
            ));
        }
        Ok(Some(Self {
            ban_after: s.sftp_ban_after,
            ban_time,
            listen,
            allow,
            authorized_keys: if s.sftp_authorized_keys.as_os_str().is_empty() {
                Layout::new(data_dir).default_sftp_authorized_keys()
            } else {
                s.sftp_authorized_keys.clone()
            },
            host_key: sftp_host_key_path(s, data_dir),
            max_sessions: positive_count("sftp_max_sessions", s.sftp_max_sessions)?,
            max_session_bytes: positive(
                "sftp_max_session_bytes",
                s.sftp_max_session_bytes.as_u64(),
            )?,
            max_startups: positive_count("sftp_max_startups", s.sftp_max_startups)?,
            max_startups_per_address: positive_count(
                "sftp_max_startups_per_address",
                s.sftp_max_startups_per_address,
            )?,
            handshake_timeout: positive_duration(
                "sftp_handshake_timeout",
                &s.sftp_handshake_timeout,
                "10s",
            )?,
            login_grace_time: positive_duration(
                "sftp_login_grace_time",
                &s.sftp_login_grace_time,
                "1m",
            )?,
            idle_timeout: idle,
            upload_timeout: positive_duration(
                "sftp_upload_timeout",
                &s.sftp_upload_timeout,
                "30m",
            )?,
            max_auth_attempts: positive_count("sftp_max_auth_attempts", s.sftp_max_auth_attempts)?,
        }))
    }
}
