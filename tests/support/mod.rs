//! Helpers shared by the integration tests: a real `difusor` process on ports it chose, a real
//! HTTP client (curl), packages made in the test, and other real web servers (nginx,
//! Varnish) in [`webservers`].

pub mod collectors;
pub mod corpus;
pub mod pebble;
pub mod webservers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Fails the test unless `out` is a successful exit, showing what the command printed.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs `cmd` and requires it to succeed; its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert_success(&out);
    out
}

/// `difusor ingest <pkg>` working on the data folder `data` itself, as when no server runs
/// (its admin address is a reserved port where nothing answers), any corte time taken.
pub fn ingest_without_server(pkg: &Path, data: &Path) -> Output {
    ingest_without_server_under(ProcessLimits::default(), pkg, data)
}

/// [`ingest_without_server`] with the command run under `limits`.
pub fn ingest_without_server_under(limits: ProcessLimits, pkg: &Path, data: &Path) -> Output {
    let nobody = ReservedPort::hold();
    limits
        .command()
        .arg("ingest")
        .arg(pkg)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--corte-window-margin",
            "",
            "--admin-listen",
            &nobody.addr(),
        ])
        .output()
        .unwrap()
}

/// Runs `cmd` and returns its output if it ends within `within`; kills it otherwise. Its
/// output is read while it runs, so a command that writes more than a pipe holds ends.
pub fn output_within(cmd: &mut Command, within: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Output {
                status,
                stdout: stdout.join().unwrap(),
                stderr: stderr.join().unwrap(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether Chromium is installed for a browser test ([`installed`]).
pub fn chromium_available() -> bool {
    installed(&["chromium", "--version"], "chromium")
}

/// Headless Chromium with a profile of its own in `profile`, for a test's page; the caller
/// adds its flags and the address.
pub fn headless_chromium(profile: &Path) -> Command {
    let mut browser = Command::new("chromium");
    browser
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    browser
}

/// Whether the program `command` runs (it is asked for its version, `command` being the
/// program and that flag), for a test that needs it; on CI its absence fails the test (CI
/// installs the Debian package `package`), elsewhere the test is skipped with a note.
pub fn installed(command: &[&str], package: &str) -> bool {
    let (program, args) = command.split_first().expect("a program to run");
    let ran = Command::new(program).args(args).output();
    if ran.as_ref().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is not installed, and CI requires this test: apt-get install -y {package}"
    );
    eprintln!(
        "SKIPPED: {program} is not installed (apt-get install -y {package}); CI runs this test"
    );
    false
}

/// The binary under test.
pub fn difusor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_difusor"));
    c.env_remove("DIFUSOR_CONFIG").env("RUST_LOG", "info");
    c
}

/// Limits a server process runs under, set by util-linux's `prlimit` as a service
/// manager's `LimitNOFILE=` and `LimitAS=` would.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLimits {
    /// Open files, soft and hard.
    pub open_files: Option<u64>,
    /// Bytes of address space (what `ulimit -v` sets); malloc is then held to two arenas so
    /// the address space a run needs is predictable.
    pub address_space: Option<u64>,
    /// Run as a service user would, whom a file's permissions keep out: as root, without
    /// the capabilities that override them (`setpriv`), so a file of mode 000 cannot be
    /// opened.
    pub bound_by_permissions: bool,
}

impl ProcessLimits {
    /// The binary under test, under these limits.
    pub fn command(&self) -> Command {
        if self.bound_by_permissions && rustix::process::geteuid().is_root() {
            assert!(self.open_files.is_none() && self.address_space.is_none());
            let mut c = Command::new("setpriv");
            c.args([
                "--inh-caps=-all",
                "--bounding-set=-dac_override,-dac_read_search",
                "--",
                env!("CARGO_BIN_EXE_difusor"),
            ])
            .env_remove("DIFUSOR_CONFIG")
            .env("RUST_LOG", "info");
            return c;
        }
        if self.open_files.is_none() && self.address_space.is_none() {
            return difusor();
        }
        let mut c = Command::new("prlimit");
        if let Some(n) = self.open_files {
            c.arg(format!("--nofile={n}:{n}"));
        }
        if let Some(bytes) = self.address_space {
            c.arg(format!("--as={bytes}")).env("MALLOC_ARENA_MAX", "2");
        }
        c.arg("--")
            .arg(env!("CARGO_BIN_EXE_difusor"))
            .env_remove("DIFUSOR_CONFIG")
            .env("RUST_LOG", "info");
        c
    }
}

/// Raises this test process's open-file limit to its hard limit, and requires at least `n`,
/// for tests that hold many sockets at once (the servers they start inherit it).
pub fn open_files_at_least(n: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= n,
        "this test holds {n} sockets but the open-file limit is {now}; raise it (ulimit -n)"
    );
}

/// A port on 127.0.0.1 held for a program that must be told its port before it starts (a
/// setting in a file, a flag of a program that cannot report the port it bound): a socket
/// bound to it with `SO_REUSEADDR` and never listening. While it is held no other socket is
/// given the port, connections to it are refused, and a server that also sets `SO_REUSEADDR`
/// (difusor, OpenSSH's sshd) can still listen on it. Everything else binds port 0 and reads
/// the port it got ([`logged_address`]).
pub struct ReservedPort {
    _socket: rustix::fd::OwnedFd,
    pub port: u16,
}

impl ReservedPort {
    /// Holds a port the kernel picks.
    pub fn hold() -> ReservedPort {
        use rustix::net::{AddressFamily, SocketType, bind, getsockname, socket, sockopt};
        let socket = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        sockopt::set_socket_reuseaddr(&socket, true).unwrap();
        bind(&socket, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = std::net::SocketAddr::try_from(getsockname(&socket).unwrap()).unwrap();
        ReservedPort {
            _socket: socket,
            port: addr.port(),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// `log` without its ANSI colour sequences (`ESC [ … letter`), as tracing colours its lines.
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address reported by the first line of `log` that contains every one of `needles`, in
/// its `address=` field or its `url=` field: how a difusor that bound port 0 says which port
/// it got (`serving the public site`, `admin listener ready`, `SFTP intake ready`,
/// `simulate: serving the delivered files`).
pub fn logged_address(log: &str, needles: &[&str]) -> Option<std::net::SocketAddr> {
    without_colours(log)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .find_map(|l| {
            let value = l.split_whitespace().find_map(|w| {
                w.strip_prefix("address=")
                    .or_else(|| w.strip_prefix("url="))
            })?;
            let host_port = value.split_once("://").map_or(value, |(_, rest)| rest);
            host_port.trim_end_matches('/').parse().ok()
        })
}

/// Waits up to 60 s until the log file `log` of the running `child` reports an address on a
/// line with every one of `needles` ([`logged_address`]); panics if the child ends first.
pub fn wait_logged_address(
    child: &mut Child,
    log: &Path,
    needles: &[&str],
) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = logged_address(&text, needles) {
            return address;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited with {status} before reporting {needles:?}: {text}");
        }
        assert!(
            Instant::now() < deadline,
            "{needles:?} not reported: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `difusor serve` on a data folder, killed when dropped. Its listeners bind port
/// 0 at the first start and the ports they got are read from its log; later starts
/// ([`Server::restart`], [`Server::launch`]) bind those same ports again.
pub struct Server {
    pub data: PathBuf,
    /// The public port (0 until the first start has reported it).
    pub port: u16,
    /// The admin port (0 until the first start has reported it).
    pub admin_port: u16,
    /// The HTTPS, SFTP and replication feed ports, when `extra` asks for those listeners.
    tls_port: Option<u16>,
    sftp_port: Option<u16>,
    feed_port: Option<u16>,
    pub extra: Vec<String>,
    /// Limits the process runs under (`prlimit`), when the test sets any.
    pub limits: ProcessLimits,
    /// Environment variables the process gets besides the test's own.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where this start's lines begin in the log, which every start appends to.
    log_from: usize,
}

impl Server {
    /// Starts a server on `data` with fast intake settings and `extra` flags.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_with_open_files(data, extra, None)
    }

    /// Starts a server as [`Server::start`] does, its public HTTP listener on `port` (held by
    /// a [`ReservedPort`]) instead of one the kernel picks: for a client that must be told
    /// the port before the server starts (an ACME server's HTTP-01 validation).
    pub fn start_on(data: &Path, port: u16, extra: &[&str]) -> Server {
        let mut s = Self::unstarted(data, extra);
        s.port = port;
        s.spawn();
        s
    }

    /// Starts a server as [`Server::start`] does, also serving HTTPS on a port the kernel
    /// picks with a self-signed certificate for localhost made beside `data` (`<data>.pki/`).
    pub fn start_https(data: &Path, extra: &[&str]) -> Server {
        let (cert, key) = self_signed_pair(&data.with_extension("pki"));
        let mut args = vec![
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Self::start(data, &args)
    }

    /// The self-signed certificate of a server started by [`Server::start_https`].
    pub fn self_signed_cert(&self) -> PathBuf {
        self.data.with_extension("pki").join("tls/cert.pem")
    }

    /// Starts a server as [`Server::start`] does, under the open-file limit `open_files`.
    pub fn start_with_open_files(data: &Path, extra: &[&str], open_files: Option<u64>) -> Server {
        Self::start_limited(
            data,
            extra,
            ProcessLimits {
                open_files,
                ..ProcessLimits::default()
            },
        )
    }

    /// Starts a server as [`Server::start`] does, under `prlimit --as=<bytes>` (what
    /// `ulimit -v` sets) and with at most two malloc arenas, so its address space is
    /// predictable.
    pub fn start_capped(data: &Path, extra: &[&str], bytes: u64) -> Server {
        Self::start_limited(
            data,
            extra,
            ProcessLimits {
                address_space: Some(bytes),
                ..ProcessLimits::default()
            },
        )
    }

    /// Starts a server as [`Server::start`] does, kept out of files by their permissions as a
    /// service user is, even when the tests run as root.
    pub fn start_bound_by_permissions(data: &Path, extra: &[&str]) -> Server {
        Self::start_limited(
            data,
            extra,
            ProcessLimits {
                bound_by_permissions: true,
                ..ProcessLimits::default()
            },
        )
    }

    /// Launches a server as [`Server::start`] does, with the environment variables `env`
    /// added, without waiting for it ([`Server::wait_ready`] does).
    pub fn launch_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Self::unstarted(data, extra);
        s.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        s.launch();
        s
    }

    /// Starts a server as [`Server::start`] does, under `limits`.
    fn start_limited(data: &Path, extra: &[&str], limits: ProcessLimits) -> Server {
        let mut s = Self::unstarted(data, extra);
        s.limits = limits;
        s.spawn();
        s
    }

    /// A server on `data` with `extra` flags, not started: ports picked by the kernel, no
    /// process limits, the test's environment.
    fn unstarted(data: &Path, extra: &[&str]) -> Server {
        Server {
            data: data.to_owned(),
            port: 0,
            admin_port: 0,
            tls_port: None,
            sftp_port: None,
            feed_port: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            limits: ProcessLimits::default(),
            env: Vec::new(),
            child: None,
            log_from: 0,
        }
    }

    /// The flags this server runs with.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--data-dir".into(),
            self.data.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--admin-listen".into(),
            format!("127.0.0.1:{}", self.admin_port),
        ];
        if !self.extra.iter().any(|e| e == "--settle") {
            a.extend(["--settle".into(), "300ms".into()]);
        }
        // Every profile sets an embargo; tests that are not about it open the gate.
        if !self.extra.iter().any(|e| e == "--publish-start") {
            a.extend(["--publish-start".into(), String::new()]);
        }
        // Test packages carry fixed corte times (2024, 2027) far from today's clock and from
        // the windows some tests set; tests that are not about holding such cortes turn the
        // checks off.
        for flag in ["--corte-future-margin", "--corte-window-margin"] {
            if !self.extra.iter().any(|e| e == flag) {
                a.extend([flag.into(), String::new()]);
            }
        }
        // `--tls-listen 127.0.0.1:0`, `--sftp-listen 127.0.0.1:0` and `--feed-listen
        // 127.0.0.1:0` keep the port they got.
        let mut previous: Option<&str> = None;
        for e in &self.extra {
            let learned = match previous {
                Some("--tls-listen") => self.tls_port,
                Some("--sftp-listen") => self.sftp_port,
                Some("--feed-listen") => self.feed_port,
                _ => None,
            };
            a.push(match learned {
                Some(port) => format!("127.0.0.1:{port}"),
                None => e.clone(),
            });
            previous = Some(e);
        }
        a
    }

    /// The HTTPS port, for a server started with `--tls-listen 127.0.0.1:0`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with --tls-listen")
    }

    /// The SFTP port, for a server started with `--sftp-listen 127.0.0.1:0`.
    pub fn sftp_port(&self) -> u16 {
        self.sftp_port.expect("started with --sftp-listen")
    }

    /// The replication feed's port, for a server started with `--feed-listen 127.0.0.1:0`.
    pub fn feed_port(&self) -> u16 {
        self.feed_port.expect("started with --feed-listen")
    }

    /// Reads the ports this start's listeners report in the log; whether every listener
    /// the flags ask for has reported.
    fn read_ports(&mut self) -> bool {
        let log = self.log();
        let log = log.get(self.log_from..).unwrap_or_default();
        let wants = |flag: &str| self.extra.iter().any(|e| e == flag);
        let (wants_tls, wants_sftp) = (wants("--tls-listen"), wants("--sftp-listen"));
        let wants_feed = wants("--feed-listen");
        let port = |needles: &[&str]| logged_address(log, needles).map(|a| a.port());
        let public = port(&["serving the public site", "https=false"]);
        let admin = port(&["admin listener ready"]);
        let tls = port(&["serving the public site", "https=true"]);
        let sftp = port(&["SFTP intake ready"]);
        let feed = port(&["replication feed ready"]);
        if let (Some(public), Some(admin)) = (public, admin) {
            (self.port, self.admin_port) = (public, admin);
        }
        if tls.is_some() {
            self.tls_port = tls;
        }
        if sftp.is_some() {
            self.sftp_port = sftp;
        }
        if feed.is_some() {
            self.feed_port = feed;
        }
        public.is_some()
            && admin.is_some()
            && (!wants_tls || tls.is_some())
            && (!wants_sftp || sftp.is_some())
            && (!wants_feed || feed.is_some())
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    /// Starts the process without waiting for it to be ready (it may die at once).
    pub fn launch(&mut self) {
        self.log_from = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let child = self
            .limits
            .command()
            .arg("serve")
            .args(self.args())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits up to `within` for the process to end by itself; its exit status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The most memory the process has held (VmHWM, peak resident set), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid().unwrap()).expect("the server's VmHWM")
    }

    /// Waits until every listener has reported its address and the admin listener answers
    /// (401 too: it wants its token).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("difusor exited early with {status}; log: {}", self.log());
            }
            if self.read_ports() && matches!(curl(&self.admin("/status"), &[]).status, 200 | 401) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("difusor did not start; log: {}", self.log());
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    /// URL of a public path.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// URL of an admin path.
    pub fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// The intake folder.
    pub fn entrada(&self) -> PathBuf {
        self.data.join("entrada")
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let r = curl(&self.admin("/status"), &[]);
        assert_eq!(r.status, 200, "status failed: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// The access log once it holds at least `lines` lines (the writer takes what is queued
    /// every 50 ms), or as it is after 20 s.
    pub fn access_log_with(&self, lines: usize) -> String {
        let log = self.data.join("bitacoras").join("access.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() >= lines || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The live corte id, if any.
    pub fn live_corte(&self) -> Option<String> {
        self.status()["live"]["corte"].as_str().map(str::to_owned)
    }

    /// Waits until `cond` holds on `/status`, or panics after 30 s.
    pub fn wait_status(
        &self,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status();
            if cond(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status {s:#}; log: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the live corte is `id`.
    pub fn wait_corte(&self, id: &str) {
        self.wait_status(&format!("corte {id}"), |s| s["live"]["corte"] == id);
    }

    /// Waits until `n` packages were published in all: a corte whose data and site come in
    /// two packages is whole only once both are.
    pub fn wait_published(&self, n: i64) -> serde_json::Value {
        self.wait_status(&format!("{n} packages published"), |s| {
            s["counts"]["published"].as_i64().unwrap_or(0) >= n
        })
    }

    /// Waits until `n` packages were received in all.
    pub fn wait_received(&self, n: i64) -> serde_json::Value {
        self.wait_status(&format!("{n} packages received"), |s| {
            s["counts"]["received"].as_i64().unwrap_or(0) >= n
        })
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    /// Sends the signal `name` (`TERM`, `INT`, `HUP`) without waiting for anything.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("the server runs");
        run_ok(
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(pid.to_string()),
        );
    }

    /// Starts again on the same folder and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Runs another difusor subcommand against this server's data folder and admin listener.
    pub fn run(&self, sub: &[&str]) -> Output {
        difusor()
            .args(sub)
            .args([
                "--data-dir",
                &self.data.display().to_string(),
                "--admin-listen",
                &format!("127.0.0.1:{}", self.admin_port),
            ])
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response as curl saw it.
pub struct Response {
    /// Whether curl exited with success: a reset stream or a cut transfer is a failure
    /// even when a status line arrived.
    pub complete: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Fetches `url` with curl and `extra` arguments.
pub fn curl(url: &str, extra: &[&str]) -> Response {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let body = dir.path().join("b");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl must be installed");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        complete: out.status.success(),
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// A server with corte 20240602_2000 live: [`site_package`] with `files` added.
pub fn serving(extra: &[&str], files: &[(&str, &[u8])]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), extra);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", files),
    );
    server.wait_corte("20240602_2000");
    (dir, server)
}

/// A server on `<dir>/d` whose publication starts in 2099: every result is under embargo.
pub fn embargoed_server(dir: &Path) -> Server {
    Server::start(
        &dir.join("d"),
        &[
            "--publish-start",
            "2099-06-02T20:00:00-06:00",
            "--publish-end",
            "",
        ],
    )
}

/// Reads until the server closes the connection; what it sent, or `None` if it was still
/// open after `within`.
pub fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => Some(got),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(got),
        Err(_) => None,
    }
}

/// A TCP connection to `127.0.0.1:port` from the loopback address `source` (127.0.0.2,
/// 127.0.0.3 …), as a visitor behind another address would make it.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let source: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    let socket = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&socket, &source).unwrap();
    connect(&socket, &std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    TcpStream::from(socket)
}

/// Sends `GET path` on a kept-alive HTTP/1.1 connection, without reading the answer.
pub fn send_get(stream: &mut TcpStream, path: &str) -> std::io::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: prep.example\r\n\r\n");
    stream.write_all(request.as_bytes())
}

/// Reads one HTTP/1.1 response (its body framed by `Content-Length`): its status and body,
/// or `None` if the connection was closed (or silent for 20 s) before all of it arrived.
pub fn read_response(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + length {
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        got.extend_from_slice(&chunk[..n]);
    }
    Some((status, got.split_off(head_end)))
}

/// Waits up to 20 s until the server has begun its answer on `stream` (a byte of it is
/// there to read), without reading it: the request is in flight.
pub fn wait_answer_begins(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let n = stream.peek(&mut [0u8; 1]).expect("the answer begins");
    assert_eq!(n, 1, "the connection closed before any answer");
}

/// One HTTP/1.1 exchange on a kept-alive connection: [`send_get`], then [`read_response`].
pub fn get_on(stream: &mut TcpStream, path: &str) -> Option<(u16, Vec<u8>)> {
    send_get(stream, path).ok()?;
    read_response(stream)
}

/// A zip archive with these members, deflated and dated 1980-01-01 (so the same members always
/// make the same bytes, whenever they are built), in memory; a name ending in `/`
/// is a folder entry.
pub fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    corpus::zip_of(members)
}

/// A zip of `count` members named by `name(i)`, each holding `bytes` compressed once with
/// `method` and copied raw: a package of thousands of large members is made in a moment.
pub fn zip_repeated(
    count: usize,
    name: impl Fn(usize) -> String,
    bytes: &[u8],
    method: zip::CompressionMethod,
) -> Vec<u8> {
    let one = corpus::zip_with(
        &[("x", bytes)],
        zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(zip::DateTime::default())
            .large_file(bytes.len() >= u32::MAX as usize),
    );
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(one)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..count {
        let member = source.by_index(0).unwrap();
        out.raw_copy_file_rename(member, name(i)).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Writes `bytes` into `dir` as `name` the way careful uploaders do: a hidden temporary
/// name, then a rename.
pub fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A small site package for corte `YYYYMMDD_HHMM`: an index page and `json/main.json`
/// naming the corte, plus `extra` files.
pub fn site_package(corte: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let index = format!("<html><body>Corte {corte}</body></html>");
    let main = format!("{{\"corte\":\"{corte}\"}}");
    let mut members: Vec<(&str, &[u8])> = vec![
        ("index.html", index.as_bytes()),
        ("json/main.json", main.as_bytes()),
    ];
    members.extend_from_slice(extra);
    zip_bytes(&members)
}

/// The seed of a test that draws random numbers: `DIFUSOR_TEST_SEED` when set (to replay a
/// failed run), a new one otherwise; printed either way, so a failure shows how to replay it.
pub fn test_seed() -> u64 {
    let seed = match std::env::var("DIFUSOR_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("DIFUSOR_TEST_SEED is a number (u64)"),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("random seed {seed}: DIFUSOR_TEST_SEED={seed} replays this test");
    seed
}

/// The load balancer's health check URL (`--health-listen`), from the server's log.
pub fn health_url(server: &Server) -> String {
    let addr = logged_address(&server.log(), &["health check listener ready"])
        .expect("the health listener reports its address");
    format!("http://{addr}/health")
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Breaks the archive of data folder `data` for the package `bytes`, as a damaged disk
/// would: a folder stands where its verified copy is kept (`archivo/<aa>/<sha256>`), so the
/// copy the server finds there cannot be read. Works as root, where permissions stop nothing.
/// Removing the returned folder repairs it.
pub fn break_archive_for(data: &Path, bytes: &[u8]) -> PathBuf {
    let sha = sha256_hex(bytes);
    let broken = data.join("archivo").join(&sha[..2]).join(&sha);
    std::fs::create_dir_all(&broken).unwrap();
    broken
}

/// A number no other call in this process returns: for names that must not collide.
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The shared real fixtures folder.
pub fn real_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real")
        .join(name)
}

/// A cut of real rows with its summary rewritten by the institute's rules
/// (`../shared/fixtures/derived/PROVENANCE.md`).
pub fn derived_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/derived")
        .join(name)
}

/// The publications of `server`, oldest first, as `difusor history --json` lists them.
pub fn publications(server: &Server) -> Vec<serde_json::Value> {
    let out = server.run(&["history", "--json", "--events", "0"]);
    assert_success(&out);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    history["cortes"].as_array().unwrap().clone()
}

/// The journal's events of `kind`, as `difusor history --json` prints them.
pub fn events(server: &Server, kind: &str) -> Vec<serde_json::Value> {
    let out = server.run(&["history", "--json", "--events", "100000"]);
    assert_success(&out);
    of_kind(&serde_json::from_slice(&out.stdout).unwrap(), kind)
}

/// The journal's `warning` events whose `check` is `check`.
pub fn warnings_of(server: &Server, check: &str) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|e| e["detail"]["check"] == check)
        .collect()
}

/// The soft open-file limit of the running process `pid`, and a way to set it (any process
/// may move it below its hard limit): what a server out of descriptors is tested with.
pub fn open_files_limit(pid: u32) -> (usize, impl Fn(usize)) {
    let pid = pid.to_string();
    let soft = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let set = move |n: usize| {
        run_ok(Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={n}:")]));
    };
    (soft, set)
}

/// How many descriptors the process `pid` has open, once that count has stayed the same
/// for a second: a server just started still closes some of its start's (the clock check's
/// sockets and pipes), and a limit set from a count that included them leaves room for
/// accepts a test means to see fail.
pub fn open_files(pid: u32) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut open = count();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) {
        assert!(
            Instant::now() < deadline,
            "the server's open descriptors never stayed at one count for a second"
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = count();
        if now != open {
            (open, since) = (now, Instant::now());
        }
    }
    open
}

/// Whether a `warning` in the journal says `text`.
pub fn warned(server: &Server, text: &str) -> bool {
    events(server, "warning").iter().any(|w| {
        w["detail"]["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains(text))
    })
}

/// The events of `kind` in `history`, the output of `difusor history --json`.
pub fn of_kind(history: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Waits for `n` `verified` events, and asserts that the package `bytes` is among them,
/// verified against its `.sha256` sidecar.
pub fn assert_verified_with_sidecar(server: &Server, n: usize, bytes: &[u8]) {
    assert_verified_with(server, n, bytes, "sidecar");
}

/// Waits for `n` `verified` events, and asserts that the package `bytes` is among them,
/// verified against its `.minisig` signature.
pub fn assert_verified_with_signature(server: &Server, n: usize, bytes: &[u8]) {
    assert_verified_with(server, n, bytes, "signature");
}

/// Waits for `n` `verified` events, and asserts that the package `bytes` is among them,
/// verified against its evidence of `kind` (`sidecar`, `signature`).
fn assert_verified_with(server: &Server, n: usize, bytes: &[u8], kind: &str) {
    let verified = wait_events(server, "verified", n);
    let sha = sha256_hex(bytes);
    let found = verified
        .iter()
        .find(|e| e["package"] == sha)
        .unwrap_or_else(|| panic!("{sha} not verified: {verified:#?}"));
    assert!(
        found["detail"]
            .to_string()
            .contains(&format!("\"{kind}\":{{\"verified\"")),
        "{found}"
    );
}

/// A minisign key pair made by `difusor keygen` in `dir`: the public key file (for
/// `--minisign-keys`) and the secret key, to sign with [`minisign_signature`].
pub fn minisign_keys(dir: &Path) -> (PathBuf, minisign::SecretKey) {
    run_ok(difusor().args(["keygen", "--dir"]).arg(dir));
    let secret = std::fs::read(dir.join("difusor.key")).unwrap();
    let secret = minisign::SecretKey::from_bytes(&secret).unwrap();
    (dir.join("difusor.pub"), secret)
}

/// The `.minisig` text of `bytes` signed with `key`, as an institute signs its package `name`.
pub fn minisign_signature(key: &minisign::SecretKey, name: &str, bytes: &[u8]) -> String {
    let trusted = format!("file:{name}");
    minisign::sign(None, key, bytes, Some(&trusted), None)
        .unwrap()
        .into_string()
}

/// Waits until the journal holds at least `n` events of `kind` and returns them, or panics
/// after 30 s showing the journal's latest events.
pub fn wait_events(server: &Server, kind: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = events(server, kind);
        if found.len() >= n {
            return found;
        }
        if Instant::now() > deadline {
            let out = server.run(&["history", "--json", "--events", "20"]);
            panic!(
                "{n} `{kind}` events expected, {} found; journal: {}",
                found.len(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An OpenSSH Ed25519 key pair without passphrase at `path` and `path.pub`.
pub fn ssh_keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (apt-get install -y openssh-client)");
    assert!(out.status.success(), "{out:?}");
}

/// A certificate authority, a server certificate for 127.0.0.1 and a client certificate,
/// both issued by it: for services that check certificates against an authority of their
/// own (an institute's, a cluster's).
pub struct Pki {
    /// The authority's certificate, PEM.
    pub ca_pem: String,
    /// The authority's certificate, DER.
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The server's chain and key, DER.
    pub server: (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    /// The server's certificate and key, PEM.
    pub server_pem: (String, String),
    /// The client's certificate and key, PEM.
    pub client_pem: (String, String),
}

/// A new [`Pki`].
pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Instituto de prueba CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["difusor".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server: (
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        ),
        server_pem: (server_cert.pem(), server_key.serialize_pem()),
        client_pem: (client_cert.pem(), client_key.serialize_pem()),
    }
}

/// `difusor init --self-signed --dir DIR`: a certificate for localhost and 127.0.0.1, and its
/// key, returned as (`DIR/tls/cert.pem`, `DIR/tls/key.pem`).
pub fn self_signed_pair(dir: &Path) -> (PathBuf, PathBuf) {
    run_ok(difusor().args(["init", "--self-signed", "--dir"]).arg(dir));
    (dir.join("tls/cert.pem"), dir.join("tls/key.pem"))
}

/// The `SHA256:…` fingerprint `ssh-keygen -lf` gives for the key at `path`.
pub fn ssh_fingerprint(path: &Path) -> String {
    let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Whether wrk is installed ([`installed`]). wrk has no option that exits with success:
/// `-v` prints its version line, then its usage, and exits 1.
pub fn wrk_installed() -> bool {
    let version = Command::new("wrk").arg("-v").output();
    version.is_ok_and(|o| o.stdout.starts_with(b"wrk ")) || installed(&["wrk", "-v"], "wrk")
}

/// A wrk run (HTTP/1.1 keep-alive, two threads) going on in the background; stopped if
/// dropped before [`Wrk::finish`].
pub struct Wrk {
    child: Option<Child>,
}

/// What wrk counted when it finished.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkReport {
    /// Responses received.
    pub requests: u64,
    /// Responses with a status of 400 or more ("Non-2xx or 3xx responses").
    pub error_statuses: u64,
    /// Connections that failed to open, reads and writes that failed, and requests with no
    /// answer within 2 s ("Socket errors").
    pub socket_errors: u64,
}

impl WrkReport {
    /// Requests that did not get a good answer.
    pub fn failed(&self) -> u64 {
        self.error_statuses + self.socket_errors
    }

    /// Reads wrk's printed summary.
    fn parse(out: &str) -> WrkReport {
        let mut report = WrkReport::default();
        let numbers = |text: &str| -> Vec<u64> {
            text.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        for line in out.lines().map(str::trim) {
            if line.contains(" requests in ") {
                report.requests = numbers(line).first().copied().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                report.error_statuses = numbers(rest).iter().sum();
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                report.socket_errors = numbers(rest).iter().sum();
            }
        }
        report
    }
}

impl Wrk {
    /// `wrk -t2 -c<connections> -d<seconds>s <url>`, started.
    pub fn start(url: &str, connections: u32, seconds: u32) -> Wrk {
        let child = Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrk (apt-get install -y wrk)");
        Wrk { child: Some(child) }
    }

    /// Waits for the end of the run; what wrk counted.
    pub fn finish(mut self) -> WrkReport {
        let child = self.child.take().expect("running");
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = WrkReport::parse(&text);
        eprintln!("wrk: {report:?}\n{text}");
        report
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP request's head as a test server reads it: up to its blank line (or 64 KiB);
/// `None` when the client closed first.
pub fn read_head(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65_536 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    Some(got)
}

/// An HTTP server on 127.0.0.1 that records the head (request line and headers) of every
/// request it gets and answers each with an empty body and the status it is set to, or
/// never (status 0: it holds the connection until the client gives up). Stands for a cache
/// in front of difusor, or any service difusor calls.
pub struct Recorder {
    pub addr: std::net::SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl Recorder {
    /// Listens on a port the kernel picks, answering `status`.
    pub fn start(status: u16) -> Recorder {
        use std::sync::atomic::{AtomicU16, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let recorder = Recorder {
            addr: listener.local_addr().unwrap(),
            heads: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(status)),
        };
        let (heads, status) = (recorder.heads.clone(), recorder.status.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (heads, status) = (heads.clone(), status.clone());
                std::thread::spawn(move || {
                    let Some(mut got) = read_head(&mut stream) else {
                        return;
                    };
                    heads
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&got).into_owned());
                    match status.load(Ordering::SeqCst) {
                        0 => {
                            let _ = stream.read_to_end(&mut got);
                        }
                        code => {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {code} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                        }
                    }
                });
            }
        });
        recorder
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Answers `status` from now on (0: never).
    pub fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// The heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits up to 30 s until at least `n` requests have arrived; their heads.
    pub fn wait_heads(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let heads = self.heads();
            if heads.len() >= n {
                return heads;
            }
            assert!(
                Instant::now() < deadline,
                "{n} requests expected at {}, {} arrived: {heads:?}",
                self.addr,
                heads.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Asserts that `systemd-analyze verify` accepts the unit file at `path` without a word.
pub fn assert_unit_verifies(path: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {}: {said}",
        path.display()
    );
}

/// Debian's libfaketime (`faketime`), which makes a program's wall clock read what a file
/// says (`FAKETIME_TIMESTAMP_FILE`, read again at every call), its monotonic clock left
/// alone: this machine's clock set, for one process, without touching anyone else's.
pub fn libfaketime() -> Option<std::path::PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "libfaketime is not installed, and CI requires this test: apt-get install -y faketime"
        );
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install -y faketime)");
    }
    found
}

/// The bytes of a gzip file (every member, as `gzip -d` reads them).
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out).unwrap();
    out
}

/// The memory figure `field` (`VmRSS`, `VmHWM`, `VmSize`…) of process `pid`, in KiB, from
/// `/proc/<pid>/status`; `None` once it is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The most memory process `pid` has held (VmHWM, peak resident set), in KiB; `None` once it
/// is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Runs `command` to its end, its output piped, sampling its peak resident memory every
/// 5 ms: its output, and that peak in KiB.
pub fn output_and_peak(command: &mut Command) -> (Output, u64) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak)
}
