//! Configuration: every setting defined once, read from five layers, validated into [`Config`].
//!
//! A setting has one name, `data_dir` say, and appears as the TOML key `data_dir`, the flag
//! `--data-dir` and the environment variable `DIFUSOR_DATA_DIR`. The [`settings!`] table below
//! is the only place a setting is declared: the flags, the TOML schema, the commented
//! `difusor.toml` that `init` writes and the defaults all come from it.
//!
//! Layers, lowest first: built-in default, institute profile (`profiles/*.toml`, embedded),
//! the config file, the environment, the command line. A higher layer wins.
//!
//! # Guarantees
//! - Unknown keys in the file or a profile are errors, not silently ignored.
//! - [`Config::from_settings`] refuses any invalid value with a message that names the setting
//!   and how to fix it; a [`Config`] therefore always holds usable values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytesize::ByteSize;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::http::access_log::LogFormat;
use crate::http::limits::LimitSettings;
use crate::package::{CorteRules, EvidencePolicy, Limits, Policy, Window};
use crate::site::CachePolicy;
use crate::store::Layout;

/// Declares every setting once: doc, name, type and default.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ; )+) => {
        /// Settings given on the command line or in the environment (`DIFUSOR_<NAME>`).
        /// An absent flag is `None`, so that lower layers show through.
        #[derive(clap::Args, Serialize, Debug, Default, Clone)]
        pub(crate) struct SettingArgs {
            $(
                $(#[doc = $doc])+
                #[arg(long, help_heading = "Settings (also DIFUSOR_<NAME> or in difusor.toml)")]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub(crate) $name: Option<$ty>,
            )+
        }

        /// Every setting, resolved through the layers. Only [`Config`] is used past start-up.
        #[derive(Deserialize, Serialize, Debug, Clone)]
        #[serde(deny_unknown_fields, default)]
        pub(crate) struct Settings {
            $(
                $(#[doc = $doc])+
                pub(crate) $name: $ty,
            )+
        }

        impl Default for Settings {
            /// The built-in defaults, the lowest layer.
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// Name and documentation of every setting, in declaration order.
        pub(crate) const SETTING_DOCS: &[(&str, &str)] = &[
            $( (stringify!($name), concat!($($doc, "\n"),+)), )+
        ];
    };
}

/// How a package is combined with the live site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SiteMode {
    /// Files of the package overwrite those of the previous corte; the rest stay.
    Overlay,
    /// The package is the whole site; nothing of the previous corte stays.
    Replace,
}

settings! {
    /// Folder for the archive, the journal and, by default, the intake folder. With a config
    /// file it defaults to the file's folder; relative paths in the file are relative to it.
    data_dir: PathBuf = PathBuf::from(".");
    /// Folder watched for packages (default: `<data_dir>/entrada`).
    watch_dir: PathBuf = PathBuf::new();
    /// Public HTTP address to listen on; repeat the flag for several.
    listen: Vec<String> = vec!["127.0.0.1:8080".to_owned()];
    /// Public HTTPS address to listen on; repeat the flag for several. Needs `tls_cert` and
    /// `tls_key`.
    tls_listen: Vec<String> = Vec::new();
    /// Certificate chain for HTTPS, PEM. Reloaded on SIGHUP or when the file changes.
    tls_cert: PathBuf = PathBuf::new();
    /// Private key for HTTPS, PEM (PKCS#8, PKCS#1 or SEC1).
    tls_key: PathBuf = PathBuf::new();
    /// Who may show the site in a frame (R4.8 allows it by default): a CSP
    /// `frame-ancestors` source list such as `'self' https://portal.example.mx`. Empty: anyone.
    frame_ancestors: String = String::new();
    /// Threads serving requests (nginx's worker_processes). 0: one per CPU core.
    workers: u64 = 0;
    /// `Strict-Transport-Security` sent on HTTPS responses. Empty: not sent.
    hsts: String = "max-age=31536000".to_owned();
    /// Address of the operators' listener (status, controls). Keep it on loopback unless an
    /// admin token is set (`admin_token_file`).
    admin_listen: String = "127.0.0.1:9180".to_owned();
    /// File holding the bearer token the admin listener requires (one line; readable by
    /// difusor's user only); mandatory when `admin_listen` is not on loopback. The variable
    /// DIFUSOR_ADMIN_TOKEN may hold the token instead. Never on the command line, where
    /// `ps` shows it to every user.
    admin_token_file: PathBuf = PathBuf::new();
    /// Host names the admin listener answers to besides its own address (and `localhost`
    /// on loopback), e.g. the name of a proxy in front of it. Requests naming any other
    /// host are refused, so that no web page can reach it by DNS rebinding.
    admin_hosts: Vec<String> = Vec::new();
    /// Institute profile whose values sit under the config file: generic,
    /// impepac-morelos-2021, ieem-edomex-2021, iepc-durango-2022, iepc-chiapas-2024,
    /// ietam-tamaulipas-2018.
    profile: String = "generic".to_owned();
    /// Time zone of corte times in package names and of local dates (IANA name).
    timezone: String = "America/Mexico_City".to_owned();
    /// Start of publication (RFC 3339, or local `YYYY-MM-DDTHH:MM` in `timezone`). Before it
    /// the public sees a notice, never results. Empty: no embargo (the server warns).
    publish_start: String = String::new();
    /// End of the publication period the call requires; the last corte stays published after
    /// it. Empty: none.
    publish_end: String = String::new();
    /// A package whose corte time is more than this before `publish_start` or after
    /// `publish_end` is held (journaled, shown on the status page, not published) until an
    /// operator publishes it with `difusor rollback <corte>` or `difusor ingest --force`:
    /// a year or day typo in the name must not replace the night's real cortes. Empty: not
    /// checked.
    corte_window_margin: String = "6h".to_owned();
    /// A package whose corte time is more than this ahead of the clock is held likewise.
    /// Empty: not checked (drills at another time of day than their simulated night).
    corte_future_margin: String = "5m".to_owned();
    /// How often the institute promises a new corte (`15m`); the status page flags a live
    /// corte older than three intervals.
    update_interval: String = "15m".to_owned();
    /// Longest wait for a request's headers, counted from when the connection opened or
    /// answered its last request: a client that sends nothing (not even a first byte),
    /// sends its request too slowly (slowloris) or leaves a kept-alive connection unused is
    /// cut. Also bounds the TLS handshake.
    header_timeout: String = "10s".to_owned();
    /// Longest time a response may wait for the client to take more of it (nginx's
    /// `send_timeout`): a connection whose write stays blocked this long, or (HTTP/2) whose
    /// response gets no flow-control window, is closed. Each write that goes through starts
    /// the wait again, so a slow download that keeps moving is never cut.
    send_timeout: String = "60s".to_owned();
    /// Largest request head (request line and headers).
    max_header_bytes: ByteSize = ByteSize::kib(16);
    /// Longest request target (path and query), in bytes; longer gets 414.
    max_uri_bytes: u64 = 8192;
    /// Most open public connections in all; lowered at start to what the open-file limit
    /// allows. An open page keeps one connection (it re-reads `json/main.json` every 2 s),
    /// so this is how many pages are followed at once; each takes about 22 KiB. At the cap
    /// the oldest idle connections give way to new ones.
    max_connections: u64 = 50_000;
    /// Most open public connections from one address (an IPv6 /64 counts as one): 2,000
    /// pages behind one carrier NAT address loading their six files at once. At the cap that
    /// address's oldest idle connection gives way.
    max_connections_per_address: u64 = 12_000;
    /// Requests per second one address (an IPv6 /64 counts as one) may make on average
    /// (0: no limit); more get 429 once the burst is spent. 2,000 pages re-reading
    /// `json/main.json` every 2 s make 1,000.
    rate_per_address: u64 = 2000;
    /// Requests one address may make at once above that rate: 2,000 pages loading their six
    /// files together.
    rate_burst: u64 = 12_000;
    /// Proxies whose `X-Forwarded-For` is believed (a CDN, a load balancer), as addresses
    /// or CIDR ranges.
    trusted_proxies: Vec<String> = Vec::new();
    /// Folder of the access logs (default: `<data_dir>/bitacoras`).
    log_dir: PathBuf = PathBuf::new();
    /// Access log lines: combined (Combined Log Format, what GoAccess and AWStats read), or
    /// extended (combined plus request time, corte id and content encoding).
    access_log_format: LogFormat = LogFormat::Combined;
    /// `Cache-Control` per path: `<glob>=<value>` rules, the first match wins; a path no
    /// rule matches gets `no-cache`. `/json/main.json` must stay uncached (R4.7).
    cache_rules: Vec<String> = crate::site::DEFAULT_CACHE_RULES.iter().map(|r| (*r).to_owned()).collect();
    /// With a CDN in front: how long it may serve its last copy when difusor cannot answer
    /// (`1h`), added as `stale-if-error` to rules that allow storing. Empty: not sent.
    stale_if_error: String = String::new();
    /// Regular expression finding the corte time in a package name, with named groups
    /// Y, m, d, H, M and optionally S.
    corte_pattern: String = crate::package::DEFAULT_NAME_PATTERN.to_owned();
    /// Where to find the corte time inside a site package when the name has none:
    /// `<member path>#<JSON pointer>`, e.g. `json/main.json#/corte`. Empty: not used.
    corte_json_field: String = String::new();
    /// Text in a package name that marks it as a complete site (replace, not overlay).
    complete_marker: String = "_COMPLETO".to_owned();
    /// overlay: a package overwrites files of the previous corte (the calls' default);
    /// replace: every package is the whole site.
    site_mode: SiteMode = SiteMode::Overlay;
    /// `<package>.sha256` sidecar: required or if-present.
    evidence_sidecar: Policy = Policy::IfPresent;
    /// Member hash list inside the package (SHA256SUMS, HASH): required or if-present.
    evidence_member_list: Policy = Policy::IfPresent;
    /// `<package>.minisig` signature: required or if-present.
    evidence_signature: Policy = Policy::IfPresent;
    /// minisign public keys (the `RW…` base64 line, or a path to a `.pub` file).
    minisign_keys: Vec<String> = Vec::new();
    /// Names of member hash lists inside a package (case-insensitive).
    member_list_names: Vec<String> =
        ["SHA256SUMS", "SHA256SUMS.txt", "HASH", "HASH.txt"].map(String::from).to_vec();
    /// Largest package file accepted. A national site package is about 36 MB zipped and a
    /// national data package (CSVs of a few hundred MB) well under 100 MB: 512 MiB leaves room.
    max_package_bytes: ByteSize = ByteSize::mib(512);
    /// Most bytes one package may unpack to, nested archives included (a national site package
    /// unpacks to about 150 MB, a national data package to a few hundred MB). The package is
    /// held in memory while it is checked, so this is also the memory one package may take.
    max_unpacked_bytes: ByteSize = ByteSize::gib(1);
    /// Most members one package may hold, nested archives included (a national site package
    /// has about 3,300 files).
    max_members: u64 = 50_000;
    /// Largest single member once unpacked (the largest CSV is a few hundred MB).
    max_member_bytes: ByteSize = ByteSize::mib(512);
    /// Highest compression ratio of a member (unpacked / packed) over 1 MiB.
    max_ratio: u64 = 250;
    /// Highest compression ratio of the whole package: all it unpacks to, nested archives
    /// included, over the package file's size, once past 1 MiB. Real packages are 4:1 to 15:1;
    /// many members each small enough to escape `max_ratio` cannot add up to a bomb.
    max_package_ratio: u64 = 100;
    /// Most bytes the live site may hold in memory: its files and their compressed variants.
    /// A package that would take the site past it is refused whole. A national site package
    /// takes about 250 MiB with its variants; the newest data package's unpacked files are
    /// held too. Plan for this plus `max_unpacked_bytes` plus 256 MiB of memory.
    max_site_bytes: ByteSize = ByteSize::gib(1);
    /// Deepest nesting of archives (2: a zip of zips).
    max_depth: u32 = 2;
    /// How long a rejected package is kept in `archivo/rechazados/` (`30d`, `72h`) before it
    /// is removed; the removal is journaled, and the journal keeps its SHA-256 and the reason
    /// for ever. Empty: kept for ever.
    rejected_retention: String = "30d".to_owned();
    /// Longest member path, in bytes.
    max_name_len: u64 = 1024;
    /// A file written in place in the intake folder is taken once its writer has closed it
    /// and it stayed unchanged this long (the time a `.sha256` written last has to arrive);
    /// where closes cannot be seen (files there at start, network file systems), once
    /// unchanged this long (`2s`). A file still open is never taken; one renamed into place
    /// is taken at once.
    settle: String = "2s".to_owned();
    /// How long to wait for a required sidecar or signature after the package arrives.
    evidence_wait: String = "30s".to_owned();
    /// Address of the embedded SFTP server (scp works too), e.g. `0.0.0.0:2222`. Empty: off.
    /// It can only deliver packages into the intake: no shell, no reading, no deleting.
    sftp_listen: String = String::new();
    /// Public keys allowed to upload over SFTP, in OpenSSH `authorized_keys` format (Ed25519 or
    /// ECDSA; options are ignored). Default: `<data_dir>/sftp_authorized_keys`.
    sftp_authorized_keys: PathBuf = PathBuf::new();
    /// Addresses or CIDR ranges that may connect to the SFTP server; repeat the flag for
    /// several. Others are dropped before authentication.
    sftp_allow: Vec<String> = vec!["127.0.0.1".to_owned(), "::1".to_owned()];
    /// The SFTP server's host key (OpenSSH format, Ed25519), made at `init` or at the first
    /// start if missing, and kept. Default: `<data_dir>/sftp_host_key`.
    sftp_host_key: PathBuf = PathBuf::new();
    /// Most SFTP sessions logged in at once; a login past it is told to come back later.
    /// Connections still logging in are counted apart (`sftp_max_startups`).
    sftp_max_sessions: u64 = 16;
    /// Most SFTP connections logging in at once (OpenSSH's `MaxStartups`). At the limit the
    /// oldest one still in its SSH handshake after 2 s gives way to the new one; if none
    /// can, the new one is dropped.
    sftp_max_startups: u64 = 32;
    /// Most SFTP connections logging in at once from one address (OpenSSH's
    /// `PerSourceMaxStartups`), so that one address cannot keep the others out.
    sftp_max_startups_per_address: u64 = 8;
    /// An SFTP connection that has not finished the SSH handshake (version and key exchange)
    /// this long after connecting is cut (`10s`).
    sftp_handshake_timeout: String = "10s".to_owned();
    /// An SFTP connection that has not logged in this long after connecting is cut
    /// (OpenSSH's `LoginGraceTime`, `1m`).
    sftp_login_grace_time: String = "1m".to_owned();
    /// Most bytes one SFTP session may upload in all (each file is also held to
    /// `max_package_bytes`).
    sftp_max_session_bytes: ByteSize = ByteSize::gib(16);
    /// An SFTP session quiet this long is closed (`5m`).
    sftp_idle_timeout: String = "5m".to_owned();
    /// Failed authentication attempts allowed on one SFTP connection before it is cut
    /// (OpenSSH's `MaxAuthTries`: a client offering other keys before the right one uses
    /// one attempt per key; the first `none` probe of OpenSSH clients is not counted).
    sftp_max_auth_attempts: u64 = 6;
    /// An address whose connections end this many times without logging in, after failed
    /// authentication attempts, within `sftp_ban_time` is refused for `sftp_ban_time`,
    /// before the handshake. A connection that logs in in the end is no failure. 0: never.
    sftp_ban_after: u64 = 5;
    /// How long `sftp_ban_after` looks back, and how long a ban lasts (`15m`).
    sftp_ban_time: String = "15m".to_owned();
    /// URL the institute publishes packages at, polled over HTTPS; repeat the flag for
    /// several. Ending in `/`: an index listing packages (nginx `autoindex_format json`, a JSON
    /// array of names, or one name per line), each fetched once. Otherwise: one package that
    /// changes, fetched when it does. Evidence is read from `<url>.sha256` and `<url>.minisig`.
    pull_url: Vec<String> = Vec::new();
    /// Time between polls of each `pull_url` (`10s`).
    pull_interval: String = "10s".to_owned();
    /// Longest time one download may take, start to end (`5m`).
    pull_timeout: String = "5m".to_owned();
    /// A download with no byte received for this long is abandoned (`30s`).
    pull_stall_timeout: String = "30s".to_owned();
    /// Longest wait between polls of a failing URL: waits double from `pull_interval` up to it.
    pull_max_backoff: String = "2m".to_owned();
    /// File holding a token sent as `Authorization: Bearer <token>` (kept out of the command
    /// line and the environment, where other users could read it). Empty: none.
    pull_token_file: PathBuf = PathBuf::new();
    /// Client certificate chain (PEM) for services that require one. Needs `pull_client_key`.
    pull_client_cert: PathBuf = PathBuf::new();
    /// Private key (PEM) of `pull_client_cert`.
    pull_client_key: PathBuf = PathBuf::new();
    /// Extra certificate authorities (PEM) trusted for `pull_url`, e.g. the institute's own.
    /// The public web's authorities are always trusted.
    pull_ca: PathBuf = PathBuf::new();
    /// Reject a data package whose CSV summary line contradicts its own rows under every
    /// known definition of its fields (the journal warns of it either way), or whose results
    /// CSV cannot be read.
    reject_inconsistent: bool = false;
    /// Check the CSV summary line by one institute's definitions only: ine-2019, ine-2023,
    /// iee-sonora-2021, ieec-2021, iee-puebla-2018, ieeq-2018, ieqroo-2019, iecm-2024.
    /// Empty: every known definition counts.
    reglas: String = String::new();
}

/// Names of the embedded institute profiles, with their text.
pub(crate) const PROFILES: &[(&str, &str)] = &[
    ("generic", include_str!("../profiles/generic.toml")),
    (
        "impepac-morelos-2021",
        include_str!("../profiles/impepac-morelos-2021.toml"),
    ),
    (
        "ieem-edomex-2021",
        include_str!("../profiles/ieem-edomex-2021.toml"),
    ),
    (
        "iepc-durango-2022",
        include_str!("../profiles/iepc-durango-2022.toml"),
    ),
    (
        "iepc-chiapas-2024",
        include_str!("../profiles/iepc-chiapas-2024.toml"),
    ),
    (
        "ietam-tamaulipas-2018",
        include_str!("../profiles/ietam-tamaulipas-2018.toml"),
    ),
];

/// The text of profile `name`, or an error listing the known ones.
pub(crate) fn profile_text(name: &str) -> Result<&'static str> {
    PROFILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
            anyhow!(
                "setting `profile`: unknown profile {name:?}; use one of: {}",
                known.join(", ")
            )
        })
}

/// The environment variable that may hold the admin listener's token.
const ADMIN_TOKEN_ENV: &str = "DIFUSOR_ADMIN_TOKEN";

/// Where the admin token may be given, for messages.
pub(crate) const ADMIN_TOKEN_WHERE: &str = "put it in a file named by `admin_token_file` \
     (readable by difusor's user only) or in the environment variable DIFUSOR_ADMIN_TOKEN; \
     never on the command line or in the config file, where other users can read it (`ps`)";

/// The file used when `--config` is not given, if it exists in the current folder.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "difusor.toml";

/// Resolves the layers: defaults < profile < config file < environment < flags.
///
/// `config_file` is the explicit `--config`; without it `./difusor.toml` is read if present.
pub(crate) fn resolve(config_file: Option<&Path>, args: &SettingArgs) -> Result<Settings> {
    let file = match config_file {
        Some(path) => Some((path.to_owned(), read_table(path)?)),
        None => {
            let path = Path::new(DEFAULT_CONFIG_FILE);
            path.exists()
                .then(|| read_table(path).map(|t| (path.to_owned(), t)))
                .transpose()?
        }
    };
    merge(file, args)
}

/// Resolves the layers without any config file: defaults < profile < environment < flags.
pub(crate) fn resolve_embedded(args: &SettingArgs) -> Result<Settings> {
    merge(None, args)
}

fn merge(file: Option<(PathBuf, toml::Table)>, args: &SettingArgs) -> Result<Settings> {
    let cli = toml::Table::try_from(args).context("internal: command-line settings")?;
    let profile = cli
        .get("profile")
        .or_else(|| file.as_ref().and_then(|(_, t)| t.get("profile")))
        .and_then(|v| v.as_str())
        .unwrap_or("generic")
        .to_owned();
    let mut merged: toml::Table = toml::from_str(profile_text(&profile)?)
        .with_context(|| format!("profile {profile:?} is not valid TOML"))?;
    if let Some((path, mut table)) = file {
        if table.contains_key("admin_token") {
            bail!(
                "config file {}: `admin_token` is not read from the config file; {ADMIN_TOKEN_WHERE}",
                path.display()
            );
        }
        // With a config file, the data folder is the file's folder unless it says otherwise.
        table
            .entry("data_dir")
            .or_insert_with(|| toml::Value::String(".".to_owned()));
        anchor_relative_paths(&mut table, path.parent().unwrap_or(Path::new(".")));
        merged.extend(table);
    }
    merged.extend(cli);
    merged.insert("profile".to_owned(), toml::Value::String(profile));
    Settings::deserialize(merged).map_err(|e| anyhow!("invalid settings: {e}"))
}

/// Reads a config file into a table, naming the file in any error.
fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

/// Makes relative folders in a config file relative to the file's folder.
fn anchor_relative_paths(table: &mut toml::Table, base: &Path) {
    for key in [
        "data_dir",
        "watch_dir",
        "log_dir",
        "tls_cert",
        "tls_key",
        "sftp_authorized_keys",
        "sftp_host_key",
        "pull_token_file",
        "admin_token_file",
        "pull_client_cert",
        "pull_client_key",
        "pull_ca",
    ] {
        if let Some(toml::Value::String(s)) = table.get_mut(key) {
            let p = Path::new(s.as_str());
            if !s.is_empty() && p.is_relative() {
                *s = base.join(p).to_string_lossy().into_owned();
            }
        }
    }
}

/// Validated configuration: what the program runs on.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The settings as resolved, for display.
    pub(crate) settings: Settings,
    /// Root of everything the program writes.
    pub(crate) data_dir: PathBuf,
    /// The intake folder.
    pub(crate) watch_dir: PathBuf,
    /// The access logs' folder.
    pub(crate) log_dir: PathBuf,
    /// Public listeners.
    pub(crate) listen: Vec<SocketAddr>,
    /// Public HTTPS listeners.
    pub(crate) tls_listen: Vec<SocketAddr>,
    /// Certificate and key files, when HTTPS is on.
    pub(crate) tls_files: Option<(PathBuf, PathBuf)>,
    /// `Strict-Transport-Security` value, if sent.
    pub(crate) hsts: Option<http::HeaderValue>,
    /// `Content-Security-Policy: frame-ancestors …`, if framing is narrowed.
    pub(crate) frame_ancestors: Option<http::HeaderValue>,
    /// Operators' listener.
    pub(crate) admin_listen: SocketAddr,
    /// Bearer token for the admin listener, if any.
    pub(crate) admin_token: Option<String>,
    /// Host names the admin listener answers to besides its address (lowercase).
    pub(crate) admin_hosts: Vec<String>,
    /// Time zone of corte times.
    pub(crate) timezone: TimeZone,
    /// Embargo end: no results before it.
    pub(crate) publish_start: Option<Timestamp>,
    /// End of the required publication period.
    pub(crate) publish_end: Option<Timestamp>,
    /// Promised time between cortes.
    pub(crate) update_interval: SignedDuration,
    /// How corte times are found.
    pub(crate) corte: CorteRules,
    /// Marker of complete packages in names.
    pub(crate) complete_marker: String,
    /// Overlay or replace.
    pub(crate) site_mode: SiteMode,
    /// What evidence is required.
    pub(crate) evidence: EvidencePolicy,
    /// Unpacking limits.
    pub(crate) limits: Limits,
    /// Most bytes the live site may hold in memory.
    pub(crate) max_site_bytes: u64,
    /// How long rejected packages are kept; `None`: for ever.
    pub(crate) rejected_retention: Option<std::time::Duration>,
    /// `Cache-Control` per path.
    pub(crate) cache: Arc<CachePolicy>,
    /// Connection and rate limits of the public listeners.
    pub(crate) connection_limits: LimitSettings,
    /// Wait for a request's headers from when the connection opened or fell quiet.
    pub(crate) header_timeout: std::time::Duration,
    /// Longest a write may stay blocked on a client that does not read.
    pub(crate) send_timeout: std::time::Duration,
    /// Settle time for files written in place.
    pub(crate) settle: std::time::Duration,
    /// Wait for required evidence.
    pub(crate) evidence_wait: std::time::Duration,
    /// Reject data packages whose summary contradicts their rows.
    pub(crate) reject_inconsistent: bool,
    /// The institute whose definitions the summary is checked by; `None`: every one known.
    pub(crate) reglas: Option<&'static crate::prep::Reglas>,
    /// The embedded SFTP server, when `sftp_listen` is set.
    pub(crate) sftp: Option<SftpSettings>,
    /// HTTPS pull, when `pull_url` is set.
    pub(crate) pull: Option<PullSettings>,
}

impl Config {
    /// Resolves and validates in one step.
    pub(crate) fn load(config_file: Option<&Path>, args: &SettingArgs) -> Result<Self> {
        Self::from_settings(resolve(config_file, args)?)
    }

    /// Checks every value; the first invalid one is an error naming the setting and the fix.
    pub(crate) fn from_settings(s: Settings) -> Result<Self> {
        let timezone = TimeZone::get(&s.timezone).map_err(|e| {
            anyhow!(
                "setting `timezone`: {:?} is not a known IANA time zone ({e}); \
                 use a name such as America/Mexico_City or America/Hermosillo",
                s.timezone
            )
        })?;
        let data_dir = s.data_dir.clone();
        let watch_dir = if s.watch_dir.as_os_str().is_empty() {
            Layout::new(&data_dir).default_watch_dir()
        } else {
            s.watch_dir.clone()
        };
        let log_dir = if s.log_dir.as_os_str().is_empty() {
            Layout::new(&data_dir).default_log_dir()
        } else {
            s.log_dir.clone()
        };
        let listen = s
            .listen
            .iter()
            .map(|a| socket_addr("listen", a))
            .collect::<Result<Vec<_>>>()?;
        let tls_listen = s
            .tls_listen
            .iter()
            .map(|a| socket_addr("tls_listen", a))
            .collect::<Result<Vec<_>>>()?;
        if listen.is_empty() && tls_listen.is_empty() {
            bail!("setting `listen`: no public address given; add one such as 0.0.0.0:80");
        }
        let tls_files = if tls_listen.is_empty() {
            None
        } else if s.tls_cert.as_os_str().is_empty() || s.tls_key.as_os_str().is_empty() {
            bail!(
                "setting `tls_listen`: HTTPS needs `tls_cert` and `tls_key` (PEM files); \
                 `difusor init --self-signed` makes a pair for testing"
            );
        } else {
            Some((s.tls_cert.clone(), s.tls_key.clone()))
        };
        let frame_ancestors = if s.frame_ancestors.is_empty() {
            None
        } else {
            let value = format!("frame-ancestors {}", s.frame_ancestors);
            Some(http::HeaderValue::from_str(&value).map_err(|_| {
                anyhow!(
                    "setting `frame_ancestors`: {:?} is not a valid header value",
                    s.frame_ancestors
                )
            })?)
        };
        let hsts =
            if s.hsts.is_empty() {
                None
            } else {
                Some(http::HeaderValue::from_str(&s.hsts).map_err(|_| {
                    anyhow!("setting `hsts`: {:?} is not a valid header value", s.hsts)
                })?)
            };
        let admin_listen = socket_addr("admin_listen", &s.admin_listen)?;
        let admin_token = admin_token(&s.admin_token_file)?;
        if !admin_listen.ip().is_loopback() && admin_token.is_none() {
            bail!(
                "setting `admin_listen`: {admin_listen} is reachable from other machines, so \
                 an admin token (a long random string) is required: {ADMIN_TOKEN_WHERE}; or \
                 listen on 127.0.0.1"
            );
        }
        let admin_hosts = s
            .admin_hosts
            .iter()
            .map(|h| {
                let ok = !h.is_empty()
                    && h.parse::<http::uri::Authority>()
                        .is_ok_and(|a| a.as_str() == h && a.port().is_none() && !h.contains('@'));
                if ok {
                    Ok(h.to_ascii_lowercase())
                } else {
                    Err(anyhow!(
                        "setting `admin_hosts`: {h:?} is not a host name; write it as \
                         difusor-admin.example.mx, without scheme, port or path"
                    ))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let publish_start = instant("publish_start", &s.publish_start, &timezone)?;
        let publish_end = instant("publish_end", &s.publish_end, &timezone)?;
        if let (Some(a), Some(b)) = (publish_start, publish_end)
            && b <= a
        {
            bail!("setting `publish_end`: {b} is not after `publish_start` {a}; fix either date");
        }
        let update_interval = duration("update_interval", &s.update_interval)?;
        let window = optional_duration("corte_window_margin", &s.corte_window_margin)?
            .filter(|_| publish_start.is_some() || publish_end.is_some())
            .map(|margin| Window {
                start: publish_start,
                end: publish_end,
                margin,
            });
        let future_margin = optional_duration("corte_future_margin", &s.corte_future_margin)?;
        let name_pattern = regex::Regex::new(&s.corte_pattern)
            .map_err(|e| anyhow!("setting `corte_pattern`: not a valid regular expression: {e}"))?;
        for group in ["Y", "m", "d", "H", "M"] {
            if !name_pattern.capture_names().flatten().any(|n| n == group) {
                bail!(
                    "setting `corte_pattern`: the named group (?P<{group}>…) is missing; \
                     the pattern needs Y, m, d, H and M"
                );
            }
        }
        let json_field = if s.corte_json_field.is_empty() {
            None
        } else {
            let (path, pointer) = s.corte_json_field.split_once('#').ok_or_else(|| {
                anyhow!(
                    "setting `corte_json_field`: {:?} lacks `#`; write `<member path>#<JSON \
                     pointer>`, e.g. json/main.json#/corte",
                    s.corte_json_field
                )
            })?;
            Some((path.trim_start_matches('/').to_owned(), pointer.to_owned()))
        };
        let public_keys = s
            .minisign_keys
            .iter()
            .map(|k| minisign_key(k))
            .collect::<Result<Vec<_>>>()?;
        if s.evidence_signature == Policy::Required && public_keys.is_empty() {
            bail!(
                "setting `evidence_signature`: signatures are required but `minisign_keys` is \
                 empty; add the institute's public key or set evidence_signature = \"if-present\""
            );
        }
        let limits = Limits {
            max_package_bytes: positive("max_package_bytes", s.max_package_bytes.as_u64())?,
            max_unpacked_bytes: positive("max_unpacked_bytes", s.max_unpacked_bytes.as_u64())?,
            max_members: positive("max_members", s.max_members)?,
            max_member_bytes: positive("max_member_bytes", s.max_member_bytes.as_u64())?,
            max_ratio: positive("max_ratio", s.max_ratio)?,
            max_package_ratio: positive("max_package_ratio", s.max_package_ratio)?,
            max_depth: u32::try_from(positive("max_depth", u64::from(s.max_depth))?)
                .unwrap_or(u32::MAX),
            max_name_len: usize::try_from(positive("max_name_len", s.max_name_len)?)
                .unwrap_or(usize::MAX),
        };
        let max_site_bytes = positive("max_site_bytes", s.max_site_bytes.as_u64())?;
        let rejected_retention = retention("rejected_retention", &s.rejected_retention)?;
        let stale_if_error = if s.stale_if_error.is_empty() {
            None
        } else {
            Some(
                duration("stale_if_error", &s.stale_if_error)?
                    .as_secs()
                    .unsigned_abs(),
            )
        };
        let cache = CachePolicy::new(&s.cache_rules, stale_if_error)
            .map_err(|e| anyhow!("setting `cache_rules`: {e}"))?;
        let trusted = s
            .trusted_proxies
            .iter()
            .map(|t| {
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow!(
                            "setting `trusted_proxies`: {t:?} is not an address or CIDR range; \
                             write e.g. 10.0.0.0/8 or 192.0.2.10"
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let connection_limits = LimitSettings {
            max_connections: usize::try_from(positive("max_connections", s.max_connections)?)
                .unwrap_or(usize::MAX),
            max_per_address: usize::try_from(positive(
                "max_connections_per_address",
                s.max_connections_per_address,
            )?)
            .unwrap_or(usize::MAX),
            rate: u32::try_from(s.rate_per_address).unwrap_or(u32::MAX),
            burst: u32::try_from(s.rate_burst).unwrap_or(u32::MAX),
            trusted,
        };
        let header_timeout = positive_duration("header_timeout", &s.header_timeout, "10s")?;
        let send_timeout = positive_duration("send_timeout", &s.send_timeout, "60s")?;
        positive("max_uri_bytes", s.max_uri_bytes)?;
        positive("max_header_bytes", s.max_header_bytes.as_u64())?;
        let settle = duration("settle", &s.settle)?.unsigned_abs();
        let evidence_wait = duration("evidence_wait", &s.evidence_wait)?.unsigned_abs();
        let sftp = sftp_settings(&s, &data_dir)?;
        let pull = pull_settings(&s)?;
        Ok(Self {
            data_dir,
            watch_dir,
            log_dir,
            listen,
            tls_listen,
            tls_files,
            hsts,
            frame_ancestors,
            admin_listen,
            admin_token,
            admin_hosts,
            publish_start,
            publish_end,
            update_interval,
            corte: CorteRules {
                name_pattern,
                timezone: timezone.clone(),
                json_field,
                window,
                future_margin,
            },
            timezone,
            complete_marker: s.complete_marker.clone(),
            site_mode: s.site_mode,
            evidence: EvidencePolicy {
                sidecar: s.evidence_sidecar,
                member_list: s.evidence_member_list,
                signature: s.evidence_signature,
                public_keys,
                member_list_names: s.member_list_names.clone(),
            },
            limits,
            max_site_bytes,
            rejected_retention,
            cache: Arc::new(cache),
            connection_limits,
            header_timeout,
            send_timeout,
            settle,
            evidence_wait,
            reject_inconsistent: s.reject_inconsistent,
            reglas: reglas_setting(&s.reglas)?,
            sftp,
            pull,
            settings: s,
        })
    }
}

/// The admin listener's token: from `file` when one is named, else from
/// [`ADMIN_TOKEN_ENV`]; `None` when neither gives one.
fn admin_token(file: &Path) -> Result<Option<String>> {
    let token = if file.as_os_str().is_empty() {
        match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Ok(None),
        }
    } else {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!("setting `admin_token_file`: cannot read {}", file.display())
        })?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            bail!(
                "setting `admin_token_file`: {} is empty; write the token in it (a long random \
                 string, e.g. from `openssl rand -hex 32`)",
                file.display()
            );
        }
        token
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "the admin token holds spaces or characters other than printable ASCII; use a \
             hex or base64 string (`openssl rand -hex 32`)"
        );
    }
    Ok(Some(token))
}

/// The `reglas` setting: an institute whose definitions are known, or empty for all of them.
fn reglas_setting(name: &str) -> Result<Option<&'static crate::prep::Reglas>> {
    if name.is_empty() {
        return Ok(None);
    }
    crate::prep::reglas(name).map(Some).ok_or_else(|| {
        anyhow!(
            "setting `reglas`: no known definitions are named {name:?}; use one of: {}, or \
             leave it empty for every known definition",
            crate::prep::reglas_names()
        )
    })
}

/// The SFTP server's settings, when `sftp_listen` is set.
fn sftp_settings(s: &Settings, data_dir: &Path) -> Result<Option<SftpSettings>> {
    if s.sftp_listen.is_empty() {
        return Ok(None);
    }
    let listen = socket_addr("sftp_listen", &s.sftp_listen)?;
    let allow = s
        .sftp_allow
        .iter()
        .map(|a| {
            a.parse::<ipnet::IpNet>()
                .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow!(
                        "setting `sftp_allow`: {a:?} is neither an address nor a CIDR range; \
                         write it as 203.0.113.7 or 203.0.113.0/24"
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    if allow.is_empty() {
        bail!("setting `sftp_allow`: no address may connect; add the institute's addresses");
    }
    let idle = positive_duration("sftp_idle_timeout", &s.sftp_idle_timeout, "5m")?;
    let ban_time = duration("sftp_ban_time", &s.sftp_ban_time)?.unsigned_abs();
    if ban_time.is_zero() && s.sftp_ban_after > 0 {
        bail!("setting `sftp_ban_time`: must be greater than zero; 15m is a good value");
    }
    Ok(Some(SftpSettings {
        ban_after: s.sftp_ban_after,
        ban_time,
        listen,
        allow,
        authorized_keys: if s.sftp_authorized_keys.as_os_str().is_empty() {
            Layout::new(data_dir).default_sftp_authorized_keys()
        } else {
            s.sftp_authorized_keys.clone()
        },
        host_key: sftp_host_key_path(s, data_dir),
        max_sessions: usize::try_from(positive("sftp_max_sessions", s.sftp_max_sessions)?)
            .unwrap_or(usize::MAX),
        max_session_bytes: positive("sftp_max_session_bytes", s.sftp_max_session_bytes.as_u64())?,
        max_startups: usize::try_from(positive("sftp_max_startups", s.sftp_max_startups)?)
            .unwrap_or(usize::MAX),
        max_startups_per_address: usize::try_from(positive(
            "sftp_max_startups_per_address",
            s.sftp_max_startups_per_address,
        )?)
        .unwrap_or(usize::MAX),
        handshake_timeout: positive_duration(
            "sftp_handshake_timeout",
            &s.sftp_handshake_timeout,
            "10s",
        )?,
        login_grace_time: positive_duration(
            "sftp_login_grace_time",
            &s.sftp_login_grace_time,
            "1m",
        )?,
        idle_timeout: idle,
        max_auth_attempts: usize::try_from(positive(
            "sftp_max_auth_attempts",
            s.sftp_max_auth_attempts,
        )?)
        .unwrap_or(usize::MAX),
    }))
}

/// The HTTPS pull's settings, when `pull_url` is set. The files it names are read when the
/// server starts, so a missing one stops it with the setting's name.
fn pull_settings(s: &Settings) -> Result<Option<PullSettings>> {
    if s.pull_url.is_empty() {
        return Ok(None);
    }
    let urls = s
        .pull_url
        .iter()
        .map(|u| {
            let url = reqwest::Url::parse(u).map_err(|e| {
                anyhow!(
                    "setting `pull_url`: {u:?} is not a URL ({e}); write it as https://host/path"
                )
            })?;
            if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                bail!("setting `pull_url`: {u:?} must be an https:// URL with a host");
            }
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                bail!(
                    "setting `pull_url`: {u:?} has a query, fragment or user name; give the plain \
                     address and put secrets in `pull_token_file`"
                );
            }
            Ok(url)
        })
        .collect::<Result<Vec<_>>>()?;
    let interval = positive_duration("pull_interval", &s.pull_interval, "10s")?;
    let max_backoff =
        positive_duration("pull_max_backoff", &s.pull_max_backoff, "2m")?.max(interval);
    let optional = |p: &PathBuf| (!p.as_os_str().is_empty()).then(|| p.clone());
    let client_identity = match (optional(&s.pull_client_cert), optional(&s.pull_client_key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => bail!(
            "settings `pull_client_cert` and `pull_client_key`: give both (the certificate \
             chain and its private key) or neither"
        ),
    };
    Ok(Some(PullSettings {
        urls,
        interval,
        timeout: positive_duration("pull_timeout", &s.pull_timeout, "5m")?,
        stall_timeout: positive_duration("pull_stall_timeout", &s.pull_stall_timeout, "30s")?,
        max_backoff,
        token_file: optional(&s.pull_token_file),
        client_identity,
        extra_roots: optional(&s.pull_ca),
    }))
}

/// HTTPS pull's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct PullSettings {
    /// What to poll.
    pub(crate) urls: Vec<reqwest::Url>,
    /// Time between polls.
    pub(crate) interval: std::time::Duration,
    /// Longest download.
    pub(crate) timeout: std::time::Duration,
    /// Longest silence within a response.
    pub(crate) stall_timeout: std::time::Duration,
    /// Longest wait between polls of a failing URL.
    pub(crate) max_backoff: std::time::Duration,
    /// File with the bearer token.
    pub(crate) token_file: Option<PathBuf>,
    /// Client certificate chain and key files.
    pub(crate) client_identity: Option<(PathBuf, PathBuf)>,
    /// Extra trusted authorities.
    pub(crate) extra_roots: Option<PathBuf>,
}

/// Where the SFTP host key is kept.
pub(crate) fn sftp_host_key_path(s: &Settings, data_dir: &Path) -> PathBuf {
    if s.sftp_host_key.as_os_str().is_empty() {
        Layout::new(data_dir).default_sftp_host_key()
    } else {
        s.sftp_host_key.clone()
    }
}

/// The embedded SFTP server's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct SftpSettings {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Who may connect.
    pub(crate) allow: Vec<ipnet::IpNet>,
    /// OpenSSH `authorized_keys` file.
    pub(crate) authorized_keys: PathBuf,
    /// Host key file.
    pub(crate) host_key: PathBuf,
    /// Sessions logged in at once.
    pub(crate) max_sessions: usize,
    /// Connections logging in at once.
    pub(crate) max_startups: usize,
    /// Connections logging in at once from one address.
    pub(crate) max_startups_per_address: usize,
    /// Longest SSH handshake.
    pub(crate) handshake_timeout: std::time::Duration,
    /// Longest time from connecting to logging in.
    pub(crate) login_grace_time: std::time::Duration,
    /// Bytes one session may upload.
    pub(crate) max_session_bytes: u64,
    /// Idle time before a session is closed.
    pub(crate) idle_timeout: std::time::Duration,
    /// Failed authentication attempts per connection.
    pub(crate) max_auth_attempts: usize,
    /// Failed connections from one address before it is banned (0: never).
    pub(crate) ban_after: u64,
    /// How long strikes count, and how long a ban lasts.
    pub(crate) ban_time: std::time::Duration,
}

fn socket_addr(setting: &str, text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|_| {
        anyhow!(
            "setting `{setting}`: {text:?} is not an address with a port; write it as \
             127.0.0.1:8080, 0.0.0.0:80 or [::]:443"
        )
    })
}

fn duration(setting: &str, text: &str) -> Result<SignedDuration> {
    let d: SignedDuration = text.parse().map_err(|e| {
        anyhow!("setting `{setting}`: {text:?} is not a duration ({e}); write e.g. 2s, 500ms, 15m")
    })?;
    if d.is_negative() {
        bail!("setting `{setting}`: {text:?} is negative; give a positive duration");
    }
    Ok(d)
}

/// A retention: a duration that may be given in days (`30d`), each of 24 hours; empty is
/// `None` (for ever).
fn retention(setting: &str, text: &str) -> Result<Option<std::time::Duration>> {
    if text.is_empty() {
        return Ok(None);
    }
    let span: jiff::Span = text.parse().map_err(|e| {
        anyhow!("setting `{setting}`: {text:?} is not a duration ({e}); write e.g. 30d or 72h")
    })?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| anyhow!("setting `{setting}`: {text:?}: {e}; write e.g. 30d or 72h"))?;
    if d.is_negative() || d.is_zero() {
        bail!("setting `{setting}`: must be greater than zero; 30d is a good value");
    }
    Ok(Some(d.unsigned_abs()))
}

/// A duration setting where empty means "not checked".
fn optional_duration(setting: &str, text: &str) -> Result<Option<SignedDuration>> {
    if text.is_empty() {
        return Ok(None);
    }
    duration(setting, text).map(Some)
}

/// A duration setting that must be above zero; `good` is suggested when it is not.
fn positive_duration(setting: &str, text: &str, good: &str) -> Result<std::time::Duration> {
    let d = duration(setting, text)?.unsigned_abs();
    if d.is_zero() {
        bail!("setting `{setting}`: must be greater than zero; {good} is a good value");
    }
    Ok(d)
}

fn positive(setting: &str, value: u64) -> Result<u64> {
    if value == 0 {
        bail!("setting `{setting}`: must be greater than zero");
    }
    Ok(value)
}

/// An RFC 3339 instant, or a civil date-time in `tz`; empty is `None`.
fn instant(setting: &str, text: &str, tz: &TimeZone) -> Result<Option<Timestamp>> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(Some(ts));
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| {
        anyhow!(
            "setting `{setting}`: {text:?} is not a date and time; write 2024-06-02T20:00:00-06:00 \
             or 2024-06-02T20:00 (local time in `timezone`)"
        )
    })?;
    let zoned = civil.to_zoned_datetime(tz.clone()).with_context(|| {
        format!("setting `{setting}`: {text:?} does not exist in the time zone")
    })?;
    Ok(Some(zoned.timestamp()))
}

/// A minisign public key from its base64 line or from a `.pub` file.
fn minisign_key(text: &str) -> Result<minisign_verify::PublicKey> {
    if let Ok(key) = minisign_verify::PublicKey::from_base64(text.trim()) {
        return Ok(key);
    }
    let content = std::fs::read_to_string(text).map_err(|e| {
        anyhow!(
            "setting `minisign_keys`: {text:?} is neither a minisign public key (RW…) nor a \
             readable file ({e})"
        )
    })?;
    minisign_verify::PublicKey::decode(&content)
        .or_else(|_| minisign_verify::PublicKey::from_base64(content.trim()))
        .map_err(|e| anyhow!("setting `minisign_keys`: {text} holds no minisign public key ({e})"))
}

/// The commented `difusor.toml` that `init` writes: every setting with its documentation,
/// the profile's values and those in `set` written out, the rest commented out at their
/// defaults.
pub(crate) fn commented_file(profile: &str, set: &toml::Table) -> Result<String> {
    let mut profile_table: toml::Table = toml::from_str(profile_text(profile)?)?;
    profile_table.extend(set.clone());
    let defaults: toml::Table = toml::Table::try_from(Settings::default())?;
    let mut out = String::from(
        "# difusor configuration. Every setting is also a flag (--data-dir) and an environment\n\
         # variable (DIFUSOR_DATA_DIR); flags win over the environment, which wins over this file.\n\
         # Lines starting with # show the default.\n\n",
    );
    for (name, doc) in SETTING_DOCS {
        for line in doc.lines() {
            out.push_str(&format!("#{line}\n"));
        }
        let line = |value: &toml::Value| {
            let mut t = toml::Table::new();
            t.insert((*name).to_owned(), value.clone());
            toml::to_string(&t).unwrap_or_default()
        };
        if *name == "profile" {
            out.push_str(&line(&toml::Value::String(profile.to_owned())));
        } else if *name == "data_dir" {
            out.push_str("data_dir = \".\"\n");
        } else if let Some(v) = profile_table.get(*name) {
            out.push_str(&line(v));
        } else if let Some(v) = defaults.get(*name) {
            out.push('#');
            out.push_str(&line(v));
        } else {
            out.push_str(&format!("#{name} = \"\"\n"));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_valid() {
        for (name, text) in PROFILES {
            let table: toml::Table = toml::from_str(text).unwrap();
            let settings = Settings::deserialize(table).unwrap();
            Config::from_settings(settings).unwrap_or_else(|e| panic!("profile {name}: {e}"));
        }
    }

    #[test]
    fn commented_file_parses_back_to_the_profile() {
        let text = commented_file("iepc-chiapas-2024", &toml::Table::new()).unwrap();
        let settings =
            Settings::deserialize(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
        assert_eq!(settings.evidence_sidecar, Policy::Required);
        assert_eq!(settings.publish_start, "2024-06-02T20:00:00-06:00");
        assert_eq!(settings.max_members, Settings::default().max_members);
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let mut s = Settings::deserialize(toml::Table::new()).unwrap();
        s.timezone = "Mars/Olympus".into();
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.contains("`timezone`"), "{err}");

        let mut s = Settings::deserialize(toml::Table::new()).unwrap();
        s.admin_listen = "0.0.0.0:9180".into();
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.contains("admin_token"), "{err}");

        let mut t = toml::Table::new();
        t.insert("no_such_setting".into(), toml::Value::Integer(1));
        let err = Settings::deserialize(t).unwrap_err().to_string();
        assert!(err.contains("no_such_setting"), "{err}");
    }

    #[test]
    fn reglas_names_a_known_institute_or_none() {
        let with = |reglas: &str| {
            let mut t = toml::Table::new();
            t.insert("reglas".into(), toml::Value::String(reglas.into()));
            Config::from_settings(Settings::deserialize(t).unwrap())
        };
        assert!(with("").unwrap().reglas.is_none());
        assert_eq!(
            with("ieec-2021").unwrap().reglas.map(|r| r.name),
            Some("ieec-2021")
        );
        let err = with("campeche").unwrap_err().to_string();
        assert!(
            err.contains("setting `reglas`") && err.contains("ieeq-2018"),
            "{err}"
        );
    }
}
