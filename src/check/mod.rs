//! `difusor check`: proves from outside that a web server serves exactly the institute's
//! latest corte (R2.5, R4.2, R4.5), within the minute (R4.6), with `main.json` uncached
//! (R4.7), every answer within 10 s (R4.9), and nothing before the start (R4.3); against any
//! server (difusor, nginx, Apache, a CDN), by a difusor on itself or by an institute on all
//! its difusores (R5.3).
//!
//! - [`expected`]: what must be served, from a package file, a folder or an address;
//! - [`target`]: checking one server ([`fetch`] one request, [`tls`] the handshake,
//!   [`served`] the corte it shows);
//! - [`report`]: the verdict, the table and the JSON;
//! - [`watch`]: checking every period, the suspension and recovery; [`log`] the observation
//!   log it writes and `difusor memoria` reads.
//!
//! # Guarantees
//! - Exit status 0 when everything is equal and fresh, 1 when a difference, a missing file,
//!   a wrong header, a stale corte or a leak is found, 2 when the check could not be made.
//! - It never sends load: a few requests at once per server, each with a timeout, a user
//!   agent that names it ([`fetch::USER_AGENT`]).
//! - Nothing is written but the observation log of `--watch`.

mod expected;
mod fetch;
pub(crate) mod log;
mod report;
mod served;
mod target;
mod tls;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use reqwest::Url;

use crate::config::Config;
use crate::intake::pull::{self, ClientTls};
use crate::package::PackageSettings;
use crate::peer_text::{PeerText, is_control_or_bidi};
use expected::{Loader, Source};
use fetch::Fetcher;
use target::{Checker, Deadline, HeaderRule, Target};

/// Most targets a targets file may list.
const MAX_TARGETS: usize = 1000;

/// Most bytes of a targets file.
const MAX_TARGETS_BYTES: u64 = 1024 * 1024;

/// What `difusor check` is asked: its flags.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["package", "package_url", "packages"]).required(true)))]
pub(crate) struct Options {
    /// Address of the site to check (`https://prep.example.mx/`): the package's file `p` is
    /// fetched at `URL/p`. Not needed with --targets.
    #[arg(value_name = "URL", required_unless_present = "targets")]
    pub(crate) url: Option<Url>,
    /// The package the site must serve, as the institute sent it (zip, tar, tar.gz).
    #[arg(long, value_name = "FILE")]
    pub(crate) package: Option<PathBuf>,
    /// Fetch the package from this address (with pull_ca, pull_client_cert/key and
    /// pull_token_file); an address ending in `/` is an index and its last package is taken.
    #[arg(long, value_name = "URL")]
    pub(crate) package_url: Option<Url>,
    /// A folder where packages arrive: its latest site package (by corte time), laid over
    /// those before it back to the latest complete one.
    #[arg(long, value_name = "DIR")]
    pub(crate) packages: Option<PathBuf>,
    /// The corte the site must show (`20270601_2030` or a date-time), instead of the
    /// package's.
    #[arg(long, value_name = "CORTE")]
    pub(crate) expect_corte: Option<String>,
    /// Before the start: no file of the package may be served (any other answer passes).
    #[arg(long)]
    pub(crate) embargo: bool,
    /// Print JSON instead of a table (one object per line with --watch).
    #[arg(long)]
    pub(crate) json: bool,
    /// Path of main.json under the site's address.
    #[arg(long, value_name = "PATH", default_value = "json/main.json")]
    pub(crate) main: String,
    /// Longest wait for one answer or TLS handshake (R4.9: 10 s).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) timeout: jiff::SignedDuration,
    /// Longest the whole check may take, the package's reading included (without --watch,
    /// whose periods have --period-timeout). A check cut by it could not be made: exit 2.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5m",
        conflicts_with = "watch"
    )]
    pub(crate) max_time: jiff::SignedDuration,
    /// Most requests at once to one server.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub(crate) concurrency: u16,
    /// Check every --every until stopped (or --periods), printing one line per target per
    /// period and appending each observation to --log.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Time between periods of --watch.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5m",
        requires = "watch"
    )]
    pub(crate) every: jiff::SignedDuration,
    /// The servers to check (TOML: `[[target]]` with name, url and optional headers).
    #[arg(long, value_name = "FILE")]
    pub(crate) targets: Option<PathBuf>,
    /// In --watch, longest each target's check may take in a period, from the period's start
    /// (default and most: --every). Files not answered by then count as unanswered and fail
    /// the period for that target; no server can delay the others' periods.
    #[arg(long, value_name = "DURATION", requires = "watch")]
    pub(crate) period_timeout: Option<jiff::SignedDuration>,
    /// Observation log of --watch (CSV, appended).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "difusor-check.csv",
        requires = "watch"
    )]
    pub(crate) log: PathBuf,
    /// Stop --watch after this many periods.
    #[arg(long, value_name = "N", requires = "watch")]
    pub(crate) periods: Option<u64>,
    /// Consecutive failed periods after which a target is to be suspended (R5.3).
    #[arg(long, value_name = "N", default_value_t = 3, requires = "watch", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) fail_after: u32,
    /// In --watch, how long after a package arrives a target may still show the corte
    /// before it (R4.6: one minute).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        requires = "watch"
    )]
    pub(crate) grace: jiff::SignedDuration,
}

/// One `[[target]]` of a targets file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    name: String,
    url: String,
    #[serde(default)]
    headers: Vec<String>,
}

/// A targets file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    #[serde(default)]
    target: Vec<TargetEntry>,
}

/// Runs the check; its exit status.
pub(crate) async fn run(config: &Config, options: &Options) -> Result<u8> {
    let settings = PackageSettings::from_config(config)?;
    let client_tls = ClientTls::from_config(config)?;
    let timeout = positive("--timeout", options.timeout)?;
    let tls = pull::tls_config(&client_tls)?;
    // Before the start a redirect is followed as a visitor's browser follows it: the address
    // it leads to may serve the package, and a redirect alone proves nothing withheld.
    let fetcher = Fetcher::new(tls.clone(), timeout, options.embargo)
        .context("cannot set up the HTTP client")?;
    let source = match (&options.package, &options.packages, &options.package_url) {
        (Some(file), _, _) => Source::File(file.clone()),
        (_, Some(dir), _) => Source::Folder(dir.clone()),
        (_, _, Some(url)) => Source::Url(http_url("--package-url", url)?),
        _ => bail!("give the package: --package FILE, --packages DIR or --package-url URL"),
    };
    let package_client = match &source {
        Source::Url(url) => Some(package_client(
            &client_tls,
            tls.clone(),
            timeout,
            url.scheme() == "https",
        )?),
        _ => None,
    };
    let mut loader = Loader::new(
        source,
        settings,
        config.settings.complete_marker.clone(),
        options.main.trim_start_matches('/').to_owned(),
        package_client,
    );
    let targets = targets(options)?;
    let checker = Checker {
        fetcher,
        tls: Arc::new(tls),
        timeout,
        concurrency: usize::from(options.concurrency),
        embargo: options.embargo,
        main_path: options.main.trim_start_matches('/').to_owned(),
        timezone: config.timezone.clone(),
        expect_corte: options
            .expect_corte
            .as_deref()
            .map(|text| {
                served::corte_id(text, &config.timezone).with_context(|| {
                    format!(
                        "--expect-corte {text:?}: write the corte as 20270601_2030 or a \
                         date-time (2027-06-01T20:30, in the configured time zone)"
                    )
                })
            })
            .transpose()?,
    };
    if options.watch {
        let every = positive("--every", options.every)?;
        let period_timeout = match options.period_timeout {
            Some(d) => positive("--period-timeout", d)?,
            None => every,
        };
        if period_timeout > every {
            bail!(
                "--period-timeout must not be longer than --every: a target's check ends before \
                 the next period begins"
            );
        }
        let plan = watch::Plan {
            every,
            period_timeout,
            periods: options.periods,
            fail_after: options.fail_after,
            grace: options.grace.unsigned_abs(),
            log: options.log.clone(),
            json: options.json,
        };
        return watch::run(&checker, &mut loader, &targets, &plan).await;
    }
    let max_time = positive("--max-time", options.max_time)?;
    let deadline = Deadline {
        at: tokio::time::Instant::now() + max_time,
        allowed: max_time,
        whole: true,
    };
    let expected = tokio::time::timeout_at(deadline.at, loader.load())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the package was not read within {} s (--max-time); nothing was checked",
                max_time.as_secs_f64()
            )
        })??;
    let reports = watch::check_all(&checker, &expected, &targets, Some(deadline)).await;
    let mut worst = report::Verdict::Ok;
    for r in &reports {
        worst = worst.worst(r.result);
        if options.json {
            println!("{}", serde_json::to_string_pretty(r)?);
        } else {
            print!("{}", r.render());
        }
    }
    Ok(worst.exit())
}

/// The servers to check: the URL given, or the targets file.
fn targets(options: &Options) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    if let Some(url) = &options.url {
        let url = site_url("URL", url)?;
        targets.push(Target {
            name: url.to_string(),
            url,
            headers: Vec::new(),
        });
    }
    if let Some(path) = &options.targets {
        let text = crate::config::read_small(path, MAX_TARGETS_BYTES)
            .with_context(|| format!("cannot read the targets file {}", path.display()))?;
        let parsed: TargetsFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a targets file ({}); write one [[target]] per server with name = \
                 \"…\" and url = \"https://…/\" (and optionally headers = [\"Name: value\"])",
                path.display(),
                toml_error(&text, &e)
            )
        })?;
        if parsed.target.len() > MAX_TARGETS {
            bail!("{}: more than {MAX_TARGETS} targets", path.display());
        }
        for entry in parsed.target {
            let name = entry.name.trim().to_owned();
            if name.is_empty() || name.chars().any(is_control_or_bidi) {
                bail!(
                    "{}: a target needs a name without control or bidirectional formatting \
                     characters",
                    path.display()
                );
            }
            if targets.iter().any(|t: &Target| t.name == name) {
                bail!(
                    "{}: the target name {name:?} is given twice",
                    path.display()
                );
            }
            let url = Url::parse(&entry.url)
                .with_context(|| format!("{}: target {name}: {:?}", path.display(), entry.url))?;
            let url = site_url(&format!("target {name}"), &url)?;
            let headers = entry
                .headers
                .iter()
                .map(|h| HeaderRule::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| anyhow::anyhow!("{}: target {name}: {why}", path.display()))?;
            targets.push(Target { name, url, headers });
        }
    }
    if targets.is_empty() {
        bail!("nothing to check: give the site's URL or a --targets file with [[target]] entries");
    }
    Ok(targets)
}

/// Most characters of a targets file's parse error shown.
const MAX_TOML_ERROR_CHARS: usize = 200;

/// Where a targets file does not parse and why, in one line: never the file's own line,
/// which may be a megabyte long or hold a terminal's escape sequences.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let message: String = e
        .message()
        .trim()
        .chars()
        .take(MAX_TOML_ERROR_CHARS)
        .collect();
    format!("line {line}, column {column}: {}", PeerText(message))
}

/// `url` as a site address: http or https with a host, no query or fragment, ending in `/`.
fn site_url(what: &str, url: &Url) -> Result<Url> {
    let mut url = http_url(what, url)?;
    if url.query().is_some() || url.fragment().is_some() {
        bail!("{what} {url}: give the site's address without ? or #");
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// `url` if it is http or https with a host.
fn http_url(what: &str, url: &Url) -> Result<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("{what} {url}: give an http:// or https:// address with a host");
    }
    Ok(url.clone())
}

/// A duration above zero, as a std duration.
fn positive(flag: &str, d: jiff::SignedDuration) -> Result<std::time::Duration> {
    if !d.is_positive() {
        bail!("{flag} must be above zero (e.g. 10s, 5m)");
    }
    Ok(d.unsigned_abs())
}

/// Most redirects followed when fetching the package.
const MAX_PACKAGE_REDIRECTS: usize = 5;

/// The client that fetches the package: pull's TLS options and bearer token. With
/// `https_only` (an `https://` address), as the pull client does, nothing but `https://` is
/// fetched: a redirect to `http://` is refused, so that neither the token nor the package
/// travels in the clear.
fn package_client(
    client_tls: &ClientTls,
    tls: rustls::ClientConfig,
    timeout: std::time::Duration,
    https_only: bool,
) -> Result<reqwest::Client> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if https_only && attempt.url().scheme() != "https" {
            let to = PeerText(attempt.url().as_str()).to_string();
            attempt.error(format!(
                "it redirects to {to}, which is not https: an https:// --package-url is only \
                 followed to https:// addresses"
            ))
        } else if attempt.previous().len() > MAX_PACKAGE_REDIRECTS {
            attempt.error(format!("more than {MAX_PACKAGE_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = pull::bearer(client_tls)? {
        headers.insert(reqwest::header::AUTHORIZATION, token);
    }
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .default_headers(headers)
        .user_agent(fetch::USER_AGENT)
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .redirect(redirects)
        .https_only(https_only)
        .build()
        .context("cannot set up the HTTP client for --package-url")
}
