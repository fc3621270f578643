//! Which corte a server shows, read from what it serves.
//!
//! In order: the `X-PREP-Corte` header (difusor sends it on every answer); the corte of a
//! known package whose `main.json` is byte for byte the one served; a corte time written in
//! the served `main.json` under a key naming the corte (`corte`, `corte_id`, `fecha_corte`, …,
//! then keys naming a date, `fecha…`), as `YYYYMMDD_HHMM`, as the CSV corte line
//! (`01/06/2027 20:30 (UTC-6)`) or in RFC 3339.
//!
//! # Guarantees
//! - The served document is read to a bounded depth and number of values; it can make the
//!   answer "unknown", never a panic.
//! - A corte is always written as the package names write it, `YYYYMMDD_HHMM[SS]` in the
//!   institute's time zone, so two spellings of the same instant compare equal.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::Value;

use crate::hash::Sha256;
use crate::package::{CorteSource, CorteTime, corte_line, is_corte_id};

/// Deepest nesting of the served `main.json` looked into.
const MAX_DEPTH: usize = 8;

/// Most values of the served `main.json` looked at.
const MAX_VALUES: usize = 100_000;

/// Where the served corte was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Seen {
    /// The `X-PREP-Corte` header.
    Header,
    /// A known package's `main.json`, byte for byte.
    Package,
    /// A corte time written in the served `main.json`.
    #[serde(rename = "main.json")]
    MainJson,
}

/// The corte a server shows and where it was read, if anything says.
pub(super) fn served_corte(
    header: Option<&str>,
    main: Option<&[u8]>,
    known: &std::collections::HashMap<Sha256, String>,
    tz: &TimeZone,
) -> Option<(String, Seen)> {
    if let Some(id) = header.and_then(|h| corte_id(h, tz)) {
        return Some((id, Seen::Header));
    }
    let main = main?;
    if let Some(id) = known.get(&Sha256::of(main)) {
        return Some((id.clone(), Seen::Package));
    }
    let doc: Value = serde_json::from_slice(main).ok()?;
    let mut fields = Vec::new();
    collect(&doc, "", 0, &mut fields);
    ["corte", "fecha"].iter().find_map(|word| {
        fields
            .iter()
            .filter(|(key, _)| key.to_lowercase().contains(word))
            .find_map(|(_, text)| corte_id(text, tz))
            .map(|id| (id, Seen::MainJson))
    })
}

/// The string values of `value` with their keys, to [`MAX_DEPTH`] and [`MAX_VALUES`].
fn collect<'a>(value: &'a Value, key: &'a str, depth: usize, out: &mut Vec<(&'a str, &'a str)>) {
    if depth > MAX_DEPTH || out.len() >= MAX_VALUES {
        return;
    }
    match value {
        Value::String(text) => out.push((key, text)),
        Value::Object(map) => {
            for (k, v) in map {
                collect(v, k, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for v in items.iter().take(MAX_VALUES) {
                collect(v, key, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// A corte written as `YYYYMMDD_HHMM[SS]`, as the CSV corte line, in RFC 3339 or as a local
/// date-time in `tz` (`2027-06-01T20:30`), as the id package names use, in `tz`.
pub(super) fn corte_id(text: &str, tz: &TimeZone) -> Option<String> {
    let text = text.trim();
    if is_corte_id(text) {
        return Some(text.to_owned());
    }
    let instant = match corte_line(text) {
        Some((local, offset)) => offset.to_timestamp(local).ok()?,
        None => match text.parse::<Timestamp>() {
            Ok(instant) => instant,
            Err(_) => text
                .replace(' ', "T")
                .parse::<jiff::civil::DateTime>()
                .ok()?
                .to_zoned_datetime(tz.clone())
                .ok()?
                .timestamp(),
        },
    };
    let time = CorteTime {
        time: instant.to_zoned_datetime(tz.clone()),
        source: CorteSource::Json,
    };
    Some(time.id())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("America/Mexico_City").unwrap()
    }

    #[test]
    fn every_spelling_of_a_corte_gives_the_same_id() {
        for text in [
            "20270601_2030",
            " 01/06/2027 20:30 (UTC-6) ",
            "2027-06-02T02:30:00Z",
            "2027-06-01T20:30:00-06:00",
            "2027-06-01T20:30",
            "2027-06-01 20:30:00",
        ] {
            assert_eq!(
                corte_id(text, &tz()).as_deref(),
                Some("20270601_2030"),
                "{text}"
            );
        }
        assert_eq!(corte_id("mañana", &tz()), None);
    }

    #[test]
    fn the_header_wins_then_a_known_package_then_the_document() {
        let main = br#"{"simulacro":true,"fecha":"x","corte":"01/06/2027 20:15 (UTC-6)"}"#;
        let mut known = HashMap::new();
        assert_eq!(
            served_corte(Some("20270601_2030"), Some(main), &known, &tz()),
            Some(("20270601_2030".to_owned(), Seen::Header))
        );
        assert_eq!(
            served_corte(None, Some(main), &known, &tz()),
            Some(("20270601_2015".to_owned(), Seen::MainJson))
        );
        known.insert(Sha256::of(main), "20270601_2016".to_owned());
        assert_eq!(
            served_corte(None, Some(main), &known, &tz()),
            Some(("20270601_2016".to_owned(), Seen::Package))
        );
        assert_eq!(
            served_corte(None, Some(b"<html>"), &HashMap::new(), &tz()),
            None
        );
        let nested = br#"{"datos":{"encabezado":{"fecha_corte":"2027-06-01T21:00:00-06:00"}}}"#;
        assert_eq!(
            served_corte(None, Some(nested), &HashMap::new(), &tz()).map(|(id, _)| id),
            Some("20270601_2100".to_owned())
        );
    }
}
