//! Hostile and careless packages through the intake folder and the CLI: bombs under a memory
//! cap, the memory the live site may hold, a package that kills the server, incomplete tars,
//! ambiguous evidence, implausible corte times, and where rejected packages are kept.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

const MIB: usize = 1024 * 1024;

/// The reason the journal gives for rejecting the package named `name`, once it has.
fn rejection(server: &Server, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = events(server, "rejected")
            .into_iter()
            .find(|e| e["name"] == name || e["detail"]["name"] == name);
        if let Some(event) = found {
            return event["detail"]["reason"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no rejection of {name}; log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `VmSize` of a running process, in bytes.
fn address_space(pid: u32) -> u64 {
    status_kib(pid, "VmSize").expect("the server's VmSize") * 1024
}

/// A site package of `members` files of 64 MiB each, compressing as real CSVs do (under
/// 10:1): within every default limit, but it takes hundreds of megabytes to check and serve.
fn large_package(members: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(64 * MIB + 64);
    let mut rng = fastrand::Rng::with_seed(11);
    while data.len() < 64 * MIB {
        let row = format!(
            "'{:06}B0100',{},{},{},ACTA PREP\n",
            rng.u32(..1_000_000),
            rng.u16(..800),
            rng.u16(..800),
            rng.u16(..2000)
        );
        data.extend_from_slice(row.as_bytes());
    }
    data.truncate(64 * MIB);
    zip_repeated(
        members,
        |i| format!("descargas/parte{i}.dat"),
        &data,
        zip::CompressionMethod::Deflated,
    )
}

/// A tar.gz whose first entry is a pax extended header (`x`) of `size` zero bytes, then an
/// `index.html` and the end-of-archive marker.
fn pax_header_bomb(size: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut header = tar::Header::new_ustar();
    header.set_path("PaxHeaders/index.html").unwrap();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let block = vec![0u8; MIB];
    for _ in 0..size / MIB {
        gz.write_all(&block).unwrap();
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut index = tar::Header::new_ustar();
    index.set_size(3);
    index.set_mode(0o644);
    tar.append_data(&mut index, "index.html", &b"<p>"[..])
        .unwrap();
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bombs_are_refused_in_little_memory_and_the_site_reports_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    // What `ulimit -v 1536000` allows; every package limit at its default.
    let mut server = Server::start_capped(&dir.path().join("d"), &[], 1_536_000 * 1024);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");

    // 1,500 members of 1,048,575 zero bytes: each just under the per-member ratio exemption.
    let zeros = vec![0u8; 1_048_575];
    let many = zip_repeated(
        1500,
        |i| format!("datos/parte{i:04}.csv"),
        &zeros,
        zip::CompressionMethod::Deflated,
    );
    assert!(many.len() < 2_000_000, "{} bytes", many.len());
    drop_file(&server.entrada(), "20240602_2015_PREP.zip", &many);
    let why = rejection(&server, "20240602_2015_PREP.zip");
    assert!(
        why.contains("compression ratio of the whole package"),
        "{why}"
    );

    // A classic zip bomb: 4 GiB of zeros in 16 members, in a 4 MB file.
    let zeros = vec![0u8; 256 * MIB];
    let bomb = zip_repeated(
        16,
        |i| format!("bomba{i}.csv"),
        &zeros,
        zip::CompressionMethod::Deflated,
    );
    drop(zeros);
    drop_file(&server.entrada(), "20240602_2030_PREP.zip", &bomb);
    let why = rejection(&server, "20240602_2030_PREP.zip");
    assert!(why.contains("compression ratio of member"), "{why}");

    // A tar.gz whose first header is a pax extended header of 400 MiB, in under 1 MB: the
    // tar reader would hold it whole.
    let pax = pax_header_bomb(400 * MIB);
    assert!(pax.len() < 1_000_000, "{} bytes", pax.len());
    drop_file(&server.entrada(), "20240602_2045_PREP.tar.gz", &pax);
    let why = rejection(&server, "20240602_2045_PREP.tar.gz");
    assert!(why.contains("headers before one tar member"), "{why}");

    assert!(server.alive(), "log: {}", server.log());
    let status = server.status();
    assert_eq!(status["live"]["corte"], "20240602_2000");
    let peak = server.peak_rss_kib();
    assert!(peak < 320 * 1024, "the server held {peak} KiB at its peak");
    let held = status["memory"]["site_bytes"].as_u64().unwrap();
    assert!(held > 0 && held < 10_000, "the site holds {held} bytes");
    assert_eq!(status["memory"]["max_site_bytes"], 1024 * 1024 * 1024);
    let metrics = curl(&server.admin("/metrics"), &[]).text();
    assert!(
        metrics.contains(&format!("difusor_site_bytes {held}")),
        "{metrics}"
    );
}

#[test]
fn a_package_that_would_take_the_site_past_max_site_bytes_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--max-site-bytes", "300KiB"]);
    let first = corpus::noise(100 * 1024);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[("a.bin", &first)]),
    );
    server.wait_corte("20240602_2000");
    let second = corpus::noise(250 * 1024);
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[("b.bin", &second)]),
    );
    let why = rejection(&server, "20240602_2015_PREP.zip");
    assert!(why.contains("over max_site_bytes (307200)"), "{why}");
    let status = server.status();
    assert_eq!(status["live"]["corte"], "20240602_2000");
    let held = status["memory"]["site_bytes"].as_u64().unwrap();
    assert!((100 * 1024..300 * 1024).contains(&held), "{held}");
    assert_eq!(curl(&server.url("/b.bin"), &[]).status, 404);
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).text(),
        r#"{"corte":"20240602_2000"}"#
    );
}

/// A package archived as older, whose files would take the site past `max_site_bytes` when
/// an operator publishes it, is the operator's request refused: exit status 1, 409 from the
/// admin listener, journaled, the live corte unchanged. Not this server's fault.
#[test]
fn a_rollback_that_would_take_the_site_past_max_site_bytes_is_refused_not_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--max-site-bytes", "300KiB"]);
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_corte("20240602_2015");
    let big = corpus::noise(350 * 1024);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[("b.bin", &big)]),
    );
    wait_events(&server, "older", 1);

    let out = server.run(&["rollback", "20240602_2000"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("max_site_bytes"),
        "{v}"
    );
    let r = curl(
        &server.admin("/rollback?corte=20240602_2000"),
        &["-X", "POST"],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let warnings = events(&server, "warning");
    assert!(
        warnings
            .iter()
            .any(|e| e["detail"]["check"] == "rollback" && e["detail"]["corte"] == "20240602_2000"),
        "{warnings:?}"
    );
    assert!(events(&server, "intake-error").is_empty());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2015"));
    assert_eq!(curl(&server.url("/b.bin"), &[]).status, 404);
}

/// A zip whose central directory lists 1,500,000 empty members (138 MB, within
/// `max_package_bytes`) is refused for their number before that directory is parsed, which
/// takes about 200 bytes of memory per member: under an address-space limit ample for a
/// package, it is a rejection, not the end of the process.
#[test]
fn a_zip_listing_too_many_members_is_refused_before_its_directory_is_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let capped = ProcessLimits {
        address_space: Some(256 * MIB as u64),
        ..ProcessLimits::default()
    };
    let ingest = |name: &str, bytes: &[u8]| {
        let pkg = dir.path().join(name);
        std::fs::write(&pkg, bytes).unwrap();
        let out = ingest_without_server_under(capped, &pkg, &dir.path().join("d"));
        std::fs::remove_file(&pkg).unwrap();
        out
    };
    // The limit is ample for a package.
    let out = ingest(
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[("a.bin", &corpus::noise(MIB))]),
    );
    assert_success(&out);

    let out = ingest(
        "20240602_2015_PREP.zip",
        &corpus::zip_of_empty_members(1_500_000),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("number of members"),
        "{v}"
    );
}

#[test]
fn a_package_that_kills_the_server_is_taken_once_more_then_set_aside_and_no_start_loops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    // The address space the server maps at rest, under the same malloc settings.
    let mut server = Server::start_capped(&data, &[], 64 << 30);
    let rest = address_space(server.pid().unwrap());
    server.stop();
    // Room for small packages, not for one that takes 384 MiB to check.
    server.limits.address_space = Some(rest + 128 * MIB as u64);
    server.launch();
    server.wait_ready();
    let big = large_package(6);
    let sha = sha256_hex(&big);
    drop_file(&server.entrada(), "20240602_2100_PREP.zip", &big);
    let died = server.wait_exit(Duration::from_secs(60));
    assert!(
        died.is_some(),
        "the package should exhaust the capped memory"
    );
    // Restarted, it is taken once more from the archive: and dies again.
    server.launch();
    let died = server.wait_exit(Duration::from_secs(60));
    assert!(died.is_some(), "taken once more, it kills the server again");
    // The third start sets it aside instead, and stays up.
    server.launch();
    server.wait_ready();
    let set_aside = wait_events(&server, "set-aside", 1);
    assert_eq!(set_aside[0]["package"], sha.as_str());
    let status = server.wait_status("the package listed as waiting", |s| {
        s["waiting"][0]["outcome"] == "set-aside"
    });
    assert_eq!(status["waiting"][0]["sha256"], sha.as_str());
    assert_eq!(status["counts"]["set_aside"], 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.entrada().join("20240602_2100_PREP.zip").exists() {
        assert!(Instant::now() < deadline, "the intake folder keeps it");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.alive(), "log: {}", server.log());
    assert!(data.join("archivo/rechazados").join(&sha).is_file());
    let interrupted = events(&server, "warning")
        .iter()
        .filter(|e| {
            e["detail"]["warning"]
                .as_str()
                .unwrap()
                .contains("interrupted")
        })
        .count();
    assert_eq!(interrupted, 2, "each interrupted run is journaled");
    let page = curl(&server.admin("/"), &[]).text();
    assert!(page.contains("is set aside, not published"), "{page}");

    // With room for it, an operator publishes it.
    server.stop();
    server.limits.address_space = None;
    server.launch();
    server.wait_ready();
    let out = server.run(&["rollback", &sha[..12]]);
    assert_success(&out);
    server.wait_corte("20240602_2100");
    let part = curl(&server.url("/descargas/parte5.dat"), &["-I"]);
    assert_eq!(part.status, 200);
    assert_eq!(part.header("content-length"), Some("67108864"));
    assert!(data.join("archivo").join(&sha[..2]).join(&sha).is_file());
    assert!(server.status()["waiting"].as_array().unwrap().is_empty());
}

#[test]
fn a_kill_while_a_package_is_processed_does_not_lose_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &[]);
    let big = large_package(6);
    let pending = data.join("archivo/pendientes").join(sha256_hex(&big));
    drop_file(&server.entrada(), "20240602_2100_PREP.zip", &big);
    // Archived and journaled, and still pending: it is being checked.
    wait_events(&server, "archived", 1);
    assert!(
        pending.exists(),
        "already checked: the package is too small for this test"
    );
    server.kill();
    assert!(
        events(&server, "published").is_empty(),
        "killed before it was published"
    );
    server.launch();
    server.wait_ready();
    server.wait_corte("20240602_2100");
    let warnings = events(&server, "warning");
    assert!(
        warnings.iter().any(|e| e["detail"]["warning"]
            .as_str()
            .unwrap()
            .contains("interrupted")),
        "{warnings:#?}"
    );
    assert!(!pending.exists());
}

/// `head -c <bytes> <from> > <to>`, as a careless uploader cuts a file.
fn head(from: &Path, bytes: u64, to: &Path) {
    let out = run_ok(
        std::process::Command::new("head")
            .arg("-c")
            .arg(bytes.to_string())
            .arg(from),
    );
    std::fs::write(to, out.stdout).unwrap();
}

#[test]
fn a_tar_cut_at_a_member_boundary_is_refused_and_so_are_cut_zips_and_tar_gz() {
    let (dir, server) = serving(&[], &[]);

    // The folder, then its 200 files, as `tar cf` writes them.
    let files: Vec<(String, String)> = (0..200)
        .map(|i| {
            let body = format!("{{\"distrito\":{i},\"corte\":\"20240602_2015\"}}");
            (format!("json/d{i:03}.json"), body)
        })
        .collect();
    let mut entries = vec![(&b"json/"[..], corpus::TarKind::Dir)];
    entries.extend(
        files
            .iter()
            .map(|(name, body)| (name.as_bytes(), corpus::TarKind::File(body.as_bytes()))),
    );
    let full = corpus::tar_of(&entries);
    let full_path = dir.path().join("full.tar");
    std::fs::write(&full_path, &full).unwrap();
    let offset = tar::Archive::new(full.as_slice())
        .entries()
        .unwrap()
        .nth(100)
        .unwrap()
        .unwrap()
        .raw_header_position();
    let cut = dir.path().join("cut.tar");
    head(&full_path, offset, &cut);
    std::fs::rename(&cut, server.entrada().join("20240602_2015_PREP.tar")).unwrap();
    let why = rejection(&server, "20240602_2015_PREP.tar");
    assert!(why.contains("end-of-archive marker"), "{why}");
    assert_eq!(curl(&server.url("/json/d050.json"), &[]).status, 404);

    // The same cut, gzipped whole: the gzip stream is fine, the tar inside is not.
    let cut_bytes = &full[..usize::try_from(offset).unwrap()];
    drop_file(
        &server.entrada(),
        "20240602_2016_PREP.tar.gz",
        &corpus::gzip(cut_bytes),
    );
    let why = rejection(&server, "20240602_2016_PREP.tar.gz");
    assert!(why.contains("end-of-archive marker"), "{why}");
    // A tar.gz and a zip cut short: the gzip trailer and the central directory are missing.
    let gz = corpus::gzip(&full);
    drop_file(
        &server.entrada(),
        "20240602_2017_PREP.tar.gz",
        &gz[..gz.len() / 2],
    );
    let why = rejection(&server, "20240602_2017_PREP.tar.gz");
    assert!(why.contains("not a readable archive"), "{why}");
    let zip = site_package("20240602_2018", &[("json/d001.json", b"{}")]);
    drop_file(
        &server.entrada(),
        "20240602_2018_PREP.zip",
        &zip[..zip.len() - 40],
    );
    let why = rejection(&server, "20240602_2018_PREP.zip");
    assert!(why.contains("not a readable archive"), "{why}");
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));

    // The whole tar is published with all its 200 files.
    drop_file(&server.entrada(), "20240602_2020_PREP.tar", &full);
    server.wait_corte("20240602_2020");
    for i in [0, 99, 100, 199] {
        let r = curl(&server.url(&format!("/json/d{i:03}.json")), &[]);
        assert_eq!(r.status, 200, "d{i:03}");
    }
}

/// The real data package's inner zips as a tar, named as the institute names its zip, with a
/// zip of other results appended: the tar is what would be checked and published under
/// `/datos/`, the zip what every visitor's unzip opens from the package served beside it. It
/// is refused; the same tar padded with zeros, as `tar` writes it, is published.
#[test]
fn a_tar_with_a_zip_appended_is_refused_not_published_as_the_tar() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&real)).unwrap();
    let inner: Vec<(String, Vec<u8>)> = (0..archive.len())
        .map(|i| {
            let mut member = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).unwrap();
            (member.name().unwrap().into_owned(), bytes)
        })
        .collect();
    let entries: Vec<(&[u8], corpus::TarKind<'_>)> = inner
        .iter()
        .map(|(n, b)| (n.as_bytes(), corpus::TarKind::File(b)))
        .collect();
    let tar = corpus::tar_of(&entries);
    let other = zip_bytes(&[("CAMP_GOB_2021.csv", b"GUBERNATURA\notros resultados\n")]);
    let mut both = tar.clone();
    both.extend(zip_bytes(&[("20210601_1852_PREP_GOB_CAMP.zip", &other)]));
    // What a zip reader finds in it: the appended zip alone.
    let mut seen = zip::ZipArchive::new(std::io::Cursor::new(&both)).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen.by_index(0).unwrap().name().unwrap(),
        "20210601_1852_PREP_GOB_CAMP.zip"
    );

    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.zip", &both);
    let why = rejection(&server, "20210601_1852_PREP_CAMP.zip");
    assert!(
        why.contains("bytes other than zeros follow the tar archive's end-of-archive marker"),
        "{why}"
    );
    assert!(why.contains(&format!("from byte {}", tar.len())), "{why}");
    assert_eq!(server.live_corte(), None);
    let served = curl(&server.url("/datos/20210601_1852_PREP_CAMP.zip"), &[]);
    assert_ne!(served.status, 200);

    let mut padded = tar;
    padded.resize(padded.len().next_multiple_of(10 * 1024) + 10 * 1024, 0);
    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.tar", &padded);
    server.wait_corte("20210601_1852");
    let served = curl(&server.url("/datos/20210601_1852_PREP_CAMP.tar"), &[]);
    assert!(served.status == 200 && served.body == padded);
}

/// A tar.gz as bsdtar (the tar of macOS and Windows) writes it to a pipe, its gzip stream
/// padded with zeros to a 10 KiB block, is published, as `gzip -d` and `tar xzf` read it; one
/// whose gzip stream is followed by other bytes (a zip) is refused as two archives in one
/// file, saying where, not as a gzip header that cannot be read.
#[test]
fn a_tar_gz_padded_with_zeros_is_published_and_one_followed_by_a_zip_refused_as_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let tar = corpus::tar_of(&[
        (b"index.html", corpus::TarKind::File(b"<h1>PREP 20:00</h1>")),
        (b"json/main.json", corpus::TarKind::File(b"{}")),
    ]);
    let gz = corpus::gzip(&tar);

    let mut with_zip = gz.clone();
    with_zip.extend(zip_bytes(&[("index.html", b"<h1>otro</h1>".as_slice())]));
    drop_file(&server.entrada(), "20240602_1945_PREP.tar.gz", &with_zip);
    let why = rejection(&server, "20240602_1945_PREP.tar.gz");
    assert!(
        why.starts_with("ambiguous archive")
            && why.contains(&format!(
                "neither gzip nor zero padding follow the gzip stream (from byte {} of the file)",
                gz.len()
            )),
        "{why}"
    );
    assert_eq!(server.live_corte(), None);

    let mut padded = gz;
    padded.resize(padded.len().next_multiple_of(10 * 1024), 0);
    drop_file(&server.entrada(), "20240602_2000_PREP.tar.gz", &padded);
    server.wait_corte("20240602_2000");
    assert_eq!(curl(&server.url("/"), &[]).text(), "<h1>PREP 20:00</h1>");

    // Two gzip members, then the padding: one stream, as `gzip -d` reads it.
    let index = b"<h1>PREP 20:15</h1>";
    let tar = corpus::tar_of(&[(b"index.html", corpus::TarKind::File(index))]);
    let (head, tail) = tar.split_at(700);
    let mut members = corpus::gzip(head);
    members.extend(corpus::gzip(tail));
    members.resize(members.len().next_multiple_of(10 * 1024), 0);
    drop_file(&server.entrada(), "20240602_2015_PREP.tar.gz", &members);
    server.wait_corte("20240602_2015");
    assert_eq!(curl(&server.url("/"), &[]).body, index);
}

#[test]
fn a_sidecar_or_member_list_that_names_a_file_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let name = "20240602_2015_PREP.zip";
    let pkg = site_package("20240602_2015", &[]);
    let right = sha256_hex(&pkg);
    let other = sha256_hex(b"another package");
    std::fs::write(
        server.entrada().join(format!("{name}.sha256")),
        format!("{right}  {name}\n{other}  {name}\n"),
    )
    .unwrap();
    drop_file(&server.entrada(), name, &pkg);
    let why = rejection(&server, name);
    assert!(
        why.contains("lists 20240602_2015_PREP.zip more than once"),
        "{why}"
    );

    let index = b"<h1>PREP</h1>".as_slice();
    let list = format!(
        "{}  index.html\n{}  ./index.html\n",
        sha256_hex(index),
        sha256_hex(b"otro")
    );
    let listed = zip_bytes(&[("index.html", index), ("SHA256SUMS", list.as_bytes())]);
    drop_file(&server.entrada(), "20240602_2030_PREP.zip", &listed);
    let why = rejection(&server, "20240602_2030_PREP.zip");
    assert!(why.contains("lists \"index.html\" more than once"), "{why}");
    assert!(server.live_corte().is_none());

    // With a sidecar that says one thing, the same package is published.
    std::fs::write(
        server.entrada().join(format!("{name}.sha256")),
        format!("{right}  {name}\n"),
    )
    .unwrap();
    drop_file(&server.entrada(), name, &pkg);
    server.wait_corte("20240602_2015");
}

#[test]
fn impossible_corte_times_are_refused_and_implausible_ones_held_until_an_operator_says() {
    let dir = tempfile::tempdir().unwrap();
    let tz = jiff::tz::TimeZone::get("America/Mexico_City").unwrap();
    let now = jiff::Timestamp::now().to_zoned_datetime(tz);
    let at = |minutes: i64| {
        now.checked_add(jiff::SignedDuration::from_mins(minutes))
            .unwrap()
    };
    let id = |t: &jiff::ZonedDateTime| t.strftime("%Y%m%d_%H%M").to_string();
    let start = at(-120).timestamp().to_string();
    let end = at(22 * 60).timestamp().to_string();
    let server = Server::start(
        &dir.path().join("d"),
        &[
            "--publish-start",
            &start,
            "--publish-end",
            &end,
            "--corte-future-margin",
            "5m",
            "--corte-window-margin",
            "6h",
        ],
    );
    let deliver = |corte: &str| {
        drop_file(
            &server.entrada(),
            &format!("{corte}_PREP.zip"),
            &site_package(corte, &[]),
        );
    };
    let first = id(&at(-30));
    deliver(&first);
    server.wait_corte(&first);

    // A year typo: ahead of the clock by a year. Held, not published.
    let year_typo = format!("{}{}", now.year() + 1, &first[4..]);
    deliver(&year_typo);
    let held = wait_events(&server, "held", 1);
    assert_eq!(held[0]["detail"]["corte"], year_typo.as_str());
    let reason = held[0]["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("ahead of the clock"), "{reason}");
    let status = server.wait_status("the held package listed", |s| {
        s["waiting"].as_array().is_some_and(|w| w.len() == 1)
    });
    assert_eq!(status["waiting"][0]["outcome"], "held");
    assert_eq!(status["waiting"][0]["corte"], year_typo.as_str());
    assert_eq!(status["counts"]["held"], 1);
    assert_eq!(status["live"]["corte"], first.as_str());
    let page = curl(&server.admin("/"), &[]).text();
    assert!(page.contains("is held, not published"), "{page}");

    // An impossible date is refused outright.
    deliver("20270631_2560");
    let why = rejection(&server, "20270631_2560_PREP.zip");
    assert!(why.contains("does not exist"), "{why}");

    // A month typo, long before the window: held too.
    let month_typo = id(&at(-40 * 24 * 60));
    deliver(&month_typo);
    let held = wait_events(&server, "held", 2);
    let reason = held[0]["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("before publish_start"), "{reason}");

    // The real next corte is published: the held ones are not "newer".
    let next = id(&at(-15));
    deliver(&next);
    server.wait_corte(&next);
    assert!(events(&server, "older").is_empty());

    // An operator publishes the year typo with rollback…
    let out = server.run(&["rollback", &year_typo]);
    assert_success(&out);
    server.wait_corte(&year_typo);
    // … and another held package with ingest --force (exit status 3 without it).
    let later = format!("{}{}", now.year() + 2, &first[4..]);
    let file = dir.path().join(format!("{later}_PREP.zip"));
    std::fs::write(&file, site_package(&later, &[])).unwrap();
    let out = server.run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = server.run(&["ingest", "--force", file.to_str().unwrap()]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published");
    server.wait_corte(&later);
    let waiting = server.status()["waiting"].as_array().unwrap().len();
    assert_eq!(waiting, 1, "only the month typo still waits");
}

#[test]
fn rejected_packages_are_kept_apart_and_removed_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &["--rejected-retention", "2s"]);
    let good = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &good);
    server.wait_corte("20240602_2000");
    let bad = b"not a package, and perhaps a secret\n";
    drop_file(&server.entrada(), "20240602_2015_PREP.zip", bad);
    let why = rejection(&server, "20240602_2015_PREP.zip");
    assert!(why.contains("not a readable archive"), "{why}");

    let (good_sha, bad_sha) = (sha256_hex(&good), sha256_hex(bad));
    let archive = data.join("archivo");
    assert!(archive.join(&good_sha[..2]).join(&good_sha).is_file());
    assert!(archive.join("rechazados").join(&bad_sha).is_file());
    assert!(!archive.join(&bad_sha[..2]).join(&bad_sha).exists());
    assert!(
        std::fs::read_dir(archive.join("pendientes"))
            .unwrap()
            .next()
            .is_none()
    );

    // Past its retention, the next start removes it and says so; the journal keeps the rest.
    // The retention is a time: it is waited out.
    std::thread::sleep(Duration::from_secs(3));
    server.restart();
    let removed = wait_events(&server, "rejected-removed", 1);
    assert_eq!(removed[0]["package"], bad_sha.as_str());
    assert_eq!(removed[0]["name"], "20240602_2015_PREP.zip");
    assert!(!archive.join("rechazados").join(&bad_sha).exists());
    let rejected = events(&server, "rejected");
    assert_eq!(rejected[0]["package"], bad_sha.as_str());
    assert!(rejected[0]["detail"]["reason"].as_str().is_some());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
}

#[test]
fn sparse_files_in_pax_form_are_refused_not_published_as_their_map() {
    let (_dir, server) = serving(&[], &[]);
    let v1 = corpus::tar_with_pax_sparse_file();
    // Sparse format 0.1: the map in the pax header, the data without its holes.
    let v01 = corpus::tar_with_pax_file(
        &[
            ("GNU.sparse.size", b"2097156"),
            ("GNU.sparse.numblocks", b"1"),
            ("GNU.sparse.map", b"2097152,4"),
        ],
        "datos.csv",
        b"fin\n",
    );
    for (name, tar) in [
        ("20240602_2015_PREP.tar", v1),
        ("20240602_2016_PREP.tar.gz", corpus::gzip(&v01)),
    ] {
        drop_file(&server.entrada(), name, &tar);
        let why = rejection(&server, name);
        assert!(
            why.contains("\"datos.csv\" is a sparse file"),
            "{name}: {why}"
        );
    }
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
    for path in ["/GNUSparseFile.0/datos.csv", "/datos.csv"] {
        assert_eq!(curl(&server.url(path), &[]).status, 404, "{path}");
    }
}

#[test]
fn a_zip_member_marked_as_a_folder_but_named_as_a_file_is_refused_not_left_out() {
    let (_dir, server) = serving(&[], &[]);
    // unzip and Python's zipfile go by the name and extract `json/main.json` as a file; read
    // as a folder, it would be left out of a corte published without it.
    let zip = corpus::zip_with_a_file_marked_as_a_folder();
    drop_file(&server.entrada(), "20240602_2015_PREP.zip", &zip);
    let why = rejection(&server, "20240602_2015_PREP.zip");
    assert!(
        why.contains("ambiguous archive")
            && why.contains("\"json/main.json\" is marked as a folder but named as a file"),
        "{why}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(main.text(), r#"{"corte":"20240602_2000"}"#);
}

/// `text` as UTF-16, little-endian, after its byte-order mark: what Windows PowerShell 5
/// writes with `>` or `Out-File`.
fn utf16_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

#[test]
fn a_sidecar_in_utf16_or_latin1_is_checked_not_taken_for_absent() {
    let (_dir, server) = serving(&[], &[]);
    let sidecar = |name: &str| server.entrada().join(format!("{name}.sha256"));

    // A right digest in UTF-16: verified.
    let name = "20240602_2015_PREP.zip";
    let pkg = site_package("20240602_2015", &[]);
    let line = format!("{}  {name}\r\n", sha256_hex(&pkg));
    std::fs::write(sidecar(name), utf16_with_bom(&line)).unwrap();
    drop_file(&server.entrada(), name, &pkg);
    server.wait_corte("20240602_2015");
    let verified = events(&server, "verified");
    let event = verified.iter().find(|e| e["name"] == name).unwrap();
    let evidence = &event["detail"]["evidence"];
    assert!(evidence["sidecar"]["verified"].is_string(), "{evidence}");

    // A wrong digest in Latin-1 (a Windows editor's `AÑO`): the package is refused, not
    // published as if it had come without one.
    let name = "20240602_2016_PREP_AÑO.zip";
    let pkg = site_package("20240602_2016", &[]);
    let mut latin1 = format!("{}  20240602_2016_PREP_A", sha256_hex(b"otro")).into_bytes();
    latin1.extend_from_slice(b"\xd1O.zip\r\n");
    std::fs::write(sidecar(name), &latin1).unwrap();
    drop_file(&server.entrada(), name, &pkg);
    let why = rejection(&server, name);
    assert!(
        why.contains(&format!("the .sha256 file says {}", sha256_hex(b"otro"))),
        "{why}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2015"));
}

#[test]
fn a_member_list_in_utf16_is_checked_not_left_unchecked() {
    let (_dir, server) = serving(&[], &[]);
    // `Get-FileHash` output written by Windows PowerShell 5's `>`: UTF-16 with its mark.
    let index = b"<h1>PREP</h1>".as_slice();
    let main = br#"{"corte":"20240602_2015"}"#.as_slice();
    let list = format!(
        "{}  index.html\r\n{}  json/main.json\r\n",
        sha256_hex(index),
        sha256_hex(main)
    );
    let pkg = zip_bytes(&[
        ("index.html", index),
        ("json/main.json", main),
        ("SHA256SUMS", &utf16_with_bom(&list)),
    ]);
    drop_file(&server.entrada(), "20240602_2015_PREP.zip", &pkg);
    server.wait_corte("20240602_2015");
    let verified = events(&server, "verified");
    let event = verified
        .iter()
        .find(|e| e["name"] == "20240602_2015_PREP.zip")
        .unwrap();
    let evidence = &event["detail"]["evidence"];
    assert_eq!(
        evidence["member_list"]["verified"], "2 files match SHA256SUMS",
        "{evidence}"
    );

    // The same list with a wrong digest is refused, not published as an unchecked list.
    let wrong = list.replace(&sha256_hex(main), &sha256_hex(b"otro"));
    let pkg = zip_bytes(&[
        ("index.html", index),
        ("json/main.json", main),
        ("SHA256SUMS", &utf16_with_bom(&wrong)),
    ]);
    drop_file(&server.entrada(), "20240602_2016_PREP.zip", &pkg);
    let why = rejection(&server, "20240602_2016_PREP.zip");
    assert!(why.contains("for \"json/main.json\""), "{why}");
}

#[test]
fn a_tar_member_named_by_both_a_pax_header_and_a_gnu_long_name_is_refused_as_ambiguous() {
    let (_dir, server) = serving(&[], &[]);
    // GNU tar and Python's tarfile take the pax name; a reader that took the long name would
    // publish the file under another path than the institute sees.
    let long = format!("{}.html", "g".repeat(120));
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_pax_extensions([("path", b"pax.html".as_slice())])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    tar.append_data(&mut header, &long, &b"BODY"[..]).unwrap();
    let mut index = tar::Header::new_ustar();
    index.set_size(3);
    index.set_mode(0o644);
    tar.append_data(&mut index, "index.html", &b"<p>"[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    drop_file(&server.entrada(), "20240602_2015_PREP.tar", &tar);
    let why = rejection(&server, "20240602_2015_PREP.tar");
    assert!(
        why.contains("ambiguous archive") && why.contains("named \"pax.html\" by its pax header"),
        "{why}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
    assert_eq!(curl(&server.url(&format!("/{long}")), &[]).status, 404);
}

#[test]
fn evidence_over_64_kib_is_refused_as_too_large_not_read_in_part() {
    let (dir, server) = serving(&[], &[]);
    // A right line first, then more lines than evidence may hold: read in part, it would be
    // refused for a line cut short, or taken for what its first 64 KiB say.
    let name = "20240602_2015_PREP.zip";
    let pkg = site_package("20240602_2015", &[]);
    let mut sidecar = format!("{}  {name}\n", sha256_hex(&pkg));
    while sidecar.len() <= 64 * 1024 {
        sidecar.push_str(&format!("{}  otro.zip\n", sha256_hex(b"otro")));
    }
    let size = sidecar.len();
    std::fs::write(server.entrada().join(format!("{name}.sha256")), &sidecar).unwrap();
    drop_file(&server.entrada(), name, &pkg);
    let why = rejection(&server, name);
    let large = format!("the .sha256 file is too large: {} bytes", with_commas(size));
    assert!(why.contains(&large), "{why}");
    assert!(why.contains("at most 65,536 bytes"), "{why}");
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));

    // The same through `ingest`, here for a signature: refused as too large, and said so.
    let file = dir.path().join("20240602_2030_PREP.zip");
    std::fs::write(&file, site_package("20240602_2030", &[])).unwrap();
    std::fs::write(
        dir.path().join("20240602_2030_PREP.zip.minisig"),
        vec![b'x'; 70_000],
    )
    .unwrap();
    let out = server.run(&["ingest", file.to_str().unwrap()]);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("the .minisig file is too large: 70,000 bytes"),
        "{answer}"
    );
    let why = rejection(&server, "20240602_2030_PREP.zip");
    assert!(why.contains("too large: 70,000 bytes"), "{why}");
}

/// `n` with a comma between each group of three digits.
fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn evidence_is_archived_as_the_bytes_sent_not_as_decoded_text() {
    let (_dir, server) = serving(&[], &[]);
    let name = "20240602_2015_PREP.zip";
    let pkg = site_package("20240602_2015", &[]);
    let sent = utf16_with_bom(&format!("{}  {name}\r\n", sha256_hex(&pkg)));
    std::fs::write(server.entrada().join(format!("{name}.sha256")), &sent).unwrap();
    drop_file(&server.entrada(), name, &pkg);
    server.wait_corte("20240602_2015");
    let sha = sha256_hex(&pkg);
    let kept = server
        .data
        .join("archivo")
        .join(&sha[..2])
        .join(format!("{sha}.sha256"));
    assert_eq!(std::fs::read(&kept).unwrap(), sent, "{}", kept.display());
}

/// A server with the replication feed on loopback, and a way to fetch from it.
fn with_feed(dir: &Path) -> (Server, impl Fn(&Server, &str) -> Response) {
    let token = dir.join("feed.token");
    std::fs::write(&token, "ficha-de-prueba-0123456789abcdef\n").unwrap();
    let server = Server::start(
        &dir.join("d"),
        &[
            "--feed-listen",
            "127.0.0.1:0",
            "--feed-token-file",
            token.to_str().unwrap(),
        ],
    );
    let get = |server: &Server, path: &str| {
        curl(
            &format!("http://127.0.0.1:{}{path}", server.feed_port()),
            &[
                "-H",
                "Authorization: Bearer ficha-de-prueba-0123456789abcdef",
            ],
        )
    };
    (server, get)
}

/// `difusor ingest` of `bytes` as `name` (a `.sha256` beside it when `sidecar` is given):
/// the outcome it prints.
fn ingest_as(
    server: &Server,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sidecar: Option<&str>,
) -> String {
    let sent = dir.join(format!("envio-{}", unique()));
    std::fs::create_dir_all(&sent).unwrap();
    let file = sent.join(name);
    std::fs::write(&file, bytes).unwrap();
    if let Some(text) = sidecar {
        std::fs::write(sent.join(format!("{name}.sha256")), text).unwrap();
    }
    let out = server.run(&["ingest", file.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    v["outcome"].as_str().unwrap_or_default().to_owned()
}

/// [`with_feed`], with corte 20241204_1000 published: the server, the feed and its package.
fn with_feed_and_a_first_corte(
    dir: &Path,
) -> (Server, impl Fn(&Server, &str) -> Response, Vec<u8>) {
    let (server, feed) = with_feed(dir);
    let first = site_package("20241204_1000", &[]);
    assert_eq!(
        ingest_as(&server, dir, "20241204_1000_PREP.zip", &first, None),
        "published"
    );
    (server, feed, first)
}

#[test]
fn a_package_resent_without_what_got_it_rejected_is_kept_listed_and_rebuilt_as_published() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, feed, first) = with_feed_and_a_first_corte(dir.path());

    // A stale sidecar gets the package rejected; the same bytes sent again without it publish.
    let name = "20241204_1015_PREP.zip";
    let pkg = site_package("20241204_1015", &[]);
    let (sha, stale) = (sha256_hex(&pkg), sha256_hex(&first));
    let stale_line = format!("{stale}  {name}\n");
    assert_eq!(
        ingest_as(&server, dir.path(), name, &pkg, Some(&stale_line)),
        "rejected"
    );
    assert_eq!(
        ingest_as(&server, dir.path(), name, &pkg, None),
        "published"
    );
    let archive = server.data.join("archivo");
    let verified = archive.join(&sha[..2]).join(&sha);
    assert!(verified.is_file());
    assert!(
        !verified.with_file_name(format!("{sha}.sha256")).exists(),
        "the rejected attempt's sidecar was kept beside the package verified without one"
    );
    let rejected = archive.join("rechazados").join(format!("{sha}.sha256"));
    assert_eq!(std::fs::read_to_string(&rejected).unwrap(), stale_line);

    // The feed serves a sidecar that names the package's digest.
    let sidecar = feed(&server, &format!("/packages/{name}.sha256"));
    assert_eq!(sidecar.status, 200);
    assert!(sidecar.text().starts_with(&sha), "{}", sidecar.text());

    // A start rebuilds the corte that was live.
    server.restart();
    assert_eq!(server.live_corte().as_deref(), Some("20241204_1015"));
    assert!(!server.log().contains("cannot rebuild"), "{}", server.log());
    let page = curl(&server.url("/"), &[]);
    assert_eq!(page.header("x-prep-corte"), Some("20241204_1015"));

    // A typo in the name gets it rejected; the same bytes under the right name publish, and
    // the feed lists them under that name.
    let pkg = site_package("20241204_1045", &[]);
    assert_eq!(
        ingest_as(&server, dir.path(), "20241304_1045_PREP.zip", &pkg, None),
        "rejected"
    );
    assert_eq!(
        ingest_as(&server, dir.path(), "20241204_1045_PREP.zip", &pkg, None),
        "published"
    );
    let listing = feed(&server, "/packages/").text();
    assert!(listing.contains("\"20241204_1045_PREP.zip\""), "{listing}");
    assert!(!listing.contains("20241304"), "{listing}");
    let state: serde_json::Value = serde_json::from_slice(&feed(&server, "/state").body).unwrap();
    assert_eq!(
        state["live"]["package"], "20241204_1045_PREP.zip",
        "{state}"
    );
    let got = feed(&server, "/packages/20241204_1045_PREP.zip");
    assert_eq!(sha256_hex(&got.body), sha256_hex(&pkg));
}

#[test]
fn a_sidecar_a_package_was_never_verified_with_is_set_aside_at_start_not_fallen_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, feed, first) = with_feed_and_a_first_corte(dir.path());
    let name = "20241204_1015_PREP.zip";
    let pkg = site_package("20241204_1015", &[]);
    assert_eq!(
        ingest_as(&server, dir.path(), name, &pkg, None),
        "published"
    );

    // A data folder from an earlier version: a rejected delivery's sidecar beside the package
    // verified without one.
    server.stop();
    let sha = sha256_hex(&pkg);
    let stale = format!("{}  {name}\n", sha256_hex(&first));
    let verified = server.data.join("archivo").join(&sha[..2]).join(&sha);
    std::fs::write(verified.with_file_name(format!("{sha}.sha256")), &stale).unwrap();
    server.launch();
    server.wait_ready();

    assert_eq!(
        server.live_corte().as_deref(),
        Some("20241204_1015"),
        "{}",
        server.log()
    );
    let warning = wait_events(&server, "warning", 1)
        .into_iter()
        .find(|e| e["detail"]["check"] == "evidence")
        .expect("the stray sidecar is journaled");
    let said = warning["detail"]["warning"].as_str().unwrap();
    assert!(said.contains("verified without one"), "{said}");
    assert!(!verified.with_file_name(format!("{sha}.sha256")).exists());
    let kept = server
        .data
        .join("archivo/rechazados")
        .join(format!("{sha}.sha256"));
    assert_eq!(std::fs::read_to_string(kept).unwrap(), stale);
    let sidecar = feed(&server, &format!("/packages/{name}.sha256"));
    assert!(sidecar.text().starts_with(&sha), "{}", sidecar.text());
}

#[test]
fn ingest_refuses_a_package_whose_evidence_is_there_but_cannot_be_read() {
    // A sidecar or signature beside the package that cannot be read (a folder of its name,
    // a file its permissions keep the command's user out of) is not absent evidence: the
    // command stops naming it and why, and nothing is archived.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let name = "20240602_2000_PREP.zip";
    let pkg = dir.path().join(name);
    std::fs::write(&pkg, site_package("20240602_2000", &[("a.json", b"{}")])).unwrap();
    let archived = || {
        std::fs::read_dir(data.join("archivo")).map_or(0, |dirs| {
            dirs.map(|d| std::fs::read_dir(d.unwrap().path()).map_or(0, |f| f.count()))
                .sum::<usize>()
        })
    };
    let refused = |limits: ProcessLimits, evidence: &Path, why: &str| {
        let out = ingest_without_server_under(limits, &pkg, &data);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {said}", evidence.display());
        assert!(
            said.contains(&evidence.display().to_string()) && said.contains(why),
            "names {} and {why}: {said}",
            evidence.display()
        );
        assert_eq!(archived(), 0, "nothing archived: {said}");
    };
    for ext in ["sha256", "minisig"] {
        let evidence = dir.path().join(format!("{name}.{ext}"));
        std::fs::create_dir(&evidence).unwrap();
        refused(ProcessLimits::default(), &evidence, "a folder");
        std::fs::remove_dir(&evidence).unwrap();
    }
    let sidecar = dir.path().join(format!("{name}.sha256"));
    std::fs::write(
        &sidecar,
        format!("{}  {name}\n", sha256_hex(&std::fs::read(&pkg).unwrap())),
    )
    .unwrap();
    std::fs::set_permissions(
        &sidecar,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let bound = ProcessLimits {
        bound_by_permissions: true,
        ..ProcessLimits::default()
    };
    refused(bound, &sidecar, "denied");
    // Readable, it is taken with its package.
    std::fs::set_permissions(
        &sidecar,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = ingest_without_server_under(bound, &pkg, &data);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published", "{v}");
    assert!(archived() > 0);
}

#[test]
fn a_package_naming_a_live_file_with_other_letter_case_or_normalisation_is_refused_not_laid_beside_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let nfc = "json/a\u{f1}o.json";
    let first = site_package("20240602_2000", &[(nfc, b"2000")]);
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &first);
    server.wait_corte("20240602_2000");

    // Each would leave the path visitors ask for with the 20:00 bytes, under a 20:15 corte.
    let cases: [(&str, &str, &str); 4] = [
        ("20240602_2015_PREP.zip", "INDEX.HTML", "\"/index.html\""),
        (
            "20240602_2016_PREP.zip",
            "JSON/main.json",
            "\"/json/main.json\"",
        ),
        ("20240602_2017_PREP.zip", "json/an\u{303}o.json", nfc),
        (
            "20240602_2018_PREP.zip",
            "json/main.json/x",
            "\"/json/main.json\"",
        ),
    ];
    for (name, member, live) in cases {
        drop_file(&server.entrada(), name, &zip_bytes(&[(member, b"2015")]));
        let why = rejection(&server, name);
        assert!(
            why.contains(&format!("{:?}", format!("/{member}"))) && why.contains(live),
            "{name}: {why}"
        );
        assert!(why.contains("the live corte stays"), "{why}");
    }
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
    assert_eq!(
        curl(&server.url("/"), &[]).text(),
        "<html><body>Corte 20240602_2000</body></html>"
    );
    assert_eq!(curl(&server.url("/INDEX.HTML"), &[]).status, 404);

    // With the live corte's names it is laid over; as a whole site, it replaces it.
    let same = zip_bytes(&[("index.html", b"2030".as_slice()), (nfc, b"2030")]);
    drop_file(&server.entrada(), "20240602_2030_PREP.zip", &same);
    server.wait_corte("20240602_2030");
    assert_eq!(curl(&server.url("/"), &[]).text(), "2030");
    let whole = zip_bytes(&[("INDEX.HTML", b"2045".as_slice())]);
    drop_file(&server.entrada(), "20240602_2045_PREP_COMPLETO.zip", &whole);
    server.wait_corte("20240602_2045");
    assert_eq!(curl(&server.url("/INDEX.HTML"), &[]).text(), "2045");
    assert_eq!(curl(&server.url("/index.html"), &[]).status, 404);
}
