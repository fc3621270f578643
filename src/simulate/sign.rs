//! Minisign keys and signatures for simulated deliveries: `difusor keygen` makes a pair, and
//! `difusor simulate --sign-key` signs every package with the secret key, as an institute
//! that signs its packages would.
//!
//! # Guarantees
//! - `keygen` never overwrites a key: it refuses a folder that already holds one.
//! - The secret key file is written readable by its owner only (0600 on Unix).
//! - A signature verifies with the public key file `keygen` wrote, through `minisign_keys`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use minisign::{KeyPair, SecretKey};

/// Names of the files `keygen` writes.
const SECRET: &str = "difusor.key";
const PUBLIC: &str = "difusor.pub";

/// Writes a new key pair into `dir`: the secret key unencrypted, in minisign's binary form
/// (for drills and tests; not for the minisign tool), the public key as minisign writes it.
/// Returns the paths of the secret and public key files.
pub(crate) fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (secret, public) = (dir.join(SECRET), dir.join(PUBLIC));
    for path in [&secret, &public] {
        if path.exists() {
            bail!(
                "{} already exists; keygen never overwrites a key",
                path.display()
            );
        }
    }
    let pair = KeyPair::generate_unencrypted_keypair().context("cannot generate a key pair")?;
    let pk = pair.pk.to_box().context("cannot encode the public key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&secret)
        .with_context(|| format!("cannot create {}", secret.display()))?;
    std::io::Write::write_all(&mut file, &pair.sk.to_bytes())
        .with_context(|| format!("cannot write {}", secret.display()))?;
    std::fs::write(&public, pk.into_string())
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok((secret, public))
}

/// Reads a secret key file written by `keygen`.
pub(crate) fn load(path: &Path) -> Result<SecretKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the minisign secret key {}", path.display()))?;
    SecretKey::from_bytes(&bytes)
        .with_context(|| format!("{} is not a key written by difusor keygen", path.display()))
}

/// The `.minisig` text of `bytes`, signed with `key`, naming the package.
pub(crate) fn signature(key: &SecretKey, name: &str, bytes: &[u8]) -> Result<String> {
    let trusted = format!("file:{name} SIMULACRO");
    let sig = minisign::sign(None, key, bytes, Some(&trusted), None)
        .with_context(|| format!("cannot sign {name}"))?;
    Ok(sig.into_string())
}
