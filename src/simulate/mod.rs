//! `difusor simulate`: a fictitious election night (SIMULACRO), delivered as an institute
//! delivers it, for drills, the demo, tests and benchmarks.
//!
//! Each corte gives two packages, both named for the corte (`YYYYMMDD_HHMM`, local time):
//! the site package (`…_PREP_SITIO[_COMPLETO]_<ENT>.zip`, [`site`]) and the data package
//! (`…_PREP_<ENT>.zip`, [`data`]), each delivered with its `.sha256` sidecar, and its
//! `.minisig` signature when a secret key is given ([`deliver`], [`sign`]).
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
mod sign;
mod site;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::civil::Date;

pub(crate) use deliver::deliver;
pub(crate) use election::{Catalogue, Election, Entity};
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
        let catalogue = Catalogue::new(entity, elections, settings.casillas, settings.seed)?;
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

/// `difusor simulate`: writes the packages of each corte into `out`, one corte every
/// `every`, until `cortes` cortes (or the night) are done; each signed with the minisign
/// secret key in `sign_key`, if given.
pub(crate) fn run(
    settings: &Settings,
    out: &Path,
    every: Duration,
    cortes: Option<u32>,
    sign_key: Option<&Path>,
) -> Result<()> {
    use std::io::IsTerminal as _;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let simulation = Simulation::new(settings)?;
    let key = sign_key.map(sign::load).transpose()?;
    let total = cortes.unwrap_or(u32::MAX).min(simulation.cortes());
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
    for n in 0..total {
        if n > 0 {
            std::thread::sleep(every);
        }
        let Some(corte) = simulation.packages(n)? else {
            break;
        };
        for (name, bytes) in &corte.packages {
            deliver(out, name, bytes, key.as_ref())?;
            tracing::info!(package = %name, bytes = bytes.len(), "simulate: delivered");
        }
        bar.set_message(corte.stamp);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests;
