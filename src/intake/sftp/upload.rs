//! One file being uploaded over SFTP: written, hashed and flushed to disk off the async
//! threads while the client is still sending.
//!
//! Each open upload has a writer on the blocking pool. The session hands it the client's
//! writes in the order they came; it writes each at its offset, hashes the bytes while they
//! run on from the start of the file, and has the kernel write them to disk every
//! [`FLUSH_EVERY`] bytes, so that the hand-over at close neither reads the file again nor
//! waits for hundreds of megabytes to reach the disk.
//!
//! # Guarantees
//! - The digest given at the end is the SHA-256 and size of the file exactly as written. It is
//!   given only when every write continued where the previous one ended, from offset 0 (no
//!   hole, no write over written bytes); otherwise there is none and the archive hashes the
//!   file itself.
//! - A write the disk refuses fails the upload: the error is reported at the next write or at
//!   the close, never lost, and the file is never handed over.
//! - At most [`QUEUED_WRITES`] writes wait for the disk; a client faster than the disk waits.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::Digest as _;
use tempfile::TempPath;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::archive::Hashed;
use crate::hash::Sha256;

/// Writes the session may hand over before it waits for the writer.
const QUEUED_WRITES: usize = 64;
/// Bytes written between two flushes to disk.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

/// One client write.
struct Chunk {
    offset: u64,
    data: Vec<u8>,
}

/// An upload still open for writing.
pub(super) struct Upload {
    tmp: TempPath,
    /// Bytes written so far (the highest offset reached).
    len: u64,
    chunks: mpsc::Sender<Chunk>,
    /// The writer, until it is joined (once it stopped or the upload closed).
    writer: Option<JoinHandle<io::Result<Option<Hashed>>>>,
}

/// A closed upload, complete on disk (not yet fsynced: the archive does that when it takes
/// it).
pub(super) struct Closed {
    /// The file (removed when dropped).
    pub(super) tmp: TempPath,
    /// Its size.
    pub(super) len: u64,
    /// Its digest, when the writes ran in order (see the module documentation).
    pub(super) hashed: Option<Hashed>,
}

impl Upload {
    /// Starts the writer of `file`, the open temporary file at `tmp`.
    pub(super) fn start(file: File, tmp: TempPath) -> Self {
        let (chunks, queue) = mpsc::channel(QUEUED_WRITES);
        let writer = tokio::task::spawn_blocking(move || write_all(&file, queue));
        Self {
            tmp,
            len: 0,
            chunks,
            writer: Some(writer),
        }
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Queues `data` to be written at `offset`. An error is the disk's, from this write or
    /// one before it: the upload cannot go on.
    pub(super) async fn write(&mut self, offset: u64, data: Vec<u8>) -> io::Result<()> {
        let end = offset.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if self.chunks.send(Chunk { offset, data }).await.is_err() {
            // The writer stopped: it failed, and says why when joined.
            return Err(self.stopped().await);
        }
        self.len = self.len.max(end);
        Ok(())
    }

    /// Waits until every write is on the file.
    pub(super) async fn close(self) -> io::Result<Closed> {
        let Self {
            tmp,
            len,
            chunks,
            writer,
        } = self;
        drop(chunks);
        let writer = writer.ok_or_else(|| io::Error::other("the upload's writer failed"))?;
        let hashed = writer.await.unwrap_or_else(|e| Err(io::Error::other(e)))?;
        Ok(Closed { tmp, len, hashed })
    }

    /// The error that stopped the writer.
    async fn stopped(&mut self) -> io::Error {
        match self.writer.take() {
            Some(writer) => match writer.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => io::Error::other("the upload's writer stopped"),
                Err(e) => io::Error::other(e),
            },
            None => io::Error::other("the upload's writer failed"),
        }
    }
}

/// The writer: every queued chunk to `file`, until the session closes the queue; the digest
/// when the chunks ran in order from offset 0.
fn write_all(file: &File, mut queue: mpsc::Receiver<Chunk>) -> io::Result<Option<Hashed>> {
    let mut hasher = Some(sha2::Sha256::new());
    let (mut end, mut flushed) = (0u64, 0u64);
    while let Some(Chunk { offset, data }) = queue.blocking_recv() {
        file.write_all_at(&data, offset)?;
        if offset == end
            && let Some(hasher) = hasher.as_mut()
        {
            hasher.update(&data);
        } else {
            hasher = None;
        }
        end = end.max(offset.saturating_add(data.len() as u64));
        if end - flushed >= FLUSH_EVERY {
            file.sync_data()?;
            flushed = end;
        }
    }
    Ok(hasher.map(|h| Hashed {
        sha256: Sha256::from_bytes(h.finalize().into()),
        size: end,
    }))
}

#[cfg(test)]
mod tests {
    //! The digest rule, with writes no OpenSSH client makes (out of order, over each other).

    use super::*;

    async fn upload(writes: &[(u64, &[u8])]) -> (Closed, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (file, tmp) = tempfile::NamedTempFile::new_in(dir.path())
            .unwrap()
            .into_parts();
        let mut upload = Upload::start(file, tmp);
        for (offset, data) in writes {
            upload.write(*offset, data.to_vec()).await.unwrap();
        }
        let closed = upload.close().await.unwrap();
        let bytes = std::fs::read(&closed.tmp).unwrap();
        (closed, bytes)
    }

    #[tokio::test]
    async fn writes_in_order_give_the_digest_of_the_file() {
        let (closed, bytes) = upload(&[(0, b"abc"), (3, b"defg"), (7, b"")]).await;
        assert_eq!(bytes, b"abcdefg");
        let hashed = closed.hashed.expect("in order: hashed");
        assert_eq!(hashed.sha256, Sha256::of(b"abcdefg"));
        assert_eq!((hashed.size, closed.len), (7, 7));
    }

    #[tokio::test]
    async fn a_hole_an_overwrite_or_a_late_start_gives_no_digest() {
        for writes in [
            &[(0, &b"abc"[..]), (5, b"fg")][..],
            &[(0, b"abc"), (1, b"XY"), (3, b"d")],
            &[(2, b"cd"), (0, b"ab")],
        ] {
            let (closed, bytes) = upload(writes).await;
            assert!(
                closed.hashed.is_none(),
                "{writes:?} gave {bytes:?} a digest"
            );
            assert_eq!(closed.len, bytes.len() as u64);
        }
    }
}
