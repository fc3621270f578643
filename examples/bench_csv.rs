//! Writes a national-size PREP results CSV for the benchmarks: the real line layout
//! (FORMATS.md), INE's 2024 columns (parties, coalitions, an independent candidate,
//! `COTEJADA`), the usual mix of counted, not counted, out-of-catalogue and not yet captured
//! actas with their markers and observations, and a summary line true to the rows.
//!
//! Usage: `bench_csv <out.csv> <actas>`

use std::io::Write as _;

const PARTIES: &[&str] = &[
    "PAN",
    "PRI",
    "PRD",
    "PVEM",
    "PT",
    "MC",
    "MORENA",
    "PAN_PRI_PRD",
    "PAN_PRI",
    "PAN_PRD",
    "PRI_PRD",
    "PVEM_PT_MORENA",
    "PVEM_PT",
    "PVEM_MORENA",
    "PT_MORENA",
    "CAND_IND_1",
];

#[derive(Default)]
struct Summary {
    esperadas: u64,
    registradas: u64,
    fuera: u64,
    contabilizadas: u64,
    no_contabilizadas: u64,
    inconsistencias: u64,
    lista: u64,
    c_cs: u64,
    s_cs: u64,
}

fn pct(n: u64, d: u64) -> String {
    let units = if d == 0 {
        0
    } else {
        u128::from(n) * 1_000_000 / u128::from(d)
    };
    format!("{}.{:04}", units / 10_000, units % 10_000)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, actas] = args.as_slice() else {
        return Err("usage: bench_csv <out.csv> <actas>".into());
    };
    let actas: u64 = actas.parse()?;
    let mut rng = fastrand::Rng::with_seed(2024);
    let mut rows = String::with_capacity(actas as usize * 420);
    let mut s = Summary::default();
    for i in 0..actas {
        let seccion = i / 4 + 1;
        let tipo = match rng.u32(0..1000) {
            0..=399 => "B",
            400..=939 => "C",
            940..=989 => "E",
            _ => "S",
        };
        let kind = rng.u32(0..1000);
        // 0..850 counted; 850..870 counted with an illegible field; 870..970 not counted;
        // 970..972 out of the catalogue; the rest not yet captured.
        let (contab, obs) = match kind {
            0..=849 => ("1", ""),
            850..=869 => ("1", "ALGÚN CAMPO ILEGIBLE O SIN DATO"),
            870..=969 => ("0", "SIN ACTA POR PAQUETE NO ENTREGADO"),
            970..=971 => ("-", "FUERA DE CATÁLOGO"),
            _ => ("", ""),
        };
        let lista = if tipo == "S" { 0 } else { rng.u64(300..750) };
        let representantes = rng.u64(10..30);
        let base = if lista == 0 { 600 } else { lista };
        let mut votes = Vec::with_capacity(PARTIES.len() + 2);
        let mut total = 0;
        let captured = contab == "1";
        for p in 0..PARTIES.len() + 2 {
            let v = if !captured {
                None
            } else if obs.is_empty() || p != 3 {
                // At most about the lista nominal in all, about half of it on average.
                let weight = [90, 60, 20, 25, 30, 40, 160][p % 7];
                let v = rng.u64(0..=base * weight / 1100);
                total += v;
                Some(v)
            } else {
                None
            };
            votes.push(v);
        }
        match contab {
            "1" => {
                s.esperadas += 1;
                s.registradas += 1;
                s.contabilizadas += 1;
                s.lista += lista;
                s.c_cs += total;
                if tipo != "S" {
                    s.s_cs += total;
                }
                if !obs.is_empty() {
                    s.inconsistencias += 1;
                }
            }
            "0" => {
                s.esperadas += 1;
                s.registradas += 1;
                s.no_contabilizadas += 1;
            }
            "-" => {
                s.registradas += 1;
                s.fuera += 1;
            }
            _ => s.esperadas += 1,
        }
        let marker = if contab.is_empty() { "" } else { "-" };
        let cell = |v: Option<u64>| match v {
            Some(v) => v.to_string(),
            None if captured => "Sin dato".to_owned(),
            None => marker.to_owned(),
        };
        let clave = format!("'{:02}{i:06}{tipo}0100", i % 32 + 1);
        rows.push_str(&format!(
            "{clave},{clave}02,{},CIUDAD DE MÉXICO,{},DISTRITO {:02},{:04},01,{tipo},00,1,2,{},{},{},{},",
            i % 32 + 1,
            i % 300 + 1,
            i % 300 + 1,
            seccion % 10_000,
            if captured { (lista / 3).to_string() } else { marker.to_owned() },
            if captured { total.to_string() } else { marker.to_owned() },
            if captured { "0" } else { marker },
            if captured { total.to_string() } else { marker.to_owned() },
        ));
        for v in &votes {
            rows.push_str(&cell(*v));
            rows.push(',');
        }
        let t = if captured {
            total.to_string()
        } else {
            marker.to_owned()
        };
        let sha: String = (0..64)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(0..16)]))
            .collect();
        rows.push_str(&format!(
            "{t},{t},{lista},{representantes},{obs},{contab},D,{sha},\"02/06/2024 {:02}:{:02}:00\",\"03/06/2024 {:02}:{:02}:10\",\"03/06/2024 {:02}:{:02}:20\",CASILLA,MOVIL,\"ACTA PREP\",1\n",
            18 + rng.u32(0..6),
            rng.u32(0..60),
            rng.u32(0..20),
            rng.u32(0..60),
            rng.u32(0..20),
            rng.u32(0..60),
        ));
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(f, "PRESIDENCIA DE LA REPÚBLICA")?;
    writeln!(f, "03/06/2024 20:05 (UTC-6)")?;
    writeln!(f)?;
    writeln!(
        f,
        "ACTAS_ESPERADAS,ACTAS_REGISTRADAS,ACTAS_FUERA_CATALOGO,ACTAS_CAPTURADAS,\
         PORCENTAJE_ACTAS_CAPTURADAS,ACTAS_CONTABILIZADAS,PORCENTAJE_ACTAS_CONTABILIZADAS,\
         PORCENTAJE_ACTAS_INCONSISTENCIAS,ACTAS_NO_CONTABILIZADAS,\
         LISTA_NOMINAL_ACTAS_CONTABILIZADAS,TOTAL_VOTOS_C_CS,TOTAL_VOTOS_S_CS,\
         PORCENTAJE_PARTICIPACION_CIUDADANA"
    )?;
    let capturadas = s.contabilizadas + s.no_contabilizadas;
    writeln!(
        f,
        "{},{},{},{},'{}',{},'{}','{}',{},{},{},{},'{}'",
        s.esperadas,
        s.registradas,
        s.fuera,
        capturadas,
        pct(capturadas, s.esperadas),
        s.contabilizadas,
        pct(s.contabilizadas, s.esperadas),
        pct(s.inconsistencias, s.esperadas),
        s.no_contabilizadas,
        s.lista,
        s.c_cs,
        s.s_cs,
        pct(s.c_cs, s.lista),
    )?;
    writeln!(f)?;
    writeln!(
        f,
        "CLAVE_CASILLA,CLAVE_ACTA,ID_ENTIDAD,ENTIDAD,ID_DISTRITO_FEDERAL,DISTRITO_FEDERAL,SECCION,\
         ID_CASILLA,TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,\
         TOTAL_BOLETAS_SOBRANTES,TOTAL_PERSONAS_VOTARON,TOTAL_REP_PARTIDO_CI_VOTARON,\
         TOTAL_VOTOS_SACADOS,{},NO_REGISTRADAS,NULOS,TOTAL_VOTOS_ASENTADO,\
         TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,REPRESENTANTES_PP_CI,OBSERVACIONES,CONTABILIZADA,\
         MECANISMOS_TRASLADO,SHA,FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,FECHA_HORA_VERIFICACION,\
         ORIGEN,DIGITALIZACION,TIPO_DOCUMENTO,COTEJADA",
        PARTIES.join(",")
    )?;
    f.write_all(rows.as_bytes())?;
    f.flush()?;
    Ok(())
}
