//! The site: the immutable set of files of one corte, as visitors receive them.
//!
//! A [`Site`] is built once by the publisher and never changed afterwards; the server reads
//! it through one atomic pointer. Each path maps to an [`Entry`]: the exact bytes of the
//! institute's file (in memory, or the archived package itself for downloads), a strong ETag
//! from the content's SHA-256, the content type, and the package that last wrote it.
//!
//! # Guarantees
//! - Served bytes are the institute's bytes (invariant 4): an entry's body is a member of a
//!   verified package, unchanged, or the archived package file. The one page made here, the
//!   `/datos/` listing of data packages, is marked as ours by its content.
//! - The downloads' paths are the downloads': a site package's file at the listing's path, a
//!   listed zip's or the newest data package's unpacked files' is left out (the publisher
//!   journals which), so the bytes at a listed link are always those of the SHA-256 listed;
//!   a name has one row, the package its link serves (one sent again under its name, other
//!   bytes, takes the earlier one's row).
//! - Building a site never modifies the previous one: overlays share unchanged entries.
//! - [`Site::collision_with`] finds the file of a site package that, laid over this site,
//!   would sit beside a path the same but for letter case or Unicode normalisation (or a
//!   file where there is a folder), so that the publisher can refuse it: two such paths
//!   are one file where the institute unpacks its cortes, and visitors would keep the
//!   previous corte's bytes at the one they ask for.
//! - Everything a response needs besides the body (ETag, type, `Cache-Control`,
//!   `Last-Modified`) is computed here, once per file, never per request.
//! - A file's `Last-Modified` is when the package that wrote it was received, or the last
//!   rollback of the site's history if that is later ([`Site::modified_no_earlier_than`]):
//!   it never goes back in time at a URL, so a date-only revalidation never keeps a copy
//!   of a withdrawn corte.
//! - A file that changed within the second its date names (two cortes received in one
//!   second) is marked as sharing its date when its site is built ([`Site::apply`], so a
//!   start that rebuilds it marks it again) and when it goes live ([`Site::dated_after`]):
//!   the date alone then never revalidates it, so no visitor keeps the other bytes by it.
//! - [`Site::memory_bytes`] says what the site holds in memory, so the publisher can refuse a
//!   package that would take it past `max_site_bytes` and operators can watch it.

mod cache;
mod compress;
mod live;

pub(crate) use cache::CachePolicy;
pub(crate) use compress::{Compressor, Job, Variant, Variants};
pub(crate) use live::{Live, Swap, live};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;
use jiff::{Timestamp, ZonedDateTime};
use maud::{DOCTYPE, html};

use crate::config::{Config, Invalid, SiteMode, positive};
use crate::hash::Sha256;
use crate::package::{self, CorteSource, Member, PackageKind, VerifiedPackage};
use compress::compressible;

/// How packages make sites, from the settings.
#[derive(Debug, Clone)]
pub(crate) struct SiteSettings {
    /// `Cache-Control` per path.
    pub(crate) cache: Arc<CachePolicy>,
    /// Overlay or replace (`site_mode`).
    pub(crate) mode: SiteMode,
    /// Text in a package name that marks it as a complete site (`complete_marker`).
    pub(crate) complete_marker: String,
    /// Most bytes the live site may hold in memory (`max_site_bytes`).
    pub(crate) max_bytes: u64,
}

impl SiteSettings {
    /// Every site setting, validated; the first invalid one is the error.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let max_bytes = positive("max_site_bytes", s.max_site_bytes.as_u64())?;
        Ok(Self {
            cache: Arc::new(CachePolicy::from_config(config)?),
            mode: s.site_mode,
            complete_marker: s.complete_marker.clone(),
            max_bytes,
        })
    }
}

/// Where an entry's bytes are.
#[derive(Debug)]
pub(crate) enum Body {
    /// In memory.
    Memory(Bytes),
    /// An archived package file on disk (immutable, content-addressed).
    Archived {
        /// The file as it was verified.
        file: ArchivedFile,
        /// Whether the last attempt to send it found it changed or gone: its error is
        /// logged once per run of failures, not at every request a visitor repeats.
        failing: AtomicBool,
    },
}

/// An archived package file as it was when its hash was checked: served only while it is
/// still that file (a regular file, not a link, of the same size and modification time).
#[derive(Debug, Clone)]
pub(crate) struct ArchivedFile {
    /// Where it is kept.
    pub(crate) path: PathBuf,
    /// Its modification time then: any write since changes it.
    pub(crate) modified: SystemTime,
}

/// One servable file.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The bytes.
    pub(crate) body: Body,
    /// Length of the body in bytes.
    pub(crate) len: u64,
    /// Strong ETag: the quoted SHA-256 of the body.
    pub(crate) etag: HeaderValue,
    /// Content type.
    pub(crate) content_type: HeaderValue,
    /// SHA-256 of the package that last wrote this file, for `X-PREP-Package`.
    pub(crate) package: HeaderValue,
    /// `Cache-Control`, from the [`CachePolicy`].
    pub(crate) cache_control: HeaderValue,
    /// When the package that wrote this file was received (whole seconds).
    pub(crate) modified: SystemTime,
    /// `Last-Modified`: `modified` as an HTTP date.
    pub(crate) last_modified: HeaderValue,
    /// Whether a visitor may hold other bytes of this path under the same `Last-Modified`
    /// (the file changed within one second): the date alone then names no one copy, so it
    /// never answers a revalidation or an `If-Range` ([`Site::dated_after`]).
    pub(crate) date_shared: bool,
    /// Compressed variants, for files worth compressing (filled after publication).
    pub(crate) variants: Option<Arc<Variants>>,
}

impl Entry {
    /// This entry, its bytes and variants shared, as modified at `at`.
    fn modified_at(&self, at: SystemTime) -> Self {
        Self {
            modified: at,
            last_modified: http_date(at),
            date_shared: false,
            ..self.copy()
        }
    }

    /// This entry with its date marked as shared with other bytes.
    fn with_date_shared(&self) -> Self {
        Self {
            date_shared: true,
            ..self.copy()
        }
    }

    /// This entry again, its bytes and variants shared.
    fn copy(&self) -> Self {
        Self {
            body: match &self.body {
                Body::Memory(bytes) => Body::Memory(bytes.clone()),
                Body::Archived { file, .. } => Body::Archived {
                    file: file.clone(),
                    failing: AtomicBool::new(false),
                },
            },
            len: self.len,
            etag: self.etag.clone(),
            content_type: self.content_type.clone(),
            package: self.package.clone(),
            cache_control: self.cache_control.clone(),
            modified: self.modified,
            last_modified: self.last_modified.clone(),
            date_shared: self.date_shared,
            variants: self.variants.clone(),
        }
    }
}

/// The corte a site shows.
#[derive(Debug, Clone)]
pub(crate) struct Corte {
    /// Publication sequence number in the journal.
    pub(crate) seq: i64,
    /// Corte id, as in `X-PREP-Corte`.
    pub(crate) id: String,
    /// Corte time.
    pub(crate) time: ZonedDateTime,
    /// Where the corte time came from.
    pub(crate) source: CorteSource,
    /// The package that made this corte.
    pub(crate) package: Sha256,
    /// Its file name.
    pub(crate) package_name: String,
    /// When the package was received.
    pub(crate) received_at: Timestamp,
    /// When the corte went live.
    pub(crate) live_at: Timestamp,
}

/// A data package offered for download.
#[derive(Debug, Clone)]
struct Download {
    name: String,
    corte_id: String,
    corte_time: String,
    sha256: Sha256,
    size: u64,
}

/// The files of one corte.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    policy: Arc<CachePolicy>,
    corte: Option<Corte>,
    /// Header value of the corte id, made once.
    corte_header: Option<HeaderValue>,
    files: HashMap<String, Arc<Entry>>,
    /// Every data package, newest first.
    downloads: Vec<Download>,
    /// Paths of the newest data package's unpacked files (replaced by the next one).
    unpacked: Vec<String>,
    /// Files added since the last [`Site::take_jobs`] that need their variants made.
    jobs: Vec<Job>,
}

/// What the publisher knows of a package when building a site from it.
pub(crate) struct Applied<'a> {
    /// The verified package.
    pub(crate) package: &'a VerifiedPackage,
    /// Its archived copy.
    pub(crate) archived: ArchivedFile,
    /// Its corte id and time (RFC 3339), for the downloads page.
    pub(crate) corte_id: &'a str,
    /// Corte time as people read it.
    pub(crate) corte_time: &'a ZonedDateTime,
    /// Replace the site files instead of overlaying them.
    pub(crate) replace: bool,
    /// When the package was received: the files' `Last-Modified`.
    pub(crate) received_at: Timestamp,
}

/// A data package listed for download without being unpacked (see [`Site::list`]).
pub(crate) struct Listed<'a> {
    /// Its file name.
    pub(crate) name: &'a str,
    /// SHA-256 of the archived zip.
    pub(crate) sha256: Sha256,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// The archived zip.
    pub(crate) archived: ArchivedFile,
    /// Its corte id.
    pub(crate) corte_id: &'a str,
    /// Its corte time.
    pub(crate) corte_time: &'a ZonedDateTime,
    /// When it was received.
    pub(crate) received_at: Timestamp,
}

impl Site {
    /// An empty site whose files will be served with `policy`.
    pub(crate) fn new(policy: Arc<CachePolicy>) -> Self {
        Self {
            policy,
            corte: None,
            corte_header: None,
            files: HashMap::new(),
            downloads: Vec::new(),
            unpacked: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// The files whose variants are still to be made, for the [`Compressor`]; files
    /// replaced since they were added are left out.
    pub(crate) fn take_jobs(&mut self) -> Vec<Job> {
        let files = &self.files;
        std::mem::take(&mut self.jobs)
            .into_iter()
            .filter(|job| {
                files
                    .get(&job.path)
                    .and_then(|e| e.variants.as_ref())
                    .is_some_and(|v| Arc::ptr_eq(v, &job.variants))
            })
            .collect()
    }

    /// The live corte, if any.
    pub(crate) fn corte(&self) -> Option<&Corte> {
        self.corte.as_ref()
    }

    /// The `X-PREP-Corte` value, if a corte is live.
    pub(crate) fn corte_header(&self) -> Option<&HeaderValue> {
        self.corte_header.as_ref()
    }

    /// Number of files.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// Bytes this site holds in memory: the bodies of its files and the compressed variants
    /// made so far (downloads served from the archive are not counted). Entries shared with
    /// another site are counted here too.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.files
            .values()
            .map(|entry| {
                let body = match &entry.body {
                    Body::Memory(bytes) => bytes.len() as u64,
                    Body::Archived { .. } => 0,
                };
                body + entry.variants.as_ref().map_or(0, |v| v.memory_bytes())
            })
            .sum()
    }

    /// The entry for a normalised absolute path (`/json/main.json`); a path ending in `/`
    /// finds its `index.html`.
    pub(crate) fn get(&self, path: &str) -> Option<&Arc<Entry>> {
        if path.ends_with('/') {
            self.files.get(&format!("{path}index.html"))
        } else {
            self.files.get(path)
        }
    }

    /// Whether `path` is a folder of the site (so `path/` would find its index).
    pub(crate) fn is_dir(&self, path: &str) -> bool {
        self.files.contains_key(&format!("{path}/index.html"))
    }

    /// The same site, marked as showing `corte`.
    pub(crate) fn with_corte(mut self, corte: Corte) -> Self {
        self.corte_header = HeaderValue::from_str(&corte.id).ok();
        self.corte = Some(corte);
        self
    }

    /// A new site: this one with `applied` laid over it (or replacing its site files).
    pub(crate) fn apply(&self, applied: &Applied<'_>) -> Self {
        let mut next = self.clone();
        next.corte = None;
        next.corte_header = None;
        let pkg = applied.package;
        let package = header_of(pkg.sha256());
        let modified = whole_seconds(applied.received_at);
        match pkg.kind() {
            PackageKind::Site => {
                if applied.replace {
                    next.files.retain(|path, _| self.is_download(path));
                }
                for member in pkg.files() {
                    let path = format!("/{}", member.path);
                    if !self.is_download(&path) {
                        next.insert(&path, member, &package, modified);
                    }
                }
            }
            PackageKind::Data => next.add_download(applied, &package),
        }
        // Marked now, not only when it goes live: a start rebuilding the site the same
        // way marks it again.
        next.marked_against(self, None)
    }

    /// This site with every file modified before `at` marked modified at `at`: a rollback
    /// brings back files whose own receipt times are older than the copies visitors hold of
    /// the files it withdrew, and a client revalidating by date alone (`If-Modified-Since`)
    /// must be told they changed. Files a later package wrote keep their own, later, time.
    pub(crate) fn modified_no_earlier_than(mut self, at: Timestamp) -> Self {
        let at = whole_seconds(at);
        for entry in self.files.values_mut() {
            if entry.modified < at {
                *entry = Arc::new(entry.modified_at(at));
            }
        }
        self
    }

    /// This site, about to replace `live`, with the date of each entry marked shared
    /// ([`Entry::date_shared`]) where a visitor may hold other bytes of its path under the
    /// same `Last-Modified`: a file that changed within one second must not be answered 304,
    /// or a range of it sent, on its date alone.
    ///
    /// A copy served by `live` carries the date of `live`'s entry; one served earlier, the
    /// date of an entry no later than the second `live` went live (every entry is dated no
    /// later than its site went live). So an entry is marked when it differs from `live`'s
    /// at its path (or `live` has none there) and is dated no later than `live` went live;
    /// an entry `live` served as it is keeps its mark. A site replacing none (at start) has
    /// only the marks it was built with ([`Site::apply`]).
    pub(crate) fn dated_after(self, live: &Site) -> Self {
        match live.corte().map(|c| whole_seconds(c.live_at)) {
            Some(went_live) => self.marked_against(live, Some(went_live)),
            None => self,
        }
    }

    /// This site with the date of each of its entries marked shared where the entry at its
    /// path in `before` holds other bytes under the same date, or the same bytes under a
    /// date marked shared, or (with `bound`) where it differs from `before`'s and is dated
    /// no later than `bound`.
    fn marked_against(mut self, before: &Site, bound: Option<SystemTime>) -> Self {
        for (path, entry) in &mut self.files {
            if entry.date_shared {
                continue;
            }
            let old = before.files.get(path);
            let shared = match old {
                Some(old) if old.modified == entry.modified => {
                    old.etag != entry.etag || old.date_shared
                }
                _ => bound.is_some_and(|bound| entry.modified <= bound),
            };
            if shared {
                *entry = Arc::new(entry.with_date_shared());
            }
        }
        self
    }

    /// Whether `path` is one of the downloads this site offers (the `/datos/` listing, a data
    /// package's zip or its unpacked files): a site package's file at such a path is not
    /// served, so the listing's SHA-256 is always that of the bytes at its link.
    pub(crate) fn is_download(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix("/datos/") else {
            return false;
        };
        !self.downloads.is_empty() && rest == "index.html"
            || self.downloads.iter().any(|d| d.name == rest)
            || self.unpacked.iter().any(|p| p == path)
    }

    /// The files of a site package that [`Site::apply`] leaves out because they would take
    /// a download's path ([`Site::is_download`]), at most `max` of them.
    pub(crate) fn shadowed_by_downloads(&self, pkg: &VerifiedPackage, max: usize) -> Vec<String> {
        if pkg.kind() != PackageKind::Site {
            return Vec::new();
        }
        pkg.files()
            .iter()
            .map(|m| format!("/{}", m.path))
            .filter(|path| self.is_download(path))
            .take(max)
            .collect()
    }

    /// The first file of the site package `pkg` whose path, laid over this site (`replace`:
    /// over its downloads only), would sit beside a path of this site that is the same but
    /// for letter case or Unicode normalisation, or where this site has a folder, or under a
    /// path where this site has a file: `(the package's path, this site's path)`.
    ///
    /// Served together, both paths would answer, and the one visitors ask for would keep the
    /// previous corte's bytes: what unpacking the package over the previous files (the calls'
    /// "overwrite") does on a case-insensitive or normalising file system is not what the site
    /// would be. The same rule as between the members of one package
    /// ([`package::comparable_path`]).
    pub(crate) fn collision_with(
        &self,
        pkg: &VerifiedPackage,
        replace: bool,
    ) -> Option<(String, String)> {
        if pkg.kind() != PackageKind::Site {
            return None;
        }
        let new: Vec<String> = pkg
            .files()
            .iter()
            .map(|m| format!("/{}", m.path))
            .filter(|path| !self.is_download(path))
            .collect();
        let replaced: HashSet<&str> = new.iter().map(String::as_str).collect();
        // Comparable form → (path as this site has it, whether it is a folder).
        let mut kept: HashMap<String, (&str, bool)> = HashMap::new();
        for path in self.files.keys().map(String::as_str) {
            if replaced.contains(path) || (replace && !self.is_download(path)) {
                continue;
            }
            kept.insert(package::comparable_path(path), (path, false));
            for dir in folders(path) {
                kept.insert(package::comparable_path(dir), (dir, true));
            }
        }
        for path in &new {
            if let Some(&(old, is_dir)) = kept.get(&package::comparable_path(path))
                && (is_dir || old != path)
            {
                return Some((path.clone(), old.to_owned()));
            }
            for dir in folders(path) {
                if let Some(&(old, is_dir)) = kept.get(&package::comparable_path(dir))
                    && (!is_dir || old != dir)
                {
                    return Some((path.clone(), old.to_owned()));
                }
            }
        }
        None
    }

    fn insert(&mut self, path: &str, member: &Member, package: &HeaderValue, modified: SystemTime) {
        let etag = etag_of(member.sha256);
        let content_type = content_type(path, &member.bytes);
        let variants = compressible(content_type.to_str().unwrap_or(""), member.bytes.len())
            .then(|| self.variants_for(path, &etag, &member.bytes));
        let entry = Entry {
            len: member.bytes.len() as u64,
            etag,
            content_type,
            package: package.clone(),
            cache_control: self.policy.for_path(path),
            modified,
            last_modified: http_date(modified),
            date_shared: false,
            variants,
            body: Body::Memory(member.bytes.clone()),
        };
        self.files.insert(path.to_owned(), Arc::new(entry));
    }

    /// The variants of the previous file at `path` if its bytes were the same, else new ones
    /// queued for compression.
    fn variants_for(&mut self, path: &str, etag: &HeaderValue, bytes: &Bytes) -> Arc<Variants> {
        if let Some(previous) = self.files.get(path)
            && previous.etag == *etag
            && let Some(v) = &previous.variants
        {
            return v.clone();
        }
        let variants = Arc::new(Variants::default());
        self.jobs.push(Job {
            path: path.to_owned(),
            bytes: bytes.clone(),
            etag: etag.clone(),
            variants: variants.clone(),
        });
        variants
    }
    /// A data package: the zip unchanged at `/datos/<name>` (served from the archive), its
    /// inner files at `/datos/<stem>/…` (replacing the previous data package's), and the
    /// `/datos/` listing.
    fn add_download(&mut self, applied: &Applied<'_>, package: &HeaderValue) {
        let pkg = applied.package;
        for old in std::mem::take(&mut self.unpacked) {
            self.files.remove(&old);
        }
        self.register(&Listed {
            name: pkg.name(),
            sha256: pkg.sha256(),
            size: pkg.size(),
            archived: applied.archived.clone(),
            corte_id: applied.corte_id,
            corte_time: applied.corte_time,
            received_at: applied.received_at,
        });
        let modified = whole_seconds(applied.received_at);
        let stem = stem(pkg.name());
        for member in pkg.nested().iter().chain(pkg.files()) {
            let path = format!("/datos/{stem}/{}", member.path);
            self.insert(&path, member, package, modified);
            self.unpacked.push(path);
        }
        let page = Bytes::from(self.downloads_page(&stem, pkg));
        let member = Member::new("datos/index.html", page);
        self.insert("/datos/index.html", &member, package, modified);
    }

    /// A new site: this one with an earlier data package offered again at
    /// `/datos/<name>`, without unpacking it. Used when rebuilding at start, for data
    /// packages that verified when they were published and that a later data package has
    /// since superseded; the last one is applied whole, which writes the listing.
    pub(crate) fn list(&self, listed: &Listed<'_>) -> Self {
        let mut next = self.clone();
        next.corte = None;
        next.corte_header = None;
        next.register(listed);
        next.marked_against(self, None)
    }

    /// Serves the archived zip at `/datos/<name>` and adds it to the listing's rows.
    fn register(&mut self, listed: &Listed<'_>) {
        let path = format!("/datos/{}", listed.name);
        let modified = whole_seconds(listed.received_at);
        let entry = Entry {
            body: Body::Archived {
                file: listed.archived.clone(),
                failing: AtomicBool::new(false),
            },
            len: listed.size,
            etag: etag_of(listed.sha256),
            content_type: content_type(listed.name, &[]),
            package: header_of(listed.sha256),
            cache_control: self.policy.for_path(&path),
            modified,
            last_modified: http_date(modified),
            date_shared: false,
            variants: None,
        };
        self.files.insert(path, Arc::new(entry));
        // One row a link: a package sent again under its name (other bytes) takes the row of
        // the one its link no longer serves, so every SHA-256 listed is what its link gives.
        self.downloads
            .retain(|d| d.sha256 != listed.sha256 && d.name != listed.name);
        self.downloads.push(Download {
            name: listed.name.to_owned(),
            corte_id: listed.corte_id.to_owned(),
            corte_time: listed.corte_time.strftime("%d/%m/%Y %H:%M %Z").to_string(),
            sha256: listed.sha256,
            size: listed.size,
        });
        self.downloads
            .sort_by(|a, b| b.corte_id.cmp(&a.corte_id).then(b.name.cmp(&a.name)));
    }

    /// The Spanish listing of every data package, newest first. Every name is escaped by
    /// the template and percent-encoded in its link.
    fn downloads_page(&self, newest_stem: &str, newest: &VerifiedPackage) -> String {
        html! {
            (DOCTYPE)
            html lang="es" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Datos abiertos del PREP" }
                }
                body {
                    h1 { "Datos abiertos del PREP" }
                    p {
                        "Cada paquete se publica sin cambios, tal como lo entregó el instituto. \
                         Su huella SHA-256 permite comprobar que el archivo descargado es idéntico."
                    }
                    table {
                        thead { tr { th { "Corte" } th { "Archivo" } th { "Bytes" } th { "SHA-256" } } }
                        tbody {
                            @for d in &self.downloads {
                                tr {
                                    td { (d.corte_time) }
                                    td { a href=(url_escape(&d.name)) { (d.name) } }
                                    td { (d.size) }
                                    td { code { (d.sha256) } }
                                }
                            }
                        }
                    }
                    h2 { "Archivos del corte más reciente" }
                    ul {
                        @for m in newest.nested().iter().chain(newest.files()) {
                            li { a href=(url_escape(&format!("{newest_stem}/{}", m.path))) { (m.path) } }
                        }
                    }
                }
            }
        }
        .into_string()
    }
}

/// A timestamp cut to whole seconds, as HTTP dates carry it.
fn whole_seconds(t: Timestamp) -> SystemTime {
    let secs = u64::try_from(t.as_second()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

fn header_of(sha: Sha256) -> HeaderValue {
    HeaderValue::from_str(&sha.to_hex()).unwrap_or(HeaderValue::from_static("unknown"))
}

fn etag_of(sha: Sha256) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", sha.to_hex()))
        .unwrap_or(HeaderValue::from_static("\"\""))
}

/// The folders a site path (`/a/b/c.json`) is in, the root left out: `/a`, `/a/b`.
fn folders(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .filter_map(|(at, _)| path.get(..at))
}

/// A package name without its archive extension.
fn stem(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    for ext in [".tar.gz", ".tgz", ".zip", ".tar"] {
        if lower.ends_with(ext) {
            return name[..name.len() - ext.len()].to_owned();
        }
    }
    name.to_owned()
}

/// The content type by extension; text that is valid UTF-8 says so.
fn content_type(path: &str, bytes: &[u8]) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JSON
        || mime.subtype() == mime_guess::mime::JAVASCRIPT;
    let value = if text && std::str::from_utf8(bytes).is_ok() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Percent-encodes a relative URL path, keeping `/`.
fn url_escape(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_types() {
        assert_eq!(
            stem("20210601_1852_PREP_CAMP.zip"),
            "20210601_1852_PREP_CAMP"
        );
        assert_eq!(stem("a.TAR.GZ"), "a");
        assert_eq!(
            content_type("/json/main.json", b"{}"),
            "application/json; charset=utf-8"
        );
        assert_eq!(content_type("/a.csv", b"\xe9"), "text/csv");
        assert_eq!(content_type("/x.zip", b""), "application/zip");
        assert_eq!(url_escape("a b/c.zip"), "a%20b/c.zip");
    }
}
