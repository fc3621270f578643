//! Memorias for the render tests: an election night with hostile strings wherever the logs
//! can put them, and one of a period in which nothing was served.

use jiff::{SignedDuration, Timestamp};

use super::super::model::*;

/// Texts an attacker can place in a log line (a path, a referrer, a user agent).
pub(super) const HOSTILE_PAGE: &str = "/<script>alert(1)</script>";
pub(super) const HOSTILE_REFERRER: &str = "\"><img src=x onerror=alert(1)>";
pub(super) const HOSTILE_BOT: &str = "=cmd|' /C calc'!A0";

fn at(s: &str) -> Timestamp {
    s.parse().expect("a valid instant")
}

fn counts(items: &[(&str, u64)]) -> Vec<Count> {
    items
        .iter()
        .map(|(name, count)| Count {
            name: (*name).to_owned(),
            count: *count,
        })
        .collect()
}

/// One slot of a night whose audience climbs from 20:00 local and fades after midnight.
fn slot(start: Timestamp, k: i64, per: u64, timed: bool) -> Slot {
    let wave = (k as f64 / 40.0).sin().abs();
    let hits = per + (per as f64 * 4.0 * wave) as u64;
    Slot {
        start,
        hits,
        pages: hits / 3,
        visitors: hits / 5,
        errors: u64::from(k % 53 == 0) * 7,
        throttled: u64::from(k % 71 == 0) * 3,
        p50_ms: timed.then_some(2.0 + wave),
        p99_ms: timed.then_some(40.0 + 30.0 * wave),
    }
}

/// An election night, 19:00 to 03:00 local (America/Mexico_City), response times included.
pub(super) fn sample() -> Memoria {
    let from = at("2024-06-03T01:00:00Z");
    let minutes: Vec<Slot> = (0..480)
        .map(|k| slot(from + SignedDuration::from_mins(k), k, 600, true))
        .collect();
    let hours = (0..8)
        .map(|h| slot(from + SignedDuration::from_hours(h), h * 60, 36_000, false))
        .collect();
    let corte = |seq: i64, hhmm: &str, lag: f64| {
        let time = at(&format!("2024-06-03T{hhmm}:00Z"));
        let live = time + SignedDuration::from_secs_f64(lag);
        CorteRow {
            seq,
            corte_id: format!("20240602_{}", seq),
            corte_time: time.display_with_offset(jiff::tz::offset(-6)).to_string(),
            kind: "site+data".to_owned(),
            build: if seq == 4 {
                "reversión"
            } else {
                "publicación"
            }
            .to_owned(),
            package: format!("PREP_PRES_{seq}.zip"),
            sha256: "0123456789ab".to_owned(),
            received_at: live - SignedDuration::from_secs(3),
            live_at: live,
            lag_seconds: lag,
            visitors: 20_000 + seq as u64 * 1_000,
            late: lag > 60.0,
        }
    };
    Memoria {
        generated_at: at("2024-06-10T17:00:00Z"),
        version: "0.1.0".to_owned(),
        period: Period {
            from,
            to: from + SignedDuration::from_hours(8),
            timezone: "America/Mexico_City".to_owned(),
        },
        sources: vec![
            Source {
                role: "bitácora".to_owned(),
                name: "access-2024-06-01.log.gz".to_owned(),
                bytes: 4_096,
                lines: 17,
                sha256: "cd".repeat(32),
                damage: Some("el archivo gzip termina antes de su final".to_owned()),
            },
            Source {
                role: "bitácora".to_owned(),
                name: "access.log".to_owned(),
                bytes: 123_456_789,
                lines: 1_234_567,
                sha256: "ab".repeat(32),
                damage: None,
            },
        ],
        methods: vec![Method {
            figure: "visitantes únicos".to_owned(),
            text: "Pares distintos de dirección IP y agente de usuario <b>.".to_owned(),
        }],
        totals: Totals {
            lines: 1_234_567,
            malformed: 12,
            outside: 3,
            hits: 1_234_552,
            bot_hits: 4_321,
            pages: 411_000,
            bytes: 9_876_543_210,
            visitors: 98_765,
            bot_visitors: 42,
            visits: 123_456,
        },
        days: vec![
            Day {
                date: jiff::civil::date(2024, 6, 2),
                hits: 900_000,
                pages: 300_000,
                bytes: 7_000_000_000,
                visitors: 80_000,
                bot_visitors: 900,
                visits: 100_000,
            },
            Day {
                date: jiff::civil::date(2024, 6, 3),
                hits: 334_552,
                pages: 111_000,
                bytes: 2_876_543_210,
                visitors: 30_000,
                bot_visitors: 400,
                visits: 23_456,
            },
        ],
        visits: Visits {
            count: 123_456,
            mean_seconds: 312.4,
            median_seconds: 95.0,
            pages_per_visit: 3.3,
            single_request: 20_000,
            total_seconds: 38_567_000,
            by_duration: counts(&[
                ("0 s", 20_000),
                ("< 1 min", 30_000),
                ("1–5 min", 40_000),
                ("5–15 min", 20_000),
                ("15–30 min", 8_000),
                ("30–60 min", 4_000),
                ("≥ 1 h", 1_456),
            ]),
        },
        peak_minute: minutes.iter().max_by_key(|s| s.hits).map(|s| Peak {
            at: s.start,
            hits: s.hits,
        }),
        peak_second: Some(Peak {
            at: at("2024-06-03T02:00:03Z"),
            hits: 412,
        }),
        minutes,
        hours,
        statuses: counts(&[
            ("2xx", 1_200_000),
            ("3xx", 30_000),
            ("4xx", 4_000),
            ("5xx", 52),
            ("429", 500),
        ]),
        encodings: counts(&[("br", 900_000), ("gzip", 300_000), ("identidad", 34_552)]),
        protocols: counts(&[("HTTP/2.0", 1_000_000), ("HTTP/1.1", 234_552)]),
        top_pages: counts(&[
            ("/", 200_000),
            ("/presidencia/", 100_000),
            (HOSTILE_PAGE, 3),
        ]),
        top_downloads: counts(&[("/datos/PREP_PRES.zip", 5_000)]),
        referrer_kinds: counts(&[
            ("directo", 60_000),
            ("instituto", 30_000),
            ("redes sociales", 20_000),
            ("buscadores", 10_000),
            ("otros sitios", 3_456),
        ]),
        referrers: counts(&[("ine.mx", 30_000), ("t.co", 12_000), (HOSTILE_REFERRER, 1)]),
        browsers: counts(&[("Chrome", 60_000), ("Safari", 30_000), ("Firefox", 8_765)]),
        systems: counts(&[("Android", 50_000), ("iOS", 30_000), ("Windows", 18_765)]),
        devices: counts(&[
            ("móvil", 80_000),
            ("escritorio", 17_000),
            ("tableta", 1_700),
            ("otro", 65),
        ]),
        bots: counts(&[("Googlebot", 3_000), (HOSTILE_BOT, 21)]),
        cortes: vec![
            corte(1, "02:00", 12.5),
            corte(2, "02:15", 18.0),
            corte(3, "02:30", 75.2),
            corte(4, "02:45", 9.0),
        ],
        incidents: vec![
            Incident {
                at: at("2024-06-03T02:31:15Z"),
                until: None,
                kind: "corte-tardío".to_owned(),
                text: "El corte 20240602_3 se publicó 75 s después de su hora.".to_owned(),
                evidence: "evento 42".to_owned(),
            },
            Incident {
                at: at("2024-06-03T03:10:00Z"),
                until: Some(at("2024-06-03T03:12:00Z")),
                kind: "errores-5xx".to_owned(),
                text: "<script>alert('incidente')</script>".to_owned(),
                evidence: "minutos 21:10–21:12".to_owned(),
            },
        ],
        baseline: Some(Baseline {
            source: "access.log.base (7 días)".to_owned(),
            days: Some(7),
            visitors_per_day: 4_000.0,
            pages_per_day: 12_000.0,
            hits_per_day: 50_000.0,
            election_visitors_per_day: 55_000.0,
            election_pages_per_day: 205_500.0,
            election_hits_per_day: 617_276.0,
        }),
        notes: Some(
            "## Sugerencias\n\nAumentar la *caché* del CDN.\n\n<script>alert('notas')</script>\n\n\
             Ver [el instituto](https://ine.mx) y [esto](javascript:alert(1)).\n\n\
             ![logo](https://example.com/logo.png)\n"
                .to_owned(),
        ),
    }
}

/// A period in which nothing was served: no requests, no cortes, no incidents, no baseline.
pub(super) fn empty() -> Memoria {
    let from = at("2024-06-03T01:00:00Z");
    Memoria {
        generated_at: at("2024-06-10T17:00:00Z"),
        version: "0.1.0".to_owned(),
        period: Period {
            from,
            to: from + SignedDuration::from_hours(8),
            timezone: "America/Mexico_City".to_owned(),
        },
        sources: vec![],
        methods: vec![],
        totals: Totals::default(),
        days: vec![],
        visits: Visits::default(),
        minutes: vec![],
        hours: vec![],
        peak_minute: None,
        peak_second: None,
        statuses: vec![],
        encodings: vec![],
        protocols: vec![],
        top_pages: vec![],
        top_downloads: vec![],
        referrer_kinds: vec![],
        referrers: vec![],
        browsers: vec![],
        systems: vec![],
        devices: vec![],
        bots: vec![],
        cortes: vec![],
        incidents: vec![],
        baseline: None,
        notes: None,
    }
}
