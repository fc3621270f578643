//! Real web servers on loopback for the tests of what a site serves: nginx serving a folder
//! as a disseminator's own web server would, Varnish as a cache in front of a backend, and
//! HAProxy balancing several difusor nodes.
//!
//! Each runs in the foreground as a child of the test, with every file it writes (pid, logs,
//! temporary folders, Varnish's working folder) inside its own temporary folder; nginx runs
//! with `master_process off`, so as root it never changes user. Each listens on a
//! [`ReservedPort`] it keeps while it lives, so it can stop answering and come back on the
//! same port, and it is stopped (SIGTERM, then SIGKILL) when dropped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ReservedPort, curl, installed};

const NGINX: &str = "/usr/sbin/nginx";
const VARNISHD: &str = "/usr/sbin/varnishd";
const HAPROXY: &str = "/usr/sbin/haproxy";

/// Whether nginx is installed ([`installed`]: skipped with a note outside CI).
pub fn nginx_installed() -> bool {
    installed(&[NGINX, "-v"], "nginx")
}

/// Whether Varnish is installed ([`installed`]: skipped with a note outside CI).
pub fn varnish_installed() -> bool {
    installed(&[VARNISHD, "-V"], "varnish")
}

/// Whether HAProxy is installed ([`installed`]: skipped with a note outside CI).
pub fn haproxy_installed() -> bool {
    installed(&[HAPROXY, "-v"], "haproxy")
}

/// Unpacks the zip `bytes` (a site package) into the folder `dir`, creating it and
/// overwriting files already there, as a later package is laid over an earlier one.
pub fn unzip_into(bytes: &[u8], dir: &Path) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    archive.extract(dir).expect("unpack the zip");
}

/// A program listening on a reserved port, started from a fixed command line, its stderr
/// and stdout in a log file beside its other files.
struct Daemon {
    dir: tempfile::TempDir,
    port: ReservedPort,
    command: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    /// `command` (program first) with `{port}` and `{dir}` replaced, started and answering.
    fn start(dir: tempfile::TempDir, port: ReservedPort, command: &[&str]) -> Daemon {
        let place = |arg: &&str| {
            arg.replace("{port}", &port.port.to_string())
                .replace("{dir}", &dir.path().display().to_string())
        };
        let command = command.iter().map(place).collect();
        let mut daemon = Daemon {
            dir,
            port,
            command,
            child: None,
        };
        daemon.resume();
        daemon
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("output.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port.port)
    }

    /// Starts the process again and waits up to 60 s until it answers HTTP (any status).
    fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let (program, args) = self.command.split_first().unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
        let program = program.clone();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("{program} exited with {status}: {}", self.log());
            }
            if curl(&self.url(), &[]).status != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{program} does not answer on {}: {}",
                self.url(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (SIGTERM, SIGKILL after 10 s) and waits for it: connections to its
    /// port are refused until [`Daemon::resume`].
    fn halt(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A private nginx serving a folder on `127.0.0.1:<port>`, gzipping HTML, CSS, JavaScript
/// and JSON for clients that accept it, as the usual web server of a disseminator does.
pub struct Nginx {
    daemon: Daemon,
}

impl Nginx {
    /// Serves the folder `root` (read at each request: files written there later are
    /// served); `json/main.json` is given `Cache-Control: no-cache, no-store,
    /// must-revalidate` when `main_json_header` is true, and no `Cache-Control` otherwise.
    pub fn serve(root: &Path, main_json_header: bool) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = ReservedPort::hold();
        let root = std::fs::canonicalize(root).expect("the folder to serve exists");
        let main_json = if main_json_header {
            r#"add_header Cache-Control "no-cache, no-store, must-revalidate" always;"#
        } else {
            ""
        };
        let d = dir.path().display();
        let config = format!(
            r#"pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{
        text/html html;
        text/css css;
        application/javascript js;
        application/json json;
        text/csv csv;
        image/svg+xml svg;
        application/zip zip;
    }}
    default_type application/octet-stream;
    gzip on;
    gzip_min_length 0;
    gzip_types text/css application/javascript application/json;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /json/main.json {{
            {main_json}
        }}
    }}
}}
"#,
            port = port.port,
            root = root.display(),
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let daemon = Daemon::start(
            dir,
            port,
            &[
                NGINX,
                "-p",
                "{dir}",
                "-c",
                "{dir}/nginx.conf",
                "-e",
                "stderr",
                "-g",
                "daemon off; master_process off;",
            ],
        );
        Nginx { daemon }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        self.daemon.url()
    }

    /// Stops it: connections to its port are refused until [`Nginx::start`].
    pub fn stop(&mut self) {
        self.daemon.halt();
    }

    /// Starts it again on the same port, serving the same folder, and waits until it answers.
    pub fn start(&mut self) {
        self.daemon.resume();
    }
}

/// A private Varnish cache on `127.0.0.1:<port>` in front of a backend on loopback, with its
/// built-in rules (it caches what the backend lets it cache).
pub struct Varnish {
    daemon: Daemon,
}

impl Varnish {
    /// Varnish in front of `127.0.0.1:<backend_port>`, answering (a 503 of its own while the
    /// backend is down).
    pub fn front(backend_port: u16) -> Varnish {
        let backend = format!("127.0.0.1:{backend_port}");
        // `-j none`: no privilege separation, which needs no system user and works as root
        // in a container; `-n`: its working folder (shared memory log, compiled rules).
        let daemon = Daemon::start(
            tempfile::tempdir().unwrap(),
            ReservedPort::hold(),
            &[
                VARNISHD,
                "-F",
                "-j",
                "none",
                "-a",
                "127.0.0.1:{port}",
                "-b",
                &backend,
                "-n",
                "{dir}/varnish",
                "-s",
                "malloc,32m",
            ],
        );
        Varnish { daemon }
    }

    /// Varnish running the rules `vcl` (VCL 4.1 text, its backends in it), answering.
    pub fn with_vcl(vcl: &str) -> Varnish {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.vcl"), vcl).unwrap();
        let daemon = Daemon::start(
            dir,
            ReservedPort::hold(),
            &[
                VARNISHD,
                "-F",
                "-j",
                "none",
                "-a",
                "127.0.0.1:{port}",
                "-f",
                "{dir}/rules.vcl",
                "-n",
                "{dir}/varnish",
                "-s",
                "malloc,32m",
            ],
        );
        Varnish { daemon }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        self.daemon.url()
    }

    /// What `varnishadm <command…>` prints for this Varnish (its ban list: `ban.list`).
    pub fn admin(&self, command: &[&str]) -> String {
        let out = Command::new("varnishadm")
            .arg("-n")
            .arg(self.daemon.dir.path().join("varnish"))
            .args(command)
            .output()
            .expect("varnishadm (apt-get install -y varnish)");
        assert!(
            out.status.success(),
            "varnishadm {command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A private HAProxy on `127.0.0.1:<port>` running a configuration the test writes, with
/// its runtime API on a socket in its folder.
pub struct Haproxy {
    daemon: Daemon,
    /// Further ports its configuration binds, held while it lives.
    _ports: Vec<ReservedPort>,
}

/// One server of a backend, as HAProxy's `show stat` reports it.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// Its name in the configuration (`node1`).
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, or a transition such as `UP 1/2`.
    pub status: String,
    /// Sessions (requests, in HTTP mode) sent to it since HAProxy started.
    pub sessions: u64,
}

impl Haproxy {
    /// Runs the configuration `config(port, dir)`, where `port` is the port its first
    /// frontend must bind on 127.0.0.1 (`port`, held until now) and `dir` its folder, in which
    /// the configuration puts its runtime API socket at `<dir>/admin.sock`; `ports` are more
    /// ports the configuration binds. Waits until the frontend answers (any status).
    pub fn start(
        port: ReservedPort,
        ports: Vec<ReservedPort>,
        config: impl FnOnce(u16, &Path) -> String,
    ) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let text = config(port.port, dir.path());
        std::fs::write(dir.path().join("haproxy.cfg"), text).unwrap();
        let daemon = Daemon::start(dir, port, &[HAPROXY, "-db", "-f", "{dir}/haproxy.cfg"]);
        Haproxy {
            daemon,
            _ports: ports,
        }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        self.daemon.url()
    }

    /// What HAProxy printed (its log goes to standard output).
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Sends `command` to the runtime API and returns its answer.
    pub fn command(&self, command: &str) -> String {
        let mut socket =
            std::os::unix::net::UnixStream::connect(self.daemon.dir.path().join("admin.sock"))
                .expect("HAProxy's runtime API socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).unwrap();
        answer
    }

    /// The servers of `backend`, from `show stat`.
    pub fn servers(&self, backend: &str) -> Vec<ServerState> {
        let csv = self.command("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .expect("show stat begins with its header")
            .split(',')
            .collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|c| *c == name)
                .unwrap_or_else(|| panic!("show stat has no column {name}: {csv}"))
        };
        let (px, sv, status, stot) = (
            column("pxname"),
            column("svname"),
            column("status"),
            column("stot"),
        );
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > stot && f[px] == backend)
            .filter(|f| f[sv] != "FRONTEND" && f[sv] != "BACKEND")
            .map(|f| ServerState {
                name: f[sv].to_owned(),
                status: f[status].to_owned(),
                sessions: f[stot].parse().unwrap_or(0),
            })
            .collect()
    }

    /// The server of `backend` named `name`.
    pub fn server(&self, backend: &str, name: &str) -> ServerState {
        self.servers(backend)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no server {name} in backend {backend}"))
    }

    /// Waits up to 30 s until every server of `backend` is `UP`.
    pub fn wait_all_up(&self, backend: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let servers = self.servers(backend);
            if !servers.is_empty() && servers.iter().all(|s| s.status == "UP") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the servers of {backend} are not all up: {servers:?}; {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
