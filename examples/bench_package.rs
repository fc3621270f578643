//! Writes a site package of realistic size for the benchmarks: the site's HTML, CSS and JS,
//! `json/main.json`, one JSON per district and per municipality, and per election a CSV with
//! one row per acta in the real column layout (FORMATS.md).
//!
//! Usage: `bench_package <out.zip> <corte YYYYMMDD_HHMM> <actas per election> <elections>`

use std::fmt::Write as _;
use std::io::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, corte, actas, elections] = args.as_slice() else {
        return Err(
            "usage: bench_package <out.zip> <corte YYYYMMDD_HHMM> <actas> <elections>".into(),
        );
    };
    let actas: usize = actas.parse()?;
    let elections: usize = elections.parse()?;
    let names = ["GUB", "DIP_LOC", "AYUN", "JUNTAS", "PRES", "DIP_FED", "SEN"];
    let parties = [
        "PAN",
        "PRI",
        "PRD",
        "PT",
        "PVEM",
        "MC",
        "MORENA",
        "C_PAN_PRI_PRD",
        "C_PT_MORENA",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(out)?);
    let opts = zip::write::SimpleFileOptions::default();
    let put = |zip: &mut zip::ZipWriter<std::fs::File>,
               path: &str,
               bytes: &[u8]|
     -> zip::result::ZipResult<()> {
        zip.start_file(path, opts)?;
        zip.write_all(bytes)?;
        Ok(())
    };
    // The page a PREP site opens with: a header, a results table per party, a footer.
    let mut index = String::from(
        "<!DOCTYPE html><html lang=\"es\"><head><meta charset=\"utf-8\"><title>PREP</title>\
         <link rel=\"stylesheet\" href=\"css/prep.css\"></head><body><header><h1>Resultados \
         Electorales Preliminares</h1><p>Corte: <span id=\"corte\"></span></p></header><table>",
    );
    for p in parties {
        let _ = write!(
            index,
            "<tr class=\"partido\"><td><img src=\"img/{p}.svg\" alt=\"{p}\"></td><td id=\"votos-{p}\"></td>\
             <td id=\"porcentaje-{p}\"></td><td><div class=\"barra\" id=\"barra-{p}\"></div></td></tr>"
        );
    }
    index.push_str("</table><footer>Los datos son preliminares.</footer><script src=\"js/prep.js\"></script></body></html>");
    put(&mut zip, "index.html", index.as_bytes())?;
    put(
        &mut zip,
        "css/prep.css",
        "body{font-family:sans-serif}\n".repeat(400).as_bytes(),
    )?;
    put(
        &mut zip,
        "js/prep.js",
        "function f(){return fetch('json/main.json')}\n"
            .repeat(2000)
            .as_bytes(),
    )?;
    let districts = (actas / 200).max(1);
    // main.json as PREP sites have it: the corte, the totals, and votes per party per district.
    let mut main = format!("{{\"corte\":\"{corte}\",\"actas_esperadas\":{actas},\"distritos\":[");
    for d in 1..=districts {
        let _ = write!(
            main,
            "{}{{\"distrito\":{d},\"votos\":{{",
            if d > 1 { "," } else { "" }
        );
        for (i, p) in parties.iter().enumerate() {
            let _ = write!(
                main,
                "{}\"{p}\":{}",
                if i > 0 { "," } else { "" },
                rng.u32(0..90_000)
            );
        }
        main.push_str("}}");
    }
    main.push_str("]}");
    put(&mut zip, "json/main.json", main.as_bytes())?;
    let municipalities = (actas / 70).max(1);
    for (kind, count) in [("distrito", districts), ("municipio", municipalities)] {
        for n in 1..=count {
            let mut json = format!("{{\"{kind}\":{n},\"corte\":\"{corte}\",\"votos\":{{");
            for (i, p) in parties.iter().enumerate() {
                let _ = write!(
                    json,
                    "{}\"{p}\":{}",
                    if i > 0 { "," } else { "" },
                    rng.u32(0..90_000)
                );
            }
            json.push_str("}}");
            put(
                &mut zip,
                &format!("json/{kind}/{n:04}.json"),
                json.as_bytes(),
            )?;
        }
    }
    for e in names.iter().take(elections) {
        let mut csv = format!(
            "GUBERNATURA\n01/06/2024 20:00 (UTC-6)\nACTAS_ESPERADAS\n{actas}\n\nCLAVE_CASILLA,CLAVE_ACTA,ID_ENTIDAD,ENTIDAD,ID_DISTRITO,DISTRITO,SECCION,ID_CASILLA,TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,TOTAL_BOLETAS_SOBRANTES,TOTAL_PERSONAS_VOTARON,TOTAL_REP_PARTIDO_CI_VOTARON,TOTAL_VOTOS_SACADOS,{},NO_REGISTRADOS,NULOS,TOTAL_VOTOS_ASENTADO,TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,REPRESENTANTES_PP_CI,OBSERVACIONES,CONTABILIZADA,MECANISMOS_TRASLADO,SHA,FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,FECHA_HORA_VERIFICACION,ORIGEN,DIGITALIZACION,TIPO_DOCUMENTO\n",
            parties.join(",")
        );
        for a in 0..actas {
            let _ = write!(
                csv,
                "'{:06}B0100,'{:06}B01002,26,ESTADO,{},DISTRITO {},{:04},1,B,0,2,2,{},{},0,{}",
                a,
                a,
                a % districts,
                a % districts,
                a / 3,
                rng.u32(0..300),
                rng.u32(0..500),
                rng.u32(0..500)
            );
            for _ in parties {
                let _ = write!(csv, ",{}", rng.u32(0..200));
            }
            let _ = writeln!(
                csv,
                ",0,{},{},{},{},4,,1,I,{:064x},\"02/06/2024 21:{:02}:00\",\"02/06/2024 21:{:02}:10\",\"02/06/2024 21:{:02}:20\",CATD,ESCANER,\"ACTA PREP\"",
                rng.u32(0..20),
                rng.u32(0..500),
                rng.u32(0..500),
                rng.u32(400..750),
                rng.u128(..),
                a % 60,
                a % 60,
                a % 60
            );
        }
        put(&mut zip, &format!("datos/ENT_{e}_2024.csv"), csv.as_bytes())?;
    }
    zip.finish()?;
    Ok(())
}
