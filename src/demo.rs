//! `difusor demo`: a simulated election night on one command, with no configuration.
//!
//! A temporary data folder, the server on `127.0.0.1:<port>` with the gate open, and a small
//! simulated institute that drops a site package into the intake folder every few seconds:
//! the first complete (HTML, JS, `json/main.json`), later ones only `json/main.json`, as real
//! incremental packages are. Simulated cortes advance fifteen minutes each from 20:00 of
//! today, so every package is a new corte. Everything is marked SIMULACRO. Ctrl-C stops it
//! and removes the temporary folder.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::{ToSpan, ZonedDateTime};

use crate::config::{Config, SettingArgs, resolve_embedded};
use crate::serve;

/// Parties of the simulated election and their share of the vote.
const PARTIES: &[(&str, f64)] = &[
    ("PAN", 0.22),
    ("PRI", 0.18),
    ("MORENA", 0.38),
    ("MC", 0.12),
    ("PVEM", 0.06),
    ("PT", 0.04),
];

/// Runs the demo until Ctrl-C.
pub(crate) async fn run(port: u16, every: Duration) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("difusor-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo")?;
    let args = SettingArgs {
        data_dir: Some(dir.path().to_owned()),
        listen: Some(vec![format!("127.0.0.1:{port}")]),
        admin_listen: Some("127.0.0.1:0".to_owned()),
        settle: Some("200ms".to_owned()),
        // A drill shows results at once: no embargo.
        publish_start: Some(String::new()),
        ..Default::default()
    };
    let config = Config::from_settings(resolve_embedded(&args)?)?;
    let watch = config.watch_dir.clone();
    std::fs::create_dir_all(&watch)?;
    println!("difusor demo: a simulated election night (SIMULACRO)");
    println!("  site:   http://127.0.0.1:{port}/");
    println!("  data:   {}", dir.path().display());
    println!("  a new corte every {}s; Ctrl-C stops", every.as_secs_f64());
    let tz = config.timezone.clone();
    let feeder = tokio::spawn(async move {
        let now = ZonedDateTime::now().with_time_zone(tz.clone());
        let start = now
            .date()
            .at(20, 0, 0, 0)
            .to_zoned_datetime(tz)
            .unwrap_or(now);
        for n in 0u32.. {
            let corte = start
                .checked_add((15 * n as i64).minutes())
                .unwrap_or_else(|_| start.clone());
            if let Err(e) = drop_package(&watch, n, &corte) {
                tracing::error!(error = %format!("{e:#}"), "demo: cannot write a package");
            }
            tokio::time::sleep(every).await;
        }
    });
    let result = serve::run(config).await;
    feeder.abort();
    result
}

/// Writes the package of corte `n` into `dir` under a hidden name, then renames it.
fn drop_package(dir: &Path, n: u32, corte: &ZonedDateTime) -> Result<()> {
    let name = format!("{}_PREP_DEMO.zip", corte.strftime("%Y%m%d_%H%M"));
    let progress = 1.0 / (1.0 + (-(f64::from(n) - 8.0) / 2.5).exp());
    let expected = 6_000u64;
    let captured = (expected as f64 * progress) as u64;
    let votes: Vec<serde_json::Value> = PARTIES
        .iter()
        .map(|(p, share)| serde_json::json!({"partido": p, "votos": (captured as f64 * 310.0 * share) as u64}))
        .collect();
    let main = serde_json::json!({
        "simulacro": true,
        "corte": corte.strftime("%d/%m/%Y %H:%M (UTC%:z)").to_string(),
        "actas_esperadas": expected,
        "actas_capturadas": captured,
        "porcentaje_capturadas": format!("{:.4}", 100.0 * captured as f64 / expected as f64),
        "votos": votes,
    });
    let mut files: Vec<(&str, Vec<u8>)> =
        vec![("json/main.json", serde_json::to_vec_pretty(&main)?)];
    if n == 0 {
        files.push(("index.html", INDEX.as_bytes().to_vec()));
        files.push(("js/prep.js", SCRIPT.as_bytes().to_vec()));
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (path, bytes) in &files {
        zip.start_file(*path, opts)?;
        zip.write_all(bytes)?;
    }
    let bytes = zip.finish()?.into_inner();
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(&name))?;
    Ok(())
}

const INDEX: &str = r#"<!DOCTYPE html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>PREP — SIMULACRO</title>
<style>body{font-family:sans-serif;max-width:48rem;margin:auto;padding:1rem}
.sim{background:#b00;color:#fff;padding:.3rem .6rem;font-weight:bold}
.bar{background:#2a6;height:1rem}td{padding:.2rem .5rem}</style></head>
<body><p class="sim">SIMULACRO — datos ficticios</p>
<h1>Resultados Electorales Preliminares</h1>
<p>Corte: <strong id="corte">…</strong></p>
<p>Actas capturadas: <span id="actas">…</span></p>
<table id="votos"></table>
<script src="js/prep.js"></script></body></html>
"#;

const SCRIPT: &str = r#"async function actualizar() {
  const r = await fetch('json/main.json', {cache: 'no-store'});
  const d = await r.json();
  document.getElementById('corte').textContent = d.corte;
  document.getElementById('actas').textContent =
    d.actas_capturadas + ' de ' + d.actas_esperadas + ' (' + d.porcentaje_capturadas + ' %)';
  const total = d.votos.reduce((s, v) => s + v.votos, 0) || 1;
  const t = document.getElementById('votos');
  t.replaceChildren(...d.votos.map(v => {
    const tr = document.createElement('tr');
    const pct = (100 * v.votos / total).toFixed(2);
    tr.innerHTML = '<td></td><td></td><td style="width:60%"><div class="bar"></div></td>';
    tr.children[0].textContent = v.partido;
    tr.children[1].textContent = v.votos.toLocaleString('es-MX') + ' (' + pct + ' %)';
    tr.querySelector('.bar').style.width = pct + '%';
    return tr;
  }));
}
actualizar();
setInterval(actualizar, 3000);
"#;
