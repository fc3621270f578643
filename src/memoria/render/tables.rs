//! The data files of `datos/`: one CSV per table of the report, every row of it (the page
//! shows the first ones), for anyone who wants to count again.
//!
//! # Guarantees
//! - UTF-8, a header row of Spanish column names, one record per row in the report's order,
//!   so the same `Memoria` gives the same bytes.
//! - Instants in RFC 3339 with the offset of the period's time zone (`2024-06-02T20:15:00-06:00`);
//!   plain numbers (no thousands separators), a decimal point.
//! - A text from the logs that a spreadsheet would take for a formula (it begins with `=`,
//!   `+`, `-`, `@`, a tab or a carriage return) is written with a `'` before it, and every
//!   field that is not a number is written between quotes, so a spreadsheet that splits
//!   at `;` too (Excel where `;` is the list separator, LibreOffice's usual import) cannot
//!   start a cell inside a text either (`evil.example;=HYPERLINK(…)`): opening a file cannot
//!   run anything.

use jiff::tz::TimeZone;

use super::format;
use crate::memoria::model::{Count, Memoria, Slot};

/// Every data file, by name, with its bytes.
pub(crate) fn tables(m: &Memoria) -> Vec<(&'static str, Vec<u8>)> {
    let tz = format::zone(&m.period.timezone);
    vec![
        ("dias.csv", days(m)),
        ("minutos.csv", slots(&m.minutes, &tz)),
        ("horas.csv", slots(&m.hours, &tz)),
        ("cortes.csv", cortes(m, &tz)),
        ("incidentes.csv", incidents(m, &tz)),
        ("paginas.csv", counts(["página", "vistas"], &m.top_pages)),
        (
            "descargas.csv",
            counts(["archivo", "descargas"], &m.top_downloads),
        ),
        (
            "procedencia.csv",
            counts(["procedencia", "visitas"], &m.referrer_kinds),
        ),
        ("sitios.csv", counts(["sitio", "visitas"], &m.referrers)),
        (
            "navegadores.csv",
            counts(["navegador", "visitantes"], &m.browsers),
        ),
        (
            "sistemas.csv",
            counts(["sistema", "visitantes"], &m.systems),
        ),
        (
            "dispositivos.csv",
            counts(["dispositivo", "visitantes"], &m.devices),
        ),
        ("bots.csv", counts(["cliente", "solicitudes"], &m.bots)),
        (
            "estados.csv",
            counts(["estado", "solicitudes"], &m.statuses),
        ),
        (
            "codificaciones.csv",
            counts(["codificación", "solicitudes"], &m.encodings),
        ),
        (
            "protocolos.csv",
            counts(["protocolo", "solicitudes"], &m.protocols),
        ),
        (
            "visitas.csv",
            counts(["duración", "visitas"], &m.visits.by_duration),
        ),
    ]
}

/// One CSV file: the header, then the rows.
fn csv<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> Vec<u8> {
    let mut out = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(Vec::new());
    // Writing to memory cannot fail, and every record has the header's length (`N`).
    out.write_record(header)
        .expect("a record written to memory");
    for row in rows {
        out.write_record(&row).expect("a record written to memory");
    }
    out.into_inner().expect("a writer to memory flushes")
}

/// A text from the logs, made inert for spreadsheets.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn optional(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_default()
}

fn days(m: &Memoria) -> Vec<u8> {
    csv(
        [
            "fecha",
            "solicitudes",
            "páginas_vistas",
            "bytes",
            "visitantes",
            "visitas",
        ],
        m.days.iter().map(|d| {
            [
                d.date.to_string(),
                d.hits.to_string(),
                d.pages.to_string(),
                d.bytes.to_string(),
                d.visitors.to_string(),
                d.visits.to_string(),
            ]
        }),
    )
}

fn slots(slots: &[Slot], tz: &TimeZone) -> Vec<u8> {
    csv(
        [
            "inicio",
            "solicitudes",
            "páginas_vistas",
            "visitantes",
            "errores_5xx",
            "respuestas_429",
            "p50_ms",
            "p99_ms",
        ],
        slots.iter().map(|s| {
            [
                format::rfc3339(s.start, tz),
                s.hits.to_string(),
                s.pages.to_string(),
                s.visitors.to_string(),
                s.errors.to_string(),
                s.throttled.to_string(),
                optional(s.p50_ms),
                optional(s.p99_ms),
            ]
        }),
    )
}

fn cortes(m: &Memoria, tz: &TimeZone) -> Vec<u8> {
    csv(
        [
            "orden",
            "corte",
            "hora_del_corte",
            "tipo",
            "operación",
            "paquete",
            "sha256",
            "recibido",
            "publicado",
            "retraso_s",
            "visitantes",
            "tardío",
        ],
        m.cortes.iter().map(|c| {
            [
                c.seq.to_string(),
                text(&c.corte_id),
                text(&c.corte_time),
                text(&c.kind),
                text(&c.build),
                text(&c.package),
                c.sha256.clone(),
                format::rfc3339(c.received_at, tz),
                format::rfc3339(c.live_at, tz),
                format!("{:.3}", c.lag_seconds),
                c.visitors.to_string(),
                if c.late { "sí" } else { "no" }.to_owned(),
            ]
        }),
    )
}

fn incidents(m: &Memoria, tz: &TimeZone) -> Vec<u8> {
    let mut rows: Vec<_> = m.incidents.iter().collect();
    rows.sort_by_key(|i| i.at);
    csv(
        ["inicio", "fin", "tipo", "descripción", "evidencia"],
        rows.into_iter().map(|i| {
            [
                format::rfc3339(i.at, tz),
                i.until.map(|t| format::rfc3339(t, tz)).unwrap_or_default(),
                text(&i.kind),
                text(&i.text),
                text(&i.evidence),
            ]
        }),
    )
}

fn counts(header: [&str; 2], items: &[Count]) -> Vec<u8> {
    csv(
        header,
        items.iter().map(|c| [text(&c.name), c.count.to_string()]),
    )
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    fn file(files: &[(&'static str, Vec<u8>)], name: &str) -> String {
        let (_, bytes) = files.iter().find(|(n, _)| *n == name).expect(name);
        String::from_utf8(bytes.clone()).expect("UTF-8")
    }

    #[test]
    fn every_table_has_its_file_with_header_and_rows() {
        let files = tables(&sample::sample());
        let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "dias.csv",
                "minutos.csv",
                "horas.csv",
                "cortes.csv",
                "incidentes.csv",
                "paginas.csv",
                "descargas.csv",
                "procedencia.csv",
                "sitios.csv",
                "navegadores.csv",
                "sistemas.csv",
                "dispositivos.csv",
                "bots.csv",
                "estados.csv",
                "codificaciones.csv",
                "protocolos.csv",
                "visitas.csv",
            ]
        );
        let minutes = file(&files, "minutos.csv");
        let mut lines = minutes.lines();
        assert_eq!(
            lines.next(),
            Some(
                r#""inicio","solicitudes","páginas_vistas","visitantes","errores_5xx","respuestas_429","p50_ms","p99_ms""#
            )
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with(r#""2024-06-02T19:00:00-06:00",600,200,120,7,3,2.000,40.000"#)
        );
        assert_eq!(minutes.lines().count(), 481);
        let cortes = file(&files, "cortes.csv");
        assert!(cortes.starts_with(r#""orden","corte","hora_del_corte","tipo","operación","#));
        assert!(cortes.contains(",75.200,23000,\"sí\"\n"), "{cortes}");
        let pages = file(&files, "paginas.csv");
        assert!(
            pages.contains("\n\"/<script>alert(1)</script>\",3\n"),
            "{pages}"
        );
        let bots = file(&files, "bots.csv");
        assert!(
            bots.contains("\n\"'=cmd|' /C calc'!A0\",21\n"),
            "a formula made inert: {bots}"
        );
        let incidents = file(&files, "incidentes.csv");
        assert!(
            incidents.contains(
                r#""2024-06-02T21:10:00-06:00","2024-06-02T21:12:00-06:00","errores-5xx","#
            )
        );
    }

    #[test]
    fn same_memoria_same_bytes() {
        assert_eq!(tables(&sample::sample()), tables(&sample::sample()));
    }

    #[test]
    fn an_empty_period_gives_headers_only() {
        for (name, bytes) in tables(&sample::empty()) {
            assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1, "{name}");
        }
    }
}
