//! The TLS side of a checked server: one handshake, as a visitor's browser makes it, and what
//! it shows (protocol, ALPN, the certificate's end of validity).
//!
//! # Guarantees
//! - The certificate is verified for the host as a browser would (the public web's
//!   authorities plus `pull_ca`); a handshake that fails says why, and the check of that
//!   server stops there (exit 2).
//! - The handshake is bounded by the check's timeout and sends nothing after it.
//! - What the server controls in a failure (its certificate's names) is shown through
//!   [`PeerText`]: no control character of it reaches the operator's terminal or the log.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;
use rustls_pki_types::ServerName;
use serde::Serialize;

use crate::peer_text::PeerText;

/// What the handshake showed.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub(super) protocol: String,
    /// The protocol the server chose by ALPN (`h2`, `http/1.1`), if any.
    pub(super) alpn: Option<String>,
    /// Whether it offered HTTP/2.
    pub(super) http2: bool,
    /// End of the certificate's validity (RFC 3339, UTC).
    pub(super) not_after: String,
    /// Whole days from now to then (negative once expired).
    pub(super) days_left: i64,
}

/// Shakes hands with the server of `url` (an `https` address) by `config`.
pub(super) async fn probe(
    url: &Url,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<TlsInfo, String> {
    let host = url.host_str().ok_or("the address has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| format!("{host:?} is not a host name: {e}"))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                format!(
                    "the TLS handshake with {host}:{port} failed: {}",
                    PeerText(e)
                )
            })
    };
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("no TLS handshake with {host}:{port} within {timeout:?}"))??;
    let (_, session) = stream.get_ref();
    let protocol = session
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .replace("TLSv1_", "TLSv1.");
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the server sent no certificate")?;
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the server's certificate cannot be read: {}", PeerText(e)))?;
    let not_after = Timestamp::from_second(certificate.validity().not_after.timestamp())
        .map_err(|e| format!("the certificate's end of validity is out of range: {e}"))?;
    let days_left = not_after.duration_since(Timestamp::now()).as_secs() / 86_400;
    Ok(TlsInfo {
        protocol,
        http2: alpn.as_deref() == Some("h2"),
        alpn,
        not_after: not_after.to_string(),
        days_left,
    })
}
