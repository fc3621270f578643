//! Intake channels: how packages reach the publisher.
//!
//! - [`watch`]: the watched folder, for uploads through the system's OpenSSH, rsync or scripts.
//! - [`sftp`]: the embedded SFTP server, which can do nothing but deliver packages.
//! - [`pull`]: HTTPS pull from a service the institute publishes.
//!
//! [`file`] opens what senders put on this machine: regular files only, never through a link.
//!
//! Every channel hands a complete file to the publisher as a [`crate::publisher::Received`];
//! none publishes anything itself.

mod ban;
mod file;
pub(crate) mod pull;
pub(crate) mod sftp;
mod startups;
mod watch;

pub(crate) use file::{open_regular, read_evidence};
pub(crate) use watch::{WatchRules, watch_folder};
