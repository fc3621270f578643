//! The names at the top of a data folder (see [`super`]): plain paths, nothing opened, so that
//! the configuration can resolve its defaults without depending on what the folder holds.

use std::path::{Path, PathBuf};

/// The archive's folder in the data folder.
const ARCHIVE: &str = "archivo";
/// Downloads and uploads not yet handed to the publisher.
const TMP: &str = "tmp";
/// The journal's file.
const JOURNAL: &str = "bitacora.sqlite";
/// The lock file.
const LOCK: &str = "difusor.lock";
/// The ACME account and certificate.
const ACME: &str = "acme";

/// The places inside a data folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the data folder `root`.
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The archive's folder.
    pub(crate) fn archive(&self) -> PathBuf {
        self.root.join(ARCHIVE)
    }

    /// The folder of downloads and uploads not yet handed over.
    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// The journal's file.
    pub(crate) fn journal(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }

    /// The lock file.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK)
    }

    /// The intake folder when `watch_dir` is not set.
    pub(crate) fn default_watch_dir(&self) -> PathBuf {
        self.root.join("entrada")
    }

    /// The access logs' folder when `log_dir` is not set.
    pub(crate) fn default_log_dir(&self) -> PathBuf {
        self.root.join("bitacoras")
    }

    /// The SFTP host key when `sftp_host_key` is not set.
    pub(crate) fn default_sftp_host_key(&self) -> PathBuf {
        self.root.join("sftp_host_key")
    }

    /// The SFTP authorized keys when `sftp_authorized_keys` is not set.
    pub(crate) fn default_sftp_authorized_keys(&self) -> PathBuf {
        self.root.join("sftp_authorized_keys")
    }

    /// The folder of the ACME account key and the certificate obtained over ACME.
    pub(crate) fn acme(&self) -> PathBuf {
        self.root.join(ACME)
    }

    /// Where `difusor init --self-signed` writes its certificate and key.
    pub(crate) fn self_signed_tls(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The folders `difusor init` makes, as the operator reads them.
    pub(crate) fn init_folders(&self) -> [(PathBuf, &'static str); 3] {
        [
            (self.default_watch_dir(), "entrada/"),
            (self.archive(), "archivo/"),
            (self.tmp(), "tmp/"),
        ]
    }
}
