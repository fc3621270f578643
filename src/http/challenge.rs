//! What the public listeners answer for ACME (`acme_domains`): the certificate obtained, to
//! visitors; and, while an order is under way, the ACME server's challenges: TLS-ALPN-01
//! (RFC 8737) on the HTTPS listeners and HTTP-01 on the plain ones.
//!
//! [`AcmeAnswers`] is handed to [`super::tls::Tls::resolved`] (it picks the certificate of
//! every handshake) and to the public handler (HTTP-01); `crate::acme` fills it.
//!
//! # Guarantees
//! - A ClientHello offering ALPN `acme-tls/1` gets the challenge certificate of its SNI name
//!   when one is pending, and no certificate (the handshake fails) otherwise; it never gets
//!   the real certificate, and visitors never get a challenge certificate.
//! - A new certificate is used by the next handshake; connections already open keep theirs.
//! - Before a certificate is obtained, visitors' handshakes fail (no certificate), logged at
//!   most once a minute.
//! - `GET /.well-known/acme-challenge/<token>` is answered with the key authorization of a
//!   pending token only, by exact match; any other token (or one longer than
//!   [`MAX_TOKEN_LEN`], or with characters outside base64url) gets 404. It never reaches the
//!   site, so the gate does not hold it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{BoxedBody, NO_STORE, full};

/// The ALPN protocol of TLS-ALPN-01 validation.
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Where HTTP-01 tokens are asked for.
pub(crate) const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Longest token taken (Let's Encrypt's are 43 characters).
pub(crate) const MAX_TOKEN_LEN: usize = 128;

/// Most challenges pending at once, of each kind (one per name of an order).
const MAX_PENDING: usize = 100;

/// Whether `token` may be an ACME token: 1 to [`MAX_TOKEN_LEN`] base64url characters.
pub(crate) fn valid_token(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a challenge was not installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChallengeError {
    /// The ACME server sent a token that is not base64url or is too long.
    #[error("the ACME server sent a token that is not 1 to 128 base64url characters")]
    BadToken,
    /// Too many challenges pending at once.
    #[error("too many ACME challenges pending at once")]
    TooMany,
}

/// The certificate obtained over ACME and the pending challenges.
#[derive(Default)]
pub(crate) struct AcmeAnswers {
    /// The certificate visitors get; none until one is obtained.
    current: ArcSwapOption<CertifiedKey>,
    /// TLS-ALPN-01 certificates by (lowercase) name.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 key authorizations by token.
    http01: RwLock<HashMap<String, String>>,
    /// Unix second of the last "no certificate yet" log line.
    missing_logged: AtomicI64,
}

impl std::fmt::Debug for AcmeAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeAnswers")
            .field("has_certificate", &self.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl AcmeAnswers {
    /// Makes `key` the certificate of every new handshake.
    pub(crate) fn set_certificate(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
    }

    /// Whether a certificate is being served.
    pub(crate) fn has_certificate(&self) -> bool {
        self.current.load().is_some()
    }

    /// Answers TLS-ALPN-01 for `name` with `key` until [`Self::remove_alpn`].
    pub(crate) fn add_alpn(
        &self,
        name: &str,
        key: Arc<CertifiedKey>,
    ) -> Result<(), ChallengeError> {
        let mut map = self.alpn.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PENDING {
            return Err(ChallengeError::TooMany);
        }
        map.insert(name.to_ascii_lowercase(), key);
        Ok(())
    }

    /// Stops answering TLS-ALPN-01 for `name`.
    pub(crate) fn remove_alpn(&self, name: &str) {
        let mut map = self.alpn.write().unwrap_or_else(|p| p.into_inner());
        map.remove(&name.to_ascii_lowercase());
    }

    /// Answers HTTP-01 for `token` with `key_authorization` until [`Self::remove_http01`].
    pub(crate) fn add_http01(
        &self,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        if !valid_token(token) {
            return Err(ChallengeError::BadToken);
        }
        let mut map = self.http01.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PENDING {
            return Err(ChallengeError::TooMany);
        }
        map.insert(token.to_owned(), key_authorization.to_owned());
        Ok(())
    }

    /// Stops answering HTTP-01 for `token`.
    pub(crate) fn remove_http01(&self, token: &str) {
        let mut map = self.http01.write().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }

    /// The answer to a request for `path` on a plain listener, if `path` is an HTTP-01
    /// challenge's: the key authorization (200) or 404.
    pub(crate) fn http01(&self, path: &str) -> Option<Response<BoxedBody>> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        let found = valid_token(token)
            .then(|| {
                let map = self.http01.read().unwrap_or_else(|p| p.into_inner());
                map.get(token).cloned()
            })
            .flatten();
        let (status, body) = match found {
            Some(key_authorization) => {
                tracing::info!(token, "answering an ACME HTTP-01 challenge");
                (StatusCode::OK, Bytes::from(key_authorization))
            }
            None => (
                StatusCode::NOT_FOUND,
                Bytes::from_static(b"no such challenge\n"),
            ),
        };
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        res.headers_mut().insert(header::CACHE_CONTROL, NO_STORE);
        Some(res)
    }
}

impl ResolvesServerCert for AcmeAnswers {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            let map = self.alpn.read().unwrap_or_else(|p| p.into_inner());
            let key = map.get(&name).cloned();
            if key.is_some() {
                tracing::info!(%name, "answering an ACME TLS-ALPN-01 challenge");
            }
            return key;
        }
        let current = self.current.load_full();
        if current.is_none() {
            let now = jiff::Timestamp::now().as_second();
            let last = self.missing_logged.load(Ordering::Relaxed);
            if now - last >= 60
                && self
                    .missing_logged
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    "HTTPS handshake refused: no certificate has been obtained over ACME yet \
                     (see the admin status page)"
                );
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bounded_base64url() {
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(!valid_token(""));
        assert!(!valid_token("a/b"));
        assert!(!valid_token("a.b"));
        assert!(!valid_token(&"a".repeat(MAX_TOKEN_LEN + 1)));
        let answers = AcmeAnswers::default();
        assert!(answers.add_http01("../x", "k").is_err());
        answers.add_http01("tok_1", "tok_1.thumb").unwrap();
        assert_eq!(
            answers
                .http01("/.well-known/acme-challenge/tok_1")
                .map(|r| r.status()),
            Some(StatusCode::OK)
        );
        for other in ["tok_", "tok_12", "TOK_1", "tok_1/"] {
            let res = answers.http01(&format!("{HTTP01_PREFIX}{other}")).unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{other}");
        }
        assert!(answers.http01("/json/main.json").is_none());
        answers.remove_http01("tok_1");
        assert_eq!(
            answers
                .http01("/.well-known/acme-challenge/tok_1")
                .map(|r| r.status()),
            Some(StatusCode::NOT_FOUND)
        );
    }
}
