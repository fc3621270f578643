//! The reader and the check of the summary on the real files, on cuts of real files whose
//! declared values are put off by one, and on generated files of every variant of
//! `docs/formats.md`.

use std::path::Path;

use super::*;

fn real(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real")
        .join(name)
}

fn derived(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/derived")
        .join(name)
}

fn inspect_bytes(name: &str, bytes: &[u8]) -> Result<FileReport, ReadError> {
    inspect_csv(name, bytes, None, &mut |_| {})
}

fn assert_all_equal(report: &FileReport, fields: usize) {
    assert!(report.summary_present, "{}: no summary", report.file);
    assert_eq!(report.summary.len(), fields, "{}", report.file);
    for c in &report.summary {
        assert!(c.equal, "{}: {c:?}", report.file);
    }
    assert!(report.consistent);
}

#[test]
fn the_real_sonora_file_reproduces_every_summary_field() {
    let bytes = std::fs::read(real("SON_GOB_2021.csv")).unwrap();
    let r = inspect_bytes("SON_GOB_2021.csv", &bytes).unwrap();
    assert_all_equal(&r, 13);
    assert_eq!(r.rows, 3772);
    assert_eq!(r.encoding, "UTF-8 with BOM");
    assert_eq!(r.title.as_deref(), Some("GUBERNATURA"));
    let corte = r.corte.as_ref().unwrap();
    assert_eq!(corte.written, "07/06/2021 13:19 (UTC-7)");
    assert_eq!(corte.local.as_deref(), Some("2021-06-07T13:19:00-07:00"));
    assert_eq!(corte.utc.as_deref(), Some("2021-06-07T20:19:00Z"));
    let field = |name: &str| r.summary.iter().find(|c| c.field == name).unwrap();
    assert_eq!(field("ACTAS_CONTABILIZADAS").recomputed, "3164");
    assert_eq!(field("TOTAL_VOTOS_C_CS").recomputed, "814690");
    assert_eq!(
        field("PORCENTAJE_PARTICIPACION_CIUDADANA").recomputed,
        "44.0964"
    );
    // Spelled ACTAS_FUERA_CATÁLOGO and PORCENTAJE_ACTAS_CON_INCONSISTENCIAS in this file.
    assert_eq!(field("ACTAS_FUERA_CATALOGO").recomputed, "24");
    assert_eq!(
        field("PORCENTAJE_ACTAS_INCONSISTENCIAS").recomputed,
        "16.0885"
    );
    assert_eq!(r.by_contabilizada.get("1"), Some(&3164));
    assert_eq!(r.by_casilla_type.get("S"), Some(&25));
    // "Sin dato" is missing, not zero: RSP has 43 counted actas without a value.
    let rsp = r.votes.iter().find(|v| v.column == "RSP").unwrap();
    assert_eq!((rsp.votes, rsp.missing), (9694, 43));
    assert_eq!(r.anomaly_count, 0, "{:?}", r.anomalies);
}

#[test]
fn the_real_campeche_package_reproduces_every_summary_field() {
    let bytes = std::fs::read(real("20210601_1852_PREP_CAMP.zip")).unwrap();
    let mut outer = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut members = Vec::new();
    for i in 0..outer.len() {
        let mut inner_bytes = Vec::new();
        let mut f = outer.by_index(i).unwrap();
        let stem = f.name().unwrap().trim_end_matches(".zip").to_owned();
        std::io::Read::read_to_end(&mut f, &mut inner_bytes).unwrap();
        let mut inner = zip::ZipArchive::new(std::io::Cursor::new(inner_bytes)).unwrap();
        for j in 0..inner.len() {
            let mut m = inner.by_index(j).unwrap();
            let mut b = Vec::new();
            let path = format!("{stem}/{}", m.name().unwrap());
            std::io::Read::read_to_end(&mut m, &mut b).unwrap();
            members.push(Member::new(path, b));
        }
    }
    let refs: Vec<&Member> = members.iter().collect();
    let report = inspect_members("CAMP", &refs, None, &|_| {});
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    assert_eq!(report.elections.len(), 4);
    assert_eq!(report.other_files.len(), 8, "{:?}", report.other_files);
    for e in &report.elections {
        assert_all_equal(e, 13);
    }
    let titles: Vec<_> = report
        .elections
        .iter()
        .map(|e| e.title.clone().unwrap())
        .collect();
    assert!(titles.contains(&"DIPUTACIONES LOCALES".to_owned()));
    assert_eq!(report.corte.unwrap().written, "01/06/2021 18:52 (UTC-5)");
}

/// One way a real file may be written.
#[derive(Clone, Copy, Default)]
struct Variant {
    latin1: bool,
    pipe: bool,
    eq_cells: bool,
    crlf: bool,
    bom: bool,
    quoted_preamble: bool,
    other_spellings: bool,
    iso_dates: bool,
    /// A first line `sep=|` (or `sep=,`) before the title (IEQROO 2019, INE 2019).
    sep_line: bool,
    /// Lines ended by CR alone (INE 2023).
    cr_only: bool,
    /// The corte year first, `2021/06/01 18:52 (UTC-5)` (IEQROO 2019).
    year_first_corte: bool,
    /// The corte unpadded, `1/6/2021 18:52(UTC-5)` (INE 2019, IEEQ 2018).
    unpadded_corte: bool,
    /// Summary percentages written `'80.0000%` (INE 2019).
    percent_sign: bool,
    /// A summary line of ten fields, without the vote totals.
    ten_fields: bool,
    /// INE 2019's column names: `TOTAL_VOTOS`, `NUM_BOLETAS_SOBRANTES`,
    /// `TOTAL_CIUDADANOS_VOTARON`.
    ine2019_columns: bool,
    /// IECM 2024's: `TOTAL_VOTOS_CALCULADOS`, `PERSONAS_VOTARON`, `MECANISMO_TRASLADO`.
    iecm_columns: bool,
    /// Observations as a Python list, comma-joined, `Sin Acta(3)`, `--` for none (INE 2023).
    list_observations: bool,
    /// Dates without seconds, with microseconds or with the offset in the cell.
    date_variants: bool,
    /// MORENA written `MOR` and a coalition written with hyphens, `PAN-MORENA`.
    party_aliases: bool,
}

/// One generated acta: casilla type, votes (PAN, PRI, C_PAN_PRI, NO_REGISTRADAS, NULOS),
/// TOTAL_VOTOS_CALCULADO, LISTA_NOMINAL, OBSERVACIONES, CONTABILIZADA.
type GeneratedRow = (
    &'static str,
    [&'static str; 5],
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// A small results file in `v`'s conventions, with a summary line true to its rows:
/// 6 actas (3 counted, 1 not counted, 1 out of the catalogue, 1 not captured).
fn generated(v: Variant) -> Vec<u8> {
    let sep = if v.pipe { "|" } else { "," };
    let nl = if v.cr_only {
        "\r"
    } else if v.crlf {
        "\r\n"
    } else {
        "\n"
    };
    let quoted = |c: &str| {
        if c.contains(sep) {
            format!("\"{c}\"")
        } else {
            c.to_owned()
        }
    };
    let cell = |c: &str| {
        if v.eq_cells && !c.is_empty() {
            format!("=\"{c}\"")
        } else {
            c.to_owned()
        }
    };
    let date = |d: &str| match (v.iso_dates, v.date_variants) {
        (true, false) => format!("2021-06-0{} 2{}:00:00", &d[..1], &d[1..]),
        (false, false) => format!("0{}/06/2021 2{}:00:00", &d[..1], &d[1..]),
        (true, true) => format!("2021-06-0{} 2{}:00:00.000000", &d[..1], &d[1..]),
        (false, true) => format!("0{}/06/2021 2{}:00 (UTC-5)", &d[..1], &d[1..]),
    };
    let mut text = String::new();
    if v.sep_line {
        text.push_str(&format!("sep={sep}{nl}"));
    }
    if v.year_first_corte || v.unpadded_corte {
        text.push_str("GUBERNATURA");
        text.push_str(nl);
        text.push_str(if v.year_first_corte {
            "2021/06/01 18:52 (UTC-5)"
        } else {
            "1/6/2021 18:52(UTC-5)"
        });
    } else if v.quoted_preamble {
        text.push_str("\"GUBERNATURA, ELECCIÓN ORDINARIA\"");
        text.push_str(nl);
        text.push_str("\"07/06/2021 13:19 (UTC-7)\"");
    } else {
        text.push_str("GUBERNATURA");
        text.push_str(nl);
        text.push_str("01/06/2021 18:52 (UTC-5)");
    }
    text.push_str(nl);
    text.push_str(nl);
    let (fuera, inconsistencias) = if v.other_spellings {
        (
            "ACTAS_FUERA_DE_CATALOGO",
            "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS",
        )
    } else {
        ("ACTAS_FUERA_CATÁLOGO", "PORCENTAJE_ACTAS_INCONSISTENCIAS")
    };
    let header = [
        "ACTAS_ESPERADAS",
        "ACTAS_REGISTRADAS",
        fuera,
        "ACTAS_CAPTURADAS",
        "PORCENTAJE_ACTAS_CAPTURADAS",
        "ACTAS_CONTABILIZADAS",
        "PORCENTAJE_ACTAS_CONTABILIZADAS",
        inconsistencias,
        "ACTAS_NO_CONTABILIZADAS",
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
        "TOTAL_VOTOS_C_CS",
        "TOTAL_VOTOS_S_CS",
        "PORCENTAJE_PARTICIPACION_CIUDADANA",
    ];
    let fields = if v.ten_fields { 10 } else { 13 };
    text.push_str(&header[..fields].join(sep));
    text.push_str(nl);
    let pct = |p: &str| match (v.eq_cells, v.percent_sign) {
        (_, true) => format!("'{p}%"),
        (true, false) => format!("'{p}'"),
        (false, false) => format!("'{p}"),
    };
    let values = [
        "5".to_owned(),
        "5".to_owned(),
        "1".to_owned(),
        "4".to_owned(),
        pct("80.0000"),
        "3".to_owned(),
        pct("60.0000"),
        pct("20.0000"),
        "1".to_owned(),
        "500".to_owned(),
        "253".to_owned(),
        "201".to_owned(),
        pct("50.6000"),
    ];
    text.push_str(&values[..fields].join(sep));
    text.push_str(nl);
    text.push_str(nl);
    let columns = "CLAVE_CASILLA,CLAVE_ACTA,ID_ESTADO,ESTADO,ID_MUNICIPIO,MUNICIPIO,SECCION,\
        ID_CASILLA,TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,TOTAL_BOLETAS_SOBRANTES,\
        TOTAL_PERSONAS_VOTARON,TOTAL_REP_PARTIDO_CI_VOTARON,TOTAL_VOTOS_SACADOS,PAN,PRI,C_PAN_PRI,\
        NO_REGISTRADAS,NULOS,TOTAL_VOTOS_ASENTADO,TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,\
        REPRESENTANTES_PP_CI,OBSERVACIONES,CONTABILIZADA,MECANISMOS_TRASLADO,CODIGO_INTEGRIDAD,\
        FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,FECHA_HORA_VERIFICACION,ORIGEN,DIGITALIZACION,\
        TIPO_DOCUMENTO";
    let columns = if v.ine2019_columns {
        columns
            .replace("TOTAL_VOTOS_CALCULADO,", "TOTAL_VOTOS,")
            .replace("TOTAL_BOLETAS_SOBRANTES,", "NUM_BOLETAS_SOBRANTES,")
            .replace("TOTAL_PERSONAS_VOTARON,", "TOTAL_CIUDADANOS_VOTARON,")
    } else if v.iecm_columns {
        columns
            .replace("TOTAL_VOTOS_CALCULADO,", "TOTAL_VOTOS_CALCULADOS,")
            .replace("TOTAL_PERSONAS_VOTARON,", "PERSONAS_VOTARON,")
            .replace("MECANISMOS_TRASLADO,", "MECANISMO_TRASLADO,")
            .replace("TOTAL_VOTOS_SACADOS,", "")
    } else if v.party_aliases {
        columns.replace(",PRI,C_PAN_PRI,", ",MOR,PAN-MORENA,")
    } else {
        columns.to_owned()
    };
    text.push_str(&columns.replace(',', sep));
    text.push_str(nl);
    let rows: [GeneratedRow; 6] = [
        ("B", ["100", "50", "5", "1", "4"], "160", "300", "", "1"),
        ("S", ["30", "20", "0", "0", "2"], "52", "0", "", "1"),
        (
            "C",
            ["Sin dato", "40", "0", "0", "1"],
            "41",
            "200",
            "ALGÚN CAMPO ILEGIBLE O SIN DATO",
            "1",
        ),
        (
            "B",
            ["-", "-", "-", "-", "-"],
            "-",
            "250",
            "SIN ACTA POR PAQUETE NO ENTREGADO",
            "0",
        ),
        (
            "",
            ["-", "-", "-", "-", "-"],
            "-",
            "-",
            "FUERA DE CATÁLOGO",
            "-",
        ),
        ("E", ["", "", "", "", ""], "", "180", "", ""),
    ];
    let observation = |obs: &str| {
        if !v.list_observations {
            return obs.to_owned();
        }
        quoted(match obs {
            "" => "--",
            "ALGÚN CAMPO ILEGIBLE O SIN DATO" => "['Ilegible', 'Sin dato']",
            "SIN ACTA POR PAQUETE NO ENTREGADO" => "Sin Acta(3)",
            other => other,
        })
    };
    for (i, (tipo, votes, calc, lista, obs, contab)) in rows.iter().enumerate() {
        let key = if i % 2 == 0 {
            format!("'26000{i}{tipo}0100")
        } else {
            format!("'26000{i}{tipo}0100'")
        };
        let acta = format!("'26000{i}{tipo}010005");
        let mut cells: Vec<String> = vec![
            key,
            acta,
            cell("26"),
            "SONORA".into(),
            cell("018"),
            "NAVOJOA".into(),
            cell(&format!("000{i}")),
            cell("01"),
            (*tipo).into(),
            "0".into(),
            "1".into(),
            "5".into(),
            "10".into(),
            (*calc).into(),
            "0".into(),
        ];
        if !v.iecm_columns {
            cells.push((*calc).into());
        }
        cells.extend(votes.iter().map(|v| cell(v)));
        cells.extend([
            (*calc).into(),
            (*calc).into(),
            cell(lista),
            "4".into(),
            observation(obs),
            (*contab).into(),
            "D".into(),
            "ab12".into(),
            format!("\"{}\"", date(&format!("{}1", i % 4 + 1))),
            date(&format!("{}2", i % 4 + 1)),
            date(&format!("{}3", i % 4 + 1)),
            "CASILLA".into(),
            "MOVIL".into(),
            "\"ACTA PREP\"".into(),
        ]);
        text.push_str(&cells.join(sep));
        text.push_str(nl);
    }
    let mut bytes = if v.bom {
        b"\xEF\xBB\xBF".to_vec()
    } else {
        Vec::new()
    };
    if v.latin1 {
        bytes.extend_from_slice(&encoding_rs::WINDOWS_1252.encode(&text).0);
    } else {
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes
}

#[test]
fn every_variant_is_read_and_reproduces_its_summary() {
    let one = |set: fn(&mut Variant)| {
        let mut v = Variant::default();
        set(&mut v);
        v
    };
    let variants = [
        ("plain", Variant::default()),
        (
            "latin-1 with |",
            one(|v| {
                v.latin1 = true;
                v.pipe = true;
            }),
        ),
        ("=\"…\" cells", one(|v| v.eq_cells = true)),
        ("CRLF", one(|v| v.crlf = true)),
        ("BOM", one(|v| v.bom = true)),
        ("quoted title and corte", one(|v| v.quoted_preamble = true)),
        ("other spellings", one(|v| v.other_spellings = true)),
        ("ISO dates", one(|v| v.iso_dates = true)),
        ("sep=, line", one(|v| v.sep_line = true)),
        (
            "sep=| line",
            one(|v| {
                v.sep_line = true;
                v.pipe = true;
            }),
        ),
        ("CR line ends", one(|v| v.cr_only = true)),
        ("corte year first", one(|v| v.year_first_corte = true)),
        ("corte unpadded", one(|v| v.unpadded_corte = true)),
        ("percent sign", one(|v| v.percent_sign = true)),
        (
            "percent sign with |",
            one(|v| {
                v.percent_sign = true;
                v.pipe = true;
            }),
        ),
        ("ten summary fields", one(|v| v.ten_fields = true)),
        ("INE 2019 columns", one(|v| v.ine2019_columns = true)),
        ("IECM 2024 columns", one(|v| v.iecm_columns = true)),
        ("list observations", one(|v| v.list_observations = true)),
        ("date variants", one(|v| v.date_variants = true)),
        (
            "ISO date variants",
            one(|v| {
                v.date_variants = true;
                v.iso_dates = true;
            }),
        ),
        ("party aliases", one(|v| v.party_aliases = true)),
        (
            "all at once",
            Variant {
                latin1: true,
                pipe: true,
                eq_cells: true,
                crlf: false,
                bom: false,
                quoted_preamble: false,
                other_spellings: true,
                iso_dates: true,
                sep_line: true,
                cr_only: true,
                year_first_corte: true,
                unpadded_corte: false,
                percent_sign: true,
                ten_fields: false,
                ine2019_columns: true,
                iecm_columns: false,
                list_observations: true,
                date_variants: true,
                party_aliases: false,
            },
        ),
    ];
    for (what, v) in variants {
        let r = inspect_bytes("GEN_GOB_2021.csv", &generated(v))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_all_equal(&r, if v.ten_fields { 10 } else { 13 });
        assert_eq!(r.rows, 6, "{what}");
        assert_eq!(r.anomaly_count, 0, "{what}: {:?}", r.anomalies);
        let encoding = match (v.latin1, v.bom) {
            (true, _) => "Latin-1",
            (false, true) => "UTF-8 with BOM",
            (false, false) => "UTF-8",
        };
        assert_eq!(r.encoding, encoding, "{what}");
        assert_eq!(r.separator, if v.pipe { '|' } else { ',' }, "{what}");
        let (title, corte, utc) = if v.year_first_corte {
            (
                "GUBERNATURA",
                "2021/06/01 18:52 (UTC-5)",
                "2021-06-01T23:52:00Z",
            )
        } else if v.unpadded_corte {
            (
                "GUBERNATURA",
                "1/6/2021 18:52(UTC-5)",
                "2021-06-01T23:52:00Z",
            )
        } else if v.quoted_preamble {
            (
                "GUBERNATURA, ELECCIÓN ORDINARIA",
                "07/06/2021 13:19 (UTC-7)",
                "2021-06-07T20:19:00Z",
            )
        } else {
            (
                "GUBERNATURA",
                "01/06/2021 18:52 (UTC-5)",
                "2021-06-01T23:52:00Z",
            )
        };
        assert_eq!(r.title.as_deref(), Some(title), "{what}");
        let c = r.corte.as_ref().unwrap();
        assert_eq!(
            (c.written.as_str(), c.utc.as_deref()),
            (corte, Some(utc)),
            "{what}"
        );
        let pan = r.votes.iter().find(|v| v.column == "PAN").unwrap();
        assert_eq!(
            (pan.votes, pan.missing),
            (130, 1),
            "{what}: Sin dato is not zero"
        );
        let coalition_name = if v.party_aliases {
            "PAN-MORENA"
        } else {
            "C_PAN_PRI"
        };
        let coalition = r.votes.iter().find(|v| v.column == coalition_name).unwrap();
        assert_eq!(coalition.kind, reader::VoteKind::Coalition, "{what}");
        let illegible = if v.list_observations {
            "['Ilegible', 'Sin dato']"
        } else {
            "ALGÚN CAMPO ILEGIBLE O SIN DATO"
        };
        assert!(
            r.by_observation
                .iter()
                .any(|o| o.observation == illegible && o.inconsistency),
            "{what}: {:?}",
            r.by_observation
        );
        assert_eq!(
            r.latest.get("FECHA_HORA_CAPTURA").map(String::as_str),
            Some("2021-06-04 22:00:00"),
            "{what}"
        );
    }
}

#[test]
fn a_changed_vote_and_a_removed_row_are_named() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    // One more vote for PAN in the first acta, its total kept true to its cells.
    let changed = good.replacen(",100,50,5,1,4,160,160,", ",101,50,5,1,4,160,161,", 1);
    assert_ne!(changed, good);
    let r = inspect_bytes("x.csv", changed.as_bytes()).unwrap();
    let differing: Vec<_> = r.differences().map(|c| c.field).collect();
    assert_eq!(
        differing,
        [
            "TOTAL_VOTOS_C_CS",
            "TOTAL_VOTOS_S_CS",
            "PORCENTAJE_PARTICIPACION_CIUDADANA"
        ]
    );

    let lines: Vec<&str> = good.lines().collect();
    let removed: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lines.len() - 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let r = inspect_bytes("x.csv", removed.as_bytes()).unwrap();
    assert!(!r.consistent);
    assert!(
        r.differences()
            .any(|c| c.field == "ACTAS_NO_CONTABILIZADAS")
    );
}

#[test]
fn anomalies_are_reported_with_their_line() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let bad = good
        .replacen(",100,50,5,1,4,160,160,", ",100,50,5,1,4,160,170,", 1)
        .replacen(",30,20,0,", ",30,veinte,0,", 1);
    let r = inspect_bytes("x.csv", bad.as_bytes()).unwrap();
    let lines: Vec<(u64, Option<&str>)> = r
        .anomalies
        .iter()
        .map(|a| (a.line, a.column.as_deref()))
        .collect();
    // The unreadable PRI cell is left out of the sum, so that acta's total disagrees too.
    assert_eq!(
        lines,
        [
            (8, Some("TOTAL_VOTOS_CALCULADO")),
            (9, Some("PRI")),
            (9, Some("TOTAL_VOTOS_CALCULADO"))
        ],
        "{:?}",
        r.anomalies
    );
}

#[test]
fn unreadable_files_name_the_file_line_and_column() {
    let err = inspect_bytes("a.csv", b"hello\nworld\n").unwrap_err();
    assert_eq!(err.file, "a.csv");
    assert!(err.to_string().contains("not a PREP results CSV"), "{err}");

    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let no_lista = good.replacen("LISTA_NOMINAL,", "LISTA,", 1);
    let err = inspect_bytes("b.csv", no_lista.as_bytes()).unwrap_err();
    assert_eq!(
        (err.line, err.column.as_deref()),
        (7, Some("LISTA_NOMINAL")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("b.csv, line 7, column LISTA_NOMINAL:"),
        "{err}"
    );

    let cut: String = good
        .lines()
        .take(9)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "'1,'2,26\n";
    // A cut row is an anomaly at its line, not counted; the rows before it are read.
    let r = inspect_bytes("c.csv", cut.as_bytes()).unwrap();
    assert_eq!((r.rows, r.unread_rows), (2, 1));
    assert_eq!(cut_row_line(&r), Some(10), "{:#?}", r.anomalies);
    // Alone, or with fewer rows that fit than do not, such rows are no rows of this header.
    let alone: String = good
        .lines()
        .take(7)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "'1,'2,26\n";
    let err = inspect_bytes("c.csv", alone.as_bytes()).unwrap_err();
    assert_eq!(err.line, 8, "{err}");
    assert!(
        err.what
            .starts_with("1 of its 1 rows have a number of cells"),
        "{err}"
    );
}

/// The line of the first row whose cells do not fit the header, among a report's anomalies.
fn cut_row_line(r: &FileReport) -> Option<u64> {
    r.anomalies
        .iter()
        .find(|a| a.column.is_none() && a.what.contains("cells where the header has"))
        .map(|a| a.line)
}

#[test]
fn diputaciones_expect_the_rp_acta_of_each_special_casilla() {
    let dip = diputaciones();
    // The special casilla has one row (mayoría relativa): its RP acta is expected too.
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", dip.as_bytes()).unwrap();
    assert_all_equal(&r, 13);
    // The same summary is wrong for a governor election, which has no RP actas.
    let r = inspect_bytes(
        "GEN_GOB_2021.csv",
        dip.replacen("DIPUTACIONES LOCALES", "GUBERNATURA", 1)
            .as_bytes(),
    )
    .unwrap();
    assert!(r.differences().any(|c| c.field == "ACTAS_ESPERADAS"));

    // A file that lists the RP acta as a row of its own is not given another one.
    let special = dip
        .lines()
        .find(|l| l.starts_with("'260001S0100'"))
        .unwrap();
    let rp = special
        .replacen("'260001S010005", "'260001S010006", 1)
        .replacen(",52,52,0,4,,1,D,", ",52,52,0,4,,,D,", 1);
    assert_ne!(rp, special);
    let listed = dip.replacen(special, &format!("{special}\n{rp}"), 1);
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", listed.as_bytes()).unwrap();
    assert_eq!(r.rows, 7);
    assert_all_equal(&r, 13);
}

/// The cuts of real files, each consistent under its institute's rules
/// (`../shared/fixtures/derived/PROVENANCE.md`).
const DERIVED: &[&str] = &[
    "camp_fuera_catalogo_contabilizada0.csv",
    "ine2023_todos_los_campos_vacios.csv",
    "qroo2019_dip_special_single_row.csv",
    "ine2019_pue_TOTAL_VOTOS_column.csv",
    "ine2019_pue_thousands_and_percent_summary.csv",
    "iee_pue2018_dash_means_not_captured.csv",
    "ieeq2018_sin_acta_empty_contabilizada.csv",
    "ieec2021_participation_without_specials_during_operation.csv",
];

/// Where the summary values line of a CSV is (`start..end`), and its separator.
fn summary_values(bytes: &[u8]) -> (usize, usize, u8) {
    let header = bytes
        .windows(15)
        .position(|w| w == b"ACTAS_ESPERADAS")
        .expect("a summary header");
    let line_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(bytes.len(), |p| from + p)
    };
    let header_end = line_end(header);
    let sep = if bytes[header..header_end].contains(&b'|') {
        b'|'
    } else {
        b','
    };
    let start = if bytes[header_end..].starts_with(b"\r\n") {
        header_end + 2
    } else {
        header_end + 1
    };
    (start, line_end(start), sep)
}

/// `cell` with its number one more (or one less) in its last decimal place, the rest of the
/// cell (apostrophes, `%`) as written.
fn off_by_one(cell: &[u8], down: bool) -> Option<Vec<u8>> {
    let first = cell.iter().position(u8::is_ascii_digit)?;
    let last = cell.iter().rposition(u8::is_ascii_digit)? + 1;
    let n = cell::Decimal::parse(&cell[first..last])?.step(down)?;
    Some([&cell[..first], n.to_string().as_bytes(), &cell[last..]].concat())
}

#[test]
fn a_declared_value_off_by_one_is_different_under_every_definition() {
    let mut cuts = 0;
    for name in DERIVED {
        let bytes = std::fs::read(derived(name)).unwrap();
        let original = inspect_bytes(name, &bytes).unwrap();
        assert_all_equal(&original, 13);
        let (start, end, sep) = summary_values(&bytes);
        let cells: Vec<&[u8]> = bytes[start..end].split(|&b| b == sep).collect();
        assert_eq!(cells.len(), 13, "{name}");
        for (i, cell) in cells.iter().enumerate() {
            for down in [false, true] {
                let Some(changed) = off_by_one(cell, down) else {
                    continue;
                };
                let mut line = cells.clone();
                line[i] = &changed;
                let cut = [&bytes[..start], &line.join(&[sep][..]), &bytes[end..]].concat();
                let r = inspect_bytes(name, &cut).unwrap();
                let check = &r.summary[i];
                let what = format!(
                    "{name}: {} written {:?} instead of {:?}",
                    check.field,
                    String::from_utf8_lossy(&changed),
                    String::from_utf8_lossy(cell)
                );
                // A percentage one ten-thousandth low is what `percent-one-below` admits, and
                // only it (IEEPCO 2022's arithmetic).
                let one_below = down && check.field.starts_with("PORCENTAJE_");
                if one_below {
                    assert!(check.equal, "{what}: {:#?}", r.summary);
                    assert!(
                        check.variant.contains("percent-one-below"),
                        "{what}: {check:#?}"
                    );
                } else {
                    assert!(!check.equal && !r.consistent, "{what}: {:#?}", r.summary);
                }
                for reglas in definitions::REGLAS {
                    if one_below && reglas.name == "ieepco-2022" {
                        continue;
                    }
                    let r = inspect_csv(name, &cut[..], Some(reglas), &mut |_| {}).unwrap();
                    assert!(!r.consistent, "{what}: explained by {}", reglas.name);
                }
                cuts += 1;
            }
        }
    }
    assert!(cuts >= DERIVED.len() * 13, "only {cuts} cuts");
}

#[test]
fn a_placeholder_corte_states_no_time() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let before = good.replacen("01/06/2021 18:52 (UTC-5)", "DD/MM/AAAA HH:MM (UTC-6)", 1);
    assert_ne!(before, good);
    let r = inspect_bytes("GEN_GOB_2021.csv", before.as_bytes()).unwrap();
    assert_eq!(r.title.as_deref(), Some("GUBERNATURA"));
    let corte = r.corte.as_ref().unwrap();
    assert_eq!(corte.written, "DD/MM/AAAA HH:MM (UTC-6)");
    assert_eq!((corte.local.as_deref(), corte.utc.as_deref()), (None, None));
    assert_all_equal(&r, 13);
}

#[test]
fn a_computos_file_is_refused_by_name_with_its_line_and_column() {
    let computos = "CÓMPUTOS DISTRITALES\n\
        10/06/2018 12:00 (UTC-5)\n\
        ACTAS_ESPERADAS,ACTAS_COMPUTADAS,PORCENTAJE_ACTAS_COMPUTADAS\n\
        1,1,100.0000\n\n\
        CLAVE_CASILLA,CLAVE_ACTA,TIPO_CASILLA,PAN,NO_REGISTRADOS,NULOS,LISTA_NOMINAL\n\
        '210001B0100,'210001B010005,B,1,0,0,500\n";
    let err = inspect_bytes("PUE_GOB_2018.csv", computos.as_bytes()).unwrap_err();
    assert_eq!(
        (err.line, err.column.as_deref()),
        (3, Some("ACTAS_COMPUTADAS")),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "PUE_GOB_2018.csv, line 3, column ACTAS_COMPUTADAS: a cómputos file, not PREP results"
        ),
        "{err}"
    );
}

#[test]
fn lines_ended_by_cr_alone_are_counted_in_errors() {
    let good = generated(Variant {
        cr_only: true,
        ..Variant::default()
    });
    assert!(!good.contains(&b'\n'));
    let lines = good
        .split(|&b| b == b'\r')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 11, "title, corte, 2 summary lines, header, 6 rows");
    // Blank lines after the corte and the summary: the header is on line 7, the rows on 8 to 13.
    let cut = [&good[..], b"'1,'2,26\r"].concat();
    let r = inspect_bytes("GEN_GOB_2021.csv", &cut).unwrap();
    assert_eq!(cut_row_line(&r), Some(14), "{:#?}", r.anomalies);
    let no_lista = String::from_utf8(good)
        .unwrap()
        .replacen("LISTA_NOMINAL,", "LISTA,", 1);
    let err = inspect_bytes("GEN_GOB_2021.csv", no_lista.as_bytes()).unwrap_err();
    assert_eq!(
        (err.line, err.column.as_deref()),
        (7, Some("LISTA_NOMINAL"))
    );
}

/// The generated file as a diputaciones election, its summary true under the standard rules
/// with the special casilla's RP acta expected (IEEC Campeche 2021).
fn diputaciones() -> String {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let dip = good
        .replacen("GUBERNATURA", "DIPUTACIONES LOCALES", 1)
        .replacen(
            "5,5,1,4,'80.0000,3,'60.0000,'20.0000,",
            "6,5,1,4,'66.6666,3,'50.0000,'16.6666,",
            1,
        );
    assert_ne!(dip, good);
    dip
}

#[test]
fn ieec_counts_the_rp_actas_it_does_not_list_and_their_votes_at_the_last_corte() {
    // One unlisted RP acta counted (captured and counted one more), its 47 votes in
    // TOTAL_VOTOS_C_CS, the participation over them, and inconsistencies among actas not
    // counted only: IEEC Campeche 2021 at its last corte.
    let last = diputaciones().replacen(
        "6,5,1,4,'66.6666,3,'50.0000,'16.6666,1,500,253,201,'50.6000",
        "6,5,1,5,'83.3333,4,'66.6666,'0.0000,1,500,300,201,'60.0000",
        1,
    );
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", last.as_bytes()).unwrap();
    assert_all_equal(&r, 13);
    let defs = r.definitions.as_ref().unwrap();
    assert_eq!(defs.explained_by, ["ieec-2021"]);
    let field = |name: &str| r.summary.iter().find(|c| c.field == name).unwrap();
    assert_eq!(field("ACTAS_CONTABILIZADAS").variant, "rp-expected");
    assert_eq!(field("TOTAL_VOTOS_C_CS").variant, "total-with-rp-votes");
    assert_eq!(field("TOTAL_VOTOS_C_CS").recomputed, "≥ 253");
    assert_eq!(
        field("PORCENTAJE_PARTICIPACION_CIUDADANA").variant,
        "participation-with-specials + total-with-rp-votes"
    );

    // Two RP actas counted where the file has one special casilla: no definition gives it.
    let two = last.replacen(",5,'83.3333,4,'66.6666,", ",6,'100.0000,5,'83.3333,", 1);
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", two.as_bytes()).unwrap();
    assert!(!r.consistent);
    // Votes beyond the rows with a participation over the rows only: contradictory.
    let votes_only = last.replacen(",'60.0000", ",'50.6000", 1);
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", votes_only.as_bytes()).unwrap();
    assert!(!r.consistent, "{:#?}", r.summary);
    // The same line pinned to an institute that expects no RP acta.
    let r = inspect_csv(
        "GEN_DIP_LOC_2021.csv",
        last.as_bytes(),
        definitions::reglas("ieqroo-2019"),
        &mut |_| {},
    )
    .unwrap();
    let differing: Vec<&str> = r.differences().map(|c| c.field).collect();
    assert!(differing.contains(&"ACTAS_ESPERADAS"), "{differing:?}");
}

#[test]
fn juntas_may_write_zero_votes_without_special_casillas() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let zero = good.replacen(",253,201,", ",253,0,", 1);
    let juntas = zero.replacen("GUBERNATURA", "JUNTAS MUNICIPALES", 1);
    let r = inspect_bytes("CAMP_JUNTAS_2021.csv", juntas.as_bytes()).unwrap();
    assert_all_equal(&r, 13);
    let s_cs = r
        .summary
        .iter()
        .find(|c| c.field == "TOTAL_VOTOS_S_CS")
        .unwrap();
    assert_eq!(s_cs.variant, "without-specials-zero-in-juntas");
    assert_eq!(s_cs.seen_in, ["IEEC Campeche 2021"]);
    // In any other election the zero contradicts the rows.
    let r = inspect_bytes("GEN_GOB_2021.csv", zero.as_bytes()).unwrap();
    let differing: Vec<&str> = r.differences().map(|c| c.field).collect();
    assert_eq!(differing, ["TOTAL_VOTOS_S_CS"]);
}

#[test]
fn a_file_of_registered_actas_only_is_checked_over_its_declared_catalogue() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    // Without the acta not yet captured, and a catalogue of 7 actas.
    let not_captured = good
        .lines()
        .find(|l| l.starts_with("'260005E0100'"))
        .unwrap();
    let registered = good.replacen(&format!("{not_captured}\n"), "", 1).replacen(
        "5,5,1,4,'80.0000,3,'60.0000,'20.0000,",
        "7,5,1,4,'57.1428,3,'42.8571,'14.2857,",
        1,
    );
    let r = inspect_bytes("GEN_GOB_2021.csv", registered.as_bytes()).unwrap();
    assert_all_equal(&r, 13);
    let esperadas = &r.summary[0];
    assert_eq!(
        (esperadas.variant.as_str(), esperadas.recomputed.as_str()),
        ("registered-only", "≥ 4")
    );
    // The same catalogue with percentages over the actas listed: contradictory.
    let listed = registered.replacen(
        ",'57.1428,3,'42.8571,'14.2857,",
        ",'100.0000,3,'75.0000,'25.0000,",
        1,
    );
    let r = inspect_bytes("GEN_GOB_2021.csv", listed.as_bytes()).unwrap();
    let differing: Vec<&str> = r.differences().map(|c| c.field).collect();
    assert_eq!(differing, ["ACTAS_ESPERADAS"]);
}
