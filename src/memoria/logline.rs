//! One access-log line, read without copying and without a regular expression.
//!
//! Reads the three formats a difusor meets: Common (`host ident user [time] "request" status
//! bytes`), Combined (Common + `"referer" "user-agent"`, nginx's and Apache's default) and
//! difusor's `extended` (Combined + request time in seconds, corte id, content encoding).
//! Which one a line is in is told by the line itself, so a folder may mix them.
//!
//! # Guarantees
//! - Any byte string is either a [`Line`] or [`None`]: no panic, no allocation, no
//!   unchecked index; fields borrow from the input.
//! - Quoted fields end at the first `"` that is not escaped by a backslash (Apache writes
//!   `\"`; nginx and difusor write `\x22`, which holds no quote at all).
//! - A user agent is read to at most [`MAX_AGENT_BYTES`]: the rest of a longer one (which a
//!   client can make as long as the server's header limit) is neither kept nor parsed.

use memchr::memchr;

/// The most bytes of a user agent read: a browser's is 100 to 400.
const MAX_AGENT_BYTES: usize = 512;

/// The fields of one request line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line<'a> {
    /// Client address as written (an IP address, or a host name when the server resolved it).
    pub(crate) client: &'a [u8],
    /// The time, as written between the brackets (`02/Jun/2024:20:15:00 -0600`).
    pub(crate) time: &'a [u8],
    /// Request method (`GET`); empty when the request line was not a request.
    pub(crate) method: &'a [u8],
    /// Request target without its query string (`/json/main.json`).
    pub(crate) path: &'a [u8],
    /// Protocol (`HTTP/1.1`); empty when the request line had none.
    pub(crate) protocol: &'a [u8],
    /// Response status.
    pub(crate) status: u16,
    /// Body bytes sent (`-` is 0).
    pub(crate) bytes: u64,
    /// Referer, when the format has it and it is not `-`.
    pub(crate) referer: Option<&'a [u8]>,
    /// User-Agent, when the format has it and it is not `-`.
    pub(crate) agent: Option<&'a [u8]>,
    /// Whether the format records the user agent (Combined and extended do, Common does not).
    pub(crate) agent_recorded: bool,
    /// Time to respond in milliseconds (`extended` only).
    pub(crate) elapsed_ms: Option<u32>,
    /// Content encoding sent (`extended` only; `None` for `-`, identity).
    pub(crate) encoding: Option<&'a [u8]>,
}

/// Reads one line (without its newline; a trailing `\r` is ignored).
pub(crate) fn parse(line: &[u8]) -> Option<Line<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = memchr(b' ', line)?;
    let client = line.get(..sp)?;
    let rest = line.get(sp + 1..)?;
    let open = memchr(b'[', rest)?;
    let rest = rest.get(open + 1..)?;
    let close = memchr(b']', rest)?;
    let time = rest.get(..close)?;
    let rest = rest.get(close + 1..)?.strip_prefix(b" ")?;
    let (request, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (status, rest) = word(rest);
    let status = number(status).and_then(|s| u16::try_from(s).ok())?;
    let (bytes, rest) = word(rest);
    let bytes = if bytes == b"-" { 0 } else { number(bytes)? };
    let (method, path, protocol) = request_parts(request);
    let mut parsed = Line {
        client,
        time,
        method,
        path,
        protocol,
        status,
        bytes,
        referer: None,
        agent: None,
        agent_recorded: false,
        elapsed_ms: None,
        encoding: None,
    };
    if rest.is_empty() {
        return (!client.is_empty()).then_some(parsed);
    }
    let (referer, rest) = quoted(rest)?;
    let (agent, rest) = quoted(rest.strip_prefix(b" ")?)?;
    parsed.referer = present(referer);
    parsed.agent = present(agent).map(|a| a.get(..MAX_AGENT_BYTES).unwrap_or(a));
    parsed.agent_recorded = true;
    if let Some(extra) = rest.strip_prefix(b" ") {
        let (elapsed, extra) = word(extra);
        let (_corte, extra) = word(extra);
        let (encoding, _) = word(extra);
        parsed.elapsed_ms = milliseconds(elapsed);
        parsed.encoding = present(encoding);
    }
    (!client.is_empty()).then_some(parsed)
}

/// A `"…"` field at the start of `text` and what follows it.
fn quoted(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = text.strip_prefix(b"\"")?;
    let mut from = 0;
    loop {
        let at = from + memchr(b'"', body.get(from..)?)?;
        let backslashes = body
            .get(..at)?
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some((body.get(..at)?, body.get(at + 1..)?));
        }
        from = at + 1;
    }
}

/// The text up to the next space, and what follows that space.
fn word(text: &[u8]) -> (&[u8], &[u8]) {
    match memchr(b' ', text) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[]),
    }
}

/// Method, path (query string cut) and protocol of a request line; a line that is not
/// `METHOD TARGET PROTOCOL` is all path. An absolute-form target (`http://host/path`, as
/// other servers log HTTP/1.1 requests sent to a proxy) is read as its path: the host is the
/// client's to choose.
fn request_parts(request: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut parts = request.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(protocol)) = (parts.next(), parts.next(), parts.next())
    else {
        return (b"", request, b"");
    };
    let target = origin_form(target);
    let path = match memchr(b'?', target) {
        Some(at) => &target[..at],
        None => target,
    };
    (method, path, protocol)
}

/// The path and query of an absolute-form target (`/` when it names none); any other
/// target as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let after_scheme = [&b"http://"[..], b"https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    });
    match after_scheme {
        None => target,
        Some(rest) => match memchr::memchr2(b'/', b'?', rest) {
            Some(at) if rest[at] == b'/' => &rest[at..],
            _ => b"/",
        },
    }
}

fn present(field: &[u8]) -> Option<&[u8]> {
    (!field.is_empty() && field != b"-").then_some(field)
}

/// A decimal number of at most 19 digits.
fn number(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Seconds with up to three decimals (`0.002`) as whole milliseconds.
fn milliseconds(text: &[u8]) -> Option<u32> {
    let (whole, fraction) = match memchr(b'.', text) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || (!fraction.is_empty() && number(fraction).is_none()) {
        return None;
    }
    let seconds = number(whole)?;
    let millis = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    u32::try_from(seconds.checked_mul(1000)?.checked_add(millis)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_difusor_extended_lines() {
        let line = parse(
            br#"203.0.113.7 - - [02/Jun/2024:20:15:00 -0600] "GET /json/main.json?x=\x221\x22 HTTP/2.0" 200 527 "https://www.ine.mx/" "Mozilla/5.0 (\xC3\xB1)" 0.012 20240602_2015 br"#,
        )
        .unwrap();
        assert_eq!(line.client, b"203.0.113.7");
        assert_eq!(line.time, b"02/Jun/2024:20:15:00 -0600");
        assert_eq!(line.method, b"GET");
        assert_eq!(line.path, b"/json/main.json");
        assert_eq!(line.protocol, b"HTTP/2.0");
        assert_eq!((line.status, line.bytes), (200, 527));
        assert_eq!(line.referer, Some(&b"https://www.ine.mx/"[..]));
        assert_eq!(line.agent, Some(&br"Mozilla/5.0 (\xC3\xB1)"[..]));
        assert_eq!(line.elapsed_ms, Some(12));
        assert_eq!(line.encoding, Some(&b"br"[..]));
    }

    #[test]
    fn reads_common_and_apache_combined_with_escaped_quotes() {
        let common = parse(
            b"host.example - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif HTTP/1.0\" 304 -",
        )
        .unwrap();
        assert_eq!(common.client, b"host.example");
        assert_eq!((common.status, common.bytes), (304, 0));
        assert_eq!((common.referer, common.agent), (None, None));
        assert!(!common.agent_recorded);
        let apache = parse(
            br#"::1 - - [10/Oct/2000:13:55:36 -0700] "GET /\"q\" HTTP/1.1" 200 10 "-" "say \"hi\"""#,
        )
        .unwrap();
        assert_eq!(apache.path, br#"/\"q\""#);
        assert_eq!(apache.referer, None);
        assert_eq!(apache.agent, Some(&br#"say \"hi\""#[..]));
    }

    #[test]
    fn an_absolute_form_target_is_read_as_its_path() {
        let path = |target: &str| {
            let line = format!(
                "203.0.113.7 - - [02/Jun/2024:20:15:00 -0600] \"GET {target} HTTP/2.0\" 200 1 \"-\" \"-\""
            );
            String::from_utf8(parse(line.as_bytes()).unwrap().path.to_vec()).unwrap()
        };
        assert_eq!(
            path("http://www.fraude.example/datos/a.zip"),
            "/datos/a.zip"
        );
        assert_eq!(
            path("HTTPS://prep.mx:443/json/main.json?x=1"),
            "/json/main.json"
        );
        assert_eq!(path("https://prep.mx"), "/");
        assert_eq!(path("https://prep.mx?a=/b"), "/");
        assert_eq!(path("/http://x/y"), "/http://x/y");
    }

    #[test]
    fn a_request_line_that_is_not_a_request_is_all_path() {
        let line = parse(
            b"198.51.100.1 - - [02/Jun/2024:20:15:00 -0600] \"\\x16\\x03\" 400 0 \"-\" \"-\"",
        )
        .unwrap();
        assert_eq!((line.method, line.protocol), (&b""[..], &b""[..]));
        assert_eq!(line.path, b"\\x16\\x03");
        assert_eq!(line.status, 400);
    }

    #[test]
    fn broken_lines_are_none_never_a_panic() {
        let good = br#"203.0.113.7 - - [02/Jun/2024:20:15:00 -0600] "GET / HTTP/1.1" 200 5 "-" "ua" 0.001 - -"#;
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for bad in [
            &b""[..],
            b" ",
            b"x [",
            b"x [t] \"GET / HTTP/1.1\" 99999 1",
            b"x [t] \"GET / HTTP/1.1\" 200 99999999999999999999",
            b"x [t] \"unterminated",
            b"x [t] \"GET / HTTP/1.1\" 200 1 \"ref\"",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let odd = parse(br#"x [t] "GET / HTTP/1.1" 200 1 "r" "a" 1.2345 - -"#).unwrap();
        assert_eq!(
            odd.elapsed_ms, None,
            "more than three decimals is not a request time"
        );
    }
}
