//! The human form of an inspection report: plain lines and tables for a terminal.

use std::fmt::Write as _;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::definitions::{Definitions, REGLAS, reglas};
use super::inspect::FileReport;
use super::reader::vote_label;
use super::{CorteReport, Report};

/// How many anomalies are listed per election; the rest are counted.
const SHOWN_ANOMALIES: usize = 20;

/// How many distinct observations are listed per election, most frequent first.
const SHOWN_OBSERVATIONS: usize = 20;

/// The report as text for a person at a terminal.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Input:     {}", report.input);
    match &report.corte {
        Some(CorteReport {
            written,
            local: Some(local),
            utc: Some(utc),
        }) => {
            let _ = writeln!(out, "Corte:     {written} = {local} (UTC {utc})");
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "Corte:     {} (a placeholder: no corte time stated)",
                c.written
            );
        }
        None => match report
            .elections
            .iter()
            .find_map(|e| Some((&e.file, e.unread_corte.as_ref()?)))
        {
            Some((file, c)) => {
                let _ = writeln!(
                    out,
                    "Corte:     not read: line {} of {file} looks like a corte but is written \
                     no known way: {}",
                    c.line, c.written
                );
            }
            None => {
                let _ = writeln!(out, "Corte:     no corte line found");
            }
        },
    }
    let titles: Vec<String> = report.elections.iter().map(FileReport::election).collect();
    let _ = writeln!(out, "Elections: {}", titles.join(", "));
    for e in &report.elections {
        election(&mut out, e);
    }
    if !report.other_files.is_empty() {
        let _ = writeln!(out, "\nNot inspected: {}", report.other_files.join(", "));
    }
    let _ = writeln!(out);
    let differences: Vec<String> = report
        .elections
        .iter()
        .flat_map(|e| {
            e.differences()
                .map(move |c| format!("{}: {}", e.election(), c.describe()))
        })
        .collect();
    let compared = report.elections.iter().any(|e| e.summary_present);
    if report.elections.is_empty() {
        // Nothing read is nothing checked: never called consistent.
        let _ = writeln!(
            out,
            "NOTHING CHECKED: no PREP results CSV was read, so no summary was checked."
        );
    } else if differences.is_empty() && !compared {
        // A layout of 2015–2017 may have no summary line: its rows are read all the same.
        let what = if report
            .elections
            .iter()
            .any(|e| e.unread_summary_fields.is_some())
        {
            "no summary field named a known way"
        } else {
            "no summary line"
        };
        let _ = writeln!(
            out,
            "NOTHING TO COMPARE: {what} in the results read; their rows are counted above."
        );
    } else if differences.is_empty() {
        let of = if report.unreadable.is_empty() {
            ""
        } else {
            " of the files read"
        };
        let _ = writeln!(
            out,
            "CONSISTENT: every declared summary field{of} equals its value recomputed from the \
             rows by a known definition."
        );
    } else {
        let scope = report
            .elections
            .iter()
            .find_map(|e| e.definitions.as_ref()?.pinned)
            .map_or("every known definition".to_owned(), |p| {
                format!("{p}'s definitions")
            });
        let _ = writeln!(
            out,
            "INCONSISTENT: {} summary field(s) contradict the rows under {scope}:",
            differences.len()
        );
        for d in differences {
            let _ = writeln!(out, "  {d}");
        }
    }
    let unread_fields: Vec<String> = report
        .elections
        .iter()
        .filter_map(|e| {
            let u = e.unread_summary_fields.as_ref()?;
            Some(format!("{}: {}", e.election(), u.names_shown()))
        })
        .collect();
    if !unread_fields.is_empty() {
        let _ = writeln!(
            out,
            "SUMMARY FIELDS NOT READ: named no known way, so not checked:"
        );
        for u in unread_fields {
            let _ = writeln!(out, "  {u}");
        }
    }
    if !report.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "NOT READ: {} results CSV(s) cannot be read, so their summaries are not checked:",
            report.unreadable.len()
        );
        for e in &report.unreadable {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn election(out: &mut String, e: &FileReport) {
    let _ = writeln!(out, "\n== {}", e.election());
    let election = serde_json::to_value(e.election)
        .ok()
        .and_then(|k| k.as_str().map(str::to_owned))
        .unwrap_or_default();
    let summary_separator = if e.summary_separator == e.separator {
        String::new()
    } else {
        format!(" (summary '{}')", e.summary_separator)
    };
    let _ = writeln!(
        out,
        "{} actas · {} · separator '{}'{summary_separator} · election: {election}",
        e.rows, e.encoding, e.separator
    );
    if e.unread_rows > 0 {
        let _ = writeln!(
            out,
            "{} rows not read as actas: their cells do not fit the column header (see the \
             anomalies)",
            e.unread_rows
        );
    }
    for (column, latest) in &e.latest {
        let _ = writeln!(out, "latest {column}: {latest}");
    }
    if e.summary_present {
        let mut t = table(&["summary field", "declared", "recomputed", "definition", ""]);
        for c in &e.summary {
            if c.equal {
                t.add_row([c.field, &c.declared, &c.recomputed, &c.variant, "="]);
            } else {
                let every: Vec<String> = c
                    .variants
                    .iter()
                    .map(|v| format!("{} ({})", v.value, v.variant))
                    .collect();
                t.add_row([
                    c.field,
                    &c.declared,
                    &every.join("\n"),
                    "none gives it",
                    "DIFFERENT",
                ]);
            }
        }
        let _ = writeln!(out, "{t}");
        if let Some(d) = &e.definitions {
            let _ = writeln!(out, "{}", definitions_line(d, e.consistent));
        }
        if let Some(u) = &e.unread_summary_fields {
            let _ = writeln!(
                out,
                "{} summary field(s) not read, so not checked, named no known way (line {}): {}",
                u.count,
                u.line,
                u.names_shown()
            );
        }
    } else if let Some(u) = &e.unread_summary_fields {
        let _ = writeln!(
            out,
            "a summary line none of whose {} field(s) is named a known way (line {}): nothing \
             to compare; not read: {}",
            u.count,
            u.line,
            u.names_shown()
        );
    } else {
        let _ = writeln!(out, "no summary line: nothing to compare");
    }
    let mut t = table(&[
        "votes over counted actas",
        "kind",
        "votes",
        "actas without value",
    ]);
    for v in &e.votes {
        let kind = serde_json::to_value(v.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_owned))
            .unwrap_or_default();
        t.add_row([
            vote_label(&v.column, v.position, v.repeated).into_owned(),
            kind,
            v.votes.to_string(),
            v.missing.to_string(),
        ]);
    }
    let _ = writeln!(out, "{t}");
    let inline = |counts: &std::collections::BTreeMap<String, u64>| {
        counts
            .iter()
            .map(|(k, n)| format!("{} {n}", if k.is_empty() { "(empty)" } else { k }))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let _ = writeln!(out, "by TIPO_CASILLA:  {}", inline(&e.by_casilla_type));
    let _ = writeln!(out, "by CONTABILIZADA: {}", inline(&e.by_contabilizada));
    let mut t = table(&["observation", "actas", "inconsistency"]);
    for o in e.by_observation.iter().take(SHOWN_OBSERVATIONS) {
        let name = if o.observation.is_empty() {
            "(none)"
        } else {
            &o.observation
        };
        let flag = if o.inconsistency { "yes" } else { "" };
        t.add_row([name, &o.actas.to_string(), flag]);
    }
    let _ = writeln!(out, "{t}");
    if e.by_observation.len() > SHOWN_OBSERVATIONS {
        let _ = writeln!(
            out,
            "… and {} more observations (--json lists them all)",
            e.by_observation.len() - SHOWN_OBSERVATIONS
        );
    }
    if e.anomaly_count == 0 {
        let _ = writeln!(out, "rows with anomalies: none");
        return;
    }
    let _ = writeln!(out, "rows with anomalies: {}", e.anomaly_count);
    let mut t = table(&["line", "CLAVE_ACTA", "column", "what"]);
    for a in e.anomalies.iter().take(SHOWN_ANOMALIES) {
        t.add_row([
            a.line.to_string(),
            a.clave_acta.clone(),
            a.column.clone().unwrap_or_default(),
            a.what.clone(),
        ]);
    }
    let _ = writeln!(out, "{t}");
    let shown = e.anomalies.len().min(SHOWN_ANOMALIES) as u64;
    if e.anomaly_count > shown {
        let _ = writeln!(
            out,
            "… and {} more (--json lists up to {})",
            e.anomaly_count - shown,
            e.anomalies.len()
        );
    }
}

/// Which definitions a file's summary was checked by, in one line.
fn definitions_line(d: &Definitions, consistent: bool) -> String {
    let rules = if d.rules.is_empty() {
        "standard".to_owned()
    } else {
        d.rules
            .iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let institute = |name: &str| match reglas(name) {
        Some(r) => format!("{name} ({})", r.institute),
        None => name.to_owned(),
    };
    match d.pinned {
        Some(p) if consistent => {
            format!(
                "definitions: {}'s give every declared field; rules: {rules}",
                institute(p)
            )
        }
        Some(p) => format!(
            "definitions: {}'s do not give every declared field; checked by: {rules}",
            institute(p)
        ),
        None if !d.explained_by.is_empty() => {
            let by = if d.explained_by.len() == REGLAS.len() {
                "every known institute".to_owned()
            } else {
                d.explained_by.join(", ")
            };
            format!("definitions: those of {by} give every declared field; rules: {rules}")
        }
        None if consistent => format!(
            "definitions: known rules no single institute is known to combine give every \
             declared field; rules: {rules}"
        ),
        None => format!(
            "definitions: none known gives every declared field; checked by the one that \
             gives the most: {rules}"
        ),
    }
}
