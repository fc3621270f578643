//! From logs and journal to the report's figures: runs the scans and turns their counts into
//! a [`Memoria`], each figure with its method.
//!
//! # Guarantees
//! - Every list is sorted (time, or count then name): hash-map order never reaches the report.
//! - The minute and hour timelines run without a gap from the first to the last slot with a
//!   request, so a silent stretch shows as zeros, not as a missing row.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::Options;
use super::agents::{self, Agents, Device, Origin};
use super::incidents;
use super::model::{
    Baseline, Count, Day, Memoria, Method, Peak, Period, Slot, Source, Totals, Visits,
};
use super::scan::{self, Input, MinuteTally, Rules, Scanned, Status};
use super::visitors::{Timeline, Visitors};
use crate::check::log::Observation;
use crate::journal::{Event, Publication};

/// How many names a top list shows in the report (the CSV has as many as the JSON).
const TOP: usize = 50;

/// Everything the figures are computed from.
pub(crate) struct Request<'a> {
    /// First instant included.
    pub(crate) from: Timestamp,
    /// First instant not included.
    pub(crate) to: Timestamp,
    /// Time zone of days and of the report.
    pub(crate) timezone: TimeZone,
    /// The access logs of the period.
    pub(crate) inputs: &'a [Input],
    /// Every publication of the journal.
    pub(crate) publications: &'a [Publication],
    /// The journal's events of the period.
    pub(crate) events: &'a [Event],
    /// The journal file, when there is one.
    pub(crate) journal: Option<&'a Path>,
    /// The promised time between cortes.
    pub(crate) update_interval: SignedDuration,
    /// The command's options.
    pub(crate) options: &'a Options,
    /// The operator's notes.
    pub(crate) notes: Option<String>,
    /// The observation logs of `difusor check`, each with its file name.
    pub(crate) checks: &'a [(String, Vec<Observation>)],
}

/// Computes the report.
pub(crate) fn compute(req: &Request<'_>) -> Result<Memoria> {
    let agents = Agents::load()?;
    let pages = globs(&req.options.paginas).context("--paginas")?;
    let institute = globs(&req.options.instituto).context("--instituto")?;
    // The logs give times to the second: a corte counts from the second it went live, so
    // the requests of that second after the swap are not given to the corte before.
    let live: Vec<Timestamp> = req
        .publications
        .iter()
        .map(|p| Timestamp::from_second(p.live_at.as_second()).unwrap_or(p.live_at))
        .collect();
    let rules = Rules {
        period: Some((req.from, req.to)),
        timezone: req.timezone.clone(),
        pages: &pages,
        agents: &agents,
        cortes: &live,
        institute: &institute,
        details: true,
    };
    let scanned = read(req.inputs, &rules, "bitácoras del periodo")?;
    let mut sources = sources_of(req.inputs, &scanned, "bitácora");
    if let Some(journal) = req.journal {
        sources.push(file_source(journal, "diario")?);
    }
    let baseline = baseline(req, &agents, &pages, &institute, &scanned, &mut sources)?;
    Ok(assemble(req, scanned, baseline, sources))
}

/// Scans `inputs` with a progress bar.
fn read(inputs: &[Input], rules: &Rules<'_>, what: &'static str) -> Result<Scanned> {
    let total: u64 = inputs.iter().map(|i| i.len).sum();
    let progress = ProgressBar::new(total).with_message(what);
    progress.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} (quedan {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let period = rules
        .period
        .map(|(from, to)| (from.as_second(), to.as_second() - 1));
    let visitors = Visitors::new(rules.cortes.len(), period);
    let scanned = scan::scan(inputs, rules, visitors, &progress).context("cannot read the logs")?;
    progress.finish_and_clear();
    Ok(scanned)
}

/// A glob set; an empty list matches nothing.
fn globs(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).with_context(|| format!("{p:?} is not a valid glob"))?);
    }
    Ok(b.build()?)
}

fn sources_of(inputs: &[Input], scanned: &Scanned, role: &str) -> Vec<Source> {
    inputs
        .iter()
        .zip(&scanned.files)
        .enumerate()
        .map(|(i, (input, read))| Source {
            role: role.to_owned(),
            name: file_name(&input.path),
            bytes: read.bytes,
            lines: scanned.tally.lines_per_file.get(i).copied().unwrap_or(0),
            sha256: read.sha256.clone(),
            damage: read.damage.clone(),
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn file_source(path: &Path, role: &str) -> Result<Source> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (sha, bytes) = crate::hash::Sha256::of_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Source {
        role: role.to_owned(),
        name: file_name(path),
        bytes,
        lines: 0,
        sha256: sha.to_hex(),
        damage: None,
    })
}

/// The portal's usual audience: read from `--base` logs, or given by the flags.
fn baseline(
    req: &Request<'_>,
    agents: &Agents,
    pages: &GlobSet,
    institute: &GlobSet,
    election: &Scanned,
    sources: &mut Vec<Source>,
) -> Result<Option<Baseline>> {
    let days = (req.to.duration_since(req.from).as_secs_f64() / 86_400.0).max(1.0 / 24.0);
    let per_day = |v: u64| v as f64 / days;
    let election_visitors: u64 = election.visitors.day_people.values().sum();
    let mut base = Baseline {
        source: String::new(),
        days: None,
        visitors_per_day: 0.0,
        pages_per_day: 0.0,
        hits_per_day: 0.0,
        election_visitors_per_day: per_day(election_visitors),
        election_pages_per_day: per_day(election.tally.pages),
        election_hits_per_day: per_day(election.tally.hits),
    };
    let o = req.options;
    if !o.base.is_empty() {
        let inputs = super::sources::named_logs(&o.base, req.inputs.len())?;
        let rules = Rules {
            period: None,
            timezone: req.timezone.clone(),
            pages,
            agents,
            cortes: &[],
            institute,
            details: false,
        };
        let scanned = read(&inputs, &rules, "bitácoras del portal habitual")?;
        sources.extend(sources_of(&inputs, &scanned, "bitácora base"));
        let n = scanned.tally.days.len().max(1) as f64;
        base.days = Some(scanned.tally.days.len() as u64);
        base.visitors_per_day = scanned.visitors.day_people.values().sum::<u64>() as f64 / n;
        base.pages_per_day = scanned.tally.pages as f64 / n;
        base.hits_per_day = scanned.tally.hits as f64 / n;
        base.source = format!(
            "bitácoras del portal habitual ({}), {} días con solicitudes, contadas con los \
             mismos métodos",
            o.base
                .iter()
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join(", "),
            scanned.tally.days.len()
        );
        return Ok(Some(base));
    }
    if o.base_visitas.is_none() && o.base_paginas.is_none() && o.base_hits.is_none() {
        return Ok(None);
    }
    base.visitors_per_day = o.base_visitas.unwrap_or(0.0);
    base.pages_per_day = o.base_paginas.unwrap_or(0.0);
    base.hits_per_day = o.base_hits.unwrap_or(0.0);
    base.source = "cifras diarias dadas por el operador (--base-visitas, --base-paginas, \
                   --base-hits); una cifra no dada es 0"
        .to_owned();
    Ok(Some(base))
}

/// Puts the counts together.
fn assemble(
    req: &Request<'_>,
    mut scanned: Scanned,
    baseline: Option<Baseline>,
    sources: Vec<Source>,
) -> Memoria {
    let tz = &req.timezone;
    let per_visitor = scanned.visitors.finish();
    let v = &scanned.visitors;
    let t = &scanned.tally;
    let (minutes, ok) = minute_slots(t, v);
    let hours = hour_slots(t, v);
    let cortes = incidents::cortes(req.publications, req.from, req.to, &v.corte_people);
    let mut found = incidents::from_journal(req.events, &cortes, req.update_interval, tz);
    found.extend(incidents::from_minutes(&minutes, &ok, tz));
    found.extend(incidents::from_checks(req.checks, req.from, req.to, tz));
    found.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));
    let mut browsers = HashMap::<&str, u64>::new();
    let mut systems = HashMap::<&str, u64>::new();
    let mut devices = HashMap::<Device, u64>::new();
    let (per_reading, bots) = per_visitor;
    let mut people = 0;
    for (a, &n) in v.readings.iter().zip(&per_reading) {
        if n == 0 {
            continue;
        }
        people += n;
        *browsers.entry(&a.browser).or_default() += n;
        *systems.entry(&a.system).or_default() += n;
        *devices.entry(a.device).or_default() += n;
    }
    let peak_minute = t
        .minutes
        .iter()
        .map(|(&m, s)| (s.hits, std::cmp::Reverse(m)))
        .max()
        .map(|(hits, m)| Peak {
            at: unix(m.0 * 60),
            hits,
        });
    let peak_second = t
        .seconds
        .iter()
        .map(|(&s, &n)| (n, std::cmp::Reverse(s)))
        .max()
        .map(|(hits, s)| Peak {
            at: unix(s.0),
            hits,
        });
    let mut days: Vec<Day> = t
        .days
        .iter()
        .map(|(&date, d)| Day {
            date,
            hits: d.hits,
            pages: d.pages,
            bytes: d.bytes,
            visitors: v.day_people.get(&date).copied().unwrap_or(0),
            bot_visitors: v.day_bots.get(&date).copied().unwrap_or(0),
            visits: v.day_visits.get(&date).copied().unwrap_or(0),
        })
        .collect();
    days.sort_by_key(|d| d.date);
    Memoria {
        generated_at: Timestamp::now(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        period: Period {
            from: req.from,
            to: req.to,
            timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        },
        sources,
        methods: methods(req, t.timed),
        totals: Totals {
            lines: t.lines,
            malformed: t.malformed,
            outside: t.outside,
            hits: t.hits,
            bot_hits: t.bot_hits,
            pages: t.pages,
            bytes: t.bytes,
            visitors: people,
            bot_visitors: bots,
            visits: v.closed.durations.len() as u64,
        },
        days,
        visits: visits(v),
        minutes,
        hours,
        peak_minute,
        peak_second,
        statuses: Status::ALL
            .iter()
            .map(|&s| Count {
                name: s.name().to_owned(),
                count: t.statuses[s as usize],
            })
            .filter(|c| c.count > 0)
            .collect(),
        encodings: named(&t.encodings, usize::MAX),
        protocols: named(&t.protocols, usize::MAX),
        top_pages: named(&t.page_paths, TOP),
        top_downloads: named(&t.downloads, TOP),
        referrer_kinds: counted(
            Origin::ALL
                .iter()
                .map(|&o| (o.name().to_owned(), v.origins[o as usize]))
                .filter(|o| o.1 > 0),
        ),
        referrers: counted(
            v.host_visits
                .iter()
                .filter(|h| h.1 > 0)
                .map(|(h, n)| (h.to_string(), *n)),
        )
        .into_iter()
        .take(TOP)
        .collect(),
        browsers: counted(browsers.into_iter().map(|(k, n)| (k.to_owned(), n))),
        systems: counted(systems.into_iter().map(|(k, n)| (k.to_owned(), n))),
        devices: counted(devices.into_iter().map(|(k, n)| (k.name().to_owned(), n))),
        bots: named(&t.bots, TOP),
        cortes,
        incidents: found,
        baseline,
        notes: req.notes.clone(),
    }
}

fn unix(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn named(names: &scan::Names, top: usize) -> Vec<Count> {
    names
        .sorted()
        .into_iter()
        .take(top)
        .map(|(name, count)| Count { name, count })
        .collect()
}

/// Counts, most first, then by name.
fn counted(items: impl Iterator<Item = (String, u64)>) -> Vec<Count> {
    let mut v: Vec<Count> = items.map(|(name, count)| Count { name, count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v
}

/// The minutes from the first to the last with a request, and each one's successful
/// responses.
fn minute_slots(t: &scan::Tally, v: &Visitors) -> (Vec<Slot>, Vec<u64>) {
    let (Some(&first), Some(&last)) = (t.minutes.keys().min(), t.minutes.keys().max()) else {
        return (Vec::new(), Vec::new());
    };
    let empty = MinuteTally::empty();
    (first..=last)
        .map(|m| {
            let tally = t.minutes.get(&m).unwrap_or(&empty);
            (
                slot(unix(m * 60), tally, v.minutes.as_ref(), m, t.timed),
                tally.ok,
            )
        })
        .unzip()
}

/// The hours from the first to the last with a request.
fn hour_slots(t: &scan::Tally, v: &Visitors) -> Vec<Slot> {
    let mut hours: HashMap<i64, MinuteTally> = HashMap::new();
    for (&m, tally) in &t.minutes {
        hours
            .entry(m.div_euclid(60))
            .or_insert_with(MinuteTally::empty)
            .add(tally);
    }
    let (Some(&first), Some(&last)) = (hours.keys().min(), hours.keys().max()) else {
        return Vec::new();
    };
    let empty = MinuteTally::empty();
    (first..=last)
        .map(|h| {
            slot(
                unix(h * 3600),
                hours.get(&h).unwrap_or(&empty),
                v.hours.as_ref(),
                h,
                t.timed,
            )
        })
        .collect()
}

fn slot(
    start: Timestamp,
    tally: &MinuteTally,
    people: Option<&Timeline>,
    key: i64,
    timed: bool,
) -> Slot {
    let times = tally.times.as_ref().filter(|h| timed && !h.is_empty());
    Slot {
        start,
        hits: tally.hits,
        pages: tally.pages,
        visitors: people.map_or(0, |p| p.get(key)),
        errors: tally.errors,
        throttled: tally.throttled,
        p50_ms: times.map(|h| h.value_at_quantile(0.5) as f64),
        p99_ms: times.map(|h| h.value_at_quantile(0.99) as f64),
    }
}

fn visits(v: &Visitors) -> Visits {
    let d = &v.closed.durations;
    let count = d.len() as u64;
    let total: u64 = d.iter().map(|&s| u64::from(s)).sum();
    let median = match d.len() {
        0 => 0.0,
        n if n % 2 == 1 => f64::from(d[n / 2]),
        n => (f64::from(d[n / 2 - 1]) + f64::from(d[n / 2])) / 2.0,
    };
    let buckets: [(&str, u32); 7] = [
        ("0 s", 1),
        ("< 1 min", 60),
        ("1–5 min", 300),
        ("5–15 min", 900),
        ("15–30 min", 1800),
        ("30–60 min", 3600),
        ("≥ 1 h", u32::MAX),
    ];
    let mut by_duration: Vec<Count> = buckets
        .iter()
        .map(|(name, _)| Count {
            name: (*name).to_owned(),
            count: 0,
        })
        .collect();
    for &s in d {
        let i = buckets
            .iter()
            .position(|&(_, below)| s < below)
            .unwrap_or(6);
        if let Some(c) = by_duration.get_mut(i) {
            c.count += 1;
        }
    }
    let ratio = |a: u64| {
        if count == 0 {
            0.0
        } else {
            a as f64 / count as f64
        }
    };
    Visits {
        count,
        mean_seconds: ratio(total),
        median_seconds: median,
        pages_per_visit: ratio(v.closed.pages),
        single_request: v.closed.single_request,
        total_seconds: total,
        by_duration,
    }
}

/// Every figure's method, in the report's order.
fn methods(req: &Request<'_>, timed: bool) -> Vec<Method> {
    let m = |figure: &str, text: String| Method {
        figure: figure.to_owned(),
        text,
    };
    let o = req.options;
    vec![
        m(
            "periodo",
            format!(
                "Se cuentan las solicitudes cuya hora (la de su llegada, en la bitácora) está \
                 en el periodo, de su inicio incluido a su fin excluido. Las horas se muestran \
                 en la zona {}.",
                req.timezone.iana_name().unwrap_or("UTC")
            ),
        ),
        m(
            "solicitudes (hits)",
            "Cada línea de la bitácora de acceso es una solicitud, de personas y de robots, \
             con cualquier estado de respuesta. Las líneas que no son una solicitud en formato \
             Common, Combined o extendido se cuentan aparte como mal formadas."
                .to_owned(),
        ),
        m(
            "páginas",
            format!(
                "Una página es una solicitud GET de una persona, con respuesta 2xx o 3xx, de \
                 una ruta (sin la cadena de consulta) que coincide con alguno de estos \
                 patrones: {}. Cada ruta se cuenta como la leyó el servidor: las barras \
                 repetidas y los segmentos «.» se reducen y la codificación por ciento se \
                 decodifica, así que //index.htm%6C es una vista de /index.html (una ruta \
                 con caracteres fuera de ASCII se muestra con ellos codificados).",
                o.paginas.join(", ")
            ),
        ),
        m(
            "visitantes únicos",
            "Un visitante es una misma dirección de cliente con un mismo agente de usuario; \
             se cuenta una vez por día (la definición de GoAccess), una vez por hora y por \
             minuto en la línea de tiempo, una vez por corte y una vez en todo el periodo."
                .to_owned(),
        ),
        m(
            "visitas y tiempo de permanencia",
            "Una visita es una serie de solicitudes de un mismo visitante (persona) sin pausas \
             de 30 minutos o más. Su duración va de su primera a su última solicitud: el \
             tiempo de lectura de la última página no queda registrado y cuenta como cero, \
             así que una visita de una sola solicitud dura 0 s. El tiempo de permanencia \
             total es la suma de las duraciones."
                .to_owned(),
        ),
        m("personas y robots", agents::BOTS_METHOD.to_owned()),
        m("procedencia", agents::REFERRERS_METHOD.to_owned()),
        m(
            "tiempos de respuesta",
            if timed {
                "La mediana (p50) y el percentil 99 (p99) de cada minuto y cada hora se \
                 calculan del tiempo de respuesta que registra la bitácora extendida de \
                 difusor (milisegundos), con dos cifras significativas."
                    .to_owned()
            } else {
                "Las bitácoras del periodo no registran el tiempo de respuesta (formato \
                 Combined): la configuración access_log_format = \"extended\" lo registra."
                    .to_owned()
            },
        ),
        m(
            "picos",
            "El minuto y el segundo pico son los de más solicitudes (de personas y robots); \
             ante un empate, el más temprano."
                .to_owned(),
        ),
        m(
            "cortes",
            "De cada corte publicado en el periodo se dan la hora de corte del paquete, su \
             recepción y su publicación según el diario del servidor; el retraso es \
             publicación − hora de corte (R4.6 pide a lo más 60 s). Los visitantes de un corte \
             son las personas con alguna solicitud mientras ese corte estuvo publicado; como la \
             bitácora da la hora al segundo, las solicitudes del segundo en que se publicó un \
             corte cuentan para ese corte."
                .to_owned(),
        ),
        m("incidentes", incidents::METHOD.to_owned()),
        m(
            "comparación con el portal habitual",
            "Promedio diario del portal habitual frente al promedio diario del periodo \
             electoral (sus totales entre su duración en días; los visitantes como suma de los \
             visitantes únicos de cada día)."
                .to_owned(),
        ),
    ]
}
