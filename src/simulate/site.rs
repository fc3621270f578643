//! The site package of one corte: the publication site itself, in Spanish.
//!
//! The first package of a night is complete (HTML, CSS, JS, an image, `json/main.json`, one
//! JSON per district and municipality of each election, `csv/resumen.csv`) and its name
//! carries `_COMPLETO`, so a difusor replaces the live site with it; later ones carry only
//! what changes every corte (the JSON and the CSV) and are laid over the previous site.
//!
//! # Guarantees
//! - Self-contained: every file the page asks for is in the package; no request leaves it.
//! - The page shows the corte's date and time at the top (`#corte`), actas expected,
//!   captured and counted with their percentages, participation, votes per party and
//!   coalition with bars, and a drill-down by district and municipality.
//! - Its JavaScript re-reads `json/main.json` every two seconds and redraws the page when the
//!   corte changes.

use serde_json::{Value, json};

use super::acta::percent;
use super::data::{Area, Corte, PackError, Results, zip_of};
use super::election::Catalogue;

/// A name for the site package of `corte`; the first one says `_COMPLETO`.
pub(crate) fn package_name(catalogue: &Catalogue, corte: &Corte, complete: bool) -> String {
    let mark = if complete { "_COMPLETO" } else { "" };
    format!(
        "{}_PREP_SITIO{mark}_{}.zip",
        corte.stamp(),
        catalogue.entity.code
    )
}

/// The site package of `corte`, complete or only what changed: its name and bytes.
pub(crate) fn package(
    catalogue: &Catalogue,
    corte: &Corte,
    results: &[Results],
    complete: bool,
) -> Result<(String, Vec<u8>), PackError> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if complete {
        files.push(("index.html".into(), INDEX.as_bytes().to_vec()));
        files.push(("css/prep.css".into(), STYLE.as_bytes().to_vec()));
        files.push(("js/prep.js".into(), SCRIPT.as_bytes().to_vec()));
        files.push(("img/logo.svg".into(), LOGO.as_bytes().to_vec()));
    }
    let main = main_json(catalogue, corte, results);
    files.push(("json/main.json".into(), to_bytes(&main)));
    let columns = catalogue.ballot.vote_columns();
    let mut resumen = "ELECCION,CANDIDATURA,VOTOS\n".to_owned();
    for r in results {
        let code = r.election.code;
        for (d, area) in r.distritos.iter().enumerate() {
            let name = catalogue.distritos.get(d).map_or("", String::as_str);
            let doc = area_json(&columns, name, corte, area);
            files.push((
                format!("json/{code}/distrito/{}.json", d + 1),
                to_bytes(&doc),
            ));
        }
        for (m, area) in r.municipios.iter().enumerate() {
            let name = catalogue.municipios.get(m).map_or("", String::as_str);
            let doc = area_json(&columns, name, corte, area);
            files.push((
                format!("json/{code}/municipio/{}.json", m + 1),
                to_bytes(&doc),
            ));
        }
        for (column, votes) in columns.iter().zip(&r.total.votos) {
            resumen.push_str(&format!("{code},{column},{votes}\n"));
        }
    }
    files.push(("csv/resumen.csv".into(), resumen.into_bytes()));
    // The corte's time on every entry, as in the data package: the same seed must give the
    // same bytes whenever it runs.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(super::data::zip_time(corte.time));
    let bytes = zip_of(files, options)?;
    Ok((package_name(catalogue, corte, complete), bytes))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A vote column as the site names it: `PAN-PRI-PRD` for `C_PAN_PRI_PRD`.
fn label(column: &str) -> String {
    match column {
        "NO_REGISTRADOS" => "Candidaturas no registradas".to_owned(),
        "NULOS" => "Votos nulos".to_owned(),
        c => c.strip_prefix("C_").unwrap_or(c).replace('_', "-"),
    }
}

/// The figures of one area at `corte`, its votes named by `columns`.
fn area_json(columns: &[&str], name: &str, corte: &Corte, area: &Area) -> Value {
    let total: u64 = area.votos.iter().sum();
    let votos: Vec<Value> = columns
        .iter()
        .zip(&area.votos)
        .map(|(c, v)| {
            json!({
                "nombre": label(c),
                "coalicion": c.starts_with("C_"),
                "votos": v,
                "porcentaje": percent(*v, total),
            })
        })
        .collect();
    json!({
        "nombre": name,
        "corte": corte.line(),
        "actas_esperadas": area.esperadas,
        "actas_capturadas": area.capturadas,
        "porcentaje_capturadas": percent(area.capturadas, area.esperadas),
        "actas_contabilizadas": area.contabilizadas,
        "porcentaje_contabilizadas": percent(area.contabilizadas, area.esperadas),
        "lista_nominal": area.lista,
        "total_votos": total,
        "participacion": percent(total, area.lista),
        "votos": votos,
    })
}

/// `json/main.json`: the corte, and each election's figures and areas.
fn main_json(catalogue: &Catalogue, corte: &Corte, results: &[Results]) -> Value {
    let columns = catalogue.ballot.vote_columns();
    let elecciones: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut doc = area_json(&columns, &catalogue.entity.name, corte, &r.total);
            let areas = |names: &[String]| -> Vec<Value> {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| json!({"id": i + 1, "nombre": n}))
                    .collect()
            };
            if let Value::Object(o) = &mut doc {
                o.insert("clave".into(), r.election.code.into());
                o.insert("eleccion".into(), r.election.label.into());
                o.insert("distritos".into(), areas(&catalogue.distritos).into());
                o.insert("municipios".into(), areas(&catalogue.municipios).into());
            }
            doc
        })
        .collect();
    json!({
        "simulacro": true,
        "entidad": catalogue.entity.name,
        "corte": corte.line(),
        "corte_id": corte.stamp(),
        "elecciones": elecciones,
    })
}

const INDEX: &str = r#"<!DOCTYPE html>
<html lang="es">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PREP · SIMULACRO</title>
<link rel="icon" href="img/logo.svg" type="image/svg+xml">
<link rel="stylesheet" href="css/prep.css">
</head>
<body>
<p class="simulacro">SIMULACRO · datos ficticios, no son resultados electorales</p>
<header>
  <img src="img/logo.svg" alt="" width="48" height="48">
  <div>
    <h1>Programa de Resultados Electorales Preliminares</h1>
    <p id="entidad"></p>
  </div>
  <p class="corte">Corte de información: <time id="corte">cargando…</time></p>
</header>
<nav id="elecciones" aria-label="Elección"></nav>
<main>
  <section class="cifras">
    <div><h2>Actas esperadas</h2><p id="esperadas">–</p></div>
    <div><h2>Actas capturadas</h2><p id="capturadas">–</p><small id="pct-capturadas"></small></div>
    <div><h2>Actas contabilizadas</h2><p id="contabilizadas">–</p><small id="pct-contabilizadas"></small></div>
    <div><h2>Participación ciudadana</h2><p id="participacion">–</p><small id="lista"></small></div>
  </section>
  <section>
    <h2>Votos por partido político y coalición</h2>
    <table id="votos"><thead><tr><th>Partido o coalición</th><th>Votos</th><th>Porcentaje</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Detalle por distrito y municipio</h2>
    <label>Nivel <select id="nivel"><option value="distrito">Distrito</option><option value="municipio">Municipio</option></select></label>
    <label>Área <select id="area"></select></label>
    <div id="detalle"></div>
  </section>
</main>
<footer>Los resultados preliminares no son definitivos. Este sitio es un simulacro generado por difusor.</footer>
<script src="js/prep.js"></script>
</body>
</html>
"#;

const STYLE: &str = r#"*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f5f5f7}
.simulacro{background:#b00020;color:#fff;margin:0;padding:.4rem 1rem;font-weight:bold;text-align:center}
header{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;background:#4a2a6a;color:#fff;padding:1rem}
header h1{font-size:1.3rem;margin:0}header p{margin:.2rem 0}
.corte{margin-left:auto;font-size:1.1rem}.corte time{font-weight:bold}
nav{display:flex;gap:.5rem;padding:.6rem 1rem;background:#e8e2ef}
nav button{border:1px solid #4a2a6a;background:#fff;padding:.4rem .8rem;border-radius:4px;cursor:pointer}
nav button[aria-pressed=true]{background:#4a2a6a;color:#fff}
main{max-width:70rem;margin:auto;padding:1rem}
.cifras{display:grid;grid-template-columns:repeat(auto-fit,minmax(13rem,1fr));gap:1rem}
.cifras div{background:#fff;border-radius:6px;padding:.8rem;box-shadow:0 1px 3px #0002}
.cifras h2{font-size:.9rem;margin:0;color:#555}.cifras p{font-size:1.6rem;margin:.3rem 0;font-weight:bold}
section{margin-bottom:1.5rem}
table{width:100%;border-collapse:collapse;background:#fff}
td,th{padding:.35rem .5rem;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.barra{height:.9rem;background:#7b4fa3;border-radius:2px}.coalicion .barra{background:#c69be8}
label{margin-right:1rem}select{padding:.3rem}
footer{padding:1rem;text-align:center;color:#666;font-size:.85rem}
"#;

const SCRIPT: &str = r#"'use strict';
// Re-reads json/main.json every two seconds; redraws when the corte changes.
const estado = { main: null, corte: null, eleccion: 0 };
const numero = new Intl.NumberFormat('es-MX');
const $ = (id) => document.getElementById(id);

async function leer(ruta) {
  const r = await fetch(ruta, { cache: 'no-store' });
  if (!r.ok) throw new Error(ruta + ': ' + r.status);
  return r.json();
}

function tablaVotos(tbody, votos) {
  tbody.replaceChildren(...votos.map((v) => {
    const tr = document.createElement('tr');
    if (v.coalicion) tr.className = 'coalicion';
    const pct = Number(v.porcentaje);
    tr.innerHTML = '<td></td><td class="n"></td><td class="n"></td><td style="width:40%"><div class="barra"></div></td>';
    tr.children[0].textContent = v.nombre;
    tr.children[1].textContent = numero.format(v.votos);
    tr.children[2].textContent = pct.toFixed(4) + ' %';
    tr.querySelector('.barra').style.width = Math.min(100, pct) + '%';
    return tr;
  }));
}

function cifras(d) {
  $('esperadas').textContent = numero.format(d.actas_esperadas);
  $('capturadas').textContent = numero.format(d.actas_capturadas);
  $('pct-capturadas').textContent = d.porcentaje_capturadas + ' %';
  $('contabilizadas').textContent = numero.format(d.actas_contabilizadas);
  $('pct-contabilizadas').textContent = d.porcentaje_contabilizadas + ' %';
  $('participacion').textContent = d.participacion + ' %';
  $('lista').textContent = 'Lista nominal de actas contabilizadas: ' + numero.format(d.lista_nominal);
}

function areas() {
  const e = estado.main.elecciones[estado.eleccion];
  const lista = $('nivel').value === 'distrito' ? e.distritos : e.municipios;
  const previo = $('area').value;
  $('area').replaceChildren(...lista.map((a) => new Option(a.id + ' · ' + a.nombre, a.id)));
  if (lista.some((a) => String(a.id) === previo)) $('area').value = previo;
}

async function detalle() {
  const e = estado.main.elecciones[estado.eleccion];
  const id = $('area').value;
  if (!id) return;
  const d = await leer('json/' + e.clave + '/' + $('nivel').value + '/' + id + '.json');
  const caja = $('detalle');
  caja.innerHTML = '<p></p><table><tbody></tbody></table>';
  caja.querySelector('p').textContent = d.nombre + ': ' + numero.format(d.actas_contabilizadas) +
    ' de ' + numero.format(d.actas_esperadas) + ' actas contabilizadas (' +
    d.porcentaje_contabilizadas + ' %), participación ' + d.participacion + ' %';
  tablaVotos(caja.querySelector('tbody'), d.votos);
}

function dibujar() {
  const m = estado.main;
  $('corte').textContent = m.corte;
  $('entidad').textContent = m.entidad + ' · SIMULACRO';
  $('elecciones').replaceChildren(...m.elecciones.map((e, i) => {
    const b = document.createElement('button');
    b.textContent = e.eleccion;
    b.setAttribute('aria-pressed', String(i === estado.eleccion));
    b.onclick = () => { estado.eleccion = i; dibujar(); };
    return b;
  }));
  const e = m.elecciones[estado.eleccion];
  cifras(e);
  tablaVotos(document.querySelector('#votos tbody'), e.votos);
  areas();
  detalle().catch((err) => console.warn(err.message));
}

async function actualizar() {
  try {
    const m = await leer('json/main.json');
    if (m.corte_id !== estado.corte) {
      estado.main = m;
      estado.corte = m.corte_id;
      if (estado.eleccion >= m.elecciones.length) estado.eleccion = 0;
      dibujar();
    }
  } catch (err) {
    console.warn('sin conexión con el sitio: ' + err.message);
  }
}

$('nivel').onchange = () => { areas(); detalle(); };
$('area').onchange = () => detalle();
actualizar();
setInterval(actualizar, 2000);
"#;

const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><rect width="48" height="48" rx="8" fill="#7b4fa3"/><path d="M10 36V20h6v16zm11 0V12h6v24zm11 0V26h6v10z" fill="#fff"/></svg>
"##;
