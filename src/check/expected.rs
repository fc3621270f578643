//! What a checked server must serve: the files of the institute's package, its corte, and
//! the `main.json` of every package known, to recognise an older corte by its bytes.
//!
//! A package comes from a file (`--package`), a folder where packages arrive (`--packages`)
//! or an address (`--package-url`, a package or an index as `pull_url` reads it). Every one is
//! opened as the server opens it ([`crate::package::verify`]: the same limits, names and
//! evidence beside it when present), so a damaged copy is never taken as the reference.
//!
//! # Guarantees
//! - A site package's files are expected at their paths; a data package is expected whole at
//!   `datos/<name>`, where difusor offers it.
//! - In a folder, the latest site package (by corte time) is expected, laid over the site
//!   packages before it back to the latest complete one (`complete_marker`), as a difusor in
//!   overlay mode would serve it; data packages in a folder are not expected.
//! - An address is read to `max_package_bytes` (the index to its own limit), within the
//!   check's timeout per request; the bearer token of `pull_token_file` goes only there.
//! - A failed request is told through [`pull::transport_reason`]: what the server controls
//!   in it (its certificate's names) is shown with its control characters made visible.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use jiff::Timestamp;
use reqwest::Url;
use serde::Serialize;

use crate::hash::Sha256;
use crate::intake::{open_package, pull};
use crate::package::{PackageKind, PackageName, PackageSettings, VerifiedPackage, corte_time};

/// One file the server must serve.
#[derive(Debug, Clone)]
pub(super) struct File {
    /// Path under the site's address, without a leading `/` (`json/main.json`).
    pub(super) path: String,
    /// Its exact bytes.
    pub(super) bytes: Bytes,
    /// Their SHA-256.
    pub(super) sha256: Sha256,
}

/// The package a check compares against, as reported.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PackageInfo {
    /// Its file name.
    pub(super) name: String,
    /// SHA-256 of the package file.
    pub(super) sha256: String,
    /// Site or data.
    pub(super) kind: PackageKind,
    /// Its corte, `YYYYMMDD_HHMM`.
    pub(super) corte: String,
}

/// Everything a server is compared against.
#[derive(Debug, Clone)]
pub(super) struct Expected {
    /// The latest package.
    pub(super) package: PackageInfo,
    /// The files to fetch, in path order.
    pub(super) files: Vec<File>,
    /// The corte the server must show.
    pub(super) corte: String,
    /// When the latest package arrived: its file's modification time, or when it was fetched.
    pub(super) arrival: Timestamp,
    /// Digest of the `main.json` of every known package → that package's corte.
    pub(super) main_cortes: HashMap<Sha256, String>,
}

impl Expected {
    /// The expected file at `path`, if the package carries it.
    pub(super) fn file(&self, path: &str) -> Option<&File> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// Where packages come from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// One package file.
    File(PathBuf),
    /// A folder where packages arrive.
    Folder(PathBuf),
    /// A package address, or an index (an address ending in `/`).
    Url(Url),
}

/// A package opened, with its corte.
struct Opened {
    package: VerifiedPackage,
    corte: String,
    arrival: Timestamp,
    /// A data package's own bytes, served whole at `datos/<name>`.
    whole: Option<Bytes>,
}

/// What is remembered of a package of a folder: enough to order it and recognise its corte.
struct Known {
    name: String,
    corte: String,
    kind: PackageKind,
    /// The digest of its main.json.
    main: Option<Sha256>,
}

/// Reads the packages of `source` and keeps those already opened, so a folder or an address
/// read every period costs only what changed.
pub(super) struct Loader {
    source: Source,
    settings: PackageSettings,
    complete_marker: String,
    main_path: String,
    client: Option<reqwest::Client>,
    /// What each file of a folder is (`None`: not a package), by path, with the length and
    /// time it had.
    cache: HashMap<PathBuf, (u64, SystemTime, Option<Known>)>,
    /// The last package fetched from an address: its name, digest and when it first came.
    fetched: Option<(String, Sha256, Timestamp)>,
}

impl Loader {
    /// A loader of `source`; `client` fetches addresses (with pull's TLS options and token).
    pub(super) fn new(
        source: Source,
        settings: PackageSettings,
        complete_marker: String,
        main_path: String,
        client: Option<reqwest::Client>,
    ) -> Self {
        Self {
            source,
            settings,
            complete_marker,
            main_path,
            client,
            cache: HashMap::new(),
            fetched: None,
        }
    }

    /// What the server must serve now.
    pub(super) async fn load(&mut self) -> Result<Expected> {
        match self.source.clone() {
            Source::File(path) => {
                let opened = self.open(&path)?;
                Ok(self.single(&opened))
            }
            Source::Folder(dir) => self.folder(&dir),
            Source::Url(url) => {
                let opened = self.fetch(&url).await?;
                Ok(self.single(&opened))
            }
        }
    }

    /// Opens the package file at `path` and finds its corte.
    fn open(&self, path: &Path) -> Result<Opened> {
        let package = open_package(path, &self.settings)?;
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or_else(Timestamp::now);
        let corte = corte_time(&package, &self.settings.corte, modified)
            .with_context(|| format!("{}: no corte time", path.display()))?;
        let whole = match package.kind() {
            PackageKind::Data => {
                Some(Bytes::from(std::fs::read(path).with_context(|| {
                    format!("cannot read {}", path.display())
                })?))
            }
            PackageKind::Site => None,
        };
        Ok(Opened {
            package,
            corte: corte.id(),
            arrival: modified,
            whole,
        })
    }

    /// The expectation of one package alone.
    fn single(&self, opened: &Opened) -> Expected {
        let mut files = BTreeMap::new();
        lay(&mut files, opened);
        let main_cortes = self
            .main_of(opened)
            .map(|digest| (digest, opened.corte.clone()))
            .into_iter()
            .collect();
        expectation(opened, files, main_cortes)
    }

    /// The latest site package of the folder `dir`, over those before it back to the latest
    /// complete one. What each package is (kind, corte, main.json) is remembered by its
    /// length and time; only the packages laid are held whole, and only for this call.
    fn folder(&mut self, dir: &Path) -> Result<Expected> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        let mut seen = HashMap::new();
        let mut opened_now: HashMap<PathBuf, Opened> = HashMap::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            let Some(name) = PackageName::of_path(&path) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || crate::package::is_evidence(name.as_str()) {
                continue;
            }
            let stamp = (
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            let known = match self.cache.remove(&path) {
                Some((len, time, known)) if (len, time) == stamp => known,
                _ => match self.open(&path) {
                    Ok(opened) => {
                        let known = self.known(&opened);
                        opened_now.insert(path.clone(), opened);
                        Some(known)
                    }
                    // Not a package (or one still arriving): not expected, and not read
                    // again until its length or time changes.
                    Err(e) => {
                        tracing::debug!("{}: {e:#}", path.display());
                        None
                    }
                },
            };
            seen.insert(path, (stamp.0, stamp.1, known));
        }
        self.cache = seen;
        let mut sites: Vec<(&PathBuf, &Known)> = self
            .cache
            .iter()
            .filter_map(|(path, (_, _, known))| Some((path, known.as_ref()?)))
            .filter(|(_, k)| k.kind == PackageKind::Site)
            .collect();
        sites.sort_by(|(_, a), (_, b)| (&a.corte, &a.name).cmp(&(&b.corte, &b.name)));
        let Some(&(latest_path, _)) = sites.last() else {
            bail!(
                "{} holds no site package yet (data packages are checked one at a time with \
                 --package)",
                dir.display()
            );
        };
        let from = sites
            .iter()
            .rposition(|(_, k)| k.name.contains(&self.complete_marker))
            .unwrap_or(0);
        let main_cortes = sites
            .iter()
            .filter_map(|(_, k)| Some((k.main?, k.corte.clone())))
            .collect();
        let mut files = BTreeMap::new();
        for (path, _) in sites.get(from..).unwrap_or_default() {
            match opened_now.get(*path) {
                Some(opened) => lay(&mut files, opened),
                None => {
                    let opened = self.open(path)?;
                    lay(&mut files, &opened);
                    opened_now.insert((*path).clone(), opened);
                }
            }
        }
        let latest = opened_now
            .get(latest_path)
            .context("the latest package was not opened")?;
        Ok(expectation(latest, files, main_cortes))
    }

    /// What is remembered of a package of a folder between periods.
    fn known(&self, opened: &Opened) -> Known {
        Known {
            name: opened.package.name().to_owned(),
            corte: opened.corte.clone(),
            kind: opened.package.kind(),
            main: self.main_of(opened),
        }
    }

    /// Fetches the package at `url` (or the latest an index lists) into a temporary file and
    /// opens it; the same package fetched again keeps the time it first came.
    async fn fetch(&mut self, url: &Url) -> Result<Opened> {
        let client = self
            .client
            .as_ref()
            .context("no client for --package-url")?;
        let (name, address) = if url.path().ends_with('/') {
            let body = get(client, url, pull::MAX_INDEX_BYTES, "index").await?;
            pull::latest(url, &body)
                .map_err(|why| anyhow::anyhow!("{url} is not an index: {why}"))?
                .with_context(|| format!("the index {url} lists no package yet"))?
        } else {
            let name = pull::last_segment(url)
                .with_context(|| format!("{url} does not end in a package's file name"))?;
            (name, url.clone())
        };
        let bytes = get(
            client,
            &address,
            self.settings.limits.max_package_bytes,
            "max_package_bytes",
        )
        .await?;
        let dir = tempfile::tempdir().context("cannot make a temporary folder")?;
        let path = dir.path().join(name.as_str());
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut opened = self.open(&path)?;
        let sha256 = opened.package.sha256();
        opened.arrival = match &self.fetched {
            Some((n, s, at)) if *n == name.as_str() && *s == sha256 => *at,
            _ => Timestamp::now(),
        };
        self.fetched = Some((name.to_string(), sha256, opened.arrival));
        Ok(opened)
    }

    /// The digest of `opened`'s main.json, if it carries one.
    fn main_of(&self, opened: &Opened) -> Option<Sha256> {
        opened
            .package
            .files()
            .iter()
            .find(|m| m.path == self.main_path)
            .map(|m| Sha256::of(&m.bytes))
    }
}

/// Lays the files `opened` makes servable over `files`: a site package's members, or a data
/// package whole at `datos/<name>`.
fn lay(files: &mut BTreeMap<String, Bytes>, opened: &Opened) {
    match &opened.whole {
        Some(bytes) => {
            files.insert(format!("datos/{}", opened.package.name()), bytes.clone());
        }
        None => {
            for member in opened.package.files() {
                files.insert(member.path.clone(), member.bytes.clone());
            }
        }
    }
}

/// The expectation of `latest` with `files`.
fn expectation(
    latest: &Opened,
    files: BTreeMap<String, Bytes>,
    main_cortes: HashMap<Sha256, String>,
) -> Expected {
    let package = &latest.package;
    Expected {
        package: PackageInfo {
            name: package.name().to_owned(),
            sha256: package.sha256().to_hex(),
            kind: package.kind(),
            corte: latest.corte.clone(),
        },
        files: files
            .into_iter()
            .map(|(path, bytes)| File {
                sha256: Sha256::of(&bytes),
                path,
                bytes,
            })
            .collect(),
        corte: latest.corte.clone(),
        arrival: latest.arrival,
        main_cortes,
    }
}

/// The body at `url`, to at most `limit` bytes (`what` names the limit).
async fn get(
    client: &reqwest::Client,
    url: &Url,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    let response = client.get(url.clone()).send().await.map_err(|e| {
        let why = pull::transport_reason(&e, "no answer within the timeout");
        anyhow::anyhow!("cannot fetch {url}: {why}")
    })?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(pull::read_small(response, url, limit, what).await?)
}
