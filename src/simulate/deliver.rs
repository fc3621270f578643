//! Delivery into a folder, as an institute's upload should land: evidence first, then the
//! package renamed into place.
//!
//! # Guarantees
//! - `<name>.sha256` (in `sha256sum` format), and `<name>.minisig` when a key is given, are in
//!   place before the package appears.
//! - The package is written as `.<name>.part`, flushed to disk, and renamed to `<name>`: a
//!   reader of the folder never sees half a package under its final name.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::hash::Sha256;

/// Delivers package `name` with `bytes` into `dir`, evidence first; signed with `key` if any.
pub(crate) fn deliver(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    key: Option<&minisign::SecretKey>,
) -> Result<()> {
    let digest = Sha256::of(bytes).to_hex();
    evidence(
        dir,
        &format!("{name}.sha256"),
        &format!("{digest}  {name}\n"),
    )?;
    if let Some(key) = key {
        let signature = super::sign::signature(key, name, bytes)?;
        evidence(dir, &format!("{name}.minisig"), &signature)?;
    }
    let part = dir.join(format!(".{name}.part"));
    let mut file = std::fs::File::create(&part)
        .with_context(|| format!("cannot create {}", part.display()))?;
    file.write_all(bytes)
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
