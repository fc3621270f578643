//! The summary line of a PREP CSV: its fields under every spelling, the values as declared,
//! and what the rows add up to ([`Tally`]) for the definitions ([`super::definitions`]) to
//! recompute every field from.
//!
//! The tally keeps no definition of its own: it counts rows by what `CONTABILIZADA` says
//! ([`Status`]) and by what `OBSERVACIONES` reports ([`Flags`]), and sums the lista nominal
//! and the votes of counted actas. Every definition reads the same tally, so computing all of
//! them costs nothing per row.
//!
//! Declared values are compared by value ([`Decimal`]): `0`, `0.0000`, `'0.0000'` and an empty
//! field (nothing captured yet) are equal; `'99.5698%` and `4,569,608` are read as written.

use serde::Serialize;

use super::cell::{self, Decimal};
use super::observation::Flags;

/// One field of the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// `ACTAS_ESPERADAS`.
    ActasEsperadas,
    /// `ACTAS_REGISTRADAS`.
    ActasRegistradas,
    /// `ACTAS_FUERA_CATALOGO` (also `…_CATÁLOGO`, `ACTAS_FUERA_DE_CATALOGO`).
    ActasFueraCatalogo,
    /// `ACTAS_CAPTURADAS`.
    ActasCapturadas,
    /// `PORCENTAJE_ACTAS_CAPTURADAS`.
    PorcentajeActasCapturadas,
    /// `ACTAS_CONTABILIZADAS`.
    ActasContabilizadas,
    /// `PORCENTAJE_ACTAS_CONTABILIZADAS`.
    PorcentajeActasContabilizadas,
    /// `PORCENTAJE_ACTAS_INCONSISTENCIAS` (also `…_CON_INCONSISTENCIAS`).
    PorcentajeActasInconsistencias,
    /// `ACTAS_NO_CONTABILIZADAS`.
    ActasNoContabilizadas,
    /// `LISTA_NOMINAL_ACTAS_CONTABILIZADAS`.
    ListaNominalActasContabilizadas,
    /// `TOTAL_VOTOS_C_CS`.
    TotalVotosCCs,
    /// `TOTAL_VOTOS_S_CS`.
    TotalVotosSCs,
    /// `PORCENTAJE_PARTICIPACION_CIUDADANA`.
    PorcentajeParticipacionCiudadana,
}

/// Every field with its spellings, the first being the one reports use.
const SPELLINGS: &[(Field, &[&str])] = &[
    (Field::ActasEsperadas, &["ACTAS_ESPERADAS"]),
    (Field::ActasRegistradas, &["ACTAS_REGISTRADAS"]),
    (
        Field::ActasFueraCatalogo,
        &["ACTAS_FUERA_CATALOGO", "ACTAS_FUERA_DE_CATALOGO"],
    ),
    (Field::ActasCapturadas, &["ACTAS_CAPTURADAS"]),
    (
        Field::PorcentajeActasCapturadas,
        &["PORCENTAJE_ACTAS_CAPTURADAS"],
    ),
    (Field::ActasContabilizadas, &["ACTAS_CONTABILIZADAS"]),
    (
        Field::PorcentajeActasContabilizadas,
        &["PORCENTAJE_ACTAS_CONTABILIZADAS"],
    ),
    (
        Field::PorcentajeActasInconsistencias,
        &[
            "PORCENTAJE_ACTAS_INCONSISTENCIAS",
            "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS",
        ],
    ),
    (Field::ActasNoContabilizadas, &["ACTAS_NO_CONTABILIZADAS"]),
    (
        Field::ListaNominalActasContabilizadas,
        &["LISTA_NOMINAL_ACTAS_CONTABILIZADAS"],
    ),
    (Field::TotalVotosCCs, &["TOTAL_VOTOS_C_CS"]),
    (Field::TotalVotosSCs, &["TOTAL_VOTOS_S_CS"]),
    (
        Field::PorcentajeParticipacionCiudadana,
        &["PORCENTAJE_PARTICIPACION_CIUDADANA"],
    ),
];

impl Field {
    /// The field a header cell names (already upper case and without accents), if any.
    pub(crate) fn from_header(name: &str) -> Option<Self> {
        SPELLINGS
            .iter()
            .find(|(_, names)| names.contains(&name))
            .map(|(f, _)| *f)
    }

    /// The name reports use.
    pub(crate) fn name(self) -> &'static str {
        SPELLINGS
            .iter()
            .find(|(f, _)| *f == self)
            .and_then(|(_, names)| names.first())
            .copied()
            .unwrap_or("?")
    }

    /// Every field, in the order of the summary line.
    #[cfg(test)]
    pub(crate) const ALL: [Field; 13] = [
        Field::ActasEsperadas,
        Field::ActasRegistradas,
        Field::ActasFueraCatalogo,
        Field::ActasCapturadas,
        Field::PorcentajeActasCapturadas,
        Field::ActasContabilizadas,
        Field::PorcentajeActasContabilizadas,
        Field::PorcentajeActasInconsistencias,
        Field::ActasNoContabilizadas,
        Field::ListaNominalActasContabilizadas,
        Field::TotalVotosCCs,
        Field::TotalVotosSCs,
        Field::PorcentajeParticipacionCiudadana,
    ];

    /// Its position in the summary line's order (the order of its variants).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What `CONTABILIZADA` says of a row, before any definition reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `1`.
    Counted,
    /// `0`.
    NotCounted,
    /// `2`.
    Two,
    /// `-`.
    Dash,
    /// Empty.
    Empty,
    /// Anything else (an anomaly of the row).
    Other,
}

impl Status {
    /// How many statuses there are.
    pub(crate) const COUNT: usize = 6;

    /// The status a bare `CONTABILIZADA` cell gives.
    pub(crate) fn of(cell: &[u8]) -> Self {
        match cell {
            b"1" => Status::Counted,
            b"0" => Status::NotCounted,
            b"2" => Status::Two,
            b"-" => Status::Dash,
            b"" => Status::Empty,
            _ => Status::Other,
        }
    }

    /// Every status, in table order.
    pub(crate) const ALL: [Status; Status::COUNT] = [
        Status::Counted,
        Status::NotCounted,
        Status::Two,
        Status::Dash,
        Status::Empty,
        Status::Other,
    ];
}

/// What the rows add up to; fed one row at a time by the inspector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Rows by status and by what their observation reports.
    rows: [[u64; Flags::COUNT]; Status::COUNT],
    /// Sum of `LISTA_NOMINAL` over counted actas.
    pub(crate) lista_nominal: u64,
    /// Sum of `TOTAL_VOTOS_CALCULADO` over counted actas.
    pub(crate) votos_c_cs: u64,
    /// The same without special casillas.
    pub(crate) votos_s_cs: u64,
    /// Special casillas in the catalogue that have one row only (no row for their acta of
    /// representación proporcional).
    pub(crate) single_row_specials: u64,
}

impl Tally {
    /// Counts one row.
    pub(crate) fn add(&mut self, status: Status, flags: Flags) {
        if let Some(n) = self
            .rows
            .get_mut(status as usize)
            .and_then(|r| r.get_mut(flags.index()))
        {
            *n += 1;
        }
    }

    /// Rows with `status` whose observation's flags pass `which`.
    pub(crate) fn rows(&self, status: Status, which: impl Fn(Flags) -> bool) -> u64 {
        self.rows.get(status as usize).map_or(0, |by_flags| {
            by_flags
                .iter()
                .enumerate()
                .filter(|(i, _)| which(Flags::from_index(*i)))
                .map(|(_, n)| n)
                .sum()
        })
    }
}

/// The summary line as declared in the file: each known field with its text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Declared {
    /// Known fields in file order, with the cell as written (wrappings removed).
    pub(crate) fields: Vec<(Field, String)>,
}

impl Declared {
    /// Pairs a summary header with its values line. Header cells must already be normalised
    /// ([`super::reader::header_name`]); unknown names are skipped (the reader reports them:
    /// [`super::reader::UnreadSummaryFields`]), a missing value is empty.
    pub(crate) fn new(names: &[String], values: &[String]) -> Self {
        let fields = names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let field = Field::from_header(name)?;
                Some((field, values.get(i).cloned().unwrap_or_default()))
            })
            .collect();
        Self { fields }
    }

    /// Each field's declared value by [`Field::index`]: `None` when the file does not declare
    /// it, `Some(None)` when what it wrote is not a number.
    pub(crate) fn values(&self) -> [Option<Option<Decimal>>; 13] {
        let mut values = [None; 13];
        for (field, text) in &self.fields {
            if let Some(slot) = values.get_mut(field.index()) {
                *slot = Some(Decimal::parse_summary(cell::bare(text.as_bytes())));
            }
        }
        values
    }
}

/// One known definition's value of a field.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VariantValue {
    /// The definition, by its rules' names (`rp-expected`), or `standard`.
    pub(crate) variant: String,
    /// What it gives (`1200`, `≥ 371665`, `1056–1066`).
    pub(crate) value: String,
    /// Where it was seen (institute and year).
    pub(crate) seen_in: Vec<&'static str>,
}

/// One declared field beside its recomputed value.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FieldCheck {
    /// The field's name.
    pub(crate) field: &'static str,
    /// As written in the file (wrappings removed).
    pub(crate) declared: String,
    /// As recomputed from the rows by the definition that explains the file (the one that
    /// gives the most fields when none gives them all).
    pub(crate) recomputed: String,
    /// Whether the declared value is the recomputed one.
    pub(crate) equal: bool,
    /// That definition, by its rules' names, or `standard`.
    pub(crate) variant: String,
    /// Where it was seen (institute and year).
    pub(crate) seen_in: Vec<&'static str>,
    /// Every known definition's value of the field, one per distinct value.
    pub(crate) variants: Vec<VariantValue>,
}

impl FieldCheck {
    /// The field in words: `TOTAL_VOTOS_C_CS declared "814691", recomputed 814690`, with
    /// every known definition's value when they differ (`… recomputed 1190 (standard) or
    /// 1200 (rp-expected)`).
    pub(crate) fn describe(&self) -> String {
        let recomputed = if self.variants.len() > 1 {
            self.variants
                .iter()
                .map(|v| format!("{} ({})", v.value, v.variant))
                .collect::<Vec<_>>()
                .join(" or ")
        } else {
            self.recomputed.clone()
        };
        format!(
            "{} declared {:?}, recomputed {recomputed}",
            self.field, self.declared
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_its_field() {
        for (field, names) in SPELLINGS {
            for name in *names {
                assert_eq!(Field::from_header(name), Some(*field));
            }
        }
        assert_eq!(Field::from_header("ACTAS"), None);
        assert_eq!(
            Field::PorcentajeActasInconsistencias.name(),
            "PORCENTAJE_ACTAS_INCONSISTENCIAS"
        );
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(field.index(), i);
            assert_eq!(SPELLINGS[i].0, *field);
        }
    }

    #[test]
    fn declared_values_are_read_by_value() {
        let names: Vec<String> = SPELLINGS.iter().map(|(f, _)| f.name().into()).collect();
        let values: Vec<String> = "7,672|7672|0||'100.0000%|x|'99.5698%'|0.369"
            .split('|')
            .map(String::from)
            .collect();
        let declared = Declared::new(&names, &values).values();
        let d = |s: &str| Some(Decimal::parse(s.as_bytes()));
        assert_eq!(declared[0], d("7672"));
        assert_eq!(declared[1], d("7672"));
        assert_eq!(declared[3], d("0"), "empty is zero");
        assert_eq!(declared[4], d("100"));
        assert_eq!(declared[5], Some(None), "not a number");
        assert_eq!(declared[6], d("99.5698"));
        assert_eq!(declared[7], d("0.369"));
        // A 10-field summary line: the fields it lacks are not declared.
        assert_eq!(declared[8], d("0"), "a missing value is empty");
        let short = Declared::new(&names[..10], &values).values();
        assert!(short[10..].iter().all(Option::is_none));
    }

    #[test]
    fn rows_are_told_by_status_and_observation() {
        let mut t = Tally::default();
        t.add(Status::of(b"1"), Flags::default());
        t.add(Status::of(b"1"), Flags::ANY | Flags::INCONSISTENCY);
        t.add(Status::of(b"0"), Flags::ANY | Flags::OUT_OF_CATALOGUE);
        t.add(Status::of(b"-"), Flags::default());
        t.add(Status::of(b"x"), Flags::default());
        assert_eq!(t.rows(Status::Counted, |_| true), 2);
        assert_eq!(t.rows(Status::Counted, |f| f.has(Flags::INCONSISTENCY)), 1);
        assert_eq!(
            t.rows(Status::NotCounted, |f| f.has(Flags::OUT_OF_CATALOGUE)),
            1
        );
        assert_eq!(t.rows(Status::Dash, |_| true), 1);
        assert_eq!(t.rows(Status::Other, |_| true), 1);
        assert_eq!(t.rows(Status::Empty, |_| true), 0);
    }
}
