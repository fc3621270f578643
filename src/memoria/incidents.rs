//! The cortes of the period and the incidents that affected publication (R4.6, R6.3), from
//! the journal and from the access logs' minutes.
//!
//! # Guarantees
//! - Every incident names its evidence: journal event ids (`diario #12`), or the minutes of
//!   the logs it was read from.
//! - Incidents come out in time order; the same input gives the same list.
//! - Thresholds are constants here and written into the report's methods
//!   ([`METHOD`]), so the institute knows what was called an incident.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::model::{CorteRow, Incident, Slot};
use crate::check::log::Observation;
use crate::journal::{Build, Event, Publication};

/// R4.6: at most a minute from corte time to publication.
pub(crate) const MAX_LAG_SECONDS: f64 = 60.0;
/// A minute with more 5xx than this (and over 1 % of its requests) is part of a burst.
const BURST_MIN: u64 = 5;
/// SFTP refusals closer than this are one incident.
const REFUSALS_APART: SignedDuration = SignedDuration::from_mins(5);

/// How incidents are found, for the report.
pub(crate) const METHOD: &str = "Se consideran incidentes, en orden de tiempo: cada paquete \
    rechazado (con su motivo), retenido o apartado para un operador; cada corte publicado más de \
    60 s después de su hora de corte (R4.6); cada intervalo entre cortes consecutivos mayor que el \
    intervalo de actualización configurado más un minuto (corte faltante); el aviso del \
    instituto activado y retirado; cada arranque del servidor, como reinicio si el anterior se \
    detuvo limpiamente y como caída si no; fallas de los canales de recepción (carpeta, SFTP, \
    descarga); advertencias del servidor; cada racha de minutos con más de 5 respuestas 5xx que \
    además son más del 1 % de sus solicitudes, o con más de 5 respuestas 429; y cada racha de \
    minutos sin ninguna respuesta exitosa (2xx o 3xx) entre el primer y el último minuto con \
    solicitudes. La evidencia cita los números de evento del diario del servidor o los minutos \
    de la bitácora. Con bitácoras de observación de difusor check (--check-log), también cada \
    racha de periodos consecutivos en que la verificación externa de un sitio falló, citando las \
    líneas de esa bitácora.";

/// Most characters of a check's findings quoted in an incident.
const CHECK_DETAIL_CHARS: usize = 300;

/// The cortes that went live in `[from, to)`, with how many people saw each one.
/// `people[i]` is the people counted while the `i`-th publication (from 1) was live.
pub(crate) fn cortes(
    publications: &[Publication],
    from: Timestamp,
    to: Timestamp,
    people: &[u64],
) -> Vec<CorteRow> {
    publications
        .iter()
        .enumerate()
        .filter(|(_, p)| p.live_at >= from && p.live_at < to)
        .map(|(i, p)| {
            let lag = p.lag_ms as f64 / 1000.0;
            CorteRow {
                seq: p.seq,
                corte_id: p.corte_id.clone(),
                corte_time: p.corte_time.clone(),
                kind: p.kind.as_str().to_owned(),
                build: if p.build == Build::Rollback {
                    "reversión"
                } else {
                    "publicación"
                }
                .to_owned(),
                package: p.name.clone(),
                sha256: p.package.to_hex().chars().take(12).collect(),
                received_at: p.received_at,
                live_at: p.live_at,
                lag_seconds: lag,
                visitors: people.get(i + 1).copied().unwrap_or(0),
                late: p.build != Build::Rollback && lag > MAX_LAG_SECONDS,
            }
        })
        .collect()
}

/// Incidents from the journal's events and the period's cortes.
pub(crate) fn from_journal(
    events: &[Event],
    cortes: &[CorteRow],
    interval: SignedDuration,
    tz: &TimeZone,
) -> Vec<Incident> {
    let mut out = Vec::new();
    let mut running = false;
    let mut notice: Option<(Timestamp, String, i64)> = None;
    let mut refusals: Option<(Timestamp, Timestamp, u64, i64, i64)> = None;
    let flush_refusals = |r: &mut Option<(Timestamp, Timestamp, u64, i64, i64)>,
                          out: &mut Vec<Incident>| {
        if let Some((at, until, n, first, last)) = r.take() {
            out.push(Incident {
                at,
                until: Some(until),
                kind: "canal".into(),
                text: format!("{n} conexiones SFTP rechazadas antes de autenticarse"),
                evidence: diario_range(first, last),
            });
        }
    };
    for e in events {
        let reason = || detail_text(&e.detail);
        let package = e.name.clone().unwrap_or_default();
        let mut push = |kind: &str, text: String| {
            out.push(Incident {
                at: e.at,
                until: None,
                kind: kind.into(),
                text,
                evidence: format!("diario #{}", e.id),
            });
        };
        match e.kind.as_str() {
            "rejected" => push(
                "paquete-rechazado",
                format!("Paquete rechazado: {package}. Motivo: {}", reason()),
            ),
            "held" => push(
                "paquete-retenido",
                format!("Paquete retenido para un operador: {package}. {}", reason()),
            ),
            "set-aside" => push(
                "paquete-apartado",
                format!(
                    "Paquete apartado tras interrumpirse su proceso: {package}. {}",
                    reason()
                ),
            ),
            "start" => {
                if running {
                    push(
                        "caída",
                        "El servidor arrancó sin haberse detenido limpiamente antes (caída o \
                         corte de energía)"
                            .into(),
                    );
                } else {
                    push("reinicio", "El servidor arrancó".into());
                }
                running = true;
            }
            "stop" => running = false,
            "publisher-died" => push(
                "caída",
                format!("El publicador se detuvo inesperadamente: {}", reason()),
            ),
            "intake-error" | "pull-error" => {
                push(
                    "canal",
                    format!("Falla de un canal de recepción: {}", reason()),
                );
            }
            "pull-recovered" => push("canal", "La descarga de paquetes volvió a funcionar".into()),
            "purge-recovered" => push(
                "advertencia",
                "La caché frente al sitio volvió a aceptar purgas".into(),
            ),
            "warning" => push("advertencia", reason()),
            "notice-on" => {
                notice = Some((e.at, reason(), e.id));
            }
            "notice-off" => {
                let (at, text, id) = notice.take().unwrap_or((
                    e.at,
                    String::from("(activado antes del periodo)"),
                    e.id,
                ));
                out.push(Incident {
                    at,
                    until: Some(e.at),
                    kind: "aviso".into(),
                    text: format!("Aviso del instituto en lugar de resultados: {text}"),
                    evidence: diario_range(id, e.id),
                });
            }
            "sftp-refused" => {
                // An entry stands for itself and those left out of the journal before it.
                let count = e.detail["not_journaled"]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_add(1);
                match &mut refusals {
                    Some((_, until, n, _, last))
                        if e.at.duration_since(*until) < REFUSALS_APART =>
                    {
                        *until = e.at;
                        *n = n.saturating_add(count);
                        *last = e.id;
                    }
                    _ => {
                        flush_refusals(&mut refusals, &mut out);
                        refusals = Some((e.at, e.at, count, e.id, e.id));
                    }
                }
            }
            _ => {}
        }
    }
    flush_refusals(&mut refusals, &mut out);
    if let Some((at, text, id)) = notice {
        out.push(Incident {
            at,
            until: None,
            kind: "aviso".into(),
            text: format!(
                "Aviso del instituto en lugar de resultados (vigente al final del periodo): {text}"
            ),
            evidence: format!("diario #{id}"),
        });
    }
    for c in cortes.iter().filter(|c| c.late) {
        out.push(Incident {
            at: c.live_at,
            until: None,
            kind: "corte-tardío".into(),
            text: format!(
                "Corte {} publicado {:.1} s después de su hora de corte (límite: 60 s)",
                c.corte_id, c.lag_seconds
            ),
            evidence: format!("publicación #{}", c.seq),
        });
    }
    missing_cortes(cortes, interval, tz, &mut out);
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));
    out
}

/// A gap between consecutive corte times longer than the interval and a minute.
fn missing_cortes(
    cortes: &[CorteRow],
    interval: SignedDuration,
    tz: &TimeZone,
    out: &mut Vec<Incident>,
) {
    let mut times: Vec<(Timestamp, &CorteRow)> = cortes
        .iter()
        .filter(|c| c.build != "reversión")
        .filter_map(|c| {
            c.corte_time
                .parse::<jiff::ZonedDateTime>()
                .map(|z| z.timestamp())
                .or_else(|_| c.corte_time.parse::<Timestamp>())
                .ok()
                .map(|t| (t, c))
        })
        .collect();
    times.sort_by_key(|t| t.0);
    times.dedup_by_key(|t| t.0);
    let limit = interval + SignedDuration::from_mins(1);
    for pair in times.windows(2) {
        let [(a, first), (b, second)] = pair else {
            continue;
        };
        let gap = b.duration_since(*a);
        if gap > limit {
            out.push(Incident {
                at: *a,
                until: Some(*b),
                kind: "corte-faltante".into(),
                text: format!(
                    "Ningún corte entre {} ({}) y {} ({}): {} min sin corte, con cortes esperados cada {} min",
                    local(*a, tz),
                    first.corte_id,
                    local(*b, tz),
                    second.corte_id,
                    gap.as_secs() / 60,
                    interval.as_secs() / 60
                ),
                evidence: format!("publicaciones #{} y #{}", first.seq, second.seq),
            });
        }
    }
}

/// Incidents read from the minutes of the logs: bursts of 5xx and 429, and stretches with
/// no successful response. `ok[i]` is the successful responses of `minutes[i]`.
pub(crate) fn from_minutes(minutes: &[Slot], ok: &[u64], tz: &TimeZone) -> Vec<Incident> {
    let mut out = Vec::new();
    let sum = |slots: &[Slot], of: fn(&Slot) -> u64| slots.iter().map(of).sum::<u64>();
    let mut runs_of =
        |kind: &str, hit: &dyn Fn(&Slot, u64) -> bool, text: &dyn Fn(&[Slot]) -> String| {
            runs(minutes, ok, hit, |slots| {
                let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
                    return;
                };
                out.push(Incident {
                    at: first.start,
                    until: Some(end_of(last)),
                    kind: kind.into(),
                    text: text(slots),
                    evidence: format!(
                        "bitácora de acceso, minutos {} a {}",
                        local(first.start, tz),
                        local(last.start, tz)
                    ),
                });
            });
        };
    runs_of(
        "errores-5xx",
        &|s, _| s.errors > BURST_MIN && s.errors * 100 > s.hits,
        &|slots| {
            format!(
                "{} respuestas de error del servidor (5xx) en {} min",
                sum(slots, |s| s.errors),
                slots.len()
            )
        },
    );
    runs_of("límite-429", &|s, _| s.throttled > BURST_MIN, &|slots| {
        format!(
            "{} solicitudes rechazadas por exceder el límite por cliente (429) en {} min",
            sum(slots, |s| s.throttled),
            slots.len()
        )
    });
    runs_of("sin-servicio", &|_, ok| ok == 0, &|slots| {
        format!(
            "{} min sin ninguna respuesta exitosa (2xx o 3xx); solicitudes en esos minutos: {}",
            slots.len(),
            sum(slots, |s| s.hits)
        )
    });
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));
    out
}

/// Incidents from the observation logs of `difusor check --watch` (each with its file name):
/// every run of consecutive failed periods of a target within `[from, to)`.
pub(crate) fn from_checks(
    logs: &[(String, Vec<Observation>)],
    from: Timestamp,
    to: Timestamp,
    tz: &TimeZone,
) -> Vec<Incident> {
    let mut out = Vec::new();
    for (file, observations) in logs {
        let mut by_target: Vec<(&str, Vec<&Observation>)> = Vec::new();
        for o in observations
            .iter()
            .filter(|o| o.time >= from && o.time < to)
        {
            match by_target.iter_mut().find(|(t, _)| *t == o.target) {
                Some((_, rows)) => rows.push(o),
                None => by_target.push((&o.target, vec![o])),
            }
        }
        for (_, rows) in &mut by_target {
            rows.sort_by_key(|o| (o.time, o.line));
            for run in rows.chunk_by(|a, b| a.failed() == b.failed()) {
                let (Some(first), Some(last)) = (run.first(), run.last()) else {
                    continue;
                };
                if !first.failed() {
                    continue;
                }
                let n = run.len();
                let suspended = if run.iter().any(|o| o.event == "suspender") {
                    "; alcanzó el umbral de suspensión"
                } else {
                    ""
                };
                let detail: String = first.detail.chars().take(CHECK_DETAIL_CHARS).collect();
                let more = if first.detail.chars().count() > CHECK_DETAIL_CHARS {
                    "…"
                } else {
                    ""
                };
                out.push(Incident {
                    at: first.time,
                    until: Some(last.time),
                    kind: "verificación-externa".into(),
                    text: format!(
                        "la verificación externa (difusor check) de {} ({}) falló en {n} {} \
                         consecutivo{}{suspended}: {detail}{more}",
                        first.target,
                        first.url,
                        if n == 1 { "periodo" } else { "periodos" },
                        if n == 1 { "" } else { "s" },
                    ),
                    evidence: format!(
                        "{file}, líneas {} a {} ({} a {})",
                        first.line,
                        last.line,
                        local(first.time, tz),
                        local(last.time, tz)
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));
    out
}

/// Hands every run of consecutive minutes for which `hit` holds to `found`.
fn runs(
    minutes: &[Slot],
    ok: &[u64],
    hit: &dyn Fn(&Slot, u64) -> bool,
    mut found: impl FnMut(&[Slot]),
) {
    let mut start = None;
    for i in 0..=minutes.len() {
        let on = minutes
            .get(i)
            .zip(ok.get(i))
            .is_some_and(|(s, &ok)| hit(s, ok));
        match (on, start) {
            (true, None) => start = Some(i),
            (false, Some(first)) => {
                if let Some(slots) = minutes.get(first..i) {
                    found(slots);
                }
                start = None;
            }
            _ => {}
        }
    }
}

fn end_of(slot: &Slot) -> Timestamp {
    slot.start
        .checked_add(SignedDuration::from_mins(1))
        .unwrap_or(slot.start)
}

fn diario_range(first: i64, last: i64) -> String {
    if first == last {
        format!("diario #{first}")
    } else {
        format!("diario #{first} a #{last}")
    }
}

/// A time in the report's zone, to the second.
pub(crate) fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The reason or error an event's detail gives, else the detail itself.
fn detail_text(detail: &serde_json::Value) -> String {
    for key in ["reason", "error", "warning", "text"] {
        if let Some(text) = detail.get(key).and_then(|v| v.as_str()) {
            return text.to_owned();
        }
    }
    detail.to_string()
}
