//! Content-coding negotiation (RFC 9110 §12.5.3): which variant of a file a client gets.
//!
//! # Guarantees
//! - A coding is chosen only if the client lists it (or `*`) with a q-value above zero and
//!   the variant exists; otherwise the file goes as it is (identity is always acceptable to
//!   us: a client refusing it still gets a usable answer rather than a 406).
//! - Between brotli and gzip the higher q-value wins; on a tie, brotli (smaller).

use http::HeaderMap;

use crate::site::{Variant, Variants};

/// The chosen variant and its `Content-Encoding` token.
pub(crate) fn choose<'a>(
    headers: &HeaderMap,
    variants: &'a Variants,
) -> Option<(&'a Variant, &'static str)> {
    let accept = headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.is_empty() {
        return None;
    }
    let (q_br, q_gzip) = (q_of(&accept, &["br"]), q_of(&accept, &["gzip", "x-gzip"]));
    let br = variants
        .br
        .get()
        .and_then(Option::as_ref)
        .filter(|_| q_br > 0);
    let gzip = variants
        .gzip
        .get()
        .and_then(Option::as_ref)
        .filter(|_| q_gzip > 0);
    match (br, gzip) {
        (Some(b), Some(g)) => Some(if q_br >= q_gzip {
            (b, "br")
        } else {
            (g, "gzip")
        }),
        (Some(b), None) => Some((b, "br")),
        (None, Some(g)) => Some((g, "gzip")),
        (None, None) => None,
    }
}

/// The q-value (in thousandths) the header gives any of `names`, else `*`'s, else 0.
fn q_of(accept: &str, names: &[&str]) -> u16 {
    let mut star = 0;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .map_or(1000, parse_q);
        if names.iter().any(|n| coding.eq_ignore_ascii_case(n)) {
            return q;
        }
        if coding == "*" {
            star = q;
        }
    }
    star
}

/// `1`, `0.5`, `0.001` → thousandths; anything else is 0 (not acceptable).
fn parse_q(text: &str) -> u16 {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().unwrap_or(0);
    match int {
        "1" if frac_val == 0 => 1000,
        "0" => frac_val,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_are_read_as_the_rfc_says() {
        assert_eq!(q_of("gzip, br", &["br"]), 1000);
        assert_eq!(q_of("gzip;q=0.5, br;q=0.8", &["gzip"]), 500);
        assert_eq!(q_of("gzip;q=0", &["gzip"]), 0);
        assert_eq!(q_of("*;q=0.3", &["br"]), 300);
        assert_eq!(q_of("identity", &["br"]), 0);
        assert_eq!(q_of("br;q=1.5", &["br"]), 0, "out of range is refused");
        assert_eq!(q_of("BR;Q=0.9", &["br"]), 900);
        assert_eq!(parse_q("0.05"), 50);
    }
}
