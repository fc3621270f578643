//! Intake channels: how packages reach the publisher.
//!
//! - [`watch`]: the watched folder, for uploads through the system's OpenSSH, rsync or scripts.
//! - [`sftp`]: the embedded SFTP server, which can do nothing but deliver packages.
//! - [`pull`]: HTTPS pull from a service the institute publishes.
//!
//! [`file`](mod@file) opens what senders put on this machine: regular files only, never through a link.
//! [`late`] tells evidence (a `.sha256`, a `.minisig`) sent after its package was taken, for
//! the watched folder and SFTP.
//!
//! Every channel hands a complete file to the publisher as a [`Received`], naming itself with
//! a [`Channel`]; none publishes anything itself.

mod ban;
mod file;
mod late;
mod opens;
pub(crate) mod pull;
pub(crate) mod sftp;
mod startups;
mod watch;

pub(crate) use file::{
    describe, evidence_path, open_package, open_regular, operator_evidence, read_evidence,
};
pub(crate) use late::SignatureCheck;
pub(crate) use watch::{WatchRules, watch_folder};

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::hash::Hashed;
use crate::package::{EvidenceFile, PackageName};

/// Which way a package came in; the journal writes it as its kebab-case name (`watch`,
/// `sftp`, `pull`, `cli`, `recovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Channel {
    /// The watched folder.
    Watch,
    /// The embedded SFTP server.
    Sftp,
    /// HTTPS pull.
    Pull,
    /// An operator: `difusor ingest` or the admin upload.
    Cli,
    /// Taken again from the archive at start, after a stop interrupted it.
    Recovery,
}

/// A package handed over by an intake channel, received whole.
#[derive(Debug)]
pub(crate) struct Received {
    /// The institute's file name.
    pub(crate) name: PackageName,
    /// Where the intake channel left it.
    pub(crate) path: PathBuf,
    /// Its SHA-256 and size, when the channel computed them while writing the file at `path`
    /// itself (SFTP, pull): the archive then takes that file as it is instead of copying it.
    pub(crate) hashed: Option<Hashed>,
    /// Which channel.
    pub(crate) channel: Channel,
    /// Where it came from, for the journal, when the channel knows: the pulled URL, or the
    /// SFTP client's address and key fingerprint.
    pub(crate) origin: Option<String>,
    /// Its `.sha256` sidecar, if any, as sent.
    pub(crate) sidecar: Option<EvidenceFile>,
    /// Its `.minisig` signature, if any, as sent.
    pub(crate) signature: Option<EvidenceFile>,
    /// When it arrived.
    pub(crate) received_at: Timestamp,
}
