//! Three difusor nodes behind a real HAProxy and a real Varnish, each configured by the
//! recipe in `examples/cluster/` that docs/cluster.md explains, with only addresses, ports
//! and file paths rewritten for loopback: the recipes an operator copies are the ones
//! tested. node1 receives from its watched folder and feeds node2 and node3 (`replica_of`).
//!
//! - A replica killed (kill -9) under load through HAProxy costs wrk no request, and HAProxy
//!   sends it no visitor after its restart before it serves the corte the primary has live.
//! - A node stopped (SIGTERM) under load leaves HAProxy's pool while it still answers.
//! - Through Varnish, `json/main.json` always reaches a node, the other files are
//!   revalidated with 304 on every request, once every node serves a new corte no visitor
//!   gets the previous one, the notice is never kept, and while no node answers the stored
//!   files (never `json/main.json`) are served as `stale-if-error` allows.
//! - The notice switched on and off at the primary is in force on every node within a
//!   second.
//! - The recipes are valid for the programs that read them (HAProxy, Varnish, nftables,
//!   systemd, difusor itself).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::webservers::{Haproxy, Varnish, haproxy_installed, varnish_installed};
use crate::support::{
    ReservedPort, Server, Wrk, assert_unit_verifies, curl, drop_file, installed, run_ok,
    self_signed_pair, site_package, ssh_keygen, wait_events, wrk_installed,
};

/// The first corte every test starts from, and the next ones.
const FIRST: &str = "20240602_2000";
const SECOND: &str = "20240602_2015";

/// The text of the recipe `examples/cluster/<name>` with each `(from, to)` replaced; every
/// `from` must be in it, so a recipe that changes under the tests fails them loudly.
fn recipe(name: &str, rewrites: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/cluster")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (from, to) in rewrites {
        assert!(
            text.contains(from),
            "{name} no longer holds {from:?}; update the rewrites of this test"
        );
        text = text.replace(from, to);
    }
    text
}

/// One difusor node: its server, and the ports of its health and feed listeners.
struct Node {
    /// `node1` (the primary), `node2`, `node3`: its `server` line in haproxy.cfg.
    name: &'static str,
    server: Server,
    health: ReservedPort,
    feed: ReservedPort,
}

impl Node {
    /// `GET /health` on its health listener: the status, and the JSON answer.
    fn health(&self) -> (u16, serde_json::Value) {
        let r = curl(&format!("http://{}/health", self.health.addr()), &[]);
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or_default(),
        )
    }

    /// The lines of its access log (`extended` format, as the recipe sets it).
    fn access_log(&self) -> Vec<LogLine> {
        let text = std::fs::read_to_string(self.server.data.join("bitacoras/access.log"))
            .unwrap_or_default();
        text.lines().filter_map(LogLine::parse).collect()
    }
}

/// What a test reads of one access-log line (`extended`: Combined Log Format, then the
/// request time, the corte and the content encoding).
#[derive(Debug, Clone)]
struct LogLine {
    path: String,
    status: u16,
    corte: String,
}

impl LogLine {
    fn parse(line: &str) -> Option<LogLine> {
        let parts: Vec<&str> = line.split('"').collect();
        let path = parts.get(1)?.split_whitespace().nth(1)?.to_owned();
        let status = parts.get(2)?.split_whitespace().next()?.parse().ok()?;
        let corte = parts.last()?.split_whitespace().nth(1)?.to_owned();
        Some(LogLine {
            path,
            status,
            corte,
        })
    }
}

/// Three nodes made from `difusor-primary.toml` and `difusor-replica.toml`.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Cluster {
    /// node1 with corte [`FIRST`] live, node2 and node3 following its feed and serving it
    /// too; the nodes send their purges to `purge` (a Varnish), or nowhere.
    fn start(purge: Option<&str>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        let (cert, key) = self_signed_pair(&dir.path().join("pki"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::copy(&cert, etc.join("node.pem")).unwrap();
        std::fs::copy(&key, etc.join("node.key")).unwrap();
        std::fs::copy(&cert, etc.join("cluster-ca.pem")).unwrap();
        std::fs::write(etc.join("feed.token"), "vGk1q8Tz2m0Yc4Lr7Wd9Hs3Nf6Jb5Xp\n").unwrap();
        ssh_keygen(&dir.path().join("institute"));
        std::fs::copy(dir.path().join("institute.pub"), etc.join("institute.keys")).unwrap();
        let nowhere = ReservedPort::hold();
        let purge = purge.map_or_else(|| format!("http://{}/", nowhere.addr()), str::to_owned);

        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
        };
        let primary = cluster.node("node1", "difusor-primary.toml", "10.0.0.1", &purge, None);
        drop_file(
            &primary.server.entrada(),
            &format!("{FIRST}_PREP.zip"),
            &site_package(FIRST, &[("css/estilo.css", b"body { color: #333; }")]),
        );
        primary.server.wait_corte(FIRST);
        let feed = primary.feed.addr();
        cluster.nodes.push(primary);
        // node3 runs the replica's file as node2 does, with its own addresses.
        for name in ["node2", "node3"] {
            let replica = cluster.node(
                name,
                "difusor-replica.toml",
                "10.0.0.2",
                &purge,
                Some(&feed),
            );
            cluster.nodes.push(replica);
        }
        for node in &cluster.nodes {
            node.server.wait_corte(FIRST);
        }
        cluster
    }

    /// Starts node `name` from `recipe_name`, in which its address is `address`; a replica
    /// follows the primary's feed at `primary_feed`.
    fn node(
        &self,
        name: &'static str,
        recipe_name: &str,
        address: &str,
        purge: &str,
        primary_feed: Option<&str>,
    ) -> Node {
        let health = ReservedPort::hold();
        let feed = ReservedPort::hold();
        let etc = format!("{}/", self.dir.path().join("etc").display());
        let (public, health_at, feed_at) = (
            format!("{address}:8080"),
            format!("{address}:9181"),
            format!("{address}:9443"),
        );
        let mut rewrites = vec![
            ("/etc/difusor/", etc.as_str()),
            (public.as_str(), "127.0.0.1:0"),
            (health_at.as_str(), &health.addr()),
            (feed_at.as_str(), &feed.addr()),
            ("0.0.0.0:2222", "127.0.0.1:0"),
            ("http://10.0.0.10:6081/", purge),
            // The tests reach Varnish by its address.
            (
                r#"purge_host = ["prep.example.mx"]"#,
                r#"purge_host = ["127.0.0.1"]"#,
            ),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect::<Vec<_>>();
        if let Some(primary_feed) = primary_feed {
            rewrites.push(("10.0.0.1:9443".to_owned(), primary_feed.to_owned()));
        }
        let rewrites: Vec<(&str, &str)> = rewrites
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let config = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, recipe(recipe_name, &rewrites)).unwrap();
        let server = Server::start(
            &self.dir.path().join(name),
            &[
                "--config",
                config.to_str().unwrap(),
                // All the load of a test comes from one address.
                "--rate-per-address",
                "0",
            ],
        );
        Node {
            name,
            server,
            health,
            feed,
        }
    }

    fn node_named(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    fn node_named_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }

    /// HAProxy running `haproxy.cfg` in front of the nodes, on `port`, every node up.
    fn haproxy(&self, port: ReservedPort) -> Haproxy {
        let (tls, stats) = (ReservedPort::hold(), ReservedPort::hold());
        let (tls_port, stats_port) = (tls.port, stats.port);
        let pem = self.dir.path().join("pki/prep.pem");
        let pki = self.dir.path().join("pki/tls");
        let both = [
            std::fs::read(pki.join("cert.pem")).unwrap(),
            std::fs::read(pki.join("key.pem")).unwrap(),
        ]
        .concat();
        std::fs::write(&pem, both).unwrap();
        let servers: Vec<(String, String)> = self
            .nodes
            .iter()
            .zip(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
            .map(|(node, address)| {
                (
                    format!("server {} {address}:8080", node.name),
                    format!(
                        "server {} 127.0.0.1:{} port {}",
                        node.name, node.server.port, node.health.port
                    ),
                )
            })
            .collect();
        let haproxy = Haproxy::start(port, vec![tls, stats], |port, dir| {
            let bind = format!("bind 127.0.0.1:{port}\n");
            let bind_tls = format!("bind 127.0.0.1:{tls_port} ssl crt {}", pem.display());
            let socket = dir.join("admin.sock").display().to_string();
            let stats = format!("bind 127.0.0.1:{stats_port}");
            let mut rewrites = vec![
                ("bind :80\n", bind.as_str()),
                (
                    "bind :443 ssl crt /etc/haproxy/certs/prep.pem",
                    bind_tls.as_str(),
                ),
                ("/run/haproxy/admin.sock", socket.as_str()),
                ("bind 127.0.0.1:8404", stats.as_str()),
            ];
            rewrites.extend(servers.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            recipe("haproxy.cfg", &rewrites)
        });
        haproxy.wait_all_up("nodes");
        haproxy
    }

    /// Drops corte `corte` (index.html and json/main.json naming it) into the primary's
    /// watched folder and waits until every running node serves it.
    fn publish(&self, corte: &str) {
        let primary = self.node_named("node1");
        drop_file(
            &primary.server.entrada(),
            &format!("{corte}_PREP.zip"),
            &site_package(corte, &[]),
        );
        for node in &self.nodes {
            node.server.wait_corte(corte);
        }
    }
}

/// Makes HAProxy send every request from 127.0.0.1 to the server `name`: its stick-table
/// entry is cleared and a request made until round-robin gives it to that server.
fn steer_loopback_to(haproxy: &Haproxy, name: &str) {
    for _ in 0..12 {
        haproxy.command("clear table nodes key 127.0.0.1");
        let r = curl(&format!("{}json/main.json", haproxy.url()), &[]);
        assert_eq!(r.status, 200, "through HAProxy: {}", r.text());
        if haproxy
            .command("show table nodes")
            .contains(&format!("server_key={name}"))
        {
            return;
        }
    }
    panic!(
        "HAProxy never stuck 127.0.0.1 to {name}: {}",
        haproxy.command("show table nodes")
    );
}

/// Waits up to 30 s for `cond`, checking every 20 ms; panics with `what` otherwise.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three nodes behind the example HAProxy, with wrk (64 connections, `seconds` long) reading
/// `json/main.json` through it, loopback visitors steered to `node`, once more than a
/// thousand of wrk's requests have reached `node`.
fn under_load(node: &str, seconds: u32) -> (Cluster, Haproxy, Wrk) {
    let cluster = Cluster::start(None);
    let haproxy = cluster.haproxy(ReservedPort::hold());
    steer_loopback_to(&haproxy, node);
    let wrk = Wrk::start(&format!("{}json/main.json", haproxy.url()), 64, seconds);
    let sessions = || haproxy.server("nodes", node).sessions;
    let before = sessions();
    wait_for(&format!("wrk's requests to reach {node}"), || {
        sessions() > before + 1000
    });
    (cluster, haproxy, wrk)
}

#[test]
fn a_replica_killed_under_load_costs_no_request_and_gets_visitors_again_only_once_caught_up() {
    if !haproxy_installed() || !wrk_installed() {
        return;
    }
    let (mut cluster, haproxy, wrk) = under_load("node2", 6);
    let node2_sessions = || haproxy.server("nodes", "node2").sessions;
    cluster.node_named_mut("node2").server.kill();

    // A corte goes live while node2 is dead: node2 restarts on the previous one.
    let primary = cluster.node_named("node1");
    drop_file(
        &primary.server.entrada(),
        &format!("{SECOND}_PREP.zip"),
        &site_package(SECOND, &[]),
    );
    primary.server.wait_corte(SECOND);
    cluster.node_named("node3").server.wait_corte(SECOND);
    wait_for("HAProxy to take node2 out", || {
        haproxy.server("nodes", "node2").status.starts_with("DOWN")
    });
    let log_before_restart = cluster.node_named("node2").access_log().len();

    // Restarted, node2 is watched every few milliseconds: its /health, and whether HAProxy
    // has it in the pool.
    let node2 = cluster.node_named_mut("node2");
    node2.server.launch();
    let node2 = cluster.node_named("node2");
    let mut healthy_since: Option<Instant> = None;
    let mut up_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while up_since.is_none() {
        assert!(
            Instant::now() < deadline,
            "node2 never came back into the pool"
        );
        let (status, health) = node2.health();
        if status == 200 && healthy_since.is_none() {
            assert_eq!(
                health["corte"], SECOND,
                "healthy only on the live corte: {health}"
            );
            healthy_since = Some(Instant::now());
        }
        if haproxy.server("nodes", "node2").status == "UP" {
            up_since = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        healthy_since.is_some_and(|h| Some(h) <= up_since),
        "HAProxy put node2 back before its /health said it serves the live corte"
    );

    // New visitors (other addresses) now reach node2 too, and it gives each the live corte.
    let node2_before = node2_sessions();
    for source in 2..=60 {
        let r = curl(
            &format!("{}json/main.json", haproxy.url()),
            &["--interface", &format!("127.0.0.{source}")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-prep-corte"), Some(SECOND));
    }
    assert!(
        node2_sessions() > node2_before,
        "no new visitor reached node2"
    );
    wait_for("node2's access log", || {
        cluster.node_named("node2").access_log().len() > log_before_restart
    });

    let report = wrk.finish();
    assert!(
        report.requests > 1000,
        "wrk made too few requests: {report:?}"
    );
    assert_eq!(
        report.failed(),
        0,
        "requests failed while node2 died: {report:?}"
    );
    let served_after_restart = &cluster.node_named("node2").access_log()[log_before_restart..];
    assert!(
        served_after_restart
            .iter()
            .all(|l| l.status == 200 && l.corte == SECOND),
        "node2 answered a visitor before it served the live corte: {served_after_restart:?}"
    );
}

#[test]
fn a_node_stopped_under_load_leaves_the_pool_while_it_still_answers() {
    if !haproxy_installed() || !wrk_installed() {
        return;
    }
    let (mut cluster, haproxy, wrk) = under_load("node3", 5);

    let pid = cluster.node_named("node3").server.pid().unwrap();
    run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let stopping = Instant::now();
    let node3 = cluster.node_named("node3");
    wait_for("node3's health to say it is draining", || {
        let (status, health) = node3.health();
        status == 503
            && health["reason"]
                .as_str()
                .is_some_and(|r| r.contains("draining"))
    });
    let draining = curl(&node3.server.url("/json/main.json"), &[]);
    assert_eq!(
        draining.status, 200,
        "a draining node still answers visitors"
    );
    wait_for("HAProxy to take node3 out", || {
        haproxy.server("nodes", "node3").status.starts_with("DOWN")
    });
    let out_after = stopping.elapsed();
    let node3 = cluster.node_named_mut("node3");
    let ended = node3.server.wait_exit(Duration::from_secs(30));
    let lasted = stopping.elapsed();
    assert!(ended.is_some(), "node3 did not stop after draining");
    assert!(
        out_after + Duration::from_secs(1) < lasted,
        "node3 stopped ({lasted:?}) before HAProxy had it out of the pool ({out_after:?})"
    );

    let report = wrk.finish();
    assert!(
        report.requests > 1000,
        "wrk made too few requests: {report:?}"
    );
    assert_eq!(
        report.failed(),
        0,
        "requests failed while node3 stopped: {report:?}"
    );
}

#[test]
fn through_varnish_main_json_always_reaches_a_node_and_files_are_revalidated() {
    if !haproxy_installed() || !varnish_installed() {
        return;
    }
    let balancer = ReservedPort::hold();
    let backend_port = balancer.port.to_string();
    let varnish = Varnish::with_vcl(&recipe(
        "difusor.vcl",
        &[(".port = \"80\";", &format!(".port = \"{backend_port}\";"))],
    ));
    let mut cluster = Cluster::start(Some(&varnish.url()));
    let _haproxy = cluster.haproxy(balancer);
    let through = |path: &str| curl(&format!("{}{}", varnish.url(), &path[1..]), &[]);
    wait_for("Varnish to see the balancer up", || {
        through("/json/main.json").status == 200
    });
    let count = |path: &str, status: u16| {
        cluster
            .nodes
            .iter()
            .flat_map(Node::access_log)
            .filter(|l| l.path == path && l.status == status)
            .count()
    };

    // main.json: every request reaches a node, none is answered from Varnish's store.
    let main_before = count("/json/main.json", 200);
    for _ in 0..20 {
        let r = through("/json/main.json");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-prep-corte"), Some(FIRST));
        assert_eq!(
            r.header("x-varnish").map(|v| v.split_whitespace().count()),
            Some(1),
            "main.json answered from the store"
        );
        assert_eq!(r.header("age"), Some("0"));
        assert_eq!(
            r.header("cache-control"),
            Some("no-cache, no-store, must-revalidate")
        );
    }
    wait_for("20 main.json requests in the nodes' access logs", || {
        count("/json/main.json", 200) >= main_before + 20
    });

    // Other files: stored, and revalidated on every request (the node answers 304).
    for path in ["/index.html", "/css/estilo.css"] {
        let first = through(path);
        assert_eq!(first.status, 200, "{path}");
        let revalidated_before = count(path, 304);
        for _ in 0..10 {
            let r = through(path);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.body, first.body, "{path}");
            assert_eq!(r.header("x-prep-corte"), Some(FIRST), "{path}");
        }
        wait_for(&format!("10 revalidations of {path} answered 304"), || {
            count(path, 304) >= revalidated_before + 10
        });
    }

    // A new corte: a visitor re-reading main.json through Varnish meanwhile never goes
    // back, and once every node serves it nobody gets the previous corte of any file.
    let watcher = {
        let url = format!("{}json/main.json", varnish.url());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let r = curl(&url, &[]);
                seen.push(r.header("x-prep-corte").unwrap_or("-").to_owned());
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.publish(SECOND);
    for path in ["/json/main.json", "/index.html"] {
        for _ in 0..10 {
            let r = through(path);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("x-prep-corte"), Some(SECOND), "{path}");
            assert!(r.text().contains(SECOND), "{path}: {}", r.text());
        }
    }
    let seen = watcher.join().unwrap();
    let first_new = seen
        .iter()
        .position(|c| c == SECOND)
        .expect("the new corte seen");
    assert!(
        seen[first_new..].iter().all(|c| c == SECOND),
        "a visitor saw the cortes go backwards: {seen:?}"
    );
    assert!(
        seen[..first_new].iter().all(|c| c == FIRST),
        "only the two cortes: {seen:?}"
    );

    // The nodes' purge reached Varnish as a ban.
    wait_for("the nodes' ban in Varnish's ban list", || {
        varnish
            .admin(&["ban.list"])
            .contains(r"obj.http.X-Host ~ (?i)^(127\.0\.0\.1)\.?(:[0-9]+)?$ && obj.http.X-Url ~ .")
    });

    // The institute's notice (a page marked no-store) passes through at once and is never
    // kept: lifted, the results are back on the first request.
    notice_reaches_every_node(&cluster, &["notice", "on", "--text", NOTICE], true);
    for path in ["/index.html", "/json/main.json"] {
        let r = through(path);
        assert!(r.text().contains(NOTICE), "{path}: {}", r.text());
    }
    notice_reaches_every_node(&cluster, &["notice", "off"], false);
    for path in ["/index.html", "/json/main.json"] {
        let r = through(path);
        assert_eq!(
            r.header("x-prep-corte"),
            Some(SECOND),
            "{path}: {}",
            r.text()
        );
    }

    // Every node dies: Varnish serves its stored files for as long as their
    // `stale-if-error` allows (`stale_if_error`), and never json/main.json, whose error is
    // not kept either: the first request once a node is back gets the file.
    let index = through("/index.html");
    for node in &mut cluster.nodes {
        node.server.kill();
    }
    wait_for("Varnish to see no node up", || {
        through("/json/main.json").status == 503 && through("/index.html").status == 200
    });
    let stale = through("/index.html");
    assert_eq!(
        stale.body, index.body,
        "the stored copy while no node answers"
    );
    assert_eq!(stale.header("x-prep-corte"), Some(SECOND));
    for node in &mut cluster.nodes {
        node.server.restart();
    }
    wait_for(
        "json/main.json through Varnish once the nodes are back",
        || through("/json/main.json").status == 200,
    );
}

/// How long after `difusor notice on/off` (`change`) is asked of the primary each node
/// serves the notice instead of `json/main.json` (`serves_notice`) or the file again; fails
/// past 5 s.
fn notice_reaches_every_node(
    cluster: &Cluster,
    change: &[&str],
    serves_notice: bool,
) -> Vec<Duration> {
    let primary = cluster.node_named("node1");
    let asked = Instant::now();
    let out = primary.server.run(change);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster
        .nodes
        .iter()
        .map(|node| {
            loop {
                let r = curl(&node.server.url("/json/main.json"), &[]);
                let is_notice = r.text().contains(NOTICE) && r.header("x-prep-corte").is_none();
                if r.status == 200 && is_notice == serves_notice {
                    if is_notice {
                        assert_eq!(r.header("cache-control"), Some("no-store"), "{}", node.name);
                    }
                    return asked.elapsed();
                }
                assert!(
                    asked.elapsed() < Duration::from_secs(5),
                    "{} does not follow `{}` after 5 s: {} {}",
                    node.name,
                    change.join(" "),
                    r.status,
                    r.text()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .collect()
}

/// The institute's notice in the tests (R4.10).
const NOTICE: &str = "El Instituto suspendió la difusión de resultados en este portal.";

#[test]
fn a_notice_switched_at_the_primary_is_in_force_on_every_node_within_a_second() {
    let cluster = Cluster::start(None);
    let on = notice_reaches_every_node(&cluster, &["notice", "on", "--text", NOTICE], true);
    eprintln!("notice on, in force after: {on:?}");
    assert!(
        on.iter().all(|d| *d < Duration::from_secs(1)),
        "the notice took more than a second to reach a node: {on:?}"
    );
    for replica in &cluster.nodes[1..] {
        let journaled = wait_events(&replica.server, "notice-on", 1);
        assert_eq!(journaled[0]["detail"]["text"], NOTICE, "{}", replica.name);
        assert_eq!(journaled[0]["detail"]["source"], "feed", "{}", replica.name);
    }
    let off = notice_reaches_every_node(&cluster, &["notice", "off"], false);
    eprintln!("notice off, results again after: {off:?}");
    assert!(
        off.iter().all(|d| *d < Duration::from_secs(1)),
        "lifting the notice took more than a second to reach a node: {off:?}"
    );
    for replica in &cluster.nodes[1..] {
        let journaled = wait_events(&replica.server, "notice-off", 1);
        assert_eq!(journaled[0]["detail"]["source"], "feed", "{}", replica.name);
    }
}

#[test]
fn the_recipes_are_valid_for_the_programs_that_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_pair(&dir.path().join("pki"));
    let pem = dir.path().join("prep.pem");
    std::fs::write(
        &pem,
        [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat(),
    )
    .unwrap();

    if haproxy_installed() {
        let socket = dir.path().join("admin.sock");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            recipe(
                "haproxy.cfg",
                &[
                    ("/etc/haproxy/certs/prep.pem", pem.to_str().unwrap()),
                    ("/run/haproxy/admin.sock", socket.to_str().unwrap()),
                ],
            ),
        )
        .unwrap();
        let out = run_ok(Command::new("haproxy").arg("-c").arg("-f").arg(&cfg));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("WARNING"), "HAProxy warns: {said}");
    }
    if varnish_installed() {
        let vcl = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster/difusor.vcl");
        run_ok(
            Command::new("varnishd")
                .arg("-C")
                .arg("-f")
                .arg(vcl)
                .arg("-n")
                .arg(dir.path().join("varnish")),
        );
    }
    if installed(&["nft", "--version"], "nftables") {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster/nftables.conf");
        // Checked (`-c`), never applied: nothing of this machine's firewall is touched.
        run_ok(Command::new("nft").args(["-c", "-f"]).arg(rules));
    }
    if installed(&["systemd-analyze", "--version"], "systemd") {
        let unit_dir = dir.path().join("units");
        std::fs::create_dir_all(&unit_dir).unwrap();
        let unit = recipe(
            "difusor@.service",
            &[("/usr/local/bin/difusor", env!("CARGO_BIN_EXE_difusor"))],
        );
        std::fs::write(unit_dir.join("difusor@.service"), unit).unwrap();
        assert_unit_verifies(&unit_dir.join("difusor@primary.service"));
    }
}
