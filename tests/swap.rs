//! Invariant 1 under load: while 100 cortes go live back to back, many kept-alive connections
//! read the site; no request fails, and every body belongs to the corte its `X-PREP-Corte`
//! header names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::support::*;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

const CORTES: usize = 100;
const CONNECTIONS: usize = 24;
const FILES: usize = 6;

fn corte_id(i: usize) -> String {
    let minutes = 20 * 60 + i;
    format!("20240602_{:02}{:02}", minutes / 60 % 24, minutes % 60)
}

/// Every file names its corte; sizes vary so that some responses span many reads.
fn package(i: usize) -> Vec<u8> {
    let id = corte_id(i);
    let bodies: Vec<(String, String)> = (0..FILES)
        .map(|f| {
            (
                format!("parte/{f}.txt"),
                format!("{id} parte {f} {}", "x".repeat(f * 20_000 + i)),
            )
        })
        .chain([(
            "json/main.json".to_owned(),
            format!("{{\"corte\":\"{id}\"}}"),
        )])
        .collect();
    let members: Vec<(&str, &[u8])> = bodies
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_bytes()))
        .collect();
    zip_bytes(&members)
}

/// One kept-alive connection reading random files until `stop`; returns (requests, errors).
async fn reader(port: u16, stop: Arc<AtomicBool>, seed: u64) -> (u64, Vec<String>) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut count, mut errors) = (0u64, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let path = match rng.usize(0..=FILES) {
            FILES => "/json/main.json".to_owned(),
            f => format!("/parte/{f}.txt"),
        };
        let req = http::Request::get(&path)
            .header("host", "localhost")
            .header(
                "accept-encoding",
                if rng.bool() { "gzip, br" } else { "identity" },
            )
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                break;
            }
        };
        count += 1;
        let status = res.status();
        let corte = res
            .headers()
            .get("x-prep-corte")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let encoding = res
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        let (Some(corte), Ok(body)) = (corte, body) else {
            errors.push(format!("{path}: status {status}, no corte or body"));
            continue;
        };
        let text = match encoding.as_deref() {
            Some("gzip") => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut s)
                    .map(|_| s)
                    .unwrap_or_default()
            }
            Some("br") => {
                let mut s = String::new();
                std::io::Read::read_to_string(
                    &mut brotli::Decompressor::new(&body[..], 4096),
                    &mut s,
                )
                .map(|_| s)
                .unwrap_or_default()
            }
            _ => String::from_utf8_lossy(&body).into_owned(),
        };
        let own = if path == "/json/main.json" {
            text == format!("{{\"corte\":\"{corte}\"}}")
        } else {
            text.starts_with(&format!("{corte} parte "))
        };
        if status != 200 || !own {
            errors.push(format!(
                "{path}: status {status}, X-PREP-Corte {corte}, body {:?}",
                &text[..text.len().min(40)]
            ));
        }
    }
    (count, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_cortes_go_live_under_load_without_a_torn_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| {
        let s = Server::start(&dir.path().join("d"), &["--rate-per-address", "0"]);
        drop_file(
            &s.entrada(),
            &format!("{}_PREP.zip", corte_id(0)),
            &package(0),
        );
        s.wait_corte(&corte_id(0));
        s
    });
    let seed = test_seed();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            let seed = seed.wrapping_add(n as u64);
            tokio::spawn(reader(server.port, stop.clone(), seed))
        })
        .collect();
    let published = Arc::new(AtomicU64::new(1));
    tokio::task::block_in_place(|| {
        for i in 1..CORTES {
            drop_file(
                &server.entrada(),
                &format!("{}_PREP.zip", corte_id(i)),
                &package(i),
            );
            server.wait_corte(&corte_id(i));
            published.fetch_add(1, Ordering::Relaxed);
        }
    });
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut errors = Vec::new();
    for r in readers {
        let (count, errs) = r.await.unwrap();
        total += count;
        errors.extend(errs);
    }
    assert_eq!(published.load(Ordering::Relaxed), CORTES as u64);
    assert!(
        errors.is_empty(),
        "{} errors in {total} requests: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(total > 2_000, "only {total} requests were made");
    eprintln!("{total} requests across {CORTES} cortes, no error");
}
