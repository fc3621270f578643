//! The corte time of a verified package: the moment of the results it carries.
//!
//! [`corte_time`] tries, in order: the package's file name (`20210601_1852_PREP_CAMP.zip`,
//! local time in the institute's zone), the corte line of the first CSV that has one
//! (`01/06/2021 18:52 (UTC-5)`, with its written offset: line 2 in most layouts, line 3 after
//! a spreadsheet's `sep=|` line, whatever its line ends, [`corte_cell`]'s forms), a configured
//! JSON field, and finally the arrival time. It never
//! panics, and fails only when the name matches the corte pattern but gives a time that does
//! not exist (`20270631_2560`, or a local time skipped by a daylight-time change): such a name
//! is a typo, and guessing past it could publish the wrong corte. Otherwise the last resort is
//! the arrival time, and the result says which source it came from.
//!
//! [`CorteRules::hold_reason`] says whether a corte time is implausible enough that an
//! operator must confirm it before it is published: far outside the publication window, or
//! ahead of the clock.

use std::fmt;
use std::sync::LazyLock;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use regex::{Captures, Regex};

use super::{Member, VerifiedPackage};
use crate::config::{Config, Invalid, optional_duration};

/// How many bytes of a CSV are looked at for its corte line.
const CSV_HEAD_BYTES: usize = 4096;
/// How many lines of a CSV, blank ones not counted, are looked at for its corte line: it is
/// line 2 in most layouts, line 3 after a spreadsheet's `sep=|` line.
const CSV_CORTE_LINES: usize = 6;

/// How to find the corte time of a package.
#[derive(Debug, Clone)]
pub(crate) struct CorteRules {
    /// Pattern for the package name, with named groups `Y`, `m`, `d`, `H`, `M` and optionally
    /// `S`; see [`crate::config::DEFAULT_NAME_PATTERN`].
    pub(crate) name_pattern: Regex,
    /// The institute's time zone: names and local JSON times are read in it, and every
    /// result is expressed in it.
    pub(crate) timezone: TimeZone,
    /// A member path and a JSON pointer (`/fecha_corte`) to a string holding the corte time.
    pub(crate) json_field: Option<(String, String)>,
    /// The publication window (`publish_start`, `publish_end`) and how far outside it a
    /// corte time may be before it is held; `None`: not checked.
    pub(crate) window: Option<Window>,
    /// How far ahead of the clock a corte time may be before it is held; `None`: not checked.
    pub(crate) future_margin: Option<SignedDuration>,
}

/// The publication window a corte time is expected in.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Start of publication, if set.
    pub(crate) start: Option<Timestamp>,
    /// End of the publication period, if set.
    pub(crate) end: Option<Timestamp>,
    /// How far before the start or after the end a corte may be.
    pub(crate) margin: SignedDuration,
}

impl CorteRules {
    /// The rules the settings give: `corte_pattern`, `corte_json_field`, `timezone`, and the
    /// holds of `corte_window_margin` (around `publish_start`, `publish_end`) and
    /// `corte_future_margin`.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let window = optional_duration("corte_window_margin", &s.corte_window_margin)?
            .filter(|_| config.publish_start.is_some() || config.publish_end.is_some())
            .map(|margin| Window {
                start: config.publish_start,
                end: config.publish_end,
                margin,
            });
        let future_margin = optional_duration("corte_future_margin", &s.corte_future_margin)?;
        let name_pattern = Regex::new(&s.corte_pattern).map_err(|e| {
            Invalid::new(
                "corte_pattern",
                format!("not a valid regular expression: {e}"),
            )
        })?;
        for group in ["Y", "m", "d", "H", "M"] {
            if !name_pattern.capture_names().flatten().any(|n| n == group) {
                return Err(Invalid::new(
                    "corte_pattern",
                    format!(
                        "the named group (?P<{group}>…) is missing; the pattern needs Y, m, d, \
                         H and M"
                    ),
                ));
            }
        }
        let json_field = if s.corte_json_field.is_empty() {
            None
        } else {
            let (path, pointer) = s.corte_json_field.split_once('#').ok_or_else(|| {
                Invalid::new(
                    "corte_json_field",
                    format!(
                        "{:?} lacks `#`; write `<member path>#<JSON pointer>`, e.g. \
                         json/main.json#/corte",
                        s.corte_json_field
                    ),
                )
            })?;
            Some((path.trim_start_matches('/').to_owned(), pointer.to_owned()))
        };
        Ok(Self {
            name_pattern,
            timezone: config.timezone.clone(),
            json_field,
            window,
            future_margin,
        })
    }
}

/// A package name that matches the corte pattern with a date or time that does not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "the name {name:?} gives the corte time {written:?}, which does not exist ({why}); \
     the name must be corrected"
)]
pub(crate) struct ImpossibleCorte {
    /// The package name.
    pub(crate) name: String,
    /// The part of the name the pattern matched.
    pub(crate) written: String,
    /// What is wrong with it.
    pub(crate) why: String,
}

impl CorteRules {
    /// Why a package with corte time `time`, arriving at `now`, must wait for an operator:
    /// its time is past the configured margin before the window's start or after its end,
    /// or ahead of `now`. `None` when it may be published.
    pub(crate) fn hold_reason(&self, time: &ZonedDateTime, now: Timestamp) -> Option<String> {
        let at = time.timestamp();
        let shown = |t: Timestamp| t.to_zoned_datetime(self.timezone.clone()).to_string();
        if let Some(margin) = self.future_margin
            && at.duration_since(now) > margin
        {
            return Some(format!(
                "its corte time {time} is {} ahead of the clock (more than corte_future_margin, \
                 {margin:#})",
                rounded(at.duration_since(now))
            ));
        }
        let window = self.window.as_ref()?;
        if let Some(start) = window.start
            && start.duration_since(at) > window.margin
        {
            return Some(format!(
                "its corte time {time} is {} before publish_start {} (more than \
                 corte_window_margin, {:#})",
                rounded(start.duration_since(at)),
                shown(start),
                window.margin
            ));
        }
        if let Some(end) = window.end
            && at.duration_since(end) > window.margin
        {
            return Some(format!(
                "its corte time {time} is {} after publish_end {} (more than \
                 corte_window_margin, {:#})",
                rounded(at.duration_since(end)),
                shown(end),
                window.margin
            ));
        }
        None
    }
}

/// A duration cut to whole minutes, for messages.
fn rounded(d: SignedDuration) -> String {
    format!("{:#}", SignedDuration::from_mins(d.as_mins()))
}

/// Where a corte time was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CorteSource {
    /// The package's file name.
    Name,
    /// The corte line of a CSV of the package.
    Csv,
    /// The configured JSON field.
    Json,
    /// Nothing in the package gave it: the time the package arrived.
    Arrival,
}

impl CorteSource {
    /// Every source.
    pub(crate) const ALL: [Self; 4] = [Self::Name, Self::Csv, Self::Json, Self::Arrival];

    /// How the journal and reports write it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Arrival => "arrival",
        }
    }
}

impl fmt::Display for CorteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// Whether `text` is written as a corte's identifier ([`CorteTime::id`]): `YYYYMMDD_HHMM` or
/// `YYYYMMDD_HHMMSS`, ASCII digits.
pub(crate) fn is_corte_id(text: &str) -> bool {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('_') {
        Some((date, time)) => {
            date.len() == 8 && matches!(time.len(), 4 | 6) && digits(date) && digits(time)
        }
        None => false,
    }
}

/// The corte time of `pkg` by `rules`, falling back to `arrival`; an error when the name
/// matches the corte pattern with a time that does not exist.
pub(crate) fn corte_time(
    pkg: &VerifiedPackage,
    rules: &CorteRules,
    arrival: Timestamp,
) -> Result<CorteTime, ImpossibleCorte> {
    let found = match from_name(pkg.name(), rules)? {
        Some(time) => Some((time, CorteSource::Name)),
        None => from_csvs(pkg, rules)
            .map(|t| (t, CorteSource::Csv))
            .or_else(|| from_json(pkg, rules).map(|t| (t, CorteSource::Json))),
    };
    Ok(match found {
        Some((time, source)) => CorteTime { time, source },
        None => CorteTime {
            time: arrival.to_zoned_datetime(rules.timezone.clone()),
            source: CorteSource::Arrival,
        },
    })
}

/// The corte id the name pattern finds in the package name `name` (the one [`corte_time`]
/// gives a package of that name), or `None` when it finds none.
pub(crate) fn corte_id_of_name(name: &str, rules: &CorteRules) -> Option<String> {
    let time = from_name(name, rules).ok().flatten()?;
    Some(
        CorteTime {
            time,
            source: CorteSource::Name,
        }
        .id(),
    )
}

/// The time the name pattern finds in `name`, read as local time in the rules' zone: `None`
/// when the pattern does not match, an error when it matches a time that does not exist.
fn from_name(name: &str, rules: &CorteRules) -> Result<Option<ZonedDateTime>, ImpossibleCorte> {
    let Some(caps) = rules.name_pattern.captures(name).filter(|c| {
        ["Y", "m", "d", "H", "M"]
            .iter()
            .all(|g| c.name(g).is_some())
    }) else {
        return Ok(None);
    };
    let impossible = |why: String| ImpossibleCorte {
        name: name.to_owned(),
        written: caps.get(0).map_or("", |m| m.as_str()).to_owned(),
        why,
    };
    let number = |group: &str| -> Result<i64, ImpossibleCorte> {
        match caps.name(group) {
            None => Ok(0),
            Some(m) => m
                .as_str()
                .parse()
                .map_err(|_| impossible(format!("{:?} is not a number", m.as_str()))),
        }
    };
    let field = |group: &str| -> Result<i8, ImpossibleCorte> {
        let n = number(group)?;
        i8::try_from(n).map_err(|_| impossible(format!("{group} = {n} is out of range")))
    };
    let year = number("Y")?;
    let year = i16::try_from(year).map_err(|_| impossible(format!("year {year}")))?;
    let dt = DateTime::new(
        year,
        field("m")?,
        field("d")?,
        field("H")?,
        field("M")?,
        field("S")?,
        0,
    )
    .map_err(|e| impossible(e.to_string()))?;
    let zoned = rules.timezone.to_ambiguous_zoned_datetime(dt);
    if let AmbiguousOffset::Gap { .. } = zoned.offset() {
        return Err(impossible(format!(
            "the clocks skipped it in {}",
            rules.timezone.iana_name().unwrap_or("the time zone")
        )));
    }
    zoned
        .compatible()
        .map(Some)
        .map_err(|e| impossible(e.to_string()))
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

/// The corte time written on the first line of a CSV's head whose first cell is a corte
/// ([`corte_cell`]), among its first [`CSV_CORTE_LINES`] lines that are not blank, converted
/// to `tz`.
///
/// Tolerates a byte-order mark, line ends of LF, CRLF or CR alone, a `sep=` line, quotes
/// around the cell and further (empty) cells after it.
fn csv_corte(bytes: &[u8], tz: &TimeZone) -> Option<ZonedDateTime> {
    let head = bytes.get(..CSV_HEAD_BYTES).unwrap_or(bytes);
    let (dt, offset) = head
        .split(|b| matches!(b, b'\n' | b'\r'))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .take(CSV_CORTE_LINES)
        .find_map(|line| {
            let line = String::from_utf8_lossy(line);
            corte_cell(first_cell(line.trim_start_matches('\u{feff}').trim()))
        })?;
    let instant = offset.to_timestamp(dt).ok()?;
    Some(instant.to_zoned_datetime(tz.clone()))
}

/// Reads a corte cell as PREP CSVs write it: `01/06/2021 18:52 (UTC-5)` ([`corte_line`]),
/// unpadded (`3/6/2019 09:15 (UTC-5)`), without a space before the offset (`02/07/2018
/// 11:45(UTC-5)`), or year first (`2019/06/03 05:47 (UTC-5)`).
pub(crate) fn corte_cell(cell: &str) -> Option<(DateTime, Offset)> {
    if let Some(time) = corte_line(cell) {
        return Some(time);
    }
    let cell = cell.trim();
    let (date, rest) = cell.split_once(char::is_whitespace).unwrap_or((cell, ""));
    let mut parts = date.split(['/', '-']);
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    corte_line(&format!("{d}/{m}/{y} {rest}"))
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
    use crate::config::DEFAULT_NAME_PATTERN;
    use crate::hash::Sha256;
    use crate::package::evidence::EvidenceState;
    use crate::package::tests::{fixture, incoming, lenient_policy, test_limits};
    use crate::package::{Evidence, PackageKind, verify};

    fn rules() -> CorteRules {
        CorteRules {
            name_pattern: Regex::new(DEFAULT_NAME_PATTERN).unwrap(),
            timezone: TimeZone::get("America/Mexico_City").unwrap(),
            json_field: None,
            window: None,
            future_margin: None,
        }
    }

    /// The corte time of a package whose name gives a possible time, if any.
    fn ok_corte(pkg: &VerifiedPackage, rules: &CorteRules, arrival: Timestamp) -> CorteTime {
        corte_time(pkg, rules, arrival).unwrap()
    }

    fn member(path: &str, bytes: &[u8]) -> Member {
        Member::new(path, Bytes::copy_from_slice(bytes))
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
        let corte = ok_corte(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Name);
        assert_eq!(corte.id(), "20210601_1852");
        assert_eq!(corte.time.offset().seconds(), -5 * 3600);
        assert_eq!(corte.time.timestamp().to_string(), "2021-06-01T23:52:00Z");
    }

    #[test]
    fn names_in_2024_are_utc_minus_six_since_daylight_time_ended() {
        let pkg = package("20240603_2005_PREP.zip", vec![], vec![]);
        let corte = ok_corte(&pkg, &rules(), arrival());
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
        assert_eq!(ok_corte(&pkg, &rules, arrival()).id(), "20240603_200530");
        let pkg = package("PREP_2024-06-03T200500.tar.gz", vec![], vec![]);
        assert_eq!(ok_corte(&pkg, &rules, arrival()).id(), "20240603_2005");
    }

    #[test]
    fn impossible_times_in_names_are_refused_not_guessed() {
        let csv = member("A_GOB_2024.csv", b"GUBERNATURA\n03/06/2024 20:05 (UTC-6)\n");
        for name in [
            "20241303_2005_PREP.zip",
            "20240632_2005_PREP.zip",
            "20270631_2560_PREP.zip",
            "20240603_2505_PREP.zip",
            "20230229_2005_PREP.zip",
        ] {
            let pkg = package(name, vec![csv.clone()], vec![]);
            let err = corte_time(&pkg, &rules(), arrival()).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().contains("does not exist"), "{err}");
        }
        // 02:30 on 4 April 2021 was skipped in Mexico City (daylight time began).
        let gap = package("20210404_0230_PREP.zip", vec![], vec![]);
        let err = corte_time(&gap, &rules(), arrival()).unwrap_err();
        assert!(err.why.contains("skipped"), "{err}");
        // 29 February of a leap year exists.
        let leap = package("20240229_2005_PREP.zip", vec![], vec![]);
        assert_eq!(ok_corte(&leap, &rules(), arrival()).id(), "20240229_2005");
    }

    #[test]
    fn cortes_far_from_the_window_or_ahead_of_the_clock_are_held() {
        let tz = rules().timezone;
        let at = |text: &str| -> ZonedDateTime {
            text.parse::<DateTime>()
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .unwrap()
        };
        let now = at("2027-06-06T21:00").timestamp();
        let held = CorteRules {
            window: Some(Window {
                start: Some(at("2027-06-06T20:00").timestamp()),
                end: Some(at("2027-06-07T20:00").timestamp()),
                margin: SignedDuration::from_hours(6),
            }),
            future_margin: Some(SignedDuration::from_mins(5)),
            ..rules()
        };
        for fine in ["2027-06-06T20:45", "2027-06-06T21:04", "2027-06-06T14:30"] {
            assert_eq!(held.hold_reason(&at(fine), now), None, "{fine}");
        }
        let year_typo = held.hold_reason(&at("2028-06-06T20:35"), now).unwrap();
        assert!(year_typo.contains("ahead of the clock"), "{year_typo}");
        let early = held.hold_reason(&at("2027-05-06T20:35"), now).unwrap();
        assert!(early.contains("before publish_start"), "{early}");
        let late = held
            .hold_reason(&at("2027-06-08T20:35"), at("2027-06-09T00:00").timestamp())
            .unwrap();
        assert!(late.contains("after publish_end"), "{late}");
        let ahead = held.hold_reason(&at("2027-06-06T21:06"), now).unwrap();
        assert!(ahead.contains("6m ahead of the clock"), "{ahead}");
        // Nothing configured: nothing held.
        assert_eq!(rules().hold_reason(&at("2099-01-01T00:00"), now), None);
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
        let corte = ok_corte(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Csv);
        assert_eq!(corte.time.timestamp().to_string(), "2021-06-07T20:19:00Z");
        assert_eq!(corte.id(), "20210607_1519");

        let nested = member(
            "X/CAMP_GOB_2021.csv",
            b"GUBERNATURA\n01/06/2021 18:52 (UTC-5),,,\n",
        );
        let no_corte = member("notes.csv", b"a,b\n1,2\n");
        let pkg = package("PREP_CAMP.zip", vec![no_corte], vec![nested]);
        let corte = ok_corte(&pkg, &rules(), arrival());
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
        let rfc = ok_corte(&json(r#""2024-06-03T20:05:00-06:00""#), &rules, arrival());
        assert_eq!(
            (rfc.source, rfc.id()),
            (CorteSource::Json, "20240603_2005".to_owned())
        );
        let utc = ok_corte(&json(r#""2024-06-04T02:05:00Z""#), &rules, arrival());
        assert_eq!(utc.id(), "20240603_2005");
        let local = ok_corte(&json(r#""03/06/2024 20:05:30""#), &rules, arrival());
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
            let corte = ok_corte(&json(useless), &rules, arrival());
            assert_eq!(corte.source, CorteSource::Arrival, "{useless}");
        }
        let broken = package(
            "PREP.zip",
            vec![member("json/main.json", b"{not json")],
            vec![],
        );
        assert_eq!(
            ok_corte(&broken, &rules, arrival()).source,
            CorteSource::Arrival
        );
    }

    #[test]
    fn arrival_is_the_last_resort() {
        let pkg = package("PREP_CAMP.zip", vec![member("index.html", b"x")], vec![]);
        let corte = ok_corte(&pkg, &rules(), arrival());
        assert_eq!(corte.source, CorteSource::Arrival);
        assert_eq!(corte.time.timestamp(), arrival());
        assert_eq!(corte.id(), "20240602_201045");
        let no_groups = CorteRules {
            name_pattern: Regex::new(r"PREP").unwrap(),
            ..rules()
        };
        let pkg = package("20240603_2005_PREP.zip", vec![], vec![]);
        assert_eq!(
            ok_corte(&pkg, &no_groups, arrival()).source,
            CorteSource::Arrival
        );
        let huge = CorteRules {
            name_pattern: Regex::new(r"(?P<Y>\d+)_(?P<m>\d+)_(?P<d>\d+)_(?P<H>\d+)_(?P<M>\d+)")
                .unwrap(),
            ..rules()
        };
        let pkg = package("99999999999_1_1_1_1.zip", vec![], vec![]);
        assert!(corte_time(&pkg, &huge, arrival()).is_err());
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
