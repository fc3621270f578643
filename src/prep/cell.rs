//! One cell of a PREP CSV: its wrappings removed, then read as a number, a missing-value
//! marker, a value of the summary line (`'99.5698%`, `4,569,608`), or a date (with or without
//! seconds, with a fraction of a second, with the UTC offset written inside the cell).
//!
//! Every function here works on the raw bytes of one cell and never panics: a cell that is
//! none of what was asked for comes back as [`Value::Invalid`] or `None`, for the caller to
//! report with its line and column.

use std::fmt;

/// Removes what institutes wrap cells in: surrounding blanks, `="…"` (a spreadsheet formula
/// that keeps leading zeros) and the key apostrophes `'040001B0100` / `'150937B0100'`.
pub(crate) fn bare(cell: &[u8]) -> &[u8] {
    // Most cells (numbers, codes) begin and end with a letter or digit: nothing to remove.
    if cell.is_empty()
        || (cell.first().is_some_and(u8::is_ascii_alphanumeric)
            && cell.last().is_some_and(u8::is_ascii_alphanumeric))
    {
        return cell;
    }
    let mut c = cell.trim_ascii();
    if let Some(inner) = c.strip_prefix(b"=\"") {
        c = inner.strip_suffix(b"\"").unwrap_or(inner).trim_ascii();
    }
    if let Some(inner) = c.strip_prefix(b"'") {
        c = inner.strip_suffix(b"'").unwrap_or(inner);
    }
    c
}

/// What a numeric cell holds. A missing-value marker is not zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// A non-negative whole number.
    Number(u64),
    /// Empty, `-`, `N/A`, `Sin dato`, `Ilegible`, `Sin acta`, in any letter case.
    Missing,
    /// Anything else: text where a number belongs.
    Invalid,
}

/// The missing-value markers of FORMATS.md, in upper case.
const MISSING: &[&[u8]] = &[b"", b"-", b"N/A", b"SIN DATO", b"ILEGIBLE", b"SIN ACTA"];

/// Whether a bare cell is a missing-value marker.
pub(crate) fn is_missing(bare: &[u8]) -> bool {
    MISSING.iter().any(|m| bare.eq_ignore_ascii_case(m))
}

/// Reads a numeric cell (already [`bare`]).
pub(crate) fn value(bare: &[u8]) -> Value {
    if let Some(n) = whole(bare) {
        return Value::Number(n);
    }
    if is_missing(bare) {
        Value::Missing
    } else {
        Value::Invalid
    }
}

/// A non-empty run of ASCII digits as a number; `None` on anything else or on overflow.
fn whole(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// An exact non-negative decimal: `units / 10^scale`. Values of the summary line are compared
/// as these, so `0`, `0.0000` and `'0.0000'` are equal and `44.0964` is not `44.0965`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal {
    units: u128,
    scale: u32,
}

/// The most decimals a [`Decimal`] is read with; more is not a number of the summary line.
const MAX_SCALE: u32 = 18;

impl Decimal {
    /// A whole number.
    pub(crate) fn whole(n: u64) -> Self {
        Self {
            units: u128::from(n),
            scale: 0,
        }
    }

    /// `numerator × 100 / denominator`, truncated (not rounded) to four decimals; zero when
    /// the denominator is zero (nothing to take a percentage of yet).
    pub(crate) fn percent_truncated(numerator: u64, denominator: u64) -> Self {
        let units = if denominator == 0 {
            0
        } else {
            u128::from(numerator) * 1_000_000 / u128::from(denominator)
        };
        Self { units, scale: 4 }
    }

    /// One unit of its last decimal less (`76.3273` → `76.3272`); zero stays zero.
    pub(crate) fn one_below(self) -> Self {
        Self {
            units: self.units.saturating_sub(1),
            scale: self.scale,
        }
    }

    /// Reads `123`, `84.4183` or `.5` (already [`bare`]); `None` if it is not such a number.
    pub(crate) fn parse(bare: &[u8]) -> Option<Self> {
        let (int, frac) = match bare.iter().position(|&b| b == b'.') {
            Some(dot) => (bare.get(..dot)?, bare.get(dot + 1..)?),
            None => (bare, &b""[..]),
        };
        if (int.is_empty() && frac.is_empty())
            || frac.len() > MAX_SCALE as usize
            || int.len() > 20
            || !int.iter().chain(frac).all(u8::is_ascii_digit)
        {
            return None;
        }
        let units = int
            .iter()
            .chain(frac)
            .fold(0u128, |n, &b| n * 10 + u128::from(b - b'0'));
        Some(Self {
            units,
            scale: u32::try_from(frac.len()).ok()?,
        })
    }

    /// Reads a value of the summary line (already [`bare`]) as institutes write them: `84.4183`,
    /// `'99.5698%` (a percent sign after it), `4,569,608` (thousands separated by commas, in
    /// groups of three; `1,5` is not a number). Empty is zero: nothing captured yet.
    pub(crate) fn parse_summary(bare: &[u8]) -> Option<Self> {
        let text = bare.strip_suffix(b"%").unwrap_or(bare).trim_ascii();
        if text.is_empty() {
            return (bare.is_empty()).then(|| Self::whole(0));
        }
        if !text.contains(&b',') {
            return Self::parse(text);
        }
        let (int, frac) = match text.iter().position(|&b| b == b'.') {
            Some(dot) => (text.get(..dot)?, text.get(dot..)?),
            None => (text, &b""[..]),
        };
        let mut groups = int.split(|&b| b == b',');
        let first = groups.next()?;
        let grouped = (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3);
        if !grouped {
            return None;
        }
        let digits: Vec<u8> = int
            .iter()
            .chain(frac)
            .copied()
            .filter(|&b| b != b',')
            .collect();
        Self::parse(&digits)
    }

    /// The value as a whole number, if it is one (`1200`, `1200.00`).
    pub(crate) fn whole_number(self) -> Option<u64> {
        let div = 10u128.checked_pow(self.scale)?;
        if !self.units.is_multiple_of(div) {
            return None;
        }
        u64::try_from(self.units / div).ok()
    }

    /// The value at `scale` decimals, if it has no more than that.
    fn at_scale(self, scale: u32) -> Option<u128> {
        self.units
            .checked_mul(10u128.checked_pow(scale.checked_sub(self.scale)?)?)
    }

    /// `self + n / 10^scale`: one more (or less, with `down`) in its last decimal place, for
    /// telling a value from its neighbours.
    #[cfg(test)]
    pub(crate) fn step(self, down: bool) -> Option<Self> {
        let units = if down {
            self.units.checked_sub(1)?
        } else {
            self.units.checked_add(1)?
        };
        Some(Self { units, ..self })
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let scale = self.scale.max(other.scale);
        Some(self.at_scale(scale)?.cmp(&other.at_scale(scale)?))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.units);
        }
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{}.{:0width$}",
            self.units / div,
            self.units % div,
            width = self.scale as usize
        )
    }
}

/// A date and time of a row, as a sortable `YYYYMMDDHHMMSS` number of its local time. Reads
/// `04/06/2023 20:01:00` and `2023-06-04 23:25:00`, unpadded (`3/6/2019`), without seconds
/// (`02/06/2019 19:42`), with a fraction of a second (`2021-06-07 11:15:00.000000`), with a `T`
/// between date and time, and with the UTC offset written after the time (`(UTC-5)`,
/// `UTC-6`, `-05:00`, `-0500`, `Z`), which is left aside: one file's times share an offset.
/// `None` on anything else.
pub(crate) fn date_time(bare: &[u8]) -> Option<u64> {
    if let Some(n) = common_date_time(bare) {
        return Some(n);
    }
    let at = bare.iter().position(|&b| b == b' ' || b == b'T')?;
    let (date, rest) = (bare.get(..at)?, bare.get(at + 1..)?.trim_ascii_start());
    let (y, m, d) = if date.get(2) == Some(&b'/') || date.get(1) == Some(&b'/') {
        let mut parts = date.split(|&b| b == b'/');
        let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
        (y, m, d)
    } else {
        let mut parts = date.split(|&b| b == b'-' || b == b'/');
        (parts.next()?, parts.next()?, parts.next()?)
    };
    let time_len = rest
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b':' || b == b'.'))
        .unwrap_or(rest.len());
    let (time, offset) = (rest.get(..time_len)?, rest.get(time_len..)?);
    if !is_offset(offset) {
        return None;
    }
    let mut t = time.split(|&b| b == b':');
    let (hh, mm) = (t.next()?, t.next()?);
    let ss = t.next().unwrap_or(b"0");
    let ss = match ss.iter().position(|&b| b == b'.') {
        Some(dot)
            if ss
                .get(dot + 1..)
                .is_some_and(|f| f.iter().all(u8::is_ascii_digit)) =>
        {
            ss.get(..dot)?
        }
        _ => ss,
    };
    if t.next().is_some() {
        return None;
    }
    sortable(
        [small(y, 4)?, small(m, 2)?, small(d, 2)?],
        [small(hh, 2)?, small(mm, 2)?, small(ss, 2)?],
    )
}

/// A date and time as a sortable `YYYYMMDDHHMMSS` number, if it is one.
fn sortable([y, m, d]: [u64; 3], [hh, mm, ss]: [u64; 3]) -> Option<u64> {
    let valid = (1900..=2999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && hh <= 23
        && mm <= 59
        && ss <= 60;
    valid.then(|| ((((y * 100 + m) * 100 + d) * 100 + hh) * 100 + mm) * 100 + ss)
}

/// The two layouts nearly every row uses, `DD/MM/YYYY HH:MM:SS` and `YYYY-MM-DD HH:MM:SS`,
/// read by position: a national file has half a million dates.
fn common_date_time(b: &[u8]) -> Option<u64> {
    let b: &[u8; 19] = b.try_into().ok()?;
    // Two digits at a fixed position; the positions are constants, so nothing is checked twice.
    let two = |at: usize| {
        let (high, low) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
        (high <= 9 && low <= 9).then(|| u64::from(high * 10 + low))
    };
    let (y, m, d) = match (b[2], b[5], b[4], b[7]) {
        (b'/', b'/', _, _) => (two(6)? * 100 + two(8)?, two(3)?, two(0)?),
        (_, _, b'-', b'-') => (two(0)? * 100 + two(2)?, two(5)?, two(8)?),
        _ => return None,
    };
    if b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    sortable([y, m, d], [two(11)?, two(14)?, two(17)?])
}

/// Whether what follows a time is nothing or a UTC offset: `(UTC-5)`, `UTC-06:00`, `GMT`,
/// `-05:00`, `-0500`, `+00`, `Z`.
fn is_offset(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    let text = text
        .strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .unwrap_or(text)
        .trim_ascii();
    let text = [&b"UTC"[..], b"GMT", b"Z"]
        .iter()
        .find_map(|p| text.strip_prefix(*p))
        .unwrap_or(text)
        .trim_ascii();
    let Some(number) = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")) else {
        return text.is_empty();
    };
    let (hours, minutes) = match number.iter().position(|&b| b == b':') {
        Some(colon) => (&number[..colon], &number[colon + 1..]),
        None if number.len() == 4 => number.split_at(2),
        None => (number, &b""[..]),
    };
    (1..=2).contains(&hours.len())
        && hours.iter().all(u8::is_ascii_digit)
        && (minutes.is_empty() || (minutes.len() == 2 && minutes.iter().all(u8::is_ascii_digit)))
}

/// Formats a value of [`date_time`] as `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn format_date_time(n: u64) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        n / 10_000_000_000,
        n / 100_000_000 % 100,
        n / 1_000_000 % 100,
        n / 10_000 % 100,
        n / 100 % 100,
        n % 100
    )
}

/// A run of 1 to `max` digits.
fn small(bytes: &[u8], max: usize) -> Option<u64> {
    if bytes.len() > max {
        return None;
    }
    whole(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappings_are_removed() {
        assert_eq!(bare(b"'040001B0100"), b"040001B0100");
        assert_eq!(bare(b"'150937B0100'"), b"150937B0100");
        assert_eq!(bare(b"=\"0001\""), b"0001");
        assert_eq!(bare(b" =\"'07'\" "), b"07");
        assert_eq!(bare(b"'100.0000'"), b"100.0000");
        assert_eq!(bare(b"ACTA PREP"), b"ACTA PREP");
        assert_eq!(bare(b"'"), b"");
    }

    #[test]
    fn markers_are_missing_not_zero() {
        for m in [
            &b""[..],
            b"-",
            b"N/A",
            b"Sin dato",
            b"SIN DATO",
            b"Ilegible",
            b"ILEGIBLE",
            b"Sin acta",
            b"SIN ACTA",
        ] {
            assert_eq!(value(m), Value::Missing, "{}", String::from_utf8_lossy(m));
        }
        assert_eq!(value(b"0"), Value::Number(0));
        assert_eq!(value(b"0430"), Value::Number(430));
        assert_eq!(value(b"12a"), Value::Invalid);
        assert_eq!(value(b"-3"), Value::Invalid);
        assert_eq!(value(b"99999999999999999999"), Value::Invalid);
    }

    #[test]
    fn decimals_compare_by_value() {
        let d = |s: &str| Decimal::parse(s.as_bytes()).unwrap();
        assert_eq!(d("0"), d("0.0000"));
        assert_eq!(d("100.0000"), Decimal::whole(100));
        assert_eq!(d("44.0964"), Decimal::percent_truncated(814_690, 1_847_519));
        assert_ne!(d("44.0965"), d("44.0964"));
        assert_ne!(d("44.09641"), d("44.0964"));
        assert_eq!(d("44.09640"), d("44.0964"));
        for bad in ["", ".", "1.2.3", "1,5", "abc", "-1"] {
            assert!(Decimal::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        // Truncated, not rounded: 603 / 3748 = 16.08858…
        assert_eq!(Decimal::percent_truncated(603, 3748).to_string(), "16.0885");
        assert_eq!(Decimal::percent_truncated(5, 0), Decimal::whole(0));
    }

    #[test]
    fn every_date_variant_is_read() {
        for (cell, n) in [
            ("04/06/2023 20:01:00", 20230604200100),
            ("2023-06-04 23:25:00", 20230604232500),
            ("4/6/2023 20:01", 20230604200100),
            ("02/06/2019 19:42", 20190602194200),
            ("2021-06-07 11:15:00.000000", 20210607111500),
            ("2021-06-07T11:15:00", 20210607111500),
            ("07/06/2021 20:00 (UTC-5)", 20210607200000),
            ("07/06/2021 20:00:05(UTC-05:00)", 20210607200005),
            ("2023-06-04 23:25:00-06:00", 20230604232500),
            ("2023-06-04 23:25:00 -0600", 20230604232500),
            ("2023-06-04 23:25:00 UTC-6", 20230604232500),
            ("2023-06-04 23:25:00Z", 20230604232500),
        ] {
            assert_eq!(date_time(cell.as_bytes()), Some(n), "{cell}");
        }
        assert_eq!(format_date_time(20230604232500), "2023-06-04 23:25:00");
        for bad in [
            "",
            "-",
            "2023-13-01 00:00:00",
            "04/06/2023",
            "ayer 20:00",
            "2023-06-04 23:25:00 mañana",
            "2023-06-04 23:25:00 (UTC-123)",
            "2023-06-04 23:25:00:01",
            "2023-06-04 23:25:00.5x",
        ] {
            assert_eq!(date_time(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn summary_values_are_read_as_institutes_write_them() {
        let v = |s: &str| Decimal::parse_summary(bare(s.as_bytes()));
        for (written, value) in [
            ("'99.5698%", "99.5698"),
            ("'100.0000%'", "100"),
            ("7,672", "7672"),
            ("4,569,608", "4569608"),
            ("1,234.5", "1234.5"),
            ("0.369", "0.3690"),
            ("", "0"),
            ("'0.0000'", "0"),
        ] {
            assert_eq!(v(written), Decimal::parse(value.as_bytes()), "{written}");
        }
        for bad in ["1,5", "12,34,567", ",123", "1,2345", "%", "abc%", "--"] {
            assert_eq!(v(bad), None, "{bad}");
        }
        let d = |s: &str| Decimal::parse(s.as_bytes()).unwrap();
        assert!(d("2.5") > d("2.4999") && d("0.369") < d("0.36901"));
        assert_eq!(d("44.0964").step(false), Some(d("44.0965")));
        assert_eq!(d("3").step(true), Some(d("2")));
        assert_eq!(d("1200.00").whole_number(), Some(1200));
        assert_eq!(d("12.5").whole_number(), None);
    }
}
