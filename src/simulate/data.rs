//! The data package of one corte, in exactly the real layout (FORMATS.md): a zip of one zip
//! per election, each with `LEEME.txt`, `<ENT>_<ELECTION>_<YEAR>.csv` and
//! `<ENT>_<ELECTION>_CANDIDATURA_<YEAR>.csv`.
//!
//! # Guarantees
//! - The results CSV has the real line order: title, corte line with its UTC offset, summary
//!   header, summary values, a blank line, the column header, one row per acta; and the real
//!   column order (that of the Campeche 2021 files), parties and coalitions in the middle.
//! - Its summary line is computed from exactly the rows written ([`super::acta::Summary`]).
//! - Every file says SIMULACRO: the title line, the LEEME and every candidacy.
//! - The same catalogue and corte give the same bytes.

use std::io::Write as _;

use jiff::civil::DateTime;
use thiserror::Error;

use super::acta::{self, Acta, Summary};
use super::election::{Catalogue, Election, Fate, Level};

/// Writing a package failed (only the zip writer can fail, in memory).
#[derive(Debug, Error)]
#[error("cannot write the simulated package: {0}")]
pub(crate) struct PackError(#[from] zip::result::ZipError);

impl From<std::io::Error> for PackError {
    fn from(e: std::io::Error) -> Self {
        Self(zip::result::ZipError::Io(e))
    }
}

/// Counts and votes of one area (the whole entity, a district or a municipality).
#[derive(Debug, Clone, Default)]
pub(crate) struct Area {
    /// Actas expected.
    pub(crate) esperadas: u64,
    /// Actas captured.
    pub(crate) capturadas: u64,
    /// Actas counted.
    pub(crate) contabilizadas: u64,
    /// Lista nominal of counted actas.
    pub(crate) lista: u64,
    /// Votes per column of the ballot's [`vote_columns`](super::Ballot::vote_columns), over
    /// counted actas.
    pub(crate) votos: Vec<u64>,
}

impl Area {
    /// An empty area with `columns` vote columns.
    fn new(columns: usize) -> Self {
        Self {
            votos: vec![0; columns],
            ..Self::default()
        }
    }

    fn add(&mut self, captured: Option<&Acta>, lista: u32, counted: bool) {
        self.esperadas += 1;
        let Some(a) = captured else { return };
        self.capturadas += 1;
        if counted {
            self.contabilizadas += 1;
            self.lista += u64::from(lista);
            for (i, (sum, v)) in self.votos.iter_mut().zip(&a.votes).enumerate() {
                if Some(i) != a.illegible {
                    *sum += u64::from(*v);
                }
            }
        }
    }
}

/// What one election gives at one corte, for the site.
#[derive(Debug, Clone)]
pub(crate) struct Results {
    /// The election.
    pub(crate) election: Election,
    /// The whole entity.
    pub(crate) total: Area,
    /// By district (index + 1 is the id).
    pub(crate) distritos: Vec<Area>,
    /// By municipality (index + 1 is the id).
    pub(crate) municipios: Vec<Area>,
}

/// A corte: its local time and its minutes after 20:00 of election day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Corte {
    /// Local time of the corte.
    pub(crate) time: DateTime,
    /// Minutes after 20:00 of election day.
    pub(crate) minute: u32,
    /// The offset from UTC in hours (-6 in central Mexico).
    pub(crate) offset_hours: i8,
}

impl Corte {
    /// `20210606_2015`: the stamp of package names.
    pub(crate) fn stamp(&self) -> String {
        self.time.strftime("%Y%m%d_%H%M").to_string()
    }

    /// `06/06/2021 20:15 (UTC-6)`: the corte line.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} (UTC{:+})",
            self.time.strftime("%d/%m/%Y %H:%M"),
            self.offset_hours
        )
    }

    /// Local time of `minute` after 20:00 of election day, as rows write it.
    fn at(&self, minute: u32, seconds: u32) -> String {
        let start = self.time - jiff::SignedDuration::from_mins(i64::from(self.minute));
        let t = start
            + jiff::SignedDuration::from_mins(i64::from(minute))
            + jiff::SignedDuration::from_secs(i64::from(seconds));
        t.strftime("%d/%m/%Y %H:%M:%S").to_string()
    }
}

/// A name for a package, as institutes write it.
pub(crate) fn package_name(catalogue: &Catalogue, corte: &Corte) -> String {
    format!("{}_PREP_{}.zip", corte.stamp(), catalogue.entity.code)
}

/// The data package of `corte`: its name, bytes, and each election's results.
pub(crate) fn package(
    catalogue: &Catalogue,
    corte: &Corte,
) -> Result<(String, Vec<u8>, Vec<Results>), PackError> {
    let year = corte.time.year();
    let ent = &catalogue.entity.code;
    let stamp = corte.stamp();
    let modified = zip_time(corte.time);
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(modified);
    let stored = deflate.compression_method(zip::CompressionMethod::Stored);
    let mut inner_zips = Vec::new();
    let mut all = Vec::new();
    for (e, election) in catalogue.elections.iter().enumerate() {
        let (csv, results) = results_csv(catalogue, e, *election, corte);
        let members = [
            ("LEEME.txt".to_owned(), leeme(catalogue, *election)),
            (format!("{ent}_{}_{year}.csv", election.code), csv),
            (
                format!("{ent}_{}_CANDIDATURA_{year}.csv", election.code),
                candidaturas(catalogue, *election),
            ),
        ];
        let inner = zip_of(members, deflate)?;
        inner_zips.push((format!("{stamp}_PREP_{}_{ent}.zip", election.code), inner));
        all.push(results);
    }
    let bytes = zip_of(inner_zips, stored)?;
    Ok((package_name(catalogue, corte), bytes, all))
}

/// A zip, in memory, of `(name, bytes)` members in order, each written with `options`.
pub(super) fn zip_of<N: AsRef<str>, B: AsRef<[u8]>>(
    members: impl IntoIterator<Item = (N, B)>,
    options: zip::write::SimpleFileOptions,
) -> Result<Vec<u8>, PackError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in members {
        zip.start_file(name.as_ref(), options)?;
        zip.write_all(bytes.as_ref())?;
    }
    Ok(zip.finish()?.into_inner())
}

/// A zip timestamp for a local time (the corte's, as real packages carry).
pub(super) fn zip_time(t: DateTime) -> zip::DateTime {
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    zip::DateTime::from_date_and_time(
        u16::try_from(t.year()).unwrap_or(1980),
        part(t.month()),
        part(t.day()),
        part(t.hour()),
        part(t.minute()),
        part(t.second()),
    )
    .unwrap_or_default()
}

/// The results CSV of election number `e` at `corte`, and what it adds up to.
fn results_csv(
    catalogue: &Catalogue,
    e: usize,
    election: Election,
    corte: &Corte,
) -> (String, Results) {
    let entity = &catalogue.entity;
    let columns = catalogue.ballot.vote_columns();
    let (level_id, level_name) = election.level.columns();
    let mut rows = String::with_capacity(catalogue.casillas.len() * 330);
    let mut s = Summary::default();
    let mut total = Area::new(columns.len());
    let mut distritos = vec![Area::new(columns.len()); catalogue.distritos.len()];
    let mut municipios = vec![Area::new(columns.len()); catalogue.municipios.len()];
    let width = catalogue.seccion_width;
    for (i, c) in catalogue.casillas.iter().enumerate() {
        let acta = acta::draw(catalogue, i, c, e);
        // Captured at a corte once verified, so no timestamp is later than the corte.
        let verified = acta.captura * 60 + acta.verification_secs;
        let captured = (verified <= corte.minute * 60).then_some(&acta);
        let clave = c.clave(entity.id, width);
        let (id, name) = match election.level {
            Level::Municipality => {
                let m = usize::from(c.municipio);
                (
                    m,
                    catalogue.municipios.get(m - 1).map_or("", String::as_str),
                )
            }
            Level::LocalDistrict | Level::FederalDistrict => {
                let d = usize::from(c.distrito);
                (d, catalogue.distritos.get(d - 1).map_or("", String::as_str))
            }
        };
        rows.push_str(&format!(
            "'{clave},'{clave}{:02},'{:02},{},'{id:03},{name},'{:0width$},{:02},{},{:02},{},{},",
            election.tipo_acta,
            entity.id,
            entity.name,
            c.seccion,
            c.number,
            c.tipo as char,
            c.ext,
            c.ubicacion,
            election.tipo_acta,
        ));
        s.esperadas += 1;
        if election.diputaciones() && c.tipo == b'S' {
            // The RP acta of a special casilla is expected but not listed.
            s.esperadas += 1;
        }
        let counted = matches!(
            captured.map(|a| a.fate),
            Some(Fate::Counted | Fate::CountedIllegibleField)
        );
        total.add(captured, c.lista, counted);
        if let Some(a) = distritos.get_mut(usize::from(c.distrito) - 1) {
            a.add(captured, c.lista, counted);
        }
        if let Some(a) = municipios.get_mut(usize::from(c.municipio) - 1) {
            a.add(captured, c.lista, counted);
        }
        let Some(a) = captured else {
            // Not captured yet: only the lista nominal is known.
            rows.push_str(&",".repeat(4 + columns.len() + 2));
            rows.push_str(&format!("{},{}\n", c.lista, ",".repeat(10)));
            continue;
        };
        let votes_cells = |rows: &mut String, marker: Option<&str>| {
            for (k, v) in a.votes.iter().enumerate() {
                match marker {
                    Some(m) => rows.push_str(m),
                    None if Some(k) == a.illegible => {
                        rows.push_str(if k % 2 == 0 { "ILEGIBLE" } else { "SIN DATO" });
                    }
                    None => rows.push_str(&v.to_string()),
                }
                rows.push(',');
            }
        };
        let voters = a.total();
        let (observation, contabilizada) = match a.fate {
            Fate::Counted => ("", 1),
            Fate::CountedIllegibleField => ("\"ALGÚN CAMPO ILEGIBLE O SIN DATO\"", 1),
            Fate::ExceedsList => ("\"LA CANTIDAD DE VOTOS EXCEDE LA LISTA NOMINAL\"", 0),
            Fate::AllIllegible => ("\"TODO ILEGIBLE O SIN DATO\"", 0),
            Fate::Missing => ("\"SIN ACTA POR PAQUETE NO ENTREGADO\"", 0),
        };
        if observation.contains("ILEGIBLE") || observation.contains("EXCEDE") {
            s.inconsistencias += 1;
        }
        match a.fate {
            Fate::Missing => {
                rows.push_str("0,0,0,0,");
                votes_cells(&mut rows, Some("-"));
                rows.push_str(&format!("-,-,{},{},", c.lista, a.representantes));
            }
            Fate::AllIllegible => {
                rows.push_str("ILEGIBLE,ILEGIBLE,ILEGIBLE,ILEGIBLE,");
                votes_cells(&mut rows, Some("ILEGIBLE"));
                rows.push_str(&format!("-,-,{},{},", c.lista, a.representantes));
            }
            _ => {
                rows.push_str(&format!(
                    "{},{voters},{},{voters},",
                    a.sobrantes, a.representantes
                ));
                votes_cells(&mut rows, None);
                rows.push_str(&format!(
                    "{voters},{voters},{},{},",
                    c.lista, a.representantes
                ));
            }
        }
        let sha = if a.fate == Fate::Missing { "" } else { &a.sha };
        rows.push_str(&format!(
            "{observation},{contabilizada},{},{sha},\"{}\",\"{}\",\"{}\",{},{},\"ACTA PREP\"\n",
            a.traslado,
            corte.at(a.acopio, 0),
            corte.at(a.captura, 0),
            corte.at(a.captura, a.verification_secs),
            a.origen,
            a.digitalizacion,
        ));
        if counted {
            s.contabilizadas += 1;
            s.lista_nominal += u64::from(c.lista);
            s.votos_c_cs += voters;
            if c.tipo != b'S' {
                s.votos_s_cs += voters;
            }
        } else {
            s.no_contabilizadas += 1;
        }
    }
    // Actas out of the catalogue: about one in 160, captured as they arrive.
    let mut rng = catalogue.acta_rng(catalogue.casillas.len(), e);
    for _ in 0..catalogue.casillas.len() / 160 {
        let arrival = rng.u32(5..900);
        let origen = if rng.bool() {
            "CASILLA,MOVIL"
        } else {
            "CATD,ESCANER"
        };
        if arrival >= corte.minute {
            continue;
        }
        s.fuera_catalogo += 1;
        rows.push_str(&format!(
            "-,-,'{:02},{},,,,,,-,-,-,-,-,-,-,{}-,-,-,-,\"FUERA DE CATÁLOGO\",-,-,-,\"{}\",-,-,{origen},\n",
            entity.id,
            entity.name,
            "-,".repeat(columns.len()),
            corte.at(arrival, rng.u32(0..60)),
        ));
    }
    let (summary_header, summary_values) = s.lines();
    let header = format!(
        "CLAVE_CASILLA,CLAVE_ACTA,ID_ESTADO,ESTADO,{level_id},{level_name},SECCION,ID_CASILLA,\
TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,TOTAL_BOLETAS_SOBRANTES,\
TOTAL_PERSONAS_VOTARON,TOTAL_REP_PARTIDO_CI_VOTARON,TOTAL_VOTOS_SACADOS,{},\
TOTAL_VOTOS_ASENTADO,TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,REPRESENTANTES_PP_CI,OBSERVACIONES,\
CONTABILIZADA,MECANISMOS_TRASLADO,SHA,FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,\
FECHA_HORA_VERIFICACION,ORIGEN,DIGITALIZACION,TIPO_DOCUMENTO",
        columns.join(",")
    );
    let mut csv = String::with_capacity(rows.len() + 2048);
    csv.push_str(&format!(
        "{} (SIMULACRO)\n{}\n",
        election.title,
        corte.line()
    ));
    csv.push_str(&format!("{summary_header}\n{summary_values}\n\n{header}\n"));
    csv.push_str(&rows);
    let results = Results {
        election,
        total,
        distritos,
        municipios,
    };
    (csv, results)
}

/// Given names and surnames of fictitious candidacies.
const GIVEN: &[&str] = &[
    "ANA", "CARLOS", "ELENA", "FERNANDO", "GABRIELA", "HUGO", "IRMA", "JORGE", "LAURA", "MARIO",
    "NORMA", "OSCAR", "PATRICIA", "RAUL", "SILVIA", "TOMAS",
];
const SURNAMES: &[&str] = &[
    "AGUILAR",
    "BALAM",
    "CANUL",
    "DZIB",
    "ESTRADA",
    "FLORES",
    "GARCIA",
    "HERNANDEZ",
    "KU",
    "LOPEZ",
    "MAY",
    "NAVARRO",
    "ORTEGA",
    "PECH",
    "RAMIREZ",
    "SOSA",
];

/// A fictitious person for index `i`, marked as a drill.
fn person(i: usize) -> String {
    format!(
        "{} {} {} (SIMULACRO)",
        GIVEN[i % GIVEN.len()],
        SURNAMES[(i / 3) % SURNAMES.len()],
        SURNAMES[(i * 7 + 5) % SURNAMES.len()]
    )
}

/// The CANDIDATURA CSV: one candidacy per party (per area in local elections).
fn candidaturas(catalogue: &Catalogue, election: Election) -> String {
    let id = catalogue.entity.id;
    let parties: Vec<&str> = catalogue
        .ballot
        .parties
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    let areas = match election.level {
        Level::Municipality => catalogue.municipios.len(),
        Level::LocalDistrict | Level::FederalDistrict => catalogue.distritos.len(),
    };
    if matches!(election.code, "GUB" | "PRES") {
        let mut out = "ID_ESTADO,PARTIDO_CI,CANDIDATURA_PROPIETARIA\n".to_owned();
        for (i, p) in parties.iter().enumerate() {
            out.push_str(&format!("{id},{p},{}\n", person(i)));
        }
        return out;
    }
    // Real files name the area column of every local election ID_DISTRITO_LOCAL, even when
    // its ids are municipalities (Campeche 2021, AYUN).
    let level_id = match election.level {
        Level::FederalDistrict => "ID_DISTRITO_FEDERAL",
        Level::LocalDistrict | Level::Municipality => "ID_DISTRITO_LOCAL",
    };
    let mut out =
        format!("ID_ESTADO,{level_id},PARTIDO_CI,CANDIDATURA_PROPIETARIA,CANDIDATURA_SUPLENTE\n");
    for a in 1..=areas {
        for (i, p) in parties.iter().enumerate() {
            let k = a * parties.len() + i;
            out.push_str(&format!("{id},{a},{p},{},{}\n", person(k), person(k + 11)));
        }
    }
    out
}

/// The LEEME.txt (UTF-8, CRLF, as the institute's).
fn leeme(catalogue: &Catalogue, election: Election) -> String {
    let text = format!(
        "SIMULACRO: DATOS FICTICIOS, GENERADOS POR difusor simulate. NO SON RESULTADOS REALES.

Instructivo para lectura del archivo CSV ({title}, {entity}).

El archivo {ent}_{code}_AAAA.csv contiene, en este orden:
1. El nombre de la elección.
2. La fecha y hora del corte, con su diferencia respecto de UTC.
3. Los encabezados y valores del resumen: ACTAS_ESPERADAS, ACTAS_REGISTRADAS,
   ACTAS_FUERA_CATALOGO, ACTAS_CAPTURADAS, PORCENTAJE_ACTAS_CAPTURADAS, ACTAS_CONTABILIZADAS,
   PORCENTAJE_ACTAS_CONTABILIZADAS, PORCENTAJE_ACTAS_INCONSISTENCIAS, ACTAS_NO_CONTABILIZADAS,
   LISTA_NOMINAL_ACTAS_CONTABILIZADAS, TOTAL_VOTOS_C_CS, TOTAL_VOTOS_S_CS,
   PORCENTAJE_PARTICIPACION_CIUDADANA. Los porcentajes se truncan a cuatro decimales.
4. Una línea en blanco, los encabezados de las columnas y un renglón por acta.

Las Actas Esperadas son las del catálogo de casillas; en diputaciones se suma el acta de
representación proporcional de cada casilla especial, que no se lista.
Las Actas Capturadas incluyen las Contabilizadas (CONTABILIZADA = 1) y las No Contabilizadas
(CONTABILIZADA = 0) y excluyen las Fuera de Catálogo (CONTABILIZADA = -).
TOTAL_VOTOS_C_CS suma TOTAL_VOTOS_CALCULADO de las actas contabilizadas; TOTAL_VOTOS_S_CS, lo
mismo sin las casillas especiales (TIPO_CASILLA = S).

TIPO_CASILLA: B básica, C contigua, E extraordinaria, S especial, M voto desde el extranjero,
A voto anticipado. Los campos sin dato se escriben '-', ILEGIBLE o SIN DATO; un acta aún no
capturada lleva vacíos todos sus campos salvo la lista nominal.
",
        title = election.title,
        entity = catalogue.entity.name,
        ent = catalogue.entity.code,
        code = election.code,
    );
    text.replace('\n', "\r\n")
}
