//! Conditional and range requests (RFC 9110 §13 and §14), decided before any byte is sent.
//!
//! [`plan`] reads the request's validators and `Range` against one entry and says what to
//! send. It never looks at the body, so the decision costs the same for any file size.
//!
//! # Guarantees
//! - `If-Match` (strong comparison, or `*`) and, without it, `If-Unmodified-Since` are
//!   evaluated first, as the RFC orders (§13.2.2): one that fails gives 412 for GET and
//!   HEAD, never the bytes of another copy (a download resumed with `Range` and `If-Match`
//!   naming the copy it began is never spliced with the next corte's). An
//!   `If-Unmodified-Since` date holds for an entry so dated only if no other bytes were
//!   served under it.
//! - `If-None-Match` takes precedence over `If-Modified-Since`, as the RFC orders; a match
//!   gives 304 for GET and HEAD.
//! - A date names a copy only if no other bytes were served under it
//!   ([`Validators::date_shared`]): `If-Modified-Since` gives 304 for an entry so dated only
//!   when the client's date is later, and an `If-Range` date never matches it.
//! - `If-Match` and `If-None-Match` sent on several lines are read as one list, as the RFC
//!   combines them (§5.3): a tag on any line counts.
//! - Only a single byte range is served (206); several ranges, a malformed header or an
//!   `If-Range` that does not match the entry's strong ETag or exact date get the whole file
//!   (200), which the RFC allows. A range wholly past the end gets 416.

use std::ops::RangeInclusive;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, header};

/// What to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200: the whole entry.
    Full,
    /// 206: these bytes.
    Partial(RangeInclusive<u64>),
    /// 416: the range lies past the end.
    Unsatisfiable,
    /// 412: `If-Match` or `If-Unmodified-Since` names another copy.
    PreconditionFailed,
}

/// The validators of one entry.
pub(crate) struct Validators<'a> {
    /// Strong ETag, quoted.
    pub(crate) etag: &'a HeaderValue,
    /// When the entry last changed (whole seconds).
    pub(crate) modified: SystemTime,
    /// Whether other bytes were served under the same date (a change within one second).
    pub(crate) date_shared: bool,
    /// Length of the entry in bytes.
    pub(crate) len: u64,
}

/// Decides what a GET (`ranges` true) or HEAD gets for an entry.
pub(crate) fn plan(headers: &HeaderMap, v: &Validators<'_>, ranges: bool) -> Plan {
    let unchanged = |since: SystemTime| v.modified < since || v.modified == since && !v.date_shared;
    if headers.contains_key(header::IF_MATCH) {
        // `*` names any current copy; a tag names this one only by strong comparison (a
        // field that is not text names no tag of ours).
        let im = || tags(headers, header::IF_MATCH);
        if !(im().any(|t| t == "*") || tags_match(im(), v.etag, true)) {
            return Plan::PreconditionFailed;
        }
    } else if let Some(since) = text(headers, header::IF_UNMODIFIED_SINCE).and_then(date)
        && !unchanged(since)
    {
        return Plan::PreconditionFailed;
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if none_match(headers, v.etag) {
            return Plan::NotModified;
        }
    } else if let Some(since) = text(headers, header::IF_MODIFIED_SINCE).and_then(date)
        && unchanged(since)
    {
        return Plan::NotModified;
    }
    if !ranges {
        return Plan::Full;
    }
    let Some(range) = text(headers, header::RANGE) else {
        return Plan::Full;
    };
    if let Some(if_range) = text(headers, header::IF_RANGE) {
        let current = if if_range.starts_with('"') || if_range.starts_with("W/") {
            tags_match(if_range.split(',').map(str::trim), v.etag, true)
        } else {
            !v.date_shared && date(if_range) == Some(v.modified)
        };
        if !current {
            return Plan::Full;
        }
    }
    let one = std::num::NonZeroUsize::MIN;
    let Ok(parsed) = http_range_header::parse_range_header_with_max_ranges(range, one) else {
        return Plan::Full;
    };
    match parsed.validate(v.len) {
        Ok(ranges) => match ranges.into_iter().next() {
            Some(r) => Plan::Partial(r),
            None => Plan::Full,
        },
        Err(_) => Plan::Unsatisfiable,
    }
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, or `*`): the
/// client's copy is current.
pub(crate) fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    tags_match(tags(headers, header::IF_NONE_MATCH), etag, false)
}

/// Whether the request's `If-None-Match` is `*` (or a list holding it): any current
/// representation matches, whatever its tag.
pub(crate) fn none_match_any(headers: &HeaderMap) -> bool {
    tags(headers, header::IF_NONE_MATCH).any(|t| t == "*")
}

/// The entity tags (or `*`) of a list-valued field, over all its lines; a line that is not
/// text names none.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .map(str::trim)
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text).ok()
}

/// Whether entity tags (or `*`) match `etag`; weak comparison ignores `W/` prefixes and
/// takes `*`, strong comparison refuses weak tags and `*`.
fn tags_match<'t>(
    mut tags: impl Iterator<Item = &'t str>,
    etag: &HeaderValue,
    strong: bool,
) -> bool {
    let ours = etag.as_bytes();
    tags.any(|tag| {
        if tag == "*" {
            return !strong;
        }
        match tag.strip_prefix("W/") {
            Some(weak) => !strong && weak.as_bytes() == ours,
            None => tag.as_bytes() == ours,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const MODIFIED: u64 = 1_717_380_000;

    fn check(pairs: &[(&str, &str)]) -> Plan {
        check_dated(pairs, false)
    }

    fn check_dated(pairs: &[(&str, &str)], date_shared: bool) -> Plan {
        let etag = HeaderValue::from_static("\"abc\"");
        let v = Validators {
            etag: &etag,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(MODIFIED),
            date_shared,
            len: 100,
        };
        plan(&headers(pairs), &v, true)
    }

    #[test]
    fn a_date_other_bytes_were_served_under_names_no_copy() {
        let at = |secs| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let same = at(MODIFIED);
        assert_eq!(check(&[("if-modified-since", &same)]), Plan::NotModified);
        assert_eq!(
            check_dated(&[("if-modified-since", &same)], true),
            Plan::Full
        );
        let later = at(MODIFIED + 1);
        assert_eq!(
            check_dated(&[("if-modified-since", &later)], true),
            Plan::NotModified
        );
        let range = [("range", "bytes=0-9"), ("if-range", same.as_str())];
        assert_eq!(check(&range), Plan::Partial(0..=9));
        assert_eq!(check_dated(&range, true), Plan::Full);
        // The ETag still tells the copies apart.
        assert_eq!(
            check_dated(
                &[("if-none-match", "\"abc\""), ("if-modified-since", &same)],
                true
            ),
            Plan::NotModified
        );
    }

    #[test]
    fn validators_give_304() {
        assert_eq!(check(&[("if-none-match", "\"abc\"")]), Plan::NotModified);
        assert_eq!(
            check(&[("if-none-match", "\"x\", W/\"abc\"")]),
            Plan::NotModified
        );
        assert_eq!(check(&[("if-none-match", "*")]), Plan::NotModified);
        assert_eq!(check(&[("if-none-match", "\"other\"")]), Plan::Full);
        let later =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_717_390_000));
        assert_eq!(check(&[("if-modified-since", &later)]), Plan::NotModified);
        let earlier =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_717_300_000));
        assert_eq!(check(&[("if-modified-since", &earlier)]), Plan::Full);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            check(&[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &later)
            ]),
            Plan::Full
        );
    }

    #[test]
    fn a_precondition_naming_another_copy_fails() {
        let at = |secs| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let failed = Plan::PreconditionFailed;
        assert_eq!(check(&[("if-match", "\"x\", \"abc\"")]), Plan::Full);
        assert_eq!(check(&[("if-match", "*")]), Plan::Full);
        assert_eq!(check(&[("if-match", "W/\"abc\"")]), failed);
        assert_eq!(check(&[("if-match", "\"x\"")]), failed);
        let same = at(MODIFIED);
        assert_eq!(check(&[("if-unmodified-since", &same)]), Plan::Full);
        assert_eq!(check_dated(&[("if-unmodified-since", &same)], true), failed);
        assert_eq!(check(&[("if-unmodified-since", &at(MODIFIED - 1))]), failed);
        // If-Match is asked first, and instead of If-Unmodified-Since.
        assert_eq!(
            check(&[("if-match", "\"abc\""), ("if-unmodified-since", &at(1))]),
            Plan::Full
        );
        assert_eq!(
            check(&[("if-match", "\"x\""), ("if-none-match", "\"abc\"")]),
            failed
        );
        assert_eq!(
            check(&[("range", "bytes=0-9"), ("if-match", "\"x\"")]),
            failed
        );
    }

    #[test]
    fn a_list_field_sent_on_several_lines_is_one_list() {
        let im = [("if-match", "\"x\""), ("if-match", "\"abc\"")];
        assert_eq!(check(&im), Plan::Full);
        let im = [("if-match", "\"x\""), ("if-match", "*")];
        assert_eq!(check(&im), Plan::Full);
        let inm = [("if-none-match", "\"x\""), ("if-none-match", "W/\"abc\"")];
        assert_eq!(check(&inm), Plan::NotModified);
        let inm = [("if-none-match", "\"x\""), ("if-none-match", "\"y\"")];
        assert_eq!(check(&inm), Plan::Full);
    }

    #[test]
    fn single_ranges_are_served_and_the_rest_gets_the_whole_file() {
        assert_eq!(check(&[("range", "bytes=0-9")]), Plan::Partial(0..=9));
        assert_eq!(check(&[("range", "bytes=90-")]), Plan::Partial(90..=99));
        assert_eq!(check(&[("range", "bytes=-5")]), Plan::Partial(95..=99));
        assert_eq!(check(&[("range", "bytes=200-300")]), Plan::Unsatisfiable);
        assert_eq!(check(&[("range", "bytes=0-1,5-6")]), Plan::Full);
        assert_eq!(check(&[("range", "lines=1-2")]), Plan::Full);
        assert_eq!(
            check(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")]),
            Plan::Partial(0..=9)
        );
        assert_eq!(
            check(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
            Plan::Full
        );
        assert_eq!(
            check(&[("range", "bytes=0-9"), ("if-range", "W/\"abc\"")]),
            Plan::Full
        );
    }
}
