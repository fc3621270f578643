//! `difusor simulate --serve ADDR`: the delivery folder served over HTTP (or HTTPS with
//! `--serve-cert` and `--serve-key`), for a difusor that pulls its packages.
//!
//! It owns one listener and answers, from the folder as it is at each request:
//! - `GET /`: the folder's index as JSON, in the shape of nginx's `autoindex_format json`:
//!   `[{"name":"…","type":"file","mtime":"Sun, 06 Jun 2027 20:00:00 GMT","size":12345}, …]`;
//! - `GET /<name>`: the file's bytes.
//!
//! # Guarantees
//! - Only complete files are listed or served: names starting with `.` (uploads in progress,
//!   `.<name>.part`) never are, nor folders or symbolic links. The index is sorted by name and
//!   lists the `.sha256` and `.minisig` files too.
//! - A path that is not exactly `/` or `/<plain name of the folder>` (a further `/`, `..`,
//!   an encoded `%2F`, a hidden name) gets 404; nothing outside the folder is ever read.
//! - Every file carries a strong `ETag`, `"<SHA-256 of its bytes in hex>"`, and
//!   `Last-Modified`; the index carries a strong `ETag` that changes whenever the listing
//!   does, `Last-Modified` and `Cache-Control: no-cache`. `If-None-Match` and, for files,
//!   `If-Modified-Since` get 304, decided by [`crate::http::conditional`]. The index's own
//!   date never does (two cortes can arrive within the same second), only a later one.
//! - GET and HEAD only; any other method gets 405 with `Allow: GET, HEAD`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::hash::Sha256;
use crate::http::conditional::{self, Plan, Validators};
use crate::http::tls::Tls;
use crate::http::{BoxedBody, ConnectionRules, file_body, full};

/// Longest wait for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a write may stay blocked on a client that does not read.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head, in bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Where to serve (`--serve`, `--serve-cert`, `--serve-key`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Certificate chain and private key (PEM), for HTTPS.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
}

/// A running server; stopped by [`Serving::stop`].
pub(crate) struct Serving {
    url: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Serving {
    /// `http://addr/` or `https://addr/`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops listening and waits (up to ten seconds) for open requests.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Loads the certificate, binds the listener and starts serving `dir`.
pub(crate) async fn start(options: &Options, dir: PathBuf) -> Result<Serving> {
    let tls = match &options.tls {
        Some((cert, key)) => Some(Tls::load(cert, key).with_context(|| {
            format!(
                "cannot use --serve-cert {} with --serve-key {}",
                cert.display(),
                key.display()
            )
        })?),
        None => None,
    };
    let listener = TcpListener::bind(options.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (--serve): is another program using it?",
            options.listen
        )
    })?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{address}/");
    let rules = ConnectionRules {
        limits: None,
        tls,
        header_timeout: HEADER_TIMEOUT,
        send_timeout: SEND_TIMEOUT,
        max_header_bytes: MAX_HEADER_BYTES,
        handshake_refusals: None,
        protocol_refusals: None,
    };
    let state = Arc::new(Folder {
        dir,
        etags: Mutex::new(HashMap::new()),
    });
    let (stop, stopped) = watch::channel(false);
    let handler = move |_peer: SocketAddr, req: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move { respond(&state, &req).await }
    };
    let task = tokio::spawn(crate::http::serve(listener, rules, handler, stopped));
    tracing::info!(%url, "simulate: serving the delivered files");
    Ok(Serving { url, stop, task })
}

/// The served folder, and the ETags of its files by identity.
struct Folder {
    dir: PathBuf,
    etags: Mutex<HashMap<String, (FileKey, HeaderValue)>>,
}

/// What identifies one version of a file: replaced or rewritten, it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileKey {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// Answers one request.
async fn respond(folder: &Folder, req: &Request<Incoming>) -> Response<BoxedBody> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
    };
    let path = req.uri().path();
    let answer = if path == "/" {
        index(folder, req.headers(), head).await
    } else {
        match plain_name(path) {
            Some(name) => file(folder, &name, req.headers(), head).await,
            None => Ok(not_found()),
        }
    };
    answer.unwrap_or_else(|e| {
        tracing::warn!(path, error = %e, "simulate: cannot serve");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the folder\n",
        )
    })
}

/// The file name `/<name>` asks for, if it is a plain visible name.
fn plain_name(path: &str) -> Option<String> {
    let raw = path.strip_prefix('/')?;
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    plain.then(|| name.into_owned())
}

/// One entry of the index, in nginx's `autoindex_format json` field order.
#[derive(serde::Serialize)]
struct IndexEntry {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mtime: String,
    size: u64,
}

/// `GET /`: the index as JSON.
async fn index(
    folder: &Folder,
    headers: &HeaderMap,
    head: bool,
) -> std::io::Result<Response<BoxedBody>> {
    let dir = folder.dir.clone();
    let (body, modified) = tokio::task::spawn_blocking(move || listing(&dir))
        .await
        .map_err(std::io::Error::other)??;
    let etag = strong_etag(&body);
    let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let validators = Validators {
        etag: &etag,
        modified,
        // Only the ETag validates the index: two cortes can arrive within one second.
        date_shared: true,
        len,
    };
    let not_modified = conditional::plan(headers, &validators, false) == Plan::NotModified;
    let mut res = if not_modified || head {
        Response::new(full(Vec::new()))
    } else {
        Response::new(full(body))
    };
    if not_modified {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = res.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::LAST_MODIFIED, http_date(modified));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if !not_modified {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(res)
}

/// The index's JSON and the latest modification time of the folder and its files.
fn listing(dir: &Path) -> std::io::Result<(Vec<u8>, SystemTime)> {
    let mut latest = std::fs::metadata(dir)?.modified()?;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue; // gone meanwhile
        };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified()?;
        latest = latest.max(modified);
        entries.push(IndexEntry {
            name,
            kind: "file",
            mtime: httpdate::fmt_http_date(modified),
            size: meta.len(),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let body = serde_json::to_vec(&entries).map_err(std::io::Error::other)?;
    Ok((body, whole_seconds(latest)))
}

/// An open file of the folder, with what a response needs.
struct Found {
    file: std::fs::File,
    /// The bytes, when they were read to compute the ETag.
    bytes: Option<Vec<u8>>,
    etag: HeaderValue,
    modified: SystemTime,
    len: u64,
}

/// `GET /<name>`: the file.
async fn file(
    folder: &Folder,
    name: &str,
    headers: &HeaderMap,
    head: bool,
) -> std::io::Result<Response<BoxedBody>> {
    let found = {
        let path = folder.dir.join(name);
        let cached = |key: &FileKey| -> Option<HeaderValue> {
            let etags = folder.etags.lock().ok()?;
            etags
                .get(name)
                .filter(|(k, _)| k == key)
                .map(|(_, etag)| etag.clone())
        };
        let meta = match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(not_found()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(not_found()),
            Err(e) => return Err(e),
        };
        let key = FileKey::of(&meta);
        let known = cached(&key);
        let opened = tokio::task::spawn_blocking(move || open(&path, key, known))
            .await
            .map_err(std::io::Error::other)?;
        match opened {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(not_found()),
            Err(e) => return Err(e),
        }
    };
    if found.bytes.is_some()
        && let Ok(mut etags) = folder.etags.lock()
        && let Ok(meta) = found.file.metadata()
    {
        etags.insert(name.to_owned(), (FileKey::of(&meta), found.etag.clone()));
    }
    let validators = Validators {
        etag: &found.etag,
        modified: found.modified,
        // A package's file is written once under its name.
        date_shared: false,
        len: found.len,
    };
    let not_modified = conditional::plan(headers, &validators, false) == Plan::NotModified;
    let body = if not_modified || head {
        full(Vec::new())
    } else {
        match found.bytes {
            Some(bytes) => full(bytes),
            None => file_body(tokio::fs::File::from_std(found.file)),
        }
    };
    let mut res = Response::new(body);
    if not_modified {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = res.headers_mut();
    h.insert(header::ETAG, found.etag);
    h.insert(header::LAST_MODIFIED, http_date(found.modified));
    if !not_modified {
        h.insert(header::CONTENT_TYPE, content_type(name));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(found.len));
    }
    Ok(res)
}

/// Opens the regular file at `path`, seen as version `key`, and finds its ETag: `known` if
/// the open file is still that version, else from its bytes, which are then kept for the
/// response.
fn open(path: &Path, key: FileKey, known: Option<HeaderValue>) -> std::io::Result<Option<Found>> {
    use std::io::Read as _;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let known = known.filter(|_| FileKey::of(&meta) == key);
    let modified = whole_seconds(meta.modified()?);
    let (etag, bytes) = match known {
        Some(etag) => (etag, None),
        None => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            (strong_etag(&bytes), Some(bytes))
        }
    };
    let len = match &bytes {
        Some(b) => u64::try_from(b.len()).unwrap_or(u64::MAX),
        None => meta.len(),
    };
    Ok(Some(Found {
        file,
        bytes,
        etag,
        modified,
        len,
    }))
}

/// `"<sha256 hex>"`.
fn strong_etag(bytes: &[u8]) -> HeaderValue {
    let tag = format!("\"{}\"", Sha256::of(bytes).to_hex());
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// A time as an HTTP date.
fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(time))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// `time` without its fraction of a second, as HTTP dates carry it.
fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// The content type by extension: packages, evidence (text) and the rest.
fn content_type(name: &str) -> HeaderValue {
    let lower = name.to_ascii_lowercase();
    let value = if lower.ends_with(".zip") {
        "application/zip"
    } else if lower.ends_with(".sha256") || lower.ends_with(".minisig") || lower.ends_with(".txt") {
        "text/plain; charset=utf-8"
    } else if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        "application/gzip"
    } else if lower.ends_with(".tar") {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    HeaderValue::from_static(value)
}

/// A short plain-text response.
fn text(status: StatusCode, message: &'static str) -> Response<BoxedBody> {
    let mut res = Response::new(full(message));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// 404.
fn not_found() -> Response<BoxedBody> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn only_plain_visible_names_are_served() {
        assert_eq!(plain_name("/a.zip").as_deref(), Some("a.zip"));
        assert_eq!(plain_name("/a%20b.zip").as_deref(), Some("a b.zip"));
        for bad in [
            "/",
            "/.a",
            "/.a.zip.part",
            "/a/b",
            "/../x",
            "/%2e%2e/x",
            "/%2e%2e",
            "/a%2Fb",
            "/%2Fetc",
            "/a%00",
            "/%ff",
            "/a\\b",
        ] {
            assert_eq!(plain_name(bad), None, "{bad}");
        }
    }
}
