//! Text a peer controls (a certificate's names, an error that quotes what a server sent),
//! made safe to show an operator: on a terminal, in a log line, in a CSV cell.
//!
//! Wrap the peer's text where it enters a message: `format!("… failed: {}", PeerText(&e))`.
//!
//! # Guarantees
//! - [`PeerText`] writes every control character (C0, DEL and C1: ESC, BEL, CR, LF, …) and
//!   every bidirectional formatting character as `\u{…}`, the way Rust's `escape_debug` writes
//!   them, and every other character as it is. What it writes cannot move a terminal's
//!   cursor, change its state or title, break a line, or reorder the text that follows.
//! - [`clipped`] writes the same, cut after a number of characters, saying how long the
//!   peer's text was: a peer that answers a megabyte is shown in a line.

use std::fmt::{self, Write as _};

/// A peer's text, displayed with its control characters made visible.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerText<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for PeerText<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alternate = f.alternate();
        let mut out = Escaping(f);
        if alternate {
            write!(out, "{:#}", self.0)
        } else {
            write!(out, "{}", self.0)
        }
    }
}

/// `text` as [`PeerText`] writes it, cut after `max_chars` characters of the peer's with `…`
/// and how many bytes the peer's text had in all.
pub(crate) fn clipped(text: impl fmt::Display, max_chars: usize) -> String {
    let text = text.to_string();
    match text.char_indices().nth(max_chars) {
        None => PeerText(&text).to_string(),
        Some((at, _)) => format!(
            "{}… ({} bytes in all)",
            PeerText(text.get(..at).unwrap_or_default()),
            text.len()
        ),
    }
}

/// Writes through to a formatter, escaping what [`is_control_or_bidi`] names.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(is_control_or_bidi) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Whether `c` acts on a terminal or on the order of the text instead of being shown: a
/// control character (Unicode's `Cc`: C0, DEL, C1) or a bidirectional formatting character.
pub(crate) fn is_control_or_bidi(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_written_as_escapes_and_the_rest_as_is() {
        let shown = PeerText("x\u{1b}]0;PWNED\u{7}.example y\u{1b}[2J\r\n\u{7f}\u{9b}ñ\u{202e}é")
            .to_string();
        assert_eq!(
            shown,
            "x\\u{1b}]0;PWNED\\u{7}.example y\\u{1b}[2J\\u{d}\\u{a}\\u{7f}\\u{9b}ñ\\u{202e}é"
        );
        assert_eq!(
            PeerText("DnsName(\"a.example\")").to_string(),
            "DnsName(\"a.example\")"
        );
        let e = anyhow::anyhow!("b\u{1b}").context("a");
        assert_eq!(format!("{:#}", PeerText(&e)), "a: b\\u{1b}");
    }

    #[test]
    fn clipped_text_is_cut_after_its_characters_and_says_how_long_it_was() {
        assert_eq!(clipped("é\u{1b}b", 3), "é\\u{1b}b");
        assert_eq!(clipped("é\u{1b}bcd", 3), "é\\u{1b}b… (6 bytes in all)");
    }
}
