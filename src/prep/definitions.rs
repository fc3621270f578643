//! The definitions of the summary line's fields, as data, and the check of a declared summary
//! against them.
//!
//! Institutes do not all define the thirteen fields alike. Where real files showed them to
//! differ, each way is a [`Rule`], named and with the institutes and years whose files follow
//! it; the rules that answer the same question (what a `-` in `CONTABILIZADA` means, which
//! actas count as inconsistencies, …) form a [`Dimension`]. Each institute's own answers are
//! a [`Reglas`], which `--reglas` and the `reglas` setting pin. `docs/formats.md` describes
//! every rule and where it was seen.
//!
//! # How a declared summary is checked
//! Every combination of one rule per dimension, among those in scope (every rule, or the
//! pinned institute's), recomputes all thirteen fields from the one [`Tally`] of the rows. The
//! summary is consistent when one combination gives every declared field. Checking fields
//! together is what keeps a false summary from passing: a file whose `ACTAS_ESPERADAS` follows
//! one reading of `-` and whose `ACTAS_REGISTRADAS` follows another contradicts its own rows
//! under every definition, though each field alone matches one.
//!
//! # Guarantees
//! - A field equal to its recomputed value names the rule(s) that give it; a field is
//!   DIFFERENT only when the combination that gives the most declared fields does not give it,
//!   and then every known definition's value is reported beside it. A field a rule takes
//!   from the declared value itself (a catalogue's size, the unlisted RP actas counted, their
//!   votes) is not counted when combinations are ranked, and between equals a combination an
//!   institute is known to use wins.
//! - Rules that only apply to some files (the RP actas of diputaciones, the juntas' zero) are
//!   tried only on those; a dimension with nothing to act on (no `-` rows, no acta with `0`
//!   and no observation) names no rule.
//! - Nothing here reads the rows: every rule works on the tally, so checking every definition
//!   costs no more per row than checking one.

use serde::Serialize;

use super::cell::Decimal;
use super::observation::Flags;
use super::reader::Election;
use super::summary::{Declared, Field, FieldCheck, Status, Tally, VariantValue};

/// A question institutes answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    /// What `-` in `CONTABILIZADA` means, on a row not observed out of the catalogue.
    Dash,
    /// What an empty `CONTABILIZADA` means on a row with an observation.
    EmptyObserved,
    /// Which actas the file lists.
    Catalogue,
    /// Whether the RP acta of a special casilla listed with one row is an expected acta
    /// (diputaciones only).
    Rp,
    /// Which actas `PORCENTAJE_ACTAS_INCONSISTENCIAS` counts.
    Inconsistencies,
    /// Which votes `PORCENTAJE_PARTICIPACION_CIUDADANA` takes over the lista nominal.
    Participation,
    /// What `TOTAL_VOTOS_C_CS` adds up.
    TotalWithSpecials,
    /// What `TOTAL_VOTOS_S_CS` adds up.
    TotalWithoutSpecials,
    /// How the four percentages are brought to four decimals.
    Percentages,
    /// Which actas `ACTAS_NO_CONTABILIZADAS` counts.
    NotCounted,
}

impl Dimension {
    /// How many dimensions there are.
    const COUNT: usize = 10;

    /// Every dimension, in the order combinations are written.
    pub(crate) const ALL: [Dimension; Dimension::COUNT] = [
        Dimension::Dash,
        Dimension::EmptyObserved,
        Dimension::Catalogue,
        Dimension::Rp,
        Dimension::Inconsistencies,
        Dimension::Participation,
        Dimension::TotalWithSpecials,
        Dimension::TotalWithoutSpecials,
        Dimension::Percentages,
        Dimension::NotCounted,
    ];

    /// Its position in [`Dimension::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// Every rule, by name in code; [`RULES`] holds what each says, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleId {
    /// `-`: out of the catalogue.
    DashOutOfCatalogue,
    /// `-`: a catalogue acta not yet captured.
    DashNotCaptured,
    /// Empty with an observation: not captured.
    EmptyNotCaptured,
    /// Empty with an observation: registered and captured.
    EmptyObservedCaptured,
    /// The whole catalogue is listed.
    CatalogueListed,
    /// Only registered actas are listed.
    RegisteredOnly,
    /// No RP acta expected.
    RpNotExpected,
    /// One RP acta expected per special casilla with one row.
    RpExpected,
    /// Inconsistencies: observed, counted or not.
    InconsistencyObserved,
    /// Inconsistencies: observed, not counted.
    InconsistencyNotCounted,
    /// Inconsistencies: any observation.
    InconsistencyAnyObservation,
    /// Participation over the votes with special casillas.
    ParticipationWithSpecials,
    /// Participation over the votes without special casillas.
    ParticipationWithoutSpecials,
    /// `TOTAL_VOTOS_C_CS`: the listed rows.
    TotalListedRows,
    /// `TOTAL_VOTOS_C_CS`: plus the votes of RP actas not listed.
    TotalWithRpVotes,
    /// `TOTAL_VOTOS_S_CS`: the listed rows without special casillas.
    WithoutSpecialsSum,
    /// `TOTAL_VOTOS_S_CS`: zero, in juntas.
    WithoutSpecialsZeroInJuntas,
    /// Percentages truncated to four decimals.
    PercentTruncated,
    /// Percentages truncated, or one ten-thousandth below.
    PercentOneBelow,
    /// Not counted: every acta captured with `0`.
    NotCountedAll,
    /// Not counted: only actas captured with `0` and an observation.
    NotCountedObserved,
}

/// One way of defining a summary field, as seen in real files.
#[derive(Debug)]
pub(crate) struct Rule {
    /// Which rule.
    pub(crate) id: RuleId,
    /// Its name in reports (`rp-expected`).
    pub(crate) name: &'static str,
    /// The question it answers.
    pub(crate) dimension: Dimension,
    /// Whether it is what FORMATS.md describes, and so what a pinned institute follows
    /// unless its [`Reglas`] says otherwise. Standard rules are not named in reports, except
    /// in a dimension with more than one.
    pub(crate) standard: bool,
    /// What it says.
    pub(crate) says: &'static str,
    /// The institutes and years whose files follow it.
    pub(crate) seen_in: &'static [&'static str],
}

/// Every rule, in [`RuleId`] order; within a dimension, standard rules first.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        id: RuleId::DashOutOfCatalogue,
        name: "dash-out-of-catalogue",
        dimension: Dimension::Dash,
        standard: true,
        says: "`-` in CONTABILIZADA is an acta out of the catalogue: registered, not expected",
        seen_in: &["IEE Sonora 2021 (with the observation FUERA DE CATÁLOGO)"],
    },
    Rule {
        id: RuleId::DashNotCaptured,
        name: "dash-not-captured",
        dimension: Dimension::Dash,
        standard: false,
        says: "`-` in CONTABILIZADA is a catalogue acta not yet captured: expected, not \
               registered, not out of the catalogue",
        seen_in: &["IEE Puebla 2018"],
    },
    Rule {
        id: RuleId::EmptyNotCaptured,
        name: "empty-not-captured",
        dimension: Dimension::EmptyObserved,
        standard: true,
        says: "an empty CONTABILIZADA is an acta not yet captured, whatever its observation",
        seen_in: &["IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::EmptyObservedCaptured,
        name: "empty-observed-captured",
        dimension: Dimension::EmptyObserved,
        standard: false,
        says: "an empty CONTABILIZADA on a row with an observation (\"SIN ACTA…\") is an acta \
               registered and captured, neither counted nor in ACTAS_NO_CONTABILIZADAS",
        seen_in: &["IEEQ Querétaro 2018"],
    },
    Rule {
        id: RuleId::CatalogueListed,
        name: "catalogue-listed",
        dimension: Dimension::Catalogue,
        standard: true,
        says: "the file lists the whole catalogue, captured or not: ACTAS_ESPERADAS is its \
               rows in the catalogue",
        seen_in: &["IEEC Campeche 2021", "IEE Sonora 2021", "IEE Puebla 2018"],
    },
    Rule {
        id: RuleId::RegisteredOnly,
        name: "registered-only",
        dimension: Dimension::Catalogue,
        standard: false,
        says: "the file lists only registered actas: ACTAS_ESPERADAS is the catalogue's size, \
               at least the actas listed, and the percentages are taken over it",
        seen_in: &["real files of 2018 to 2024 (the institute was not recorded)"],
    },
    Rule {
        id: RuleId::RpNotExpected,
        name: "rp-not-expected",
        dimension: Dimension::Rp,
        standard: true,
        says: "diputaciones: a special casilla listed with one row adds no acta",
        seen_in: &[
            "IEEQ Querétaro 2018",
            "IEQROO Quintana Roo 2019",
            "IEE Puebla 2018",
        ],
    },
    Rule {
        id: RuleId::RpExpected,
        name: "rp-expected",
        dimension: Dimension::Rp,
        standard: false,
        says: "diputaciones: a special casilla listed with one row (mayoría relativa) also has \
               an acta of representación proporcional the file does not list: expected, and \
               in ACTAS_CAPTURADAS and ACTAS_CONTABILIZADAS once counted (how many, the rows \
               cannot show: at most one per such casilla)",
        seen_in: &["IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::InconsistencyObserved,
        name: "inconsistency-observed",
        dimension: Dimension::Inconsistencies,
        standard: true,
        says: "catalogue actas whose observation reports an inconsistency (illegible, sin dato, \
               excede lista nominal, todos los campos vacíos), counted or not",
        seen_in: &[
            "INE 2019",
            "INE 2023",
            "IEE Sonora 2021",
            "IEQROO Quintana Roo 2019",
        ],
    },
    Rule {
        id: RuleId::InconsistencyNotCounted,
        name: "inconsistency-not-counted",
        dimension: Dimension::Inconsistencies,
        standard: false,
        says: "actas not counted whose observation reports an inconsistency",
        seen_in: &["IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::InconsistencyAnyObservation,
        name: "inconsistency-any-observation",
        dimension: Dimension::Inconsistencies,
        standard: false,
        says: "catalogue actas with any observation, \"sin acta\" included",
        seen_in: &["IEEQ Querétaro 2018"],
    },
    Rule {
        id: RuleId::ParticipationWithSpecials,
        name: "participation-with-specials",
        dimension: Dimension::Participation,
        standard: true,
        says: "TOTAL_VOTOS_C_CS over the lista nominal of counted actas",
        seen_in: &[
            "IEE Sonora 2021",
            "IEEC Campeche 2021 (last corte)",
            "INE LEEME 2018 to 2023 (last corte)",
        ],
    },
    Rule {
        id: RuleId::ParticipationWithoutSpecials,
        name: "participation-without-specials",
        dimension: Dimension::Participation,
        standard: true,
        says: "TOTAL_VOTOS_S_CS over the lista nominal of counted actas: the votes of special \
               casillas left out",
        seen_in: &[
            "IEEC Campeche 2021 (before its last corte)",
            "IEE Puebla 2018 (every corte)",
            "INE LEEME 2018 to 2023 (before the last corte)",
        ],
    },
    Rule {
        id: RuleId::TotalListedRows,
        name: "total-listed-rows",
        dimension: Dimension::TotalWithSpecials,
        standard: true,
        says: "TOTAL_VOTOS_C_CS is the sum of TOTAL_VOTOS_CALCULADO over counted actas",
        seen_in: &["IEE Sonora 2021", "IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::TotalWithRpVotes,
        name: "total-with-rp-votes",
        dimension: Dimension::TotalWithSpecials,
        standard: false,
        says: "diputaciones, last corte: TOTAL_VOTOS_C_CS also holds the votes of the counted \
               RP actas of special casillas, which the file does not list: at least the sum \
               over counted actas, and the participation is taken over it",
        seen_in: &["IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::WithoutSpecialsSum,
        name: "without-specials-sum",
        dimension: Dimension::TotalWithoutSpecials,
        standard: true,
        says: "TOTAL_VOTOS_S_CS is the sum of TOTAL_VOTOS_CALCULADO over counted actas of \
               casillas other than special",
        seen_in: &["IEE Sonora 2021", "IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::WithoutSpecialsZeroInJuntas,
        name: "without-specials-zero-in-juntas",
        dimension: Dimension::TotalWithoutSpecials,
        standard: false,
        says: "juntas municipales: TOTAL_VOTOS_S_CS is written 0",
        seen_in: &["IEEC Campeche 2021"],
    },
    Rule {
        id: RuleId::PercentTruncated,
        name: "percent-truncated",
        dimension: Dimension::Percentages,
        standard: true,
        says: "each percentage is × 100 over its denominator, truncated to four decimals",
        seen_in: &["every institute"],
    },
    Rule {
        id: RuleId::PercentOneBelow,
        name: "percent-one-below",
        dimension: Dimension::Percentages,
        standard: false,
        says: "a percentage may be written one ten-thousandth below its truncated value (its \
               arithmetic is not exact); no change of one acta moves a percentage so little, \
               and the counts and vote totals beside it are still checked exactly",
        seen_in: &["IEEPCO Oaxaca 2022"],
    },
    Rule {
        id: RuleId::NotCountedAll,
        name: "not-counted-all",
        dimension: Dimension::NotCounted,
        standard: true,
        says: "ACTAS_NO_CONTABILIZADAS is every catalogue acta with CONTABILIZADA 0",
        seen_in: &["FORMATS.md's definition"],
    },
    Rule {
        id: RuleId::NotCountedObserved,
        name: "not-counted-observed",
        dimension: Dimension::NotCounted,
        standard: false,
        says: "ACTAS_NO_CONTABILIZADAS is the catalogue actas with CONTABILIZADA 0 and an \
               observation; one with 0 and none (captured, its votes not yet) is captured, \
               neither counted nor in ACTAS_NO_CONTABILIZADAS",
        seen_in: &["IEE Puebla 2018"],
    },
];

impl RuleId {
    /// What the rule says.
    pub(crate) fn rule(self) -> &'static Rule {
        &RULES[self as usize]
    }
}

/// One institute's definitions: its rule in each dimension where it departs from the
/// standard, or where it follows more than one.
#[derive(Debug)]
pub(crate) struct Reglas {
    /// Its name for `--reglas` (`ieec-2021`).
    pub(crate) name: &'static str,
    /// The institute and year.
    pub(crate) institute: &'static str,
    /// Its rules; a dimension without one here follows the standard rules.
    rules: &'static [RuleId],
}

impl Reglas {
    /// Whether the institute's definitions include `rule`.
    fn allows(&self, rule: &Rule) -> bool {
        let said = self
            .rules
            .iter()
            .any(|r| r.rule().dimension == rule.dimension);
        if said {
            self.rules.contains(&rule.id)
        } else {
            rule.standard
        }
    }
}

/// Every institute whose definitions are known.
pub(crate) const REGLAS: &[Reglas] = &[
    Reglas {
        name: "ine-2019",
        institute: "INE 2019 (extraordinary governorship of Puebla)",
        rules: &[],
    },
    Reglas {
        name: "ine-2023",
        institute: "INE 2023 (extraordinary senate election of Tamaulipas)",
        rules: &[],
    },
    Reglas {
        name: "iee-sonora-2021",
        institute: "IEE Sonora 2021",
        rules: &[RuleId::ParticipationWithSpecials],
    },
    Reglas {
        name: "ieec-2021",
        institute: "IEEC Campeche 2021",
        rules: &[
            RuleId::RpExpected,
            RuleId::InconsistencyNotCounted,
            RuleId::TotalListedRows,
            RuleId::TotalWithRpVotes,
            RuleId::WithoutSpecialsSum,
            RuleId::WithoutSpecialsZeroInJuntas,
        ],
    },
    Reglas {
        name: "iee-puebla-2018",
        institute: "IEE Puebla 2018",
        rules: &[
            RuleId::DashNotCaptured,
            RuleId::ParticipationWithoutSpecials,
            RuleId::NotCountedObserved,
        ],
    },
    Reglas {
        name: "ieeq-2018",
        institute: "IEEQ Querétaro 2018",
        rules: &[
            RuleId::EmptyObservedCaptured,
            RuleId::InconsistencyAnyObservation,
        ],
    },
    Reglas {
        name: "ieqroo-2019",
        institute: "IEQROO Quintana Roo 2019",
        rules: &[],
    },
    Reglas {
        name: "iecm-2024",
        institute: "IECM Ciudad de México 2024",
        rules: &[],
    },
    Reglas {
        name: "ieepco-2022",
        institute: "IEEPCO Oaxaca 2022",
        rules: &[RuleId::PercentOneBelow],
    },
];

/// The known institute named `name`.
pub(crate) fn reglas(name: &str) -> Option<&'static Reglas> {
    REGLAS.iter().find(|r| r.name == name)
}

/// The names `--reglas` accepts, for messages.
pub(crate) fn reglas_names() -> String {
    REGLAS.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

/// The dimensions each field depends on, by [`Field::index`], its own first.
const DEPENDS_ON: [&[Dimension]; 13] = {
    use Dimension::*;
    [
        &[Catalogue, Rp, Dash, EmptyObserved],
        &[Dash, EmptyObserved],
        &[Dash],
        &[EmptyObserved, Dash, Rp],
        &[EmptyObserved, Dash, Catalogue, Rp, Percentages],
        &[Rp],
        &[Catalogue, Dash, EmptyObserved, Rp, Percentages],
        &[
            Inconsistencies,
            Dash,
            EmptyObserved,
            Catalogue,
            Rp,
            Percentages,
        ],
        &[NotCounted],
        &[],
        &[TotalWithSpecials],
        &[TotalWithoutSpecials],
        &[Participation, TotalWithSpecials, Percentages],
    ]
};

/// What the definition of a file's summary turned out to be.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Definitions {
    /// The institute whose definitions were pinned (`--reglas`), if any.
    pub(crate) pinned: Option<&'static str>,
    /// The institutes (by `--reglas` name) whose own definitions give every declared field.
    pub(crate) explained_by: Vec<&'static str>,
    /// The rules of the definition the fields were checked by, other than standard ones.
    pub(crate) rules: Vec<RuleReport>,
}

/// A rule as reports show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RuleReport {
    /// Its name (`rp-expected`).
    pub(crate) name: &'static str,
    /// What it says.
    pub(crate) says: &'static str,
    /// Where it was seen.
    pub(crate) seen_in: &'static [&'static str],
}

/// A recomputed value: exact, or bounded where the rows cannot show all of it.
#[derive(Debug, Clone, Copy)]
enum Value {
    Exact(Decimal),
    AtLeast(Decimal),
    Between(Decimal, Decimal),
}

impl Value {
    fn admits(self, declared: Decimal) -> bool {
        match self {
            Value::Exact(v) => declared == v,
            Value::AtLeast(low) => declared >= low,
            Value::Between(low, high) => declared >= low && declared <= high,
        }
    }

    fn text(self) -> String {
        match self {
            Value::Exact(v) => v.to_string(),
            Value::AtLeast(low) => format!("≥ {low}"),
            Value::Between(low, high) => format!("{low}–{high}"),
        }
    }
}

/// One rule per dimension, by [`Dimension::index`].
type Combination = [RuleId; Dimension::COUNT];

/// What a check works from.
struct Context<'t> {
    tally: &'t Tally,
    election: Election,
    /// Declared values by [`Field::index`] ([`Declared::values`]).
    declared: [Option<Option<Decimal>>; 13],
}

impl Context<'_> {
    /// A declared field that is a whole number.
    fn declared_whole(&self, field: Field) -> Option<u64> {
        self.declared
            .get(field.index())
            .copied()
            .flatten()
            .flatten()?
            .whole_number()
    }

    /// Which declared fields `values` gives.
    fn given(&self, values: &[Value; 13]) -> [bool; 13] {
        let mut given = [false; 13];
        for (g, (v, d)) in given.iter_mut().zip(values.iter().zip(&self.declared)) {
            *g = d.flatten().is_some_and(|d| v.admits(d));
        }
        given
    }
}

/// A combination's values, and the fields whose value it took from the declared one (a
/// catalogue's size, how many unlisted RP actas were counted, their votes): those it gives
/// by construction, which rank no combination above another.
struct Evaluation {
    values: [Value; 13],
    fitted: [bool; 13],
}

/// How well a combination explains a declared summary, best highest: whether it gives every
/// declared field, how many it gives that it did not fit, and whether an institute is known
/// to define its summary so.
type Rank = (bool, usize, bool);

/// Checks a declared summary against every definition in scope: all of them, or `pinned`'s.
pub(crate) fn check(
    declared: &Declared,
    tally: &Tally,
    election: Election,
    pinned: Option<&'static Reglas>,
) -> (Vec<FieldCheck>, Definitions) {
    let ctx = Context {
        tally,
        election,
        declared: declared.values(),
    };
    let (candidates, applicable) = candidates(&ctx, pinned);
    let known = |c: &Combination, r: &Reglas| {
        Dimension::ALL
            .iter()
            .all(|d| !applicable[d.index()] || r.allows(c[d.index()].rule()))
    };
    let declared_count = ctx.declared.iter().filter(|d| d.is_some()).count();
    let evaluated: Vec<(Combination, [Value; 13], Rank)> = combinations(&candidates)
        .into_iter()
        .filter_map(|c| {
            let Evaluation { values, fitted } = evaluate(&ctx, &c)?;
            let given = ctx.given(&values);
            let all = given.iter().filter(|g| **g).count() == declared_count;
            let earned = given
                .iter()
                .zip(&fitted)
                .filter(|(g, f)| **g && !**f)
                .count();
            let rank = (all, earned, REGLAS.iter().any(|r| known(&c, r)));
            Some((c, values, rank))
        })
        .collect();
    let best = evaluated
        .iter()
        .fold(None::<&(_, _, Rank)>, |best, e| match best {
            Some(b) if b.2 >= e.2 => Some(b),
            _ => Some(e),
        });
    let Some((best_combination, best_values, _)) = best else {
        return (Vec::new(), definitions(pinned, Vec::new(), Vec::new()));
    };
    let fields = declared
        .fields
        .iter()
        .map(|(field, text)| {
            let check = FieldOf {
                field: *field,
                declared: text,
                applicable: &applicable,
            };
            check.against(&ctx, best_combination, best_values, &evaluated)
        })
        .collect();
    let explaining: Vec<&Combination> = evaluated
        .iter()
        .filter(|(_, _, (all, _, _))| *all)
        .map(|(c, _, _)| c)
        .collect();
    let explained_by = REGLAS
        .iter()
        .filter(|r| pinned.is_none_or(|p| p.name == r.name))
        .filter(|r| explaining.iter().any(|c| known(c, r)))
        .map(|r| r.name)
        .collect();
    let rules = Dimension::ALL
        .iter()
        .filter(|d| applicable[d.index()])
        .map(|d| best_combination[d.index()].rule())
        .filter(|r| named(r))
        .map(|r| RuleReport {
            name: r.name,
            says: r.says,
            seen_in: r.seen_in,
        })
        .collect();
    (fields, definitions(pinned, explained_by, rules))
}

/// One declared field, to be checked against the combinations evaluated.
struct FieldOf<'a> {
    field: Field,
    declared: &'a str,
    applicable: &'a [bool; Dimension::COUNT],
}

impl FieldOf<'_> {
    /// The field beside the value `best` gives it, and every combination's distinct value.
    fn against(
        &self,
        ctx: &Context<'_>,
        best: &Combination,
        best_values: &[Value; 13],
        evaluated: &[(Combination, [Value; 13], Rank)],
    ) -> FieldCheck {
        let i = self.field.index();
        // `percent-one-below` widens each percentage by one unit below it. A field the best
        // definition gives exactly truncated is shown by the same definition truncated, so
        // that the rule is named only where it was needed.
        let percentages = Dimension::Percentages.index();
        let widened = |c: &Combination| c[percentages] == RuleId::PercentOneBelow;
        let declared = ctx.declared[i].flatten();
        let exact = widened(best)
            .then(|| {
                let mut truncated = *best;
                truncated[percentages] = RuleId::PercentTruncated;
                evaluated.iter().find(|(c, _, _)| *c == truncated)
            })
            .flatten()
            .filter(|(_, values, _)| declared.is_some_and(|d| values[i].admits(d)));
        let (shown, value) = match exact {
            Some((c, values, _)) => (c, values[i]),
            None => (best, best_values[i]),
        };
        let (variant, seen_in) = variant_label(shown, self.field, self.applicable);
        let mut variants: Vec<VariantValue> = Vec::new();
        // The widened values are listed only when the best definition uses that rule: they
        // would otherwise double the list and say nothing more.
        for (c, values, _) in evaluated {
            if widened(c) && !widened(best) {
                continue;
            }
            let text = values[i].text();
            if variants.iter().all(|v| v.value != text) {
                let (variant, seen_in) = variant_label(c, self.field, self.applicable);
                variants.push(VariantValue {
                    variant,
                    value: text,
                    seen_in,
                });
            }
        }
        FieldCheck {
            field: self.field.name(),
            declared: self.declared.to_owned(),
            recomputed: value.text(),
            equal: declared.is_some_and(|d| value.admits(d)),
            variant,
            seen_in,
            variants,
        }
    }
}

fn definitions(
    pinned: Option<&'static Reglas>,
    explained_by: Vec<&'static str>,
    rules: Vec<RuleReport>,
) -> Definitions {
    Definitions {
        pinned: pinned.map(|p| p.name),
        explained_by,
        rules,
    }
}

/// Whether a rule is named in reports: it departs from the standard, or its dimension has
/// more than one standard rule (participation).
fn named(rule: &Rule) -> bool {
    !rule.standard
        || RULES
            .iter()
            .filter(|r| r.dimension == rule.dimension && r.standard)
            .count()
            > 1
}

/// The rules that may apply in each dimension, in order, and whether the dimension has
/// anything to act on in this file. A dimension with nothing to act on keeps its first
/// standard rule, pinned or not: no rule of it changes a value.
fn candidates(
    ctx: &Context<'_>,
    pinned: Option<&'static Reglas>,
) -> ([Vec<RuleId>; Dimension::COUNT], [bool; Dimension::COUNT]) {
    let t = ctx.tally;
    let not_out = |f: Flags| !f.has(Flags::OUT_OF_CATALOGUE);
    let acts = |d: Dimension| match d {
        Dimension::Dash => t.rows(Status::Dash, not_out) > 0,
        Dimension::EmptyObserved => t.rows(Status::Empty, |f| not_out(f) && f.has(Flags::ANY)) > 0,
        Dimension::Rp => ctx.election == Election::Diputaciones && t.single_row_specials > 0,
        Dimension::TotalWithoutSpecials => ctx.election == Election::Juntas,
        Dimension::NotCounted => {
            t.rows(Status::NotCounted, |f| not_out(f) && !f.has(Flags::ANY)) > 0
        }
        Dimension::Catalogue
        | Dimension::Inconsistencies
        | Dimension::Participation
        | Dimension::TotalWithSpecials
        | Dimension::Percentages => true,
    };
    let mut candidates: [Vec<RuleId>; Dimension::COUNT] = Default::default();
    let mut applicable = [false; Dimension::COUNT];
    for d in Dimension::ALL {
        let rules = RULES.iter().filter(|r| r.dimension == d);
        let chosen: Vec<RuleId> = if acts(d) {
            rules
                .filter(|r| pinned.is_none_or(|p| p.allows(r)))
                .map(|r| r.id)
                .collect()
        } else {
            rules.take(1).map(|r| r.id).collect()
        };
        applicable[d.index()] = acts(d);
        candidates[d.index()] = chosen;
    }
    (candidates, applicable)
}

/// Every combination of one candidate per dimension, in order (the first rules first).
fn combinations(candidates: &[Vec<RuleId>; Dimension::COUNT]) -> Vec<Combination> {
    let mut out: Vec<Combination> = vec![[RuleId::DashOutOfCatalogue; Dimension::COUNT]];
    for (d, rules) in candidates.iter().enumerate() {
        out = out
            .iter()
            .flat_map(|c| {
                rules.iter().map(move |r| {
                    let mut next = *c;
                    next[d] = *r;
                    next
                })
            })
            .collect();
    }
    out
}

/// What the rows are under one reading of `-`, of an empty `CONTABILIZADA` and of a `0`
/// without an observation.
struct Reading {
    /// Rows out of the catalogue.
    out: u64,
    /// Rows in the catalogue.
    catalogue: u64,
    /// Counted.
    counted: u64,
    /// Captured, not counted (`0`).
    not_counted: u64,
    /// Captured by [`RuleId::EmptyObservedCaptured`]: neither counted nor not counted.
    captured_otherwise: u64,
    /// Captured with `0` and no observation, by [`RuleId::NotCountedObserved`]: neither
    /// counted nor not counted.
    unobserved_zero: u64,
}

impl Reading {
    fn new(t: &Tally, dash: RuleId, empty: RuleId, zero: RuleId) -> Self {
        let observed_out = |f: Flags| f.has(Flags::OUT_OF_CATALOGUE);
        let not_out = |f: Flags| !observed_out(f);
        let all: u64 = Status::ALL.iter().map(|s| t.rows(*s, |_| true)).sum();
        let dash_out = if dash == RuleId::DashOutOfCatalogue {
            t.rows(Status::Dash, not_out)
        } else {
            0
        };
        let out = Status::ALL
            .iter()
            .map(|s| t.rows(*s, observed_out))
            .sum::<u64>()
            + t.rows(Status::Two, not_out)
            + dash_out;
        let captured_otherwise = if empty == RuleId::EmptyObservedCaptured {
            t.rows(Status::Empty, |f| not_out(f) && f.has(Flags::ANY))
        } else {
            0
        };
        let not_counted = t.rows(Status::NotCounted, not_out);
        let unobserved_zero = if zero == RuleId::NotCountedObserved {
            t.rows(Status::NotCounted, |f| not_out(f) && !f.has(Flags::ANY))
        } else {
            0
        };
        Self {
            out,
            catalogue: all - out,
            counted: t.rows(Status::Counted, not_out),
            not_counted: not_counted - unobserved_zero,
            captured_otherwise,
            unobserved_zero,
        }
    }

    fn captured(&self) -> u64 {
        self.counted + self.not_counted + self.captured_otherwise + self.unobserved_zero
    }

    /// Catalogue actas with an observation reporting `flags`, among the statuses `statuses`.
    fn observed(t: &Tally, statuses: &[Status], flags: Flags) -> u64 {
        statuses
            .iter()
            .map(|s| t.rows(*s, |f| !f.has(Flags::OUT_OF_CATALOGUE) && f.has(flags)))
            .sum()
    }
}

/// Every field by `c`, or `None` when `c` cannot apply to this file.
fn evaluate(ctx: &Context<'_>, c: &Combination) -> Option<Evaluation> {
    let t = ctx.tally;
    let rule = |d: Dimension| c[d.index()];
    let r = Reading::new(
        t,
        rule(Dimension::Dash),
        rule(Dimension::EmptyObserved),
        rule(Dimension::NotCounted),
    );
    let mut catalogue_statuses = vec![Status::Counted, Status::NotCounted, Status::Empty];
    catalogue_statuses.push(Status::Other);
    if rule(Dimension::Dash) == RuleId::DashNotCaptured {
        catalogue_statuses.push(Status::Dash);
    }
    let inconsistencies = match rule(Dimension::Inconsistencies) {
        RuleId::InconsistencyNotCounted => {
            let mut statuses = vec![Status::NotCounted];
            if r.captured_otherwise > 0 {
                statuses.push(Status::Empty);
            }
            Reading::observed(t, &statuses, Flags::ANY | Flags::INCONSISTENCY)
        }
        RuleId::InconsistencyAnyObservation => {
            Reading::observed(t, &catalogue_statuses, Flags::ANY)
        }
        _ => Reading::observed(t, &catalogue_statuses, Flags::INCONSISTENCY),
    };

    let rp_expected = rule(Dimension::Rp) == RuleId::RpExpected;
    let unlisted = if rp_expected {
        t.single_row_specials
    } else {
        0
    };
    let listed = r.catalogue + unlisted;
    // How many unlisted RP actas the summary counts: what it declares beyond the rows.
    let fit = |field: Field, rows: u64| {
        ctx.declared_whole(field)
            .and_then(|d| d.checked_sub(rows))
            .filter(|k| *k <= unlisted)
    };
    let mut fitted = [false; 13];
    let rp_counted = if rp_expected {
        let (k, field) = match fit(Field::ActasContabilizadas, r.counted) {
            Some(k) => (Some(k), Field::ActasContabilizadas),
            None => (
                fit(Field::ActasCapturadas, r.captured()),
                Field::ActasCapturadas,
            ),
        };
        fitted[field.index()] = k.is_some();
        k
    } else {
        Some(0)
    };
    let k = rp_counted.unwrap_or(0);

    let (esperadas, denominator) = if rule(Dimension::Catalogue) == RuleId::RegisteredOnly {
        if r.catalogue > r.captured() {
            return None;
        }
        let declared = ctx
            .declared_whole(Field::ActasEsperadas)
            .filter(|d| *d >= listed);
        fitted[Field::ActasEsperadas.index()] = declared.is_some();
        (
            Value::AtLeast(Decimal::whole(listed)),
            declared.unwrap_or(listed),
        )
    } else {
        (Value::Exact(Decimal::whole(listed)), listed)
    };

    let with_specials = match rule(Dimension::TotalWithSpecials) {
        RuleId::TotalWithRpVotes => {
            if k == 0 {
                return None;
            }
            Value::AtLeast(Decimal::whole(t.votos_c_cs))
        }
        _ => Value::Exact(Decimal::whole(t.votos_c_cs)),
    };
    let participation_votes = match rule(Dimension::TotalWithSpecials) {
        RuleId::TotalWithRpVotes => {
            let declared = ctx
                .declared_whole(Field::TotalVotosCCs)
                .filter(|d| *d >= t.votos_c_cs);
            fitted[Field::TotalVotosCCs.index()] = declared.is_some();
            declared.unwrap_or(t.votos_c_cs)
        }
        _ => t.votos_c_cs,
    };
    let participation = match rule(Dimension::Participation) {
        RuleId::ParticipationWithoutSpecials => t.votos_s_cs,
        _ => participation_votes,
    };
    let without_specials = match rule(Dimension::TotalWithoutSpecials) {
        RuleId::WithoutSpecialsZeroInJuntas => 0,
        _ => t.votos_s_cs,
    };

    let whole = |n: u64| Value::Exact(Decimal::whole(n));
    let percent_of = |n: u64, over: u64| {
        let truncated = Decimal::percent_truncated(n, over);
        match rule(Dimension::Percentages) {
            RuleId::PercentOneBelow => Value::Between(truncated.one_below(), truncated),
            _ => Value::Exact(truncated),
        }
    };
    let percent = |n: u64| percent_of(n, denominator);
    let contabilizadas = match rp_counted {
        Some(k) => whole(r.counted + k),
        None => Value::Between(
            Decimal::whole(r.counted),
            Decimal::whole(r.counted + unlisted),
        ),
    };
    let values = [
        esperadas,
        whole(r.captured() + r.out),
        whole(r.out),
        whole(r.captured() + k),
        percent(r.captured() + k),
        contabilizadas,
        percent(r.counted + k),
        percent(inconsistencies),
        whole(r.not_counted),
        whole(t.lista_nominal),
        with_specials,
        whole(without_specials),
        percent_of(participation, t.lista_nominal),
    ];
    Some(Evaluation { values, fitted })
}

/// The name of the definition `c` gives `field` by (its named rules in the dimensions the
/// field depends on and that act on this file, or `standard`), and where those were seen (for
/// `standard`, where the standard rule of the field's own dimension was).
fn variant_label(
    c: &Combination,
    field: Field,
    applicable: &[bool; Dimension::COUNT],
) -> (String, Vec<&'static str>) {
    let rules: Vec<&Rule> = DEPENDS_ON[field.index()]
        .iter()
        .filter(|d| applicable[d.index()])
        .map(|d| c[d.index()].rule())
        .collect();
    let names: Vec<&str> = rules.iter().filter(|r| named(r)).map(|r| r.name).collect();
    let shown: Vec<&Rule> = if names.is_empty() {
        rules.into_iter().take(1).collect()
    } else {
        rules.into_iter().filter(|r| named(r)).collect()
    };
    let mut seen_in: Vec<&'static str> = shown
        .iter()
        .flat_map(|r| r.seen_in.iter().copied())
        .collect();
    seen_in.sort_unstable();
    seen_in.dedup();
    let name = if names.is_empty() {
        "standard".to_owned()
    } else {
        names.join(" + ")
    };
    (name, seen_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_in_id_order_and_every_dimension_has_a_standard_rule_first() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.name);
            assert!(!r.seen_in.is_empty(), "{}", r.name);
        }
        for d in Dimension::ALL {
            let first = RULES.iter().find(|r| r.dimension == d).unwrap();
            assert!(first.standard, "{d:?}");
        }
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }

    #[test]
    fn an_institute_follows_the_standard_where_it_says_nothing() {
        let ieec = reglas("ieec-2021").unwrap();
        assert!(ieec.allows(RuleId::RpExpected.rule()));
        assert!(!ieec.allows(RuleId::RpNotExpected.rule()));
        assert!(!ieec.allows(RuleId::InconsistencyObserved.rule()));
        assert!(ieec.allows(RuleId::DashOutOfCatalogue.rule()));
        assert!(!ieec.allows(RuleId::DashNotCaptured.rule()));
        assert!(ieec.allows(RuleId::ParticipationWithSpecials.rule()));
        assert!(ieec.allows(RuleId::ParticipationWithoutSpecials.rule()));
        let puebla = reglas("iee-puebla-2018").unwrap();
        assert!(!puebla.allows(RuleId::ParticipationWithSpecials.rule()));
        assert!(reglas("nadie").is_none());
        assert!(reglas_names().contains("ieeq-2018"));
    }

    #[test]
    fn every_list_of_institutes_and_rules_names_them_all() {
        let setting = crate::config::SETTING_DOCS
            .iter()
            .find(|(name, _)| *name == "reglas")
            .unwrap()
            .1;
        let command = <crate::cli::Cli as clap::CommandFactory>::command();
        let flag = command
            .find_subcommand("inspect")
            .unwrap()
            .get_arguments()
            .find(|a| a.get_id() == "reglas")
            .unwrap()
            .get_help()
            .unwrap()
            .to_string();
        let docs = include_str!("../../docs/formats.md");
        for r in REGLAS {
            assert!(
                setting.contains(r.name),
                "the reglas setting lacks {}",
                r.name
            );
            assert!(flag.contains(r.name), "inspect --reglas lacks {}", r.name);
            assert!(
                docs.contains(&format!("| `{}` |", r.name)),
                "docs lack {}",
                r.name
            );
        }
        for rule in RULES {
            assert!(
                docs.contains(&format!("`{}`", rule.name)),
                "docs lack {}",
                rule.name
            );
        }
    }

    /// The real Sonora 2021 governorship, final corte, as a tally.
    fn sonora() -> Tally {
        let mut t = Tally::default();
        let add = |t: &mut Tally, status: &[u8], flags: Flags, n: u64| {
            for _ in 0..n {
                t.add(Status::of(status), flags);
            }
        };
        let inconsistent = Flags::ANY | Flags::INCONSISTENCY;
        add(&mut t, b"-", Flags::ANY | Flags::OUT_OF_CATALOGUE, 24);
        add(&mut t, b"0", inconsistent, 33);
        add(&mut t, b"0", Flags::ANY, 551);
        add(&mut t, b"1", Flags::default(), 2594);
        add(&mut t, b"1", inconsistent, 570);
        t.lista_nominal = 1_847_519;
        t.votos_c_cs = 814_690;
        t.votos_s_cs = 808_474;
        t
    }

    fn declared(values: &str) -> Declared {
        let names: Vec<String> = Field::ALL.iter().map(|f| f.name().to_owned()).collect();
        let values: Vec<String> = values.split(',').map(String::from).collect();
        Declared::new(&names, &values)
    }

    const SONORA: &str =
        "3748,3772,24,3748,'100.0000',3164,84.4183,16.0885,584,1847519,814690,808474,44.0964";

    #[test]
    fn the_sonora_line_is_reproduced_field_by_field() {
        let (checks, defs) = check(&declared(SONORA), &sonora(), Election::Gubernatura, None);
        assert_eq!(checks.len(), 13);
        assert!(checks.iter().all(|c| c.equal), "{checks:#?}");
        assert!(defs.explained_by.contains(&"iee-sonora-2021"), "{defs:?}");
        assert!(!defs.explained_by.contains(&"ieec-2021"), "{defs:?}");
        let incons = &checks[7];
        assert_eq!(incons.variant, "standard");
        let mut seen_in = RuleId::InconsistencyObserved.rule().seen_in.to_vec();
        seen_in.sort_unstable();
        assert_eq!(incons.seen_in, seen_in);
        // Every definition's value of a field is listed once per distinct value.
        let values: Vec<&str> = incons.variants.iter().map(|v| v.value.as_str()).collect();
        assert_eq!(values, ["16.0885", "0.8804", "30.7897"], "{incons:#?}");
    }

    #[test]
    fn a_changed_value_is_named_with_every_definitions_value() {
        let line = SONORA.replacen(",16.0885,", ",16.0886,", 1);
        let (checks, _) = check(&declared(&line), &sonora(), Election::Gubernatura, None);
        let differing: Vec<&FieldCheck> = checks.iter().filter(|c| !c.equal).collect();
        assert_eq!(differing.len(), 1, "{checks:#?}");
        assert_eq!(
            differing[0].describe(),
            "PORCENTAJE_ACTAS_INCONSISTENCIAS declared \"16.0886\", recomputed 16.0885 \
             (standard) or 0.8804 (inconsistency-not-counted) or 30.7897 \
             (inconsistency-any-observation)"
        );
    }

    #[test]
    fn a_pinned_institute_counts_alone() {
        let sonora_reglas = reglas("iee-sonora-2021");
        let (checks, defs) = check(
            &declared(SONORA),
            &sonora(),
            Election::Gubernatura,
            sonora_reglas,
        );
        assert!(checks.iter().all(|c| c.equal));
        assert_eq!(defs.pinned, Some("iee-sonora-2021"));
        assert_eq!(defs.explained_by, ["iee-sonora-2021"]);
        let (checks, defs) = check(
            &declared(SONORA),
            &sonora(),
            Election::Gubernatura,
            reglas("ieec-2021"),
        );
        let differing: Vec<&str> = checks
            .iter()
            .filter(|c| !c.equal)
            .map(|c| c.field)
            .collect();
        assert_eq!(differing, ["PORCENTAJE_ACTAS_INCONSISTENCIAS"]);
        assert_eq!(
            checks[7].variants.len(),
            1,
            "only IEEC's own definition counts"
        );
        assert!(defs.explained_by.is_empty());
    }

    #[test]
    fn empty_fields_before_capture_are_zero() {
        let mut t = Tally::default();
        for _ in 0..1190 {
            t.add(Status::Empty, Flags::default());
        }
        let (checks, _) = check(
            &declared("1190,0,0,0,0,0,0,0,0,0,,0,"),
            &t,
            Election::Gubernatura,
            None,
        );
        assert!(checks.iter().all(|c| c.equal), "{checks:#?}");
    }
}
