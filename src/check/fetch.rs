//! One polite request of the check: a GET that asks for gzip or brotli, reads the answer to a
//! limit, decodes it, and measures how long it took.
//!
//! # Guarantees
//! - Every request is bounded: the check's timeout for the whole answer, a limit on the
//!   bytes read as sent and another on the bytes decoded, so a server cannot make the check
//!   read or inflate without end (a body past the limit is reported as longer than
//!   expected, never read whole).
//! - Nothing but `Accept-Encoding: gzip, br` is asked; any other encoding is an error, not
//!   a guess.
//! - No redirect is followed: the answer of the address asked is the one judged.

use std::io::Read as _;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{self, HeaderMap};

/// What the check's user agent says it is.
pub(super) const USER_AGENT: &str = concat!(
    "difusor-check/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/difusor)"
);

/// Bytes read past what is expected, so a longer body is seen whole when it is only a little
/// longer (its SHA-256 reported).
const SLACK: u64 = 1024 * 1024;

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
    /// The content coding it came in (`gzip`, `br`), if any.
    pub(super) encoding: Option<&'static str>,
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
    /// A client with `tls` for HTTPS, the check's user agent, `timeout` per request and no
    /// redirects.
    pub(super) fn new(tls: rustls::ClientConfig, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
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
        let encoding = match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") => None,
            Some("gzip" | "x-gzip") => Some("gzip"),
            Some("br") => Some("br"),
            Some(other) => {
                return Err(format!(
                    "answered in the content coding {other:?}, which was not asked for"
                ));
            }
        };
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
        let (body, decoded_whole) = decode(encoding, &raw, limit)?;
        Ok(Answer {
            status,
            headers,
            body,
            complete: complete && decoded_whole,
            encoding,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            version,
        })
    }
}

/// `raw` decoded from `encoding`, to at most `limit` bytes, and whether that was all of it.
fn decode(encoding: Option<&str>, raw: &[u8], limit: u64) -> Result<(Vec<u8>, bool), String> {
    let reader: Box<dyn std::io::Read + '_> = match encoding {
        None => Box::new(raw),
        Some("gzip") => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Some(_) => Box::new(brotli::Decompressor::new(raw, 64 * 1024)),
    };
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| {
            format!(
                "the {} body does not decode: {e}",
                encoding.unwrap_or("identity")
            )
        })?;
    let whole = body.len() as u64 <= limit;
    body.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((body, whole))
}

/// A transport failure in words, with its causes.
fn transport(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut why = if e.is_timeout() {
        "no complete answer within the timeout".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut cause = e.source();
    while let Some(c) = cause {
        why.push_str(": ");
        why.push_str(&c.to_string());
        cause = c.source();
    }
    why
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
            decode(Some("gzip"), &gz, 10_000).unwrap(),
            (text.clone(), true)
        );
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &text[..], &mut br, &Default::default()).unwrap();
        assert_eq!(
            decode(Some("br"), &br, 10_000).unwrap(),
            (text.clone(), true)
        );
        // Ten megabytes of zeros in a few kilobytes: read to the limit, and said to be longer.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        let (body, whole) = decode(Some("gzip"), &bomb, 1000).unwrap();
        assert_eq!((body.len(), whole), (1000, false));
        assert!(decode(Some("gzip"), b"not gzip", 10).is_err());
    }
}
