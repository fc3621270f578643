//! The places the packages of each corte go to: a folder, or a difusor's SFTP intake.
//!
//! # Who uses whom
//! A [`Target`] hands each corte's [`Delivery`]s to [`super::deliver::into_folder`] or to
//! the SFTP [`Uploader`]; both of those depend only on [`super::deliver`], never on this
//! module or on each other.
//!
//! # Guarantees
//! - Every target gets the packages of a corte in order, site first.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::deliver::{Delivery, into_folder};
use super::sftp::Uploader;

/// A place the packages of each corte are delivered to.
pub(crate) enum Target {
    /// A folder (`--out`, or the folder `--serve` serves).
    Folder(PathBuf),
    /// A difusor's SFTP intake (`--sftp`).
    Sftp(Box<Uploader>),
}

impl Target {
    /// Delivers the packages of one corte, in order.
    pub(crate) async fn deliver(&mut self, corte: &Arc<Vec<Delivery>>) -> Result<()> {
        match self {
            Self::Folder(dir) => {
                let (dir, corte) = (dir.clone(), Arc::clone(corte));
                tokio::task::spawn_blocking(move || {
                    corte.iter().try_for_each(|d| into_folder(&dir, d))
                })
                .await
                .context("the folder delivery stopped")?
            }
            Self::Sftp(uploader) => uploader.deliver(corte).await,
        }
    }

    /// Ends what the target holds open (the SFTP connection).
    pub(crate) async fn close(&mut self) {
        if let Self::Sftp(uploader) = self {
            uploader.close().await;
        }
    }

    /// What this target is, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Folder(dir) => dir.display().to_string(),
            Self::Sftp(uploader) => uploader.describe(),
        }
    }
}
