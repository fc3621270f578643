//! TLS for the public listeners (R4.1): rustls, HTTP/2 or HTTP/1.1 chosen by ALPN, and a
//! certificate that can be renewed without a restart.
//!
//! The certificate chain and key are PEM files (`tls_cert`, `tls_key`). [`Tls::reload`]
//! reads them again, on SIGHUP or when their modification times change; a new handshake
//! uses the new pair, connections already open keep theirs, and a pair that does not load is
//! refused with the old one kept.
//!
//! # Guarantees
//! - TLS is rustls only, with its safe defaults (TLS 1.2 and 1.3); no OpenSSL.
//! - A key that does not match the certificate is refused when loading, not at the first
//!   handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the pair (a key that does not match, an unsupported key type).
    #[error("the certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
    /// Making a self-signed pair failed.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

/// The live TLS configuration of the public listeners.
pub(crate) struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: ArcSwap<ServerConfig>,
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Tls {
    /// Loads the pair; fails with a message naming the file at fault.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let config = server_config(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            config: ArcSwap::from_pointee(config),
            stamp: Mutex::new(stamps(cert, key)),
        }))
    }

    /// An acceptor with the current pair.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Loads the pair again if `forced` or if either file changed; returns whether a new
    /// pair is now in use. On failure the old pair stays.
    pub(crate) fn reload(&self, forced: bool) -> Result<bool, TlsError> {
        let now = stamps(&self.cert, &self.key);
        let mut stamp = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if !forced && *stamp == now {
            return Ok(false);
        }
        *stamp = now;
        drop(stamp);
        let config = server_config(&self.cert, &self.key)?;
        self.config.store(Arc::new(config));
        Ok(true)
    }
}

fn stamps(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

/// Every certificate in the PEM file at `path`; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: rustls_pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        why: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            why: "no CERTIFICATE block in the file".to_owned(),
        });
    }
    Ok(chain)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// A rustls server configuration for the pair, offering HTTP/2 and HTTP/1.1.
fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(cert)?;
    let key_der = read_private_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Writes a self-signed certificate for `localhost` and 127.0.0.1 (for tests and drills,
/// never for the public) as `cert.pem` and `key.pem` in `dir`.
pub(crate) fn self_signed(
    dir: &Path,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error + Send + Sync>> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).map_err(TlsError::from)?;
    std::fs::create_dir_all(dir)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, signing_key.serialize_pem().as_bytes())?;
    Ok((cert_path, key_path))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_loads_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&dir.path().join("a")).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        assert_eq!(tls.config.load().alpn_protocols[0], b"h2");
        let (_, other_key) = self_signed(&dir.path().join("b")).unwrap();
        assert!(matches!(
            Tls::load(&cert, &other_key),
            Err(TlsError::Rustls(_))
        ));
        let err = Tls::load(&dir.path().join("missing.pem"), &key)
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        assert!(
            !tls.reload(false).unwrap(),
            "unchanged files are not reloaded"
        );
        assert!(tls.reload(true).unwrap());
    }
}
