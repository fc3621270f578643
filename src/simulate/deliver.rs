//! What a simulated package is once it is ready to go: the [`Delivery`] of one package with
//! its evidence, and its delivery into a folder ([`into_folder`]).
//!
//! A folder delivery lands as an institute's upload should: evidence first, then the package
//! renamed into place.
//!
//! # Who uses whom
//! This module uses neither [`super::sftp`] nor [`super::target`]; they use it:
//! [`super::sftp`] uploads a [`Delivery`] over SFTP, and [`super::target`] sends each corte's
//! deliveries to a folder (through [`into_folder`]) or to the SFTP uploader.
//!
//! # Guarantees
//! - Evidence is made once per package, whatever the number of targets: `<name>.sha256` (in
//!   `sha256sum` format, written by [`package::sum_line`]), and `<name>.minisig` when a key is
//!   given.
//! - In a folder, the evidence is in place before the package appears, and the package is
//!   written as `.<name>.part`, flushed to disk, and renamed to `<name>`: a reader of the
//!   folder never sees half a package under its final name.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::hash::Sha256;
use crate::package;

/// One package, ready for any target: its name, its bytes and its evidence files.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// File name of the package.
    pub(crate) name: String,
    /// The package.
    pub(crate) bytes: Vec<u8>,
    /// Evidence files delivered before the package: name and text, `.sha256` first.
    pub(crate) evidence: Vec<(String, String)>,
}

impl Delivery {
    /// Package `name` with its `.sha256` sidecar, and its `.minisig` when `key` is given.
    pub(crate) fn new(
        name: String,
        bytes: Vec<u8>,
        key: Option<&minisign::SecretKey>,
    ) -> Result<Self> {
        let sidecar = package::sum_line(Sha256::of(&bytes), &name);
        let mut evidence = vec![(format!("{name}.sha256"), sidecar)];
        if let Some(key) = key {
            let signature = super::sign::signature(key, &name, &bytes)?;
            evidence.push((format!("{name}.minisig"), signature));
        }
        Ok(Self {
            name,
            bytes,
            evidence,
        })
    }
}

/// Delivers one package into `dir`, evidence first.
pub(crate) fn into_folder(dir: &Path, delivery: &Delivery) -> Result<()> {
    for (name, text) in &delivery.evidence {
        evidence(dir, name, text)?;
    }
    let name = &delivery.name;
    let part = dir.join(format!(".{name}.part"));
    let mut file = std::fs::File::create(&part)
        .with_context(|| format!("cannot create {}", part.display()))?;
    file.write_all(&delivery.bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", part.display()))?;
    let target = dir.join(name);
    std::fs::rename(&part, &target)
        .with_context(|| format!("cannot rename into {}", target.display()))?;
    Ok(())
}

/// Writes evidence file `name` into `dir` under a hidden name, then renames it into place.
fn evidence(dir: &Path, name: &str, text: &str) -> Result<()> {
    let hidden = dir.join(format!(".{name}.part"));
    std::fs::write(&hidden, text).with_context(|| format!("cannot write {}", hidden.display()))?;
    let target = dir.join(name);
    std::fs::rename(&hidden, &target)
        .with_context(|| format!("cannot rename into {}", target.display()))
}
