//! `difusor memoria` through the CLI: a scripted night of access logs, written as difusor's
//! access log writer writes them (rotated and gzipped at local midnight), gives exactly the
//! figures its definitions say; GoAccess reading the same lines agrees where the definitions
//! are the same; the report's folder verifies and is the same twice; and a drill on a real
//! server gives its incidents, its cortes and every logged request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::support::*;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36";
const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const CURL: &str = "curl/8.5.0";

/// What uap-core and difusor's device classes make of each browser: browser, system, device.
fn reading(ua: &str) -> (&'static str, &'static str, &'static str) {
    match ua {
        IPHONE => ("Mobile Safari", "iOS", "móvil"),
        ANDROID => ("Chrome Mobile", "Android", "móvil"),
        WINDOWS => ("Chrome", "Windows", "escritorio"),
        IPAD => ("Mobile Safari", "iOS", "tableta"),
        other => panic!("not a browser of the script: {other}"),
    }
}

/// The name difusor gives each automated client of the script.
fn bot_name(ua: Option<&str>) -> Option<&'static str> {
    match ua {
        None => Some("(sin agente de usuario)"),
        Some(GOOGLEBOT) => Some("Googlebot"),
        Some(CURL) => Some("curl"),
        Some(_) => None,
    }
}

const INE: &str = "https://prep.ine.mx/";
const FACEBOOK: &str = "https://m.facebook.com/";
const GOOGLE: &str = "https://www.google.com.mx/";
const OTHER_SITE: &str = "https://elperiodico.mx/nota";

/// The report's time zone and the offset its logs are written in.
const ZONE: &str = "America/Mexico_City";

/// One request of the scripted night.
#[derive(Debug, Clone)]
struct Req {
    ip: String,
    ua: Option<&'static str>,
    at: DateTime,
    method: &'static str,
    target: String,
    status: u16,
    bytes: u64,
    referer: Option<&'static str>,
}

impl Req {
    fn instant(&self) -> Timestamp {
        self.at
            .to_zoned_datetime(TimeZone::get(ZONE).unwrap())
            .unwrap()
            .timestamp()
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    fn bot(&self) -> bool {
        bot_name(self.ua).is_some()
    }

    fn ok(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// The page definition: GET by a person, 2xx/3xx, path matching `/,*/,*.html,*.htm`.
    fn page(&self) -> bool {
        let p = self.path();
        !self.bot()
            && self.method == "GET"
            && self.ok()
            && (p == "/" || p.ends_with('/') || p.ends_with(".html") || p.ends_with(".htm"))
    }

    /// The line, in Combined format as difusor's access log writer writes it.
    fn line(&self) -> String {
        format!(
            "{} - - [{} -0600] \"{} {} HTTP/1.1\" {} {} \"{}\" \"{}\"\n",
            self.ip,
            self.at.strftime("%d/%b/%Y:%H:%M:%S"),
            self.method,
            self.target,
            self.status,
            self.bytes,
            self.referer.unwrap_or("-"),
            self.ua.unwrap_or("-")
        )
    }
}

/// A local time of the night: `day` 2 or 3 of June 2024.
fn t(day: i8, h: i8, m: i8, s: i8) -> DateTime {
    jiff::civil::date(2024, 6, day).at(h, m, s, 0)
}

#[allow(clippy::too_many_arguments)]
fn req(
    ip: &str,
    ua: Option<&'static str>,
    at: DateTime,
    method: &'static str,
    target: &str,
    status: u16,
    bytes: u64,
    referer: Option<&'static str>,
) -> Req {
    Req {
        ip: ip.to_owned(),
        ua,
        at,
        method,
        target: target.to_owned(),
        status,
        bytes,
        referer,
    }
}

/// How many people with one or two requests fill the night besides the scripted ones.
const FILLERS: usize = 24;
/// The malformed line, written once into `access.log`.
const MALFORMED: &str = "esto no es una solicitud\n";

/// The scripted night of 2 to 3 June 2024, in time order; `seed` places the fillers.
fn night(seed: u64) -> Vec<Req> {
    let get = |ip: &str, ua, at, target: &str, status, bytes, referer| {
        req(ip, Some(ua), at, "GET", target, status, bytes, referer)
    };
    let mut r = vec![
        // Outside the period [20:00, 02:00): a second before it and its end itself.
        get("192.0.2.99", WINDOWS, t(2, 19, 59, 59), "/", 200, 900, None),
        get("192.0.2.99", WINDOWS, t(3, 2, 0, 0), "/", 200, 900, None),
        // A (iPhone): a visit of 120 s from the institute, then 45 min later one of 10 s.
        get(
            "203.0.113.10",
            IPHONE,
            t(2, 20, 5, 0),
            "/",
            200,
            5000,
            Some(INE),
        ),
        get(
            "203.0.113.10",
            IPHONE,
            t(2, 20, 5, 30),
            "/json/main.json?v=1",
            200,
            700,
            Some(INE),
        ),
        get(
            "203.0.113.10",
            IPHONE,
            t(2, 20, 7, 0),
            "/index.html",
            200,
            5000,
            Some(INE),
        ),
        get("203.0.113.10", IPHONE, t(2, 20, 52, 0), "/", 304, 0, None),
        get(
            "203.0.113.10",
            IPHONE,
            t(2, 20, 52, 10),
            "/datos/x.zip",
            200,
            250_000,
            None,
        ),
        // B (Android phone): one visit of 30 min across midnight and the rotation.
        get(
            "198.51.100.20",
            ANDROID,
            t(2, 23, 50, 0),
            "/",
            200,
            5000,
            Some(FACEBOOK),
        ),
        get(
            "198.51.100.20",
            ANDROID,
            t(2, 23, 58, 0),
            "/json/main.json",
            200,
            700,
            None,
        ),
        get(
            "198.51.100.20",
            ANDROID,
            t(3, 0, 5, 0),
            "/resultados/",
            200,
            3000,
            None,
        ),
        get(
            "198.51.100.20",
            ANDROID,
            t(3, 0, 20, 0),
            "/json/main.json",
            200,
            700,
            None,
        ),
        // C (Windows) and E (iPhone) share an address: two visitors of one request each.
        get(
            "192.0.2.30",
            WINDOWS,
            t(2, 21, 0, 0),
            "/",
            200,
            5000,
            Some(GOOGLE),
        ),
        get("192.0.2.30", IPHONE, t(2, 21, 30, 0), "/", 200, 5000, None),
        // D (iPad): a visit of 600 s from another site, a page, a style sheet, a download.
        get(
            "192.0.2.40",
            IPAD,
            t(2, 22, 0, 0),
            "/",
            200,
            5000,
            Some(OTHER_SITE),
        ),
        get(
            "192.0.2.40",
            IPAD,
            t(2, 22, 0, 20),
            "/css/a.css",
            200,
            1200,
            None,
        ),
        get(
            "192.0.2.40",
            IPAD,
            t(2, 22, 1, 0),
            "/mapa.htm",
            200,
            4000,
            None,
        ),
        get(
            "192.0.2.40",
            IPAD,
            t(2, 22, 10, 0),
            "/datos/x.zip",
            200,
            250_000,
            None,
        ),
        // H (Windows): a page and its style sheet in the same second: a visit of two
        // requests that lasts 0 s; then a page that is not there and a form sent.
        get("192.0.2.50", WINDOWS, t(2, 21, 15, 0), "/", 200, 5000, None),
        get(
            "192.0.2.50",
            WINDOWS,
            t(2, 21, 15, 0),
            "/css/a.css",
            200,
            1200,
            None,
        ),
        get(
            "192.0.2.50",
            WINDOWS,
            t(2, 21, 15, 40),
            "/nada.html",
            404,
            150,
            None,
        ),
        req(
            "192.0.2.50",
            Some(WINDOWS),
            t(2, 21, 16, 0),
            "POST",
            "/",
            200,
            10,
            None,
        ),
        // I (iPad): two requests exactly 30 min apart are two visits.
        get(
            "192.0.2.60",
            IPAD,
            t(3, 1, 0, 0),
            "/index.html",
            200,
            5000,
            None,
        ),
        get(
            "192.0.2.60",
            IPAD,
            t(3, 1, 30, 0),
            "/index.html",
            200,
            5000,
            None,
        ),
        // J (Android phone): a page and its style sheet in the same second, and nothing
        // more: a visit of two requests that lasts 0 s, which is not a single request.
        get(
            "192.0.2.70",
            ANDROID,
            t(3, 0, 45, 0),
            "/",
            200,
            5000,
            Some(GOOGLE),
        ),
        get(
            "192.0.2.70",
            ANDROID,
            t(3, 0, 45, 0),
            "/css/a.css",
            200,
            1200,
            Some(INE),
        ),
        // Bots: a crawler, a tool, a client without a user agent.
        get(
            "66.249.66.1",
            GOOGLEBOT,
            t(2, 20, 10, 0),
            "/",
            200,
            5000,
            None,
        ),
        get(
            "66.249.66.1",
            GOOGLEBOT,
            t(2, 20, 10, 1),
            "/robots.txt",
            404,
            150,
            None,
        ),
        get(
            "66.249.66.1",
            GOOGLEBOT,
            t(3, 1, 0, 0),
            "/",
            200,
            5000,
            None,
        ),
        get(
            "10.9.9.9",
            CURL,
            t(2, 20, 30, 0),
            "/json/main.json",
            200,
            700,
            None,
        ),
        req(
            "198.18.0.5",
            None,
            t(2, 21, 45, 0),
            "GET",
            "/",
            200,
            5000,
            None,
        ),
    ];
    // F (Windows): a burst of 5xx over two minutes (8 then 7, each minute with a success),
    // and later a minute of 5 errors, which is not a burst.
    let f = |at, status| {
        get(
            "203.0.113.99",
            WINDOWS,
            at,
            "/json/main.json",
            status,
            0,
            None,
        )
    };
    for i in 0..8 {
        r.push(f(t(2, 23, 10, i * 7), 503));
    }
    r.push(f(t(2, 23, 10, 58), 200));
    for i in 0..7 {
        r.push(f(t(2, 23, 11, i * 8), 502));
    }
    r.push(f(t(2, 23, 11, 59), 200));
    for i in 0..5 {
        r.push(f(t(2, 23, 30, i), 500));
    }
    r.push(f(t(2, 23, 30, 30), 200));
    // The tool over its rate limit: 12 answers 429 in one second (the busiest second), and
    // later 5 in a minute, which is not a burst.
    for _ in 0..12 {
        r.push(get(
            "10.9.9.9",
            CURL,
            t(3, 0, 30, 5),
            "/json/main.json",
            429,
            0,
            None,
        ));
    }
    for i in 0..5 {
        r.push(get(
            "10.9.9.9",
            CURL,
            t(3, 0, 40, i),
            "/json/main.json",
            429,
            0,
            None,
        ));
    }
    // Fillers: one page, sometimes the results a while later.
    let mut rng = fastrand::Rng::with_seed(seed);
    let browsers = [IPHONE, ANDROID, WINDOWS, IPAD];
    let referers = [
        Some(INE),
        Some(FACEBOOK),
        Some(GOOGLE),
        None,
        Some(OTHER_SITE),
    ];
    let pages = ["/", "/index.html", "/index.html?ref=x", "/resultados/"];
    let start = t(2, 20, 0, 0);
    for i in 0..FILLERS {
        let ip = format!("10.1.0.{}", i + 1);
        let ua = browsers[rng.usize(..browsers.len())];
        let at = start.checked_add(rng.i64(0..6 * 3600).seconds()).unwrap();
        let page = pages[rng.usize(..pages.len())];
        let (status, bytes) = if rng.bool() { (200, 5000) } else { (304, 0) };
        r.push(get(
            &ip,
            ua,
            at,
            page,
            status,
            bytes,
            referers[rng.usize(..5)],
        ));
        if rng.bool() {
            let later = at.checked_add(rng.i64(1..1700).seconds()).unwrap();
            r.push(get(&ip, ua, later, "/json/main.json", 200, 700, None));
        }
    }
    r.sort_by_key(|r| r.at);
    r
}

/// A data folder whose `bitacoras/` holds `night` as difusor leaves it: the day of 2 June
/// rotated and gzipped, the day of 3 June (and one malformed line) in `access.log`.
fn write_logs(data: &Path, night: &[Req]) -> PathBuf {
    let logs = data.join("bitacoras");
    std::fs::create_dir_all(&logs).unwrap();
    let (june2, june3): (Vec<&Req>, Vec<&Req>) = night.iter().partition(|r| r.at.day() == 2);
    let text2: String = june2.iter().map(|r| r.line()).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text2.as_bytes()).unwrap();
    std::fs::write(logs.join("access-2024-06-02.log.gz"), gz.finish().unwrap()).unwrap();
    let mut text3: String = june3.iter().map(|r| r.line()).collect();
    let middle = text3.match_indices('\n').nth(3).unwrap().0 + 1;
    text3.insert_str(middle, MALFORMED);
    std::fs::write(logs.join("access.log"), text3).unwrap();
    logs
}

/// `difusor memoria --data-dir data --out out` with `args`.
fn memoria(data: &Path, out: &Path, args: &[&str]) -> Output {
    memoria_command(data, out, args).output().unwrap()
}

fn memoria_command(data: &Path, out: &Path, args: &[&str]) -> Command {
    let mut command = difusor();
    command
        .arg("memoria")
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(args);
    command
}

/// `memoria.json` of a report folder.
fn report(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("memoria.json")).unwrap()).unwrap()
}

const PERIOD: [&str; 4] = ["--from", "2024-06-02T20:00", "--to", "2024-06-03T02:00"];

/// Counts by name, most first, then by name: how the report orders its lists.
fn counts<'a>(names: impl IntoIterator<Item = &'a str>) -> Value {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for n in names {
        *by.entry(n).or_default() += 1;
    }
    let mut v: Vec<(&str, u64)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Value::Array(
        v.into_iter()
            .map(|(name, count)| json!({"name": name, "count": count}))
            .collect(),
    )
}

fn referrer_kind(referer: Option<&str>) -> &'static str {
    match referer {
        None => "directo",
        Some(INE) => "instituto",
        Some(FACEBOOK) => "redes sociales",
        Some(GOOGLE) => "buscadores",
        Some(_) => "otros sitios",
    }
}

/// One visit by the definition: a person's requests with gaps under 30 minutes.
struct Visit<'a> {
    requests: Vec<&'a Req>,
}

impl Visit<'_> {
    fn seconds(&self) -> i64 {
        let first = self.requests.first().unwrap().instant();
        let last = self.requests.last().unwrap().instant();
        last.duration_since(first).as_secs()
    }
}

/// The visits of `period`'s requests (people only), visitor by visitor.
fn visits<'a>(period: &[&'a Req]) -> Vec<Visit<'a>> {
    let mut by_visitor: BTreeMap<(&str, Option<&str>), Vec<&Req>> = BTreeMap::new();
    for r in period.iter().filter(|r| !r.bot()) {
        by_visitor.entry((&r.ip, r.ua)).or_default().push(r);
    }
    let mut out = Vec::new();
    for requests in by_visitor.into_values() {
        let mut current: Vec<&Req> = Vec::new();
        for r in requests {
            if let Some(last) = current.last()
                && r.instant().duration_since(last.instant()).as_secs() >= 30 * 60
            {
                out.push(Visit {
                    requests: std::mem::take(&mut current),
                });
            }
            current.push(r);
        }
        out.push(Visit { requests: current });
    }
    out
}

/// The figures the written definitions give for `night` over `[from, to)`, as memoria.json
/// states them.
fn expected(night: &[Req], from: Timestamp, to: Timestamp) -> BTreeMap<&'static str, Value> {
    let period: Vec<&Req> = night
        .iter()
        .filter(|r| r.instant() >= from && r.instant() < to)
        .collect();
    let people = || period.iter().filter(|r| !r.bot());
    let distinct = |bot: bool| {
        period
            .iter()
            .filter(|r| r.bot() == bot)
            .map(|r| (r.ip.as_str(), r.ua))
            .collect::<BTreeSet<_>>()
    };
    let vs = visits(&period);
    let mut seconds: Vec<i64> = vs.iter().map(Visit::seconds).collect();
    seconds.sort_unstable();
    let n = seconds.len();
    let median = if n % 2 == 1 {
        seconds[n / 2] as f64
    } else {
        (seconds[n / 2 - 1] + seconds[n / 2]) as f64 / 2.0
    };
    let total: i64 = seconds.iter().sum();
    let bucket = |s: i64| match s {
        0 => "0 s",
        1..60 => "< 1 min",
        60..300 => "1–5 min",
        300..900 => "5–15 min",
        900..1800 => "15–30 min",
        1800..3600 => "30–60 min",
        _ => "≥ 1 h",
    };
    let by_duration: Vec<Value> = [
        "0 s",
        "< 1 min",
        "1–5 min",
        "5–15 min",
        "15–30 min",
        "30–60 min",
        "≥ 1 h",
    ]
    .iter()
    .map(|b| json!({"name": b, "count": seconds.iter().filter(|&&s| bucket(s) == *b).count()}))
    .collect();
    let pages: u64 = vs
        .iter()
        .map(|v| v.requests.iter().filter(|r| r.page()).count() as u64)
        .sum();
    let mut days = Vec::new();
    for date in period.iter().map(|r| r.at.date()).collect::<BTreeSet<_>>() {
        let of_day: Vec<&&Req> = period.iter().filter(|r| r.at.date() == date).collect();
        let visitors = |bot: bool| {
            of_day
                .iter()
                .filter(|r| r.bot() == bot)
                .map(|r| (r.ip.as_str(), r.ua))
                .collect::<BTreeSet<_>>()
                .len()
        };
        days.push(json!({
            "date": date.to_string(),
            "hits": of_day.len(),
            "pages": of_day.iter().filter(|r| r.page()).count(),
            "bytes": of_day.iter().map(|r| r.bytes).sum::<u64>(),
            "visitors": visitors(false),
            "bot_visitors": visitors(true),
            "visits": vs.iter().filter(|v| v.requests[0].at.date() == date).count(),
        }));
    }
    let people_visitors = distinct(false);
    let peak = |key: fn(&Req) -> Timestamp| {
        let mut by: BTreeMap<Timestamp, u64> = BTreeMap::new();
        for r in &period {
            *by.entry(key(r)).or_default() += 1;
        }
        let best = by.values().max().copied().unwrap();
        let at = by.iter().find(|(_, n)| **n == best).unwrap().0;
        json!({"at": at.to_string(), "hits": best})
    };
    let mut e = BTreeMap::new();
    e.insert(
        "totals",
        json!({
            "lines": night.len() + 1,
            "malformed": 1,
            "outside": night.len() - period.len(),
            "hits": period.len(),
            "bot_hits": period.iter().filter(|r| r.bot()).count(),
            "pages": period.iter().filter(|r| r.page()).count(),
            "bytes": period.iter().map(|r| r.bytes).sum::<u64>(),
            "visitors": people_visitors.len(),
            "bot_visitors": distinct(true).len(),
            "visits": n,
        }),
    );
    e.insert("days", Value::Array(days));
    e.insert(
        "visits",
        json!({
            "count": n,
            "mean_seconds": total as f64 / n as f64,
            "median_seconds": median,
            "pages_per_visit": pages as f64 / n as f64,
            "single_request": vs.iter().filter(|v| v.requests.len() == 1).count(),
            "total_seconds": total,
            "by_duration": by_duration,
        }),
    );
    e.insert(
        "top_pages",
        counts(people().filter(|r| r.page()).map(|r| r.path())),
    );
    e.insert(
        "top_downloads",
        counts(
            people()
                .filter(|r| r.ok() && r.path().starts_with("/datos/"))
                .map(|r| r.path()),
        ),
    );
    e.insert(
        "referrer_kinds",
        counts(vs.iter().map(|v| referrer_kind(v.requests[0].referer))),
    );
    let uas: Vec<&str> = people_visitors.iter().map(|(_, ua)| ua.unwrap()).collect();
    e.insert("browsers", counts(uas.iter().map(|ua| reading(ua).0)));
    e.insert("systems", counts(uas.iter().map(|ua| reading(ua).1)));
    e.insert("devices", counts(uas.iter().map(|ua| reading(ua).2)));
    e.insert("bots", counts(period.iter().filter_map(|r| bot_name(r.ua))));
    e.insert(
        "peak_minute",
        peak(|r| Timestamp::from_second(r.instant().as_second().div_euclid(60) * 60).unwrap()),
    );
    e.insert("peak_second", peak(|r| r.instant()));
    e
}

/// The local instant `2024-06-0D hh:mm` as memoria.json writes instants (UTC).
fn utc(day: i8, h: i8, m: i8) -> String {
    t(day, h, m, 0)
        .to_zoned_datetime(TimeZone::get(ZONE).unwrap())
        .unwrap()
        .timestamp()
        .to_string()
}

#[test]
fn a_scripted_night_gives_exactly_its_figures() {
    let seed = test_seed();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("datos-difusor");
    let night = night(seed);
    write_logs(&data, &night);
    let out = dir.path().join("memoria");
    let run = memoria(&data, &out, &PERIOD);
    assert_success(&run);
    let got = report(&out);
    let from = utc(2, 20, 0).parse().unwrap();
    let to = utc(3, 2, 0).parse().unwrap();
    assert_eq!(got["period"]["from"], utc(2, 20, 0));
    assert_eq!(got["period"]["to"], utc(3, 2, 0));
    for (field, want) in expected(&night, from, to) {
        let have = if field == "visits" {
            let mut v = got["visits"].clone();
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| want.get(k).is_some());
            v
        } else {
            got[field].clone()
        };
        assert_eq!(
            have, want,
            "memoria.json `{field}` differs from the scripted night (seed {seed}):\n have {have:#}\n want {want:#}"
        );
    }
    // The scripted visitors, counted by hand: A, B, C, E, D, H, I, J and F are people; the
    // night's only outside visitor has only lines outside the period.
    assert_eq!(got["totals"]["visitors"], 9 + FILLERS as u64);
    assert_eq!(
        got["totals"]["bot_visitors"], 3,
        "Googlebot, curl, no user agent"
    );
    // 19:59:59 and 02:00:00, and the fillers' second requests after 02:00.
    assert!(got["totals"]["outside"].as_u64().unwrap() >= 2);
    assert_eq!(got["totals"]["malformed"], 1);
    assert_eq!(got["peak_second"]["at"], "2024-06-03T06:30:05Z");
    // The bursts of 5xx and 429, and not the minutes of 5 that stay under the threshold.
    let bursts: Vec<Value> = got["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "errores-5xx" || i["kind"] == "límite-429")
        .map(|i| json!([i["kind"], i["at"], i["until"]]))
        .collect();
    assert_eq!(
        bursts,
        [
            json!(["errores-5xx", utc(2, 23, 10), utc(2, 23, 12)]),
            json!(["límite-429", utc(3, 0, 30), utc(3, 0, 31)]),
        ],
        "{:#}",
        got["incidents"]
    );
    let texts: Vec<&str> = got["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with("15 respuestas")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("12 solicitudes")),
        "{texts:?}"
    );
    assert_eq!(
        got["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["access-2024-06-02.log.gz", "access.log"],
        "read in time order; no journal in this folder"
    );
}

/// Every file under `root` and its bytes, by relative path.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_report_folder_holds_the_logs_verifies_and_is_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = write_logs(&data, &night(7));
    let first = dir.path().join("uno");
    let second = dir.path().join("dos");
    assert_success(&memoria(&data, &first, &PERIOD));
    assert_success(&memoria(&data, &second, &PERIOD));

    // The logs of the period: the rotated gzip as it is, the current log gzipped.
    assert_eq!(
        std::fs::read(first.join("bitacoras/access-2024-06-02.log.gz")).unwrap(),
        std::fs::read(logs.join("access-2024-06-02.log.gz")).unwrap()
    );
    assert_eq!(
        gunzip(&std::fs::read(first.join("bitacoras/access.log.gz")).unwrap()),
        std::fs::read(logs.join("access.log")).unwrap()
    );

    // SHA256SUMS lists every other file and `sha256sum -c` run in the folder agrees.
    let check = run_ok(
        Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(&first),
    );
    let listed = String::from_utf8_lossy(&check.stdout).lines().count();
    let all = files(&first);
    assert_eq!(listed, all.len() - 1, "{all:?}");

    // Twice, the same bytes, but for the generated-at line (and the HTML and PDF).
    let (a, b) = (all, files(&second));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        if name.starts_with("memoria.pdf") {
            // Chromium stamps its own creation date into the PDF.
            continue;
        }
        if name.starts_with("memoria.html") {
            let lines = |bytes: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            };
            let (x, y) = (lines(bytes), lines(&b[name]));
            assert_eq!(
                x.len(),
                y.len(),
                "{name}: line count differs between two runs"
            );
            let differing: Vec<_> = x.iter().zip(&y).filter(|(p, q)| p != q).collect();
            assert!(
                differing.len() <= 1,
                "{name}: only the generated-at line may differ, not {differing:?}"
            );
            continue;
        }
        let without_stamp = |bytes: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| !l.trim_start().starts_with("\"generated_at\""))
                .map(str::to_owned)
                .collect()
        };
        if name == "memoria.json" {
            assert_eq!(without_stamp(bytes), without_stamp(&b[name]), "{name}");
        } else if name == "SHA256SUMS" {
            let other_lines = |text: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(text)
                    .lines()
                    .filter(|l| {
                        !l.ends_with(" memoria.json")
                            && !l.ends_with(" memoria.html")
                            && !l.ends_with(" memoria.pdf")
                    })
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(other_lines(bytes), other_lines(&b[name]));
        } else {
            assert!(*bytes == b[name], "{name} differs between two runs");
        }
    }

    // A folder that is not empty is refused, with nothing written into it.
    let taken = dir.path().join("ocupada");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notas.txt"), b"mias").unwrap();
    let refused = memoria(&data, &taken, &PERIOD);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is not empty"), "{said}");
    assert_eq!(files(&taken).keys().collect::<Vec<_>>(), ["notas.txt"]);
}

#[test]
fn the_report_renders_in_a_real_browser_and_prints_to_pages() {
    if !chromium_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_logs(&data, &night(11));
    let out = dir.path().join("memoria");
    assert_success(&memoria(&data, &out, &PERIOD));
    let html = out.join("memoria.html");
    let url = format!("file://{}", html.display());
    let browser = |args: &[&str]| {
        run_ok(
            headless_chromium(&dir.path().join("perfil"))
                .args(args)
                .arg(&url),
        )
    };

    // The page the browser builds holds the report's sections and its charts.
    let dom = String::from_utf8(browser(&["--dump-dom"]).stdout).unwrap();
    for heading in ["Resumen", "Incidentes", "Cortes", "Métodos", "Fuentes"] {
        assert!(
            dom.contains(heading),
            "the rendered page has no {heading:?} section"
        );
    }
    assert!(
        dom.matches("<svg").count() >= 3,
        "the rendered page has no charts"
    );

    // Its first page, as a browser shows it: a picture with content, not a blank page.
    let shot = dir.path().join("primera.png");
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,1600",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "no screenshot");
    assert!(
        png.len() > 30_000,
        "the screenshot is nearly blank ({} bytes)",
        png.len()
    );

    // The printed version: a PDF with pages.
    let pdf = std::fs::read(out.join("memoria.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "memoria.pdf is not a PDF");
    let pages = pdf
        .windows(12)
        .filter(|w| w.starts_with(b"/Type /Page") && w[11] != b's')
        .count();
    assert!(pages >= 2, "memoria.pdf has {pages} pages");
}

#[test]
fn the_usual_portal_from_its_logs_or_its_figures_and_the_operators_notes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_logs(&data, &night(3));
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let google = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let line = |ip: &str, day: u8, path: &str, ua: &str| {
        format!(
            "{ip} - - [{day:02}/May/2024:10:00:00 -0600] \"GET {path} HTTP/1.1\" 200 100 \"-\" \"{ua}\"\n"
        )
    };
    // nginx, Combined, gzipped: 13 May: A reads two pages and a stylesheet, B one page, a
    // robot one; 14 May: A one page.
    let nginx: String = [
        line("192.0.2.1", 13, "/", chrome),
        line("192.0.2.1", 13, "/css/a.css", chrome),
        line("192.0.2.1", 13, "/otra.html", chrome),
        line("192.0.2.2", 13, "/", chrome),
        line("192.0.2.9", 13, "/", google),
        line("192.0.2.1", 14, "/", chrome),
    ]
    .concat();
    let base = dir.path().join("portal");
    std::fs::create_dir(&base).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(nginx.as_bytes()).unwrap();
    std::fs::write(base.join("portal-nginx.log.gz"), gz.finish().unwrap()).unwrap();
    // Apache, Common (no user agent: every request a person's): 15 May: C a page and the
    // JSON, D a page.
    std::fs::write(
        base.join("portal-apache.log"),
        "198.51.100.3 - - [15/May/2024:10:00:00 -0600] \"GET / HTTP/1.1\" 200 100\n\
         198.51.100.3 - - [15/May/2024:10:00:05 -0600] \"GET /json/main.json HTTP/1.1\" 200 100\n\
         198.51.100.4 - - [15/May/2024:11:00:00 -0600] \"GET /index.html HTTP/1.1\" 200 100\n",
    )
    .unwrap();
    let out = dir.path().join("con-base");
    let nginx_log = base.join("portal-nginx.log.gz");
    let apache_log = base.join("portal-apache.log");
    let mut args: Vec<&str> = PERIOD.to_vec();
    args.extend([
        "--base",
        nginx_log.to_str().unwrap(),
        apache_log.to_str().unwrap(),
    ]);
    assert_success(&memoria(&data, &out, &args));
    let m = report(&out);
    let b = &m["baseline"];
    assert_eq!(b["days"], 3, "{b}");
    assert_eq!(b["hits_per_day"], 9.0 / 3.0, "{b}");
    assert_eq!(b["pages_per_day"], 6.0 / 3.0, "{b}");
    assert_eq!(b["visitors_per_day"], 5.0 / 3.0, "{b}");
    let text = b["source"].as_str().unwrap();
    assert!(
        text.contains("portal-nginx.log.gz") && text.contains("portal-apache.log"),
        "{text}"
    );
    // The election side: the period's figures over its length (6 hours, a quarter of a day).
    let per_day = |v: &Value| v.as_f64().unwrap() * 4.0;
    assert_eq!(
        b["election_hits_per_day"].as_f64(),
        Some(per_day(&m["totals"]["hits"]))
    );
    assert_eq!(
        b["election_pages_per_day"].as_f64(),
        Some(per_day(&m["totals"]["pages"]))
    );
    let sources: Vec<&str> = m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["role"] == "bitácora base")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["portal-nginx.log.gz", "portal-apache.log"]);

    // Figures given instead, and the operator's notes (Markdown; their HTML shown as text).
    let notes = dir.path().join("notas.md");
    let written = "## Sugerencias\n\nAmpliar el ancho de banda. <script>alert(1)</script>\n";
    std::fs::write(&notes, written).unwrap();
    let out = dir.path().join("con-cifras");
    let mut args: Vec<&str> = PERIOD.to_vec();
    args.extend([
        "--base-visitas",
        "1000",
        "--base-paginas",
        "2500",
        "--base-hits",
        "40000",
        "--notas",
        notes.to_str().unwrap(),
    ]);
    assert_success(&memoria(&data, &out, &args));
    let m = report(&out);
    let b = &m["baseline"];
    assert_eq!(
        (
            &b["visitors_per_day"],
            &b["pages_per_day"],
            &b["hits_per_day"],
            &b["days"]
        ),
        (
            &json!(1000.0),
            &json!(2500.0),
            &json!(40000.0),
            &Value::Null
        )
    );
    assert!(
        b["source"].as_str().unwrap().contains("--base-visitas"),
        "{b}"
    );
    assert_eq!(m["notes"], written);
    let html = std::fs::read_to_string(out.join("memoria.html")).unwrap();
    assert!(html.contains("Sugerencias") && html.contains("Ampliar el ancho de banda"));
    assert!(
        !html.contains("<script"),
        "the notes' HTML must be shown as text"
    );

    // `--base` with given figures is refused: one comparison, said plainly.
    let refused = memoria(
        &data,
        &dir.path().join("ambas"),
        &[
            &PERIOD[..],
            &["--base", apache_log.to_str().unwrap(), "--base-hits", "1"],
        ]
        .concat(),
    );
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn a_reversed_or_too_long_period_is_refused_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_logs(&data, &night(1));
    for (period, says) in [
        (
            ["--from", "2024-06-03", "--to", "2024-06-02T20:00"],
            "before it begins",
        ),
        (
            ["--from", "2024-06-02", "--to", "2024-08-03"],
            "longer than 62 days",
        ),
    ] {
        let out = dir.path().join(format!("m{}", unique()));
        let refused = memoria(&data, &out, &period);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{period:?}: {said}");
        assert!(said.contains(says), "{period:?}: {said}");
        assert!(
            said.lines().count() == 1 && !said.contains("panicked"),
            "one plain line: {said}"
        );
        assert!(!out.exists(), "nothing written for {period:?}");
    }
    // 62 days exactly is a period.
    let out = dir.path().join("m");
    assert_success(&memoria(
        &data,
        &out,
        &["--from", "2024-06-02T00:00", "--to", "2024-08-03T00:00"],
    ));
}

#[test]
fn goaccess_agrees_where_the_definitions_are_the_same() {
    let seed = test_seed();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let night = night(seed);
    let logs = write_logs(&data, &night);
    // The same lines, in one plain file, for GoAccess.
    let mut all = gunzip(&std::fs::read(logs.join("access-2024-06-02.log.gz")).unwrap());
    all.extend(std::fs::read(logs.join("access.log")).unwrap());
    let plain = dir.path().join("todo.log");
    std::fs::write(&plain, &all).unwrap();
    let ga = dir.path().join("goaccess.json");
    let ran = Command::new("goaccess")
        .arg(&plain)
        // GoAccess leaves a visitor whose requests of a day were all answered 4xx out of
        // that day's unique visitors unless told otherwise; difusor counts every request's
        // visitor, so GoAccess is asked to count those too.
        .args([
            "--log-format=COMBINED",
            "--no-query-string",
            "--4xx-to-unique-count",
            "-o",
        ])
        .arg(&ga)
        .output()
        .expect("goaccess (apt-get install -y goaccess)");
    assert_success(&ran);
    let ga: Value = serde_json::from_slice(&std::fs::read(&ga).unwrap()).unwrap();
    // Whole days, as GoAccess counts them: no line is outside the period.
    let out = dir.path().join("m");
    assert_success(&memoria(
        &data,
        &out,
        &["--from", "2024-06-02", "--to", "2024-06-03"],
    ));
    let m = report(&out);
    let ctx = format!(
        "seed {seed}; GoAccess {:#}; difusor {:#}",
        ga["general"], m["totals"]
    );
    assert_eq!(m["totals"]["outside"], 0, "{ctx}");

    // Requests: every valid line is a hit for both; GoAccess's failed lines are malformed.
    assert_eq!(
        ga["general"]["valid_requests"], m["totals"]["hits"],
        "{ctx}"
    );
    assert_eq!(
        ga["general"]["failed_requests"], m["totals"]["malformed"],
        "{ctx}"
    );
    assert_eq!(
        ga["general"]["total_requests"], m["totals"]["lines"],
        "{ctx}"
    );
    assert_eq!(ga["general"]["bandwidth"], m["totals"]["bytes"], "{ctx}");

    // Unique visitors per day: both count an address with a user agent once a day, but
    // GoAccess counts automated clients too (crawlers unless --ignore-crawlers, and always
    // curl and clients without a user agent), which difusor keeps apart: GoAccess's figure
    // is difusor's people plus its bots of that day. GoAccess's total is the sum of its
    // days; difusor's total counts a visitor of both days once.
    let days: HashMap<String, &Value> = m["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap().replace('-', ""), d))
        .collect();
    let ga_days = ga["visitors"]["data"].as_array().unwrap();
    assert_eq!(ga_days.len(), days.len(), "{ctx}");
    let mut sum = 0;
    for g in ga_days {
        let d = days[g["data"].as_str().unwrap()];
        let both = d["visitors"].as_u64().unwrap() + d["bot_visitors"].as_u64().unwrap();
        assert_eq!(g["visitors"]["count"], both, "day {g:#} vs {d:#}");
        assert_eq!(g["hits"]["count"], d["hits"], "day {g:#} vs {d:#}");
        assert_eq!(g["bytes"]["count"], d["bytes"], "day {g:#} vs {d:#}");
        sum += both;
    }
    assert_eq!(ga["general"]["unique_visitors"], sum, "{ctx}");
    let crossed = night
        .iter()
        .filter(|r| !r.bot())
        .map(|r| (r.ip.as_str(), r.ua))
        .filter(|v| {
            let on = |day| {
                night
                    .iter()
                    .any(|r| (r.ip.as_str(), r.ua) == *v && r.at.day() == day)
            };
            on(2) && on(3)
        })
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let people_days: u64 = days.values().map(|d| d["visitors"].as_u64().unwrap()).sum();
    assert_eq!(
        m["totals"]["visitors"].as_u64().unwrap() + crossed,
        people_days
    );

    // Requested files: GoAccess lists every request but a 404 by path, from anyone, any
    // method and status; difusor's pages are GETs by people answered 2xx or 3xx. So for
    // each page, GoAccess's hits are difusor's plus the requests of that path the page
    // definition leaves out (bots, other methods, 5xx, 429), which the script knows.
    // GoAccess keeps a row per path and method: they are added up by path.
    let ga_hits = |panel: &str| -> HashMap<String, u64> {
        let mut by_path = HashMap::new();
        for r in ga[panel]["data"].as_array().unwrap() {
            *by_path
                .entry(r["data"].as_str().unwrap().to_owned())
                .or_default() += r["hits"]["count"].as_u64().unwrap();
        }
        by_path
    };
    let requests = ga_hits("requests");
    let left_out = |path: &str| {
        night
            .iter()
            .filter(|r| r.path() == path && r.status != 404 && !r.page())
            .count() as u64
    };
    let pages = m["top_pages"].as_array().unwrap();
    assert!(pages.len() >= 4, "{pages:?}");
    for p in pages {
        let path = p["name"].as_str().unwrap();
        assert_eq!(
            requests.get(path).copied(),
            Some(p["count"].as_u64().unwrap() + left_out(path)),
            "page {path}: GoAccess {requests:?}, difusor {pages:?}"
        );
    }
    // Downloads: GoAccess lists `.zip` among static files; only people fetched them.
    let statics = ga_hits("static_requests");
    for d in m["top_downloads"].as_array().unwrap() {
        let path = d["name"].as_str().unwrap();
        assert_eq!(
            statics.get(path).copied(),
            d["count"].as_u64(),
            "{statics:?}"
        );
    }
    // GoAccess's 404 panel holds the two paths that were not there.
    assert_eq!(ga["not_found"]["data"].as_array().unwrap().len(), 2);
}

/// Lines of every access log in `logs` (the current one and the rotated ones, gzip or not).
fn logged_lines(logs: &Path) -> usize {
    std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("access") && (name.ends_with(".log") || name.ends_with(".log.gz"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let text = if p.extension().is_some_and(|e| e == "gz") {
                gunzip(&bytes)
            } else {
                bytes
            };
            text.iter().filter(|&&b| b == b'\n').count()
        })
        .sum()
}

/// Waits until the access logs in `logs` hold `n` lines (the writer writes at least once
/// a second), or panics after 20 s.
fn wait_logged(logs: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while logged_lines(logs) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} lines expected in the access log, {} there",
            logged_lines(logs)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A person's browser: `requests` page views of the live site from curl with a browser's
/// user agent; the access logs in `logs` then hold `*lines` more lines.
fn browse(server: &Server, requests: usize, logs: &Path, lines: &mut usize) {
    for i in 0..requests {
        let path = if i % 2 == 0 { "/" } else { "/json/main.json" };
        let r = curl(&server.url(path), &["-A", WINDOWS]);
        assert_eq!(r.status, 200, "{path}");
    }
    *lines += requests;
    wait_logged(logs, *lines);
    // The logs give times to the second: what comes next happens in a later second.
    let last = Timestamp::now().as_second();
    while Timestamp::now().as_second() == last {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether `at` (an instant of memoria.json) is in `[from, to]`.
fn within(at: &Value, from: Timestamp, to: Timestamp) -> bool {
    let at: Timestamp = at.as_str().unwrap().parse().unwrap();
    from <= at && at <= to
}

#[test]
fn a_drill_gives_its_incidents_its_cortes_and_every_logged_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    let from = Timestamp::now() - 1.second();
    let mut server = Server::start(&data, &[]);
    let first_ready = Timestamp::now();
    let mut lines = 0;

    // Three cortes, each seen by a person while it is live.
    let cortes = ["20240602_2000", "20240602_2015", "20240602_2030"];
    for corte in cortes {
        drop_file(
            &server.entrada(),
            &format!("{corte}_PREP.zip"),
            &site_package(corte, &[]),
        );
        server.wait_corte(corte);
        browse(&server, 4, &logs, &mut lines);
    }

    // A package that is not a zip: rejected, and the live corte stays.
    let bad_at = Timestamp::now();
    drop_file(&server.entrada(), "20240602_2045_PREP.zip", b"no es un zip");
    server.wait_status("the rejection", |s| s["counts"]["rejected"] == 1);
    let bad_seen = Timestamp::now();

    // A clean restart, then a crash and a start.
    server.stop();
    let restart_at = Timestamp::now();
    server.launch();
    server.wait_ready();
    let restarted = Timestamp::now();
    browse(&server, 2, &logs, &mut lines);
    let crash_at = Timestamp::now();
    server.restart();
    let recovered = Timestamp::now();
    browse(&server, 2, &logs, &mut lines);

    // The institute's notice, on and off.
    let on_at = Timestamp::now();
    assert_success(&server.run(&["notice", "on", "--text", "Aviso de simulacro"]));
    let on_done = Timestamp::now();
    for _ in 0..3 {
        curl(&server.url("/"), &["-A", WINDOWS]);
    }
    lines += 3;
    wait_logged(&logs, lines);
    let off_at = Timestamp::now();
    assert_success(&server.run(&["notice", "off"]));
    let off_done = Timestamp::now();
    browse(&server, 2, &logs, &mut lines);
    server.stop();
    let to = Timestamp::now() + 1.second();

    let history = server.run(&["history", "--json", "--events", "100000"]);
    assert_success(&history);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();

    // The data folder is only read, so a copy of it elsewhere gives the same report.
    let before = files(&data);
    let copy = tempfile::tempdir().unwrap();
    run_ok(Command::new("cp").arg("-a").arg(&data).arg(copy.path()));
    let period = [
        "--from".to_owned(),
        from.to_string(),
        "--to".to_owned(),
        to.to_string(),
    ];
    let period: Vec<&str> = period.iter().map(String::as_str).collect();
    let out = dir.path().join("memoria");
    assert_success(&memoria(&data, &out, &period));
    let after = files(&data);
    assert!(
        before == after,
        "the data folder was written: {:?} before, {:?} after",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let m = report(&out);
    let copied_out = dir.path().join("memoria-copia");
    assert_success(&memoria(&copy.path().join("d"), &copied_out, &period));
    let mut a = m.clone();
    let mut b = report(&copied_out);
    a["generated_at"] = Value::Null;
    b["generated_at"] = Value::Null;
    assert_eq!(a, b, "the report of the copy differs");

    // Every line the server logged is a hit of the period.
    assert_eq!(m["totals"]["hits"], lines as u64, "{:#}", m["totals"]);
    assert_eq!(m["totals"]["hits"], logged_lines(&logs) as u64);
    assert_eq!(m["totals"]["outside"], 0);
    assert_eq!(m["totals"]["malformed"], 0);

    // The cortes are the journal's, with the visitors that saw each one.
    let journal: Vec<Value> = history["cortes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!([
                c["corte_id"],
                c["live_at"],
                c["lag_ms"].as_f64().unwrap() / 1000.0
            ])
        })
        .collect();
    let reported: Vec<Value> = m["cortes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["corte_id"], c["live_at"], c["lag_seconds"]]))
        .collect();
    assert_eq!(reported, journal);
    assert_eq!(reported.len(), cortes.len());
    for c in m["cortes"].as_array().unwrap() {
        assert!(c["visitors"].as_u64().unwrap() > 0, "{c:#}");
    }

    // Each incident of the drill, at its time.
    let incidents = m["incidents"].as_array().unwrap();
    let of =
        |kind: &str| -> Vec<&Value> { incidents.iter().filter(|i| i["kind"] == kind).collect() };
    let show = format!("{:#}", m["incidents"]);
    let rejected = of("paquete-rechazado");
    assert_eq!(rejected.len(), 1, "{show}");
    assert!(within(&rejected[0]["at"], bad_at, bad_seen), "{show}");
    assert!(
        rejected[0]["text"]
            .as_str()
            .unwrap()
            .contains("20240602_2045_PREP.zip"),
        "{show}"
    );
    let starts = of("reinicio");
    assert_eq!(
        starts.len(),
        2,
        "the first start and the clean restart: {show}"
    );
    assert!(within(&starts[0]["at"], from, first_ready), "{show}");
    assert!(within(&starts[1]["at"], restart_at, restarted), "{show}");
    let crashes = of("caída");
    assert_eq!(crashes.len(), 1, "{show}");
    assert!(within(&crashes[0]["at"], crash_at, recovered), "{show}");
    let notice = of("aviso");
    assert_eq!(notice.len(), 1, "{show}");
    assert!(within(&notice[0]["at"], on_at, on_done), "{show}");
    assert!(within(&notice[0]["until"], off_at, off_done), "{show}");
    assert!(
        notice[0]["text"]
            .as_str()
            .unwrap()
            .contains("Aviso de simulacro"),
        "{show}"
    );
    // The test's cortes are dated 2024: each was published long after its corte time.
    assert_eq!(of("corte-tardío").len(), cortes.len(), "{show}");
}

/// `difusor check --watch` on a `[[target]]` named `name` at `url`, `periods` periods a
/// tenth of a second apart, appending to `log`; its exit status.
fn watch_once(package: &Path, name: &str, url: &str, periods: u32, log: &Path) -> Option<i32> {
    let targets = log.with_extension(format!("targets-{}.toml", unique()));
    std::fs::write(
        &targets,
        format!("[[target]]\nname = \"{name}\"\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let out = difusor()
        .args(["check", "--watch", "--every", "100ms", "--periods"])
        .arg(periods.to_string())
        .arg("--targets")
        .arg(&targets)
        .arg("--package")
        .arg(package)
        .arg("--log")
        .arg(log)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    out.status.code()
}

/// The arguments of `difusor memoria` over the hour either side of now, with the
/// observation log `log` of `difusor check --watch`.
fn check_log_args(log: &Path) -> Vec<String> {
    let now = Timestamp::now();
    let (from, to) = ((now - 1.hour()).to_string(), (now + 1.hour()).to_string());
    let log = log.to_str().unwrap().to_owned();
    [
        "--from".into(),
        from,
        "--to".into(),
        to,
        "--check-log".into(),
        log,
    ]
    .into()
}

/// The report of `difusor memoria` with [`check_log_args`].
fn memoria_of_check_log(data: &Path, out: &Path, log: &Path) -> Value {
    let args = check_log_args(log);
    let made = memoria(
        data,
        out,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_success(&made);
    report(out)
}

/// The log and lines an incident cites as its evidence, without what follows them.
fn evidence_lines(incident: &Value) -> Option<&str> {
    incident["evidence"].as_str().unwrap().split(" (").next()
}

/// The incidents of a report that come from the external checks' observation log.
fn external_check_incidents(m: &Value) -> Vec<&Value> {
    m["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "verificación-externa")
        .collect()
}

#[test]
fn the_external_checks_failed_periods_become_incidents_with_their_log_lines() {
    let (dir, server) = serving(&[], &[]);
    let package = dir.path().join("20240602_2000_PREP.zip");
    std::fs::write(&package, site_package("20240602_2000", &[])).unwrap();
    let log = dir.path().join("observaciones.csv");
    // Two periods with the site down (a port nobody listens on), then one with it up.
    let closed = ReservedPort::hold();
    let down = format!("http://{}/", closed.addr());
    assert_eq!(watch_once(&package, "sitio", &down, 2, &log), Some(2));
    assert_eq!(
        watch_once(&package, "sitio", &server.url("/"), 1, &log),
        Some(0)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "time,target,url,result,expected_corte,served_corte,files,equal,different,missing,\
         errors,slowest_millis,lag_seconds,consecutive_failures,event,detail"
    );
    assert_eq!(lines.len(), 4, "{text}");
    let m = memoria_of_check_log(&server.data, &dir.path().join("memoria"), &log);
    let incidents = external_check_incidents(&m);
    assert_eq!(incidents.len(), 1, "{:#}", m["incidents"]);
    let text = incidents[0]["text"].as_str().unwrap();
    assert!(
        text.contains("sitio") && text.contains(&down) && text.contains("2 periodos"),
        "{text}"
    );
    assert_eq!(
        evidence_lines(incidents[0]),
        Some("observaciones.csv, líneas 2 a 3")
    );
}

#[test]
fn a_row_torn_inside_its_quoted_detail_leaves_the_periods_watched_after_it_their_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("20240602_2000_PREP.zip");
    std::fs::write(&package, site_package("20240602_2000", &[])).unwrap();
    let log = dir.path().join("observaciones.csv");
    // A watch stopped while it wrote a row (a crash, a full disk): the row ends inside its
    // detail, a field between quotes (it holds a comma), with no line end.
    let torn_at = (Timestamp::now() - 10.minutes()).to_string();
    std::fs::write(
        &log,
        format!(
            "time,target,url,result,expected_corte,served_corte,files,equal,different,missing,\
             errors,slowest_millis,lag_seconds,consecutive_failures,event,detail\n\
             {torn_at},otro,http://otro.example/,fail,20240602_2000,20240602_2000,2,1,1,0,0,\
             12,,1,,\"json/main.json: lo servido difiere del paquete desde el byte 12 (SHA-256 \
             servido 0a1b"
        ),
    )
    .unwrap();
    // Started again, it watches a site that is down: three failed periods, appended.
    let closed = ReservedPort::hold();
    let down = format!("http://{}/", closed.addr());
    assert_eq!(watch_once(&package, "sitio", &down, 3, &log), Some(2));
    let data = dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    let m = memoria_of_check_log(&data, &dir.path().join("memoria"), &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    let down_incidents: Vec<&Value> = external_check_incidents(&m)
        .into_iter()
        .filter(|i| {
            i["text"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("de sitio ({down}) falló"))
        })
        .collect();
    assert_eq!(down_incidents.len(), 1, "{:#}\n{log_text}", m["incidents"]);
    let text = down_incidents[0]["text"].as_str().unwrap();
    assert!(text.contains("3 periodos"), "{text}\n{log_text}");
    assert_eq!(
        evidence_lines(down_incidents[0]),
        Some("observaciones.csv, líneas 3 a 5"),
        "{log_text}"
    );
}

#[test]
fn a_host_named_by_the_client_never_reaches_the_report_as_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    let from = Timestamp::now() - 1.second();
    let server = Server::start(&data, &[]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");

    // HTTP/2 carries the scheme and host in every request; HTTP/1.1 may name them in the
    // request line. Either is logged, and counted, as the path it asks for.
    for _ in 0..2 {
        let r = curl(
            &server.url("/"),
            &["--http2-prior-knowledge", "-A", WINDOWS],
        );
        assert_eq!(r.status, 200);
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        s,
        "GET http://www.fraude-electoral.example/ HTTP/1.1\r\n\
         Host: www.fraude-electoral.example\r\nUser-Agent: {WINDOWS}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    wait_logged(&logs, 3);
    for line in std::fs::read_to_string(logs.join("access.log"))
        .unwrap()
        .lines()
    {
        assert!(line.contains("\"GET / HTTP/"), "{line}");
    }

    let to = Timestamp::now() + 1.second();
    let out = dir.path().join("memoria");
    let (from, to) = (from.to_string(), to.to_string());
    assert_success(&memoria(&data, &out, &["--from", &from, "--to", &to]));
    let m = report(&out);
    assert_eq!(m["top_pages"], counts(["/"; 3]), "{:#}", m["top_pages"]);
}

/// Runs `difusor memoria` like [`memoria`] and returns its output with its peak resident
/// memory in KiB (`VmHWM`, read while it runs).
fn memoria_peak(data: &Path, out: &Path, args: &[&str]) -> (Output, u64) {
    output_and_peak(&mut memoria_command(data, out, args))
}

#[test]
fn user_agents_as_long_as_a_client_likes_cost_the_report_no_more_than_real_ones() {
    // 4,000 requests, each with its own user agent of 15 KB (the server's header limit lets a
    // client send one), then the same requests with a real browser's.
    let lines = |agent: &dyn Fn(usize) -> String| -> String {
        (0..4000)
            .map(|i| {
                format!(
                    "203.0.113.{} - - [02/Jun/2024:21:{:02}:00 -0600] \"GET / HTTP/1.1\" 200 100 \
                     \"https://sitio{i}.example/\" \"{}\"\n",
                    i % 250,
                    i % 60,
                    agent(i)
                )
            })
            .collect()
    };
    let (real, real_peak) = night_peak(lines(&|_| WINDOWS.to_owned()));
    let (long, long_peak) = night_peak(lines(&|i| {
        format!("Mozilla/5.0 (X11; Linux x86_64) {}{i}", "x".repeat(15_000))
    }));
    assert_eq!(long["totals"]["hits"], 4000);
    assert_eq!(real["totals"]["hits"], 4000);
    assert_peak_within(
        long_peak,
        real_peak,
        64,
        "with long agents",
        "with a browser's",
    );
}

/// A Combined line of `client` at the local instant `at` (`-06:00`) asking for `path`.
fn combined(client: &str, at: DateTime, path: &str, agent: &str) -> String {
    format!(
        "{client} - - [{} -0600] \"GET {path} HTTP/1.1\" 200 100 \"-\" \"{agent}\"\n",
        at.strftime("%d/%b/%Y:%H:%M:%S")
    )
}

#[test]
fn months_of_the_usual_portals_logs_cost_no_more_than_a_day_of_them() {
    // The same 40,000 requests, within one day or one a minute over four weeks: what the
    // comparison needs (totals and days) does not grow with the minutes they span.
    let requests = 40_000;
    let base = |spacing: i64| -> String {
        (0..requests)
            .map(|i| {
                let at = jiff::civil::date(2024, 5, 1).at(0, 0, 0, 0) + (i * spacing).seconds();
                combined(&format!("198.51.100.{}", i % 250), at, "/", WINDOWS)
            })
            .collect()
    };
    let peak_of = |text: String| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join("bitacoras")).unwrap();
        let log = dir.path().join("portal.log");
        std::fs::write(&log, text).unwrap();
        let out = dir.path().join("memoria");
        let mut args = PERIOD.to_vec();
        args.extend(["--base", log.to_str().unwrap()]);
        let (output, peak) = memoria_peak(&data, &out, &args);
        assert_success(&output);
        (report(&out)["baseline"].clone(), peak)
    };
    let (day, day_peak) = peak_of(base(2));
    let (month, month_peak) = peak_of(base(60));
    assert_eq!(day["days"], 1, "{day}");
    assert_eq!(day["hits_per_day"], 40_000.0, "{day}");
    assert_eq!(month["days"], 28, "{month}");
    assert_peak_within(month_peak, day_peak, 48, "for four weeks", "for a day");
}

#[test]
fn a_request_logged_hours_before_its_visit_began_is_a_visit_of_its_own() {
    // One person, two requests five minutes apart; then the clock is set back two hours and
    // the same person makes two more, two minutes apart. Two visits of 5 and 2 minutes, not
    // one stretched over the two hours.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::create_dir_all(data.join("bitacoras")).unwrap();
    let log: String = [
        t(2, 23, 0, 0),
        t(2, 23, 5, 0),
        t(2, 21, 0, 0),
        t(2, 21, 2, 0),
    ]
    .into_iter()
    .map(|at| combined("203.0.113.5", at, "/", WINDOWS))
    .collect();
    std::fs::write(data.join("bitacoras").join("access.log"), log).unwrap();
    let out = dir.path().join("memoria");
    assert_success(&memoria(&data, &out, &PERIOD));
    let visits = &report(&out)["visits"];
    assert_eq!(visits["count"], 2, "{visits:#}");
    assert_eq!(visits["total_seconds"], 7 * 60, "{visits:#}");
    assert_eq!(visits["single_request"], 0, "{visits:#}");
}

#[test]
fn notes_and_logs_named_by_the_operator_that_are_not_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_logs(&data, &night(1));
    let fifo = dir.path().join("fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let folder = dir.path().join("carpeta");
    std::fs::create_dir(&folder).unwrap();
    let large = dir.path().join("notas-largas.md");
    std::fs::write(&large, "Sin novedad. ".repeat(100_000)).unwrap();
    let (fifo, folder, large) = (
        fifo.to_str().unwrap(),
        folder.to_str().unwrap(),
        large.to_str().unwrap(),
    );
    for (flag, path, says) in [
        (
            "--notas",
            fifo,
            "is a FIFO (named pipe), not a regular file",
        ),
        ("--notas", folder, "is a folder, not a regular file"),
        ("--notas", large, "larger than 1 MiB"),
        (
            "--check-log",
            fifo,
            "is a FIFO (named pipe), not a regular file",
        ),
        ("--check-log", folder, "is a folder, not a regular file"),
        ("--base", fifo, "is a FIFO (named pipe), not a regular file"),
    ] {
        let out = dir.path().join(format!("m{}", unique()));
        let mut args = PERIOD.to_vec();
        args.extend([flag, path]);
        let refused = output_within(
            &mut memoria_command(&data, &out, &args),
            std::time::Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{flag} {path}: still waiting after 20 s"));
        let said = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{flag} {path}: {said}");
        assert!(said.contains(says), "{flag} {path}: {said}");
        assert!(!out.exists(), "nothing written for {flag} {path}");
    }
}

#[test]
fn an_out_folder_that_is_a_symbolic_link_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_logs(&data, &night(1));
    let empty = dir.path().join("vacia");
    std::fs::create_dir(&empty).unwrap();
    let to_empty = dir.path().join("enlace");
    std::os::unix::fs::symlink(&empty, &to_empty).unwrap();
    let dangling = dir.path().join("roto");
    std::os::unix::fs::symlink(dir.path().join("nada"), &dangling).unwrap();
    for out in [&to_empty, &dangling] {
        let refused = memoria(&data, out, &PERIOD);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{}: {said}", out.display());
        assert!(
            said.contains("is a symbolic link; give --out the path of a new folder"),
            "{}: {said}",
            out.display()
        );
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    assert!(!dir.path().join("nada").exists());
}

/// `n` requests for `/` from one address between 21:00 and 23:00 of 2 June 2024, the `i`th
/// naming `referer(i)` and `agent(i)`, as access log lines.
fn one_address_night(
    n: usize,
    referer: &dyn Fn(usize) -> String,
    agent: &dyn Fn(usize) -> String,
) -> String {
    let mut text = String::with_capacity(n * 600);
    for i in 0..n {
        text.push_str(&format!(
            "203.0.113.7 - - [02/Jun/2024:{}:{:02}:{:02} -0600] \"GET / HTTP/1.1\" 200 100 \
             \"{}\" \"{}\"\n",
            21 + i * 2 / n,
            i * 120 / n % 60,
            i % 60,
            referer(i),
            agent(i)
        ));
    }
    text
}

#[test]
fn a_client_sending_a_new_user_agent_with_every_request_costs_a_few_hundred_bytes_each() {
    // 200,000 requests of people from one address, each with its own user agent of about 500
    // bytes (what the log keeps of one), then the same requests with one user agent: each
    // distinct agent is a visitor of its own, and costs the report its visitor's entry, not
    // its text (before, about 1,100 bytes each: 210 MiB here).
    let n = 200_000;
    let lines = |agent: &dyn Fn(usize) -> String| one_address_night(n, &|_| "-".to_owned(), agent);
    let pad = "x".repeat(440);
    let (one, one_peak) = night_peak(lines(&|_| WINDOWS.to_owned()));
    let (many, many_peak) = night_peak(lines(&|i| {
        format!("Mozilla/5.0 (X11; Linux x86_64) {pad}{i}")
    }));
    assert_eq!(one["totals"]["hits"], n);
    assert_eq!(one["totals"]["visitors"], 1);
    assert_eq!(many["totals"]["hits"], n);
    assert_eq!(many["totals"]["visitors"], n);
    assert_eq!(many["totals"]["visits"], n);
    assert_eq!(many["browsers"], json!([{ "name": "Otro", "count": n }]));
    // 80 MiB over 200,000 agents: at most 420 bytes each, hash table growth included.
    assert_peak_within(
        many_peak,
        one_peak,
        80,
        &format!("with {n} distinct agents"),
        "with one",
    );
}

/// Asserts that both runs were measured (a run too short to be read would compare nothing)
/// and that the peak memory of the run `with` (KiB) is less than `slack_mib` MiB over that of
/// the run `without`.
fn assert_peak_within(peak: u64, base: u64, slack_mib: u64, with: &str, without: &str) {
    assert!(peak > 0 && base > 0, "{peak} KiB, {base} KiB");
    assert!(
        peak < base + slack_mib * 1024,
        "{peak} KiB {with}, {base} KiB {without}"
    );
}

/// The report of a night whose access log is `log`, over [`PERIOD`], and the peak memory
/// `memoria` took to make it (KiB).
fn night_peak(log: String) -> (serde_json::Value, u64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::create_dir_all(data.join("bitacoras")).unwrap();
    std::fs::write(data.join("bitacoras").join("access.log"), log).unwrap();
    let out = dir.path().join("memoria");
    let (output, peak) = memoria_peak(&data, &out, &PERIOD);
    assert_success(&output);
    (report(&out), peak)
}

#[test]
fn a_rotated_log_cut_short_or_damaged_is_named_and_its_lines_before_the_damage_counted() {
    // A rotation interrupted by a full disk leaves a gzip cut short; a crash can leave bytes
    // after a whole one. Neither may stop the report of the night: the lines before the
    // damage are counted, the file named, its hash the file's as it is on disk.
    let lines: String = (0..2_000)
        .map(|i| {
            let at = t(2, 20, 0, 0) + (i * 3).seconds();
            combined(&format!("198.51.100.{}", i % 200), at, "/", WINDOWS)
        })
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes()).unwrap();
    let whole = gz.finish().unwrap();
    let later = combined("203.0.113.9", t(3, 1, 0, 0), "/", WINDOWS).repeat(10);
    for (case, bytes) in [
        ("cut short", whole[..whole.len() * 2 / 3].to_vec()),
        ("followed by junk", [&whole[..], &[0u8; 512]].concat()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let logs = data.join("bitacoras");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("access-2024-06-02.log.gz"), &bytes).unwrap();
        std::fs::write(logs.join("access.log"), &later).unwrap();
        let out = dir.path().join("memoria");
        let run = memoria(&data, &out, &PERIOD);
        assert_success(&run);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("warning:") && stderr.contains("access-2024-06-02.log.gz"),
            "{case}: {stderr}"
        );
        let got = report(&out);
        let sources = got["sources"].as_array().unwrap();
        let rotated = sources
            .iter()
            .find(|s| s["name"] == "access-2024-06-02.log.gz")
            .unwrap();
        let current = sources.iter().find(|s| s["name"] == "access.log").unwrap();
        assert!(rotated["damage"].is_string(), "{case}: {rotated}");
        assert_eq!(current["damage"], Value::Null, "{case}: {current}");
        assert_eq!(rotated["sha256"], sha256_hex(&bytes), "{case}");
        assert_eq!(rotated["bytes"], bytes.len(), "{case}");
        assert_eq!(current["lines"], 10, "{case}");
        let read = rotated["lines"].as_u64().unwrap();
        if case == "cut short" {
            assert!((500..2_000).contains(&read), "{case}: {read} lines");
        } else {
            assert_eq!(read, 2_000, "{case}");
        }
        // Every whole line read is a request of the period; a line the cut left half written
        // is counted as malformed, not as a request.
        let totals = &got["totals"];
        assert_eq!(totals["hits"], read + 10, "{case}: {totals}");
        let cut = u64::from(case == "cut short");
        assert_eq!(totals["malformed"], cut, "{case}: {totals}");
        let html = std::fs::read_to_string(out.join("memoria.html")).unwrap();
        assert!(
            html.contains("Archivo incompleto") && html.contains("estaban incompletos"),
            "{case}"
        );
        // The file is delivered as it is.
        assert_eq!(
            std::fs::read(out.join("bitacoras/access-2024-06-02.log.gz")).unwrap(),
            bytes,
            "{case}"
        );
    }
}

#[test]
fn a_client_naming_a_new_referring_site_with_every_request_costs_no_more_than_the_sites_kept() {
    // 500,000 requests of one person, each naming a referring site of its own (a host of 240
    // bytes), then the same requests all naming one: the sites table keeps its first 100,000
    // names and counts the rest under one, so the other 400,000 cost nothing (before, about
    // 500 bytes each: 240 MiB here).
    let n = 500_000;
    let lines = |host: &dyn Fn(usize) -> String| {
        one_address_night(n, &|i| format!("http://{}/", host(i)), &|_| {
            WINDOWS.to_owned()
        })
    };
    let pad = "x".repeat(220);
    let (one, one_peak) = night_peak(lines(&|_| format!("{pad}.example")));
    let (many, many_peak) = night_peak(lines(&|i| format!("{i:09}{pad}.example")));
    assert_eq!(one["totals"]["hits"], n);
    assert_eq!(many["totals"]["hits"], n);
    assert_eq!(many["totals"]["visits"], 1);
    assert_eq!(
        many["referrers"][0]["name"],
        "000000000".to_owned() + &pad + ".example"
    );
    // The 100,000 sites kept: about 500 bytes each, 48 MiB, hash table growth included.
    assert_peak_within(
        many_peak,
        one_peak,
        96,
        &format!("with {n} distinct referring sites"),
        "with one",
    );
}

#[test]
fn a_formula_after_a_semicolon_in_a_logged_text_starts_no_cell_of_the_data_files() {
    // A spreadsheet where `;` is the list separator (Excel in most Spanish-speaking locales,
    // LibreOffice's usual import) splits a line at every `;` outside quotes. A Referer host
    // or a path may hold one; what follows must not become a cell of its own, a formula.
    let hostile = [
        ("/", "http://evil.example;=hyperlink(char(104)&char(116))/"),
        ("/=1+1;=2+2/", "http://x;+3+3;-4+4;@sum(1)/"),
    ];
    let log: String = hostile
        .iter()
        .enumerate()
        .map(|(i, (path, referer))| {
            format!(
                "203.0.113.{i} - - [02/Jun/2024:21:00:0{i} -0600] \"GET {path} HTTP/1.1\" 200 \
                 100 \"{referer}\" \"{WINDOWS}\"\n"
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::create_dir_all(data.join("bitacoras")).unwrap();
    std::fs::write(data.join("bitacoras").join("access.log"), log).unwrap();
    let out = dir.path().join("memoria");
    assert_success(&memoria(&data, &out, &PERIOD));
    let m = report(&out);
    assert_eq!(m["referrers"].as_array().unwrap().len(), 2, "{m:#}");
    assert_eq!(m["top_pages"].as_array().unwrap().len(), 2, "{m:#}");

    let cells = |name: &str, separator: u8| -> Vec<String> {
        let bytes = std::fs::read(out.join("datos").join(name)).unwrap();
        csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(false)
            .flexible(true)
            .from_reader(&bytes[..])
            .records()
            .flat_map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    };
    let mut files = 0;
    for entry in std::fs::read_dir(out.join("datos")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        files += 1;
        for separator in [b',', b';'] {
            for cell in cells(&name, separator) {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{name} split at {:?} has the cell {cell:?}",
                    separator as char
                );
            }
        }
    }
    assert!(files > 10, "{files} data files");
    // Split at commas, as written, the texts are whole.
    let sites = cells("sitios.csv", b',');
    assert!(
        sites.contains(&"evil.example;=hyperlink(char(104)&char(116))".to_owned()),
        "{sites:?}"
    );
    assert!(cells("paginas.csv", b',').contains(&"/=1+1;=2+2/".to_owned()));
}

#[test]
fn a_row_of_any_length_in_an_observation_log_costs_the_report_no_more_than_a_short_one() {
    // An observation log damaged or not written by `difusor check` (a row of 300 MB on one
    // line, between quotes), then three failed periods. A log with the same failed periods
    // and no such row gives the measure.
    let dir = tempfile::tempdir().unwrap();
    let header = "time,target,url,result,expected_corte,served_corte,files,equal,different,\
                  missing,errors,slowest_millis,lag_seconds,consecutive_failures,event,detail\n";
    let failed: String = (1..=3)
        .map(|i| {
            let at = Timestamp::now() - (10 - i).minutes();
            format!(
                "{at},sitio,http://sitio.example/,fail,20240602_2000,,0,0,0,0,1,,,{i},,\
                 sin respuesta\n"
            )
        })
        .collect();
    let short = dir.path().join("corta.csv");
    std::fs::write(&short, format!("{header}{failed}")).unwrap();
    let long = dir.path().join("larga.csv");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&long).unwrap());
        let at = Timestamp::now() - 20.minutes();
        write!(
            file,
            "{header}{at},otro,http://otro.example/,ok,,,0,0,0,0,0,,,0,,\""
        )
        .unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..300 {
            file.write_all(&block).unwrap();
        }
        write!(file, "\"\n{failed}").unwrap();
        file.flush().unwrap();
    }
    let data = dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    let run = |log: &Path, out: &str| {
        let args = check_log_args(log);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (made, peak) = memoria_peak(&data, &dir.path().join(out), &args);
        assert_success(&made);
        (
            report(&dir.path().join(out)),
            String::from_utf8_lossy(&made.stderr).into_owned(),
            peak,
        )
    };
    let (short_report, _, short_peak) = run(&short, "corta");
    let (long_report, said, long_peak) = run(&long, "larga");
    assert_peak_within(
        long_peak,
        short_peak,
        64,
        "with a row of 300 MB",
        "without it",
    );
    assert!(said.contains("1 rows could not be read"), "{said}");
    // The rows after the long one keep their own line numbers.
    for (m, lines) in [
        (&short_report, "corta.csv, líneas 2 a 4"),
        (&long_report, "larga.csv, líneas 3 a 5"),
    ] {
        let incidents = external_check_incidents(m);
        assert_eq!(incidents.len(), 1, "{:#}", m["incidents"]);
        assert!(
            incidents[0]["text"]
                .as_str()
                .unwrap()
                .contains("3 periodos"),
            "{:#}",
            incidents[0]
        );
        assert_eq!(evidence_lines(incidents[0]), Some(lines));
    }
}

#[test]
fn a_page_is_counted_under_the_path_the_server_served_however_the_client_spelled_it() {
    // The server reads `//`, `/./` and `%6C` as it reads `/` and `l`, and answers the same
    // document: the report counts it once, under the path it names, and each spelling is
    // a view of that page (a raw `/index.htm%6C` matches no page glob). A name decoded to
    // text outside ASCII is shown with its bytes percent-encoded again, so no control or
    // direction character the client encoded reaches the report.
    let paths = [
        "/",
        "//",
        "/./",
        "/index.htm%6C",
        "/index.html",
        "/datos/a.zip",
        "//datos/./a.zip",
        "/datos/%61.zip",
        "/%E2%80%AEgpj.html",
    ];
    let log: String = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            combined(
                &format!("203.0.113.{i}"),
                t(2, 21, 0, i as i8),
                path,
                WINDOWS,
            )
        })
        .collect();
    let (m, _) = night_peak(log);
    assert_eq!(
        m["top_pages"],
        json!([
            { "name": "/", "count": 3 },
            { "name": "/index.html", "count": 2 },
            { "name": "/%E2%80%AEgpj.html", "count": 1 },
        ]),
        "{m:#}"
    );
    assert_eq!(m["totals"]["pages"], 6);
    assert_eq!(
        m["top_downloads"],
        json!([{ "name": "/datos/a.zip", "count": 3 }])
    );
}

#[test]
fn a_client_spelling_one_page_a_new_way_with_every_request_costs_the_report_nothing() {
    // 100,000 requests for `/`, each spelled its own way in a kilobyte (`//`, `/./`: the
    // server answers the page for every one), then the same requests spelled `/`: one page
    // either way, and no kilobyte of a spelling kept (before, each was a name of the pages
    // table of every worker that read it: some 200 MiB here).
    let n: usize = 100_000;
    let spelled = |i: usize| -> String {
        let mut path = String::from("/");
        for bit in 0..17 {
            path.push_str(if i >> bit & 1 == 1 { "./" } else { "/" });
        }
        path.push_str(&"./".repeat(480));
        path
    };
    let lines = |path: &dyn Fn(usize) -> String| -> String {
        (0..n)
            .map(|i| {
                let at = t(2, 21, 0, 0) + ((i * 7200 / n) as i64).seconds();
                combined("203.0.113.7", at, &path(i), WINDOWS)
            })
            .collect()
    };
    let (one, one_peak) = night_peak(lines(&|_| "/".to_owned()));
    let (many, many_peak) = night_peak(lines(&spelled));
    assert_peak_within(
        many_peak,
        one_peak,
        32,
        &format!("with {n} spellings of /"),
        "with one",
    );
    for m in [&one, &many] {
        assert_eq!(m["totals"]["pages"], n);
        let pages = m["top_pages"].as_array().unwrap();
        assert_eq!(pages.len(), 1, "{} names", pages.len());
        assert_eq!(pages[0], json!({ "name": "/", "count": n }));
    }
}

/// The `i`-th of a crowd of Windows visitors reading `/` within the hour from June `day`,
/// `h`:00.
fn crowd_line(i: usize, day: i8, h: i8) -> String {
    combined(
        &format!("198.51.100.{}", i % 200),
        t(day, h, 0, 0) + ((i % 3600) as i64).seconds(),
        "/",
        WINDOWS,
    )
}

/// A memoria of [`PERIOD`] over `data` into `out` begun, its output kept.
fn memoria_begun(data: &Path, out: &Path) -> std::process::Child {
    memoria_command(data, out, &PERIOD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// What the report `m` says under "Fuentes" of the log `name`.
fn source_named(m: &serde_json::Value, name: &str) -> serde_json::Value {
    m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not among the sources: {m:#}"))
        .clone()
}

#[test]
fn the_current_log_delivered_is_the_one_counted_while_a_live_server_writes_it() {
    // The memoria runs beside a live server, whose access.log grows as it is read. The copy
    // in bitacoras/ must be the bytes the figures were counted from, with the hash and size
    // the report gives for it: anyone checking it against "Fuentes" finds the same file.
    let line = |i: usize| crowd_line(i, 2, 21);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("access.log");
    std::fs::write(&log, (0..300_000).map(line).collect::<String>()).unwrap();
    let out = dir.path().join("memoria");
    let child = memoria_begun(&data, &out);
    let done = std::sync::atomic::AtomicBool::new(false);
    let appended = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                file.write_all(line(n).as_bytes()).unwrap();
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            n
        });
        let output = child.wait_with_output().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_success(&output);
        writer.join().unwrap()
    });
    assert!(appended > 0, "the server wrote while the report was made");
    let m = report(&out);
    let source = source_named(&m, "access.log");
    let copy = gunzip(&std::fs::read(out.join("bitacoras/access.log.gz")).unwrap());
    let copied_lines = copy.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        (copy.len(), copied_lines),
        (
            source["bytes"].as_u64().unwrap() as usize,
            source["lines"].as_u64().unwrap() as usize
        ),
        "bitacoras/access.log.gz against what the report read ({appended} lines appended)"
    );
    assert_eq!(sha256_hex(&copy), source["sha256"], "{source}");
    assert_eq!(
        m["totals"]["hits"], copied_lines,
        "every line copied is counted"
    );
}

#[test]
fn a_log_rotated_while_the_report_reads_is_counted_and_delivered_as_it_was_listed() {
    // The server rotates access.log while the memoria reads the logs before it: renamed to
    // the day's name, a new access.log in its place, gzipped, the plain one removed. The
    // report counts and delivers the file it listed as access.log, not the new one.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    std::fs::create_dir_all(&logs).unwrap();
    // Long enough to read that the rotation happens before access.log is reached.
    let earlier = 300_000;
    std::fs::write(
        logs.join("access-2024-06-02.log"),
        (0..earlier)
            .map(|i| crowd_line(i, 2, 21))
            .collect::<String>(),
    )
    .unwrap();
    let listed: String = (0..1_000).map(|i| crowd_line(i, 3, 0)).collect();
    let log = logs.join("access.log");
    std::fs::write(&log, &listed).unwrap();
    let out = dir.path().join("memoria");
    let child = memoria_begun(&data, &out);
    // The report's folder is begun once the logs are listed.
    let begun = std::time::Instant::now();
    while !std::fs::read_dir(dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".memoria-")
    }) {
        assert!(begun.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let rotated = logs.join("access-2024-06-03.log");
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::write(
        &log,
        (0..10).map(|i| crowd_line(i, 3, 1)).collect::<String>(),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
    std::fs::write(logs.join("access-2024-06-03.log.gz"), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&rotated).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let m = report(&out);
    let source = source_named(&m, "access.log");
    assert_eq!(
        (
            source["bytes"].as_u64(),
            source["lines"].as_u64(),
            source["sha256"].as_str()
        ),
        (
            Some(listed.len() as u64),
            Some(1_000),
            Some(sha256_hex(listed.as_bytes()).as_str())
        ),
        "Fuentes gives the access.log that was listed"
    );
    let copy = gunzip(&std::fs::read(out.join("bitacoras/access.log.gz")).unwrap());
    assert!(
        copy == listed.as_bytes(),
        "bitacoras/access.log.gz is the access.log listed ({} bytes), not {} bytes",
        listed.len(),
        copy.len()
    );
    assert_eq!(m["totals"]["hits"], earlier + 1_000);
}

#[test]
fn the_logs_held_open_stay_within_the_open_file_limit() {
    // Every log of the period is held open from its listing: a day a clock set back over
    // and over split into a hundred logs needs a hundred descriptors. Within the limit they
    // are all read; past it the command says so before reading any.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    std::fs::create_dir_all(&logs).unwrap();
    let line = combined("198.51.100.7", t(2, 21, 0, 0), "/", WINDOWS);
    std::fs::write(logs.join("access-2024-06-02.log"), &line).unwrap();
    for part in 2..=100 {
        std::fs::write(logs.join(format!("access-2024-06-02.{part}.log")), &line).unwrap();
    }
    std::fs::write(logs.join("access.log"), &line).unwrap();
    let run = |open_files: u64, out: &Path| {
        ProcessLimits {
            open_files: Some(open_files),
            ..ProcessLimits::default()
        }
        .command()
        .arg("memoria")
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(out)
        .args(PERIOD)
        .output()
        .unwrap()
    };
    let out = dir.path().join("m1");
    let refused = run(128, &out);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the period has 101 access logs") && said.contains("64 files"),
        "{said}"
    );
    assert!(!out.exists());
    let out = dir.path().join("m2");
    assert_success(&run(256, &out));
    let m = report(&out);
    assert_eq!(m["totals"]["hits"], 101);
    assert_eq!(
        std::fs::read_dir(out.join("bitacoras")).unwrap().count(),
        101
    );
}
