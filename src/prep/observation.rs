//! The `OBSERVACIONES` cell of an acta: what it reports, whatever way the institute wrote it.
//!
//! Seen in real files: one phrase (`ALGÚN CAMPO ILEGIBLE O SIN DATO`, `SIN ACTA POR PAQUETE NO
//! ENTREGADO`, `FUERA DE CATÁLOGO`, `Todos los campos vacio`), a Python list (`['Ilegible', 'Sin dato']`, INE 2023), a
//! comma-joined list (`Sin dato,Ilegible`), a code after the phrase (`Sin Acta(3)`), and `-` or
//! `--` for none. Each item is read for what it reports; the summary's definitions
//! ([`super::definitions`]) decide which reports count.

/// What an observation reports, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags(u8);

impl Flags {
    /// The acta is out of the catalogue (`FUERA DE CATÁLOGO`).
    pub(crate) const OUT_OF_CATALOGUE: Flags = Flags(1);
    /// A figure of the acta is illegible or missing, it has more votes than its lista nominal,
    /// or all its fields are empty.
    pub(crate) const INCONSISTENCY: Flags = Flags(2);
    /// Anything at all is observed (a missing acta, a forced identification, …).
    pub(crate) const ANY: Flags = Flags(4);
    /// How many distinct values there are, for tables indexed by [`Flags::index`].
    pub(crate) const COUNT: usize = 8;

    /// Whether every bit of `other` is set.
    pub(crate) fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Its position in a table of [`Flags::COUNT`] entries.
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The flags at position `index` of such a table.
    pub(crate) fn from_index(index: usize) -> Self {
        Flags(u8::try_from(index).unwrap_or_default() & 7)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// Words that report an inconsistency of the acta's figures (upper case, no accents).
/// `CAMPOS VACIO` is also how IEE Puebla 2018 writes it (`Todos los campos vacio`), where INE
/// writes `Todos los campos vacíos`.
const INCONSISTENCY_WORDS: &[&str] = &["ILEGIBLE", "SIN DATO", "EXCEDE", "CAMPOS VACIO"];

/// Items that mean "nothing observed".
const NONE: &[&str] = &["", "-", "--", "N/A"];

/// Reads an observation already in upper case and without accents
/// ([`super::reader::normalise`]).
pub(crate) fn read(observation: &str) -> Flags {
    let text = observation.trim();
    let list = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    list.split([',', ';'])
        .map(|item| item.trim().trim_matches(['\'', '"']).trim())
        .filter(|item| !NONE.contains(item))
        .fold(Flags::default(), |flags, item| flags | item_flags(item))
}

/// What one item of an observation reports.
fn item_flags(item: &str) -> Flags {
    let mut flags = Flags::ANY;
    if item.contains("FUERA DE CATALOGO") {
        flags = flags | Flags::OUT_OF_CATALOGUE;
    }
    if INCONSISTENCY_WORDS.iter().any(|w| item.contains(w)) {
        flags = flags | Flags::INCONSISTENCY;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Flags {
        read(&crate::prep::reader::normalise(text))
    }

    #[test]
    fn every_way_of_writing_an_observation_is_read() {
        let inconsistent = Flags::ANY | Flags::INCONSISTENCY;
        for (written, expected) in [
            ("ALGÚN CAMPO ILEGIBLE O SIN DATO", inconsistent),
            ("TODO ILEGIBLE O SIN DATO", inconsistent),
            ("EXCEDE LISTA NOMINAL", inconsistent),
            ("['Todos los campos vacíos']", inconsistent),
            ("Todos los campos vacio", inconsistent),
            ("['Ilegible', 'Sin dato']", inconsistent),
            ("Sin dato,Ilegible", inconsistent),
            ("['Identificación forzada', 'Ilegible']", inconsistent),
            ("SIN ACTA POR PAQUETE NO ENTREGADO", Flags::ANY),
            ("Sin Acta(3)", Flags::ANY),
            ("Identificación forzada", Flags::ANY),
            ("FUERA DE CATÁLOGO", Flags::ANY | Flags::OUT_OF_CATALOGUE),
            ("", Flags::default()),
            ("-", Flags::default()),
            ("--", Flags::default()),
            ("[]", Flags::default()),
        ] {
            assert_eq!(flags(written), expected, "{written}");
        }
    }

    #[test]
    fn flags_index_a_table_both_ways() {
        for i in 0..Flags::COUNT {
            assert_eq!(Flags::from_index(i).index(), i);
        }
        assert!((Flags::ANY | Flags::INCONSISTENCY).has(Flags::INCONSISTENCY));
        assert!(!Flags::ANY.has(Flags::INCONSISTENCY));
    }
}
