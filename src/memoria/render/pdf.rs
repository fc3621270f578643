//! `memoria.pdf`: the page printed by a headless Chromium, the same engine the institute's
//! staff will read the HTML with, using the page's own print stylesheet (A4).
//!
//! # Guarantees
//! - The PDF appears whole or not at all: Chromium prints to a temporary name in the
//!   destination folder, the file is checked to be a PDF, fsynced, then renamed.
//! - Chromium runs with a fresh profile of its own, and is stopped (with every process it
//!   started) if it has not finished within [`TIMEOUT`].
//! - No Chromium installed is not an error: the caller is told, and says so.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take to print the report.
pub(super) const TIMEOUT: Duration = Duration::from_secs(120);
/// The browsers tried, in order, on `PATH`.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];
/// How often a running Chromium is checked on.
const POLL: Duration = Duration::from_millis(100);
/// The lines of Chromium's error output kept for a message.
const STDERR_TAIL: usize = 8;

/// What became of the PDF.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pdf {
    /// Written to the destination.
    Made,
    /// No Chromium on `PATH`: no PDF, and nothing else done.
    NoChromium,
}

/// Why the PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PdfError {
    #[error("could not {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} could not print {} to PDF ({status}): {stderr}", browser.display(), html.display())]
    Failed {
        browser: PathBuf,
        html: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{} did not finish printing {} to PDF within {} s and was stopped", browser.display(), html.display(), TIMEOUT.as_secs())]
    TimedOut { browser: PathBuf, html: PathBuf },
    #[error("{} printed {} to a file that is not a PDF", browser.display(), html.display())]
    NotPdf { browser: PathBuf, html: PathBuf },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PdfError {
    let path = path.to_owned();
    move |source| PdfError::Io { what, path, source }
}

/// Prints `html` to `pdf` with the first Chromium found on `PATH`.
pub(crate) fn pdf(html: &Path, pdf: &Path) -> Result<Pdf, PdfError> {
    let Some(browser) = BROWSERS.iter().find_map(|name| which::which(name).ok()) else {
        return Ok(Pdf::NoChromium);
    };
    let html = std::path::absolute(html).map_err(io_err("find", html))?;
    let url = url::Url::from_file_path(&html).map_err(|()| PdfError::Io {
        what: "make a file URL of",
        path: html.clone(),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    let dir = match pdf.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let profile = tempfile::tempdir()
        .map_err(io_err("create a browser profile in", &std::env::temp_dir()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".memoria-")
        .suffix(".pdf")
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    let stderr_path = profile.path().join("stderr.txt");
    let stderr = File::create(&stderr_path).map_err(io_err("create", &stderr_path))?;
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", tmp.path().display()))
        .arg(url.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Its own process group, so that a timeout stops its helpers too.
        .process_group(0)
        .spawn()
        .map_err(io_err("start", &browser))?;
    let Some(status) = wait(&mut child, TIMEOUT).map_err(io_err("wait for", &browser))? else {
        return Err(PdfError::TimedOut { browser, html });
    };
    if !status.success() {
        let stderr = tail(&stderr_path);
        return Err(PdfError::Failed {
            browser,
            html,
            status,
            stderr,
        });
    }
    let mut head = [0u8; 4];
    let mut printed = tmp.reopen().map_err(io_err("open", tmp.path()))?;
    if printed.read_exact(&mut head).is_err() || &head != b"%PDF" {
        return Err(PdfError::NotPdf { browser, html });
    }
    printed.sync_all().map_err(io_err("fsync", tmp.path()))?;
    tmp.persist(pdf)
        .map_err(|e| io_err("rename into", pdf)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))?;
    Ok(Pdf::Made)
}

/// Waits for `child` up to `limit`; past it, kills its process group and returns `None`.
fn wait(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let group = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(group) = group {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// The last lines of Chromium's error output, for a message.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::super::{html, sample};
    use super::*;

    #[test]
    fn prints_the_report_to_a_pdf() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("memoria.html");
        std::fs::write(&page, html(&sample::sample())).unwrap();
        let out = dir.path().join("memoria.pdf");
        match pdf(&page, &out).unwrap() {
            Pdf::NoChromium => {
                eprintln!("no Chromium on PATH: the PDF is not tested here");
                return;
            }
            Pdf::Made => {}
        }
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"%PDF"), "a PDF");
        assert!(bytes.len() > 10_000, "with content: {} bytes", bytes.len());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
    }

    #[test]
    fn a_browser_that_hangs_is_stopped() {
        let started = Instant::now();
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        assert_eq!(wait(&mut child, Duration::from_millis(300)).unwrap(), None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
