//! Automatic HTTPS over ACME (RFC 8555, Let's Encrypt): the certificate of `acme_domains`,
//! obtained, kept in the data folder and renewed without a restart.
//!
//! The account key and the certificate live in `<data_dir>/acme/` (`account.json`, and
//! `certificate.pem`: a first line naming the directory that issued it, then the chain and its
//! private key, in one file so that all three change in one rename). The certificate is
//! proved with TLS-ALPN-01 on the HTTPS listener or HTTP-01 on the plain one
//! ([`crate::http::challenge`] answers both); the HTTP client is reqwest with rustls,
//! trusting the public web's authorities or `acme_directory_ca`.
//!
//! # Guarantees
//! - At start a kept certificate that has not expired is served at once, with no ACME round
//!   trip; without one the server starts (plain HTTP serves) and the certificate is obtained
//!   in the background, HTTPS handshakes failing cleanly meanwhile.
//! - A kept certificate issued by another directory than `acme_directory` (Let's Encrypt's
//!   staging server, tried first) is served only until one of `acme_directory` arrives, which
//!   is ordered at once, not at the kept one's renewal date. A certificate kept without the
//!   line naming its directory is taken as issued by the directory of the kept account, and
//!   as issued elsewhere when there is no account either.
//! - The account is kept for its directory and used for every order; one the ACME server
//!   answers it does not know ([`ACCOUNT_FORGOTTEN`]) is replaced by a new account, kept in
//!   its place and journaled (`warning`, check `acme-account`), and the order placed again.
//! - Files are written durably (temporary name, fsync, rename, fsync of the folder), private
//!   keys readable by their owner only (mode 0600, folder 0700).
//! - Renewal is checked at start and at least hourly: the certificate is renewed when less
//!   than `acme_renew_before` is left, never before a third of its lifetime has passed. The
//!   new certificate is served to new handshakes; open connections keep theirs.
//! - A failure keeps the old certificate in service; it is logged, shown on the admin status
//!   and `/metrics`, journaled as a `warning` (check `acme`) once per run of failures, and
//!   `acme-recovered` when a certificate is obtained again. Attempts back off from
//!   [`FIRST_RETRY`] to [`MAX_RETRY`]; after a certificate arrives the next order waits at
//!   least [`FIRST_RETRY`], however short its lifetime.
//! - A certificate issued is served only if it names every one of `acme_domains`, matches
//!   the key we asked it for, and is valid now (expired or not yet valid: a failure, the old
//!   certificate stays). The chain the ACME server sends may hold certificates only: one that
//!   carries anything else (a private key of the server's, with which its certificate would
//!   be served instead of ours) is a failure, and nothing of it is kept.
//! - Everything the ACME server sends is bounded: [`MAX_RESPONSE_BYTES`] per answer, request
//!   timeouts, [`ATTEMPT_TIMEOUT`] for a whole order; tokens are checked before they are
//!   answered. Its words in an error (a problem document's detail, what a JSON reader
//!   quotes) reach the log, the journal and the status page with their control characters
//!   made visible, at most [`SHOWN_CHARS`] characters of each.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use jiff::Timestamp;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::config::{
    AcmeChallenge, Config, Invalid, LETS_ENCRYPT_STAGING, days_or_duration, service_url,
};
use crate::http::challenge::{AcmeAnswers, ChallengeError};
use crate::http::tls;
use crate::journal::{EventKind, Journal};
use crate::peer_text::clipped;
use crate::store::layout::Layout;

/// The first wait after a failed attempt; it doubles up to [`MAX_RETRY`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between failed attempts.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(3600);
/// The longest sleep between two looks at the certificate.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Longest an order may take, from account to certificate.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest answer taken from the ACME server.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Most names in `acme_domains` (Let's Encrypt's limit per certificate).
const MAX_DOMAINS: usize = 100;
/// The most characters of each error (and of each cause under it) shown: they may quote the
/// ACME server, which may answer up to [`MAX_RESPONSE_BYTES`].
const SHOWN_CHARS: usize = 512;
/// The account's file in the ACME folder.
const ACCOUNT_FILE: &str = "account.json";
/// The problem an ACME server answers for an account it does not know (RFC 8555, 6.7).
const ACCOUNT_FORGOTTEN: &str = "urn:ietf:params:acme:error:accountDoesNotExist";
/// The certificate's file (the line naming its directory, the chain, then the key) in the
/// ACME folder.
const CERTIFICATE_FILE: &str = "certificate.pem";
/// How the first line of [`CERTIFICATE_FILE`] begins, before the directory's URL (text
/// outside PEM blocks, which PEM readers pass over).
const DIRECTORY_LINE: &str = "ACME directory: ";

/// The ACME settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct AcmeSettings {
    /// The names, lowercase, without duplicates.
    pub(crate) domains: Vec<String>,
    /// `mailto:` contact, if given.
    pub(crate) contact: Option<String>,
    /// The directory URL.
    pub(crate) directory: String,
    /// The authority trusted for the directory's HTTPS, if not the public web's.
    pub(crate) directory_ca: Option<PathBuf>,
    /// The challenge answered.
    pub(crate) challenge: AcmeChallenge,
    /// Renew when less than this is left.
    pub(crate) renew_before: Duration,
}

impl AcmeSettings {
    /// The ACME settings, when `acme_domains` is set.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let s = &config.settings;
        if s.acme_domains.is_empty() {
            return Ok(None);
        }
        let mut domains = Vec::new();
        for d in &s.acme_domains {
            let name = dns_name(d).map_err(|why| {
                Invalid::new(
                    "acme_domains",
                    format!("{d:?} {why}; write a host name such as prep.example.mx"),
                )
            })?;
            if !domains.contains(&name) {
                domains.push(name);
            }
        }
        if domains.len() > MAX_DOMAINS {
            return Err(Invalid::new(
                "acme_domains",
                format!("at most {MAX_DOMAINS} names fit in one certificate"),
            ));
        }
        if !s.tls_cert.as_os_str().is_empty() || !s.tls_key.as_os_str().is_empty() {
            return Err(Invalid::Pair {
                first: "acme_domains",
                second: "tls_cert",
                message: "the HTTPS certificate is either obtained over ACME or read from \
                          files, not both: remove `tls_cert` and `tls_key`, or `acme_domains`"
                    .to_owned(),
            });
        }
        if config.tls_listen.is_empty() {
            return Err(Invalid::Pair {
                first: "acme_domains",
                second: "tls_listen",
                message: "the certificate obtained over ACME is served on the HTTPS listener: \
                          set `tls_listen` (0.0.0.0:443 in production)"
                    .to_owned(),
            });
        }
        if s.acme_challenge == AcmeChallenge::Http01 && config.listen.is_empty() {
            return Err(Invalid::Pair {
                first: "acme_challenge",
                second: "listen",
                message: "http-01 is answered on the plain HTTP listener: set `listen` on the \
                          port the ACME server checks (0.0.0.0:80 in production), or use \
                          tls-alpn-01"
                    .to_owned(),
            });
        }
        let contact = if s.acme_email.is_empty() {
            None
        } else {
            let e = s.acme_email.trim();
            let ok = e.len() <= 254
                && e.split('@').count() == 2
                && e.split('@').all(|p| !p.is_empty())
                && e.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(Invalid::new(
                    "acme_email",
                    format!("{e:?} is not an email address; write e.g. soporte@example.mx"),
                ));
            }
            Some(format!("mailto:{e}"))
        };
        let directory = match s.acme_directory.trim() {
            "staging" => LETS_ENCRYPT_STAGING.to_owned(),
            text => service_url("acme_directory", text)?.to_string(),
        };
        let directory_ca =
            (!s.acme_directory_ca.as_os_str().is_empty()).then(|| s.acme_directory_ca.clone());
        let renew_before = days_or_duration("acme_renew_before", &s.acme_renew_before)?;
        Ok(Some(Self {
            domains,
            contact,
            directory,
            directory_ca,
            challenge: s.acme_challenge,
            renew_before,
        }))
    }
}

/// A host name fit for a certificate, lowercase without a final dot; or why not.
fn dns_name(text: &str) -> Result<String, &'static str> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.contains('*') {
        return Err("is a wildcard, which needs the dns-01 challenge (not supported)");
    }
    if name.len() > 253 || name.is_empty() {
        return Err("is not a host name");
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("is not a host name");
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("is an address, not a host name");
    }
    Ok(name)
}

/// `e` and every error under it, `: `-separated, each once (an error that shows its source
/// in its own message is not repeated), each [`clipped`] to [`SHOWN_CHARS`]: any may quote
/// the ACME server.
fn with_causes(e: &dyn std::error::Error) -> String {
    let first = e.to_string();
    let mut text = clipped(&first, SHOWN_CHARS);
    let mut said = vec![first];
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !said.iter().any(|s| s.contains(&more)) {
            text.push_str(": ");
            text.push_str(&clipped(&more, SHOWN_CHARS));
            said.push(more);
        }
        cause = c.source();
    }
    text
}

/// Why a certificate was not obtained or kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    /// The ACME exchange failed (the server's problem document, or the transport).
    #[error("{0}")]
    Protocol(#[from] instant_acme::Error),
    /// The ACME server offered no challenge of the kind configured.
    #[error("the ACME server offers no {0} challenge for a name (setting `acme_challenge`)")]
    NoChallenge(&'static str),
    /// An authorization or the order ended in a state other than valid.
    #[error("{0}")]
    Refused(String),
    /// A challenge could not be installed.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// A key, request or certificate could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A file of the ACME folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The order took longer than [`ATTEMPT_TIMEOUT`].
    #[error("the order took longer than {0:?}")]
    Timeout(Duration),
}

impl From<rcgen::Error> for AcmeError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

impl From<rustls::Error> for AcmeError {
    fn from(e: rustls::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

/// A certificate with its key, ready to serve, and what it says.
struct Kept {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

/// What a certificate says, for the status and the renewal.
#[derive(Debug, Clone)]
struct CertInfo {
    serial: String,
    names: Vec<String>,
    not_before: Timestamp,
    not_after: Timestamp,
    /// The directory that issued it, when known.
    directory: Option<String>,
}

impl CertInfo {
    /// When it is to be renewed: `renew_before` ahead of its end, but not before a third of
    /// its lifetime has passed.
    fn renew_at(&self, renew_before: Duration) -> Timestamp {
        let lifetime = self.not_after.duration_since(self.not_before);
        let floor = self.not_before + lifetime / 3;
        let by_setting = self
            .not_after
            .checked_sub(
                jiff::SignedDuration::try_from(renew_before).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        by_setting.max(floor)
    }

    /// `Ok` if it is valid at `now` (allowing [`tls::CLOCK_SKEW`] before its start); otherwise
    /// why it cannot be served.
    fn valid_at(&self, now: Timestamp) -> Result<(), AcmeError> {
        let skew = jiff::SignedDuration::try_from(tls::CLOCK_SKEW).unwrap_or_default();
        if self.not_after <= now {
            return Err(AcmeError::Certificate(format!(
                "the certificate issued (serial {}) expired at {}, before it arrived",
                self.serial, self.not_after
            )));
        }
        if self.not_before > now + skew {
            return Err(AcmeError::Certificate(format!(
                "the certificate issued (serial {}) is not valid before {}; this server's \
                 clock says {now}",
                self.serial, self.not_before
            )));
        }
        Ok(())
    }

    /// Whether it names every one of `domains`.
    fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.names.contains(d))
    }
}

/// Reads a chain and key (PEM, in one text, after the line naming the directory that issued
/// them, if any) into a certificate ready to serve.
fn parse_kept(pem: &[u8]) -> Result<Kept, AcmeError> {
    let bad = |why: String| AcmeError::Certificate(why);
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| bad("no CERTIFICATE block".to_owned()))?;
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| bad(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_second(t.timestamp()).map_err(|e| bad(e.to_string()))
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    let info = CertInfo {
        serial: cert.raw_serial_as_string(),
        names,
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
        directory: pem
            .split(|&b| b == b'\n')
            .next()
            .and_then(|line| line.strip_prefix(DIRECTORY_LINE.as_bytes()))
            .map(|url| String::from_utf8_lossy(url).trim().to_owned()),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match()?;
    Ok(Kept {
        key: Arc::new(key),
        info,
    })
}

/// `Ok` if the chain the ACME server issued holds certificates only. The key the certificate
/// is served with is found in the same text once ours is appended: a key in the chain would
/// be taken first, and a server holding that key could impersonate this one with a
/// certificate difusor believes its own.
fn only_certificates(chain: &str) -> Result<(), AcmeError> {
    use rustls_pki_types::pem::SectionKind;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(chain.as_bytes()) {
        let (kind, _) = section
            .map_err(|e| AcmeError::Certificate(format!("the chain issued cannot be read: {e}")))?;
        if kind != SectionKind::Certificate {
            return Err(AcmeError::Certificate(format!(
                "the chain issued holds a PEM block of kind {kind:?} besides certificates (a \
                 private key sent by the ACME server is never served); refused"
            )));
        }
    }
    Ok(())
}

/// The certificate answering TLS-ALPN-01 for `name` (RFC 8737): self-signed, naming it, with
/// the acmeIdentifier extension holding `digest`.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Writes `bytes` at `path` durably: a temporary name in the same folder, fsync, rename,
/// fsync of the folder; `mode` for the file (0600 for keys), the folder 0700.
fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AcmeError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let io = |source: std::io::Error| AcmeError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The account as kept: the directory it belongs to and its credentials (with its key).
#[derive(Serialize, Deserialize)]
struct KeptAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// ACME's HTTP client: reqwest with rustls (ring), bounded answers.
struct Http(reqwest::Client);

impl Http {
    /// Trusting the public web's authorities, or `ca` instead when given.
    fn new(ca: Option<&Path>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let roots = match ca {
            None => {
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
            }
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = tls::read_certificates(path).context("setting `acme_directory_ca`")?;
                for cert in certs {
                    roots.add(cert).with_context(|| {
                        format!(
                            "setting `acme_directory_ca`: {} holds a certificate that cannot \
                             be an authority",
                            path.display()
                        )
                    })?;
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("difusor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot set up the ACME client")?;
        Ok(Self(client))
    }
}

impl HttpClient for Http {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let mut answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(Box::new(e)))?;
            let mut bytes = Vec::new();
            while let Some(chunk) = answer.chunk().await.map_err(|e| other(Box::new(e)))? {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(instant_acme::Error::Str(
                        "an answer of the ACME server larger than 1 MiB",
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            let mut res = http::Response::new(Full::new(Bytes::from(bytes)));
            *res.status_mut() = answer.status();
            *res.headers_mut() = std::mem::take(answer.headers_mut());
            Ok(BytesResponse::from(res))
        })
    }
}

/// The ACME state the admin listener shows.
#[derive(Debug, Serialize)]
pub(crate) struct AcmeStatus {
    /// The names.
    pub(crate) domains: Vec<String>,
    /// The directory URL.
    pub(crate) directory: String,
    /// The challenge answered.
    pub(crate) challenge: AcmeChallenge,
    /// The certificate served, once there is one.
    pub(crate) certificate: Option<CertificateStatus>,
    /// When it is to be renewed.
    pub(crate) renew_at: Option<String>,
    /// When the next attempt is, if one is planned.
    pub(crate) next_attempt_at: Option<String>,
    /// Failed attempts in a row (0 while it works).
    pub(crate) consecutive_failures: u64,
    /// Failed attempts since the start.
    pub(crate) failures_total: u64,
    /// Why the last attempt failed, while failing.
    pub(crate) last_error: Option<String>,
    /// Since when attempts fail.
    pub(crate) failing_since: Option<String>,
}

/// The certificate served.
#[derive(Debug, Serialize)]
pub(crate) struct CertificateStatus {
    /// Its serial number, hex bytes separated by colons.
    pub(crate) serial: String,
    /// The names it holds.
    pub(crate) names: Vec<String>,
    /// Start of validity.
    pub(crate) not_before: String,
    /// End of validity.
    pub(crate) not_after: String,
    /// End of validity, Unix seconds.
    pub(crate) not_after_unix: i64,
    /// Seconds left until it expires (negative once expired).
    pub(crate) seconds_left: i64,
    /// The ACME directory that issued it, when known.
    pub(crate) directory: Option<String>,
}

/// What the renewal task knows, for the admin listener.
#[derive(Debug, Default)]
struct BoardState {
    certificate: Option<CertInfo>,
    renew_at: Option<Timestamp>,
    next_attempt: Option<Timestamp>,
    consecutive_failures: u64,
    failures_total: u64,
    last_error: Option<String>,
    failing_since: Option<Timestamp>,
}

/// The ACME state, written by the renewal task, read by the admin listener.
#[derive(Debug)]
pub(crate) struct Board {
    settings: AcmeSettings,
    state: Mutex<BoardState>,
}

impl Board {
    fn update(&self, f: impl FnOnce(&mut BoardState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The state now.
    pub(crate) fn snapshot(&self) -> AcmeStatus {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now();
        AcmeStatus {
            domains: self.settings.domains.clone(),
            directory: self.settings.directory.clone(),
            challenge: self.settings.challenge,
            certificate: s.certificate.as_ref().map(|c| CertificateStatus {
                serial: c.serial.clone(),
                names: c.names.clone(),
                not_before: c.not_before.to_string(),
                not_after: c.not_after.to_string(),
                not_after_unix: c.not_after.as_second(),
                seconds_left: c.not_after.as_second() - now.as_second(),
                directory: c.directory.clone(),
            }),
            renew_at: s.renew_at.map(|t| t.to_string()),
            next_attempt_at: s.next_attempt.map(|t| t.to_string()),
            consecutive_failures: s.consecutive_failures,
            failures_total: s.failures_total,
            last_error: s.last_error.clone(),
            failing_since: s.failing_since.map(|t| t.to_string()),
        }
    }
}

/// Obtains and renews the certificate of `acme_domains`.
pub(crate) struct Acme {
    settings: AcmeSettings,
    dir: PathBuf,
    http: reqwest::Client,
    answers: Arc<AcmeAnswers>,
    board: Arc<Board>,
    journal: Arc<Journal>,
}

impl Acme {
    /// Reads the kept certificate (served at once if it has not expired) and sets up the
    /// client; an `acme_directory_ca` that cannot be read stops the start.
    pub(crate) fn start(
        settings: &AcmeSettings,
        layout: &Layout,
        journal: Arc<Journal>,
    ) -> anyhow::Result<Self> {
        let http = Http::new(settings.directory_ca.as_deref())?;
        let acme = Self {
            settings: settings.clone(),
            dir: layout.acme(),
            http: http.0,
            answers: Arc::new(AcmeAnswers::default()),
            board: Arc::new(Board {
                settings: settings.clone(),
                state: Mutex::new(BoardState::default()),
            }),
            journal,
        };
        let path = acme.dir.join(CERTIFICATE_FILE);
        match std::fs::read(&path) {
            Ok(pem) => match parse_kept(&pem) {
                Ok(mut kept) if kept.info.not_after > Timestamp::now() => {
                    if kept.info.directory.is_none() {
                        // Kept before its directory was written with it.
                        kept.info.directory = acme.read_account().map(|a| a.directory);
                    }
                    tracing::info!(
                        serial = %kept.info.serial,
                        not_after = %kept.info.not_after,
                        "serving the certificate kept from an earlier ACME order"
                    );
                    if kept.info.directory.as_deref() != Some(settings.directory.as_str()) {
                        tracing::warn!(
                            issued_by = kept.info.directory.as_deref().unwrap_or("unknown"),
                            directory = %settings.directory,
                            "the kept ACME certificate was not issued by `acme_directory`: it \
                             is served until that directory issues one, ordered now"
                        );
                    }
                    acme.install(kept);
                }
                Ok(kept) => tracing::warn!(
                    not_after = %kept.info.not_after,
                    "the kept ACME certificate has expired; a new one is being obtained"
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "the kept ACME certificate cannot be used; a new one is being obtained"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => tracing::info!(
                domains = ?settings.domains,
                "no ACME certificate yet: HTTPS waits for one, obtained in the background"
            ),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the kept ACME certificate")
            }
        }
        Ok(acme)
    }

    /// The certificate and the challenges' answers, for the public listeners.
    pub(crate) fn answers(&self) -> Arc<AcmeAnswers> {
        self.answers.clone()
    }

    /// The state, for the admin listener.
    pub(crate) fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// Makes `kept` the certificate served.
    fn install(&self, kept: Kept) {
        let renew_at = kept.info.renew_at(self.settings.renew_before);
        self.answers.set_certificate(kept.key);
        self.board.update(|s| {
            s.certificate = Some(kept.info);
            s.renew_at = Some(renew_at);
        });
    }

    /// When the certificate served is to be renewed; `now` if there is none, if it lacks a
    /// name of `acme_domains`, or if another directory than `acme_directory` issued it.
    fn renew_at(&self, now: Timestamp) -> Timestamp {
        let state = self.board.state.lock().unwrap_or_else(|p| p.into_inner());
        match &state.certificate {
            Some(c)
                if c.covers(&self.settings.domains)
                    && c.directory.as_deref() == Some(self.settings.directory.as_str()) =>
            {
                c.renew_at(self.settings.renew_before)
            }
            _ => now,
        }
    }

    /// Checks at start and at least hourly; obtains a certificate when one is due, backing
    /// off after failures; until `stop`.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failing: Option<(Timestamp, Timestamp)> = None; // (since, next attempt)
        let mut backoff = FIRST_RETRY;
        // No order sooner than FIRST_RETRY after a certificate arrived, even one that is due
        // for renewal as soon as it arrives (a lifetime shorter than the ACME exchange).
        let mut quiet_until = Timestamp::MIN;
        loop {
            let now = Timestamp::now();
            let next =
                failing.map_or_else(|| self.renew_at(now).max(quiet_until), |(_, next)| next);
            self.board.update(|s| s.next_attempt = Some(next));
            if next > now {
                let wait = next.duration_since(now).unsigned_abs().min(CHECK_EVERY);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => return,
                }
            }
            let renewal = self.answers.has_certificate();
            tracing::info!(domains = ?self.settings.domains, renewal, "asking the ACME server for a certificate");
            let attempt = tokio::select! {
                r = tokio::time::timeout(ATTEMPT_TIMEOUT, self.obtain()) => r,
                _ = stop.changed() => return,
            };
            match attempt
                .map_err(|_| AcmeError::Timeout(ATTEMPT_TIMEOUT))
                .and_then(|r| r)
            {
                Ok(kept) => {
                    tracing::info!(
                        serial = %kept.info.serial,
                        not_after = %kept.info.not_after,
                        renewal,
                        "ACME certificate obtained; new HTTPS connections use it"
                    );
                    self.journal.post(
                        EventKind::AcmeCertificate,
                        None,
                        json!({"domains": self.settings.domains, "serial": kept.info.serial,
                               "not_after": kept.info.not_after.to_string(), "renewal": renewal}),
                    );
                    if let Some((since, _)) = failing.take() {
                        let failures = self.board.snapshot().consecutive_failures;
                        self.journal.post(
                            EventKind::AcmeRecovered,
                            None,
                            json!({"failures": failures, "since": since.to_string()}),
                        );
                    }
                    self.install(kept);
                    quiet_until = Timestamp::now()
                        + jiff::SignedDuration::try_from(FIRST_RETRY).unwrap_or_default();
                    self.board.update(|s| {
                        s.consecutive_failures = 0;
                        s.last_error = None;
                        s.failing_since = None;
                    });
                    backoff = FIRST_RETRY;
                }
                Err(e) => {
                    let why = with_causes(&e);
                    let next = Timestamp::now()
                        + jiff::SignedDuration::try_from(backoff)
                            .unwrap_or(jiff::SignedDuration::MAX);
                    tracing::warn!(error = %why, retry_in = ?backoff, served = renewal, "the ACME certificate was not obtained; the one served (if any) stays");
                    if failing.is_none() {
                        self.journal.post(
                            EventKind::Warning,
                            None,
                            json!({
                                "warning": format!("ACME certificate for {} not obtained: {why}", self.settings.domains.join(", ")),
                                "check": "acme",
                                "domains": self.settings.domains,
                                "error": why,
                            }),
                        );
                    }
                    let since = failing.map_or(now, |(since, _)| since);
                    failing = Some((since, next));
                    self.board.update(|s| {
                        s.consecutive_failures += 1;
                        s.failures_total += 1;
                        s.last_error = Some(why);
                        s.failing_since = Some(since);
                    });
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// A builder of accounts speaking through this server's HTTP client.
    fn builder(&self) -> instant_acme::AccountBuilder {
        Account::builder_with_http(Box::new(Http(self.http.clone())))
    }

    /// The account kept in the ACME folder, whichever its directory, if one can be read.
    fn read_account(&self) -> Option<KeptAccount> {
        let text = std::fs::read(self.dir.join(ACCOUNT_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The account kept for this directory, if there is one.
    async fn kept_account(&self) -> Result<Option<Account>, AcmeError> {
        if let Some(kept) = self.read_account()
            && kept.directory == self.settings.directory
        {
            return Ok(Some(
                self.builder().from_credentials(kept.credentials).await?,
            ));
        }
        Ok(None)
    }

    /// A new account, kept in place of any other.
    async fn new_account(&self) -> Result<Account, AcmeError> {
        let path = self.dir.join(ACCOUNT_FILE);
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await?;
        let text = serde_json::to_vec_pretty(&KeptAccount {
            directory: self.settings.directory.clone(),
            credentials,
        })
        .map_err(instant_acme::Error::from)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &text, 0o600))
            .await
            .map_err(|e| AcmeError::Certificate(e.to_string()))??;
        tracing::info!(directory = %self.settings.directory, "ACME account created and kept");
        Ok(account)
    }

    /// One order, from account to a certificate kept on disk. An order the ACME server
    /// refuses because it no longer knows the kept account ([`ACCOUNT_FORGOTTEN`]: a
    /// directory reset, an account removed) is placed again once, with a new account.
    async fn obtain(&self) -> Result<Kept, AcmeError> {
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let new_order = NewOrder::new(&identifiers);
        let mut order = match self.kept_account().await? {
            None => self.new_account().await?.new_order(&new_order).await?,
            Some(kept) => match kept.new_order(&new_order).await {
                Err(instant_acme::Error::Api(problem))
                    if problem.r#type.as_deref() == Some(ACCOUNT_FORGOTTEN) =>
                {
                    let detail = clipped(problem.detail.unwrap_or_default(), SHOWN_CHARS);
                    tracing::warn!(%detail, "the ACME server no longer knows the account kept in acme/account.json; a new one is created");
                    self.journal.post(
                        EventKind::Warning,
                        None,
                        json!({
                            "warning": format!(
                                "the ACME server {} no longer knows the account kept in \
                                 acme/account.json ({}); a new account was created and kept \
                                 in its place",
                                self.settings.directory, detail
                            ),
                            "check": "acme-account",
                        }),
                    );
                    self.new_account().await?.new_order(&new_order).await?
                }
                other => other?,
            },
        };
        let mut installed = Installed {
            answers: &self.answers,
            alpn: Vec::new(),
            http01: Vec::new(),
        };
        let (kind, name) = match self.settings.challenge {
            AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
            AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Refused(format!("an authorization is {other:?}")));
                }
            }
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or(AcmeError::NoChallenge(name))?;
            let host = challenge.identifier().to_string();
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                AcmeChallenge::Http01 => {
                    self.answers
                        .add_http01(&challenge.token, key_authorization.as_str())?;
                    installed.http01.push(challenge.token.clone());
                }
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_certificate(&host, key_authorization.digest().as_ref())?;
                    self.answers.add_alpn(&host, cert)?;
                    installed.alpn.push(host.clone());
                }
            }
            tracing::info!(%host, challenge = name, "ACME challenge ready");
            challenge.set_ready().await?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .timeout(Duration::from_secs(120));
        let status = order.poll_ready(&retries).await?;
        drop(installed);
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .map(|p| format!(": {}", clipped(p, SHOWN_CHARS)))
                .unwrap_or_default();
            return Err(AcmeError::Refused(format!(
                "the ACME server did not validate the order ({status:?}){detail}; check that \
                 the names point at this server and that it is reachable on the {name} port"
            )));
        }
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(self.settings.domains.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&retries).await?;
        only_certificates(&chain)?;
        let mut pem = format!("{DIRECTORY_LINE}{}\n{chain}", self.settings.directory);
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(&key.serialize_pem());
        let kept = parse_kept(pem.as_bytes())?;
        if !kept.info.covers(&self.settings.domains) {
            return Err(AcmeError::Certificate(format!(
                "the certificate issued names {:?}, not every one of {:?}",
                kept.info.names, self.settings.domains
            )));
        }
        kept.info.valid_at(Timestamp::now())?;
        let path = self.dir.join(CERTIFICATE_FILE);
        tokio::task::spawn_blocking(move || write_durably(&path, pem.as_bytes(), 0o600))
            .await
            .map_err(|e| AcmeError::Certificate(e.to_string()))??;
        Ok(kept)
    }
}

/// The challenges an order installed, removed when it ends however it ends.
struct Installed<'a> {
    answers: &'a AcmeAnswers,
    alpn: Vec<String>,
    http01: Vec<String>,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for name in &self.alpn {
            self.answers.remove_alpn(name);
        }
        for token in &self.http01 {
            self.answers.remove_http01(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_host_names() {
        assert_eq!(dns_name("PREP.Example.mx.").unwrap(), "prep.example.mx");
        for bad in [
            "*.example.mx",
            "localhost",
            "10.0.0.1",
            "a..mx",
            "-a.mx",
            "a b.mx",
            "",
        ] {
            assert!(dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renewal_waits_for_a_third_of_the_lifetime() {
        let start = Timestamp::from_second(1_000_000).unwrap();
        let info = CertInfo {
            serial: String::new(),
            names: vec!["a.mx".into()],
            not_before: start,
            not_after: start + jiff::SignedDuration::from_hours(90 * 24),
            directory: None,
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            info.renew_at(day * 30),
            start + jiff::SignedDuration::from_hours(60 * 24)
        );
        assert_eq!(
            info.renew_at(day * 365),
            start + jiff::SignedDuration::from_hours(30 * 24),
            "a setting longer than the lifetime does not renew at once"
        );
    }
}
