//! TLS for the public listeners (R4.1): rustls, HTTP/2 or HTTP/1.1 (or 1.0) chosen by ALPN
//! ([`HTTP_ALPN`]), and a certificate that can be renewed without a restart.
//!
//! The certificate chain and key are PEM files (`tls_cert`, `tls_key`). [`Tls::reload`]
//! reads them again, on SIGHUP or when either file changes ([`Stamp`]); a new handshake
//! uses the new pair, connections already open keep theirs, and a pair that does not load is
//! refused with the old one kept.
//!
//! With `acme_domains` the certificate comes over ACME instead ([`Tls::resolved`]): no
//! files, a resolver picks each handshake's certificate, and a reload (SIGHUP) leaves it be.
//!
//! A listener may also ask clients for a certificate ([`Tls::with_client_ca`], the
//! replication feed's `feed_client_ca`): one that is presented must chain to that authority
//! or the handshake fails; a client without one is let through, and its requests carry no
//! [`super::CertifiedClient`], for the listener to refuse them or to ask for a token.
//!
//! # Guarantees
//! - TLS is rustls only, with its safe defaults (TLS 1.2 and 1.3); no OpenSSL.
//! - A returning visitor resumes its session instead of a full handshake: every
//!   configuration issues stateless session tickets from one process-wide ticketer
//!   ([`ticketer`], keys rotated by rustls every six hours, never written anywhere), so a
//!   certificate reload does not end resumption.
//! - A key that does not match the certificate is refused when loading, not at the first
//!   handshake; when it matches another certificate of the file than the first (a chain in
//!   the wrong order), the refusal says so.
//! - A reload refuses a certificate that has expired or is not yet valid: the old pair stays
//!   (at start such a pair is served, so that plain HTTP and the rest still start).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols offered by ALPN, in the server's order of preference: HTTP/2, then
/// HTTP/1.1, and `http/1.0`, which an HTTP/1.0 client offers alone (`curl --http1.0`): with
/// no protocol in common the handshake would fail (`no_application_protocol`), where nginx
/// serves it. All but `h2` are served by the same HTTP/1 connection, which answers each
/// request in its own version.
const HTTP_ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"http/1.0"];

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
    /// The authority of client certificates cannot be used.
    #[error("{path}: cannot check client certificates against it: {why}")]
    ClientCa {
        /// The authority's file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Making a self-signed pair failed.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

/// The live TLS configuration of the public listeners.
pub(crate) struct Tls {
    /// The PEM files it was read from; `None` when a resolver picks the certificate of each
    /// handshake ([`Tls::resolved`]), which then has nothing to reload.
    files: Option<Files>,
    config: ArcSwap<ServerConfig>,
}

/// The files a [`Tls`] reads its pair from.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// The authority client certificates are checked against, if the listener asks for one.
    client_ca: Option<PathBuf>,
    stamp: Mutex<Vec<Option<Stamp>>>,
}

/// What tells one version of a file from another: which file the path names (device and
/// inode, so a new file renamed into place counts even when it was given the old one's
/// modification time, as `cp -p`, `rsync -a` or `touch -r` do) and when it was last written
/// or had its inode changed (nanosecond times the writer cannot set back), and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of the file at `path` as it is now (following a symbolic link, as the
    /// reload reads it), or `None` if it cannot be looked at.
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl Tls {
    /// Loads the pair; fails with a message naming the file at fault.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        Self::with_client_ca(cert, key, None)
    }

    /// Loads the pair, asking clients for a certificate from `client_ca` when given (see the
    /// module documentation); fails with a message naming the file at fault.
    pub(crate) fn with_client_ca(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Arc<Self>, TlsError> {
        let files = Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: client_ca.map(Path::to_owned),
            stamp: Mutex::new(Vec::new()),
        };
        *files.stamp.lock().unwrap_or_else(|p| p.into_inner()) = files.stamps();
        Ok(Arc::new(Self {
            config: ArcSwap::from_pointee(server_config(
                cert,
                read_certificates(cert)?,
                key,
                client_ca,
            )?),
            files: Some(files),
        }))
    }

    /// TLS whose certificate `resolver` picks at each handshake (the certificate obtained
    /// over ACME, [`super::challenge::AcmeAnswers`]): changing it there changes it for new
    /// handshakes, without touching open connections. Offers HTTP/2, HTTP/1.1 and the
    /// TLS-ALPN-01 validation protocol `acme-tls/1`.
    pub(crate) fn resolved(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = HTTP_ALPN.iter().map(|p| p.to_vec()).collect();
        config
            .alpn_protocols
            .push(super::challenge::ACME_TLS_ALPN.to_vec());
        config.ticketer = ticketer()?;
        Ok(Arc::new(Self {
            files: None,
            config: ArcSwap::from_pointee(config),
        }))
    }

    /// An acceptor with the current pair.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Loads the pair again if `forced` or if either file changed; returns whether a new
    /// pair is now in use. On failure (unreadable, mismatched, or a certificate not valid
    /// now) the old pair stays. A [`Tls::resolved`] has no files:
    /// nothing is reloaded, its certificate stays.
    pub(crate) fn reload(&self, forced: bool) -> Result<bool, TlsError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let now = files.stamps();
        let mut stamp = files.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if !forced && *stamp == now {
            return Ok(false);
        }
        *stamp = now;
        drop(stamp);
        let chain = read_certificates(&files.cert)?;
        valid_now(&files.cert, &chain, SystemTime::now())?;
        let config = server_config(&files.cert, chain, &files.key, files.client_ca.as_deref())?;
        self.config.store(Arc::new(config));
        Ok(true)
    }
}

impl Files {
    /// The stamps of its files.
    fn stamps(&self) -> Vec<Option<Stamp>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| Stamp::of(p))
            .collect()
    }
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

/// How far ahead of this server's clock a certificate's start may be and still be served:
/// the clocks of whoever issued it and of this server differ a little.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// `Ok` if the first certificate of `chain` (read from `path`) is valid at `now` (its start
/// up to [`CLOCK_SKEW`] ahead); otherwise a [`TlsError::Pem`] saying since or until when it
/// is not.
fn valid_now(path: &Path, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), TlsError> {
    let refused = |why: String| TlsError::Pem {
        path: path.to_owned(),
        why,
    };
    let leaf = chain
        .first()
        .ok_or_else(|| refused("no CERTIFICATE block in the file".to_owned()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| refused(format!("its first certificate cannot be read: {e}")))?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(refused(format!(
            "the certificate expired on {}",
            validity.not_after
        )));
    }
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    if validity.not_before.timestamp() > now.saturating_add(skew) {
        return Err(refused(format!(
            "the certificate is not valid before {}",
            validity.not_before
        )));
    }
    Ok(())
}

/// A rustls server configuration for the pair (`chain` read from `cert`), offering HTTP/2 and
/// HTTP/1.1, checking the certificates clients present against `client_ca` when given.
fn server_config(
    cert: &Path,
    chain: Vec<CertificateDer<'static>>,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let key_der = read_private_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let refused = |why: String| TlsError::ClientCa {
                path: path.to_owned(),
                why,
            };
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certificates(path)? {
                roots.add(ca).map_err(|e| refused(e.to_string()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| refused(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = match builder.with_single_cert(chain.clone(), key_der.clone_key()) {
        Ok(config) => config,
        Err(e) => return Err(out_of_order(cert, &chain, key_der, &provider).unwrap_or(e.into())),
    };
    config.alpn_protocols = HTTP_ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = ticketer()?;
    Ok(config)
}

/// The refusal of a chain whose first certificate is not that of `key` but another is (the
/// authorities before the server's own certificate); `None` when none is `key`'s.
fn out_of_order(
    cert: &Path,
    chain: &[CertificateDer<'static>],
    key: PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
) -> Option<TlsError> {
    let signer = provider.key_provider.load_private_key(key).ok()?;
    let at = chain.iter().skip(1).position(|c| {
        rustls::sign::CertifiedKey::new(vec![c.clone()], signer.clone())
            .keys_match()
            .is_ok()
    })?;
    Some(TlsError::Pem {
        path: cert.to_owned(),
        why: format!(
            "the key is that of certificate {} of the file, not of the first: the chain is in \
             the wrong order; put the server's own certificate first, then the authorities \
             that signed it",
            at + 2
        ),
    })
}

/// The process's session ticketer, made on first use and shared by every configuration.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsError> {
    static TICKETER: std::sync::OnceLock<Arc<dyn rustls::server::ProducesTickets>> =
        std::sync::OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Ok(t.clone());
    }
    let made = rustls::crypto::ring::Ticketer::new()?;
    Ok(TICKETER.get_or_init(|| made).clone())
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

    #[test]
    fn a_client_authority_is_read_with_the_pair_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&dir.path().join("a")).unwrap();
        let (ca, _) = self_signed(&dir.path().join("ca")).unwrap();
        let tls = Tls::with_client_ca(&cert, &key, Some(&ca)).unwrap();
        assert!(!tls.reload(false).unwrap());
        let missing = dir.path().join("no-ca.pem");
        let err = Tls::with_client_ca(&cert, &key, Some(&missing))
            .err()
            .unwrap();
        assert!(err.to_string().contains("no-ca.pem"), "{err}");
        // A change of the authority's file alone is picked up.
        std::fs::write(&ca, std::fs::read(&cert).unwrap()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&ca)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(tls.reload(false).unwrap());
    }

    #[test]
    fn a_certificate_is_served_from_a_little_before_its_start_until_its_end() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2031, 1, 1);
        let chain = [params.self_signed(&key).unwrap().der().clone()];
        // 2030-01-01T00:00:00Z
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        let at = |now: SystemTime| valid_now(Path::new("cert.pem"), &chain, now);
        assert!(at(start + Duration::from_secs(180 * 86_400)).is_ok());
        assert!(at(start - CLOCK_SKEW + Duration::from_secs(1)).is_ok());
        let early = at(start - Duration::from_secs(3600)).unwrap_err();
        assert!(early.to_string().contains("not valid before"), "{early}");
        let late = at(start + Duration::from_secs(366 * 86_400)).unwrap_err();
        assert!(late.to_string().contains("expired"), "{late}");
        assert!(valid_now(Path::new("cert.pem"), &[], start).is_err());
    }
}
