//! The operator commands besides `serve`: `init`, `ingest`, `history`, `rollback`, `inspect`.
//!
//! `ingest`, `rollback` and `notice` write to the data folder, which has one writer
//! ([`crate::store`]). When its lock is free (no server runs on it), they take it and do the
//! work themselves, through the same [`crate::publisher::Publisher`] a server runs, so the
//! result is the same either way. When a server holds it, they ask that server through its
//! admin listener; when that listener does not answer, they stop with a message saying so
//! ([`Busy`], exit status 4), and never work on the folder beside the server.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jiff::Timestamp;
use tokio::net::TcpStream;

use crate::config::{self, Config, Settings};
use crate::http::{BoxedBody, file_body, full};
use crate::intake::operator_evidence;
use crate::intake::{Channel, Received};
use crate::journal::{EventKind, Journal};
use crate::package::{self, EvidenceFile, PackageName, PackageSettings};
use crate::prep;
use crate::publisher::Outcome;
use crate::sections::Sections;
use crate::serve::rebuilt_publisher;
use crate::store::{self, Busy, Layout, Store};

/// Writes `difusor.toml` (commented, with the profile's values) and the folders into `dir`.
pub(crate) fn init(dir: &Path, profile: &str, force: bool, self_signed: bool) -> Result<()> {
    let file = dir.join(config::DEFAULT_CONFIG_FILE);
    if file.exists() && !force {
        bail!(
            "{} already exists; keep it, or run again with --force to overwrite it",
            file.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut set = toml::Table::new();
    let layout = Layout::new(dir);
    if self_signed {
        crate::http::tls::self_signed(&layout.self_signed_tls())
            .map_err(|e| anyhow!("cannot write the self-signed pair: {e}"))?;
        set.insert(
            "tls_listen".into(),
            toml::Value::Array(vec!["127.0.0.1:8443".into()]),
        );
        set.insert("tls_cert".into(), "tls/cert.pem".into());
        set.insert("tls_key".into(), "tls/key.pem".into());
        println!(
            "Wrote a self-signed certificate for localhost in {} (for tests and drills only).",
            layout.self_signed_tls().display()
        );
    }
    let text = config::commented_file(profile, &set)?;
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    let mut made = Vec::new();
    for (folder, name) in layout.init_folders() {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        made.push(name);
    }
    let host_key = layout.default_sftp_host_key();
    if !host_key.exists() {
        crate::intake::sftp::ensure_host_key(&host_key)?;
        println!(
            "Made the SFTP host key {} (used when sftp_listen is set).",
            host_key.display()
        );
    }
    println!(
        "Wrote {} (profile {profile}) and the folders {}.",
        file.display(),
        made.join(", ")
    );
    println!(
        "Next: review publish_start and listen, then run `difusor serve --config {}`.",
        file.display()
    );
    Ok(())
}

/// Exit status of `ingest` for an outcome: 0 kept (published, duplicate, older), 1 rejected
/// (the package's fault), 2 failed (this machine's fault: send it again), 3 held for an
/// operator. 4 ([`BUSY_EXIT`]) is for a data folder held by a server that cannot be reached.
pub(crate) fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Published { .. } | Outcome::Duplicate { .. } | Outcome::Older { .. } => 0,
        Outcome::Rejected { .. } => 1,
        Outcome::Failed { .. } => 2,
        Outcome::Held { .. } => 3,
    }
}

/// Says on stderr, for an outcome that is this machine's fault, that the package is not
/// to blame and should be sent again.
pub(crate) fn explain(outcome: &Outcome) {
    if let Outcome::Failed { error, .. } = outcome {
        eprintln!(
            "difusor: the package was not taken because of a fault on this server's side, not \
             of the package ({error}); nothing was decided about it: send it again once that \
             is repaired"
        );
    }
}

/// Exit status when the data folder is held by another process that cannot be asked.
pub(crate) const BUSY_EXIT: u8 = 4;

/// Who writes for a command: this process, holding the data folder's lock, or the server
/// that holds it, asked through its admin listener.
enum Writer {
    /// No server runs on the folder: this process holds its lock.
    Here(Store),
    /// A connection to the admin listener of the server that holds the folder.
    Server(TcpStream),
}

/// Takes the data folder's lock, or finds the server that holds it; a server that does not
/// answer on `admin_listen` is an error ([`Busy`]), never a reason to write beside it.
async fn writer(config: &Config) -> Result<Writer> {
    let busy = match store::lock(&config.data_dir)? {
        Ok(lock) => {
            return Ok(Writer::Here(Store::open(config, lock)?));
        }
        Err(busy) => busy,
    };
    match connect(config).await {
        Some(stream) => Ok(Writer::Server(stream)),
        None => Err(Busy {
            hint: format!(
                "nothing answers on its admin listener at {} (setting `admin_listen`), so \
                 nothing was done. Give this command that server's `admin_listen` (with \
                 --config or --admin-listen) and, when it has one, its admin token (in \
                 `admin_token_file` or DIFUSOR_ADMIN_TOKEN); or stop that server to work on \
                 the folder here",
                config.admin_listen
            ),
            ..busy
        }
        .into()),
    }
}

/// Hands `file` to the server that holds the data folder, or processes it here. With `force`, a package whose
/// corte time would hold it, or that was set aside, is published all the same (it is
/// verified all the same).
pub(crate) async fn ingest(sections: Sections, file: &Path, force: bool) -> Result<Outcome> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} names no file, or one not valid UTF-8", file.display()))
        .and_then(|n| {
            PackageName::parse(n).map_err(|e| {
                anyhow!(
                    "{} is not a usable package file name: the name {e}",
                    file.display()
                )
            })
        })?;
    // The operator's own files: a link given here is followed on purpose (the intake
    // folder never follows one).
    let followed = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let evidence = |ext, what| operator_evidence(file, ext, what).context("nothing was ingested");
    let (sidecar, signature) = (
        evidence("sha256", "sidecar")?,
        evidence("minisig", "signature")?,
    );
    let config = &sections.config;
    let store = match writer(config).await? {
        Writer::Here(store) => store,
        Writer::Server(stream) => {
            return ingest_remote(stream, config, file, &name, sidecar, signature, force).await;
        }
    };
    let (publisher, _live) = rebuilt_publisher(&sections, &store, None)?;
    let received = Received {
        hashed: None,
        name,
        path: followed(file),
        channel: Channel::Cli,
        origin: None,
        sidecar,
        signature,
        received_at: Timestamp::now(),
    };
    Ok(if force {
        publisher.handle_forced(received)
    } else {
        publisher.handle(received)
    })
}

/// Uploads `file` to the server's admin listener and returns what became of it.
async fn ingest_remote(
    stream: TcpStream,
    config: &Config,
    file: &Path,
    name: &str,
    sidecar: Option<EvidenceFile>,
    signature: Option<EvidenceFile>,
    force: bool,
) -> Result<Outcome> {
    let body = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut req = Request::post("/ingest")
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .header("x-difusor-name", enc(name));
    // Evidence goes as the bytes it is, or as its size when too large to be evidence.
    for (header, file) in [
        ("x-difusor-sidecar", &sidecar),
        ("x-difusor-signature", &signature),
    ] {
        match file {
            Some(EvidenceFile::Sent(bytes)) => {
                let value =
                    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC)
                        .to_string();
                req = req.header(header, value);
            }
            Some(EvidenceFile::TooLarge(len)) => {
                req = req.header(format!("{header}-too-large"), len.to_string());
            }
            None => {}
        }
    }
    if force {
        req = req.header("x-difusor-force", "1");
    }
    let (_, value) = send(stream, config, req, file_body(body)).await?;
    serde_json::from_value(value.clone()).map_err(|_| anyhow!("the server answered: {value}"))
}

/// Publishes corte `corte` again, through the server that holds the data folder or here.
pub(crate) async fn rollback(sections: Sections, corte: &str) -> Result<Outcome> {
    let config = &sections.config;
    let store = match writer(config).await? {
        Writer::Here(store) => store,
        Writer::Server(stream) => {
            let enc =
                percent_encoding::utf8_percent_encode(corte, percent_encoding::NON_ALPHANUMERIC);
            let req = Request::post(format!("/rollback?corte={enc}"));
            let (_, value) = send(stream, config, req, full(Bytes::new())).await?;
            return serde_json::from_value(value.clone())
                .map_err(|_| anyhow!("the server answered: {value}"));
        }
    };
    let (publisher, _live) = rebuilt_publisher(&sections, &store, None)?;
    Ok(publisher.rollback(corte))
}

/// Puts the institute's notice in force (`Some(text)`) or lifts it, through the server that
/// holds the data folder; with none running, records it in the journal for the next start.
pub(crate) async fn notice(config: Config, text: Option<String>) -> Result<String> {
    let text = text
        .map(|t| crate::http::gate::notice_text(&t))
        .transpose()?;
    let store = match writer(&config).await? {
        Writer::Here(store) => store,
        Writer::Server(stream) => return notice_remote(stream, &config, text).await,
    };
    let (kind, detail) = match &text {
        Some(t) => (EventKind::NoticeOn, serde_json::json!({"text": t})),
        None => (EventKind::NoticeOff, serde_json::json!({})),
    };
    store.journal.record(kind, None, detail)?;
    Ok(
        "No server runs on this data folder; recorded in the journal: it applies when the \
         server starts."
            .to_owned(),
    )
}

/// Asks the server's admin listener to put the notice in force or lift it.
async fn notice_remote(stream: TcpStream, config: &Config, text: Option<String>) -> Result<String> {
    let (req, body) = match &text {
        Some(t) => (
            Request::post("/notice").header(http::header::CONTENT_TYPE, "application/json"),
            serde_json::json!({"text": t}).to_string(),
        ),
        None => (Request::post("/notice/off"), String::new()),
    };
    let (status, value) = send(stream, config, req, full(Bytes::from(body))).await?;
    if !status.is_success() {
        bail!("the server refused: {value}");
    }
    Ok(match text {
        Some(_) => "The notice now replaces the results on every public path.".to_owned(),
        None => "The notice is lifted: the results are shown again.".to_owned(),
    })
}

/// Prints the cortes and the latest events.
pub(crate) fn history(config: &Config, json: bool, events: usize) -> Result<()> {
    let path = Layout::new(&config.data_dir).journal();
    if !path.exists() {
        bail!(
            "no journal at {}: nothing was received in this data folder yet (check --data-dir or --config)",
            path.display()
        );
    }
    // Read only: a copy on read-only media, or beside the server that writes it.
    let (pubs, evs) = Journal::open_read_only(&path)
        .and_then(|journal| Ok((journal.publications()?, journal.events(events)?)))
        .map_err(|e| e.explained(format!("cannot read the journal {}", path.display())))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"cortes": pubs, "events": evs}))?
        );
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "#", "corte", "kind", "build", "package", "name", "live at", "lag s",
    ]);
    for p in pubs.iter().rev() {
        t.add_row([
            p.seq.to_string(),
            p.corte_id.clone(),
            p.kind.as_str().to_owned(),
            format!("{:?}", p.build).to_lowercase(),
            p.package.to_hex()[..12].to_owned(),
            p.name.clone(),
            p.live_at.to_string(),
            format!("{:.3}", p.lag_ms as f64 / 1000.0),
        ]);
    }
    println!("Cortes published (newest first):\n{t}");
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["#", "at", "event", "package", "detail"]);
    for e in &evs {
        t.add_row([
            e.id.to_string(),
            e.at.to_string(),
            e.kind.clone(),
            e.name.clone().unwrap_or_default(),
            // A detail may quote a peer (a primary's notice, a server's words): as JSON its
            // C0 controls are escaped already, and here its C1 and bidi characters too.
            crate::peer_text::PeerText(&e.detail).to_string(),
        ]);
    }
    println!("Latest events (newest first):\n{t}");
    Ok(())
}

/// A connection to the running server's admin listener, if one answers.
async fn connect(config: &Config) -> Option<TcpStream> {
    tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(config.admin_listen),
    )
    .await
    .ok()?
    .ok()
}

/// Sends one request to the admin listener and returns its status and JSON body.
async fn send(
    stream: TcpStream,
    config: &Config,
    req: http::request::Builder,
    body: BoxedBody,
) -> Result<(StatusCode, serde_json::Value)> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("the admin listener did not answer HTTP")?;
    tokio::spawn(conn);
    let mut req = req.header(http::header::HOST, config.admin_listen.to_string());
    if let Some(token) = &config.admin_token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = sender
        .send_request(req.body(body)?)
        .await
        .context("the running server did not answer")?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes).map_err(|_| {
        anyhow!(
            "the server answered {status} with: {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    Ok((status, value))
}

/// Inspects a package, an inner zip or a CSV by every known definition of the summary, or
/// those of the institute `reglas` names, prints the report, and returns the exit status: 0
/// consistent, 1 a declared summary field is given by no definition. A file that cannot be
/// read, one that is something sent by mistake (another archive format, a PDF, an HTML page:
/// named), or an unknown `reglas`, is an error (exit status 2); so is a results CSV that cannot
/// be read, after the report on every other one (with `json`, the report names it), and so
/// is an input in which no results CSV is read at all: nothing checked is no success.
/// `path` is opened once, so a CSV may come through a pipe (`/dev/stdin`); a package may not
/// ([`crate::intake::open_package`] says so).
pub(crate) fn inspect(path: &Path, json: bool, reglas: Option<&str>) -> Result<u8> {
    let reglas = match reglas.filter(|r| !r.is_empty()) {
        Some(name) => Some(prep::reglas(name).ok_or_else(|| {
            anyhow!(
                "--reglas {name:?}: no known definitions have that name; use one of: {}",
                prep::reglas_names()
            )
        })?),
        None => None,
    };
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let magic = package::read_magic(&mut file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let input = path.display().to_string();
    // Something sent by mistake (another archive format, a PDF, an HTML page) is named; an
    // empty file is left for the CSV reader, which says so in its words.
    if let Some(what) = package::mistaken_for_a_package(&magic).filter(|_| !magic.is_empty()) {
        bail!(
            "{input}: neither a PREP results CSV nor a package (zip, tar or tar.gz): it is \
             {what}"
        );
    }
    let report = if package::Format::sniff(&magic).is_some() {
        let defaults = PackageSettings::from_config(&Config::from_settings(Settings::default())?)?;
        let pkg = crate::intake::open_package(path, &defaults)?;
        let members: Vec<&package::Member> = pkg.files().iter().chain(pkg.nested()).collect();
        let csv_bytes = members.iter().map(|m| m.bytes.len() as u64).sum();
        let bar = progress_bar(csv_bytes);
        let report =
            prep::inspect_members(&input, &members, reglas, &|done| bar.set_position(done));
        bar.finish_and_clear();
        report
    } else {
        // The same file, from its first byte: a pipe (`/dev/stdin`, `<(unzip -p …)`) gives
        // its bytes once, and opening it again would read it without those of the magic.
        let csv = std::io::Cursor::new(magic).chain(file);
        let bar = progress_bar(size);
        let report = prep::inspect_file(&input, csv, reglas, &mut |done| bar.set_position(done));
        bar.finish_and_clear();
        // A CSV that cannot be read is reported as one: `--json` still gets its report.
        report.unwrap_or_else(|e| prep::Report::new(&input, Vec::new(), vec![e], Vec::new()))
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !report.elections.is_empty() || !report.other_files.is_empty() {
        print!("{}", prep::render(&report));
    }
    for e in &report.unreadable {
        eprintln!("difusor: {e}");
    }
    if report.elections.is_empty() && report.unreadable.is_empty() {
        eprintln!("difusor: {input}: no PREP results CSV in it: nothing was checked");
    }
    Ok(
        if !report.unreadable.is_empty() || report.elections.is_empty() {
            2
        } else if report.consistent() {
            0
        } else {
            1
        },
    )
}

/// A progress bar on stderr for `len` bytes, drawn only when stderr is a terminal.
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
