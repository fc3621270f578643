//! The corte time of a verified package: the moment of the results it carries.
//!
//! [`corte_time`] tries, in order: the package's file name (`20210601_1852_PREP_CAMP.zip`,
//! local time in the institute's zone), line 2 of the first CSV (`01/06/2021 18:52 (UTC-5)`,
//! with its written offset), a configured JSON field, and finally the arrival time. It never
//! fails and never panics: whatever the package holds, the last resort is the arrival time,
//! and the result says which source it came from.

use std::fmt;
use std::sync::LazyLock;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};
use regex::{Captures, Regex};

use super::{Member, VerifiedPackage};

/// The default package name pattern: `YYYYMMDD_HHMM` anywhere in the name.
pub(crate) const DEFAULT_NAME_PATTERN: &str =
    r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_(?P<H>\d{2})(?P<M>\d{2})";

/// How many bytes of a CSV are looked at for its corte line (line 2).
const CSV_HEAD_BYTES: usize = 4096;

/// How to find the corte time of a package.
#[derive(Debug, Clone)]
pub(crate) struct CorteRules {
    /// Pattern for the package name, with named groups `Y`, `m`, `d`, `H`, `M` and optionally
    /// `S`; see [`DEFAULT_NAME_PATTERN`].
    pub(crate) name_pattern: Regex,
    /// The institute's time zone: names and local JSON times are read in it, and every
    /// result is expressed in it.
    pub(crate) timezone: TimeZone,
    /// A member path and a JSON pointer (`/fecha_corte`) to a string holding the corte time.
    pub(crate) json_field: Option<(String, String)>,
}

/// Where a corte time was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CorteSource {
    /// The package's file name.
    Name,
    /// Line 2 of a CSV of the package.
    Csv,
    /// The configured JSON field.
    Json,
    /// Nothing in the package gave it: the time the package arrived.
    Arrival,
}

impl fmt::Display for CorteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CorteSource::Name => "name",
            CorteSource::Csv => "csv",
            CorteSource::Json => "json",
            CorteSource::Arrival => "arrival",
        })
    }
}

/// A corte time, in the institute's time zone, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct CorteTime {
    /// The instant, expressed in [`CorteRules::timezone`].
    pub(crate) time: ZonedDateTime,
    /// Where it was found.
    pub(crate) source: CorteSource,
}

impl CorteTime {
    /// The corte's identifier, `YYYYMMDD_HHMM` in the time's own zone (as in package names),
    /// or `YYYYMMDD_HHMMSS` when the seconds are not zero.
    pub(crate) fn id(&self) -> String {
        let t = &self.time;
        let mut id = format!(
            "{:04}{:02}{:02}_{:02}{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute()
        );
        if t.second() != 0 {
            id.push_str(&format!("{:02}", t.second()));
        }
        id
    }
}

/// The corte time of `pkg` by `rules`, falling back to `arrival`.
pub(crate) fn corte_time(
    pkg: &VerifiedPackage,
    rules: &CorteRules,
    arrival: Timestamp,
) -> CorteTime {
    let found = from_name(pkg.name(), rules)
        .map(|t| (t, CorteSource::Name))
        .or_else(|| from_csvs(pkg, rules).map(|t| (t, CorteSource::Csv)))
        .or_else(|| from_json(pkg, rules).map(|t| (t, CorteSource::Json)));
    match found {
        Some((time, source)) => CorteTime { time, source },
        None => CorteTime {
            time: arrival.to_zoned_datetime(rules.timezone.clone()),
            source: CorteSource::Arrival,
        },
    }
}

/// The time the name pattern finds in `name`, read as local time in the rules' zone.
fn from_name(name: &str, rules: &CorteRules) -> Option<ZonedDateTime> {
    let caps = rules.name_pattern.captures(name)?;
    let seconds = match caps.name("S") {
        Some(s) => s.as_str().parse().ok()?,
        None => 0,
    };
    let dt = DateTime::new(
        group(&caps, "Y")?,
        group(&caps, "m")?,
        group(&caps, "d")?,
        group(&caps, "H")?,
        group(&caps, "M")?,
        seconds,
        0,
    )
    .ok()?;
    dt.to_zoned_datetime(rules.timezone.clone()).ok()
}

/// A named group of `caps` as a number.
fn group<T: std::str::FromStr>(caps: &Captures<'_>, name: &str) -> Option<T> {
    caps.name(name)?.as_str().parse().ok()
}

/// The corte line of the first CSV (top-level files first, then nested) that has one.
fn from_csvs(pkg: &VerifiedPackage, rules: &CorteRules) -> Option<ZonedDateTime> {
    pkg.files()
        .iter()
        .chain(pkg.nested())
        .filter(|m| is_csv(m))
        .find_map(|m| csv_corte(&m.bytes, &rules.timezone))
}

/// Whether a member's path ends in `.csv`, in any letter case.
fn is_csv(member: &Member) -> bool {
    let path = member.path.as_bytes();
    path.len() >= 4 && path[path.len() - 4..].eq_ignore_ascii_case(b".csv")
}

/// Matches a corte line: `DD/MM/YYYY HH:MM[:SS] (UTC±H[:MM])`.
static CORTE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<Y>\d{4})\s+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?\s*\(\s*(?:UTC|GMT)\s*(?:(?P<sign>[+\-−])\s*(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)?\s*\)$",
    )
    .expect("the corte line pattern is a valid regex")
});

/// The corte time written on line 2 of a CSV, converted to `tz`.
///
/// Tolerates a byte-order mark, CRLF line ends, quotes around the cell and further (empty)
/// cells after it.
fn csv_corte(bytes: &[u8], tz: &TimeZone) -> Option<ZonedDateTime> {
    let head = bytes.get(..CSV_HEAD_BYTES).unwrap_or(bytes);
    let line = head.split(|b| *b == b'\n').nth(1)?;
    let line = String::from_utf8_lossy(line);
    let cell = first_cell(line.trim_start_matches('\u{feff}').trim());
    let (dt, offset) = corte_line(cell)?;
    let instant = offset.to_timestamp(dt).ok()?;
    Some(instant.to_zoned_datetime(tz.clone()))
}

/// Reads a corte cell, `DD/MM/YYYY HH:MM[:SS] (UTC±H[:MM])`, into its local date and time and
/// the offset as written.
pub(crate) fn corte_line(cell: &str) -> Option<(DateTime, Offset)> {
    let caps = CORTE_LINE.captures(cell.trim())?;
    let dt = DateTime::new(
        group(&caps, "Y")?,
        group(&caps, "m")?,
        group(&caps, "d")?,
        group(&caps, "H")?,
        group(&caps, "M")?,
        caps.name("S")
            .map_or(Some(0), |s| s.as_str().parse().ok())?,
        0,
    )
    .ok()?;
    Some((dt, written_offset(&caps)?))
}

/// The first cell of a CSV line, without its quotes.
fn first_cell(line: &str) -> &str {
    if let Some(quoted) = line.strip_prefix('"') {
        return quoted.split('"').next().unwrap_or(quoted).trim();
    }
    line.split([',', '|', ';']).next().unwrap_or(line).trim()
}

/// The `UTC±H[:MM]` offset of a matched corte line (`UTC` alone is zero).
fn written_offset(caps: &Captures<'_>) -> Option<Offset> {
    let Some(sign) = caps.name("sign") else {
        return Some(Offset::UTC);
    };
    let hours: i32 = group(caps, "oh")?;
    let minutes: i32 = caps
        .name("om")
        .map_or(Some(0), |m| m.as_str().parse().ok())?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    let seconds = hours * 3600 + minutes * 60;
    let seconds = if sign.as_str() == "+" {
        seconds
    } else {
        -seconds
    };
    Offset::from_seconds(seconds).ok()
}

/// The configured JSON field, if the package has that member and the field holds a time.
fn from_json(pkg: &VerifiedPackage, rules: &CorteRules) -> Option<ZonedDateTime> {
    let (path, pointer) = rules.json_field.as_ref()?;
    let member = pkg
        .files()
        .iter()
        .chain(pkg.nested())
        .find(|m| &m.path == path)?;
    let value: serde_json::Value = serde_json::from_slice(&member.bytes).ok()?;
    let text = value.pointer(pointer)?.as_str()?;
    json_time(text.trim(), &rules.timezone)
}

/// Reads an RFC 3339 time, or `DD/MM/YYYY HH:MM[:SS]` as local time in `tz`.
fn json_time(text: &str, tz: &TimeZone) -> Option<ZonedDateTime> {
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Some(instant.to_zoned_datetime(tz.clone()));
    }
    let (date, time) = text.split_once(' ')?;
    let mut d = date.split('/').map(str::parse::<i16>);
    let (day, month, year) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.trim().split(':').map(str::parse::<i8>);
    let (hour, minute) = (t.next()?.ok()?, t.next()?.ok()?);
    let second = t.next().map_or(Some(0), Result::ok)?;
    if d.next().is_some() || t.next().is_some() {
        return None;
    }
    let dt = DateTime::new(
        year,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        hour,
        minute,
        second,
        0,
    )
    .ok()?;
    dt.to_zoned_datetime(tz.clone()).ok()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::hash::Sha256;
    use crate::package::evidence::EvidenceState;
    use crate::package::tests::{fixture, incoming, lenient_policy, test_limits};
    use crate::package::{Evidence, PackageKind, verify};

    fn rules() -> CorteRules {
        CorteRules {
            name_pattern: Regex::new(DEFAULT_NAME_PATTERN).unwrap(),
            timezone: TimeZone::get("America/Mexico_City").unwrap(),
            json_field: None,
        }
    }

    fn member(path: &str, bytes: &[u8]) -> Member {
        Member {
            path: path.to_owned(),
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    /// A verified package named `name` with these files and nested files.
    fn package(name: &str, files: Vec<Member>, nested: Vec<Member>) -> VerifiedPackage {
        VerifiedPackage {
            name: name.to_owned(),
            sha256: Sha256::of(name.as_bytes()),
            size: 1,
            kind: PackageKind::Data,
            files,
            nested,
            evidence: Evidence {
                sidecar: EvidenceState::Absent,
                member_list: EvidenceState::Absent,
                signature: EvidenceState::Absent,
            },
        }
    }

    fn arrival() -> Timestamp {
        "2024-06-03T02:10:45Z".parse().unwrap()
    }

    #[test]
    fn names_are_local_time_in_the_zone_with_mexicos_2021_daylight_time() {
        let pkg = verify(&incoming(&fixture()), &lenient_policy(), &test_limits()).unwrap();
        let corte = corte_time(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Name);
        assert_eq!(corte.id(), "20210601_1852");
        assert_eq!(corte.time.offset().seconds(), -5 * 3600);
        assert_eq!(corte.time.timestamp().to_string(), "2021-06-01T23:52:00Z");
    }

    #[test]
    fn names_in_2024_are_utc_minus_six_since_daylight_time_ended() {
        let pkg = package("20240603_2005_PREP.zip", vec![], vec![]);
        let corte = corte_time(&pkg, &rules(), arrival());
        assert_eq!(
            (corte.source, corte.id()),
            (CorteSource::Name, "20240603_2005".to_owned())
        );
        assert_eq!(corte.time.offset().seconds(), -6 * 3600);
        assert_eq!(corte.time.timestamp().to_string(), "2024-06-04T02:05:00Z");
    }

    #[test]
    fn a_pattern_with_seconds_gives_an_id_with_seconds() {
        let rules = CorteRules {
            name_pattern: Regex::new(
                r"(?P<Y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)T(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)",
            )
            .unwrap(),
            ..rules()
        };
        let pkg = package("PREP_2024-06-03T200530.tar.gz", vec![], vec![]);
        assert_eq!(corte_time(&pkg, &rules, arrival()).id(), "20240603_200530");
        let pkg = package("PREP_2024-06-03T200500.tar.gz", vec![], vec![]);
        assert_eq!(corte_time(&pkg, &rules, arrival()).id(), "20240603_2005");
    }

    #[test]
    fn impossible_dates_in_names_fall_through() {
        let csv = member("A_GOB_2024.csv", b"GUBERNATURA\n03/06/2024 20:05 (UTC-6)\n");
        for name in [
            "20241303_2005_PREP.zip",
            "20240632_2005_PREP.zip",
            "20240603_2505_PREP.zip",
        ] {
            let pkg = package(name, vec![csv.clone()], vec![]);
            let corte = corte_time(&pkg, &rules(), arrival());
            assert_eq!(
                (corte.source, corte.id()),
                (CorteSource::Csv, "20240603_2005".to_owned())
            );
        }
    }

    #[test]
    fn the_csv_corte_line_uses_its_written_offset() {
        // Sonora writes UTC-7; the result is expressed in Mexico City time (UTC-5 in 2021).
        let sonora = member(
            "SON_GOB_2021.csv",
            "\u{feff}GUBERNATURA\r\n\"07/06/2021 13:19 (UTC-7)\"\r\nACTAS_ESPERADAS\r\n".as_bytes(),
        );
        let pkg = package(
            "PREP_SON.zip",
            vec![member("LEEME.txt", b"x"), sonora],
            vec![],
        );
        let corte = corte_time(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Csv);
        assert_eq!(corte.time.timestamp().to_string(), "2021-06-07T20:19:00Z");
        assert_eq!(corte.id(), "20210607_1519");

        let nested = member(
            "X/CAMP_GOB_2021.csv",
            b"GUBERNATURA\n01/06/2021 18:52 (UTC-5),,,\n",
        );
        let no_corte = member("notes.csv", b"a,b\n1,2\n");
        let pkg = package("PREP_CAMP.zip", vec![no_corte], vec![nested]);
        let corte = corte_time(&pkg, &rules(), arrival());
        assert_eq!(
            (corte.source, corte.id()),
            (CorteSource::Csv, "20210601_1852".to_owned())
        );
    }

    #[test]
    fn the_real_sonora_csv_gives_its_corte() {
        let path = fixture().with_file_name("SON_GOB_2021.csv");
        let bytes = std::fs::read(path).unwrap();
        let tz = TimeZone::get("America/Hermosillo").unwrap();
        let time = csv_corte(&bytes, &tz).unwrap();
        assert_eq!(
            time.to_string(),
            "2021-06-07T13:19:00-07:00[America/Hermosillo]"
        );
    }

    #[test]
    fn corte_lines_are_read_leniently_but_never_invented() {
        let tz = rules().timezone;
        let line = |second: &str| csv_corte(format!("T\n{second}\n").as_bytes(), &tz);
        assert!(line("01/06/2021 18:52 (UTC-5)").is_some());
        assert!(line("  \"01/06/2021 18:52:30 (UTC -05:00)\"  ").is_some());
        assert_eq!(
            line("01/06/2021 18:52 (UTC)")
                .unwrap()
                .timestamp()
                .to_string(),
            "2021-06-01T18:52:00Z"
        );
        assert_eq!(
            line("01/06/2021 18:52 (UTC+5:30)")
                .unwrap()
                .timestamp()
                .to_string(),
            "2021-06-01T13:22:00Z"
        );
        for bad in [
            "",
            "01/06/2021 18:52",
            "31/02/2021 18:52 (UTC-5)",
            "01/06/2021 18:52 (UTC-99)",
            "99/99/99999 99:99 (UTC-5)",
            "ACTAS_ESPERADAS,ACTAS_REGISTRADAS",
        ] {
            assert!(line(bad).is_none(), "{bad:?}");
        }
        assert!(csv_corte(b"only one line", &tz).is_none());
        assert!(csv_corte(b"\xff\xfe\n\xff\xfe\xfd\n", &tz).is_none());
    }

    #[test]
    fn a_configured_json_field_is_used_when_name_and_csv_say_nothing() {
        let rules = CorteRules {
            json_field: Some(("json/main.json".to_owned(), "/corte/fecha".to_owned())),
            ..rules()
        };
        let json = |value: &str| {
            let text = format!(r#"{{"corte": {{"fecha": {value}}}}}"#);
            package(
                "PREP_GUB_COAH.zip",
                vec![member("json/main.json", text.as_bytes())],
                vec![],
            )
        };
        let rfc = corte_time(&json(r#""2024-06-03T20:05:00-06:00""#), &rules, arrival());
        assert_eq!(
            (rfc.source, rfc.id()),
            (CorteSource::Json, "20240603_2005".to_owned())
        );
        let utc = corte_time(&json(r#""2024-06-04T02:05:00Z""#), &rules, arrival());
        assert_eq!(utc.id(), "20240603_2005");
        let local = corte_time(&json(r#""03/06/2024 20:05:30""#), &rules, arrival());
        assert_eq!(
            (local.source, local.id()),
            (CorteSource::Json, "20240603_200530".to_owned())
        );
        assert_eq!(local.time.offset().seconds(), -6 * 3600);
        for useless in [
            r#""mañana""#,
            "20240603",
            "null",
            r#""03/06/2024""#,
            r#""03/06/2024 20:05:30:01""#,
        ] {
            let corte = corte_time(&json(useless), &rules, arrival());
            assert_eq!(corte.source, CorteSource::Arrival, "{useless}");
        }
        let broken = package(
            "PREP.zip",
            vec![member("json/main.json", b"{not json")],
            vec![],
        );
        assert_eq!(
            corte_time(&broken, &rules, arrival()).source,
            CorteSource::Arrival
        );
    }

    #[test]
    fn arrival_is_the_last_resort() {
        let pkg = package("PREP_CAMP.zip", vec![member("index.html", b"x")], vec![]);
        let corte = corte_time(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Arrival);
        assert_eq!(corte.time.timestamp(), arrival());
        assert_eq!(corte.id(), "20240602_201045");
        let no_groups = CorteRules {
            name_pattern: Regex::new(r"PREP").unwrap(),
            ..rules()
        };
        let pkg = package("20240603_2005_PREP.zip", vec![], vec![]);
        assert_eq!(
            corte_time(&pkg, &no_groups, arrival()).source,
            CorteSource::Arrival
        );
        let huge = CorteRules {
            name_pattern: Regex::new(r"(?P<Y>\d+)_(?P<m>\d+)_(?P<d>\d+)_(?P<H>\d+)_(?P<M>\d+)")
                .unwrap(),
            ..rules()
        };
        let pkg = package("99999999999_1_1_1_1.zip", vec![], vec![]);
        assert_eq!(
            corte_time(&pkg, &huge, arrival()).source,
            CorteSource::Arrival
        );
    }

    #[test]
    fn sources_have_text_forms() {
        let all = [
            CorteSource::Name,
            CorteSource::Csv,
            CorteSource::Json,
            CorteSource::Arrival,
        ];
        let text: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["name", "csv", "json", "arrival"]);
        assert_eq!(
            serde_json::to_string(&CorteSource::Arrival).unwrap(),
            "\"arrival\""
        );
    }
}
