//! Configuration: every setting defined once, read from five layers, validated into [`Config`].
//!
//! A setting has one name, `data_dir` say, and appears as the TOML key `data_dir`, the flag
//! `--data-dir` and the environment variable `DIFUSOR_DATA_DIR`. The `settings!` table below
//! is the only place a setting is declared: the flags, the TOML schema, the commented
//! `difusor.toml` that `init` writes and the defaults all come from it. The value types of
//! the table (`SiteMode`, `Policy`, `LogFormat`, `PurgeMethod`, `AcmeChallenge`) and its defaults are declared
//! here too.
//!
//! Layers, lowest first: built-in default, institute profile (`profiles/*.toml`, embedded),
//! the config file, the environment, the command line. A higher layer wins.
//!
//! Validation is split by who uses a setting. [`Config::from_settings`] validates what every
//! part shares (folders, addresses, the admin listener, the time zone, the publication
//! window, plain durations, the intake channels) with the value parsers below; each module
//! that turns settings into its own types does so in a `from_config` next to those types
//! (`package::PackageSettings`, `site::SiteSettings`, `http::HttpSettings`,
//! `prep::SummarySettings`), and `crate::sections` runs them all at start. This module names
//! none of them.
//!
//! # Guarantees
//! - Unknown keys in the file or a profile are errors, not silently ignored.
//! - The config file is read only if it is a regular file (links followed) of at most
//!   [`MAX_CONFIG_BYTES`].
//! - An invalid value is refused with an [`Invalid`] that names the setting and how to fix
//!   it; a [`Config`] therefore always holds usable values.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use bytesize::ByteSize;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::store::layout::Layout;

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

/// Whether one kind of evidence must come with every package.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Policy {
    /// Missing or uncheckable evidence of this kind rejects the package.
    Required,
    /// Evidence of this kind is checked when present; its absence is recorded, not refused.
    IfPresent,
}

impl Policy {
    /// The text form used in configuration: `required` or `if-present`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Policy::Required => "required",
            Policy::IfPresent => "if-present",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a [`Policy`].
#[derive(Debug, thiserror::Error)]
#[error("unknown evidence policy {0:?}: expected \"required\" or \"if-present\"")]
pub(crate) struct UnknownPolicy(pub(crate) String);

impl FromStr for Policy {
    type Err = UnknownPolicy;

    /// Accepts exactly the forms [`Policy`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Policy::Required),
            "if-present" => Ok(Policy::IfPresent),
            other => Err(UnknownPolicy(other.chars().take(40).collect())),
        }
    }
}

/// Which line format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// Combined Log Format.
    Combined,
    /// Combined, then request time, corte id and content encoding.
    Extended,
}

/// The method of the purge sent to caches (`purge_method`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "UPPERCASE")]
pub(crate) enum PurgeMethod {
    /// `BAN`: Varnish's bans, by regular expression.
    Ban,
    /// `PURGE`: for caches that take that method.
    Purge,
}

impl PurgeMethod {
    /// The method as sent.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ban => "BAN",
            Self::Purge => "PURGE",
        }
    }
}

/// How the ACME server is shown that this server answers for a name (`acme_challenge`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
pub(crate) enum AcmeChallenge {
    /// TLS-ALPN-01 (RFC 8737): answered on the HTTPS listener (port 443 in production).
    #[serde(rename = "tls-alpn-01")]
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    /// HTTP-01: answered on the plain listener (port 80 in production), before the gate.
    #[serde(rename = "http-01")]
    #[value(name = "http-01")]
    Http01,
}

/// Let's Encrypt's production directory, the default `acme_directory`.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory: what `acme_directory = "staging"` means.
pub(crate) const LETS_ENCRYPT_STAGING: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The default `corte_pattern`: `YYYYMMDD_HHMM` anywhere in the name.
pub(crate) const DEFAULT_NAME_PATTERN: &str =
    r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_(?P<H>\d{2})(?P<M>\d{2})";

/// The default `cache_rules`: main.json never cached, HTML and JSON revalidated, the rest briefly.
pub(crate) const DEFAULT_CACHE_RULES: &[&str] = &[
    "/json/main.json=no-cache, no-store, must-revalidate",
    "*.html=no-cache",
    "*.json=no-cache",
    "*=public, max-age=60",
];

settings! {
    /// Folder for the archive, the journal and, by default, the intake folder. With a config
    /// file it defaults to the file's folder; relative paths in the file are relative to it.
    data_dir: PathBuf = PathBuf::from(".");
    /// Folder watched for packages (default: `<data_dir>/entrada`).
    watch_dir: PathBuf = PathBuf::new();
    /// Public HTTP address to listen on; repeat the flag for several.
    listen: Vec<String> = vec!["127.0.0.1:8080".to_owned()];
    /// Public HTTPS address to listen on; repeat the flag for several. Needs `tls_cert` and
    /// `tls_key`, or `acme_domains`.
    tls_listen: Vec<String> = Vec::new();
    /// Certificate chain for HTTPS, PEM. Reloaded on SIGHUP or when the file changes.
    tls_cert: PathBuf = PathBuf::new();
    /// Private key for HTTPS, PEM (PKCS#8, PKCS#1 or SEC1).
    tls_key: PathBuf = PathBuf::new();
    /// Names to get a certificate for automatically over ACME (Let's Encrypt), e.g.
    /// `prep.example.mx`; repeat the flag for several. Setting it turns ACME on: HTTPS on
    /// `tls_listen` with a certificate obtained, kept in `<data_dir>/acme/` and renewed
    /// without a restart. Not together with `tls_cert` and `tls_key`. Empty: off.
    acme_domains: Vec<String> = Vec::new();
    /// Contact address given to the ACME server (expiry and policy notices). Empty: none.
    acme_email: String = String::new();
    /// The ACME server's directory URL. `staging` means Let's Encrypt's staging server
    /// (certificates no browser trusts, generous rate limits: for trials).
    acme_directory: String = LETS_ENCRYPT.to_owned();
    /// Certificate authority (PEM) trusted for the ACME directory's HTTPS, for private ACME
    /// servers. Empty: the public web's authorities.
    acme_directory_ca: PathBuf = PathBuf::new();
    /// How the ACME server checks this server answers for the names: tls-alpn-01 (on
    /// `tls_listen`, port 443 in production) or http-01 (on `listen`, port 80 in production;
    /// answered even before `publish_start`).
    acme_challenge: AcmeChallenge = AcmeChallenge::TlsAlpn01;
    /// Renew the ACME certificate when less than this is left of it (`30d`, `72h`); never
    /// before a third of its lifetime has passed.
    acme_renew_before: String = "30d".to_owned();
    /// Who may show the site in a frame (R4.8 allows it by default): a CSP
    /// `frame-ancestors` source list such as `'self' https://portal.example.mx`. Empty: anyone.
    frame_ancestors: String = String::new();
    /// Threads serving visitors (nginx's worker_processes), at most 1024. 0: one per CPU core.
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
    /// Addresses of the private replication feed, where replicas (`replica_of`) take this
    /// node's verified packages, its live corte and its notice; repeat the flag for several.
    /// HTTPS with `tls_cert` and `tls_key` (plain HTTP only when every address is loopback),
    /// and `feed_token_file` or `feed_client_ca` is required. Empty: no feed.
    feed_listen: Vec<String> = Vec::new();
    /// File holding the bearer token replicas must send to the feed (one line; readable by
    /// difusor's user only). The variable DIFUSOR_FEED_TOKEN may hold the token instead.
    /// Never on the command line, where `ps` shows it to every user.
    feed_token_file: PathBuf = PathBuf::new();
    /// Certificate authority (PEM) whose client certificates the feed accepts instead of a
    /// token (mutual TLS).
    feed_client_ca: PathBuf = PathBuf::new();
    /// How long the feed holds a request whose `If-None-Match` still matches before it
    /// answers 304 (long-poll); a change is answered at once. A replica's request is held
    /// no longer than it says it waits (two thirds of its `pull_stall_timeout`).
    feed_hold: String = "20s".to_owned();
    /// Host names the admin listener answers to besides its own address (and `localhost`
    /// on loopback), e.g. the name of a proxy in front of it. Requests naming any other
    /// host are refused, so that no web page can reach it by DNS rebinding.
    admin_hosts: Vec<String> = Vec::new();
    /// Plain-HTTP addresses answering only `GET` and `HEAD /health`, for a load balancer's
    /// health check (HAProxy's `option httpchk`): 200 while this node should get visitors, 503
    /// with the reason otherwise. Keep them on a private network. Empty: off.
    health_listen: Vec<String> = Vec::new();
    /// How long a replica may be behind the corte its feed announced before its health turns
    /// 503, and how long a replica started while its primary does not answer waits before it
    /// serves its own corte, healthy (`5s`).
    health_max_lag: String = "5s".to_owned();
    /// On SIGTERM or SIGINT with `health_listen` set: how long the health answers 503
    /// `draining` while the public listeners go on serving, so that the load balancer moves
    /// visitors away before the stop (`5s`; allow its check interval times its fall count).
    drain_time: String = "5s".to_owned();
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
    /// NTP servers (`host` or `host:port`, port 123 by default) asked for the time at start
    /// and every `ntp_interval`, to check this machine's clock, on which corte times, the
    /// publication gate and the lag depend. Only checked, never set: keep chrony or
    /// systemd-timesyncd running. Mexico's official time is served by CENAM:
    /// `ntp_servers = ["cronos.cenam.mx", "pool.ntp.org"]`. Empty: not checked.
    ntp_servers: Vec<String> = Vec::new();
    /// How far the clock may be from the NTP servers' time before the server warns (in its
    /// log, the journal and the status page); nothing is refused because of it (`1s`).
    clock_max_offset: String = "1s".to_owned();
    /// Time between checks of the clock against `ntp_servers` (`5m`).
    ntp_interval: String = "5m".to_owned();
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
    /// Largest request head (request line and headers), from 8 KiB to 64 KiB: every open
    /// connection may hold one this large.
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
    /// files together. 0: the rate itself.
    rate_burst: u64 = 12_000;
    /// New HTTPS connections per second one address (an IPv6 /64 counts as one) may open on
    /// average (0: no limit), in bursts of `rate_burst`; past them a connection is closed
    /// before its handshake, which costs the server far more than the client. Peers in
    /// `trusted_proxies` are not held to it. Returning visitors keep their connections.
    tls_handshakes_per_address: u64 = 200;
    /// Proxies whose `X-Forwarded-For` is believed (a CDN, a load balancer), as addresses
    /// or CIDR ranges.
    trusted_proxies: Vec<String> = Vec::new();
    /// Folder of the access logs (default: `<data_dir>/bitacoras`).
    log_dir: PathBuf = PathBuf::new();
    /// Access log lines: combined (Combined Log Format, what GoAccess and AWStats read), or
    /// extended (combined plus request time, corte id and content encoding).
    access_log_format: LogFormat = LogFormat::Combined;
    /// Where journal events are also sent as RFC 5424 syslog messages: `unix:/dev/log` (or
    /// another datagram socket's path), `udp://host:port`, or `tcp://host:port` (RFC 6587
    /// octet counting). Sending never holds anything up: a collector that is down loses
    /// messages, counted on the status page. Empty: off.
    syslog: String = String::new();
    /// The syslog facility of those messages: daemon, local0 … local7, user, …
    syslog_facility: String = "daemon".to_owned();
    /// `Cache-Control` per path: `<glob>=<value>` rules, the first match wins; a path no
    /// rule matches gets `no-cache`. `/json/main.json` must stay uncached (R4.7).
    cache_rules: Vec<String> = DEFAULT_CACHE_RULES.iter().map(|r| (*r).to_owned()).collect();
    /// With a CDN in front: how long it may serve its last copy when difusor cannot answer
    /// (`1h`), added as `stale-if-error` to rules that allow storing. Empty: not sent.
    stale_if_error: String = String::new();
    /// Caches in front (Varnish, a CDN's purge address), as `http://host:port/` (or https
    /// with a certificate from the public web's authorities): each is sent a purge of
    /// everything after each new corte goes live and after each notice change. Empty: none.
    purge_url: Vec<String> = Vec::new();
    /// The purge request's method: BAN (Varnish's bans) or PURGE. Either goes to `/` with
    /// `X-Ban-Url: .`, a regular expression that matches every path, and `X-Ban-Host`.
    purge_method: PurgeMethod = PurgeMethod::Ban;
    /// The public site's host names (or addresses) as visitors' requests name them, e.g.
    /// `prep.example.mx`; repeat for several. A purge drops only the stored files of these
    /// hosts (`X-Ban-Host`), never the other sites the same cache holds. Empty: the names of
    /// `acme_domains`; one of the two is needed with `purge_url`.
    purge_host: Vec<String> = Vec::new();
    /// Regular expression finding the corte time in a package name, with named groups
    /// Y, m, d, H, M and optionally S.
    corte_pattern: String = DEFAULT_NAME_PATTERN.to_owned();
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
    /// held too. Plan for this plus `max_unpacked_bytes` plus 256 MiB of memory, and 144 KiB
    /// more for each `/datos/` download its client stops taking.
    max_site_bytes: ByteSize = ByteSize::gib(1);
    /// Deepest nesting of archives (2: a zip of zips).
    max_depth: u32 = 2;
    /// How long a rejected package is kept in `archivo/rechazados/` (`30d`, `72h`) before it
    /// is removed; the removal is journaled, and the journal keeps its SHA-256 and the reason
    /// for ever. Empty: kept for ever.
    rejected_retention: String = "30d".to_owned();
    /// Space left free on the disks of `data_dir` (the archive, the journal, uploads in
    /// progress), `watch_dir` and `log_dir`: an SFTP upload, a pull download, an admin upload
    /// or a package copied into the archive that would leave less is refused, as this
    /// server's fault (`/status` `free_space`), so that the journal and the access log always
    /// have room. 512 MiB is about an hour of access log at 1,000 requests a second, with the
    /// journal's few KiB per package besides. 0: none kept.
    min_free_space: ByteSize = ByteSize::mib(512);
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
    /// Most bytes one SFTP session (one connection, every `sftp` run on it together) may
    /// upload in all (each file is also held to `max_package_bytes`).
    sftp_max_session_bytes: ByteSize = ByteSize::gib(16);
    /// An SFTP session quiet this long, or whose client sends no SFTP request (keep-alives do
    /// not count) or takes none of its replies this long, is closed (`5m`).
    sftp_idle_timeout: String = "5m".to_owned();
    /// Longest time a file may stay open for writing over SFTP, from its open to its close
    /// (`30m`): past it the session is cut and the file discarded, so a client that sends a
    /// byte now and then, under `sftp_idle_timeout`, cannot hold its session for ever.
    sftp_upload_timeout: String = "30m".to_owned();
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
    /// The primary's replication feed (`feed_listen` there), e.g. `https://10.0.0.1:9443/`,
    /// on a node fed by another node instead of by the institute: `<replica_of>packages/` is
    /// pulled like a `pull_url`, through the same verification (`pull_token_file`, `pull_ca`
    /// and `pull_client_cert` reach it), in the order the feed lists, and asked again at once
    /// after each answer, so that a new corte arrives within a second. Empty: not a replica.
    replica_of: String = String::new();
    /// Reject a data package whose CSV summary line contradicts its own rows under every
    /// known definition of its fields (the journal warns of it either way), or whose results
    /// CSV cannot be read.
    reject_inconsistent: bool = false;
    /// Check the CSV summary line by one institute's definitions only: ine-2019, ine-2023,
    /// iee-sonora-2021, ieec-2021, iee-puebla-2018, ieeq-2018, ieqroo-2019, iecm-2024,
    /// ieepco-2022.
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

/// The environment variable that may hold the replication feed's token.
const FEED_TOKEN_ENV: &str = "DIFUSOR_FEED_TOKEN";

/// Shortest feed token accepted, in characters.
const MIN_FEED_TOKEN_LEN: usize = 16;

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
        // With a config file, the data folder is the file's folder unless it says otherwise;
        // an empty value says nothing (never the folder the program was started in).
        let data_dir = table
            .entry("data_dir")
            .or_insert_with(|| toml::Value::String(".".to_owned()));
        if data_dir.as_str() == Some("") {
            *data_dir = toml::Value::String(".".to_owned());
        }
        anchor_relative_paths(&mut table, path.parent().unwrap_or(Path::new(".")));
        merged.extend(table);
    }
    merged.extend(cli);
    merged.insert("profile".to_owned(), toml::Value::String(profile));
    Settings::deserialize(merged).map_err(|e| anyhow!("invalid settings: {e}"))
}

/// Largest config file read: the file `init` writes, every setting commented, is a few
/// tens of KiB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a small file ([`read_small`]) was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmallFileError {
    /// Opening or reading it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A FIFO, a device or a folder in its place.
    #[error("it is not a regular file (a FIFO, a device or a folder)")]
    NotRegular,
    /// Larger than it may be.
    #[error("it is larger than {0}")]
    TooLarge(ByteSize),
}

/// The text of the file at `path` (a link followed), if it is a regular file of at most
/// `max` bytes: a FIFO or device put in its place, or a huge file, is refused
/// instead of read without end. Opened without blocking, so a FIFO never waits for a writer.
pub(crate) fn read_small(path: &Path, max: u64) -> Result<String, SmallFileError> {
    use std::io::Read as _;
    let flags =
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC;
    let file = std::fs::File::from(
        rustix::fs::open(path, flags, rustix::fs::Mode::empty()).map_err(std::io::Error::from)?,
    );
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    let mut text = String::new();
    if meta.len() <= max {
        file.take(max + 1).read_to_string(&mut text)?;
    }
    if meta.len() > max || text.len() as u64 > max {
        return Err(SmallFileError::TooLarge(ByteSize::b(max)));
    }
    Ok(text)
}

/// Reads a config file (at most [`MAX_CONFIG_BYTES`], see [`read_small`]) into a table,
/// naming the file in any error.
fn read_table(path: &Path) -> Result<toml::Table> {
    let text = read_small(path, MAX_CONFIG_BYTES).with_context(|| {
        format!(
            "cannot read the config file {} (it holds settings only)",
            path.display()
        )
    })?;
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
        "feed_token_file",
        "feed_client_ca",
        "pull_client_cert",
        "pull_client_key",
        "pull_ca",
        "acme_directory_ca",
    ] {
        if let Some(toml::Value::String(s)) = table.get_mut(key) {
            let p = Path::new(s.as_str());
            if !s.is_empty() && p.is_relative() {
                *s = base.join(p).to_string_lossy().into_owned();
            }
        }
    }
}

/// A setting whose value cannot be used. The message names the setting and how to fix it;
/// each module that turns settings into its own types refuses a bad value with one of these.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// One setting's value.
    #[error("setting `{setting}`: {message}")]
    Value {
        /// The setting, as its TOML key.
        setting: &'static str,
        /// What is wrong and how to fix it.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Two settings that are given together or not at all.
    #[error("settings `{first}` and `{second}`: {message}")]
    Pair {
        /// The first setting.
        first: &'static str,
        /// The second setting.
        second: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A token, from its file (`setting`) or the environment (`env`), cannot go in a header.
    #[error(
        "the token of `{setting}` (or {env}) holds spaces or characters other than printable \
         ASCII; use a hex or base64 string (`openssl rand -hex 32`)"
    )]
    TokenCharacters {
        /// The setting naming the token's file.
        setting: &'static str,
        /// The variable that may hold it instead.
        env: &'static str,
    },
}

impl Invalid {
    /// Setting `setting` has a value that cannot be used: `message` says why and the fix.
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self::Value {
            setting,
            message: message.into(),
            source: None,
        }
    }

    /// The same, with the error that made the value unusable.
    pub(crate) fn because(
        self,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        match self {
            Self::Value {
                setting, message, ..
            } => Self::Value {
                setting,
                message,
                source: Some(error.into()),
            },
            other => other,
        }
    }
}

/// Validated configuration: the settings every part shares, in std, jiff and ipnet types.
/// Each module turns the settings it alone uses into its own types (`from_config` next to
/// them); `crate::sections` does all of that at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The settings as resolved, read by the modules' `from_config`.
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
    /// Operators' listener.
    pub(crate) admin_listen: SocketAddr,
    /// Bearer token for the admin listener, if any.
    pub(crate) admin_token: Option<String>,
    /// The replication feed, when `feed_listen` is set.
    pub(crate) feed: Option<FeedSettings>,
    /// The primary's feed (`replica_of`), ending in `/`, when this node is a replica.
    pub(crate) replica_of: Option<url::Url>,
    /// Time zone of corte times.
    pub(crate) timezone: TimeZone,
    /// Embargo end: no results before it.
    pub(crate) publish_start: Option<Timestamp>,
    /// End of the required publication period.
    pub(crate) publish_end: Option<Timestamp>,
    /// Promised time between cortes.
    pub(crate) update_interval: SignedDuration,
    /// How long rejected packages are kept; `None`: for ever.
    pub(crate) rejected_retention: Option<std::time::Duration>,
    /// Settle time for files written in place.
    pub(crate) settle: std::time::Duration,
    /// Wait for required evidence.
    pub(crate) evidence_wait: std::time::Duration,
}

impl Config {
    /// Resolves and validates in one step.
    pub(crate) fn load(config_file: Option<&Path>, args: &SettingArgs) -> Result<Self> {
        Ok(Self::from_settings(resolve(config_file, args)?)?)
    }

    /// Checks the shared values; the first invalid one is an error naming the setting and
    /// the fix.
    pub(crate) fn from_settings(s: Settings) -> Result<Self, Invalid> {
        let timezone = TimeZone::get(&s.timezone).map_err(|e| {
            Invalid::new(
                "timezone",
                format!(
                    "{:?} is not a known IANA time zone ({e}); use a name such as \
                     America/Mexico_City or America/Hermosillo",
                    s.timezone
                ),
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
        let listen = socket_addrs("listen", &s.listen)?;
        let tls_listen = socket_addrs("tls_listen", &s.tls_listen)?;
        if listen.is_empty() && tls_listen.is_empty() {
            return Err(Invalid::new(
                "listen",
                "no public address given; add one such as 0.0.0.0:80",
            ));
        }
        let tls_files = if tls_listen.is_empty() {
            None
        } else if s.tls_cert.as_os_str().is_empty() || s.tls_key.as_os_str().is_empty() {
            if !s.acme_domains.is_empty() {
                // The certificate comes over ACME (`crate::acme`).
                None
            } else {
                return Err(Invalid::new(
                    "tls_listen",
                    "HTTPS needs `tls_cert` and `tls_key` (PEM files), or `acme_domains` for a \
                     certificate obtained automatically; `difusor init --self-signed` makes a \
                     pair for testing",
                ));
            }
        } else {
            Some((s.tls_cert.clone(), s.tls_key.clone()))
        };
        let admin_listen = socket_addr("admin_listen", &s.admin_listen)?;
        let admin_token = token("admin_token_file", ADMIN_TOKEN_ENV, &s.admin_token_file)?;
        if !admin_listen.ip().is_loopback() && admin_token.is_none() {
            return Err(Invalid::new(
                "admin_listen",
                format!(
                    "{admin_listen} is reachable from other machines, so an admin token (a long \
                     random string) is required: {ADMIN_TOKEN_WHERE}; or listen on 127.0.0.1"
                ),
            ));
        }
        let publish_start = instant("publish_start", &s.publish_start, &timezone)?;
        let publish_end = instant("publish_end", &s.publish_end, &timezone)?;
        if let (Some(a), Some(b)) = (publish_start, publish_end)
            && b <= a
        {
            return Err(Invalid::new(
                "publish_end",
                format!("{b} is not after `publish_start` {a}; fix either date"),
            ));
        }
        let feed = FeedSettings::from_settings(&s)?;
        same_address_twice(&s, &listen, &tls_listen, admin_listen, feed.as_ref())?;
        let replica_of = if s.replica_of.is_empty() {
            None
        } else {
            let mut url = service_url("replica_of", &s.replica_of)?;
            // The feed sends notices and rollbacks with nothing to check them by, and the
            // replica sends its token: plain HTTP only where no one is on the way, as the
            // feed itself allows it.
            if url.scheme() == "http" && !is_loopback_host(&url) {
                return Err(Invalid::new(
                    "replica_of",
                    format!(
                        "{url} is plain http to another machine: anyone on the way could read \
                         the token and change the primary's notice and rollbacks; use \
                         https:// (the feed is HTTPS off loopback), e.g. https://10.0.0.1:9443/"
                    ),
                ));
            }
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            Some(url)
        };
        let update_interval = duration("update_interval", &s.update_interval)?;
        if update_interval.is_zero() {
            return Err(Invalid::new(
                "update_interval",
                "must be greater than zero: every corte would be late; 15m is a good value",
            ));
        }
        let rejected_retention = retention("rejected_retention", &s.rejected_retention)?;
        let settle = duration("settle", &s.settle)?.unsigned_abs();
        let evidence_wait = duration("evidence_wait", &s.evidence_wait)?.unsigned_abs();
        Ok(Self {
            data_dir,
            watch_dir,
            log_dir,
            listen,
            tls_listen,
            tls_files,
            admin_listen,
            admin_token,
            feed,
            replica_of,
            timezone,
            publish_start,
            publish_end,
            update_interval,
            rejected_retention,
            settle,
            evidence_wait,
            settings: s,
        })
    }
}

/// Refuses an address given to two listeners (`listen` and `admin_listen`, say), or twice to
/// one: only one of them could have it, and the start would stop at the second, after the
/// first had begun to serve. Port 0 (any free port) may repeat. `health_listen` and
/// `sftp_listen` are validated where they are used; here only their valid values count.
fn same_address_twice(
    s: &Settings,
    listen: &[SocketAddr],
    tls_listen: &[SocketAddr],
    admin_listen: SocketAddr,
    feed: Option<&FeedSettings>,
) -> Result<(), Invalid> {
    let mut all: Vec<(&'static str, SocketAddr)> = Vec::new();
    all.extend(listen.iter().map(|a| ("listen", *a)));
    all.extend(tls_listen.iter().map(|a| ("tls_listen", *a)));
    all.push(("admin_listen", admin_listen));
    all.extend(
        feed.iter()
            .flat_map(|f| f.listen.iter().map(|a| ("feed_listen", *a))),
    );
    let parsed = |text: &String| text.parse::<SocketAddr>().ok();
    all.extend(
        s.health_listen
            .iter()
            .filter_map(parsed)
            .map(|a| ("health_listen", a)),
    );
    all.extend(parsed(&s.sftp_listen).map(|a| ("sftp_listen", a)));
    for (i, (first, addr)) in all.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        let Some((second, _)) = all[i + 1..].iter().find(|(_, other)| other == addr) else {
            continue;
        };
        return Err(if first == second {
            Invalid::new(first, format!("{addr} is given twice; give it once"))
        } else {
            Invalid::Pair {
                first,
                second,
                message: format!(
                    "both name {addr}, and one address serves one listener; give each its own"
                ),
            }
        });
    }
    Ok(())
}

/// The replication feed's listener, validated: who may use it and how it is served.
#[derive(Debug, Clone)]
pub(crate) struct FeedSettings {
    /// Its addresses.
    pub(crate) listen: Vec<SocketAddr>,
    /// The bearer token replicas send, if one is required.
    pub(crate) token: Option<String>,
    /// The authority whose client certificates are accepted, if any.
    pub(crate) client_ca: Option<PathBuf>,
    /// Certificate and key (`tls_cert`, `tls_key`); `None`: plain HTTP, every address on
    /// loopback.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// Longest hold of a request whose validator still matches.
    pub(crate) hold: std::time::Duration,
}

impl FeedSettings {
    /// The feed's settings when `feed_listen` is set: a token or a client authority is
    /// required, and HTTPS unless every address is loopback.
    fn from_settings(s: &Settings) -> Result<Option<Self>, Invalid> {
        let listen = socket_addrs("feed_listen", &s.feed_listen)?;
        if listen.is_empty() {
            return Ok(None);
        }
        let token = token("feed_token_file", FEED_TOKEN_ENV, &s.feed_token_file)?;
        // The feed answers every guess at once, from every address that reaches it: a short
        // token is found by trying.
        if let Some(short) = token
            .as_ref()
            .map(|t| t.chars().count())
            .filter(|n| *n < MIN_FEED_TOKEN_LEN)
        {
            return Err(Invalid::new(
                "feed_token_file",
                format!(
                    "the token (from the file, or the variable {FEED_TOKEN_ENV}) is {short} \
                     characters long; anyone who reaches the feed can try tokens as fast as it \
                     answers, so use at least {MIN_FEED_TOKEN_LEN} random characters, e.g. \
                     `openssl rand -hex 32`",
                ),
            ));
        }
        let client_ca =
            (!s.feed_client_ca.as_os_str().is_empty()).then(|| s.feed_client_ca.clone());
        if token.is_none() && client_ca.is_none() {
            return Err(Invalid::new(
                "feed_listen",
                format!(
                    "the feed gives this node's packages to whoever it lets in, so it needs a \
                     token (`feed_token_file`, or the variable {FEED_TOKEN_ENV}) or a client \
                     certificate authority (`feed_client_ca`)"
                ),
            ));
        }
        let tls = if s.tls_cert.as_os_str().is_empty() || s.tls_key.as_os_str().is_empty() {
            None
        } else {
            Some((s.tls_cert.clone(), s.tls_key.clone()))
        };
        if tls.is_none() {
            if let Some(open) = listen.iter().find(|a| !a.ip().is_loopback()) {
                return Err(Invalid::Pair {
                    first: "feed_listen",
                    second: "tls_cert",
                    message: format!(
                        "{open} is reachable from other machines, so the feed is served over \
                         HTTPS only: set `tls_cert` and `tls_key` (PEM files), or listen on \
                         127.0.0.1"
                    ),
                });
            }
            if client_ca.is_some() {
                return Err(Invalid::Pair {
                    first: "feed_client_ca",
                    second: "tls_cert",
                    message: "client certificates need HTTPS: set `tls_cert` and `tls_key` \
                              (PEM files), or use `feed_token_file` instead"
                        .to_owned(),
                });
            }
        }
        Ok(Some(Self {
            listen,
            token,
            client_ca,
            tls,
            hold: positive_duration("feed_hold", &s.feed_hold, "20s")?,
        }))
    }
}

/// A listener's bearer token: from `file` (setting `setting`) when one is named, else from
/// the variable `env`; `None` when neither gives one.
/// Largest token file read: a token is a line of a few dozen characters.
pub(crate) const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The token files among `settings` (their setting and path) that users other than their
/// owner may read or write (mode `0o077` bits set): a token there is anyone's on the machine.
pub(crate) fn exposed_token_files(settings: &Settings) -> Vec<(&'static str, &Path)> {
    use std::os::unix::fs::PermissionsExt as _;
    [
        ("admin_token_file", settings.admin_token_file.as_path()),
        ("feed_token_file", settings.feed_token_file.as_path()),
        ("pull_token_file", settings.pull_token_file.as_path()),
    ]
    .into_iter()
    .filter(|(_, path)| {
        !path.as_os_str().is_empty()
            && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    })
    .collect()
}

fn token(setting: &'static str, env: &'static str, file: &Path) -> Result<Option<String>, Invalid> {
    let token = if file.as_os_str().is_empty() {
        match std::env::var(env) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Ok(None),
        }
    } else {
        let text = read_small(file, MAX_TOKEN_FILE_BYTES).map_err(|e| {
            Invalid::new(setting, format!("cannot read {}", file.display())).because(e)
        })?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            return Err(Invalid::new(
                setting,
                format!(
                    "{} is empty; write the token in it (a long random string, e.g. from \
                     `openssl rand -hex 32`)",
                    file.display()
                ),
            ));
        }
        token
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::TokenCharacters { setting, env });
    }
    Ok(Some(token))
}

/// The values of the address settings (`listen`, `tls_listen`).
fn socket_addrs(setting: &'static str, texts: &[String]) -> Result<Vec<SocketAddr>, Invalid> {
    texts.iter().map(|a| socket_addr(setting, a)).collect()
}

/// An address with a port.
pub(crate) fn socket_addr(setting: &'static str, text: &str) -> Result<SocketAddr, Invalid> {
    text.parse().map_err(|_| {
        Invalid::new(
            setting,
            format!(
                "{text:?} is not an address with a port; write it as 127.0.0.1:8080, \
                 0.0.0.0:80 or [::]:443"
            ),
        )
    })
}

/// The address of an HTTP(S) service: an `https://` (or `http://`) URL with a host and
/// nothing secret in it (no query, fragment or user name).
pub(crate) fn service_url(setting: &'static str, text: &str) -> Result<url::Url, Invalid> {
    let url = url::Url::parse(text).map_err(|e| {
        Invalid::new(
            setting,
            format!("{text:?} is not a URL ({e}); write it as https://host/path"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(Invalid::new(
            setting,
            format!("{text:?} must be an https:// URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Invalid::new(
            setting,
            format!(
                "{text:?} has a query, fragment or user name; give the plain address and put \
                 secrets in `pull_token_file`"
            ),
        ));
    }
    Ok(url)
}

/// Whether `url` names this machine: a loopback address, or `localhost`.
pub(crate) fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Addresses or CIDR ranges (`10.0.0.0/8`, `192.0.2.10`); `example` shows good values.
pub(crate) fn networks(
    setting: &'static str,
    texts: &[String],
    example: &str,
) -> Result<Vec<ipnet::IpNet>, Invalid> {
    texts
        .iter()
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Invalid::new(
                        setting,
                        format!("{t:?} is not an address or CIDR range; write e.g. {example}"),
                    )
                })
        })
        .collect()
}

/// A duration that is not negative (`2s`, `500ms`, `15m`).
pub(crate) fn duration(setting: &'static str, text: &str) -> Result<SignedDuration, Invalid> {
    let d: SignedDuration = text.parse().map_err(|e| {
        Invalid::new(
            setting,
            format!("{text:?} is not a duration ({e}); write e.g. 2s, 500ms, 15m"),
        )
    })?;
    if d.is_negative() {
        return Err(Invalid::new(
            setting,
            format!("{text:?} is negative; give a positive duration"),
        ));
    }
    if d > MAX_DURATION {
        return Err(too_long(setting, text));
    }
    Ok(d)
}

/// The longest duration any setting takes: ten years. Every timeout, interval, margin and
/// retention is far shorter in use; a longer one (a typo, `99999999999h`) would overflow the
/// clock arithmetic it goes into (a deadline past the end of the monotonic clock, an
/// interval times three) and stop the server where it is used, long after start.
pub(crate) const MAX_DURATION: SignedDuration = SignedDuration::from_hours(10 * 365 * 24);

/// The refusal of a duration longer than [`MAX_DURATION`].
fn too_long(setting: &'static str, text: &str) -> Invalid {
    Invalid::new(
        setting,
        format!("{text:?} is longer than ten years (87600h), the longest duration taken"),
    )
}

/// A retention: a duration that may be given in days (`30d`), each of 24 hours; empty is
/// `None` (for ever).
fn retention(setting: &'static str, text: &str) -> Result<Option<std::time::Duration>, Invalid> {
    if text.is_empty() {
        return Ok(None);
    }
    days_or_duration(setting, text).map(Some)
}

/// A positive duration that may be given in days (`30d`, `72h`, `90s`), each of 24 hours.
pub(crate) fn days_or_duration(
    setting: &'static str,
    text: &str,
) -> Result<std::time::Duration, Invalid> {
    let span: jiff::Span = text.parse().map_err(|e| {
        Invalid::new(
            setting,
            format!("{text:?} is not a duration ({e}); write e.g. 30d or 72h"),
        )
    })?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| Invalid::new(setting, format!("{text:?}: {e}; write e.g. 30d or 72h")))?;
    if d.is_negative() || d.is_zero() {
        return Err(Invalid::new(
            setting,
            "must be greater than zero; 30d is a good value",
        ));
    }
    if d > MAX_DURATION {
        return Err(too_long(setting, text));
    }
    Ok(d.unsigned_abs())
}

/// A duration setting where empty means "not checked".
pub(crate) fn optional_duration(
    setting: &'static str,
    text: &str,
) -> Result<Option<SignedDuration>, Invalid> {
    if text.is_empty() {
        return Ok(None);
    }
    duration(setting, text).map(Some)
}

/// A duration setting that must be above zero; `good` is suggested when it is not.
pub(crate) fn positive_duration(
    setting: &'static str,
    text: &str,
    good: &str,
) -> Result<std::time::Duration, Invalid> {
    let d = duration(setting, text)?.unsigned_abs();
    if d.is_zero() {
        return Err(Invalid::new(
            setting,
            format!("must be greater than zero; {good} is a good value"),
        ));
    }
    Ok(d)
}

/// A duration setting that must be at least `floor`: shorter would cut every client before
/// it could be served, or ask a server again and again without pause. `good` is suggested.
pub(crate) fn duration_at_least(
    setting: &'static str,
    text: &str,
    floor: std::time::Duration,
    good: &str,
) -> Result<std::time::Duration, Invalid> {
    let d = positive_duration(setting, text, good)?;
    if d < floor {
        return Err(Invalid::new(
            setting,
            format!("{text:?} is shorter than {floor:?}, the least taken; {good} is a good value"),
        ));
    }
    Ok(d)
}

/// A number that must be above zero.
pub(crate) fn positive(setting: &'static str, value: u64) -> Result<u64, Invalid> {
    if value == 0 {
        return Err(Invalid::new(setting, "must be greater than zero"));
    }
    Ok(value)
}

/// A count that must be above zero, as a `usize` (saturating).
pub(crate) fn positive_count(setting: &'static str, value: u64) -> Result<usize, Invalid> {
    Ok(usize::try_from(positive(setting, value)?).unwrap_or(usize::MAX))
}

/// An RFC 3339 instant, or a civil date-time in `tz`; empty is `None`.
fn instant(setting: &'static str, text: &str, tz: &TimeZone) -> Result<Option<Timestamp>, Invalid> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(Some(ts));
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| {
        Invalid::new(
            setting,
            format!(
                "{text:?} is not a date and time; write 2024-06-02T20:00:00-06:00 or \
                 2024-06-02T20:00 (local time in `timezone`)"
            ),
        )
    })?;
    // A local time skipped or repeated by a daylight-saving change names no single instant:
    // refused, never moved by an hour in silence.
    let zoned = tz
        .to_ambiguous_zoned_datetime(civil)
        .unambiguous()
        .map_err(|e| {
            Invalid::new(
                setting,
                format!(
                    "{text:?} does not exist or occurs twice in `timezone` (a daylight-saving \
                 change); write it with its UTC offset, e.g. 2024-06-02T20:00:00-07:00"
                ),
            )
            .because(e)
        })?;
    Ok(Some(zoned.timestamp()))
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
        } else if *name == "data_dir" && !set.contains_key("data_dir") {
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
    fn the_feed_needs_credentials_and_https_off_loopback() {
        let feed = |pairs: &[(&str, &str)]| {
            let mut t = toml::Table::new();
            for (k, v) in pairs {
                let value = if *k == "feed_listen" {
                    toml::Value::from(vec![*v])
                } else {
                    toml::Value::from(*v)
                };
                t.insert((*k).to_owned(), value);
            }
            Config::from_settings(Settings::deserialize(t).unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("feed.token");
        std::fs::write(&token, "s3creto-de-prueba\n").unwrap();
        let token = token.to_str().unwrap();
        let err = |pairs: &[(&str, &str)]| feed(pairs).unwrap_err().to_string();
        let short = dir.path().join("short.token");
        std::fs::write(&short, "prep2027\n").unwrap();
        let short = err(&[
            ("feed_listen", "127.0.0.1:9443"),
            ("feed_token_file", short.to_str().unwrap()),
        ]);
        assert!(
            short.starts_with("setting `feed_token_file`: ") && short.contains("8 characters"),
            "{short}"
        );
        assert!(
            err(&[("feed_listen", "127.0.0.1:9443")]).starts_with("setting `feed_listen`: "),
            "a token or a client authority is required"
        );
        let open = err(&[("feed_listen", "0.0.0.0:9443"), ("feed_token_file", token)]);
        assert!(
            open.starts_with("settings `feed_listen` and `tls_cert`: "),
            "{open}"
        );
        let ca = err(&[
            ("feed_listen", "127.0.0.1:9443"),
            ("feed_client_ca", "/etc/ca.pem"),
        ]);
        assert!(
            ca.starts_with("settings `feed_client_ca` and `tls_cert`: "),
            "{ca}"
        );
        let hold = err(&[
            ("feed_listen", "127.0.0.1:9443"),
            ("feed_token_file", token),
            ("feed_hold", "0s"),
        ]);
        assert!(hold.starts_with("setting `feed_hold`: "), "{hold}");
        let config = feed(&[
            ("feed_listen", "127.0.0.1:9443"),
            ("feed_token_file", token),
        ])
        .unwrap();
        let settings = config.feed.unwrap();
        assert_eq!(settings.token.as_deref(), Some("s3creto-de-prueba"));
        assert!(settings.tls.is_none(), "plain HTTP on loopback");
        assert_eq!(settings.hold, std::time::Duration::from_secs(20));
        let https = feed(&[
            ("feed_listen", "10.0.0.1:9443"),
            ("feed_token_file", token),
            ("tls_cert", "/etc/cert.pem"),
            ("tls_key", "/etc/key.pem"),
        ])
        .unwrap();
        assert!(https.feed.unwrap().tls.is_some());
    }

    #[test]
    fn replica_of_is_a_feed_address_ending_in_a_slash() {
        let replica = |url: &str| {
            let mut t = toml::Table::new();
            t.insert("replica_of".into(), url.into());
            Config::from_settings(Settings::deserialize(t).unwrap())
        };
        assert_eq!(
            replica("https://10.0.0.1:9443/feed")
                .unwrap()
                .replica_of
                .unwrap()
                .as_str(),
            "https://10.0.0.1:9443/feed/"
        );
        for good in [
            "http://127.0.0.1:9443/",
            "http://[::1]:9443/",
            "http://localhost/",
        ] {
            assert!(replica(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://10.0.0.1/",
            "https://u:p@10.0.0.1/",
            "10.0.0.1:9443",
            "http://10.0.0.1:9443/",
            "http://primario.example/",
        ] {
            let err = replica(bad).unwrap_err().to_string();
            assert!(err.starts_with("setting `replica_of`: "), "{err}");
        }
    }

    #[test]
    fn policies_read_and_write_their_text_forms() {
        for (policy, text) in [
            (Policy::Required, "required"),
            (Policy::IfPresent, "if-present"),
        ] {
            assert_eq!(policy.to_string(), text);
            assert_eq!(text.parse::<Policy>().unwrap(), policy);
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);
            let value = clap::ValueEnum::to_possible_value(&policy).unwrap();
            assert_eq!(value.get_name(), text);
        }
        assert!("Required".parse::<Policy>().is_err());
        assert!("optional".parse::<Policy>().is_err());
    }
}
