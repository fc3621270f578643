//! The summary line of a PREP CSV: its fields under every spelling, and their recomputation
//! from the rows by the rules of FORMATS.md.
//!
//! # Rules (each reproduces the real files exactly)
//! - `ACTAS_ESPERADAS`: rows not out of the catalogue (`CONTABILIZADA` neither `2` nor `-`);
//!   in an election of diputaciones, plus one acta of representación proporcional for each
//!   special casilla that has only one row (its RP acta is expected but not listed).
//! - `ACTAS_REGISTRADAS`: rows with a `CONTABILIZADA` of `0`, `1`, `2` or `-`.
//! - `ACTAS_FUERA_CATALOGO`: rows with `2` or `-`.
//! - `ACTAS_CAPTURADAS`: rows with `0` or `1`; `ACTAS_CONTABILIZADAS`: `1`;
//!   `ACTAS_NO_CONTABILIZADAS`: `0`.
//! - `PORCENTAJE_ACTAS_INCONSISTENCIAS`: rows in the catalogue whose `OBSERVACIONES` report an
//!   inconsistency (an illegible or missing figure, votes over the lista nominal), over
//!   `ACTAS_ESPERADAS`. "Sin acta" is a missing acta, not an inconsistency.
//! - `LISTA_NOMINAL_ACTAS_CONTABILIZADAS`, `TOTAL_VOTOS_C_CS`: sums of `LISTA_NOMINAL` and
//!   `TOTAL_VOTOS_CALCULADO` over counted actas; `TOTAL_VOTOS_S_CS` the same without special
//!   casillas (`TIPO_CASILLA` = S).
//! - Percentages are × 100 over their denominator, truncated (not rounded) to four decimals;
//!   zero over a zero denominator.
//!
//! Declared values are compared by value ([`Decimal`]); an empty declared field (nothing
//! captured yet) is zero.

use serde::Serialize;

use super::cell::{self, Decimal};

/// One field of the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// What the rows add up to; fed one row at a time by the inspector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Rows not out of the catalogue.
    pub(crate) esperadas: u64,
    /// Rows with a `CONTABILIZADA` value.
    pub(crate) registradas: u64,
    /// Rows out of the catalogue.
    pub(crate) fuera_catalogo: u64,
    /// Rows counted (`1`).
    pub(crate) contabilizadas: u64,
    /// Rows captured but not counted (`0`).
    pub(crate) no_contabilizadas: u64,
    /// Rows in the catalogue whose observation reports an inconsistency.
    pub(crate) inconsistencias: u64,
    /// Sum of `LISTA_NOMINAL` over counted rows.
    pub(crate) lista_nominal: u64,
    /// Sum of `TOTAL_VOTOS_CALCULADO` over counted rows.
    pub(crate) votos_c_cs: u64,
    /// The same without special casillas.
    pub(crate) votos_s_cs: u64,
}

impl Tally {
    /// The recomputed value of `field`.
    pub(crate) fn value(&self, field: Field) -> Decimal {
        let capturadas = self.contabilizadas + self.no_contabilizadas;
        match field {
            Field::ActasEsperadas => Decimal::whole(self.esperadas),
            Field::ActasRegistradas => Decimal::whole(self.registradas),
            Field::ActasFueraCatalogo => Decimal::whole(self.fuera_catalogo),
            Field::ActasCapturadas => Decimal::whole(capturadas),
            Field::PorcentajeActasCapturadas => {
                Decimal::percent_truncated(capturadas, self.esperadas)
            }
            Field::ActasContabilizadas => Decimal::whole(self.contabilizadas),
            Field::PorcentajeActasContabilizadas => {
                Decimal::percent_truncated(self.contabilizadas, self.esperadas)
            }
            Field::PorcentajeActasInconsistencias => {
                Decimal::percent_truncated(self.inconsistencias, self.esperadas)
            }
            Field::ActasNoContabilizadas => Decimal::whole(self.no_contabilizadas),
            Field::ListaNominalActasContabilizadas => Decimal::whole(self.lista_nominal),
            Field::TotalVotosCCs => Decimal::whole(self.votos_c_cs),
            Field::TotalVotosSCs => Decimal::whole(self.votos_s_cs),
            Field::PorcentajeParticipacionCiudadana => {
                Decimal::percent_truncated(self.votos_c_cs, self.lista_nominal)
            }
        }
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
    /// ([`super::reader::header_name`]); unknown names are skipped, a missing value is empty.
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
}

/// One declared field beside its recomputed value.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FieldCheck {
    /// The field's name.
    pub(crate) field: &'static str,
    /// As written in the file (wrappings removed).
    pub(crate) declared: String,
    /// As recomputed from the rows.
    pub(crate) recomputed: String,
    /// Whether they are the same number.
    pub(crate) equal: bool,
}

impl FieldCheck {
    /// The field in words: `TOTAL_VOTOS_C_CS declared "814691", recomputed 814690`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} declared {:?}, recomputed {}",
            self.field, self.declared, self.recomputed
        )
    }
}

/// Compares every declared field with the tally.
pub(crate) fn check(declared: &Declared, tally: &Tally) -> Vec<FieldCheck> {
    declared
        .fields
        .iter()
        .map(|(field, text)| {
            let recomputed = tally.value(*field);
            let bare = cell::bare(text.as_bytes());
            let value = if bare.is_empty() {
                Some(Decimal::whole(0))
            } else {
                Decimal::parse(bare)
            };
            FieldCheck {
                field: field.name(),
                declared: text.clone(),
                recomputed: recomputed.to_string(),
                equal: value == Some(recomputed),
            }
        })
        .collect()
}

/// Whether an observation (upper case, without accents) reports an inconsistency of the acta.
pub(crate) fn is_inconsistency(observation: &str) -> bool {
    ["ILEGIBLE", "SIN DATO", "EXCEDE"]
        .iter()
        .any(|w| observation.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sonora() -> Tally {
        Tally {
            esperadas: 3748,
            registradas: 3772,
            fuera_catalogo: 24,
            contabilizadas: 3164,
            no_contabilizadas: 584,
            inconsistencias: 603,
            lista_nominal: 1_847_519,
            votos_c_cs: 814_690,
            votos_s_cs: 808_474,
        }
    }

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
    }

    #[test]
    fn the_sonora_line_is_reproduced_field_by_field() {
        let names: Vec<String> = SPELLINGS.iter().map(|(f, _)| f.name().into()).collect();
        let values: Vec<String> =
            "3748,3772,24,3748,'100.0000',3164,84.4183,16.0885,584,1847519,814690,808474,44.0964"
                .split(',')
                .map(String::from)
                .collect();
        let checks = check(&Declared::new(&names, &values), &sonora());
        assert_eq!(checks.len(), 13);
        assert!(checks.iter().all(|c| c.equal), "{checks:#?}");
    }

    #[test]
    fn a_changed_value_is_named() {
        let names = vec!["TOTAL_VOTOS_C_CS".to_owned(), "ACTAS_ESPERADAS".to_owned()];
        let values = vec!["814691".to_owned(), "3748".to_owned()];
        let checks = check(&Declared::new(&names, &values), &sonora());
        assert!(!checks[0].equal && checks[1].equal);
        assert_eq!(checks[0].field, "TOTAL_VOTOS_C_CS");
        assert_eq!(checks[0].recomputed, "814690");
    }

    #[test]
    fn empty_fields_before_capture_are_zero() {
        let names: Vec<String> = SPELLINGS.iter().map(|(f, _)| f.name().into()).collect();
        let values: Vec<String> = "1190,0,0,0,0,0,0,0,0,0,,0,"
            .split(',')
            .map(String::from)
            .collect();
        let tally = Tally {
            esperadas: 1190,
            ..Tally::default()
        };
        assert!(
            check(&Declared::new(&names, &values), &tally)
                .iter()
                .all(|c| c.equal)
        );
    }

    #[test]
    fn inconsistencies_are_told_from_missing_actas() {
        assert!(is_inconsistency("ALGUN CAMPO ILEGIBLE O SIN DATO"));
        assert!(is_inconsistency("TODO ILEGIBLE O SIN DATO"));
        assert!(is_inconsistency("EXCEDE LISTA NOMINAL"));
        assert!(!is_inconsistency("SIN ACTA POR PAQUETE NO ENTREGADO"));
        assert!(!is_inconsistency("FUERA DE CATALOGO"));
        assert!(!is_inconsistency(""));
    }
}
