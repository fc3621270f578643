//! Precompressed variants of a site's files (brotli, gzip), made off the publish path.
//!
//! A corte goes live with its files as the institute sent them; a background thread then
//! compresses the new files and fills their [`Variants`]. Until a variant exists the file is
//! served as it is, so compression never delays a corte. A file whose bytes did not change
//! from the previous corte shares the previous variants instead of being compressed again.
//!
//! # Guarantees
//! - A variant decompresses to exactly the file's bytes (invariant 4): it is made from them
//!   and checked by decompressing before it is kept.
//! - A variant is kept only when it saves at least a tenth of the size.
//! - Each variant has its own strong ETag (`"<sha256>-br"`, `"<sha256>-gz"`).

use std::io::{Read as _, Write as _};
use std::sync::{Arc, OnceLock, mpsc};

use bytes::Bytes;
use http::HeaderValue;

/// Files smaller than this are not worth compressing.
const MIN_LEN: usize = 256;
/// Files up to this size get the strongest (slowest) settings.
const SMALL: usize = 1024 * 1024;

/// One compressed variant of a file.
#[derive(Debug)]
pub(crate) struct Variant {
    /// The compressed bytes.
    pub(crate) bytes: Bytes,
    /// Its strong ETag.
    pub(crate) etag: HeaderValue,
}

/// The compressed variants of one file's bytes, filled once, later.
#[derive(Debug, Default)]
pub(crate) struct Variants {
    /// brotli, if made and worth it.
    pub(crate) br: OnceLock<Option<Variant>>,
    /// gzip, if made and worth it.
    pub(crate) gzip: OnceLock<Option<Variant>>,
}

impl Variants {
    /// Bytes of the variants made so far.
    pub(crate) fn memory_bytes(&self) -> u64 {
        [&self.br, &self.gzip]
            .into_iter()
            .filter_map(|v| v.get().and_then(Option::as_ref))
            .map(|v| v.bytes.len() as u64)
            .sum()
    }
}

/// Whether a file of this content type and size gets variants.
pub(crate) fn compressible(content_type: &str, len: usize) -> bool {
    len >= MIN_LEN
        && (content_type.starts_with("text/")
            || ["json", "javascript", "xml", "svg"]
                .iter()
                .any(|t| content_type.contains(t)))
}

/// A file waiting for its variants.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The file's path in the site.
    pub(crate) path: String,
    /// The file's bytes.
    pub(crate) bytes: Bytes,
    /// The file's ETag (quoted SHA-256), from which the variants' ETags are made.
    pub(crate) etag: HeaderValue,
    /// Where the variants go.
    pub(crate) variants: Arc<Variants>,
}

/// The background compressor: one thread, files in the order they were published.
#[derive(Clone)]
pub(crate) struct Compressor {
    tx: mpsc::Sender<Vec<Job>>,
}

impl Compressor {
    /// Starts the compressor thread.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Vec<Job>>();
        std::thread::Builder::new()
            .name("compressor".into())
            .spawn(move || {
                while let Ok(jobs) = rx.recv() {
                    let started = std::time::Instant::now();
                    let count = jobs.len();
                    for job in jobs {
                        fill(&job);
                    }
                    tracing::debug!(count, elapsed = ?started.elapsed(), "variants made");
                }
            })?;
        Ok(Self { tx })
    }

    /// Queues files for compression.
    pub(crate) fn submit(&self, jobs: Vec<Job>) {
        if !jobs.is_empty() && self.tx.send(jobs).is_err() {
            tracing::warn!("the compressor has stopped; files are served uncompressed");
        }
    }
}

/// Makes both variants of one file.
pub(crate) fn fill(job: &Job) {
    let small = job.bytes.len() <= SMALL;
    let _ = job.variants.br.get_or_init(|| {
        let quality = if small { 9 } else { 5 };
        keep(
            &job.bytes,
            brotli_bytes(&job.bytes, quality),
            &job.etag,
            "br",
            |c| {
                let mut out = Vec::new();
                brotli::Decompressor::new(c, 64 * 1024)
                    .read_to_end(&mut out)
                    .map(|_| out)
            },
        )
    });
    let _ = job.variants.gzip.get_or_init(|| {
        let level = if small { 9 } else { 6 };
        keep(
            &job.bytes,
            gzip_bytes(&job.bytes, level),
            &job.etag,
            "gz",
            |c| {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(c)
                    .read_to_end(&mut out)
                    .map(|_| out)
            },
        )
    });
}

/// The variant, if compression worked, saves a tenth, and decompresses to the original.
fn keep(
    original: &Bytes,
    compressed: std::io::Result<Vec<u8>>,
    etag: &HeaderValue,
    suffix: &str,
    decompress: impl Fn(&[u8]) -> std::io::Result<Vec<u8>>,
) -> Option<Variant> {
    let compressed = compressed.ok()?;
    if compressed.len() * 10 > original.len() * 9 {
        return None;
    }
    if decompress(&compressed).ok()?.as_slice() != original.as_ref() {
        tracing::error!("a compressed variant did not decompress to its file; it is not used");
        return None;
    }
    let tag = etag.to_str().ok()?.trim_end_matches('"');
    Some(Variant {
        bytes: Bytes::from(compressed),
        etag: HeaderValue::from_str(&format!("{tag}-{suffix}\"")).ok()?,
    })
}

fn brotli_bytes(bytes: &[u8], quality: u32) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
        w.write_all(bytes)?;
    }
    Ok(out)
}

fn gzip_bytes(bytes: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut w = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::new(level),
    );
    w.write_all(bytes)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_decompress_to_the_file_and_have_their_own_etags() {
        let bytes = Bytes::from("{\"votos\": 12345}\n".repeat(200));
        let job = Job {
            path: "/a.json".to_owned(),
            bytes: bytes.clone(),
            etag: HeaderValue::from_static("\"abc\""),
            variants: Arc::new(Variants::default()),
        };
        fill(&job);
        let br = job.variants.br.get().unwrap().as_ref().unwrap();
        assert_eq!(br.etag, "\"abc-br\"");
        let mut out = Vec::new();
        brotli::Decompressor::new(&br.bytes[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, bytes);
        let gz = job.variants.gzip.get().unwrap().as_ref().unwrap();
        assert_eq!(gz.etag, "\"abc-gz\"");
        assert!(gz.bytes.len() < bytes.len() / 10);
    }

    #[test]
    fn incompressible_files_keep_no_variant() {
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        let job = Job {
            path: "/n.bin".to_owned(),
            bytes: Bytes::from(noise),
            etag: HeaderValue::from_static("\"n\""),
            variants: Arc::new(Variants::default()),
        };
        fill(&job);
        assert!(job.variants.br.get().unwrap().is_none());
        assert!(job.variants.gzip.get().unwrap().is_none());
        assert!(compressible("application/json; charset=utf-8", 300));
        assert!(!compressible("application/zip", 300_000));
        assert!(!compressible("text/css", 10));
    }
}
