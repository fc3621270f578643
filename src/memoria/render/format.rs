//! How the memoria técnica writes its figures: times in the period's time zone, counts with
//! thousands separated by commas (the Mexican style, with a decimal point), bytes in SI units
//! and durations in hours, minutes and seconds. Every deliverable formats through here, so a
//! figure reads the same in the page, the charts and the data files.

use indicatif::HumanCount;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The time zone named by the report, or UTC when the name is not one jiff knows (the
/// settings validate it first, so that is only a report made from hand-written figures).
pub(super) fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// `2024-06-02 20:15:00`, in `tz`.
pub(super) fn local(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `20:15`, in `tz`: a time of day for chart labels.
pub(super) fn hour_minute(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%H:%M")
        .to_string()
}

/// `2024-06-02T20:15:00-06:00`: RFC 3339 with the offset in force in `tz` at that instant.
pub(super) fn rfc3339(at: Timestamp, tz: &TimeZone) -> String {
    at.display_with_offset(tz.to_offset(at)).to_string()
}

/// `UTC-06:00`: the offset in force in `tz` at `at`.
pub(super) fn offset(at: Timestamp, tz: &TimeZone) -> String {
    format!("UTC{}", tz.to_offset(at))
}

/// `1,234,567`.
pub(super) fn count(n: u64) -> String {
    HumanCount(n).to_string()
}

/// `1,234.6`: a figure with one decimal.
pub(super) fn decimal(x: f64) -> String {
    let tenths = (x * 10.0).round();
    let sign = if tenths < 0.0 { "-" } else { "" };
    let tenths = tenths.abs() as u64;
    format!("{sign}{}.{}", count(tenths / 10), tenths % 10)
}

/// `1.2 GB`.
pub(super) fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().si().to_string()
}

/// `1 h 5 min 30 s` (the SI symbols, as Spanish writes them), to the nearest second.
pub(super) fn duration(seconds: f64) -> String {
    let whole = if seconds.is_finite() {
        seconds.round().clamp(0.0, u64::MAX as f64) as u64
    } else {
        0
    };
    let parts = [
        (whole / 3600, "h"),
        (whole / 60 % 60, "min"),
        (whole % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{} {unit}", count(*n)))
        .collect();
    if shown.is_empty() {
        "0 s".to_owned()
    } else {
        shown.join(" ")
    }
}

/// `12.3 ×`: how many times `now` is `usual`, or a dash when there is nothing to compare with.
pub(super) fn ratio(now: f64, usual: f64) -> String {
    if usual > 0.0 && now.is_finite() {
        format!("{} ×", decimal(now / usual))
    } else {
        "—".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_the_same_everywhere() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(decimal(1234.56), "1,234.6");
        assert_eq!(decimal(81.0), "81.0");
        assert_eq!(decimal(-3.25), "-3.3");
        assert_eq!(bytes(1_500_000_000), "1.5 GB");
        assert_eq!(duration(3930.4), "1 h 5 min 30 s");
        assert_eq!(duration(0.2), "0 s");
        assert_eq!(duration(10_713_600.0), "2,976 h");
        assert_eq!(ratio(50.0, 4.0), "12.5 ×");
        assert_eq!(ratio(50.0, 0.0), "—");
        let tz = zone("America/Mexico_City");
        let at: Timestamp = "2024-06-03T02:15:00Z".parse().unwrap();
        assert_eq!(local(at, &tz), "2024-06-02 20:15:00");
        assert_eq!(rfc3339(at, &tz), "2024-06-02T20:15:00-06:00");
        assert_eq!(offset(at, &tz), "UTC-06");
    }
}
