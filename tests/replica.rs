//! Several nodes: a primary's replication feed (`feed_listen`) over HTTPS with a token, and
//! replicas that pull it (`replica_of`). Every corte reaches every node as it is published, a
//! replica starting empty takes the live corte first, a replica trusts the feed no more than
//! the institute, the feed admits only its token or certificate and serves only what it
//! lists, `/state` follows the notice and rollbacks, and a replica applies both and tells its
//! load balancer whether it is in step.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

/// The feed's token in these tests.
const TOKEN: &str = "ficha-de-la-red-de-replicas-0123456789";

/// The files a primary and its replicas are started with: an authority, the primary's
/// certificate, a client certificate, and the token (right and wrong).
struct Files {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    token: PathBuf,
    wrong_token: PathBuf,
}

impl Files {
    fn write(dir: &Path) -> Files {
        let pki = pki();
        let path = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Files {
            ca: path("ca.pem", &pki.ca_pem),
            cert: path("cert.pem", &pki.server_pem.0),
            key: path("key.pem", &pki.server_pem.1),
            client_cert: path("client.pem", &pki.client_pem.0),
            client_key: path("client-key.pem", &pki.client_pem.1),
            token: path("feed.token", &format!("{TOKEN}\n")),
            wrong_token: path("wrong.token", "otra-ficha\n"),
        }
    }

    fn arg(path: &Path) -> String {
        path.display().to_string()
    }

    /// A primary on `data`, its feed on HTTPS with the token, and `extra` flags.
    fn primary(&self, data: &Path, extra: &[&str]) -> Server {
        let args = [
            "--tls-cert".to_owned(),
            Self::arg(&self.cert),
            "--tls-key".to_owned(),
            Self::arg(&self.key),
            "--feed-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--feed-token-file".to_owned(),
            Self::arg(&self.token),
        ];
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Server::start(data, &all)
    }

    /// A replica on `data` of `primary`, sending the token in `token`.
    fn replica(&self, data: &Path, primary: &Server, token: &Path, extra: &[&str]) -> Server {
        let args = [
            "--replica-of".to_owned(),
            format!("https://127.0.0.1:{}/", primary.feed_port()),
            "--pull-token-file".to_owned(),
            Self::arg(token),
            "--pull-ca".to_owned(),
            Self::arg(&self.ca),
        ];
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Server::start(data, &all)
    }

    /// `path` of `primary`'s feed with curl, trusting the authority, with `extra` arguments.
    fn get(&self, primary: &Server, path: &str, extra: &[&str]) -> Response {
        let url = format!("https://127.0.0.1:{}{path}", primary.feed_port());
        let ca = Self::arg(&self.ca);
        let mut args = vec!["--cacert", ca.as_str()];
        args.extend_from_slice(extra);
        curl(&url, &args)
    }

    /// The same with the token.
    fn get_with_token(&self, primary: &Server, path: &str, extra: &[&str]) -> Response {
        let bearer = format!("Authorization: Bearer {TOKEN}");
        let mut args = vec!["-H", bearer.as_str()];
        args.extend_from_slice(extra);
        self.get(primary, path, &args)
    }
}

/// Runs `difusor simulate` into `out`: `cortes` cortes `every` apart, election night
/// `desde` after 20:00 of `fecha` (at most 97 cortes: the night ends at 20:00 the next day),
/// with `extra` flags.
fn simulate(out: &Path, fecha: &str, cortes: u32, every: &str, desde: &str, extra: &[&str]) {
    run_ok(
        difusor()
            .args(["simulate", "--out"])
            .arg(out)
            .args(["--fecha", fecha, "--casillas", "300"])
            .args(["--cortes", &cortes.to_string(), "--every", every])
            .args(["--desde", desde])
            .args(extra),
    );
}

/// A new key pair in `dir/llaves` and `cortes` cortes of 2027-06-06 simulated and signed
/// with it into `dir/entregados`: the two folders.
fn signed_simulation(dir: &Path, cortes: u32) -> (PathBuf, PathBuf) {
    let keys = dir.join("llaves");
    run_ok(difusor().args(["keygen", "--dir"]).arg(&keys));
    let delivered = dir.join("entregados");
    std::fs::create_dir_all(&delivered).unwrap();
    let key = keys.join("difusor.key").display().to_string();
    simulate(
        &delivered,
        "2027-06-06",
        cortes,
        "0s",
        "0s",
        &["--sign-key", &key],
    );
    (keys, delivered)
}

/// A replica in `data` of the primary at `primary` that requires every package signed by
/// the key in `keys` (made by [`signed_simulation`]).
fn replica_requiring_signatures(data: &Path, primary: std::net::SocketAddr, keys: &Path) -> Server {
    let public = keys.join("difusor.pub").display().to_string();
    Server::start(
        data,
        &[
            "--replica-of",
            &format!("http://{primary}/"),
            "--evidence-signature",
            "required",
            "--minisign-keys",
            &public,
        ],
    )
}

/// The packages `difusor simulate` delivered into `dir`, in the order it made them: by corte,
/// the site package first.
fn packages_in(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".zip"))
        .collect();
    names.sort_by_key(|n| (n[..13].to_owned(), !n.contains("_SITIO_")));
    names.iter().map(|n| dir.join(n)).collect()
}

/// For each corte `node` published: when its last package went live there.
fn completed(node: &Server) -> BTreeMap<String, jiff::Timestamp> {
    let mut times = BTreeMap::new();
    for p in publications(node) {
        let at: jiff::Timestamp = p["live_at"].as_str().unwrap().parse().unwrap();
        let corte = p["corte_id"].as_str().unwrap().to_owned();
        let entry = times.entry(corte).or_insert(at);
        *entry = (*entry).max(at);
    }
    times
}

/// (corte, package) of every publication of `node`.
fn published_packages(node: &Server) -> BTreeSet<(String, String)> {
    publications(node)
        .iter()
        .map(|p| {
            (
                p["corte_id"].as_str().unwrap().to_owned(),
                p["package"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_corte_reaches_every_replica_as_it_is_published_not_at_the_next_poll() {
    const CORTES: u32 = 100;
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &[]);
    let replicas = [
        files.replica(&dir.path().join("replica-1"), &primary, &files.token, &[]),
        files.replica(&dir.path().join("replica-2"), &primary, &files.token, &[]),
    ];
    // Two nights of half the cortes each (one night has at most 97), made beforehand and
    // handed to the primary as an institute sends them: a corte every 100 ms, each package
    // through `difusor ingest`, which waits for the primary's outcome.
    let nights = ["2027-06-06", "2027-06-07"].map(|fecha| {
        let out = dir.path().join(fecha);
        std::fs::create_dir_all(&out).unwrap();
        simulate(&out, fecha, CORTES / 2, "0s", "0s", &[]);
        packages_in(&out)
    });
    let packages = 2 * CORTES as usize;
    let started = Instant::now();
    for (night, delivered) in nights.iter().enumerate() {
        for corte in delivered.chunks(2) {
            let at = Instant::now();
            for package in corte {
                assert_success(&primary.run(&["ingest", package.to_str().unwrap()]));
            }
            std::thread::sleep(Duration::from_millis(100).saturating_sub(at.elapsed()));
        }
        // The second night begins with a complete site package, which the feed lists first:
        // a replica still taking the end of the first night then would archive what it had
        // left as older cortes. So the second night starts once every replica has the first.
        let so_far = (packages / 2 * (night + 1)) as i64;
        for replica in &replicas {
            replica.wait_published(so_far);
        }
    }
    eprintln!(
        "{CORTES} cortes ({packages} packages) delivered and published on 3 nodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let expected = published_packages(&primary);
    assert_eq!(expected.len(), packages);
    for replica in &replicas {
        assert_eq!(
            published_packages(replica),
            expected,
            "every node publishes the same packages as the same cortes"
        );
    }
    let nodes = [
        ("primary", completed(&primary)),
        ("replica-1", completed(&replicas[0])),
        ("replica-2", completed(&replicas[1])),
    ];
    let mut max_skew = Duration::ZERO;
    for (corte, &at) in &nodes[0].1 {
        let times: Vec<jiff::Timestamp> = nodes
            .iter()
            .map(|(name, times)| {
                *times
                    .get(corte)
                    .unwrap_or_else(|| panic!("corte {corte} never reached {name}"))
            })
            .collect();
        let first = *times.iter().min().unwrap();
        let last = *times.iter().max().unwrap();
        let skew = last.duration_since(first).unsigned_abs();
        max_skew = max_skew.max(skew);
        let offsets: Vec<String> = nodes
            .iter()
            .zip(&times)
            .map(|((name, _), t)| format!("{name} {:+} ms", t.duration_since(at).as_millis()))
            .collect();
        eprintln!(
            "corte {corte}: {}, skew {} ms",
            offsets.join(", "),
            skew.as_millis()
        );
    }
    eprintln!(
        "replication: nodes=3 cortes={CORTES} skew_max_ms={}",
        max_skew.as_millis()
    );
    // The figure against the one-second goal is bench/cluster.sh's, on an idle machine; here
    // the bound only tells a woken replica from one that waits for its next poll (the
    // replicas' `pull_interval` is 10 s), whatever else the machine runs meanwhile.
    assert!(
        max_skew < Duration::from_secs(5),
        "the largest skew between the first and the last node to publish a corte is {max_skew:?}"
    );
}

#[test]
fn a_replica_starting_empty_takes_the_live_corte_first_and_the_history_after() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &[]);
    // Ten cortes of the night, then a complete site for a later corte: the live corte is
    // built from that site package and its data package alone.
    for (cortes, desde) in [(10, "0s"), (1, "5h")] {
        let out = dir.path().join(desde);
        std::fs::create_dir_all(&out).unwrap();
        simulate(&out, "2027-06-06", cortes, "0s", desde, &[]);
        for package in packages_in(&out) {
            assert_success(&primary.run(&["ingest", package.to_str().unwrap()]));
        }
    }
    primary.wait_published(22);
    let live = primary.live_corte().unwrap();
    assert_eq!(live, "20270607_0100");

    let replica = files.replica(&dir.path().join("replica"), &primary, &files.token, &[]);
    replica.wait_status("every package of the primary", |s| {
        s["counts"]["received"].as_i64().unwrap_or(0) >= 22
            && s["pull"][0]["packages_handed_over"].as_i64().unwrap_or(0) >= 22
    });
    let published = publications(&replica);
    let cortes: Vec<&str> = published
        .iter()
        .map(|p| p["corte_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        cortes,
        [live.as_str(), live.as_str()],
        "the live corte (its site package, then its data package) is all a replica publishes"
    );
    assert!(
        published[0]["name"]
            .as_str()
            .unwrap()
            .contains("_SITIO_COMPLETO_"),
        "{published:#?}"
    );
    let older = events(&replica, "older");
    assert_eq!(older.len(), 20, "the history is archived as older cortes");
    assert_eq!(replica.live_corte().unwrap(), live);
    let main = |node: &Server| curl(&node.url("/json/main.json"), &[]);
    assert_eq!(main(&replica).status, 200);
    assert_eq!(main(&replica).body, main(&primary).body);
}

/// What a lying primary serves: its bytes by path, changed as the test goes on.
type Served = std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u8>>>>;

/// A primary that lies, over plain HTTP on loopback: it answers each path of `files` with
/// its bytes, any other with 404, one request per connection. It runs until the test
/// process ends.
fn fake_primary(files: Served) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or_default();
            let (status, body) = match files.lock().unwrap().get(path) {
                Some(body) => ("200 OK", body.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    addr
}

/// `zip` with every `main.json` member's content replaced: a package the institute never
/// sent, which still opens.
fn tampered(zip: &[u8]) -> Vec<u8> {
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).unwrap();
        if member.is_dir() {
            continue;
        }
        let name = member.name().unwrap().into_owned();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).unwrap();
        if name.ends_with("main.json") {
            bytes = br#"{"corte":"resultados falsos"}"#.to_vec();
        }
        members.push((name, bytes));
    }
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_bytes(&refs)
}

#[test]
fn a_replica_refuses_a_package_its_primary_changed_even_with_a_matching_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, delivered) = signed_simulation(dir.path(), 2);
    let good = "20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip";
    let bad = "20270606_2015_PREP_SITIO_CAMP.zip";
    let read = |name: &str| std::fs::read(delivered.join(name)).unwrap();
    let changed = tampered(&read(bad));
    assert_ne!(changed, read(bad));
    let mut files = BTreeMap::new();
    let mut listing = Vec::new();
    for (name, bytes) in [(good, read(good)), (bad, changed)] {
        let sidecar = format!("{}  {name}\n", sha256_hex(&bytes));
        let signature = read(&format!("{name}.minisig"));
        for (file, body) in [
            (name.to_owned(), bytes),
            (format!("{name}.sha256"), sidecar.into_bytes()),
            (format!("{name}.minisig"), signature),
        ] {
            listing.push(serde_json::json!({
                "name": file, "type": "file", "size": body.len(),
                "mtime": "Sun, 06 Jun 2027 20:00:00 GMT",
            }));
            files.insert(format!("/packages/{file}"), body);
        }
    }
    files.insert(
        "/packages/".to_owned(),
        serde_json::to_vec(&listing).unwrap(),
    );
    let fake = fake_primary(Served::new(files.into()));

    let replica = replica_requiring_signatures(&dir.path().join("replica"), fake, &keys);
    let rejected = wait_events(&replica, "rejected", 1);
    assert_eq!(rejected[0]["name"], bad, "{rejected:#?}");
    assert_eq!(rejected[0]["detail"]["fault"], "sender");
    let reason = rejected[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("signature does not verify"),
        "the signature is what the changed bytes fail: {reason}"
    );
    wait_events(&replica, "published", 1);
    assert_eq!(
        replica.live_corte().as_deref(),
        Some("20270606_2000"),
        "the signed package is published, the changed one is not"
    );
    let published: Vec<serde_json::Value> = events(&replica, "published");
    assert_eq!(published.len(), 1, "{published:#?}");
    let main = curl(&replica.url("/json/main.json"), &[]);
    assert!(!main.text().contains("resultados falsos"));
}

/// `files` (each name with its bytes) as a lying primary serves them under `/packages/`, with
/// their listing in the feed's form, each listed with the time `mtime`.
fn served_as_feed(files: &[(String, Vec<u8>)], mtime: &str) -> BTreeMap<String, Vec<u8>> {
    let listing: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, body)| {
            serde_json::json!({
                "name": name, "type": "file", "size": body.len(),
                "mtime": mtime,
            })
        })
        .collect();
    let mut served: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(name, body)| (format!("/packages/{name}"), body.clone()))
        .collect();
    served.insert(
        "/packages/".to_owned(),
        serde_json::to_vec(&listing).unwrap(),
    );
    served
}

#[test]
fn a_package_refused_for_evidence_changed_on_the_way_is_taken_once_the_primary_serves_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, delivered) = signed_simulation(dir.path(), 1);
    let name = "20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip";
    let read = |name: &str| std::fs::read(delivered.join(name)).unwrap();
    let bytes = read(name);
    let signature = read(&format!("{name}.minisig"));
    // What a man in the middle (or a primary serving another package's evidence for a
    // moment) sends: the right bytes and sidecar, a signature whose trusted comment changed.
    let changed = String::from_utf8(signature.clone())
        .unwrap()
        .replace("trusted comment: ", "trusted comment: cambiado ")
        .into_bytes();
    let feed = |signature: Vec<u8>, mtime: &str| {
        served_as_feed(
            &[
                (name.to_owned(), bytes.clone()),
                (
                    format!("{name}.sha256"),
                    format!("{}  {name}\n", sha256_hex(&bytes)).into_bytes(),
                ),
                (format!("{name}.minisig"), signature),
            ],
            mtime,
        )
    };
    let served = Served::new(feed(changed.clone(), "Sun, 06 Jun 2027 20:00:00 GMT").into());
    let fake = fake_primary(served.clone());

    let replica = replica_requiring_signatures(&dir.path().join("replica"), fake, &keys);
    let rejected = wait_events(&replica, "rejected", 1);
    let reason = rejected[0]["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("signature"), "{rejected:#?}");
    // Listed again at another time, with the same evidence: looked at, not handed over again.
    *served.lock().unwrap() = feed(changed, "Sun, 06 Jun 2027 20:05:00 GMT");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(&replica, "rejected").len(), 1);

    // The primary's own signature now: the same bytes are taken with it, and published.
    *served.lock().unwrap() = feed(signature, "Sun, 06 Jun 2027 20:05:00 GMT");
    wait_events(&replica, "published", 1);
    assert_eq!(replica.live_corte().as_deref(), Some("20270606_2000"));
    assert_eq!(events(&replica, "rejected").len(), 1);
}

/// A primary reused across drills and the night lists its live corte first, then a history of
/// thousands of packages (each with its `.sha256` and `.minisig`): 25 001 entries, more than a
/// replica reads of an index. The replica takes the first entries it can instead of failing
/// every poll, says so once, and publishes the live corte.
#[test]
fn a_replica_of_a_primary_listing_more_than_it_reads_still_publishes_the_live_corte() {
    let dir = tempfile::tempdir().unwrap();
    let delivered = dir.path().join("entregados");
    std::fs::create_dir_all(&delivered).unwrap();
    simulate(&delivered, "2027-06-06", 1, "0s", "0s", &[]);
    let name = "20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip";
    let bytes = std::fs::read(delivered.join(name)).unwrap();
    let mut files = vec![
        (
            format!("{name}.sha256"),
            format!("{}  {name}\n", sha256_hex(&bytes)).into_bytes(),
        ),
        (name.to_owned(), bytes),
    ];
    files.reverse();
    // The drills' packages, listed after the live corte in the order they arrived.
    for i in 0..8_333 {
        let old = format!(
            "20270530_{:02}{:02}_PREP_SITIO_COMPLETO_CAMP.zip",
            i / 60 % 24,
            i % 60
        );
        let old = format!("{}_{i}.zip", old.trim_end_matches(".zip"));
        for suffix in ["", ".sha256", ".minisig"] {
            files.push((format!("{old}{suffix}"), Vec::new()));
        }
    }
    let mut served = served_as_feed(&files, "Sun, 06 Jun 2027 20:00:00 GMT");
    let listing: Vec<serde_json::Value> = serde_json::from_slice(&served["/packages/"]).unwrap();
    assert_eq!(listing.len(), 25_001);
    // The history is not served any more (nothing of it is needed to serve the live corte).
    served.retain(|path, _| path == "/packages/" || path.contains(name));
    let fake = fake_primary(Served::new(served.into()));

    let replica = Server::start(
        &dir.path().join("replica"),
        &["--replica-of", &format!("http://{fake}/")],
    );
    wait_events(&replica, "published", 1);
    assert_eq!(replica.live_corte().as_deref(), Some("20270606_2000"));
    let cut: Vec<serde_json::Value> = events(&replica, "warning")
        .into_iter()
        .filter(|e| e["detail"]["check"] == "feed-listing-cut")
        .collect();
    assert_eq!(cut.len(), 1, "{cut:#?}");
    assert_eq!(cut[0]["detail"]["listed"], 25_001);
    // The first 20 000 entries, without the last package, which the cut could have parted
    // from its evidence.
    assert_eq!(cut[0]["detail"]["kept"], 19_997);
}

/// A corte going live here wakes the state's follower, cutting its poll short: that says
/// nothing of the primary, so a state failing all along is one `pull-error`, never a
/// `pull-recovered` followed by another.
#[test]
fn a_corte_going_live_while_the_primarys_state_fails_is_no_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let delivered = dir.path().join("entregados");
    std::fs::create_dir_all(&delivered).unwrap();
    simulate(&delivered, "2027-06-06", 2, "0s", "0s", &[]);
    let mut names: Vec<String> = std::fs::read_dir(&delivered)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zip"))
        .collect();
    names.sort();
    let listed = |names: &[String]| {
        let files: Vec<(String, Vec<u8>)> = names
            .iter()
            .map(|n| (n.clone(), std::fs::read(delivered.join(n)).unwrap()))
            .collect();
        served_as_feed(&files, "Sun, 06 Jun 2027 20:00:00 GMT")
    };
    // A primary whose feed answers and whose state does not (404).
    let served = Served::new(listed(&names[..1]).into());
    let fake = fake_primary(served.clone());
    let replica = Server::start(
        &dir.path().join("replica"),
        &[
            "--replica-of",
            &format!("http://{fake}/"),
            "--pull-interval",
            "1s",
            "--pull-max-backoff",
            "1s",
        ],
    );
    wait_events(&replica, "published", 1);
    *served.lock().unwrap() = listed(&names);
    wait_events(&replica, "published", 2);
    // Past the state's next poll after each swap.
    std::thread::sleep(Duration::from_secs(3));
    let state_errors = events(&replica, "pull-error")
        .into_iter()
        .filter(|e| {
            e["detail"]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/state"))
        })
        .count();
    assert_eq!(
        (state_errors, events(&replica, "pull-recovered").len()),
        (1, 0),
        "one failing run of the state, no recovery: {:#?}",
        events(&replica, "pull-recovered")
    );
}

/// A request for `path` of `primary`'s feed naming `etag`, in a thread: its answer and how
/// long it took.
fn held_request(
    files: &Files,
    primary: &Server,
    path: &str,
    etag: &str,
) -> std::thread::JoinHandle<(Response, Duration)> {
    let url = format!("https://127.0.0.1:{}{path}", primary.feed_port());
    let args = [
        "--cacert".to_owned(),
        Files::arg(&files.ca),
        "-H".to_owned(),
        format!("Authorization: Bearer {TOKEN}"),
        "-H".to_owned(),
        format!("If-None-Match: {etag}"),
    ];
    std::thread::spawn(move || {
        let asked = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (curl(&url, &args), asked.elapsed())
    })
}

#[test]
fn the_feed_admits_only_its_token_or_certificate_and_serves_only_what_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let client_ca = Files::arg(&files.ca);
    let primary = files.primary(
        &dir.path().join("primario"),
        &["--feed-client-ca", &client_ca, "--feed-hold", "3s"],
    );
    let package = site_package("20240602_2000", &[]);
    let name = "20240602_2000_PREP.zip";
    drop_file(&primary.entrada(), name, &package);
    primary.wait_corte("20240602_2000");

    // Without the token, or with another: 401, journaled once a minute per address.
    let none = files.get(&primary, "/packages/", &[]);
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = files.get(
        &primary,
        "/packages/",
        &["-H", "Authorization: Bearer otra-ficha"],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(files.get(&primary, "/state", &[]).status, 401);
    let warning = wait_events(&primary, "warning", 1)
        .into_iter()
        .find(|w| w["detail"]["check"] == "feed-request")
        .expect("the refusal is journaled");
    assert_eq!(warning["detail"]["address"], "127.0.0.1");

    // A replica with the wrong token says so on its status, and takes nothing.
    let replica = files.replica(
        &dir.path().join("replica"),
        &primary,
        &files.wrong_token,
        &[],
    );
    let status = replica.wait_status("the feed refusing the replica", |s| {
        s["pull"][0]["failures"].as_i64().unwrap_or(0) >= 1
    });
    let error = status["pull"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("pull_token_file"),
        "{error}"
    );
    assert_eq!(status["counts"]["received"], 0);

    // With the token, or a client certificate of the authority: the listing.
    let listing = files.get_with_token(&primary, "/packages/", &[]);
    assert_eq!(listing.status, 200, "{}", listing.text());
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&listing.body).unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [name.to_owned(), format!("{name}.sha256")]);
    assert_eq!(entries[0]["type"], "file");
    assert_eq!(entries[0]["size"], package.len());
    let etag = listing.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let certified = files.get(
        &primary,
        "/packages/",
        &[
            "--cert",
            &Files::arg(&files.client_cert),
            "--key",
            &Files::arg(&files.client_key),
        ],
    );
    assert_eq!(certified.status, 200, "{}", certified.text());
    assert_eq!(certified.body, listing.body);

    // Each listed file, and nothing else.
    let got = files.get_with_token(&primary, &format!("/packages/{name}"), &[]);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, package);
    let sidecar = files.get_with_token(&primary, &format!("/packages/{name}.sha256"), &[]);
    assert_eq!(
        sidecar.text(),
        format!("{}  {name}\n", sha256_hex(&package))
    );
    for path in [
        format!("/packages/{name}.minisig"),
        "/packages/20240602_2015_PREP.zip".to_owned(),
        "/packages/../bitacora.sqlite".to_owned(),
        "/packages/..%2Fbitacora.sqlite".to_owned(),
        "/packages/%2e%2e/bitacora.sqlite".to_owned(),
        "/packages/archivo".to_owned(),
        "/status".to_owned(),
        "/".to_owned(),
    ] {
        let r = files.get_with_token(&primary, &path, &["--path-as-is"]);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let post = files.get_with_token(&primary, "/packages/", &["-X", "POST"]);
    assert_eq!(post.status, 405);

    // A request naming the current listing is held for `feed_hold`, then answered 304 ...
    let inm = format!("If-None-Match: {etag}");
    let asked = Instant::now();
    let unchanged = files.get_with_token(&primary, "/packages/", &["-H", &inm]);
    assert_eq!(unchanged.status, 304);
    assert!(asked.elapsed() >= Duration::from_millis(2800), "held 3 s");
    // ... unless a package arrives meanwhile: then at once, with it.
    let held = held_request(&files, &primary, "/packages/", &etag);
    std::thread::sleep(Duration::from_millis(500));
    drop_file(
        &primary.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    let (changed, waited) = held.join().unwrap();
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert!(changed.text().contains("20240602_2015_PREP.zip"));
    assert!(
        waited < Duration::from_millis(2800),
        "answered at once: {waited:?}"
    );
    let refusals = events(&primary, "warning")
        .into_iter()
        .filter(|w| w["detail"]["check"] == "feed-request")
        .count();
    assert_eq!(refusals, 1, "one address, journaled once a minute");
    let logged = primary
        .log()
        .matches("replication feed request refused")
        .count();
    assert_eq!(logged, 1, "and logged once a minute: {}", primary.log());
}

/// The test files in `dir`, and a primary there serving corte 20240602_2015 after
/// 20240602_2000.
fn primary_with_two_cortes(dir: &Path) -> (Files, Server) {
    let files = Files::write(dir);
    let primary = files.primary(&dir.join("primario"), &[]);
    for corte in ["20240602_2000", "20240602_2015"] {
        drop_file(
            &primary.entrada(),
            &format!("{corte}_PREP.zip"),
            &site_package(corte, &[]),
        );
        primary.wait_corte(corte);
    }
    (files, primary)
}

#[test]
fn the_feed_state_follows_the_notice_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let (files, primary) = primary_with_two_cortes(dir.path());
    let state = |extra: &[&str]| {
        let r = files.get_with_token(&primary, "/state", extra);
        let value: serde_json::Value = if r.status == 200 {
            serde_json::from_slice(&r.body).unwrap()
        } else {
            serde_json::Value::Null
        };
        (r.status, r.header("etag").map(str::to_owned), value)
    };
    let (status, etag, now) = state(&[]);
    assert_eq!(status, 200);
    assert_eq!(now["live"]["corte"], "20240602_2015");
    assert_eq!(now["live"]["package"], "20240602_2015_PREP.zip");
    assert_eq!(
        now["live"]["sha256"],
        sha256_hex(&site_package("20240602_2015", &[]))
    );
    assert_eq!(now["notice"], serde_json::Value::Null);
    assert_eq!(now["rollback"], serde_json::Value::Null);

    // A request holding the current state is answered as soon as the notice is set.
    let held = held_request(&files, &primary, "/state", &etag.unwrap());
    std::thread::sleep(Duration::from_millis(500));
    assert_success(&primary.run(&["notice", "on", "--text", "Difusión suspendida"]));
    let (noticed, waited) = held.join().unwrap();
    assert_eq!(noticed.status, 200);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let value: serde_json::Value = serde_json::from_slice(&noticed.body).unwrap();
    assert_eq!(value["notice"], "Difusión suspendida");

    assert_success(&primary.run(&["notice", "off"]));
    assert_success(&primary.run(&["rollback", "20240602_2000"]));
    let (_, _, rolled) = state(&[]);
    assert_eq!(rolled["notice"], serde_json::Value::Null);
    assert_eq!(rolled["live"]["corte"], "20240602_2000");
    assert_eq!(rolled["rollback"]["corte"], "20240602_2000");
    let seq = rolled["rollback"]["seq"].as_i64().unwrap();
    assert_eq!(
        publications(&primary).last().unwrap()["seq"].as_i64(),
        Some(seq),
        "the rollback's own publication"
    );
    // A new corte is no rollback.
    drop_file(
        &primary.entrada(),
        "20240602_2030_PREP.zip",
        &site_package("20240602_2030", &[]),
    );
    primary.wait_corte("20240602_2030");
    let (_, _, later) = state(&[]);
    assert_eq!(later["rollback"], serde_json::Value::Null);
}

#[test]
fn the_feed_refuses_to_start_open_to_the_network_or_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let token = Files::arg(&files.token);
    let serve = |args: &[&str], env: Option<&str>| {
        let mut c = difusor();
        c.args([
            "serve",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .args(["--admin-listen", &ReservedPort::hold().addr()])
        .args(args);
        if let Some(value) = env {
            c.env("DIFUSOR_FEED_TOKEN", value);
        }
        let out = output_within(&mut c, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("started with {args:?}"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let open = serve(
        &["--feed-listen", "0.0.0.0:0", "--feed-token-file", &token],
        None,
    );
    assert!(
        open.contains("`feed_listen` and `tls_cert`") && open.contains("HTTPS"),
        "{open}"
    );
    let anyone = serve(&["--feed-listen", "127.0.0.1:0"], None);
    assert!(
        anyone.contains("`feed_listen`") && anyone.contains("feed_token_file"),
        "{anyone}"
    );
    // The token may come from the environment instead of a file: it is read, and checked.
    let spaced = serve(&["--feed-listen", "127.0.0.1:0"], Some("dos palabras"));
    assert!(
        spaced.contains("`feed_token_file`") && spaced.contains("DIFUSOR_FEED_TOKEN"),
        "{spaced}"
    );
    // The feed answers a wrong token at once, thousands of times a second: one short enough
    // to be found by trying is refused, from a file or the environment.
    let short = dir.path().join("short.token");
    std::fs::write(&short, "prep2027\n").unwrap();
    let from_file = serve(
        &[
            "--feed-listen",
            "127.0.0.1:0",
            "--feed-token-file",
            Files::arg(&short).as_str(),
        ],
        None,
    );
    let from_env = serve(&["--feed-listen", "127.0.0.1:0"], Some("prep2027"));
    for said in [from_file, from_env] {
        assert!(
            said.contains("`feed_token_file`")
                && said.contains("8 characters long")
                && said.contains("at least 16"),
            "{said}"
        );
    }
}

/// How long after `since` the public page of `node` first satisfies `done`, polled every
/// 10 ms for at most ten seconds.
fn public_within(node: &Server, since: Instant, done: impl Fn(&Response) -> bool) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        if done(&curl(&node.url("/"), &[])) {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the replica never followed its primary"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_replica_applies_its_primarys_notice_within_a_second_and_its_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let (files, primary) = primary_with_two_cortes(dir.path());
    let replica = files.replica(
        &dir.path().join("replica"),
        &primary,
        &files.token,
        &["--health-listen", "127.0.0.1:0"],
    );
    replica.wait_corte("20240602_2015");
    let health = health_url(&replica);
    let r = curl(&health, &[]);
    assert_eq!(r.status, 200, "{}", r.text());

    let text = "Difusión suspendida por el Instituto";
    let since = Instant::now();
    assert_success(&primary.run(&["notice", "on", "--text", text]));
    let took = public_within(&replica, since, |r| r.text().contains(text));
    eprintln!(
        "notice in force on the replica {} ms after it was set",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let on = wait_events(&replica, "notice-on", 1);
    assert_eq!(on[0]["detail"]["source"], "feed", "{on:?}");
    assert_eq!(on[0]["detail"]["text"], text);

    let since = Instant::now();
    assert_success(&primary.run(&["notice", "off"]));
    let took = public_within(&replica, since, |r| !r.text().contains(text));
    assert!(took < Duration::from_secs(1), "{took:?}");
    wait_events(&replica, "notice-off", 1);

    // An operator's rollback at the primary holds on the replica, then a new corte replaces it.
    assert_success(&primary.run(&["rollback", "20240602_2000"]));
    replica.wait_corte("20240602_2000");
    drop_file(
        &primary.entrada(),
        "20240602_2030_PREP.zip",
        &site_package("20240602_2030", &[]),
    );
    replica.wait_corte("20240602_2030");
    assert_eq!(curl(&health, &[]).status, 200);
    // Whichever of the corte and the state reached the replica first, nothing was asked of
    // its publisher that it had to refuse.
    assert_no_refused_rollback(&replica);
}

/// No rollback was refused on `node` (journaled as a `warning` of check `rollback`).
fn assert_no_refused_rollback(node: &Server) {
    let refused: Vec<_> = events(node, "warning")
        .into_iter()
        .filter(|w| w["detail"]["check"] == "rollback")
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// The primary's new corte can reach a replica while the primary's last state it read
/// still names a rollback (the listing and the state are two polls): it goes live there and
/// is rolled back over, as the rollback must hold. Once the state says the primary moved on
/// to that corte, the replica serves it again, from its own archive: it is not left on the
/// rolled-back corte until the next one. The package comes here by the replica's own intake
/// folder, so that it is surely there before the state changes.
#[test]
fn a_replica_moves_on_from_a_rollback_to_a_corte_it_took_before_the_state_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let (files, primary) = primary_with_two_cortes(dir.path());
    let replica = files.replica(&dir.path().join("replica"), &primary, &files.token, &[]);
    replica.wait_corte("20240602_2015");
    assert_success(&primary.run(&["rollback", "20240602_2000"]));
    replica.wait_corte("20240602_2000");

    let next = site_package("20240602_2030", &[]);
    drop_file(&replica.entrada(), "20240602_2030_PREP.zip", &next);
    // Live there, then rolled back over: the primary's state still names its rollback.
    replica.wait_status("the new corte taken and rolled back over", |s| {
        s["counts"]["published"].as_i64().unwrap_or(0) >= 4 && s["live"]["corte"] == "20240602_2000"
    });
    assert_eq!(events(&replica, "rollback").len(), 2);

    drop_file(&primary.entrada(), "20240602_2030_PREP.zip", &next);
    primary.wait_corte("20240602_2030");
    replica.wait_corte("20240602_2030");
    let r = curl(&replica.url("/json/main.json"), &[]);
    assert_eq!(r.text(), r#"{"corte":"20240602_2030"}"#);
    assert_no_refused_rollback(&replica);
}

/// A corte held on both nodes (its time ahead of their clocks) that the primary's operator
/// publishes with `ingest --force` (as the `held` entry says to) goes live on the replica
/// too, from the replica's own archive: held there, it would never go live by itself, and
/// the replica would be behind its primary, out of the load balancer, for good.
#[test]
fn a_held_corte_its_primary_published_with_force_goes_live_on_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let margin = ["--corte-future-margin", "5m"];
    let primary = files.primary(&dir.path().join("primario"), &margin);
    let first = site_package("20240602_2000", &[]);
    drop_file(&primary.entrada(), "20240602_2000_PREP.zip", &first);
    primary.wait_corte("20240602_2000");
    let mut extra = vec!["--health-listen", "127.0.0.1:0"];
    extra.extend_from_slice(&margin);
    let replica = files.replica(&dir.path().join("replica"), &primary, &files.token, &extra);
    replica.wait_corte("20240602_2000");
    let health = health_url(&replica);
    assert_eq!(curl(&health, &[]).status, 200);

    let ahead = site_package("20990101_0000", &[]);
    let path = dir.path().join("20990101_0000_PREP.zip");
    std::fs::write(&path, &ahead).unwrap();
    drop_file(&primary.entrada(), "20990101_0000_PREP.zip", &ahead);
    wait_events(&primary, "held", 1);
    let held = wait_events(&replica, "held", 1);
    assert_eq!(held[0]["detail"]["corte"], "20990101_0000", "{held:?}");
    assert_success(&primary.run(&["ingest", "--force", path.to_str().unwrap()]));
    primary.wait_corte("20990101_0000");

    replica.wait_corte("20990101_0000");
    let r = curl(&replica.url("/json/main.json"), &[]);
    assert_eq!(r.text(), r#"{"corte":"20990101_0000"}"#);
    let r = curl(&health, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let published = events(&replica, "rollback");
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["detail"]["corte"], "20990101_0000");
    assert_eq!(published[0]["package"], sha256_hex(&ahead), "{published:?}");
    assert_no_refused_rollback(&replica);
    assert!(events(&replica, "pull-error").is_empty());
}

/// A primary that would hold a request longer than its replica waits for a byte
/// (`feed_hold` over the replica's `pull_stall_timeout`) holds it only as long as the
/// replica says it waits (`Prefer: wait`): a quiet spell costs the replica no failed poll,
/// and so no back-off that would keep a new corte from it for minutes while it reports
/// itself healthy.
#[test]
fn a_primary_holding_longer_than_its_replica_waits_holds_only_as_long_as_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &["--feed-hold", "30s"]);
    drop_file(
        &primary.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    primary.wait_corte("20240602_2000");
    let replica = files.replica(
        &dir.path().join("replica"),
        &primary,
        &files.token,
        &["--pull-stall-timeout", "3s"],
    );
    replica.wait_corte("20240602_2000");
    // A quiet spell longer than the replica waits for a byte.
    std::thread::sleep(Duration::from_secs(7));
    let since = Instant::now();
    drop_file(
        &primary.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    primary.wait_corte("20240602_2015");
    while replica.live_corte().as_deref() != Some("20240602_2015") {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the replica did not take the new corte within 5 s: {:#}",
            replica.status()["pull"]
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let errors = events(&replica, "pull-error");
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_replica_gets_no_visitors_before_it_has_caught_up_with_its_primary() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &[]);
    drop_file(
        &primary.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    primary.wait_corte("20240602_2000");
    // A replica with a wrong token takes nothing: it serves no corte, and its check says so.
    let lost = files.replica(
        &dir.path().join("perdida"),
        &primary,
        &files.wrong_token,
        &["--health-listen", "127.0.0.1:0"],
    );
    let r = curl(&health_url(&lost), &[]);
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no corte"), "{}", r.text());

    // A replica that had the first corte and restarts after the primary moved on is kept
    // out until it serves the primary's corte.
    // A fixed port, so that the check's address is the same after the restart.
    let port = ReservedPort::hold();
    let mut replica = files.replica(
        &dir.path().join("replica"),
        &primary,
        &files.token,
        &["--health-listen", &port.addr(), "--health-max-lag", "60s"],
    );
    replica.wait_corte("20240602_2000");
    replica.stop();
    // A large corte, so that catching up takes a while.
    let large = corpus::noise(24 * 1024 * 1024);
    let big = site_package("20240602_2015", &[("grande.bin", &large)]);
    drop_file(&primary.entrada(), "20240602_2015_PREP.zip", &big);
    primary.wait_corte("20240602_2015");
    replica.restart();
    let health = format!("http://{}/health", port.addr());
    let mut seen_behind = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = curl(&health, &[]);
        let serving = replica.live_corte();
        if serving.as_deref() == Some("20240602_2000") && r.status == 200 {
            panic!("healthy while serving the old corte: {}", r.text());
        }
        if r.status == 503 && r.text().contains("catching up") {
            seen_behind = true;
        }
        if r.status == 200 {
            assert_eq!(serving.as_deref(), Some("20240602_2015"));
            break;
        }
        assert!(Instant::now() < deadline, "never caught up: {}", r.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("seen catching up: {seen_behind}");
}

/// A replica restarted while its primary is down (a power blip, a rolling upgrade, the OOM
/// killer) has a verified live corte on disk and nobody to be behind: its health check says
/// `catching up` only until its primary has not answered for `health_max_lag`, then 200 on
/// its own corte, saying so in the check's body and `/status`, journaled once. Otherwise every
/// replica would stay out of the load balancer for good, and every visitor get an error. Once
/// the primary is back with a newer corte, the usual rules hold: the replica has
/// `health_max_lag` to take it, is `behind its primary` past that, and healthy on the new one.
#[test]
fn a_replica_restarted_while_its_primary_is_down_serves_its_own_corte_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let mut primary = files.primary(&dir.path().join("primario"), &[]);
    drop_file(
        &primary.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    primary.wait_corte("20240602_2000");
    let max_lag = Duration::from_secs(2);
    // A fixed port, so that the check's address is the same after the restart.
    let port = ReservedPort::hold();
    let mut replica = files.replica(
        &dir.path().join("replica"),
        &primary,
        &files.token,
        &[
            "--health-listen",
            &port.addr(),
            "--health-max-lag",
            "2s",
            "--pull-interval",
            "200ms",
            "--pull-max-backoff",
            "1s",
        ],
    );
    replica.wait_corte("20240602_2000");
    let health = format!("http://{}/health", port.addr());
    let r = curl(&health, &[]);
    assert_eq!(r.status, 200, "{}", r.text());

    primary.stop();
    let restarted = Instant::now();
    replica.restart();
    let r = curl(&health, &[]);
    assert_eq!(r.status, 503, "not before its primary had time to answer");
    assert!(r.text().contains("catching up"), "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = curl(&health, &[]);
        if r.status == 200 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "out of the load balancer for good, though it serves corte 20240602_2000 and its \
             primary cannot say otherwise: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        restarted.elapsed() >= max_lag,
        "healthy before health_max_lag"
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["corte"], "20240602_2000", "{body:#}");
    assert!(body["primary_unreachable_since"].is_string(), "{body:#}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|t| t.contains("its primary has not answered since")),
        "{body:#}"
    );
    assert_eq!(curl(&replica.url("/"), &[]).status, 200);
    let status = replica.status();
    assert_eq!(status["primary"]["on_its_own"], true, "{status:#}");
    assert_eq!(
        status["primary"]["unreachable_since"],
        body["primary_unreachable_since"]
    );
    // Polls go on failing; the journal says it once.
    std::thread::sleep(Duration::from_secs(2));
    let said: Vec<serde_json::Value> = events(&replica, "warning")
        .into_iter()
        .filter(|e| e["detail"]["check"] == "primary-unreachable")
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert_eq!(said[0]["detail"]["corte"], "20240602_2000");

    // The primary comes back with a newer, large corte: the replica is 200 on its old corte
    // for at most health_max_lag of hearing of it, then 503 `behind` until it serves it.
    let large = corpus::noise(24 * 1024 * 1024);
    let big = site_package("20240602_2015", &[("grande.bin", &large)]);
    let back = Instant::now();
    primary.restart();
    drop_file(&primary.entrada(), "20240602_2015_PREP.zip", &big);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut behind = None;
    loop {
        let r = curl(&health, &[]);
        if r.status == 200 && r.text().contains("20240602_2015") {
            break;
        }
        if r.status == 503 {
            assert!(r.text().contains("behind its primary"), "{}", r.text());
            behind.get_or_insert_with(|| back.elapsed());
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(
                behind.is_none(),
                "healthy again on the old corte: {}",
                r.text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "never took the new corte: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(after) = behind {
        assert!(
            after >= max_lag,
            "behind after {after:?}, within health_max_lag"
        );
    }
    eprintln!("behind its primary after {behind:?}");
    let status = replica.status();
    assert_eq!(status["primary"]["on_its_own"], false, "{status:#}");
    assert!(
        status["primary"]["unreachable_since"].is_null(),
        "{status:#}"
    );
}

#[test]
fn silent_connections_to_the_feed_are_capped_and_the_token_still_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &[]);
    let port = primary.feed_port();
    // Sockets opened at the feed's port and left silent, more than one address may hold.
    let mut silent: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let r = files.get_with_token(&primary, "/packages/", &[]);
    assert_eq!(r.status, 200, "the token gets in past silent sockets");
    let closed = silent
        .iter_mut()
        .map(|s| read_to_close(s, Duration::from_millis(50)))
        .filter(Option::is_some)
        .count();
    assert!(
        closed >= 100 - 32,
        "the feed keeps at most 32 connections of one address open; it closed only {closed} of 100"
    );
}

/// A primary's feed as a hostile or broken one answers: plain HTTP on loopback, `/state`
/// answered with the body it is set to, `/packages/` with the listing it is set to (empty at
/// first), anything else 404; or every path with a redirect, once told where to.
struct FakePrimary {
    addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    listing: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    redirect: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl FakePrimary {
    fn start(state: &[u8]) -> FakePrimary {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = FakePrimary {
            addr: listener.local_addr().unwrap(),
            state: std::sync::Arc::new(std::sync::Mutex::new(state.to_vec())),
            listing: std::sync::Arc::new(std::sync::Mutex::new(b"[]".to_vec())),
            redirect: std::sync::Arc::default(),
        };
        let state = fake.state.clone();
        let listing = fake.listing.clone();
        let redirect = fake.redirect.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let state = state.clone();
                let listing = listing.clone();
                let redirect = redirect.clone();
                std::thread::spawn(move || {
                    let Some(head) = read_head(&mut stream) else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or_default();
                    if let Some(to) = redirect.lock().unwrap().as_ref() {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 302 Found\r\nLocation: {to}{}\r\n\
                             Content-Length: 0\r\nConnection: close\r\n\r\n",
                            path.trim_start_matches('/')
                        );
                        return;
                    }
                    let (status, body) = match path {
                        "/state" => (200, state.lock().unwrap().clone()),
                        "/packages/" => (200, listing.lock().unwrap().clone()),
                        _ => (404, b"{}".to_vec()),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                });
            }
        });
        fake
    }

    /// Answers `/state` with `body` from now on.
    fn set_state(&self, body: &[u8]) {
        *self.state.lock().unwrap() = body.to_vec();
    }

    /// Answers `/packages/` with `body` from now on.
    fn set_listing(&self, body: &[u8]) {
        *self.listing.lock().unwrap() = body.to_vec();
    }

    /// Answers every path with a redirect to the same path under `base` from now on.
    fn redirect_to(&self, base: &str) {
        *self.redirect.lock().unwrap() = Some(base.to_owned());
    }

    /// A replica of this primary on `data`, with `extra` flags.
    fn replica(&self, data: &Path, extra: &[&str]) -> Server {
        let token = data.with_extension("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let primary = format!("http://{}/", self.addr);
        let token = token.display().to_string();
        let mut args = vec!["--replica-of", &primary, "--pull-token-file", &token];
        args.extend_from_slice(extra);
        Server::start(data, &args)
    }
}

/// A replica in `dir` of a fake primary whose notice is `text`, once it has put the notice in
/// force: the primary, the replica, and its `notice-on` events.
fn replica_under_notice(dir: &Path, text: &str) -> (FakePrimary, Server, Vec<serde_json::Value>) {
    let primary = FakePrimary::start(
        serde_json::json!({"live": null, "notice": text, "rollback": null})
            .to_string()
            .as_bytes(),
    );
    let replica = primary.replica(&dir.join("replica"), &[]);
    let on = wait_events(&replica, "notice-on", 1);
    (primary, replica, on)
}

#[test]
fn a_state_that_is_not_the_feeds_never_lifts_the_primarys_notice() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Difusión suspendida por el Instituto";
    let (primary, replica, on) = replica_under_notice(dir.path(), text);
    assert_eq!(on[0]["detail"]["source"], "feed", "{on:?}");
    assert!(curl(&replica.url("/"), &[]).text().contains(text));

    // What a proxy in front of the primary may answer while it is down: JSON, but no state.
    primary.set_state(br#"{"error": "en mantenimiento"}"#);
    let errors = wait_events(&replica, "pull-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("/state") && error.contains("missing field"),
        "{errors:?}"
    );
    let state = state_board(&replica);
    assert!(state["failures"].as_u64().unwrap() >= 1, "{state}");
    assert!(
        events(&replica, "notice-off").is_empty(),
        "the notice was lifted"
    );
    assert!(curl(&replica.url("/"), &[]).text().contains(text));
}

#[test]
fn a_rollback_not_named_by_a_corte_id_is_refused_not_published_again_and_again() {
    let dir = tempfile::tempdir().unwrap();
    let primary = FakePrimary::start(br#"{"live": null, "notice": null, "rollback": null}"#);
    let replica = primary.replica(&dir.path().join("replica"), &[]);
    for corte in ["20240602_2000", "20240602_2015"] {
        let path = dir.path().join(format!("{corte}_PREP.zip"));
        std::fs::write(&path, site_package(corte, &[])).unwrap();
        assert_success(&replica.run(&["ingest", path.to_str().unwrap()]));
    }
    replica.wait_corte("20240602_2015");

    // "1" is this node's first publication to `difusor rollback`, but no corte's id: the
    // corte it makes live is never named "1".
    primary.set_state(br#"{"live": null, "notice": null, "rollback": {"seq": 1, "corte": "1"}}"#);
    let errors = wait_events(&replica, "pull-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(error.contains("is not a corte id"), "{errors:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(publications(&replica).len(), 2, "published again");
    assert_eq!(replica.live_corte().as_deref(), Some("20240602_2015"));
}

#[test]
fn a_rollback_to_a_corte_this_replica_lacks_is_the_primarys_request_refused_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let primary = FakePrimary::start(br#"{"live": null, "notice": null, "rollback": null}"#);
    let replica = primary.replica(&dir.path().join("replica"), &[]);
    let path = dir.path().join("20240602_2015_PREP.zip");
    std::fs::write(&path, site_package("20240602_2015", &[])).unwrap();
    assert_success(&replica.run(&["ingest", path.to_str().unwrap()]));
    replica.wait_corte("20240602_2015");

    // A corte id, but one this replica never received.
    primary.set_state(
        br#"{"live": null, "notice": null, "rollback": {"seq": 1, "corte": "20240602_2000"}}"#,
    );
    let errors = wait_events(&replica, "pull-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("asked for corte 20240602_2000, which cannot be published here")
            && error.contains("nothing changed"),
        "{errors:?}"
    );
    assert_eq!(errors[0]["detail"]["fault"], "sender", "{errors:?}");
    assert!(events(&replica, "rollback").is_empty());
    assert_eq!(publications(&replica).len(), 1, "published something");
    assert_eq!(replica.live_corte().as_deref(), Some("20240602_2015"));
}

/// The `/state` entry of `node`'s `/status`, under `pull`.
fn state_board(node: &Server) -> serde_json::Value {
    node.status()["pull"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["url"].as_str().unwrap().ends_with("/state"))
        .cloned()
        .unwrap()
}

#[test]
fn a_rollback_that_goes_live_here_under_another_id_is_published_once_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let primary = FakePrimary::start(br#"{"live": null, "notice": null, "rollback": null}"#);
    // A live corte ahead of the clock: a package whose corte time is its arrival is older.
    let replica = primary.replica(&dir.path().join("replica"), &["--corte-future-margin", ""]);
    let dated = dir.path().join("20990602_2000_PREP.zip");
    std::fs::write(&dated, site_package("20990602_2000", &[])).unwrap();
    assert_success(&replica.run(&["ingest", dated.to_str().unwrap()]));
    // No corte in its name, its CSVs or a configured JSON field: its corte time is its
    // arrival here, and it is worked out again, from the clock, when it is published.
    let undated = dir.path().join("resultados.zip");
    std::fs::write(&undated, site_package("sin fecha", &[])).unwrap();
    assert_success(&replica.run(&["ingest", undated.to_str().unwrap()]));
    let older = wait_events(&replica, "older", 1);
    let asked = older[0]["detail"]["corte"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1100));

    // The primary asks for that corte: it goes live here under the second it is published.
    let sha256 = sha256_hex(&site_package("sin fecha", &[]));
    let rolled = serde_json::json!({"live": {"corte": asked, "sha256": sha256},
                                    "notice": null, "rollback": {"seq": 2, "corte": asked}});
    primary.set_state(rolled.to_string().as_bytes());
    let errors = wait_events(&replica, "pull-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    let published = replica.live_corte().unwrap();
    assert_ne!(published, asked);
    assert!(
        error.contains(&format!("asked for corte {asked}"))
            && error.contains(&format!("made corte {published} live instead")),
        "{errors:?}"
    );
    assert_eq!(errors[0]["detail"]["fault"], "sender", "{errors:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(&replica, "rollback").len(), 1, "published again");
    assert_eq!(publications(&replica).len(), 2, "published again");
    assert_eq!(events(&replica, "pull-error").len(), 1);
    assert_eq!(replica.live_corte().as_deref(), Some(published.as_str()));
    let board = state_board(&replica);
    assert!(board["failures"].as_u64().unwrap() > 1, "{board}");
    assert!(
        board["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("asked for corte {asked}")),
        "{board}"
    );

    // The primary's state changes: the replica follows it again.
    primary.set_state(br#"{"live": null, "notice": null, "rollback": null}"#);
    wait_events(&replica, "pull-recovered", 1);
}

#[test]
fn a_replica_does_not_follow_its_primarys_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Difusión suspendida por el Instituto";
    let elsewhere = FakePrimary::start(
        serde_json::json!({"live": null, "notice": text, "rollback": null})
            .to_string()
            .as_bytes(),
    );
    let primary = FakePrimary::start(br#"{"live": null, "notice": null, "rollback": null}"#);
    let to = format!("http://{}/", elsewhere.addr);
    primary.redirect_to(&to);
    let replica = primary.replica(&dir.path().join("replica"), &[]);
    let errors = wait_events(&replica, "pull-error", 2);
    for error in &errors {
        let said = error["detail"]["error"].as_str().unwrap();
        assert!(
            said.contains("the primary answered with a redirect to http://")
                && said.contains("replica_of must name the primary's feed itself"),
            "{errors:?}"
        );
    }
    let board = state_board(&replica);
    assert!(
        board["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("redirect to {to}state")),
        "{board}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        events(&replica, "notice-on").is_empty(),
        "the notice of the address it was sent to was taken"
    );
    assert!(!curl(&replica.url("/"), &[]).text().contains(text));
}

#[test]
fn if_none_match_star_is_answered_at_once_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::write(dir.path());
    let primary = files.primary(&dir.path().join("primario"), &["--feed-hold", "20s"]);
    drop_file(
        &primary.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    primary.wait_corte("20240602_2000");
    for path in ["/state", "/packages/"] {
        let current = files.get_with_token(&primary, path, &[]);
        assert_eq!(current.status, 200, "{path}");
        let etag = current.header("etag").unwrap().to_owned();
        for star in ["*", "\"00\", *"] {
            let (r, waited) = held_request(&files, &primary, path, star).join().unwrap();
            assert_eq!(r.status, 304, "{path} {star}: {}", r.text());
            assert_eq!(r.header("etag"), Some(etag.as_str()), "{path} {star}");
            assert!(
                waited < Duration::from_secs(5),
                "{path} with If-None-Match: {star} answered after {waited:?}, not held"
            );
        }
    }
}

#[test]
fn a_replica_refuses_plain_http_to_a_primary_on_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("feed.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    // Anyone on the way would read the token and could change the notice and the rollbacks.
    let mut serve = difusor();
    serve
        .args([
            "serve",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .args(["--listen", &ReservedPort::hold().addr()])
        .args(["--admin-listen", &ReservedPort::hold().addr()])
        .args(["--replica-of", "http://192.0.2.1:9443/"])
        .args(["--pull-token-file", token.to_str().unwrap()]);
    let Some(out) = output_within(&mut serve, Duration::from_secs(10)) else {
        panic!("a replica of a plain-http primary on another machine started");
    };
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("setting `replica_of`") && said.contains("plain http"),
        "{said}"
    );
}

#[test]
fn a_primarys_notice_longer_than_any_primary_puts_in_force_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, replica) = idle_replica(dir.path());
    // A primary puts at most 16 KiB in force; one switching a longer one on and off ten
    // times a second would grow the replica's journal by megabytes a second.
    let long = "Aviso del Instituto. ".repeat(1000);
    primary.set_state(
        serde_json::json!({"live": null, "notice": long, "rollback": null})
            .to_string()
            .as_bytes(),
    );
    let errors = wait_events(&replica, "pull-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("/state") && error.contains("over the limit of 16384"),
        "{errors:?}"
    );
    assert_eq!(errors[0]["detail"]["fault"], "sender", "{errors:?}");
    assert!(events(&replica, "notice-on").is_empty(), "taken");
    assert_eq!(replica.status()["gate"]["notice"], serde_json::Value::Null);
}

/// A primary with nothing live and no notice, and its replica once it has read that state.
fn idle_replica(dir: &std::path::Path) -> (FakePrimary, Server) {
    let primary = FakePrimary::start(br#"{"live": null, "notice": null, "rollback": null}"#);
    let replica = primary.replica(&dir.join("replica"), &[]);
    wait_for_state_poll(&replica);
    (primary, replica)
}

/// Waits until `node` has read its primary's state once.
fn wait_for_state_poll(node: &Server) {
    let until = Instant::now() + Duration::from_secs(10);
    while state_board(node)["last_success"].is_null() {
        assert!(Instant::now() < until, "the state was never read");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn history_shows_a_primarys_notice_with_its_control_and_bidi_characters_made_visible() {
    let dir = tempfile::tempdir().unwrap();
    // A right-to-left override that reorders what follows on the terminal, and an 8-bit CSI.
    let text = "Aviso \u{202e}ovitca\u{202c} \u{9b}2J fin";
    let (_primary, replica, on) = replica_under_notice(dir.path(), text);
    assert_eq!(on[0]["detail"]["text"], text, "{on:?}");
    let out = replica.run(&["history"]);
    assert_success(&out);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains(['\u{202e}', '\u{202c}', '\u{9b}']),
        "printed as sent: {printed}"
    );
    assert!(
        printed.contains("Aviso \\u{202e}ovitca\\u{202c} \\u{9b}2J fin"),
        "{printed}"
    );
}

#[test]
fn a_listing_of_a_million_tiny_entries_is_cut_without_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, replica) = idle_replica(dir.path());
    let before = replica.peak_rss_kib();
    // Within the 4 MiB an index may take, but a million entries: far past the 20 000 read.
    let entries = vec!["\"a\""; 1_000_000].join(",");
    primary.set_listing(format!("[{entries}]").as_bytes());
    // The first says the token file can be read by others.
    let warnings = wait_events(&replica, "warning", 2);
    let warning = warnings
        .iter()
        .map(|w| &w["detail"])
        .find(|w| w["check"] == "feed-listing-cut")
        .unwrap_or_else(|| panic!("{warnings:?}"));
    let text = warning["warning"].as_str().unwrap();
    assert!(
        text.contains("/packages/") && text.contains("lists 1000000 entries"),
        "{warnings:?}"
    );
    let grew = replica.peak_rss_kib().saturating_sub(before);
    assert!(
        grew < 40 * 1024,
        "reading a 4 MiB listing took {grew} KiB more at its peak"
    );
}
