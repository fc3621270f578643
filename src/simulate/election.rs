//! The fictitious election: the entity, its elections and parties, and the catalogue of
//! casillas with everything each acta will say and when it will arrive.
//!
//! # Guarantees
//! - Everything follows from the seed: the same settings give the same election, byte for
//!   byte, whatever the corte asked for.
//! - Casilla types come in the proportions of real files (about 40 % B, 56 % C, 2.5 % E,
//!   0.7 % S, a few M and A); special casillas have no lista nominal (0), as real files write.
//! - Arrivals follow an S-shaped (logistic) curve from 20:00 through the next day; capture and
//!   verification come minutes and seconds after arrival.

use thiserror::Error;

/// A settings error, named for the flag that caused it.
#[derive(Debug, Error)]
pub(crate) enum SettingsError {
    /// An entity code that is not one of the 32.
    #[error("unknown entity {0:?} for --entidad; use one of: {1}")]
    Entity(String, String),
    /// An election code that is not known.
    #[error("unknown election {0:?} in --elecciones; use GUB, DIP_LOC, AYUN, PRES, DIP_FED or SEN")]
    Election(String),
    /// Too few or too many casillas.
    #[error("--casillas must be between 100 and 200000, not {0}")]
    Size(u32),
    /// A party list that cannot be used.
    #[error("--partidos: {0}")]
    Parties(String),
}

/// The 32 entities: code, INE number and name as CSV files write it.
const ENTITIES: &[(&str, u8, &str)] = &[
    ("AGS", 1, "AGUASCALIENTES"),
    ("BC", 2, "BAJA CALIFORNIA"),
    ("BCS", 3, "BAJA CALIFORNIA SUR"),
    ("CAMP", 4, "CAMPECHE"),
    ("COAH", 5, "COAHUILA"),
    ("COL", 6, "COLIMA"),
    ("CHIS", 7, "CHIAPAS"),
    ("CHIH", 8, "CHIHUAHUA"),
    ("CDMX", 9, "CIUDAD DE MEXICO"),
    ("DGO", 10, "DURANGO"),
    ("GTO", 11, "GUANAJUATO"),
    ("GRO", 12, "GUERRERO"),
    ("HGO", 13, "HIDALGO"),
    ("JAL", 14, "JALISCO"),
    ("MEX", 15, "MEXICO"),
    ("MICH", 16, "MICHOACAN"),
    ("MOR", 17, "MORELOS"),
    ("NAY", 18, "NAYARIT"),
    ("NL", 19, "NUEVO LEON"),
    ("OAX", 20, "OAXACA"),
    ("PUE", 21, "PUEBLA"),
    ("QRO", 22, "QUERETARO"),
    ("QROO", 23, "QUINTANA ROO"),
    ("SLP", 24, "SAN LUIS POTOSI"),
    ("SIN", 25, "SINALOA"),
    ("SON", 26, "SONORA"),
    ("TAB", 27, "TABASCO"),
    ("TAMS", 28, "TAMAULIPAS"),
    ("TLAX", 29, "TLAXCALA"),
    ("VER", 30, "VERACRUZ"),
    ("YUC", 31, "YUCATAN"),
    ("ZAC", 32, "ZACATECAS"),
];

/// The entity whose election is simulated.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    /// Code in package names: `CAMP`.
    pub(crate) code: String,
    /// INE number: 4.
    pub(crate) id: u8,
    /// Name as CSV files write it: `CAMPECHE`.
    pub(crate) name: String,
}

impl Entity {
    /// The entity with code `code` (any letter case).
    pub(crate) fn from_code(code: &str) -> Result<Self, SettingsError> {
        let upper = code.to_ascii_uppercase();
        ENTITIES
            .iter()
            .find(|(c, _, _)| *c == upper)
            .map(|(c, id, name)| Self {
                code: (*c).to_owned(),
                id: *id,
                name: (*name).to_owned(),
            })
            .ok_or_else(|| {
                let all: Vec<&str> = ENTITIES.iter().map(|(c, _, _)| *c).collect();
                SettingsError::Entity(code.to_owned(), all.join(", "))
            })
    }
}

/// The territorial level an election's rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Local districts (`ID_DISTRITO_LOCAL`).
    LocalDistrict,
    /// Federal districts (`ID_DISTRITO_FEDERAL`).
    FederalDistrict,
    /// Municipalities (`ID_MUNICIPIO`).
    Municipality,
}

impl Level {
    /// The id and name columns: `("ID_MUNICIPIO", "MUNICIPIO")`.
    pub(crate) fn columns(self) -> (&'static str, &'static str) {
        match self {
            Self::LocalDistrict => ("ID_DISTRITO_LOCAL", "DISTRITO_LOCAL"),
            Self::FederalDistrict => ("ID_DISTRITO_FEDERAL", "DISTRITO_FEDERAL"),
            Self::Municipality => ("ID_MUNICIPIO", "MUNICIPIO"),
        }
    }
}

/// One election of the night.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Election {
    /// Code in file names: `GUB`.
    pub(crate) code: &'static str,
    /// The CSV's title line.
    pub(crate) title: &'static str,
    /// Spanish name on the site.
    pub(crate) label: &'static str,
    /// The `TIPO_ACTA` of its actas.
    pub(crate) tipo_acta: u8,
    /// How its rows are grouped.
    pub(crate) level: Level,
    /// Whether the election is federal (PRES, DIP_FED, SEN).
    pub(crate) federal: bool,
}

/// Every election the simulator knows.
const ELECTIONS: &[Election] = &[
    Election {
        code: "GUB",
        title: "GUBERNATURA",
        label: "Gubernatura",
        tipo_acta: 5,
        level: Level::LocalDistrict,
        federal: false,
    },
    Election {
        code: "DIP_LOC",
        title: "DIPUTACIONES LOCALES",
        label: "Diputaciones locales",
        tipo_acta: 3,
        level: Level::LocalDistrict,
        federal: false,
    },
    Election {
        code: "AYUN",
        title: "AYUNTAMIENTOS",
        label: "Ayuntamientos",
        tipo_acta: 2,
        level: Level::Municipality,
        federal: false,
    },
    Election {
        code: "PRES",
        title: "PRESIDENCIA DE LA REPUBLICA",
        label: "Presidencia de la República",
        tipo_acta: 1,
        level: Level::FederalDistrict,
        federal: true,
    },
    Election {
        code: "DIP_FED",
        title: "DIPUTACIONES FEDERALES",
        label: "Diputaciones federales",
        tipo_acta: 3,
        level: Level::FederalDistrict,
        federal: true,
    },
    Election {
        code: "SEN",
        title: "SENADURIAS",
        label: "Senadurías",
        tipo_acta: 2,
        level: Level::FederalDistrict,
        federal: true,
    },
];

impl Election {
    /// The election with code `code` (`GOB` is read as `GUB`).
    pub(crate) fn from_code(code: &str) -> Result<Self, SettingsError> {
        let upper = code.trim().to_ascii_uppercase();
        let upper = if upper == "GOB" {
            "GUB".to_owned()
        } else {
            upper
        };
        ELECTIONS
            .iter()
            .find(|e| e.code == upper)
            .copied()
            .ok_or_else(|| SettingsError::Election(code.to_owned()))
    }

    /// Whether it elects diputaciones (special casillas also have an RP acta, not listed).
    pub(crate) fn diputaciones(self) -> bool {
        self.code.starts_with("DIP")
    }
}

/// The parties and coalitions of today's elections (`--partidos` by default), as a spec.
pub(crate) const DEFAULT_PARTIDOS: &str =
    "PAN,PRI,PRD,PVEM,PT,MC,MORENA,PAN+PRI+PRD,PVEM+PT+MORENA";

/// Base shares of the vote of known parties; any other party gets [`OTHER_SHARE`] unless its
/// share is given.
const KNOWN_SHARES: &[(&str, f64)] = &[
    ("PAN", 0.20),
    ("PRI", 0.13),
    ("PRD", 0.03),
    ("PVEM", 0.07),
    ("PT", 0.05),
    ("MC", 0.11),
    ("MORENA", 0.38),
];

/// Base share of a party not in [`KNOWN_SHARES`] whose share is not given.
const OTHER_SHARE: f64 = 0.05;
/// Most parties on a ballot.
const MAX_PARTIES: usize = 20;
/// Most parties in one coalition (its columns grow as 2^n).
const MAX_MEMBERS: usize = 5;
/// Longest party name.
const MAX_NAME: usize = 16;

/// The parties and coalitions on the ballot, in file order (`--partidos`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ballot {
    /// Party column names and their base share of the vote.
    pub(crate) parties: Vec<(String, f64)>,
    /// Coalition column names (`C_PAN_PRI`) and their members (indices into `parties`):
    /// each coalition and every combination of two or more of its parties, as real files
    /// list them.
    pub(crate) coalitions: Vec<(String, Vec<usize>)>,
}

impl Default for Ballot {
    /// Today's parties and coalitions.
    fn default() -> Self {
        Self::parse(DEFAULT_PARTIDOS).unwrap_or_else(|_| Self {
            parties: Vec::new(),
            coalitions: Vec::new(),
        })
    }
}

impl Ballot {
    /// Reads a `--partidos` spec: comma-separated parties (`MORENA`, or `MORENA=0.38` with
    /// its base share of the vote) and coalitions of listed parties (`PAN+PRI+PRD`).
    pub(crate) fn parse(spec: &str) -> Result<Self, SettingsError> {
        let bad = |why: String| SettingsError::Parties(why);
        let tokens: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let mut parties: Vec<(String, f64)> = Vec::new();
        for token in tokens.iter().filter(|t| !t.contains('+')) {
            let (name, share) = match token.split_once('=') {
                Some((name, share)) => {
                    let share: f64 = share
                        .trim()
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 1.0)
                        .ok_or_else(|| {
                            bad(format!(
                                "{token:?}: a share is a number above 0 and at most 1, e.g. \
                                 MORENA=0.38"
                            ))
                        })?;
                    (name.trim(), share)
                }
                None => (
                    *token,
                    KNOWN_SHARES
                        .iter()
                        .find(|(known, _)| known == token)
                        .map_or(OTHER_SHARE, |(_, share)| *share),
                ),
            };
            check_name(name).map_err(bad)?;
            if parties.iter().any(|(p, _)| p == name) {
                return Err(bad(format!("{name} is listed twice")));
            }
            parties.push((name.to_owned(), share));
        }
        if !(2..=MAX_PARTIES).contains(&parties.len()) {
            return Err(bad(format!(
                "list between 2 and {MAX_PARTIES} parties, not {}",
                parties.len()
            )));
        }
        let mut coalitions: Vec<(String, Vec<usize>)> = Vec::new();
        for token in tokens.iter().filter(|t| t.contains('+')) {
            let mut members = Vec::new();
            for member in token.split('+').map(str::trim) {
                let index = parties
                    .iter()
                    .position(|(p, _)| p == member)
                    .ok_or_else(|| {
                        bad(format!(
                            "{token:?}: {member:?} is not a listed party; list it too, e.g. \
                             PAN,PRI,PAN+PRI"
                        ))
                    })?;
                if members.contains(&index) {
                    return Err(bad(format!("{token:?}: {member} is listed twice")));
                }
                members.push(index);
            }
            if !(2..=MAX_MEMBERS).contains(&members.len()) {
                return Err(bad(format!(
                    "{token:?}: a coalition has between 2 and {MAX_MEMBERS} parties"
                )));
            }
            members.sort_unstable();
            for combination in combinations(&members) {
                let name = std::iter::once("C")
                    .chain(combination.iter().map(|&m| parties[m].0.as_str()))
                    .collect::<Vec<_>>()
                    .join("_");
                if !coalitions.iter().any(|(c, _)| *c == name) {
                    coalitions.push((name, combination));
                }
            }
        }
        Ok(Self {
            parties,
            coalitions,
        })
    }

    /// The vote columns, in file order: parties, coalitions, not registered, null.
    pub(crate) fn vote_columns(&self) -> Vec<&str> {
        self.parties
            .iter()
            .map(|(p, _)| p.as_str())
            .chain(self.coalitions.iter().map(|(c, _)| c.as_str()))
            .chain(["NO_REGISTRADOS", "NULOS"])
            .collect()
    }
}

/// Whether `name` can be a party column: capitals, digits and `_`, starting with a letter.
fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !matches!(name, "NO_REGISTRADOS" | "NULOS")
        && !name.starts_with("C_");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a party name: capitals, digits and _, starting with a capital, up \
             to {MAX_NAME} characters (e.g. MORENA, PES, CI_1)"
        ))
    }
}

/// Every combination of two or more of `members`, largest first, each size in order:
/// `[a, b, c]` gives `abc, ab, ac, bc`.
fn combinations(members: &[usize]) -> Vec<Vec<usize>> {
    let n = members.len();
    let mut all = Vec::new();
    for size in (2..=n).rev() {
        let mut picked: Vec<usize> = (0..size).collect();
        loop {
            all.push(picked.iter().map(|&i| members[i]).collect());
            // The next combination in lexicographic order, if any.
            let Some(i) = (0..size).rev().find(|&i| picked[i] < n - size + i) else {
                break;
            };
            picked[i] += 1;
            for j in i + 1..size {
                picked[j] = picked[j - 1] + 1;
            }
        }
    }
    all
}

/// What became of an acta once it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Counted, every figure legible.
    Counted,
    /// Counted, but some figure illegible or missing (an inconsistency).
    CountedIllegibleField,
    /// Not counted: the votes exceed the lista nominal.
    ExceedsList,
    /// Not counted: every figure illegible.
    AllIllegible,
    /// Not counted: the package came without the acta.
    Missing,
}

/// One casilla of the catalogue.
#[derive(Debug, Clone)]
pub(crate) struct Casilla {
    /// Sección electoral.
    pub(crate) seccion: u32,
    /// `B`, `C`, `E`, `S`, `M` or `A`.
    pub(crate) tipo: u8,
    /// Number among the casillas of its type in its sección (1-based).
    pub(crate) number: u8,
    /// `EXT_CONTIGUA` (0 except for some extraordinarias).
    pub(crate) ext: u8,
    /// 1 urban, 2 rural.
    pub(crate) ubicacion: u8,
    /// Municipality (1-based).
    pub(crate) municipio: u16,
    /// Local district (1-based).
    pub(crate) distrito: u16,
    /// Lista nominal (0 in special casillas).
    pub(crate) lista: u32,
    /// Minutes after 20:00 of election day when its package reaches the acopio.
    pub(crate) arrival: u32,
}

impl Casilla {
    /// `'040004C0200` without the apostrophe: entity, sección, type, number, ext.
    pub(crate) fn clave(&self, entity: u8, width: usize) -> String {
        format!(
            "{entity:02}{:0width$}{}{:02}{:02}",
            self.seccion, self.tipo as char, self.number, self.ext
        )
    }
}

/// The catalogue of one simulated election night.
#[derive(Debug, Clone)]
pub(crate) struct Catalogue {
    /// The entity.
    pub(crate) entity: Entity,
    /// Its elections, in package order.
    pub(crate) elections: Vec<Election>,
    /// The casillas, by sección.
    pub(crate) casillas: Vec<Casilla>,
    /// Municipality names (index + 1 is the id).
    pub(crate) municipios: Vec<String>,
    /// District names (index + 1 is the id).
    pub(crate) distritos: Vec<String>,
    /// Digits of a sección number (4, or more at national size).
    pub(crate) seccion_width: usize,
    /// The seed.
    pub(crate) seed: u64,
    /// The parties and coalitions.
    pub(crate) ballot: Ballot,
}

/// Roots of fictitious place names.
const PLACES: &[&str] = &[
    "ALDAMA",
    "ARENAL",
    "BUENAVISTA",
    "CALAKMUL",
    "CANDELARIA",
    "CERRO ALTO",
    "COPALA",
    "EL CARMEN",
    "ESCARCEGA",
    "GUADALUPE",
    "HOPELCHEN",
    "IXTAPA",
    "JUAREZ",
    "LA PAZ",
    "LERMA",
    "LOS REYES",
    "MIRAMAR",
    "NOPALA",
    "OCAMPO",
    "PALIZADA",
    "PUERTO REAL",
    "ROSARIO",
    "SABANCUY",
    "SAN JUAN",
    "SANTA ROSA",
    "TECOMATE",
    "TENABO",
    "TIERRA BLANCA",
    "VALLE VERDE",
    "XPUJIL",
    "ZARAGOZA",
    "ZAPOTAL",
];

/// A fictitious place name for index `i`.
fn place(i: usize) -> String {
    let root = PLACES[i % PLACES.len()];
    match i / PLACES.len() {
        0 => root.to_owned(),
        n => format!("{root} {}", roman(n + 1)),
    }
}

/// A small number in Roman numerals (place names reuse roots with II, III, …).
fn roman(mut n: usize) -> String {
    let mut s = String::new();
    for (v, r) in [
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ] {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    if n > 0 {
        s.push_str(&"C".repeat(n));
    }
    s
}

/// A standard normal variate (Box–Muller).
pub(crate) fn gauss(rng: &mut fastrand::Rng) -> f64 {
    let u = rng.f64().max(1e-12);
    let v = rng.f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Minutes after 20:00 of an arrival drawn from a logistic curve: half the actas by about
/// 01:00, nearly all by 08:00, the last ones through the next day (all captured by 20:00).
fn arrival(rng: &mut fastrand::Rng) -> u32 {
    let u = rng.f64().clamp(1e-9, 1.0 - 1e-9);
    let minutes = 300.0 + 75.0 * (u / (1.0 - u)).ln();
    minutes.clamp(5.0, 1280.0) as u32
}

impl Catalogue {
    /// The catalogue of `casillas` casillas for `elections` in `entity`, with `ballot`,
    /// from `seed`.
    pub(crate) fn new(
        entity: Entity,
        elections: Vec<Election>,
        casillas: u32,
        seed: u64,
        ballot: Ballot,
    ) -> Result<Self, SettingsError> {
        if !(100..=200_000).contains(&casillas) {
            return Err(SettingsError::Size(casillas));
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let n = casillas as usize;
        let municipios = (n / 90).clamp(5, 2_500);
        let distritos = (n / 420).clamp(3, 300);
        let mut list = Vec::with_capacity(n);
        let mut seccion = 0u32;
        while list.len() < n {
            seccion += 1;
            // Secciones run in blocks along municipalities and districts.
            let municipio = (seccion as usize * 7 / 3 * municipios / n.max(1)).min(municipios - 1);
            let distrito = (seccion as usize * 7 / 3 * distritos / n.max(1)).min(distritos - 1);
            let ubicacion = if rng.f64() < 0.65 { 1 } else { 2 };
            let electores = rng.u32(250..2_800);
            let mut push = |tipo: u8, number: u8, ext: u8, lista: u32, rng: &mut fastrand::Rng| {
                list.push(Casilla {
                    seccion,
                    tipo,
                    number,
                    ext,
                    ubicacion,
                    municipio: (municipio + 1) as u16,
                    distrito: (distrito + 1) as u16,
                    lista,
                    arrival: arrival(rng) + if ubicacion == 2 { rng.u32(0..90) } else { 0 },
                });
            };
            // One básica per 750 electors, the rest in contiguas: about 40 % B, 56 % C.
            let boxes = electores.div_ceil(750).max(1);
            let per_box = electores / boxes;
            push(b'B', 1, 0, per_box, &mut rng);
            for c in 1..boxes.max(2) {
                push(b'C', c as u8, 0, per_box, &mut rng);
            }
            let r = rng.f64();
            if r < 0.025 {
                push(b'E', 1, 1, rng.u32(150..600), &mut rng);
            } else if r < 0.033 {
                push(b'S', 1, 0, 0, &mut rng);
            } else if r < 0.0345 {
                push(b'M', 1, 0, rng.u32(20..400), &mut rng);
            } else if r < 0.036 {
                push(b'A', 1, 0, rng.u32(20..200), &mut rng);
            }
        }
        list.truncate(n);
        let width = seccion.to_string().len().max(4);
        Ok(Self {
            entity,
            elections,
            casillas: list,
            municipios: (0..municipios).map(place).collect(),
            distritos: (0..distritos)
                .map(|d| format!("{:02}. {}", d + 1, place(d * 5 + 3)))
                .collect(),
            seccion_width: width,
            seed,
            ballot,
        })
    }

    /// The generator of acta `casilla` of election `election`: the same numbers every corte.
    pub(crate) fn acta_rng(&self, casilla: usize, election: usize) -> fastrand::Rng {
        let mix = (casilla as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((election as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        fastrand::Rng::with_seed(self.seed ^ mix)
    }

    /// The regional shift of party `p`'s share in district `d` (the same in every election).
    pub(crate) fn regional(&self, d: u16, p: usize) -> f64 {
        let mut rng = fastrand::Rng::with_seed(
            self.seed ^ (u64::from(d) << 32) ^ (p as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
        );
        (0.3 * gauss(&mut rng)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(n: u32, seed: u64) -> Catalogue {
        let entity = Entity::from_code("camp").unwrap();
        let elections = vec![Election::from_code("GUB").unwrap()];
        Catalogue::new(entity, elections, n, seed, Ballot::default()).unwrap()
    }

    #[test]
    fn casilla_types_come_in_real_proportions() {
        let c = catalogue(50_000, 7);
        assert_eq!(c.casillas.len(), 50_000);
        let share = |t: u8| {
            c.casillas.iter().filter(|k| k.tipo == t).count() as f64 / c.casillas.len() as f64
        };
        assert!((0.33..0.47).contains(&share(b'B')), "B {}", share(b'B'));
        assert!((0.48..0.64).contains(&share(b'C')), "C {}", share(b'C'));
        assert!((0.005..0.02).contains(&share(b'E')), "E {}", share(b'E'));
        assert!((0.001..0.008).contains(&share(b'S')), "S {}", share(b'S'));
        assert!(share(b'M') > 0.0 && share(b'A') > 0.0);
        assert!(
            c.casillas
                .iter()
                .filter(|k| k.tipo == b'S')
                .all(|k| k.lista == 0)
        );
    }

    #[test]
    fn arrivals_follow_an_s_curve() {
        let c = catalogue(20_000, 1);
        let by = |m: u32| c.casillas.iter().filter(|k| k.arrival <= m).count() as f64 / 20_000.0;
        assert!(by(60) < 0.08, "{}", by(60));
        assert!((0.35..0.6).contains(&by(300)), "{}", by(300));
        assert!(by(720) > 0.97, "{}", by(720));
        assert!(c.casillas.iter().all(|k| k.arrival < 24 * 60));
    }

    #[test]
    fn the_same_seed_gives_the_same_catalogue() {
        let a = catalogue(3_000, 42);
        let b = catalogue(3_000, 42);
        let c = catalogue(3_000, 43);
        let key = |c: &Catalogue| -> Vec<(u32, u8, u32, u32)> {
            c.casillas
                .iter()
                .map(|k| (k.seccion, k.tipo, k.lista, k.arrival))
                .collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn unknown_settings_are_refused_with_their_flag() {
        assert!(
            Entity::from_code("XX")
                .unwrap_err()
                .to_string()
                .contains("--entidad")
        );
        assert!(
            Election::from_code("ALC")
                .unwrap_err()
                .to_string()
                .contains("--elecciones")
        );
        assert_eq!(Election::from_code("gob").unwrap().code, "GUB");
        let e = Entity::from_code("SON").unwrap();
        assert!(Catalogue::new(e, vec![], 10, 1, Ballot::default()).is_err());
    }

    #[test]
    fn the_default_ballot_is_todays_and_coalitions_list_every_combination() {
        let ballot = Ballot::default();
        assert_eq!(
            ballot.vote_columns(),
            [
                "PAN",
                "PRI",
                "PRD",
                "PVEM",
                "PT",
                "MC",
                "MORENA",
                "C_PAN_PRI_PRD",
                "C_PAN_PRI",
                "C_PAN_PRD",
                "C_PRI_PRD",
                "C_PVEM_PT_MORENA",
                "C_PVEM_PT",
                "C_PVEM_MORENA",
                "C_PT_MORENA",
                "NO_REGISTRADOS",
                "NULOS"
            ]
        );
        assert_eq!(ballot.parties[6], ("MORENA".to_owned(), 0.38));
        assert_eq!(ballot.coalitions[4].1, [3, 4, 6]);
        let custom = Ballot::parse("MORENA=0.5, PAN ,PES,MORENA+PES").unwrap();
        assert_eq!(
            custom.vote_columns(),
            [
                "MORENA",
                "PAN",
                "PES",
                "C_MORENA_PES",
                "NO_REGISTRADOS",
                "NULOS"
            ]
        );
        assert_eq!(custom.parties[0].1, 0.5);
        assert_eq!(custom.parties[2].1, OTHER_SHARE);
        let four = Ballot::parse("A,B,C,D,D+C+B+A").unwrap();
        assert_eq!(four.coalitions.len(), 11);
        assert_eq!(four.coalitions[0].0, "C_A_B_C_D");
        assert_eq!(four.coalitions[1].0, "C_A_B_C");
        assert_eq!(four.coalitions[10].0, "C_C_D");
        for bad in [
            "PAN",
            "PAN,PAN",
            "PAN,PRI,PAN+MC",
            "PAN,PRI,PAN+PAN",
            "PAN,pri",
            "PAN,PRI=2",
            "PAN,PRI=x",
            "PAN,NULOS",
            "PAN,C_X",
        ] {
            let err = Ballot::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("--partidos: "), "{bad}: {err}");
        }
    }
}
