//! One polite request of the check: a GET that asks for gzip or brotli, reads the answer to a
//! limit, decodes it, and measures how long it took.
//!
//! # Guarantees
//! - Every request is bounded: the check's timeout for the whole answer, a limit on the
//!   bytes read as sent and another on the bytes decoded, so a server cannot make the check
//!   read or inflate without end (a body past the limit is reported as longer than
//!   expected, never read whole).
//! - Nothing but `Accept-Encoding: gzip, br` is asked. Every content coding the answer
//!   names is undone in turn, last applied first, as a browser undoes them: all its
//!   `Content-Encoding` fields, each a list (`identity` is none), at most [`MAX_CODINGS`]
//!   stacked. So an answer is judged by what a visitor gets: bytes compressed once but
//!   labelled twice do not decode, and are never taken for the file. Any other coding is an
//!   error, not a guess.
//! - No redirect is followed, so the answer of the address asked is the one judged; except
//!   when the client is made to follow them (`--embargo`), at most
//!   [`MAX_FOLLOWED_REDIRECTS`], to http or https addresses only, within the same timeout.

use std::io::Read as _;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{self, HeaderMap};

use crate::intake::pull::transport_reason;
use crate::peer_text::PeerText;

/// What the check's user agent says it is.
pub(super) const USER_AGENT: &str = concat!(
    "difusor-check/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/difusor)"
);

/// Bytes read past what is expected, so a longer body is seen whole when it is only a little
/// longer (its SHA-256 reported).
const SLACK: u64 = 1024 * 1024;

/// Most content codings one answer may stack.
const MAX_CODINGS: usize = 4;

/// Most redirects followed by a client made to follow them (a browser follows about 20;
/// a site that needs more is broken anyway).
const MAX_FOLLOWED_REDIRECTS: usize = 10;

/// A content coding the check asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Br,
}

impl Coding {
    /// How `Content-Encoding` names it.
    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Br => "br",
        }
    }
}

/// A server's answer to one GET.
#[derive(Debug)]
pub(super) struct Answer {
    /// Its status code.
    pub(super) status: u16,
    /// Its headers.
    pub(super) headers: HeaderMap,
    /// The body, decoded, to the limit asked.
    pub(super) body: Vec<u8>,
    /// Whether `body` is all of it (false: it went past the limit).
    pub(super) complete: bool,
    /// The content codings it came in, in the order applied (`gzip`, `br`, `gzip, br`), if
    /// any.
    pub(super) encoding: Option<String>,
    /// From sending the request to the last byte read.
    pub(super) millis: u64,
    /// HTTP/1.1, HTTP/2.
    pub(super) version: reqwest::Version,
}

/// The HTTP client of the checks.
#[derive(Clone)]
pub(super) struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A client with `tls` for HTTPS, the check's user agent and `timeout` per request (its
    /// redirects included); it follows no redirect unless `follow_redirects`, and then at
    /// most [`MAX_FOLLOWED_REDIRECTS`].
    pub(super) fn new(
        tls: rustls::ClientConfig,
        timeout: Duration,
        follow_redirects: bool,
    ) -> anyhow::Result<Self> {
        let redirects = if follow_redirects {
            reqwest::redirect::Policy::limited(MAX_FOLLOWED_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(redirects)
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(Self { client })
    }

    /// GETs `url`, decoding to at most `expected + SLACK` bytes; an error in words when no
    /// answer came (refused, reset, timed out, an encoding not asked for).
    pub(super) async fn get(&self, url: &Url, expected: u64) -> Result<Answer, String> {
        let limit = expected.saturating_add(SLACK);
        let started = Instant::now();
        let mut response = self
            .client
            .get(url.clone())
            .header(header::ACCEPT_ENCODING, "gzip, br")
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let codings = codings(&headers)?;
        // Compressed bytes can be a little longer than what they decode to, never much.
        let raw_limit = limit.saturating_add(limit / 64).saturating_add(64 * 1024);
        let mut raw = Vec::new();
        let mut complete = true;
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            raw.extend_from_slice(&chunk);
            if raw.len() as u64 > raw_limit {
                complete = false;
                break;
            }
        }
        let (body, decoded_whole) = decode(&codings, &raw, limit)?;
        Ok(Answer {
            status,
            headers,
            body,
            complete: complete && decoded_whole,
            encoding: (!codings.is_empty()).then(|| names(&codings)),
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            version,
        })
    }
}

/// Most characters of a coding the check did not ask for shown in its error.
const MAX_SHOWN_CODING: usize = 40;

/// The content codings `headers` name, in the order they were applied: every
/// `Content-Encoding` field, each a comma-separated list, `identity` left out.
fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, String> {
    let mut codings = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match coding.to_ascii_lowercase().as_str() {
                "identity" => {}
                "gzip" | "x-gzip" => codings.push(Coding::Gzip),
                "br" => codings.push(Coding::Br),
                other => {
                    let shown: String = other.chars().take(MAX_SHOWN_CODING).collect();
                    return Err(format!(
                        "answered in the content coding \"{}\", which was not asked for",
                        PeerText(shown)
                    ));
                }
            }
            if codings.len() > MAX_CODINGS {
                return Err(format!(
                    "answered in more than {MAX_CODINGS} content codings stacked"
                ));
            }
        }
    }
    Ok(codings)
}

/// Codings as `Content-Encoding` lists them: `gzip, br`.
fn names(codings: &[Coding]) -> String {
    codings
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `raw` decoded from `codings` (undone last first), to at most `limit` bytes, and whether
/// that was all of it.
fn decode(codings: &[Coding], raw: &[u8], limit: u64) -> Result<(Vec<u8>, bool), String> {
    let mut reader: Box<dyn std::io::Read + '_> = Box::new(raw);
    for coding in codings.iter().rev() {
        reader = match coding {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Coding::Br => Box::new(brotli::Decompressor::new(reader, 64 * 1024)),
        };
    }
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| {
            let names = if codings.is_empty() {
                "identity".to_owned()
            } else {
                names(codings)
            };
            format!("the {names} body does not decode: {e}")
        })?;
    let whole = body.len() as u64 <= limit;
    body.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((body, whole))
}

/// A transport failure in words, with its causes.
fn transport(e: &reqwest::Error) -> String {
    transport_reason(e, "no complete answer within the timeout")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn gzip_and_brotli_decode_and_a_bomb_stops_at_the_limit() {
        let text = b"{\"corte\":\"20270601_2030\"}".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode(&[Coding::Gzip], &gz, 10_000).unwrap(),
            (text.clone(), true)
        );
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &text[..], &mut br, &Default::default()).unwrap();
        assert_eq!(
            decode(&[Coding::Br], &br, 10_000).unwrap(),
            (text.clone(), true)
        );
        // gzip over br: undone gzip first, then br; a coding too many does not decode.
        let mut both = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        both.write_all(&br).unwrap();
        let both = both.finish().unwrap();
        assert_eq!(
            decode(&[Coding::Br, Coding::Gzip], &both, 10_000).unwrap(),
            (text.clone(), true)
        );
        assert!(decode(&[Coding::Gzip, Coding::Gzip], &gz, 10_000).is_err());
        // Ten megabytes of zeros in a few kilobytes: read to the limit, and said to be longer.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        let (body, whole) = decode(&[Coding::Gzip], &bomb, 1000).unwrap();
        assert_eq!((body.len(), whole), (1000, false));
        assert!(decode(&[Coding::Gzip], b"not gzip", 10).is_err());
    }
}
