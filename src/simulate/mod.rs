//! `difusor simulate`: a fictitious election night (SIMULACRO), delivered as an institute
//! delivers it, for drills, the demo, tests and benchmarks.
//!
//! Each corte gives two packages, both named for the corte (`YYYYMMDD_HHMM`, local time):
//! the site package (`…_PREP_SITIO[_COMPLETO]_<ENT>.zip`, [`site`]) and the data package
//! (`…_PREP_<ENT>.zip`, [`data`]), each delivered with its `.sha256` sidecar, and its
//! `.minisig` signature when a secret key is given ([`deliver`], [`sign`]), to every target
//! asked for ([`target`]): a folder, a difusor's SFTP intake ([`sftp`]), and a folder served
//! over HTTP for a difusor that pulls ([`serve`]).
//!
//! # Guarantees
//! - The same settings and seed give the same packages, byte for byte.
//! - Cortes advance `step` (15 minutes) of election-night time each, from 20:00 of the
//!   election day (plus `--desde`) to 20:00 of the next day, whatever the real pace.
//! - Each data package's summary lines equal what its rows give (FORMATS.md rules).

mod acta;
mod data;
mod deliver;
mod election;
pub(crate) mod serve;
pub(crate) mod sftp;
mod sign;
mod site;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::civil::Date;

pub(crate) use deliver::{Delivery, into_folder};
pub(crate) use election::{Ballot, Catalogue, DEFAULT_PARTIDOS, Election, Entity};
pub(crate) use sign::keygen;

use data::Corte;

/// Election-night time between cortes.
const STEP_MINUTES: u32 = 15;

/// The last corte: 20:00 of the day after the election.
const LAST_MINUTE: u32 = 24 * 60;

/// What a simulation is asked for (the flags of `difusor simulate`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Entity code: `CAMP`.
    pub(crate) entidad: String,
    /// Election codes: `GUB,DIP_LOC,AYUN`.
    pub(crate) elecciones: Vec<String>,
    /// Casillas in the catalogue.
    pub(crate) casillas: u32,
    /// Seed of every random draw.
    pub(crate) seed: u64,
    /// Election day.
    pub(crate) fecha: Date,
    /// Election-night time of the first corte after 20:00.
    pub(crate) desde: Duration,
    /// Parties and coalitions (`--partidos`; [`DEFAULT_PARTIDOS`] for today's).
    pub(crate) partidos: String,
}

/// One simulated election night.
#[derive(Debug)]
pub(crate) struct Simulation {
    catalogue: Catalogue,
    fecha: Date,
    first_minute: u32,
}

/// Both packages of one corte, site first.
#[derive(Debug)]
pub(crate) struct CortePackages {
    /// `YYYYMMDD_HHMM`.
    pub(crate) stamp: String,
    /// File name and bytes of each package.
    pub(crate) packages: Vec<(String, Vec<u8>)>,
}

impl Simulation {
    /// The night `settings` describe.
    pub(crate) fn new(settings: &Settings) -> Result<Self> {
        let entity = Entity::from_code(&settings.entidad)?;
        let elections = settings
            .elecciones
            .iter()
            .map(|e| Election::from_code(e))
            .collect::<Result<Vec<_>, _>>()?;
        if elections.is_empty() {
            anyhow::bail!("--elecciones names no election; use e.g. GUB,DIP_LOC,AYUN");
        }
        let ballot = Ballot::parse(&settings.partidos)?;
        let catalogue =
            Catalogue::new(entity, elections, settings.casillas, settings.seed, ballot)?;
        let first_minute = u32::try_from(settings.desde.as_secs() / 60)
            .unwrap_or(LAST_MINUTE)
            .min(LAST_MINUTE);
        Ok(Self {
            catalogue,
            fecha: settings.fecha,
            first_minute,
        })
    }

    /// How many cortes the night has from the first one to 20:00 of the next day.
    pub(crate) fn cortes(&self) -> u32 {
        (LAST_MINUTE - self.first_minute) / STEP_MINUTES + 1
    }

    /// Corte number `n` (0-based), if the night has it.
    fn corte(&self, n: u32) -> Result<Option<Corte>> {
        let minute = self.first_minute + n * STEP_MINUTES;
        if minute > LAST_MINUTE {
            return Ok(None);
        }
        let start = self.fecha.at(20, 0, 0, 0);
        let time = start + jiff::SignedDuration::from_mins(i64::from(minute));
        let tz = jiff::tz::TimeZone::get("America/Mexico_City")?;
        let offset = time.to_zoned_datetime(tz)?.offset();
        let offset_hours = i8::try_from(offset.seconds() / 3600).unwrap_or(-6);
        Ok(Some(Corte {
            time,
            minute,
            offset_hours,
        }))
    }

    /// The packages of corte `n` (0-based): the site package (complete for `n` = 0) and the
    /// data package. `None` after the night's last corte.
    pub(crate) fn packages(&self, n: u32) -> Result<Option<CortePackages>> {
        let Some(corte) = self.corte(n)? else {
            return Ok(None);
        };
        let (data_name, data_bytes, results) = data::package(&self.catalogue, &corte)?;
        let (site_name, site_bytes) = site::package(&self.catalogue, &corte, &results, n == 0)?;
        Ok(Some(CortePackages {
            stamp: corte.stamp(),
            packages: vec![(site_name, site_bytes), (data_name, data_bytes)],
        }))
    }
}

/// Where `difusor simulate` delivers, and at what pace.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Folder to deliver into (`--out`).
    pub(crate) out: Option<PathBuf>,
    /// SFTP intake to upload to (`--sftp`).
    pub(crate) sftp: Option<sftp::Options>,
    /// Address to serve the delivered files on (`--serve`).
    pub(crate) serve: Option<serve::Options>,
    /// Real time between cortes.
    pub(crate) every: Duration,
    /// Stop after this many cortes (default: the whole night).
    pub(crate) cortes: Option<u32>,
    /// Minisign secret key to sign every package with.
    pub(crate) sign_key: Option<PathBuf>,
}

/// `difusor simulate`: delivers the packages of each corte to every target of `plan`, one
/// corte every `every`, until `cortes` cortes (or the night) are done; then, when serving,
/// serves until Ctrl-C or SIGTERM. A signal during the cortes stops them cleanly.
pub(crate) async fn run(settings: &Settings, plan: Plan) -> Result<()> {
    let mut signals = Signals::new()?;
    if plan.out.is_none() && plan.sftp.is_none() && plan.serve.is_none() {
        anyhow::bail!(
            "say where to deliver: --out DIR, --sftp user@host[:port] (with --sftp-key) or \
             --serve ADDR, alone or together"
        );
    }
    let simulation = Arc::new(Simulation::new(settings)?);
    let key = plan
        .sign_key
        .as_deref()
        .map(sign::load)
        .transpose()?
        .map(Arc::new);
    // The folder: --out, or a temporary one to serve.
    let mut temporary = None;
    let folder = match (&plan.out, &plan.serve) {
        (Some(out), _) => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create the output folder {}", out.display()))?;
            Some(out.clone())
        }
        (None, Some(_)) => {
            let dir = tempfile::Builder::new()
                .prefix("difusor-simulate-")
                .tempdir()
                .context("cannot create a temporary folder to serve")?;
            let path = dir.path().to_owned();
            temporary = Some(dir);
            Some(path)
        }
        (None, None) => None,
    };
    let serving = match (&plan.serve, &folder) {
        (Some(options), Some(dir)) => {
            let serving = serve::start(options, dir.clone()).await?;
            eprintln!("serving {} (files in {})", serving.url(), dir.display());
            Some(serving)
        }
        _ => None,
    };
    let mut targets: Vec<target::Target> = folder.into_iter().map(target::Target::Folder).collect();
    if let Some(options) = plan.sftp.clone() {
        let uploader = tokio::select! {
            connected = sftp::Uploader::connect(options) => connected?,
            () = signals.recv() => {
                eprintln!("stopped before the first corte");
                return Ok(());
            }
        };
        targets.push(target::Target::Sftp(Box::new(uploader)));
    }
    let total = plan.cortes.unwrap_or(u32::MAX).min(simulation.cortes());
    let delivered = tokio::select! {
        done = deliver_cortes(&simulation, key, &mut targets, total, plan.every) => Some(done?),
        () = signals.recv() => None,
    };
    for target in &mut targets {
        target.close().await;
    }
    match (delivered, serving) {
        (None, serving) => {
            eprintln!("stopped by a signal before the last corte");
            if let Some(serving) = serving {
                serving.stop().await;
            }
        }
        (Some(n), Some(serving)) => {
            eprintln!(
                "{n} cortes delivered; serving {} until Ctrl-C",
                serving.url()
            );
            signals.recv().await;
            eprintln!("stopping");
            serving.stop().await;
        }
        (Some(_), None) => {}
    }
    drop(temporary);
    Ok(())
}

/// Makes and delivers cortes `0..total` to every target, `every` apart; returns how many.
async fn deliver_cortes(
    simulation: &Arc<Simulation>,
    key: Option<Arc<minisign::SecretKey>>,
    targets: &mut [target::Target],
    total: u32,
    every: Duration,
) -> Result<u32> {
    use std::io::IsTerminal as _;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(u64::from(total));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cortes {msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut done = 0;
    for n in 0..total {
        if n > 0 {
            tokio::time::sleep(every).await;
        }
        let (sim, key) = (Arc::clone(simulation), key.clone());
        let made = tokio::task::spawn_blocking(move || -> Result<_> {
            let Some(corte) = sim.packages(n)? else {
                return Ok(None);
            };
            let deliveries = corte
                .packages
                .into_iter()
                .map(|(name, bytes)| Delivery::new(name, bytes, key.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((corte.stamp, Arc::new(deliveries))))
        })
        .await
        .context("the simulator stopped")??;
        let Some((stamp, corte)) = made else {
            break;
        };
        for target in targets.iter_mut() {
            target.deliver(&corte).await.with_context(|| {
                format!("corte {stamp}: cannot deliver to {}", target.describe())
            })?;
            tracing::info!(corte = %stamp, packages = corte.len(), to = %target.describe(), "simulate: corte delivered");
        }
        bar.set_message(stamp);
        bar.inc(1);
        done += 1;
    }
    bar.finish_and_clear();
    Ok(done)
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from the start of the run.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening.
    fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests;
