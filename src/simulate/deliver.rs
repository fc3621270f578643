//! Delivery into a folder, as an institute's upload should land: evidence first, then the
//! package renamed into place.
//!
//! # Guarantees
//! - `<name>.sha256` (in `sha256sum` format) is in place before the package appears.
//! - The package is written as `.<name>.part`, flushed to disk, and renamed to `<name>`: a
//!   reader of the folder never sees half a package under its final name.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::hash::Sha256;

/// Delivers package `name` with `bytes` into `dir`, sidecar first.
pub(crate) fn deliver(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let digest = Sha256::of(bytes).to_hex();
    let sidecar = dir.join(format!("{name}.sha256"));
    let hidden = dir.join(format!(".{name}.sha256.part"));
    std::fs::write(&hidden, format!("{digest}  {name}\n"))
        .with_context(|| format!("cannot write {}", hidden.display()))?;
    std::fs::rename(&hidden, &sidecar)
        .with_context(|| format!("cannot rename into {}", sidecar.display()))?;
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
