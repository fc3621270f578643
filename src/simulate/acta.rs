//! One acta at one corte: its figures, its fate and its timestamps, and the summary the
//! rows add up to.
//!
//! # Guarantees
//! - An acta's figures are drawn from its own seeded generator, so they never change between
//!   cortes; only whether it is captured does.
//! - An acta appears captured at a corte once verified at or before the corte, so
//!   `FECHA_HORA_ACOPIO` ≤ `FECHA_HORA_CAPTURA` ≤ `FECHA_HORA_VERIFICACION` ≤ the corte.
//! - [`Summary`] applies the rules of FORMATS.md to exactly the rows written, so the summary
//!   line always equals what the rows give.

use super::election::{Casilla, Catalogue, Fate, gauss};

/// The figures of one captured acta.
#[derive(Debug, Clone)]
pub(crate) struct Acta {
    /// What became of it.
    pub(crate) fate: Fate,
    /// Votes per party, then per coalition, then not registered, then null.
    pub(crate) votes: Vec<u32>,
    /// Minutes after 20:00 when it reached the acopio.
    pub(crate) acopio: u32,
    /// Minutes after 20:00 of its capture.
    pub(crate) captura: u32,
    /// Seconds between capture and verification.
    pub(crate) verification_secs: u32,
    /// Representatives of parties who voted in the casilla.
    pub(crate) representantes: u32,
    /// Ballots left over.
    pub(crate) sobrantes: u32,
    /// `MECANISMOS_TRASLADO`.
    pub(crate) traslado: &'static str,
    /// `ORIGEN`.
    pub(crate) origen: &'static str,
    /// `DIGITALIZACION`.
    pub(crate) digitalizacion: &'static str,
    /// 64 hex digits: the hash of the (fictitious) scanned image.
    pub(crate) sha: String,
    /// The vote cell written as illegible in a counted acta ([`Fate::CountedIllegibleField`]).
    pub(crate) illegible: Option<usize>,
}

impl Acta {
    /// The sum of its legible vote cells (what `TOTAL_VOTOS_CALCULADO` says).
    pub(crate) fn total(&self) -> u64 {
        self.votes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.illegible)
            .map(|(_, &v)| u64::from(v))
            .sum()
    }
}

/// Draws the acta of `casilla` (index `index`) for election number `election`.
pub(crate) fn draw(
    catalogue: &Catalogue,
    index: usize,
    casilla: &Casilla,
    election: usize,
) -> Acta {
    let mut rng = catalogue.acta_rng(index, election);
    let fate = match rng.f64() {
        r if r < 0.80 => Fate::Counted,
        r if r < 0.90 => Fate::CountedIllegibleField,
        r if r < 0.91 => Fate::ExceedsList,
        r if r < 0.925 => Fate::AllIllegible,
        _ => Fate::Missing,
    };
    let capacity = match casilla.tipo {
        b'S' => rng.u32(300..750),
        _ => casilla.lista,
    };
    let participation = if casilla.tipo == b'S' {
        1.0
    } else {
        (0.56 + 0.09 * gauss(&mut rng)).clamp(0.2, 0.92)
    };
    let voters = if fate == Fate::ExceedsList {
        casilla.lista + rng.u32(40..400)
    } else {
        (f64::from(capacity) * participation).round() as u32
    };
    let nulos = (f64::from(voters) * rng.f64() * 0.05).round() as u32;
    let no_registrados = u32::from(rng.f64() < 0.15);
    let valid = voters.saturating_sub(nulos + no_registrados);
    let ballot = &catalogue.ballot;
    let weights: Vec<f64> = ballot
        .parties
        .iter()
        .enumerate()
        .map(|(p, (_, share))| {
            share * catalogue.regional(casilla.distrito, p) * (0.2 * gauss(&mut rng)).exp()
        })
        .collect();
    let coalition_weights: Vec<f64> = ballot
        .coalitions
        .iter()
        .map(|(_, members)| {
            let base: f64 = members.iter().filter_map(|&m| weights.get(m)).sum();
            base * if members.len() >= 3 { 0.012 } else { 0.006 }
        })
        .collect();
    let sum: f64 = weights.iter().chain(&coalition_weights).sum();
    let mut votes: Vec<u32> = weights
        .iter()
        .chain(&coalition_weights)
        .map(|w| (f64::from(valid) * w / sum).round() as u32)
        .collect();
    votes.push(no_registrados);
    votes.push(nulos);
    let acopio = casilla.arrival + rng.u32(0..20);
    let captura = acopio + rng.u32(1..45);
    let mut sha = String::with_capacity(64);
    for _ in 0..4 {
        sha.push_str(&format!("{:016x}", rng.u64(..)));
    }
    let catd = rng.f64() < 0.55;
    let illegible = (fate == Fate::CountedIllegibleField).then(|| rng.usize(..votes.len()));
    Acta {
        illegible,
        fate,
        votes,
        acopio,
        captura,
        verification_secs: rng.u32(2..240),
        representantes: rng.u32(0..12),
        sobrantes: capacity.saturating_sub(voters),
        traslado: if catd {
            "D"
        } else {
            ["F", "I", "F-D"][rng.usize(..3)]
        },
        origen: if catd { "CATD" } else { "CASILLA" },
        digitalizacion: if catd { "ESCANER" } else { "MOVIL" },
        sha,
    }
}

/// What the rows of one file add up to, by the rules of FORMATS.md.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Actas in the catalogue (plus unlisted RP actas of special casillas in diputaciones).
    pub(crate) esperadas: u64,
    /// Actas out of the catalogue.
    pub(crate) fuera_catalogo: u64,
    /// Counted actas.
    pub(crate) contabilizadas: u64,
    /// Captured, not counted.
    pub(crate) no_contabilizadas: u64,
    /// Captured actas in the catalogue reporting an inconsistency.
    pub(crate) inconsistencias: u64,
    /// Lista nominal of counted actas.
    pub(crate) lista_nominal: u64,
    /// Votes of counted actas.
    pub(crate) votos_c_cs: u64,
    /// The same without special casillas.
    pub(crate) votos_s_cs: u64,
}

/// `part` × 100 / `whole`, truncated to four decimals (0 over 0).
pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0000".to_owned();
    }
    let scaled = u128::from(part) * 1_000_000 / u128::from(whole);
    format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
}

impl Summary {
    /// Actas captured (counted or not).
    pub(crate) fn capturadas(&self) -> u64 {
        self.contabilizadas + self.no_contabilizadas
    }

    /// The summary header and values lines, as real files write them: percentages with four
    /// decimals, and the vote totals and participation empty while nothing is counted.
    pub(crate) fn lines(&self) -> (String, String) {
        let header = "ACTAS_ESPERADAS,ACTAS_REGISTRADAS,ACTAS_FUERA_CATALOGO,ACTAS_CAPTURADAS,\
PORCENTAJE_ACTAS_CAPTURADAS,ACTAS_CONTABILIZADAS,PORCENTAJE_ACTAS_CONTABILIZADAS,\
PORCENTAJE_ACTAS_INCONSISTENCIAS,ACTAS_NO_CONTABILIZADAS,LISTA_NOMINAL_ACTAS_CONTABILIZADAS,\
TOTAL_VOTOS_C_CS,TOTAL_VOTOS_S_CS,PORCENTAJE_PARTICIPACION_CIUDADANA";
        let counted = self.contabilizadas > 0;
        let or_empty = |v: String| if counted { v } else { String::new() };
        let values = [
            self.esperadas.to_string(),
            (self.capturadas() + self.fuera_catalogo).to_string(),
            self.fuera_catalogo.to_string(),
            self.capturadas().to_string(),
            percent(self.capturadas(), self.esperadas),
            self.contabilizadas.to_string(),
            percent(self.contabilizadas, self.esperadas),
            percent(self.inconsistencias, self.esperadas),
            self.no_contabilizadas.to_string(),
            self.lista_nominal.to_string(),
            or_empty(self.votos_c_cs.to_string()),
            self.votos_s_cs.to_string(),
            or_empty(percent(self.votos_c_cs, self.lista_nominal)),
        ];
        (header.to_owned(), values.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_truncated_not_rounded() {
        assert_eq!(percent(814_690, 1_847_519), "44.0964");
        assert_eq!(percent(2, 3), "66.6666");
        assert_eq!(percent(3748, 3748), "100.0000");
        assert_eq!(percent(1, 0), "0.0000");
    }

    #[test]
    fn nothing_counted_writes_the_real_empty_fields() {
        let s = Summary {
            esperadas: 1190,
            ..Summary::default()
        };
        assert_eq!(s.lines().1, "1190,0,0,0,0.0000,0,0.0000,0.0000,0,0,,0,");
    }
}
