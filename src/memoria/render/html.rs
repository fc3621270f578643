//! `memoria.html`: the memoria técnica as one self-contained page in Spanish — its style,
//! its charts (inline SVG) and its text in one file, with no script and nothing loaded from
//! outside, and a print stylesheet (A4, each major section on a new page, no chart split) so
//! that printing it gives the written report.
//!
//! # Guarantees
//! - Every text from the logs, the journal or the operator goes through maud, which escapes
//!   it; the operator's notes are Markdown whose raw HTML is shown as text.
//! - Times are shown in the period's time zone; counts with thousands separated by commas.
//! - The line saying when the report was made is a line of its own, the only one that differs
//!   between two runs on the same input.
//! - A section with nothing to show says so in a sentence.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, PreEscaped, Render, html};
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::chart::{self, Bar, Labels, Limit, Series};
use super::format;
use crate::memoria::model::{CorteRow, Count, Memoria, Slot};

/// The page's style, screen and print.
const STYLE: &str = include_str!("memoria.css");
/// A line break in the page's source, so that it reads and compares line by line.
const NL: PreEscaped<&str> = PreEscaped("\n");
/// Rows shown in each ranking; the data files have them all.
const TOP: usize = 20;
/// The publication delay the calls allow (R4.6), in seconds.
const LAG_LIMIT: f64 = 60.0;

/// A section of the report: its anchor, its heading, and whether print starts it on a new page.
struct Part {
    id: &'static str,
    title: &'static str,
    new_page: bool,
}

const fn part(id: &'static str, title: &'static str, new_page: bool) -> Part {
    Part {
        id,
        title,
        new_page,
    }
}

const RESUMEN: Part = part("resumen", "Resumen", true);
const BASE: Part = part("base", "Comparación con el portal habitual", false);
const DIAS: Part = part("dias", "Audiencia por día", false);
const TIEMPO: Part = part("tiempo", "Línea de tiempo", true);
const VISITAS: Part = part("visitas", "Visitas", true);
const CORTES: Part = part("cortes", "Cortes publicados", true);
const INCIDENTES: Part = part("incidentes", "Incidentes", false);
const PAGINAS: Part = part("paginas", "Páginas más consultadas", true);
const DESCARGAS: Part = part("descargas", "Descargas de /datos/", false);
const PROCEDENCIA: Part = part("procedencia", "Procedencia de las visitas", true);
const NAVEGADORES: Part = part("navegadores", "Navegadores", false);
const SISTEMAS: Part = part("sistemas", "Sistemas operativos", false);
const DISPOSITIVOS: Part = part("dispositivos", "Dispositivos", false);
const BOTS: Part = part("bots", "Clientes automatizados", true);
const TECNICA: Part = part("tecnica", "Protocolos, codificaciones y estados", false);
const NOTAS: Part = part("notas", "Notas y sugerencias", true);
const METODOS: Part = part("metodos", "Métodos", true);
const FUENTES: Part = part("fuentes", "Fuentes", false);

/// The sections in the order the report gives them (its table of contents).
const CONTENTS: [&Part; 18] = [
    &RESUMEN,
    &BASE,
    &DIAS,
    &TIEMPO,
    &VISITAS,
    &CORTES,
    &INCIDENTES,
    &PAGINAS,
    &DESCARGAS,
    &PROCEDENCIA,
    &NAVEGADORES,
    &SISTEMAS,
    &DISPOSITIVOS,
    &BOTS,
    &TECNICA,
    &NOTAS,
    &METODOS,
    &FUENTES,
];

/// The memoria técnica as one HTML page.
pub(crate) fn html(m: &Memoria) -> String {
    let tz = format::zone(&m.period.timezone);
    let page = html! {
        (DOCTYPE) (NL)
        html lang="es" {
            (NL)
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content={ "difusor " (m.version) };
                title { "Memoria técnica de la difusión del PREP" }
                style { (PreEscaped(STYLE)) }
            }
            (NL)
            body {
                (NL)
                (cover(m, &tz))
                (section(&RESUMEN, summary(m, &tz)))
                (section(&BASE, baseline(m)))
                (section(&DIAS, days(m)))
                (section(&TIEMPO, timeline(m, &tz)))
                (section(&VISITAS, visits(m)))
                (section(&CORTES, cortes(m, &tz)))
                (section(&INCIDENTES, incidents(m, &tz)))
                (section(&PAGINAS, ranking(&m.top_pages, "Página", "Vistas", "paginas.csv", "No hubo páginas vistas por personas en el periodo.")))
                (section(&DESCARGAS, ranking(&m.top_downloads, "Archivo", "Descargas", "descargas.csv", "No hubo descargas de /datos/ en el periodo.")))
                (section(&PROCEDENCIA, origin(m)))
                (section(&NAVEGADORES, ranking(&m.browsers, "Navegador", "Visitantes", "navegadores.csv", NO_PEOPLE)))
                (section(&SISTEMAS, ranking(&m.systems, "Sistema", "Visitantes", "sistemas.csv", NO_PEOPLE)))
                (section(&DISPOSITIVOS, devices(m)))
                (section(&BOTS, bots(m)))
                (section(&TECNICA, technical(m)))
                (section(&NOTAS, notes(m)))
                (section(&METODOS, methods(m)))
                (section(&FUENTES, sources(m)))
            }
            (NL)
        }
        (NL)
    };
    page.into_string()
}

const NO_PEOPLE: &str = "No hubo visitantes (personas) en el periodo.";

fn section(part: &Part, body: Markup) -> Markup {
    html! {
        section id=(part.id) class=[part.new_page.then_some("hoja")] {
            h2 { (part.title) } (NL)
            (body)
        }
        (NL)
    }
}

fn cover(m: &Memoria, tz: &TimeZone) -> Markup {
    html! {
        header.portada {
            p.entidad { "Programa de Resultados Electorales Preliminares" }
            h1 { "Memoria técnica de la difusión del PREP" }
            p.periodo {
                "Periodo: del " strong { (format::local(m.period.from, tz)) }
                " al " strong { (format::local(m.period.to, tz)) }
            }
            p { "Horas en " (tz.iana_name().unwrap_or("UTC")) " (" (format::offset(m.period.from, tz)) ")." }
            (NL)
            p.generado { "Generado el " (format::local(m.generated_at, tz)) "." }
            (NL)
            p.version { "Elaborado por difusor " (m.version) " a partir de las bitácoras de acceso y del diario de publicación." }
            nav.indice {
                h2 { "Contenido" }
                ol { @for part in CONTENTS { li { a href={ "#" (part.id) } { (part.title) } } } }
            }
        }
        (NL)
    }
}

/// One key figure of the summary: its name, its value, a line under it.
fn figure(name: &str, value: impl Render, note: Option<String>, alert: bool) -> Markup {
    html! {
        div.cifra.alerta[alert] {
            dt { (name) }
            dd { (value) @if let Some(note) = note { small { (note) } } }
        }
    }
}

fn summary(m: &Memoria, tz: &TimeZone) -> Markup {
    let t = &m.totals;
    let late = m.cortes.iter().filter(|c| c.late).count() as u64;
    let peak = |p: &Option<crate::memoria::model::Peak>, seconds: f64| {
        p.as_ref().map_or((String::from("—"), None), |p| {
            (
                format::local(p.at, tz),
                Some(format!(
                    "{} solicitudes ({}/s)",
                    format::count(p.hits),
                    format::decimal(p.hits as f64 / seconds)
                )),
            )
        })
    };
    let (minute, minute_note) = peak(&m.peak_minute, 60.0);
    let (second, second_note) = peak(&m.peak_second, 1.0);
    html! {
        dl.cifras {
            (figure("Solicitudes", format::count(t.hits), Some(format!("{} de clientes automatizados", format::count(t.bot_hits))), false))
            (figure("Páginas vistas", format::count(t.pages), Some("por personas".into()), false))
            (figure("Datos enviados", format::bytes(t.bytes), None, false))
            (figure("Visitantes únicos", format::count(t.visitors), Some(format!("y {} clientes automatizados", format::count(t.bot_visitors))), false))
            (figure("Visitas", format::count(t.visits), None, false))
            (figure("Minuto de mayor demanda", minute, minute_note, false))
            (figure("Segundo de mayor demanda", second, second_note, false))
            (figure("Cortes publicados", format::count(m.cortes.len() as u64), None, false))
            (figure("Cortes con retraso mayor a 60 s", format::count(late), None, late > 0))
            (figure("Incidentes", format::count(m.incidents.len() as u64), None, !m.incidents.is_empty()))
        }
        (NL)
        p.nota-aparte {
            "Se leyeron " (format::count(t.lines)) " líneas de bitácora; "
            (format::count(t.malformed)) " no tenían un formato conocido y "
            (format::count(t.outside)) " quedaron fuera del periodo."
            @let damaged = m.sources.iter().filter(|s| s.damage.is_some()).count();
            @if damaged > 0 {
                " " (format::count(damaged as u64)) " archivo(s) de bitácora estaban incompletos; "
                "se contaron sus líneas hasta el daño (ver " a href="#fuentes" { "Fuentes" } ")."
            }
        }
    }
}

fn baseline(m: &Memoria) -> Markup {
    let Some(b) = &m.baseline else {
        return html! {
            p.vacio {
                "No se dio una base del portal habitual, así que no hay comparación. Para "
                "hacerla, genere la memoria con " code { "--base" } " (bitácoras de días "
                "normales del portal) o con las cifras de un día habitual: "
                code { "--base-visitas" } ", " code { "--base-paginas" } " y " code { "--base-hits" } "."
            }
        };
    };
    let rows = [
        (
            "Visitantes únicos",
            b.visitors_per_day,
            b.election_visitors_per_day,
        ),
        ("Páginas vistas", b.pages_per_day, b.election_pages_per_day),
        (
            "Solicitudes (hits)",
            b.hits_per_day,
            b.election_hits_per_day,
        ),
    ];
    html! {
        table {
            thead { tr { th { "Cifra por día" } th.n { "Portal habitual" } th.n { "Periodo electoral" } th.n { "Razón" } } }
            tbody {
                @for (name, usual, now) in rows {
                    tr { td { (name) } td.n { (format::count(usual.round() as u64)) } td.n { (format::count(now.round() as u64)) } td.n { strong { (format::ratio(now, usual)) } } }
                }
            }
        }
        p.nota-aparte {
            "Fuente de la base: " (b.source)
            @if let Some(days) = b.days { " (promedio de " (format::count(days)) " días)" } "."
        }
    }
}

fn days(m: &Memoria) -> Markup {
    if m.days.is_empty() {
        return html! { p.vacio { "No hubo solicitudes en el periodo." } };
    }
    let bars: Vec<Bar> = m
        .days
        .iter()
        .map(|d| Bar {
            label: d.date.to_string(),
            value: d.visitors as f64,
            alert: false,
        })
        .collect();
    let labels = Labels {
        title: "Visitantes únicos por día",
        x: "Día",
        y: "Visitantes",
    };
    html! {
        table {
            thead { tr { th { "Día" } th.n { "Solicitudes" } th.n { "Páginas vistas" } th.n { "Datos enviados" } th.n { "Visitantes únicos" } th.n { "Visitas" } } }
            tbody {
                @for d in &m.days {
                    tr {
                        td.t { (d.date) } td.n { (format::count(d.hits)) } td.n { (format::count(d.pages)) }
                        td.n { (format::bytes(d.bytes)) } td.n { (format::count(d.visitors)) } td.n { (format::count(d.visits)) }
                    }
                    (NL)
                }
            }
        }
        (chart_or(chart::bars(&labels, &bars, None), labels.title, ""))
    }
}

/// A chart, or the sentence that stands for it.
fn chart_or(svg: Option<String>, title: &str, empty: &str) -> Markup {
    match svg {
        Some(svg) => {
            html! { figure.grafica role="img" aria-label=(title) { (PreEscaped(svg)) } (NL) }
        }
        None if empty.is_empty() => html! {},
        None => html! { p.vacio { (empty) } },
    }
}

fn series<'a>(
    name: &'a str,
    color: chart::Paint,
    slots: &[Slot],
    value: impl Fn(&Slot) -> Option<f64>,
) -> Series<'a> {
    let points = slots
        .iter()
        .filter_map(|s| Some((s.start, value(s)?)))
        .collect();
    Series {
        name,
        color,
        points,
    }
}

fn timeline(m: &Memoria, tz: &TimeZone) -> Markup {
    if m.minutes.is_empty() {
        return html! { p.vacio { "No hubo solicitudes en el periodo: no hay línea de tiempo que mostrar." } };
    }
    let x = format!("Hora ({})", tz.iana_name().unwrap_or("UTC"));
    let requests = Labels {
        title: "Solicitudes por segundo (media de cada minuto)",
        x: &x,
        y: "Solicitudes/s",
    };
    let errors = Labels {
        title: "Respuestas de error por minuto",
        x: &x,
        y: "Respuestas",
    };
    let visitors = Labels {
        title: "Visitantes únicos por hora",
        x: &x,
        y: "Visitantes",
    };
    let times = Labels {
        title: "Tiempo de respuesta por minuto",
        x: &x,
        y: "Milisegundos",
    };
    let any_error = m.minutes.iter().any(|s| s.errors > 0 || s.throttled > 0);
    let timed = m
        .minutes
        .iter()
        .any(|s| s.p50_ms.is_some() || s.p99_ms.is_some());
    let per_second = [series("solicitudes/s", chart::BLUE, &m.minutes, |s| {
        Some(s.hits as f64 / 60.0)
    })];
    let error_series = [
        series("5xx (error del servidor)", chart::RED, &m.minutes, |s| {
            Some(s.errors as f64)
        }),
        series(
            "429 (límite de solicitudes)",
            chart::AMBER,
            &m.minutes,
            |s| Some(s.throttled as f64),
        ),
    ];
    let hourly = [series("visitantes", chart::TEAL, &m.hours, |s| {
        Some(s.visitors as f64)
    })];
    let latency = [
        series("mediana (p50)", chart::TEAL, &m.minutes, |s| s.p50_ms),
        series("percentil 99 (p99)", chart::BLUE, &m.minutes, |s| s.p99_ms),
    ];
    html! {
        (chart_or(chart::timeline(&requests, tz, &per_second), requests.title, ""))
        @if any_error {
            (chart_or(chart::timeline(&errors, tz, &error_series), errors.title, ""))
        } @else {
            p.nota-aparte { "Ningún minuto del periodo tuvo respuestas 5xx ni 429." }
        }
        (chart_or(chart::timeline(&visitors, tz, &hourly), visitors.title, "No hay horas con visitantes que mostrar."))
        @if timed {
            (chart_or(chart::timeline(&times, tz, &latency), times.title, ""))
        } @else {
            p.nota-aparte {
                "Las bitácoras no registraron el tiempo de respuesta (formato Combined). Con "
                code { "access_log_format = \"extended\"" } " difusor lo registra, y esta sección "
                "muestra su mediana y su percentil 99 por minuto."
            }
        }
    }
}

fn visits(m: &Memoria) -> Markup {
    let v = &m.visits;
    if v.count == 0 {
        return html! { p.vacio { "No hubo visitas en el periodo." } };
    }
    let bars = count_bars(&v.by_duration);
    let labels = Labels {
        title: "Visitas por duración",
        x: "Duración de la visita",
        y: "Visitas",
    };
    html! {
        dl.cifras {
            (figure("Visitas", format::count(v.count), Some(format!("{} de una sola solicitud", format::count(v.single_request))), false))
            (figure("Duración media", format::duration(v.mean_seconds), None, false))
            (figure("Duración mediana", format::duration(v.median_seconds), None, false))
            (figure("Páginas por visita", format::decimal(v.pages_per_visit), None, false))
            (figure("Tiempo total en el sitio", format::duration(v.total_seconds as f64), None, false))
        }
        (chart_or(chart::bars(&labels, &bars, None), labels.title, ""))
    }
}

fn count_bars(items: &[Count]) -> Vec<Bar> {
    items
        .iter()
        .map(|c| Bar {
            label: c.name.clone(),
            value: c.count as f64,
            alert: false,
        })
        .collect()
}

/// A corte's time as the report shows it: local, or as the package wrote it if unreadable.
fn corte_time(c: &CorteRow, tz: &TimeZone) -> String {
    c.corte_time
        .parse::<Timestamp>()
        .map_or_else(|_| c.corte_time.clone(), |t| format::local(t, tz))
}

fn cortes(m: &Memoria, tz: &TimeZone) -> Markup {
    if m.cortes.is_empty() {
        return html! { p.vacio { "No se publicó ningún corte en el periodo." } };
    }
    let late = m.cortes.iter().filter(|c| c.late).count() as u64;
    let worst = m
        .cortes
        .iter()
        .map(|c| c.lag_seconds)
        .fold(f64::MIN, f64::max);
    let bars: Vec<Bar> = m
        .cortes
        .iter()
        .map(|c| Bar {
            label: c
                .corte_time
                .parse::<Timestamp>()
                .map_or_else(|_| c.corte_id.clone(), |t| format::hour_minute(t, tz)),
            value: c.lag_seconds.max(0.0),
            alert: c.late,
        })
        .collect();
    let labels = Labels {
        title: "Retraso de publicación por corte",
        x: "Corte (hora del corte)",
        y: "Segundos",
    };
    let limit = Limit {
        value: LAG_LIMIT,
        name: "límite: 60 s",
    };
    html! {
        p {
            "Cortes publicados: " (format::count(m.cortes.len() as u64)) ". Mayor retraso: "
            (format::decimal(worst)) " s. Cortes con más del minuto que permiten los lineamientos: "
            (format::count(late)) ". El retraso es la hora de publicación menos la hora del corte."
        }
        (chart_or(chart::bars(&labels, &bars, Some(limit)), labels.title, ""))
        table.cortes {
            thead { tr {
                th.n { "#" } th { "Corte" } th { "Hora del corte" } th { "Tipo" } th { "Operación" }
                th { "Paquete" } th { "SHA-256" } th { "Recibido" } th { "Publicado" } th.n { "Retraso" } th.n { "Visitantes" }
            } }
            tbody {
                @for c in &m.cortes {
                    tr.tarde[c.late] {
                        td.n { (c.seq) } td.t { (c.corte_id) } td.t { (corte_time(c, tz)) } td { (c.kind) } td { (c.build) }
                        td.texto { (c.package) } td.hash { (c.sha256) } td.t { (format::local(c.received_at, tz)) }
                        td.t { (format::local(c.live_at, tz)) } td.n.retraso { (format::decimal(c.lag_seconds)) " s" }
                        td.n { (format::count(c.visitors)) }
                    }
                    (NL)
                }
            }
        }
    }
}

fn incidents(m: &Memoria, tz: &TimeZone) -> Markup {
    if m.incidents.is_empty() {
        return html! { p.vacio { "No se registraron incidentes en el periodo." } };
    }
    let mut rows: Vec<_> = m.incidents.iter().collect();
    rows.sort_by_key(|i| i.at);
    html! {
        table {
            thead { tr { th { "Hora" } th { "Hasta" } th { "Tipo" } th { "Descripción" } th { "Evidencia" } } }
            tbody {
                @for i in rows {
                    tr {
                        td.t { (format::local(i.at, tz)) }
                        td.t { @if let Some(until) = i.until { (format::local(until, tz)) } @else { "—" } }
                        td { (i.kind) } td.texto { (i.text) } td.texto { (i.evidence) }
                    }
                    (NL)
                }
            }
        }
    }
}

/// The first rows of a ranking, with each row's share of the whole list.
fn ranking(items: &[Count], what: &str, unit: &str, file: &str, empty: &str) -> Markup {
    if items.is_empty() {
        return html! { p.vacio { (empty) } };
    }
    let total: u64 = items.iter().map(|c| c.count).sum();
    let share = |n: u64| match n as f64 * 100.0 / total.max(1) as f64 {
        tiny if n > 0 && tiny < 0.05 => "< 0.1".to_owned(),
        percent => format::decimal(percent),
    };
    html! {
        table {
            thead { tr { th.n { "#" } th { (what) } th.n { (unit) } th.n { "%" } } }
            tbody {
                @for (k, c) in items.iter().take(TOP).enumerate() {
                    tr { td.n { (k + 1) } td.texto { (c.name) } td.n { (format::count(c.count)) } td.n { (share(c.count)) } }
                    (NL)
                }
            }
        }
        @if items.len() > TOP {
            p.mas { "Se muestran " (TOP) " de " (format::count(items.len() as u64)) "; la lista completa está en " code { "datos/" (file) } "." }
        }
    }
}

fn origin(m: &Memoria) -> Markup {
    let labels = Labels {
        title: "Visitas por procedencia",
        x: "Procedencia",
        y: "Visitas",
    };
    html! {
        p { "Procedencia de cada visita de personas, según la página de origen de su primera solicitud." }
        (chart_or(chart::bars(&labels, &count_bars(&m.referrer_kinds), None), labels.title, ""))
        div.tablas {
            div { h3 { "Por tipo" } (ranking(&m.referrer_kinds, "Procedencia", "Visitas", "procedencia.csv", "No hubo visitas en el periodo.")) }
            div { h3 { "Por sitio" } (ranking(&m.referrers, "Sitio", "Visitas", "sitios.csv", "Ninguna visita llegó desde otro sitio.")) }
        }
    }
}

fn devices(m: &Memoria) -> Markup {
    let labels = Labels {
        title: "Visitantes por tipo de dispositivo",
        x: "Dispositivo",
        y: "Visitantes",
    };
    html! {
        (chart_or(chart::bars(&labels, &count_bars(&m.devices), None), labels.title, ""))
        (ranking(&m.devices, "Dispositivo", "Visitantes", "dispositivos.csv", NO_PEOPLE))
    }
}

fn bots(m: &Memoria) -> Markup {
    let t = &m.totals;
    html! {
        p {
            (format::count(t.bot_hits)) " solicitudes de " (format::count(t.bot_visitors))
            " clientes automatizados (buscadores, monitores, programas), contadas aparte de las personas."
        }
        (ranking(&m.bots, "Cliente", "Solicitudes", "bots.csv", "No se identificaron clientes automatizados."))
    }
}

fn technical(m: &Memoria) -> Markup {
    html! {
        div.tablas {
            div { h3 { "Protocolos" } (ranking(&m.protocols, "Protocolo", "Solicitudes", "protocolos.csv", "Sin solicitudes.")) }
            div { h3 { "Codificaciones" } (ranking(&m.encodings, "Codificación", "Solicitudes", "codificaciones.csv",
                "Las bitácoras no registran la codificación enviada (formato Combined).")) }
            div { h3 { "Estados de respuesta" } (ranking(&m.statuses, "Estado", "Solicitudes", "estados.csv", "Sin solicitudes.")) }
        }
    }
}

fn notes(m: &Memoria) -> Markup {
    match &m.notes {
        Some(text) if !text.trim().is_empty() => {
            html! { div.notas { (PreEscaped(markdown(text))) } }
        }
        _ => html! {
            p.vacio { "No se agregaron notas. El operador puede escribirlas en Markdown y darlas con " code { "--notas" } "." }
        },
    }
}

/// The operator's Markdown as HTML: raw HTML is shown as text (HTML blocks as preformatted
/// text), links keep only `http`, `https` and `mailto` targets, images show their
/// description (the page loads nothing from outside).
fn markdown(text: &str) -> String {
    let mut kept_links = Vec::new();
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH)
        .filter_map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
            Event::Start(Tag::HtmlBlock) => {
                Some(Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)))
            }
            Event::End(TagEnd::HtmlBlock) => Some(Event::End(TagEnd::CodeBlock)),
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            Event::Start(Tag::Link { ref dest_url, .. }) => {
                let safe = ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|scheme| dest_url.to_ascii_lowercase().starts_with(scheme));
                kept_links.push(safe);
                safe.then_some(event)
            }
            Event::End(TagEnd::Link) => kept_links.pop().unwrap_or(false).then_some(event),
            other => Some(other),
        });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn methods(m: &Memoria) -> Markup {
    if m.methods.is_empty() {
        return html! { p.vacio { "No se registraron métodos." } };
    }
    html! {
        dl.metodos {
            @for method in &m.methods { dt { (method.figure) } dd { (method.text) } (NL) }
        }
    }
}

fn sources(m: &Memoria) -> Markup {
    if m.sources.is_empty() {
        return html! { p.vacio { "No se leyó ningún archivo." } };
    }
    html! {
        p { "Archivos leídos, en el orden de lectura, con su huella SHA-256 para que cualquiera pueda comprobar que son los mismos." }
        table {
            thead { tr { th { "Papel" } th { "Archivo" } th.n { "Tamaño" } th.n { "Líneas" } th { "SHA-256" } } }
            tbody {
                @for s in &m.sources {
                    tr { td { (s.role) } td.texto { (s.name) } td.n { (format::bytes(s.bytes)) } td.n { (format::count(s.lines)) } td.hash { (s.sha256) } }
                    (NL)
                }
            }
        }
        @for s in m.sources.iter().filter(|s| s.damage.is_some()) {
            p.aviso { "Archivo incompleto: " span.texto { (s.name) } ": " (s.damage.as_deref().unwrap_or_default()) ". Su huella es la del archivo tal como está." }
            (NL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample::{self, HOSTILE_BOT, HOSTILE_PAGE, HOSTILE_REFERRER};
    use super::*;

    #[test]
    fn hostile_strings_are_shown_as_text() {
        let page = html(&sample::sample());
        assert!(
            !page.to_lowercase().contains("<script"),
            "no script element"
        );
        assert!(
            !page.contains("<img"),
            "no image element from a referrer or the notes"
        );
        assert!(
            !page.contains("javascript:"),
            "no script link from the notes"
        );
        assert!(
            page.contains("/&lt;script&gt;alert(1)&lt;/script&gt;"),
            "the page path shown"
        );
        assert!(
            page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
            "the referrer shown"
        );
        assert!(
            page.contains("&lt;script&gt;alert('notas')&lt;/script&gt;"),
            "the notes' HTML shown"
        );
        assert!(page.contains("&lt;script&gt;alert('incidente')&lt;/script&gt;"));
        assert!(page.contains("=cmd|' /C calc'!A0"), "{HOSTILE_BOT}");
        for s in [HOSTILE_PAGE, HOSTILE_REFERRER] {
            assert!(!page.contains(s), "{s} unescaped");
        }
        assert!(
            page.contains(r#"<a href="https://ine.mx">el instituto</a>"#),
            "a safe link kept"
        );
        assert!(page.contains("<h2>Sugerencias</h2>"), "Markdown rendered");
        assert!(!page.contains(" src=\""), "nothing loaded from outside");
    }

    #[test]
    fn every_section_and_chart_is_there() {
        let page = html(&sample::sample());
        for heading in [
            "Memoria técnica de la difusión del PREP",
            "Resumen",
            "Comparación con el portal habitual",
            "Audiencia por día",
            "Línea de tiempo",
            "Visitas",
            "Cortes publicados",
            "Incidentes",
            "Páginas más consultadas",
            "Descargas de /datos/",
            "Procedencia de las visitas",
            "Navegadores",
            "Sistemas operativos",
            "Dispositivos",
            "Clientes automatizados",
            "Protocolos, codificaciones y estados",
            "Notas y sugerencias",
            "Métodos",
            "Fuentes",
        ] {
            assert!(page.contains(&format!("{heading}</h")), "heading {heading}");
        }
        // Days, requests/s, errors, hourly visitors, response times, visit lengths, lag per
        // corte, referrer kinds, devices.
        assert_eq!(page.matches("<svg").count(), 9);
        assert!(page.contains("Retraso de publicación por corte"));
        assert!(page.contains("límite: 60 s"));
        assert!(
            page.contains(r#"<tr class="tarde">"#),
            "the late corte highlighted"
        );
        assert!(
            page.contains("2024-06-02 20:00:00"),
            "times in the period's zone"
        );
        assert!(page.contains("1,234,552"), "thousands separated");
        assert!(page.contains("13.8 ×"), "the ratio to the usual audience");
        assert!(page.contains("@media print") && page.contains("size: A4"));
        let incident_times: Vec<_> = ["2024-06-02 20:31:15", "2024-06-02 21:10:00"]
            .iter()
            .map(|t| page.find(t).unwrap())
            .collect();
        assert!(incident_times.is_sorted(), "incidents in time order");
    }

    #[test]
    fn only_the_generated_line_differs_between_runs() {
        let mut m = sample::sample();
        let first = html(&m);
        assert_eq!(first, html(&m), "same input, same bytes");
        m.generated_at += jiff::SignedDuration::from_hours(30);
        let second = html(&m);
        let differing: Vec<_> = first
            .lines()
            .zip(second.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(differing.len(), 1, "{differing:?}");
        assert!(
            differing[0].0.starts_with("<p class=\"generado\">"),
            "{differing:?}"
        );
    }

    #[test]
    fn an_empty_period_says_so() {
        let page = html(&sample::empty());
        assert_eq!(page.matches("<svg").count(), 0);
        for sentence in [
            "no hay línea de tiempo que mostrar",
            "No se publicó ningún corte en el periodo.",
            "No se registraron incidentes en el periodo.",
            "No hubo visitas en el periodo.",
            "No se dio una base del portal habitual",
            "--base-visitas",
            "No se agregaron notas.",
        ] {
            assert!(page.contains(sentence), "{sentence}");
        }
    }

    #[test]
    fn without_response_times_the_page_says_how_to_get_them() {
        let mut m = sample::sample();
        for s in &mut m.minutes {
            (s.p50_ms, s.p99_ms) = (None, None);
        }
        let page = html(&m);
        assert!(page.contains("formato Combined"));
        assert!(page.contains("access_log_format = &quot;extended&quot;"));
        assert_eq!(page.matches("<svg").count(), 8);
    }

    #[test]
    fn two_days_of_minutes_render() {
        let mut m = sample::sample();
        let start = m.minutes[0].start;
        m.minutes = (0..2880)
            .map(|k| Slot {
                start: start + jiff::SignedDuration::from_mins(k),
                ..m.minutes[k as usize % 480].clone()
            })
            .collect();
        let page = html(&m);
        assert_eq!(page.matches("<svg").count(), 9);
    }
}
