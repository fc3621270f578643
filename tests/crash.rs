//! Invariant 3: after a crash at any point (SIGKILL), the restart serves the last corte that
//! had gone live, or a later complete one, never a partial one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;

const PACKAGES: usize = 60;
const FILES: usize = 8;

/// Package `i`: corte 20240602 20:00 + i minutes; every file names its corte, so a site
/// mixing two cortes is visible.
fn package(i: usize) -> (String, String, Vec<u8>) {
    let minutes = 20 * 60 + i;
    let corte = format!("20240602_{:02}{:02}", minutes / 60, minutes % 60);
    let bodies: Vec<(String, String)> = (0..FILES)
        .map(|f| {
            (
                format!("parte/{f}.txt"),
                format!("{corte} parte {f} {}", "x".repeat(i * 1000)),
            )
        })
        .chain([(
            "json/main.json".to_owned(),
            format!("{{\"corte\":\"{corte}\"}}"),
        )])
        .collect();
    let members: Vec<(&str, &[u8])> = bodies
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_bytes()))
        .collect();
    (
        format!("{corte}_PREP_SITIO.zip"),
        corte,
        zip_bytes(&members),
    )
}

/// Every file served names the corte its response says it is from (`X-PREP-Corte`), and that
/// corte is the live one or a later one (packages keep arriving while we look).
fn assert_whole(server: &Server) -> Option<String> {
    let live = server.live_corte()?;
    let paths = (0..FILES)
        .map(|f| format!("/parte/{f}.txt"))
        .chain(["/json/main.json".to_owned()]);
    for path in paths {
        let r = curl(&server.url(&path), &[]);
        assert_eq!(r.status, 200, "{path}");
        let corte = r.header("x-prep-corte").expect("X-PREP-Corte").to_owned();
        assert!(
            corte >= live,
            "{path} comes from corte {corte}, older than the live {live}"
        );
        let text = r.text();
        let own = if path == "/json/main.json" {
            text == format!("{{\"corte\":\"{corte}\"}}")
        } else {
            text.starts_with(&format!("{corte} parte "))
        };
        assert!(
            own,
            "{path} served as corte {corte} holds {:?}",
            &text[..40.min(text.len())]
        );
    }
    Some(live)
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_corte() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let entrada = server.entrada();
    let mut rng = fastrand::Rng::with_seed(test_seed());
    let fed = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let fed = fed.clone();
        let mut rng = rng.fork();
        std::thread::spawn(move || {
            for i in 0..PACKAGES {
                let (name, _, bytes) = package(i);
                drop_file(&entrada, &name, &bytes);
                fed.store(i + 1, Ordering::SeqCst);
                // Packages arrive at uneven moments: the time between them is the test.
                std::thread::sleep(Duration::from_millis(rng.u64(10..60)));
            }
        })
    };

    let mut seen: Option<String> = None;
    let mut kills = 0;
    while fed.load(Ordering::SeqCst) < PACKAGES || kills < 8 {
        // The kill lands at a random moment of the intake: the moment is the test.
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        if let Some(live) = server.live_corte() {
            seen = Some(live);
        }
        server.kill();
        kills += 1;
        server.restart();
        let after = assert_whole(&server);
        if let Some(before) = &seen {
            let after = after.expect("a corte was live before the crash; one must be live after");
            assert!(
                after >= *before,
                "after the crash corte {after} is live, older than {before}"
            );
        }
    }
    feeder.join().unwrap();
    let (_, last, _) = package(PACKAGES - 1);
    server.wait_corte(&last);
    assert_whole(&server);
    assert!(server.alive());
    assert!(kills >= 8);
}
