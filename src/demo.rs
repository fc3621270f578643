//! `difusor demo`: a simulated election night on one command, with no configuration.
//!
//! A temporary data folder, the server on `127.0.0.1:<port>` with the gate open, and the
//! simulator ([`crate::simulate`]) delivering the packages of a state-size election (5,000
//! casillas; gubernatura, diputaciones locales, ayuntamientos) into the intake folder, one
//! corte every few seconds: the site package (the first complete) and the data package, each
//! with its `.sha256`. Cortes advance fifteen minutes of election night each, from 20:00 of
//! today. Everything is marked SIMULACRO. Ctrl-C stops it and removes the temporary folder.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::{Config, SettingArgs, resolve_embedded};
use crate::sections::Sections;
use crate::serve;
use crate::simulate::{self, Simulation};

/// Casillas of the demo's election: the size of a state.
const CASILLAS: u32 = 5_000;

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
        // A drill shows results at once: no embargo, and tonight's simulated cortes are
        // published now, ahead of the clock.
        publish_start: Some(String::new()),
        corte_future_margin: Some(String::new()),
        ..Default::default()
    };
    let sections = Sections::new(Config::from_settings(resolve_embedded(&args)?)?)?;
    let config = &sections.config;
    let watch = config.watch_dir.clone();
    std::fs::create_dir_all(&watch)?;
    let today = jiff::ZonedDateTime::now()
        .with_time_zone(config.timezone.clone())
        .date();
    let simulation = Arc::new(Simulation::new(&simulate::Settings {
        entidad: "CAMP".to_owned(),
        elecciones: vec!["GUB".into(), "DIP_LOC".into(), "AYUN".into()],
        casillas: CASILLAS,
        seed: 2027,
        fecha: today,
        desde: Duration::ZERO,
        partidos: simulate::DEFAULT_PARTIDOS.to_owned(),
    })?);
    println!("difusor demo: a simulated election night (SIMULACRO)");
    println!("  site:   http://127.0.0.1:{port}/");
    println!("  data:   {}", dir.path().display());
    println!("  a new corte every {}s; Ctrl-C stops", every.as_secs_f64());
    let feeder = tokio::spawn(async move {
        for n in 0..simulation.cortes() {
            let sim = Arc::clone(&simulation);
            let dir = watch.clone();
            let done = tokio::task::spawn_blocking(move || -> Result<()> {
                if let Some(corte) = sim.packages(n)? {
                    for (name, bytes) in corte.packages {
                        simulate::into_folder(&dir, &simulate::Delivery::new(name, bytes, None)?)?;
                    }
                }
                Ok(())
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "demo: cannot deliver a corte")
                }
                Err(e) => tracing::error!(error = %e, "demo: the simulator stopped"),
            }
            tokio::time::sleep(every).await;
        }
    });
    let source = serve::Source {
        file: None,
        embedded: true,
        args,
    };
    let result = serve::run(sections, source).await;
    feeder.abort();
    result
}
