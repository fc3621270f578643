//! `difusor check` through the CLI against real servers on loopback: difusor itself, nginx
//! serving the package's files unpacked (gzipped, with and without the main.json header, a
//! byte changed, an older corte, before 20:00), Varnish in front of difusor, a closed port,
//! the simulator's site laid corte over corte, and watch mode with its observation log while
//! a target stops answering and comes back; hand-made servers for what nginx will not do
//! (content codings stacked or mislabelled, redirects before the start).

use std::io::{BufRead, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::webservers::{Nginx, Varnish, nginx_installed, unzip_into, varnish_installed};
use crate::support::*;

/// The corte a server is still on.
const OLDER: &str = "20270601_2015";
/// The corte of the package checked.
const LATEST: &str = "20270601_2030";
/// What `json/main.json` must be served with.
const MAIN_CACHE_CONTROL: &str = "no-cache, no-store, must-revalidate";
/// The file whose byte is changed, and where.
const ACTAS: &str = "json/actas.json";
const CHANGED_AT: usize = 45;

/// The site package of `corte`: an index page, `json/main.json`, a stylesheet, a script, a
/// JSON of results and an image (never gzipped).
fn site(corte: &str) -> Vec<u8> {
    let css = "body { font-family: sans-serif; color: #222 }\n".repeat(40);
    let js = "function dibuja(corte) { document.title = corte; }\n".repeat(30);
    let actas: String = (1..=60)
        .map(|i| format!("{{\"casilla\":{i},\"votos\":{}}}", i * 7))
        .collect::<Vec<_>>()
        .join(",");
    let actas = format!("{{\"corte\":\"{corte}\",\"actas\":[{actas}]}}");
    let logo: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    site_package(
        corte,
        &[
            ("css/prep.css", css.as_bytes()),
            ("js/prep.js", js.as_bytes()),
            (ACTAS, actas.as_bytes()),
            ("img/logo.png", &logo),
        ],
    )
}

/// The paths of every file [`site`] carries.
const SITE_FILES: [&str; 6] = [
    "css/prep.css",
    "img/logo.png",
    "index.html",
    "js/prep.js",
    "json/actas.json",
    "json/main.json",
];

/// The site package of `corte` written into `dir` as the institute names it; its path and
/// bytes.
fn package_file(dir: &Path, corte: &str) -> (PathBuf, Vec<u8>) {
    let bytes = site(corte);
    let path = dir.join(format!("{corte}_PREP.zip"));
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// The files of `package` unpacked into a new folder under `dir`, for a web server to serve.
fn unpacked(dir: &Path, package: &[u8]) -> PathBuf {
    let root = dir.join(format!("sitio-{}", unique()));
    unzip_into(package, &root);
    root
}

/// A difusor with the package file `package` (of corte `corte`) delivered and live.
fn difusor_serving(dir: &Path, package: &Path, corte: &str, extra: &[&str]) -> Server {
    let server = Server::start(&dir.join(format!("d{}", unique())), extra);
    let name = package.file_name().unwrap().to_str().unwrap();
    drop_file(&server.entrada(), name, &std::fs::read(package).unwrap());
    server.wait_corte(corte);
    server
}

/// What one `difusor check` printed, and its exit status.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// The `--json` report on stdout.
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Requires exit status `code`.
    fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status; stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Requires the human output to end with one verdict line beginning `RESULTADO: <what>`
    /// (the next step follows on it).
    fn verdict_is(&self, what: &str) {
        let verdicts: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("RESULTADO:"))
            .collect();
        assert_eq!(verdicts.len(), 1, "one verdict: {}", self.stdout);
        assert_eq!(
            self.stdout.lines().rfind(|l| !l.trim().is_empty()),
            Some(verdicts[0]),
            "the verdict ends the output: {}",
            self.stdout
        );
        let rest = verdicts[0].strip_prefix(&format!("RESULTADO: {what}"));
        assert!(
            rest.is_some_and(|r| r.is_empty() || r.starts_with(':')),
            "`RESULTADO: {what}` expected: {}",
            self.stdout
        );
    }
}

/// Runs `difusor check <args>` (within 2 minutes).
fn check(args: &[&str]) -> Checked {
    let out = output_within(difusor().arg("check").args(args), Duration::from_secs(120))
        .expect("difusor check ends within 2 minutes");
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `difusor check <args> --json`, requires exit status `code` (and the same `exit` in
/// the report), and returns the report.
fn check_json(args: &[&str], code: i32) -> Value {
    let checked = check(&[args, &["--json"]].concat());
    checked.expect_exit(code);
    let report = checked.report();
    assert_eq!(report["exit"], code, "{report:#}");
    report
}

/// The report's entry for the file `path`.
fn file<'r>(report: &'r Value, path: &str) -> &'r Value {
    report["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files: {report:#}"))
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {report:#}"))
}

/// Whether a finding of the report contains `needle`.
fn has_finding(report: &Value, needle: &str) -> bool {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().unwrap().contains(needle))
}

/// The report's files, `path` and `result`, sorted by path.
fn results(report: &Value) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = report["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files: {report:#}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Requires every file of [`site`] in the report with `result`, and the counts to say so.
fn all_files(report: &Value, result: &str) {
    let expected: Vec<(String, String)> = SITE_FILES
        .iter()
        .map(|p| (p.to_string(), result.to_owned()))
        .collect();
    assert_eq!(results(report), expected, "{report:#}");
    for kind in ["equal", "different", "missing", "leak", "withheld", "error"] {
        let n = if kind == result { SITE_FILES.len() } else { 0 };
        assert_eq!(report["counts"][kind], n, "counts.{kind}: {report:#}");
    }
}

/// Requires the report's package to be `bytes`, a site package of corte `corte`.
fn package_is(report: &Value, path: &Path, bytes: &[u8], corte: &str) {
    let package = &report["package"];
    assert_eq!(
        package["name"],
        path.file_name().unwrap().to_str().unwrap(),
        "{report:#}"
    );
    assert_eq!(package["sha256"], sha256_hex(bytes), "{report:#}");
    assert_eq!(package["kind"], "site", "{report:#}");
    assert_eq!(package["corte"], corte, "{report:#}");
    assert_eq!(report["expected_corte"], corte, "{report:#}");
}

/// Requires each file's SHA-256 to be the one of its copy under `root`, served and expected.
fn digests_match(report: &Value, root: &Path) {
    for path in SITE_FILES {
        let sha = sha256_hex(&std::fs::read(root.join(path)).unwrap());
        let f = file(report, path);
        assert_eq!(f["expected_sha256"], sha.as_str(), "{path}: {report:#}");
        assert_eq!(f["served_sha256"], sha.as_str(), "{path}: {report:#}");
        assert_eq!(f["status"], 200, "{path}: {report:#}");
        assert!(f["first_difference"].is_null(), "{path}: {report:#}");
    }
}

/// Requires a passing report of `url` on corte [`LATEST`], served as `source` says.
fn passes(report: &Value, url: &str, source: &str) {
    assert_eq!(report["result"], "ok", "{report:#}");
    assert_eq!(report["url"], url, "{report:#}");
    assert_eq!(report["target"], url, "no targets file: the URL names it");
    assert_eq!(report["embargo"], false, "{report:#}");
    assert_eq!(report["served_corte"], LATEST, "{report:#}");
    assert_eq!(report["served_corte_source"], source, "{report:#}");
    assert_eq!(report["stale"], false, "{report:#}");
    let main = &report["main_cache_control"];
    assert_eq!(main["path"], "json/main.json", "{report:#}");
    assert_eq!(main["served"], MAIN_CACHE_CONTROL, "{report:#}");
    assert_eq!(main["ok"], true, "{report:#}");
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    all_files(report, "equal");
}

#[test]
fn a_difusor_serving_the_corte_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let server = difusor_serving(dir.path(), &package, LATEST, &[]);
    let url = server.url("/");
    let report = check_json(&[&url, "--package", package.to_str().unwrap()], 0);
    package_is(&report, &package, &bytes, LATEST);
    passes(&report, &url, "header");
    digests_match(&report, &unpacked(dir.path(), &bytes));
    assert_eq!(report["http_version"], "HTTP/1.1", "{report:#}");
    assert!(report["tls"].is_null(), "plain HTTP: {report:#}");

    let human = check(&[&url, "--package", package.to_str().unwrap()]);
    human.expect_exit(0);
    human.verdict_is("correcto");
}

#[test]
fn a_data_package_is_compared_whole_at_its_datos_address() {
    let dir = tempfile::tempdir().unwrap();
    let name = "20210601_1852_PREP_CAMP.zip";
    let package = real_fixture(name);
    let real = std::fs::read(&package).unwrap();
    let server = difusor_serving(dir.path(), &package, "20210601_1852", &[]);
    let report = check_json(
        &[&server.url("/"), "--package", package.to_str().unwrap()],
        0,
    );
    assert_eq!(report["result"], "ok", "{report:#}");
    assert_eq!(report["package"]["kind"], "data", "{report:#}");
    assert_eq!(report["package"]["sha256"], sha256_hex(&real), "{report:#}");
    assert_eq!(report["expected_corte"], "20210601_1852", "{report:#}");
    assert_eq!(report["served_corte"], "20210601_1852", "{report:#}");
    assert_eq!(report["served_corte_source"], "header", "{report:#}");
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "the package itself: {report:#}");
    assert_eq!(files[0]["path"], format!("datos/{name}"), "{report:#}");
    assert_eq!(files[0]["result"], "equal", "{report:#}");
    assert_eq!(files[0]["served_sha256"], sha256_hex(&real), "{report:#}");
    // No site was sent: main.json's 404 is no finding.
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
}

#[test]
fn nginx_serving_the_same_files_gzipped_passes() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let root = unpacked(dir.path(), &bytes);
    let nginx = Nginx::serve(&root, true);
    let report = check_json(&[&nginx.url(), "--package", package.to_str().unwrap()], 0);
    package_is(&report, &package, &bytes, LATEST);
    // nginx sends no X-PREP-Corte: its main.json is the package's, byte for byte.
    passes(&report, &nginx.url(), "package");
    digests_match(&report, &root);
    // What nginx gzipped was decoded before comparing; the image went as it is.
    for path in [
        "css/prep.css",
        "js/prep.js",
        ACTAS,
        "json/main.json",
        "index.html",
    ] {
        assert_eq!(
            file(&report, path)["encoding"],
            "gzip",
            "{path}: {report:#}"
        );
    }
    assert!(
        file(&report, "img/logo.png")["encoding"].is_null(),
        "{report:#}"
    );
}

#[test]
fn one_byte_changed_in_one_json_is_found_at_its_offset() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let root = unpacked(dir.path(), &bytes);
    let original = std::fs::read(root.join(ACTAS)).unwrap();
    let mut changed = original.clone();
    assert_eq!(
        changed[CHANGED_AT],
        b'1',
        "{}",
        String::from_utf8_lossy(&original)
    );
    changed[CHANGED_AT] = b'2';
    std::fs::write(root.join(ACTAS), &changed).unwrap();
    let nginx = Nginx::serve(&root, true);
    let args = [
        nginx.url(),
        "--package".into(),
        package.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let report = check_json(&args, 1);
    assert_eq!(report["result"], "fail", "{report:#}");
    let actas = file(&report, ACTAS);
    assert_eq!(actas["result"], "different", "{report:#}");
    assert_eq!(actas["status"], 200, "{report:#}");
    assert_eq!(actas["first_difference"], CHANGED_AT, "{report:#}");
    assert_eq!(
        actas["expected_sha256"],
        sha256_hex(&original),
        "{report:#}"
    );
    assert_eq!(actas["served_sha256"], sha256_hex(&changed), "{report:#}");
    for (path, result) in results(&report) {
        if path != ACTAS {
            assert_eq!(result, "equal", "{path}: {report:#}");
        }
    }
    assert_eq!(report["counts"]["different"], 1, "{report:#}");
    assert_eq!(
        report["counts"]["equal"],
        SITE_FILES.len() - 1,
        "{report:#}"
    );
    assert_eq!(report["stale"], false, "main.json is the package's");
    assert_eq!(report["main_cache_control"]["ok"], true, "{report:#}");
    assert!(
        has_finding(&report, ACTAS),
        "a finding names the file: {report:#}"
    );

    let human = check(&args);
    human.expect_exit(1);
    human.verdict_is("diferencias");
    assert!(human.stdout.contains(ACTAS), "{}", human.stdout);
}

#[test]
fn main_json_without_its_cache_control_fails() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let nginx = Nginx::serve(&unpacked(dir.path(), &bytes), false);
    let report = check_json(&[&nginx.url(), "--package", package.to_str().unwrap()], 1);
    assert_eq!(report["result"], "fail", "{report:#}");
    all_files(&report, "equal");
    let main = &report["main_cache_control"];
    assert_eq!(main["path"], "json/main.json", "{report:#}");
    assert_eq!(main["ok"], false, "{report:#}");
    assert_ne!(main["served"], MAIN_CACHE_CONTROL, "{report:#}");
    assert!(
        has_finding(&report, "Cache-Control"),
        "a finding names Cache-Control: {report:#}"
    );
}

#[test]
fn nginx_still_on_the_previous_corte_is_stale_by_its_main_json() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, older) = package_file(dir.path(), OLDER);
    let (package, bytes) = package_file(dir.path(), LATEST);
    let nginx = Nginx::serve(&unpacked(dir.path(), &older), true);
    let args = [
        nginx.url(),
        "--package".into(),
        package.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let report = check_json(&args, 1);
    package_is(&report, &package, &bytes, LATEST);
    assert_eq!(report["result"], "fail", "{report:#}");
    assert_eq!(report["stale"], true, "{report:#}");
    assert_eq!(report["served_corte"], OLDER, "{report:#}");
    // nginx sends no X-PREP-Corte and no known package has its main.json.
    assert_eq!(report["served_corte_source"], "main.json", "{report:#}");
    assert_eq!(file(&report, "json/main.json")["result"], "different");

    let human = check(&args);
    human.expect_exit(1);
    human.verdict_is("desactualizado");
}

#[test]
fn a_difusor_still_on_the_previous_corte_is_stale_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let (older, _) = package_file(dir.path(), OLDER);
    let (package, bytes) = package_file(dir.path(), LATEST);
    let server = difusor_serving(dir.path(), &older, OLDER, &[]);
    let report = check_json(
        &[&server.url("/"), "--package", package.to_str().unwrap()],
        1,
    );
    package_is(&report, &package, &bytes, LATEST);
    assert_eq!(report["result"], "fail", "{report:#}");
    assert_eq!(report["stale"], true, "{report:#}");
    assert_eq!(report["served_corte"], OLDER, "{report:#}");
    assert_eq!(report["served_corte_source"], "header", "{report:#}");
}

#[test]
fn before_publish_start_difusor_withholds_every_file_and_nginx_leaks_them() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let tomorrow = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .to_string();
    let server = difusor_serving(
        dir.path(),
        &package,
        LATEST,
        &["--publish-start", &tomorrow, "--publish-end", ""],
    );
    assert_eq!(server.status()["gate"]["open"], false);
    let url = server.url("/");
    let report = check_json(
        &[&url, "--package", package.to_str().unwrap(), "--embargo"],
        0,
    );
    assert_eq!(report["result"], "ok", "{report:#}");
    assert_eq!(report["embargo"], true, "{report:#}");
    all_files(&report, "withheld");
    for path in SITE_FILES {
        assert_eq!(file(&report, path)["status"], 503, "{path}: {report:#}");
    }
    assert!(
        report["main_cache_control"].is_null(),
        "not judged under --embargo: {report:#}"
    );

    if !nginx_installed() {
        return;
    }
    let nginx = Nginx::serve(&unpacked(dir.path(), &bytes), true);
    let args = [
        nginx.url(),
        "--package".into(),
        package.display().to_string(),
        "--embargo".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = check_json(&args, 1);
    assert_eq!(report["result"], "fail", "{report:#}");
    assert_eq!(report["embargo"], true, "{report:#}");
    all_files(&report, "leak");
    let human = check(&args);
    human.expect_exit(1);
    human.verdict_is("fuga");
}

#[test]
fn varnish_in_front_of_difusor_passes() {
    if !varnish_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let server = difusor_serving(dir.path(), &package, LATEST, &[]);
    let varnish = Varnish::front(server.port);
    // Twice: the second answers come from Varnish's cache where it keeps them.
    for _ in 0..2 {
        let report = check_json(&[&varnish.url(), "--package", package.to_str().unwrap()], 0);
        package_is(&report, &package, &bytes, LATEST);
        passes(&report, &varnish.url(), "header");
    }
}

#[test]
fn a_closed_port_or_a_missing_package_cannot_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    let closed = ReservedPort::hold();
    let url = format!("http://{}/", closed.addr());
    let report = check_json(&[&url, "--package", package.to_str().unwrap()], 2);
    assert_eq!(report["result"], "unchecked", "{report:#}");
    let human = check(&[&url, "--package", package.to_str().unwrap()]);
    human.expect_exit(2);
    human.verdict_is("no se pudo verificar");

    let missing = dir.path().join("20270601_2045_PREP.zip");
    let checked = check(&[&url, "--package", missing.to_str().unwrap(), "--json"]);
    checked.expect_exit(2);
    assert!(
        checked.stderr.contains("20270601_2045_PREP.zip"),
        "the message names the package: {}",
        checked.stderr
    );
    assert!(
        !checked.stderr.contains("panicked"),
        "a plain message: {}",
        checked.stderr
    );
}

#[test]
fn nginx_serving_the_simulators_site_laid_corte_over_corte_passes() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("entregas");
    run_ok(
        difusor()
            .args(["simulate", "--out"])
            .arg(&out)
            .args(["--cortes", "2", "--every", "1s", "--casillas", "200"])
            .args(["--fecha", "2027-06-06"]),
    );
    let complete = std::fs::read(out.join("20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip")).unwrap();
    let incremental = out.join("20270606_2015_PREP_SITIO_CAMP.zip");
    let root = unpacked(dir.path(), &complete);
    unzip_into(&std::fs::read(&incremental).unwrap(), &root);
    let nginx = Nginx::serve(&root, true);
    // A careless institute's folder: a note, a damaged zip, a file too large to be a package
    // and an upload still under its hidden name. None of them is expected.
    std::fs::write(out.join("notas.txt"), "corte de prueba\n").unwrap();
    std::fs::write(
        out.join("20270606_2030_PREP_SITIO_CAMP.zip"),
        b"PK\x03\x04roto",
    )
    .unwrap();
    std::fs::write(out.join("grande.zip"), vec![0u8; 3 << 20]).unwrap();
    std::fs::write(out.join(".20270606_2045_PREP_SITIO_CAMP.zip.part"), b"PK").unwrap();

    let report = check_json(
        &[
            &nginx.url(),
            "--packages",
            out.to_str().unwrap(),
            "--max-package-bytes",
            "2MiB",
        ],
        0,
    );
    assert_eq!(report["result"], "ok", "{report:#}");
    assert_eq!(
        report["package"]["name"], "20270606_2015_PREP_SITIO_CAMP.zip",
        "{report:#}"
    );
    assert_eq!(report["package"]["kind"], "site", "{report:#}");
    assert_eq!(report["expected_corte"], "20270606_2015", "{report:#}");
    assert_eq!(report["served_corte"], "20270606_2015", "{report:#}");
    assert_eq!(report["stale"], false, "{report:#}");
    let files = report["files"].as_array().unwrap();
    assert!(files.len() > 10, "every JSON of the corte: {report:#}");
    assert!(files.iter().all(|f| f["result"] == "equal"), "{report:#}");
    file(&report, "json/main.json");
    assert_eq!(report["main_cache_control"]["ok"], true, "{report:#}");
}

/// The observation log's columns.
const LOG_COLUMNS: [&str; 16] = [
    "time",
    "target",
    "url",
    "result",
    "expected_corte",
    "served_corte",
    "files",
    "equal",
    "different",
    "missing",
    "errors",
    "slowest_millis",
    "lag_seconds",
    "consecutive_failures",
    "event",
    "detail",
];

/// A `difusor check --watch` running, its stdout read line by line as it prints.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Watching {
    fn start(args: &[&str], stderr: PathBuf) -> Watching {
        let mut child = difusor()
            .arg("check")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watching {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits up to 90 s for a line satisfying `cond`, keeping every line read; that line.
    fn wait_line(&mut self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if cond(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what}; lines: {:#?}\nstderr: {}",
                    self.seen,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    /// Sends Ctrl-C (SIGINT); the exit status if it ends within `within`.
    fn interrupt(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Reads every line, each with when it came, until it exits; its exit status, or `None`
    /// when it is still running `within` from now.
    fn finish(
        &mut self,
        within: Duration,
    ) -> Option<(std::process::ExitStatus, Vec<(Instant, String)>)> {
        let deadline = Instant::now() + within;
        let mut timed = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    timed.push((Instant::now(), line));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Some((self.child.wait().unwrap(), timed));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    /// Kills it at once (SIGKILL).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The lines read that contain `text`.
    fn lines_with(&self, text: &str) -> Vec<&String> {
        self.seen.iter().filter(|l| l.contains(text)).collect()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A targets file with the one target `uni` at `url`.
fn targets_file(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join("objetivos.toml");
    let text = format!("[[target]]\nname = \"uni\"\nurl = \"{url}\"\n{extra}");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn watch_suspends_a_target_that_stops_answering_once_and_sees_it_recover() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    let mut nginx = Nginx::serve(&unpacked(dir.path(), &site(LATEST)), true);
    let targets = targets_file(dir.path(), &nginx.url(), "");
    let log = dir.path().join("observaciones.csv");
    let mut watching = Watching::start(
        &[
            "--watch",
            "--every",
            "1s",
            "--targets",
            targets.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--periods",
            "1000",
        ],
        dir.path().join("stderr.log"),
    );
    let first = watching.wait_line("a passing period", |l| l.contains("  ok  "));
    assert!(first.contains("  uni  "), "{first}");
    assert!(first.contains(&format!("corte {LATEST}")), "{first}");
    assert!(first.contains("6 iguales"), "{first}");

    nginx.stop();
    watching.wait_line("the suspension", |l| {
        l.contains("suspender: 3 periodos consecutivos")
    });
    nginx.start();
    let recovered = watching.wait_line("the recovery", |l| l.contains("recuperado tras"));
    let failed: u64 = recovered
        .split("recuperado tras ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number of periods: {recovered}"));
    assert!(
        recovered.contains(&format!("recuperado tras {failed} periodos con falla")),
        "{recovered}"
    );
    assert!(failed >= 3, "{recovered}");
    // One more period, to see nothing is announced twice.
    watching.wait_line("a passing period after the recovery", |l| {
        l.contains("  ok  ")
    });
    // Every row is flushed before the next period's line is printed.
    watching.kill();

    let failing = watching.lines_with("  falla (");
    assert!(
        failing[0].contains("  uni  falla (1 periodo consecutivo)"),
        "{failing:#?}"
    );
    assert!(
        watching.lines_with("falla (2 periodos consecutivos)").len() == 1,
        "{:#?}",
        watching.seen
    );
    for text in ["suspender: 3 periodos consecutivos", "recuperado tras"] {
        assert_eq!(
            watching.lines_with(text).len(),
            1,
            "once: {text}; {:#?}",
            watching.seen
        );
    }

    let mut reader = csv::Reader::from_path(&log).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, LOG_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let at = |name: &str| LOG_COLUMNS.iter().position(|c| *c == name).unwrap();
    let column = |row: &csv::StringRecord, name: &str| row[at(name)].to_owned();
    // A passing period, the failed ones, the recovery (the period after it may be unwritten).
    assert!(rows.len() >= failed as usize + 2, "{rows:#?}");
    for row in &rows {
        assert_eq!(column(row, "target"), "uni", "{row:?}");
        assert_eq!(column(row, "url"), nginx.url(), "{row:?}");
        assert_eq!(column(row, "expected_corte"), LATEST, "{row:?}");
        let time = column(row, "time");
        assert!(
            time.parse::<jiff::Timestamp>().is_ok() && time.len() > 20,
            "RFC 3339 with offset: {row:?}"
        );
    }
    let first = &rows[0];
    assert_eq!(column(first, "result"), "ok", "{first:?}");
    assert_eq!(column(first, "served_corte"), LATEST, "{first:?}");
    assert_eq!(column(first, "files"), "6", "{first:?}");
    assert_eq!(column(first, "equal"), "6", "{first:?}");
    assert_eq!(column(first, "consecutive_failures"), "0", "{first:?}");
    assert_eq!(column(first, "event"), "", "{first:?}");

    let with_event = |event: &str| -> Vec<usize> {
        (0..rows.len())
            .filter(|&i| column(&rows[i], "event") == event)
            .collect()
    };
    let (suspended, recovered) = (with_event("suspender"), with_event("recuperado"));
    assert_eq!(suspended.len(), 1, "{rows:#?}");
    assert_eq!(recovered.len(), 1, "{rows:#?}");
    let (suspended, recovered) = (suspended[0], recovered[0]);
    assert_eq!(column(&rows[suspended], "consecutive_failures"), "3");
    assert_eq!(column(&rows[suspended], "result"), "unchecked");
    assert_eq!(column(&rows[recovered], "result"), "ok");
    // The failed run: `failed` rows just before the recovery, counted 1, 2, 3 …
    assert!(recovered >= failed as usize, "{rows:#?}");
    for (n, row) in rows[recovered - failed as usize..recovered]
        .iter()
        .enumerate()
    {
        // Nothing answers: the check cannot be made, and that fails the period (the first
        // may have caught nginx stopping halfway through).
        let result = column(row, "result");
        assert!(
            result == "unchecked" || (n == 0 && result == "fail"),
            "{row:?}"
        );
        assert_eq!(
            column(row, "consecutive_failures"),
            (n + 1).to_string(),
            "{row:?}"
        );
        assert!(!column(row, "detail").is_empty(), "findings: {row:?}");
    }
    assert_eq!(
        column(&rows[recovered - failed as usize - 1], "result"),
        "ok",
        "the run began after a passing period: {rows:#?}"
    );
    assert!(suspended < recovered, "{rows:#?}");
}

#[test]
fn watch_stops_after_the_periods_asked_with_the_last_periods_result() {
    if !nginx_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    let nginx = Nginx::serve(&unpacked(dir.path(), &site(LATEST)), false);
    let targets = targets_file(
        dir.path(),
        &nginx.url(),
        "headers = [\"Content-Type: application/json\", \"X-Content-Type-Options\"]\n",
    );
    let log = dir.path().join("observaciones.csv");
    let checked = check(&[
        "--watch",
        "--every",
        "1s",
        "--targets",
        targets.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--periods",
        "2",
        "--json",
    ]);
    checked.expect_exit(1);
    let reports: Vec<Value> = checked
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        reports.len(),
        2,
        "one object per period: {}",
        checked.stdout
    );
    for report in &reports {
        assert_eq!(report["target"], "uni", "{report:#}");
        assert_eq!(report["url"], nginx.url(), "{report:#}");
        assert_eq!(report["result"], "fail", "{report:#}");
        assert_eq!(report["main_cache_control"]["ok"], false, "{report:#}");
        let headers = report["headers"].as_array().unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| {
                    h["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .unwrap_or_else(|| panic!("{name}: {report:#}"))
        };
        assert_eq!(header("Content-Type")["ok"], true, "{report:#}");
        assert_eq!(header("X-Content-Type-Options")["ok"], false, "{report:#}");
        all_files(report, "equal");
    }
    let rows = csv::Reader::from_path(&log).unwrap().records().count();
    assert_eq!(rows, 2, "one row per period");
}

#[test]
fn watch_stops_with_0_on_ctrl_c_while_a_period_waits_on_a_silent_server() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    // A server that accepts connections and never answers: a period lasts until its requests
    // time out (`--timeout`, a few seconds with `--concurrency` 4).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let (accepted, connected) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            let Ok(stream) = stream else { break };
            held.push(stream);
            if accepted.send(()).is_err() {
                break;
            }
        }
    });
    let mut watching = Watching::start(
        &[
            &url,
            "--watch",
            "--every",
            "1s",
            "--timeout",
            "2s",
            "--package",
            package.to_str().unwrap(),
            "--log",
            dir.path().join("observaciones.csv").to_str().unwrap(),
            "--periods",
            "1000",
        ],
        dir.path().join("stderr.log"),
    );
    connected
        .recv_timeout(Duration::from_secs(60))
        .expect("the first period asks the silent server");
    // Ctrl-C in the middle of a period: it ends by the end of that period at the latest.
    let status = watching.interrupt(Duration::from_secs(30));
    let printed: Vec<String> = watching.lines.try_iter().collect();
    watching.seen.extend(printed);
    assert!(
        status.is_some(),
        "still running 30 s after Ctrl-C (a period's requests time out after 2 s); lines: \
         {:#?}\nstderr: {}",
        watching.seen,
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
    );
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C stops with 0, not {status}");
}

/// A web server on loopback serving the files of the site package `package` as difusor does
/// for corte `corte` (`X-PREP-Corte` on every answer, `Cache-Control` of `main.json`), each
/// answer `delay` after its request; its address.
fn site_server(dir: &Path, package: &[u8], corte: &str, delay: Duration) -> String {
    let corte = corte.to_owned();
    answering_server(dir, package, move |_, file| {
        std::thread::sleep(delay);
        let (status, body) = match file {
            Some(bytes) => ("200 OK", bytes),
            None => ("404 Not Found", Vec::new()),
        };
        let mut answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-PREP-Corte: {corte}\r\n\
             Cache-Control: {MAIN_CACHE_CONTROL}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        answer
    })
}

/// The time a watch line begins with.
fn line_time(line: &str) -> jiff::Timestamp {
    let at = line.split_whitespace().next().unwrap_or_default();
    at.parse()
        .unwrap_or_else(|e| panic!("a line begins with its time ({e}): {line}"))
}

#[test]
fn watch_keeps_each_targets_periods_on_time_beside_a_server_that_answers_slowly() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    // Both serve the package; `lento` answers every request after 5 s, within the checker's
    // 10 s per request, so each of its files alone is in time but the six of them take 30 s.
    let rapido = site_server(dir.path(), &bytes, LATEST, Duration::ZERO);
    let lento = site_server(dir.path(), &bytes, LATEST, Duration::from_secs(5));
    let targets = dir.path().join("objetivos.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"rapido\"\nurl = \"{rapido}\"\n\n\
             [[target]]\nname = \"lento\"\nurl = \"{lento}\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("observaciones.csv");
    let started = Instant::now();
    let mut watching = Watching::start(
        &[
            "--watch",
            "--every",
            "2s",
            "--periods",
            "4",
            "--concurrency",
            "1",
            "--targets",
            targets.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        dir.path().join("stderr.log"),
    );
    // Four periods of 2 s: about 8 s. Waiting on `lento` would take 30 s for the first alone.
    let finished = watching.finish(Duration::from_secs(22));
    let Some((status, lines)) = finished else {
        panic!(
            "4 periods of 2 s not done in 22 s: the slow target holds the periods up; lines: \
             {:#?}",
            watching.seen
        );
    };
    assert!(started.elapsed() < Duration::from_secs(22));
    // `lento` fails its last period without an answer in time: status 2, as any unchecked.
    assert_eq!(status.code(), Some(2), "{:#?}", watching.seen);

    let of = |head: &str| -> Vec<&(Instant, String)> {
        lines.iter().filter(|(_, l)| l.contains(head)).collect()
    };
    let fast = of("  rapido  ");
    assert_eq!(fast.len(), 4, "one line per period: {lines:#?}");
    for (_, line) in &fast {
        assert!(
            line.contains(&format!("  rapido  ok  corte {LATEST}  6 iguales")),
            "{line}"
        );
    }
    // Its periods begin every 2 s (times to the second), and its lines come as each ends.
    for pair in fast.windows(2) {
        let gap = line_time(&pair[1].1).duration_since(line_time(&pair[0].1));
        assert!(
            (1..=4).contains(&gap.as_secs()),
            "periods 2 s apart: {gap:?}: {fast:#?}"
        );
    }
    let span = fast[3].0.duration_since(fast[0].0);
    assert!(
        span < Duration::from_secs(12),
        "4 periods of 2 s printed over {span:?}: {fast:#?}"
    );

    // `lento` fails each period on time for want of answers by the period's end, and is to be
    // suspended at its third, printed with that period.
    let slow = of("  lento  falla (");
    assert_eq!(slow.len(), 4, "{lines:#?}");
    for (n, (_, line)) in slow.iter().enumerate() {
        let periods = if n == 0 {
            "periodo consecutivo"
        } else {
            "periodos consecutivos"
        };
        assert!(
            line.contains(&format!("falla ({} {periods})", n + 1)),
            "{line}"
        );
        assert!(line.contains("no terminó en el plazo de 2 s"), "{line}");
    }
    let suspended = of("  lento  suspender: 3 periodos consecutivos");
    assert_eq!(suspended.len(), 1, "{lines:#?}");
    assert!(
        suspended[0].0.duration_since(fast[0].0) < Duration::from_secs(10),
        "the suspension comes with the third period: {lines:#?}"
    );
    assert!(
        line_time(&suspended[0].1) == line_time(&slow[2].1),
        "{lines:#?}"
    );

    let mut reader = csv::Reader::from_path(&log).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let at = |name: &str| LOG_COLUMNS.iter().position(|c| *c == name).unwrap();
    let of_target = |name: &str| -> Vec<&csv::StringRecord> {
        rows.iter().filter(|r| &r[at("target")] == name).collect()
    };
    let fast_rows = of_target("rapido");
    assert_eq!(fast_rows.len(), 4, "{rows:#?}");
    assert!(
        fast_rows.iter().all(|r| &r[at("result")] == "ok"),
        "{rows:#?}"
    );
    let slow_rows = of_target("lento");
    assert_eq!(slow_rows.len(), 4, "{rows:#?}");
    for (n, row) in slow_rows.iter().enumerate() {
        assert_eq!(&row[at("result")], "unchecked", "{row:?}");
        assert_eq!(
            row[at("consecutive_failures")],
            (n + 1).to_string(),
            "{row:?}"
        );
        assert_eq!(
            &row[at("event")],
            if n == 2 { "suspender" } else { "" },
            "{row:?}"
        );
        assert!(
            row[at("detail")].contains("no terminó en el plazo"),
            "{row:?}"
        );
    }
}

/// A TLS server on loopback presenting `chain` (and `key`) to every client, which does
/// nothing but shake hands; its port.
fn tls_server(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> u16 {
    let config = tls_config(chain, key);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(mut tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                while tls.is_handshaking() && tls.complete_io(&mut tcp).is_ok() {}
            });
        }
    });
    port
}

/// A TLS server's settings with the certificate `chain` and its `key`.
fn tls_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

#[test]
fn a_certificates_hostile_names_reach_the_terminal_and_the_log_escaped_never_raw() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    // A private authority the checker is told to trust, and a certificate it issued whose
    // names set the terminal's title and clear its screen.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Autoridad privada");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![
        "x\u{1b}]0;PWNED\u{7}.example".to_owned(),
        "y\u{1b}[2J.example".to_owned(),
    ])
    .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evil\u{1b}[31m");
    let cert = params.signed_by(&key, &ca).unwrap();
    let port = tls_server(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    );
    let url = format!("https://127.0.0.1:{port}/");
    let raw = |text: &str| text.chars().any(|c| c.is_control() && c != '\n');

    // One check, as the operator reads it on a terminal.
    let checked = check(&[
        &url,
        "--package",
        package.to_str().unwrap(),
        "--pull-ca",
        ca_pem.to_str().unwrap(),
    ]);
    checked.expect_exit(2);
    checked.verdict_is("no se pudo verificar");
    for text in [&checked.stdout, &checked.stderr] {
        assert!(!raw(text), "a control character printed raw: {text:?}");
    }
    assert!(
        checked.stdout.contains("x\\u{1b}]0;PWNED\\u{7}.example")
            && checked.stdout.contains("y\\u{1b}[2J.example"),
        "the names are shown, their escapes visible: {}",
        checked.stdout
    );

    // A watch: its line on stdout and its row in the observation log.
    let log = dir.path().join("observaciones.csv");
    let watched = check(&[
        &url,
        "--watch",
        "--every",
        "1s",
        "--periods",
        "1",
        "--package",
        package.to_str().unwrap(),
        "--pull-ca",
        ca_pem.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    watched.expect_exit(2);
    let logged = std::fs::read_to_string(&log).unwrap();
    for text in [&watched.stdout, &watched.stderr, &logged] {
        assert!(!raw(text), "a control character printed raw: {text:?}");
    }
    assert!(
        watched.stdout.contains("x\\u{1b}]0;PWNED\\u{7}.example"),
        "{}",
        watched.stdout
    );
    assert!(logged.contains("y\\u{1b}[2J.example"), "{logged}");
}

/// A server on loopback that answers every request with `head` and then drips `body` one
/// byte a second; its address.
fn dripping_server(head: String, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (head, body) = (head.clone(), body.clone());
            std::thread::spawn(move || {
                if read_head(&mut stream).is_none() || stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for byte in body {
                    std::thread::sleep(Duration::from_secs(1));
                    if stream.write_all(&[byte]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn a_one_off_check_of_a_slow_site_ends_at_max_time_and_says_it_could_not_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    // Every answer comes 2 s after its request, within the 10 s per request; one request at
    // a time, the six files would take 12 s.
    let slow = site_server(dir.path(), &bytes, LATEST, Duration::from_secs(2));
    let started = Instant::now();
    let checked = check(&[
        &slow,
        "--package",
        package.to_str().unwrap(),
        "--concurrency",
        "1",
        "--max-time",
        "3s",
    ]);
    let took = started.elapsed();
    checked.expect_exit(2);
    checked.verdict_is("no se pudo verificar");
    assert!(
        took < Duration::from_secs(8),
        "--max-time 3s ends the check in about 3 s, not {took:?}: {}",
        checked.stdout
    );
    assert!(
        checked
            .stdout
            .contains("la verificación no terminó en el plazo de 3 s (--max-time)")
            && checked.stdout.contains("(--max-time); revise"),
        "{}",
        checked.stdout
    );

    let report = check_json(
        &[
            &slow,
            "--package",
            package.to_str().unwrap(),
            "--concurrency",
            "1",
            "--max-time",
            "3s",
        ],
        2,
    );
    assert_eq!(report["result"], "unchecked", "{report:#}");
    assert_eq!(report["unfinished"], true, "{report:#}");
    let late: Vec<&Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["error"] == "no llegó antes del plazo de la verificación (--max-time)"
                && f["result"] == "error"
        })
        .collect();
    assert!(
        !late.is_empty() && late.len() < SITE_FILES.len(),
        "some files answered, the rest cut: {report:#}"
    );
    assert!(
        has_finding(
            &report,
            &format!(
                "(--max-time): {} de {} archivos sin respuesta a tiempo",
                late.len(),
                SITE_FILES.len()
            )
        ),
        "{report:#}"
    );

    // A package address that sends its package a byte a second is bounded the same way.
    let drip = dripping_server(
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()),
        bytes.clone(),
    );
    let started = Instant::now();
    let checked = check(&[
        &slow,
        "--package-url",
        &format!("{drip}{LATEST}_PREP.zip"),
        "--max-time",
        "3s",
    ]);
    let took = started.elapsed();
    checked.expect_exit(2);
    assert!(
        took < Duration::from_secs(8),
        "the package's reading ends at --max-time, not after {took:?}"
    );
    assert!(
        checked
            .stderr
            .contains("the package was not read within 3 s (--max-time); nothing was checked"),
        "{}",
        checked.stderr
    );

    // --max-time is the one-off check's; a watch has --period-timeout.
    let both = check(&[
        &slow,
        "--package",
        package.to_str().unwrap(),
        "--watch",
        "--max-time",
        "3s",
    ]);
    both.expect_exit(2);
    assert!(
        both.stderr.contains("--max-time") && both.stderr.contains("--watch"),
        "{}",
        both.stderr
    );
}

#[test]
fn a_watch_whose_package_address_drips_keeps_its_periods() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = package_file(dir.path(), LATEST);
    let site = site_server(dir.path(), &bytes, LATEST, Duration::ZERO);
    // The package's address answers at once and then sends its package a byte a second,
    // each byte within the 10 s per read: thousands of seconds for the whole package.
    let drip = dripping_server(
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()),
        bytes.clone(),
    );
    let log = dir.path().join("observaciones.csv");
    let started = Instant::now();
    let watched = check(&[
        &site,
        "--watch",
        "--every",
        "2s",
        "--periods",
        "2",
        "--package-url",
        &format!("{drip}{LATEST}_PREP.zip"),
        "--log",
        log.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    watched.expect_exit(2);
    assert!(
        took < Duration::from_secs(15),
        "two periods of 2 s end on time, not after {took:?}"
    );
    let said: Vec<&str> = watched
        .stderr
        .lines()
        .filter(|l| {
            l.contains(
                "sin paquete que comparar: the package was not read within 2 s \
                        (--period-timeout)",
            )
        })
        .collect();
    assert_eq!(said.len(), 2, "one line per period: {}", watched.stderr);
}

#[test]
fn a_targets_file_that_is_a_fifo_or_hostile_toml_is_refused_at_once_in_one_safe_line() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    let package = package.to_str().unwrap();
    let refused = |targets: &Path| {
        let started = Instant::now();
        let checked = check(&["--targets", targets.to_str().unwrap(), "--package", package]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused at once, not after {:?}",
            started.elapsed()
        );
        checked.expect_exit(2);
        assert!(
            !checked
                .stderr
                .chars()
                .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
            "a control or bidi character printed raw: {:?}",
            checked.stderr
        );
        checked.stderr
    };

    // A FIFO with no writer: opening it to read would wait for ever.
    let fifo = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let said = refused(&fifo);
    assert!(said.contains("it is not a regular file"), "{said}");

    // What a targets file holding `text` makes the check say.
    let refused_text = |text: &str| {
        let path = dir.path().join("targets.toml");
        std::fs::write(&path, text).unwrap();
        refused(&path)
    };
    // A parse error on a line that sets the terminal's title: the line is never quoted.
    let said =
        refused_text("[[target]]\nname = \"x\u{1b}]0;PWNED\u{7}\u{1b}[2J\"\nurl = \"http://a/\"\n");
    assert!(
        said.contains("not a targets file (line 2, column 10:"),
        "{said}"
    );
    // A key made of escapes: its name is shown with them visible.
    let said = refused_text(
        "[[target]]\nname = \"a\"\nurl = \"http://a/\"\n\"x\\u001b]0;T\\u0007\" = 1\n",
    );
    assert!(said.contains("x\\u{1b}]0;T\\u{7}"), "{said}");
    // A line of a megabyte: one short message, not the line.
    let said = refused_text(&format!(
        "[[target]]\nname = \"a\"\nurl = \"http://a/\"\n{}\n",
        "x".repeat(1_000_000)
    ));
    assert!(said.len() < 1000, "{} bytes said", said.len());
    // A name that reverses the text after it.
    let said = refused_text("[[target]]\nname = \"a\u{202e}b\"\nurl = \"http://127.0.0.1:9/\"\n");
    assert!(
        said.contains("a target needs a name without control or bidirectional"),
        "{said}"
    );
}

#[test]
fn header_values_with_control_or_bidi_characters_reach_the_json_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    // Every answer's Cache-Control and X-Frame-Options carry, as UTF-8, a right-to-left
    // override and a C1 control sequence introducer.
    let evil = "no-cache\u{202e}\u{9b}2J";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                if read_head(&mut stream).is_some() {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nCache-Control: {evil}\r\n\
                         X-Frame-Options: {evil}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            });
        }
    });
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"malo\"\nurl = \"{url}\"\nheaders = [\"X-Frame-Options: DENY\"]\n"
        ),
    )
    .unwrap();
    let checked = check(&[
        "--targets",
        targets.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
        "--json",
    ]);
    checked.expect_exit(1);
    assert!(
        !checked
            .stdout
            .chars()
            .any(|c| c == '\u{202e}' || c == '\u{9b}'),
        "a control or bidi character printed raw: {:?}",
        checked.stdout
    );
    let report = checked.report();
    let shown = "no-cache\\u{202e}\\u{9b}2J";
    assert_eq!(report["headers"][0]["served"], shown, "{report:#}");
    let table = check(&[
        "--targets",
        targets.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
    ]);
    table.expect_exit(1);
    assert!(
        table
            .stdout
            .contains(&format!("el encabezado X-Frame-Options vale \"{shown}\"")),
        "{}",
        table.stdout
    );
}

#[test]
fn a_header_value_hundreds_of_kilobytes_long_is_judged_whole_and_shown_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    // 300 KB in X-Frame-Options, and a Cache-Control right for its first 200 characters.
    let long = "A".repeat(300_000);
    let url = answering_server(dir.path(), &bytes, move |_, file| match file {
        Some(file) => {
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\nX-Frame-Options: {long}\r\nContent-Length: {}\r\n\
                 X-PREP-Corte: {LATEST}\r\nCache-Control: {MAIN_CACHE_CONTROL}{}\r\n\
                 Connection: close\r\n\r\n",
                file.len(),
                "x".repeat(200)
            )
            .into_bytes();
            answer.extend_from_slice(&file);
            answer
        }
        None => not_found(),
    });
    let targets = targets_file(dir.path(), &url, "headers = [\"X-Frame-Options: DENY\"]\n");
    let args = [
        "--targets",
        targets.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
    ];
    let checked = check(&[&args[..], &["--json"]].concat());
    checked.expect_exit(1);
    assert!(
        checked.stdout.len() < 50_000,
        "a {} byte report for a 300 KB header",
        checked.stdout.len()
    );
    let report = checked.report();
    let served = report["headers"][0]["served"].as_str().unwrap_or_default();
    assert_eq!(report["headers"][0]["ok"], false, "{report:#}");
    assert_eq!(
        served,
        format!("{}… (300000 bytes en total)", "A".repeat(200)),
        "{report:#}"
    );
    // Judged whole: a value that begins right is no pass.
    assert_eq!(report["main_cache_control"]["ok"], false, "{report:#}");
    let table = check(&args);
    table.expect_exit(1);
    assert!(table.stdout.len() < 50_000, "{}", table.stdout.len());
    assert!(
        table.stdout.contains("(300000 bytes en total)"),
        "{}",
        table.stdout
    );
}

#[test]
fn an_https_package_address_redirected_to_http_is_refused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = package_file(dir.path(), LATEST);
    let site = site_server(dir.path(), &bytes, LATEST, Duration::ZERO);

    // The package over plain HTTP, each request counted.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_url = format!("http://{}/{LATEST}_PREP.zip", plain.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    std::thread::spawn({
        let (asked, bytes) = (asked.clone(), bytes.clone());
        move || {
            for stream in plain.incoming() {
                let Ok(mut stream) = stream else { return };
                if read_head(&mut stream).is_none() {
                    continue;
                }
                asked.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = stream.write_all(&bytes);
            }
        }
    });

    // The package's https:// address, whose answer is a redirect to the plain one.
    let pki = pki();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, &pki.ca_pem).unwrap();
    let (chain, key) = pki.server;
    let config = tls_config(chain, key);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let https_url = format!(
        "https://127.0.0.1:{}/{LATEST}_PREP.zip",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn({
        let location = plain_url.clone();
        move || {
            for stream in listener.incoming() {
                let Ok(tcp) = stream else { return };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                if read_head(&mut tls).is_none() {
                    continue;
                }
                let _ = write!(
                    tls,
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });

    let checked = check(&[
        &site,
        "--package-url",
        &https_url,
        "--pull-ca",
        ca_pem.to_str().unwrap(),
    ]);
    checked.expect_exit(2);
    assert!(
        checked.stderr.contains(&format!(
            "cannot fetch {https_url}: the transfer failed: it redirects to {plain_url}, which \
             is not https"
        )),
        "{}",
        checked.stderr
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "nothing is asked of the http:// address"
    );
}

/// `--log` naming a FIFO (or a folder) is refused at once in plain words: opened to write, a
/// FIFO would hold the watch until some reader came, and it cannot be read back by the
/// memoria.
#[test]
fn an_observation_log_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_file(dir.path(), LATEST);
    let targets = targets_file(dir.path(), "http://127.0.0.1:9/", "");
    let fifo = dir.path().join("observaciones.csv");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (log, what) in [
        (&fifo, "a FIFO (named pipe)"),
        (&dir.path().to_owned(), "a folder"),
    ] {
        let started = Instant::now();
        let watched = check(&[
            "--watch",
            "--every",
            "1s",
            "--periods",
            "1",
            "--targets",
            targets.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused at once, not after {:?}",
            started.elapsed()
        );
        watched.expect_exit(2);
        assert!(
            watched.stderr.contains(&format!(
                "the observation log {} is {what}, not a regular file",
                log.display()
            )),
            "{}",
            watched.stderr
        );
    }
}

/// A web server on loopback with the files of the site package `package` unpacked: each
/// request is answered with what `answer` makes of its path (without the leading `/`) and of
/// the file there (`None`: there is none); its address.
fn answering_server(
    dir: &Path,
    package: &[u8],
    answer: impl Fn(&str, Option<Vec<u8>>) -> Vec<u8> + Send + Sync + 'static,
) -> String {
    let root = unpacked(dir, package);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (root, answer) = (root.clone(), answer.clone());
            std::thread::spawn(move || {
                let Some(head) = read_head(&mut stream) else {
                    return;
                };
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let path = path.trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| std::fs::read(root.join(path)).ok())
                    .flatten();
                let _ = stream.write_all(&answer(path, file));
            });
        }
    });
    url
}

/// `bytes` gzipped.
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A 200 answer as difusor gives it for corte [`LATEST`], with the header lines `extra`
/// (each ending in CRLF) and `body`.
fn ok_with(extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\nX-PREP-Corte: {LATEST}\r\n\
         Cache-Control: {MAIN_CACHE_CONTROL}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 404 answer with no body.
fn not_found() -> Vec<u8> {
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
}

#[test]
fn a_body_gzipped_once_but_labelled_gzip_twice_is_never_equal_and_one_gzipped_twice_is() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    // Every file gzipped once, its answer naming gzip in two Content-Encoding fields: a
    // browser undoes both, fails on the second, and shows no file.
    let mislabelled = answering_server(dir.path(), &bytes, |_, file| match file {
        Some(file) => ok_with(
            "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n",
            &gzipped(&file),
        ),
        None => not_found(),
    });
    let report = check_json(&[&mislabelled, "--package", package.to_str().unwrap()], 2);
    all_files(&report, "error");
    for path in SITE_FILES {
        let error = file(&report, path)["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("the gzip, gzip body does not decode"),
            "{path}: {report:#}"
        );
    }
    // Gzipped twice and labelled so in one field: undone twice, every file equal.
    let stacked = answering_server(dir.path(), &bytes, |_, file| match file {
        Some(file) => ok_with(
            "Content-Encoding: gzip, gzip\r\n",
            &gzipped(&gzipped(&file)),
        ),
        None => not_found(),
    });
    let report = check_json(&[&stacked, "--package", package.to_str().unwrap()], 0);
    passes(&report, &stacked, "header");
    for path in SITE_FILES {
        assert_eq!(file(&report, path)["encoding"], "gzip, gzip", "{report:#}");
    }
}

#[test]
fn before_the_start_a_redirect_is_followed_to_the_leak_it_leads_to_and_a_loop_is_no_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let package = package.to_str().unwrap();
    // The site sends every address to another server that serves the package's files: a
    // visitor's browser follows and shows the results before the start.
    let elsewhere = site_server(dir.path(), &bytes, LATEST, Duration::ZERO);
    let redirecting = answering_server(dir.path(), &bytes, move |path, _| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {elsewhere}{path}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes()
    });
    let args = [redirecting.as_str(), "--package", package, "--embargo"];
    let report = check_json(&args, 1);
    assert_eq!(report["result"], "fail", "{report:#}");
    all_files(&report, "leak");
    let human = check(&args);
    human.expect_exit(1);
    human.verdict_is("fuga");
    // Every address redirecting to itself: followed to the limit, then no answer; never a
    // pass, never a hang.
    let looping = answering_server(dir.path(), &bytes, |path, _| {
        format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /{path}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes()
    });
    let report = check_json(&[&looping, "--package", package, "--embargo"], 2);
    all_files(&report, "error");
    for path in SITE_FILES {
        let error = file(&report, path)["error"].as_str().unwrap_or_default();
        assert!(error.contains("too many redirects"), "{path}: {report:#}");
    }
}

#[test]
fn before_the_start_the_packages_bytes_under_an_error_status_are_a_leak() {
    let dir = tempfile::tempdir().unwrap();
    let (package, bytes) = package_file(dir.path(), LATEST);
    let package = package.to_str().unwrap();
    // The gate answers 403, but with the file asked for as its error page (a CDN's custom
    // error answer): a browser shows the body of a 403, and the site's script reads it as it
    // reads any answer. The results are out before the start.
    let gated = answering_server(dir.path(), &bytes, |_, file| {
        let body = file.unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    });
    let args = [gated.as_str(), "--package", package, "--embargo"];
    let report = check_json(&args, 1);
    assert_eq!(report["result"], "fail", "{report:#}");
    all_files(&report, "leak");
    for path in SITE_FILES {
        assert_eq!(file(&report, path)["status"], 403, "{path}: {report:#}");
    }
    let human = check(&args);
    human.expect_exit(1);
    human.verdict_is("fuga");

    // An empty file of the package tells nothing: an empty 404 in its place is no leak.
    let with_empty = site_package(LATEST, &[("css/vacio.css", b"")]);
    let path = dir.path().join(format!("{LATEST}_VACIO.zip"));
    std::fs::write(&path, &with_empty).unwrap();
    let closed = answering_server(dir.path(), &with_empty, |_, _| not_found());
    let report = check_json(
        &[&closed, "--package", path.to_str().unwrap(), "--embargo"],
        0,
    );
    assert_eq!(
        results(&report),
        [
            ("css/vacio.css".to_owned(), "withheld".to_owned()),
            ("index.html".to_owned(), "withheld".to_owned()),
            ("json/main.json".to_owned(), "withheld".to_owned()),
        ],
        "{report:#}"
    );
}
