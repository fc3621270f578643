//! HTTPS pull (`--pull-url`) against a local HTTPS server playing the institute's service:
//! an index taken once with its evidence and conditional requests, a package replaced while
//! it is being downloaded, a server that stalls, a token and a client certificate, a package
//! over the size limit, redirects to another server and to plain http.
//!
//! The institute's server here is written on raw sockets on purpose: it must misbehave in
//! ways no ordinary server does (tear a transfer, stop mid-body).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// What the institute's server does with one path, besides serving it.
#[derive(Clone)]
enum Trick {
    /// The next GET gets the first half of the current bytes and the rest of these, and from
    /// then on these (with their sidecar) are what the path holds.
    TearInto(Vec<u8>),
    /// Every GET gets its headers and half the body, then silence.
    Stall,
    /// Every GET gets a `302 Found` to this address.
    Redirect(String),
    /// Every answer carries validators of its own (a new `ETag`, and in an index new
    /// `mtime`s), as two servers behind one address that disagree on them: never a 304.
    Restamp,
}

/// One request as the institute's server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    /// The `Authorization` header sent.
    authorization: Option<String>,
    status: u16,
}

#[derive(Default)]
struct State {
    /// Path → bytes.
    files: BTreeMap<String, Vec<u8>>,
    tricks: BTreeMap<String, Trick>,
    seen: Vec<Seen>,
    /// `Authorization` value required, if any.
    token: Option<String>,
    /// Answers given with [`Trick::Restamp`].
    restamped: u64,
}

/// The institute's HTTPS server.
struct Institute {
    addr: SocketAddr,
    /// `https`, or `http` for [`Institute::start_plain`].
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    /// Trust anchor for its certificate.
    ca_pem: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl Institute {
    /// Starts the server; with `client_auth`, it demands a client certificate from the CA.
    fn start(dir: &Path, pki: &Pki, client_auth: bool) -> Institute {
        Self::serve(dir, pki, Some(client_auth))
    }

    /// Starts the server on plain HTTP, as a careless service's other address.
    fn start_plain(dir: &Path, pki: &Pki) -> Institute {
        Self::serve(dir, pki, None)
    }

    /// Starts the server: HTTPS when `tls` says whether it demands a client certificate,
    /// plain HTTP when it is `None`.
    fn serve(dir: &Path, pki: &Pki, tls: Option<bool>) -> Institute {
        let client_auth = tls.unwrap_or(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(pki.server.0.clone(), pki.server.1.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    if tls.is_none() {
                        connection(tcp, state).await;
                    } else if let Ok(tls) = acceptor.accept(tcp).await {
                        connection(tls, state).await;
                    }
                });
            }
        });
        let ca_pem = dir.join("institute-ca.pem");
        std::fs::write(&ca_pem, &pki.ca_pem).unwrap();
        Institute {
            addr,
            scheme: if tls.is_some() { "https" } else { "http" },
            state,
            ca_pem,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.addr.port())
    }

    /// Puts a package and its sidecar at `dir/name`.
    fn publish(&self, dir: &str, name: &str, bytes: &[u8]) {
        let mut s = self.state.lock().unwrap();
        s.files.insert(format!("{dir}{name}"), bytes.to_vec());
        s.files.insert(
            format!("{dir}{name}.sha256"),
            corpus::sum_line(bytes, name).into_bytes(),
        );
    }

    fn trick(&self, path: &str, trick: Option<Trick>) {
        let mut s = self.state.lock().unwrap();
        match trick {
            Some(t) => s.tricks.insert(path.to_owned(), t),
            None => s.tricks.remove(path),
        };
    }

    /// The requests for `path` so far.
    fn seen(&self, path: &str) -> Vec<Seen> {
        let s = self.state.lock().unwrap();
        s.seen.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` was requested `n` times.
    fn wait_seen(&self, path: &str, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.seen(path);
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{path} requested {} times, {n} expected",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Serves requests on one connection until it closes.
async fn connection<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    state: Arc<Mutex<State>>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
            .to_owned();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let if_none_match = header("if-none-match");
        let authorization = header("authorization");
        let (status, headers, body, trick) =
            answer(&state, &path, authorization.clone(), &if_none_match);
        state.lock().unwrap().seen.push(Seen {
            path: path.clone(),
            if_none_match,
            authorization,
            status,
        });
        let reason = match status {
            200 => "OK",
            302 => "Found",
            304 => "Not Modified",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (n, v) in &headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if status != 304 {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        if stream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        match trick {
            Some(Trick::Stall) => {
                let _ = stream.write_all(&body[..body.len() / 2]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            _ => {
                if stream.write_all(&body).await.is_err() {
                    return;
                }
            }
        }
        let _ = stream.flush().await;
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>, Option<Trick>);

/// What the institute answers for `path`.
fn answer(
    state: &Mutex<State>,
    path: &str,
    authorization: Option<String>,
    if_none_match: &Option<String>,
) -> Answer {
    let mut s = state.lock().unwrap();
    if s.token.is_some() && s.token != authorization {
        return (401, vec![], b"token required".to_vec(), None);
    }
    if let Some(Trick::Redirect(to)) = s.tricks.get(path) {
        return (302, vec![("Location".to_owned(), to.clone())], vec![], None);
    }
    let stamp = match s.tricks.get(path) {
        Some(Trick::Restamp) => {
            s.restamped += 1;
            s.restamped
        }
        _ => 0,
    };
    let mtime = format!(
        "Sun, 06 Jun 2027 20:{:02}:{:02} GMT",
        stamp / 60 % 60,
        stamp % 60
    );
    let (body, content_type) = if path.ends_with('/') && !s.files.contains_key(path) {
        // nginx's `autoindex_format json`, unless an index of its own is put there.
        let entries: Vec<serde_json::Value> = s
            .files
            .iter()
            .filter_map(|(p, b)| {
                let name = p.strip_prefix(path)?;
                (!name.contains('/')).then(|| {
                    serde_json::json!({"name": name, "type": "file",
                        "mtime": mtime, "size": b.len()})
                })
            })
            .collect();
        (
            serde_json::to_vec(&entries).unwrap(),
            "application/json".to_owned(),
        )
    } else {
        match s.files.get(path) {
            Some(b) => (b.clone(), "application/octet-stream".to_owned()),
            None => return (404, vec![], b"no".to_vec(), None),
        }
    };
    let etag = match stamp {
        0 => format!("\"{}\"", sha256_hex(&body)),
        n => format!("\"{}-{n}\"", sha256_hex(&body)),
    };
    let mut headers = vec![
        ("ETag".to_owned(), etag.clone()),
        ("Content-Type".to_owned(), content_type),
    ];
    let trick = s.tricks.get(path).cloned();
    if trick.is_none() && if_none_match.as_deref() == Some(etag.as_str()) {
        return (304, headers, vec![], None);
    }
    match trick {
        Some(Trick::TearInto(new)) => {
            let half = body.len().min(new.len()) / 2;
            let mut torn = body[..half].to_vec();
            torn.extend_from_slice(&new[half..]);
            s.tricks.remove(path);
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            s.files.insert(
                format!("{path}.sha256"),
                corpus::sum_line(&new, &name).into_bytes(),
            );
            s.files.insert(path.to_owned(), new);
            headers.retain(|(n, _)| n != "ETag");
            (200, headers, torn, None)
        }
        trick => (200, headers, body, trick),
    }
}

/// A site package for corte `stamp` with a large file of random bytes seeded by `filler`, so
/// that it does not compress and halves of two versions differ.
fn package(stamp: &str, filler: u8) -> Vec<u8> {
    let big = relleno(filler);
    site_package(stamp, &[("img/relleno.bin", &big)])
}

/// The large file of [`package`] for `filler`.
fn relleno(filler: u8) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(u64::from(filler));
    std::iter::repeat_with(|| rng.u8(..))
        .take(256 * 1024)
        .collect()
}

fn pull_args<'a>(institute: &'a Institute, url: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--pull-url",
        url,
        "--pull-ca",
        institute.ca_pem.to_str().unwrap(),
        "--pull-interval",
        "200ms",
        "--pull-max-backoff",
        "400ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn start_puller(data: &Path, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

/// The pull's leftovers in the temporary folder.
fn leftovers(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".pull-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_index_is_pulled_once_in_order_with_its_evidence_and_then_costs_only_a_304() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let (p1, p2, p3) = (
        "20270606_2000_PREP_SITIO_CAMP.zip",
        "20270606_2015_PREP_SITIO_CAMP.zip",
        "20270606_2030_PREP_SITIO_CAMP.zip",
    );
    let (b1, b2) = (package("20270606_2000", 1), package("20270606_2015", 2));
    institute.publish("/prep/", p1, &b1);
    institute.publish("/prep/", p2, &b2);
    // Not a package of this index: ignored, never requested.
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert("/prep/.oculto.zip".to_owned(), b"x".to_vec());
    let data = dir.path().join("data");
    let url = institute.url("/prep/");
    let args = pull_args(&institute, &url, &["--evidence-sidecar", "required"]);
    let mut server = start_puller(&data, &args);
    server.wait_corte("20270606_2015");

    // Later polls ask "changed?" and get 304s; each package was downloaded once.
    let index = institute.wait_seen("/prep/", 4);
    assert!(
        index[1..]
            .iter()
            .all(|r| r.if_none_match.is_some() && r.status == 304),
        "{index:?}"
    );
    assert_eq!(institute.seen(&format!("/prep/{p1}")).len(), 1);
    assert_eq!(institute.seen(&format!("/prep/{p2}")).len(), 1);
    assert!(institute.seen("/prep/.oculto.zip").is_empty());
    let mut received = events(&server, "received");
    received.sort_by_key(|e| e["id"].as_i64());
    assert_eq!(received.len(), 2, "{received:?}");
    let names: Vec<&str> = received.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, [p1, p2], "taken in the order of cortes");
    for (e, p) in received.iter().zip([p1, p2]) {
        assert_eq!(e["detail"]["channel"], "pull");
        assert_eq!(
            e["detail"]["origin"],
            format!("{url}{p}"),
            "where it came from"
        );
    }
    for e in events(&server, "verified") {
        assert!(
            e.to_string().contains("matches the .sha256"),
            "sidecar checked: {e}"
        );
    }

    // A new corte appears in the index: taken, the live corte moves on.
    let third = package("20270606_2030", 3);
    institute.publish("/prep/", p3, &third);
    server.wait_corte("20270606_2030");
    let served = curl(&server.url("/img/relleno.bin"), &[]);
    assert_eq!(served.status, 200);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    // Each kept byte for byte under the SHA-256 of what was served.
    for bytes in [&b1, &b2, &third] {
        let sha = sha256_hex(bytes);
        let archived = data.join("archivo").join(&sha[..2]).join(&sha);
        assert!(
            std::fs::read(&archived).unwrap() == *bytes,
            "{} holds other bytes than were served",
            archived.display()
        );
    }

    // After a restart nothing is downloaded again: the sidecars name digests the journal knows.
    server.restart();
    let before = institute.seen("/prep/").len();
    institute.wait_seen("/prep/", before + 3);
    for p in [p1, p2, p3] {
        assert_eq!(institute.seen(&format!("/prep/{p}")).len(), 1, "{p}");
    }
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2030"));
    assert!(events(&server, "pull-error").is_empty());
}

#[test]
fn a_package_replaced_while_it_is_downloaded_is_fetched_again_and_never_handed_over_torn() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    let path = format!("/prep/ultimo/{name}");
    let (old, new) = (package("20270606_2000", 1), package("20270606_2000", 9));
    institute.publish("/prep/ultimo/", name, &old);
    institute.trick(&path, Some(Trick::TearInto(new.clone())));
    let data = dir.path().join("data");
    let url = institute.url(&path);
    let server = start_puller(
        &data,
        &pull_args(&institute, &url, &["--evidence-sidecar", "required"]),
    );
    server.wait_corte("20270606_2000");

    // The torn copy matched no sidecar; the second download, the new version, went live.
    assert!(institute.seen(&path).len() >= 2);
    let served = curl(&server.url("/img/relleno.bin"), &[]);
    assert_eq!(sha256_hex(&served.body), sha256_hex(&relleno(9)));
    let received = events(&server, "received");
    assert_eq!(received.len(), 1, "only the whole package: {received:?}");
    assert!(received[0].to_string().contains(&sha256_hex(&new)));
    assert!(events(&server, "rejected").is_empty());
    // The single-package address is then polled conditionally.
    let seen = institute.wait_seen(&path, 4);
    assert!(seen.last().unwrap().if_none_match.is_some(), "{seen:?}");
    assert_eq!(seen.last().unwrap().status, 304);
}

#[test]
fn a_stalling_server_is_abandoned_journaled_once_and_pulled_from_when_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    let path = format!("/prep/{name}");
    institute.publish("/prep/", name, &package("20270606_2000", 4));
    institute.trick(&path, Some(Trick::Stall));
    let data = dir.path().join("data");
    let url = institute.url(&path);
    let server = start_puller(
        &data,
        &pull_args(&institute, &url, &["--pull-stall-timeout", "700ms"]),
    );

    // Several stalled attempts, one journal entry saying why.
    institute.wait_seen(&path, 3);
    let errors = wait_events(&server, "pull-error", 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].to_string();
    assert!(text.contains("no answer in time"), "{text}");
    assert!(text.contains(&url), "{text}");
    assert_eq!(server.live_corte(), None);
    // Operators see it on the admin listener.
    let status = server.wait_status("the pull failing", |s| {
        s["pull"][0]["failures"].as_u64().unwrap_or(0) >= 1
    });
    let pull = &status["pull"][0];
    assert_eq!(pull["url"], url.as_str());
    assert!(pull["failing_since"].is_string(), "{pull}");
    assert!(
        pull["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer in time"),
        "{pull}"
    );
    assert_eq!(pull["packages_handed_over"], 0);
    let page = curl(&server.admin("/"), &[]).text();
    assert!(
        page.contains(&format!("Pulling {url} fails since")),
        "the status page says so: {page}"
    );
    let metrics = curl(&server.admin("/metrics"), &[]).text();
    assert!(
        metrics.contains(&format!(
            "difusor_pull_consecutive_failures{{url=\"{url}\"}}"
        )),
        "{metrics}"
    );

    institute.trick(&path, None);
    server.wait_corte("20270606_2000");
    let status = server.wait_status("the pull working", |s| s["pull"][0]["failures"] == 0);
    let pull = &status["pull"][0];
    assert_eq!(pull["packages_handed_over"], 1, "{pull}");
    assert!(
        pull["last_error"].is_null() && pull["failing_since"].is_null(),
        "{pull}"
    );
    assert!(pull["last_success"].is_string(), "{pull}");
    let recovered = wait_events(&server, "pull-recovered", 1);
    assert!(recovered[0]["detail"]["failures"].as_u64().unwrap() >= 3);
    assert_eq!(events(&server, "pull-error").len(), 1);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
}

#[test]
fn a_token_and_a_client_certificate_are_sent_and_a_missing_token_is_journaled_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let institute = Institute::start(dir.path(), &pki, true);
    institute.state.lock().unwrap().token = Some("Bearer s3creto".to_owned());
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    institute.publish("/prep/", name, &package("20270606_2000", 5));
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert, &pki.client_pem.0).unwrap();
    std::fs::write(&key, &pki.client_pem.1).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3creto\n").unwrap();
    let url = institute.url("/prep/");
    let identity = [
        "--pull-client-cert",
        cert.to_str().unwrap(),
        "--pull-client-key",
        key.to_str().unwrap(),
    ];

    // Certificate without the token: the service says 401, journaled once with what to check.
    let mut without = start_puller(
        &dir.path().join("a"),
        &pull_args(&institute, &url, &identity),
    );
    let errors = wait_events(&without, "pull-error", 1);
    assert!(errors[0].to_string().contains("401"), "{errors:?}");
    assert!(errors[0].to_string().contains("pull_token_file"));
    without.stop();

    // Token without the certificate: the TLS handshake is refused.
    let only_token = ["--pull-token-file", token.to_str().unwrap()];
    let mut no_cert = start_puller(
        &dir.path().join("b"),
        &pull_args(&institute, &url, &only_token),
    );
    wait_events(&no_cert, "pull-error", 1);
    assert_eq!(no_cert.live_corte(), None);
    no_cert.stop();

    let mut both = identity.to_vec();
    both.extend(only_token);
    let server = start_puller(&dir.path().join("c"), &pull_args(&institute, &url, &both));
    server.wait_corte("20270606_2000");
    assert!(events(&server, "pull-error").is_empty());
}

#[test]
fn a_package_over_the_size_limit_is_not_downloaded_and_the_reason_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    institute.publish(
        "/prep/",
        "20270606_2000_PREP_SITIO_CAMP.zip",
        &package("20270606_2000", 6),
    );
    let url = institute.url("/prep/");
    let data = dir.path().join("data");
    let server = start_puller(
        &data,
        &pull_args(&institute, &url, &["--max-package-bytes", "64KiB"]),
    );
    let errors = wait_events(&server, "pull-error", 1);
    let text = errors[0].to_string();
    assert!(text.contains("max_package_bytes"), "{text}");
    assert!(events(&server, "received").is_empty());
    assert!(leftovers(&data).is_empty());
}

#[test]
fn a_package_this_machine_fails_to_take_is_pulled_again_at_the_next_poll_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    let bytes = package("20270606_2000", 7);
    institute.publish("/prep/", name, &bytes);
    let url = institute.url("/prep/");
    let data = dir.path().join("data");
    let broken = break_archive_for(&data, &bytes);
    let mut server = start_puller(&data, &pull_args(&institute, &url, &[]));

    // Our fault, journaled as ours, never as a rejection; not taken, so fetched again at the
    // next polls although the journal has seen its digest.
    let errors = wait_events(&server, "intake-error", 1);
    assert_eq!(errors[0]["detail"]["fault"], "ours", "{errors:?}");
    assert_eq!(errors[0]["detail"]["channel"], "pull", "{errors:?}");
    institute.wait_seen(&format!("/prep/{name}"), 3);
    assert_eq!(events(&server, "pull-error")[0]["detail"]["fault"], "ours");
    assert!(events(&server, "rejected").is_empty());
    assert!(server.live_corte().is_none());

    // Repaired while the server is down: the next start takes it.
    server.stop();
    std::fs::remove_dir(&broken).unwrap();
    server.restart();
    server.wait_corte("20270606_2000");
    assert!(events(&server, "rejected").is_empty());
}

#[test]
fn pull_settings_that_cannot_work_stop_the_server_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3creto\n").unwrap();
    for (args, expected) in [
        (vec!["--pull-url", "ftp://instituto.mx/prep/"], "pull_url"),
        (
            vec!["--pull-url", "https://instituto.mx/prep/?k=1"],
            "pull_token_file",
        ),
        (
            vec![
                "--pull-url",
                "https://instituto.mx/prep/",
                "--pull-client-cert",
                "c.pem",
            ],
            "pull_client_key",
        ),
        (
            vec![
                "--pull-url",
                "https://instituto.mx/",
                "--pull-token-file",
                "/no/such/file",
            ],
            "pull_token_file",
        ),
        // A token that would travel in the clear to another machine.
        (
            vec![
                "--pull-url",
                "http://instituto.mx/prep/",
                "--pull-token-file",
                token.to_str().unwrap(),
            ],
            "pull_token_file",
        ),
        (
            vec![
                "--pull-url",
                "https://instituto.mx/",
                "--pull-interval",
                "0s",
            ],
            "pull_interval",
        ),
    ] {
        let out = output_within(
            difusor()
                .arg("serve")
                .args(["--data-dir", dir.path().to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(&args),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("{args:?} was accepted: the server kept running"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_latest_alias_is_pulled_under_the_name_its_sidecar_gives_with_that_corte_time() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let real = "20270606_2045_PREP_SITIO_CAMP.zip";
    // The site's own JSON names another corte: the name the sidecar gives must win.
    let bytes = package("20270606_2000", 7);
    {
        let mut s = institute.state.lock().unwrap();
        s.files.insert("/prep/ultimo.zip".to_owned(), bytes.clone());
        s.files.insert(
            "/prep/ultimo.zip.sha256".to_owned(),
            corpus::sum_line(&bytes, real).into_bytes(),
        );
    }
    let data = dir.path().join("data");
    let url = institute.url("/prep/ultimo.zip");
    let server = start_puller(
        &data,
        &pull_args(&institute, &url, &["--evidence-sidecar", "required"]),
    );
    server.wait_corte("20270606_2045");
    let received = events(&server, "received");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["name"], real);
    assert_eq!(received[0]["detail"]["origin"], url.as_str());
    assert!(events(&server, "rejected").is_empty());
}

/// Three cortes' site packages, in the order of their times.
const THREE: [&str; 3] = [
    "20270606_2000_PREP_SITIO_CAMP.zip",
    "20270606_2015_PREP_SITIO_CAMP.zip",
    "20270606_2030_PREP_SITIO_CAMP.zip",
];

/// Publishes `names` in the index `/prep/`, each a site package of the corte its name starts
/// with.
fn publish_all(institute: &Institute, names: &[&str]) {
    for (i, p) in names.iter().enumerate() {
        institute.publish("/prep/", p, &package(&p[..13], i as u8 + 1));
    }
}

#[test]
fn an_index_whose_service_stalls_is_left_at_the_second_stall_not_once_per_package() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let names = THREE;
    publish_all(&institute, &names);
    for p in names {
        institute.trick(&format!("/prep/{p}"), Some(Trick::Stall));
    }
    let url = institute.url("/prep/");
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &url, &["--pull-stall-timeout", "500ms"]),
    );
    // Each poll is left at its second package in a row the service does not deliver.
    institute.wait_seen("/prep/", 4);
    let seen = institute.state.lock().unwrap().seen.clone();
    let polls: Vec<Vec<&str>> = seen
        .split(|r| r.path == "/prep/")
        .skip(1)
        .map(|poll| {
            poll.iter()
                .filter(|r| r.path.ends_with(".zip"))
                .map(|r| r.path.trim_start_matches("/prep/"))
                .collect()
        })
        .collect();
    assert_eq!(polls[0], names[..2], "{polls:?}");
    assert!(
        polls.iter().all(|p| p.len() <= 2),
        "a poll went on past two stalls in a row: {polls:?}"
    );
    assert_eq!(wait_events(&server, "pull-error", 1).len(), 1);

    // Once it answers again, all come (those not reached at the last poll first).
    for p in names {
        institute.trick(&format!("/prep/{p}"), None);
    }
    server.wait_corte("20270606_2030");
    assert_eq!(wait_events(&server, "received", 3).len(), 3);
}

/// Two packages at the head of an index whose downloads never come (a careless service that
/// breaks on those two files for the rest of the night) hold back none listed after them:
/// the next poll starts with the packages the last one did not reach.
#[test]
fn two_packages_whose_downloads_never_come_hold_back_none_listed_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let names = THREE;
    publish_all(&institute, &names);
    for p in &names[..2] {
        institute.trick(&format!("/prep/{p}"), Some(Trick::Stall));
    }
    let url = institute.url("/prep/");
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &url, &["--pull-stall-timeout", "500ms"]),
    );
    server.wait_corte("20270606_2030");
    // The two are still asked for at later polls, and journaled once.
    for p in &names[..2] {
        institute.wait_seen(&format!("/prep/{p}"), 2);
    }
    assert_eq!(events(&server, "received").len(), 1);
    assert_eq!(events(&server, "pull-error").len(), 1);
}

#[test]
fn one_package_whose_download_always_stalls_holds_back_none_listed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let (p1, p2) = (
        "20270606_2000_PREP_SITIO_CAMP.zip",
        "20270606_2015_PREP_SITIO_CAMP.zip",
    );
    institute.publish("/prep/", p1, &package("20270606_2000", 1));
    institute.publish("/prep/", p2, &package("20270606_2015", 2));
    institute.trick(&format!("/prep/{p1}"), Some(Trick::Stall));
    let url = institute.url("/prep/");
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &url, &["--pull-stall-timeout", "500ms"]),
    );
    // The package after the broken one goes live, and the broken one is journaled.
    server.wait_corte("20270606_2015");
    let errors = wait_events(&server, "pull-error", 1);
    assert!(
        errors[0].to_string().contains(p1),
        "the pull-error names another package: {}",
        errors[0]
    );
    // It is tried again at the next poll, and taken once it is delivered.
    institute.wait_seen(&format!("/prep/{p1}"), 2);
    institute.trick(&format!("/prep/{p1}"), None);
    wait_events(&server, "pull-recovered", 1);
    assert_eq!(events(&server, "received").len(), 2);
    server.wait_corte("20270606_2015");
}

#[test]
fn a_latest_address_changed_before_its_sidecar_is_not_skipped_for_the_package_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let (p1, p2) = (
        "20270606_2000_PREP_SITIO_CAMP.zip",
        "20270606_2015_PREP_SITIO_CAMP.zip",
    );
    let (b1, b2) = (package("20270606_2000", 1), package("20270606_2015", 2));
    let put = |path: &str, bytes: Vec<u8>| {
        institute
            .state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), bytes);
    };
    put("/prep/ultimo.zip", b1.clone());
    put(
        "/prep/ultimo.zip.sha256",
        corpus::sum_line(&b1, p1).into_bytes(),
    );
    let url = institute.url("/prep/ultimo.zip");
    let server = start_puller(&dir.path().join("data"), &pull_args(&institute, &url, &[]));
    server.wait_corte("20270606_2000");

    // The institute replaces the package; its sidecar, still naming the corte before, follows
    // later. The new bytes are read and checked, never skipped for the digest the sidecar
    // names, and what they are is journaled while the two disagree.
    let before = institute.seen("/prep/ultimo.zip").len();
    put("/prep/ultimo.zip", b2.clone());
    institute.wait_seen("/prep/ultimo.zip", before + 4);
    let errors = wait_events(&server, "pull-error", 1);
    assert!(
        errors[0].to_string().contains("never matched its .sha256"),
        "{errors:?}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2000"));

    // Once the sidecar names it, the new corte goes live.
    put(
        "/prep/ultimo.zip.sha256",
        corpus::sum_line(&b2, p2).into_bytes(),
    );
    server.wait_corte("20270606_2015");
    assert_eq!(events(&server, "received").len(), 2);
    assert!(events(&server, "rejected").is_empty());
}

/// A service that never answers 304 (two servers behind one address that disagree on the
/// `ETag`, an index whose times change at every look): what it serves is downloaded again,
/// but the same bytes are never handed over again, so the journal does not grow at every poll.
#[test]
fn bytes_served_again_under_new_validators_are_not_taken_again_at_every_poll() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let (p1, p2) = (
        "20270606_2000_PREP_SITIO_CAMP.zip",
        "20270606_2015_PREP_SITIO_CAMP.zip",
    );
    // A "latest" address, with its sidecar, and an index listing a package without one.
    let latest = format!("/prep/ultimo/{p1}");
    institute.publish("/prep/ultimo/", p1, &package("20270606_2000", 1));
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert(format!("/indice/{p2}"), package("20270606_2015", 2));
    institute.trick(&latest, Some(Trick::Restamp));
    institute.trick("/indice/", Some(Trick::Restamp));
    let index = institute.url("/indice/");
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &institute.url(&latest), &["--pull-url", &index]),
    );
    server.wait_corte("20270606_2015");
    wait_events(&server, "received", 2);

    // Many polls of both later, each package was taken once.
    let seen = |path: &str| institute.seen(path).len();
    let (before_latest, before_index) = (seen(&latest), seen("/indice/"));
    institute.wait_seen(&latest, before_latest + 10);
    institute.wait_seen("/indice/", before_index + 10);
    assert!(seen(&format!("/indice/{p2}")) > 2, "not downloaded again");
    let received = events(&server, "received");
    let names: Vec<&str> = received.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "taken again at later polls: {names:?}");
    assert!(events(&server, "duplicate").is_empty());
    assert!(events(&server, "pull-error").is_empty());
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2015"));
}

#[test]
fn a_new_index_entry_with_a_sidecar_copied_from_another_package_is_downloaded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let (p1, p2) = (
        "20270606_2000_PREP_SITIO_CAMP.zip",
        "20270606_2015_PREP_SITIO_CAMP.zip",
    );
    let (b1, b2) = (package("20270606_2000", 1), package("20270606_2015", 2));
    institute.publish("/prep/", p1, &b1);
    let url = institute.url("/prep/");
    let server = start_puller(&dir.path().join("data"), &pull_args(&institute, &url, &[]));
    server.wait_corte("20270606_2000");

    // The second corte is listed with the first one's digest as its sidecar.
    let sidecar = |bytes: &[u8]| sha256_hex(bytes).into_bytes();
    {
        let mut s = institute.state.lock().unwrap();
        s.files.insert(format!("/prep/{p2}"), b2.clone());
        s.files.insert(format!("/prep/{p2}.sha256"), sidecar(&b1));
    }
    institute.wait_seen(&format!("/prep/{p2}"), 2);
    let errors = wait_events(&server, "pull-error", 1);
    assert!(errors[0].to_string().contains(p2), "{errors:?}");
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2000"));

    // Mended, it is taken at the next poll.
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert(format!("/prep/{p2}.sha256"), sidecar(&b2));
    server.wait_corte("20270606_2015");
    assert!(events(&server, "rejected").is_empty());
}

/// A `.sha256` larger than any evidence may be has its package refused for it, named and
/// journaled, as the intake folder and `ingest` refuse it, instead of failing the address at
/// every poll.
#[test]
fn a_sidecar_too_large_to_be_evidence_refuses_its_package_when_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    institute.publish("/prep/", name, &package("20270606_2000", 7));
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert(format!("/prep/{name}.sha256"), vec![b'x'; 70_000]);
    let url = institute.url("/prep/");
    let data = dir.path().join("data");
    let server = start_puller(&data, &pull_args(&institute, &url, &[]));
    let rejected = wait_events(&server, "rejected", 1);
    let why = rejected[0].to_string();
    assert!(why.contains(name), "{why}");
    assert!(why.contains("the .sha256 file is too large"), "{why}");
    assert!(events(&server, "pull-error").is_empty());
    assert_eq!(server.live_corte(), None);
    assert!(leftovers(&data).is_empty());
}

/// A "latest" address the institute redirects to another server (a CDN): the token goes to
/// the institute's own server only, never to the other one, neither with the redirect nor with
/// the evidence and downloads asked at the address the redirect ended at.
#[test]
fn the_token_goes_only_to_the_institutes_server_never_to_one_a_redirect_leads_to() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let institute = Institute::start(dir.path(), &pki, false);
    let cdn = Institute::start(dir.path(), &pki, false);
    institute.state.lock().unwrap().token = Some("Bearer s3creto".to_owned());
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    cdn.publish("/cdn/", name, &package("20270606_2000", 8));
    let to = cdn.url(&format!("/cdn/{name}"));
    institute.trick("/prep/ultimo.zip", Some(Trick::Redirect(to)));
    let token = dir.path().join("token");
    std::fs::write(&token, "s3creto\n").unwrap();
    let url = institute.url("/prep/ultimo.zip");
    let extra = [
        "--pull-token-file",
        token.to_str().unwrap(),
        "--evidence-sidecar",
        "required",
    ];
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &url, &extra),
    );
    server.wait_corte("20270606_2000");

    // The institute's own server is sent the token; the other server never is: not for the
    // package, nor for its .sha256 and .minisig beside it there.
    let asked = institute.seen("/prep/ultimo.zip");
    assert!(
        asked
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer s3creto")),
        "{asked:?}"
    );
    let seen = cdn.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter().any(|r| r.path == format!("/cdn/{name}.sha256")),
        "{seen:?}"
    );
    let leaked: Vec<&Seen> = seen.iter().filter(|r| r.authorization.is_some()).collect();
    assert!(
        leaked.is_empty(),
        "the token went to a server pull_url does not name: {leaked:?}"
    );
    assert!(events(&server, "pull-error").is_empty());

    // Should that server want a token, the journal says why none was sent.
    cdn.state.lock().unwrap().token = Some("Bearer s3creto".to_owned());
    let errors = wait_events(&server, "pull-error", 1);
    let text = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        text.contains("401") && text.contains("was not sent"),
        "{text}"
    );
}

/// A careless service whose https:// address redirects to http:// (a proxy ending TLS in
/// front of a server that writes its own address): not followed, also when another `pull_url`
/// is plain http, and journaled as the service's fault with where it pointed.
#[test]
fn an_https_address_redirected_to_plain_http_is_not_followed_even_beside_a_plain_pull_url() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let institute = Institute::start(dir.path(), &pki, false);
    let plain = Institute::start_plain(dir.path(), &pki);
    let name = "20270606_2000_PREP_SITIO_CAMP.zip";
    plain.publish("/prep/", name, &package("20270606_2000", 9));
    let to = plain.url(&format!("/prep/{name}"));
    institute.trick("/prep/ultimo.zip", Some(Trick::Redirect(to.clone())));
    let url = institute.url("/prep/ultimo.zip");
    // A plain http mirror inside the institute's network, listing nothing yet.
    let mirror = plain.url("/espejo/");
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &url, &["--pull-url", &mirror]),
    );
    institute.wait_seen("/prep/ultimo.zip", 2);
    plain.wait_seen("/espejo/", 1);
    assert!(
        plain.seen(&format!("/prep/{name}")).is_empty(),
        "an https:// pull_url was followed to {to}"
    );
    let errors = wait_events(&server, "pull-error", 1);
    let error = errors
        .iter()
        .find(|e| e["detail"]["url"] == url.as_str())
        .unwrap_or_else(|| panic!("no pull-error for {url}: {errors:?}"));
    let text = error["detail"]["error"].as_str().unwrap();
    assert!(text.contains(&to) && text.contains("not https"), "{text}");
    assert_eq!(error["detail"]["fault"], "sender", "{error}");
    assert_eq!(server.live_corte(), None);
}

#[test]
fn a_download_that_would_take_the_space_kept_free_is_stopped_journaled_and_fetched_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    institute.publish(
        "/prep/",
        "20270606_2000_PREP_SITIO_CAMP.zip",
        &package("20270606_2000", 8),
    );
    let url = institute.url("/prep/");
    let data = dir.path().join("data");
    let mut server = start_puller(&data, &pull_args(&institute, &url, &[]));
    server.wait_corte("20270606_2000");

    // A reserve larger than any disk: the next package is not downloaded, as this server's
    // fault, and the live corte stays.
    server
        .extra
        .extend(["--min-free-space".into(), "1000TiB".into()]);
    server.restart();
    institute.publish(
        "/prep/",
        "20270606_2015_PREP_SITIO_CAMP.zip",
        &package("20270606_2015", 9),
    );
    let errors = wait_events(&server, "pull-error", 1);
    let detail = &errors[0]["detail"];
    assert_eq!(detail["fault"], "ours", "{detail}");
    assert!(
        detail["error"].as_str().unwrap().contains("min_free_space"),
        "{detail}"
    );
    assert_eq!(events(&server, "received").len(), 1);
    assert!(leftovers(&data).is_empty());
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2000"));

    // Without it, the next poll takes it.
    server.extra.truncate(server.extra.len() - 2);
    server.restart();
    server.wait_corte("20270606_2015");
}

/// A careless or hostile service whose address redirects to what is no web address at all
/// (`file:` on this machine, `ftp:`): not followed, and journaled as the service's fault
/// saying where it pointed, not only its status.
#[test]
fn a_redirect_to_no_web_address_is_not_followed_and_says_where_it_pointed() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start_plain(dir.path(), &pki());
    let targets = ["file:///etc/passwd", "ftp://prep.example/ultimo.zip"];
    let urls: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, to)| {
            let path = format!("/prep/ultimo-{i}.zip");
            institute.trick(&path, Some(Trick::Redirect((*to).to_owned())));
            institute.url(&path)
        })
        .collect();
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &urls[0], &["--pull-url", &urls[1]]),
    );
    let errors = wait_events(&server, "pull-error", targets.len());
    for to in targets {
        let error = errors
            .iter()
            .find(|e| {
                e["detail"]["error"]
                    .as_str()
                    .is_some_and(|t| t.contains(to))
            })
            .unwrap_or_else(|| panic!("no pull-error says it pointed to {to}: {errors:#?}"));
        assert!(
            error["detail"]["error"]
                .as_str()
                .is_some_and(|t| t.contains("not an http:// or https:// address")),
            "{error}"
        );
        assert_eq!(error["detail"]["fault"], "sender", "{error}");
    }
    assert_eq!(server.live_corte(), None);
}

/// A package of an index that never matches its `.sha256` (the institute's mistake) waits a
/// time of its own before it is fetched again, doubling; the index is still read every
/// `pull_interval`, so a corte listed after it goes live at once, not once the back-off of a
/// failing URL has run out. Its sidecar mended, it is taken at its next look.
#[test]
fn a_package_that_fails_for_itself_delays_no_corte_listed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let bad = "20270606_2000_PREP_SITIO_CAMP.zip";
    let bytes = package("20270606_2000", 1);
    institute.publish("/prep/", bad, &bytes);
    let wrong = corpus::sum_line(&package("20270606_2000", 2), bad);
    let sidecar = format!("/prep/{bad}.sha256");
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert(sidecar.clone(), wrong.into_bytes());
    let url = institute.url("/prep/");
    let data = dir.path().join("data");
    let mut args = pull_args(&institute, &url, &[]);
    let at = args.iter().position(|a| a == "--pull-max-backoff").unwrap();
    args[at + 1] = "30s".to_owned();
    let server = start_puller(&data, &args);
    let errors = wait_events(&server, "pull-error", 1);
    assert!(
        errors[0].to_string().contains("never matched"),
        "{errors:?}"
    );

    // Eight seconds of it: a failing URL's back-off would have reached 6.4 s by then.
    let index_before = institute.seen("/prep/").len();
    std::thread::sleep(Duration::from_secs(8));
    let index_reads = institute.seen("/prep/").len() - index_before;
    let downloads = institute.seen(&format!("/prep/{bad}")).len();
    assert!(
        index_reads >= 15,
        "the index was read {index_reads} times in 8 s at a pull_interval of 200 ms"
    );
    // Waits of 0.4, 0.8, 1.6, 3.2 and 6.4 s: at most 6 looks of 3 downloads each.
    assert!(downloads <= 18, "{bad} downloaded {downloads} times in 8 s");
    // Operators see why, naming the package once, and when it is fetched again.
    let status = server.wait_status("the package's wait on /status", |s| {
        s["pull"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("fetched again in"))
    });
    let said = status["pull"][0]["last_error"].as_str().unwrap();
    assert_eq!(said.matches(bad).count(), 1, "{said}");
    assert!(said.contains("never matched its .sha256"), "{said}");

    institute.publish(
        "/prep/",
        "20270606_2030_PREP_SITIO_CAMP.zip",
        &package("20270606_2030", 3),
    );
    let listed = Instant::now();
    server.wait_corte("20270606_2030");
    assert!(
        listed.elapsed() < Duration::from_secs(5),
        "the corte listed after it went live {:?} after it was listed",
        listed.elapsed()
    );
    assert!(events(&server, "pull-recovered").is_empty());

    // The institute mends the sidecar: taken at its next look, as the older corte it is, and
    // the URL works again.
    institute.publish("/prep/", bad, &bytes);
    wait_events(&server, "pull-recovered", 1);
    assert_eq!(events(&server, "received").len(), 2);
    assert_eq!(events(&server, "pull-error").len(), 1);
}

/// Once an index's service itself fails (here, a redirect to no web address), its polls back
/// off again, even right after polls that failed only for a package of its own: the index's
/// own failure is never taken for the package's.
#[test]
fn an_index_that_fails_itself_after_a_package_failed_backs_off_again() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let bad = "20270606_2000_PREP_SITIO_CAMP.zip";
    institute.publish("/prep/", bad, &package("20270606_2000", 1));
    let wrong = corpus::sum_line(&package("20270606_2000", 2), bad);
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert(format!("/prep/{bad}.sha256"), wrong.into_bytes());
    let url = institute.url("/prep/");
    let mut args = pull_args(&institute, &url, &[]);
    let at = args.iter().position(|a| a == "--pull-max-backoff").unwrap();
    args[at + 1] = "30s".to_owned();
    let server = start_puller(&dir.path().join("data"), &args);
    wait_events(&server, "pull-error", 1);
    institute.wait_seen("/prep/", 5);

    institute.trick(
        "/prep/",
        Some(Trick::Redirect("file:///etc/passwd".to_owned())),
    );
    // Whatever poll is under way ends; from then on, waits of 0.4 s and more, doubling.
    std::thread::sleep(Duration::from_millis(500));
    let before = institute.seen("/prep/").len();
    std::thread::sleep(Duration::from_secs(3));
    let polls = institute.seen("/prep/").len() - before;
    assert!(
        polls <= 4,
        "the failing index was asked {polls} times in 3 s at a pull_interval of 200 ms"
    );
}

/// An index listing paths and addresses instead of names (`../…`, `/…`, another server's
/// `https://…`), as an institute might write one by hand, fetches none of them, says so once
/// in the journal with the entries named, and still takes the names it lists. A hidden name
/// (an upload in progress) costs no word.
#[test]
fn index_entries_that_are_no_file_name_are_not_fetched_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let institute = Institute::start(dir.path(), &pki(), false);
    let good = "20270606_2000_PREP_SITIO_CAMP.zip";
    let other = "20270606_2015_PREP_SITIO_CAMP.zip";
    institute.publish("/prep/", good, &package("20270606_2000", 1));
    institute.publish("/", other, &package("20270606_2015", 2));
    let listed = [
        format!("../{other}"),
        format!("/{other}"),
        format!("https://otro.example/{other}"),
        format!(".{other}.part"),
        good.to_owned(),
    ];
    institute
        .state
        .lock()
        .unwrap()
        .files
        .insert("/prep/".to_owned(), serde_json::to_vec(&listed).unwrap());
    let server = start_puller(
        &dir.path().join("data"),
        &pull_args(&institute, &institute.url("/prep/"), &[]),
    );
    server.wait_corte("20270606_2000");
    // Several polls more: the index, unchanged, is not said again.
    institute.wait_seen("/prep/", 6);
    let warnings = warnings_of(&server, "index-entries-ignored");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert_eq!(detail["count"], 3, "{detail:#}");
    let message = detail["warning"].as_str().unwrap();
    for entry in &listed[..3] {
        assert!(message.contains(entry.as_str()), "{entry} in {message}");
    }
    assert!(!message.contains(".part"), "{message}");
    assert!(institute.seen(&format!("/{other}")).is_empty());
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2000"));
}
