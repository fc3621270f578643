//! One file being uploaded over SFTP: written, hashed and flushed to disk off the async
//! threads while the client is still sending.
//!
//! Each open upload has a writer task. The session hands it the client's writes in the order
//! they came; it takes whatever has queued up and writes it in one visit to the blocking pool:
//! each write at its offset, the bytes hashed while they run on from the start of the file,
//! and the kernel told to put them on disk every [`FLUSH_EVERY`] bytes. So the hand-over at
//! close neither reads the file again nor waits for hundreds of megabytes to reach the disk,
//! and an upload holds a blocking thread only while it has something to write.
//!
//! # Guarantees
//! - The digest given at the end is the SHA-256 and size of the file exactly as written. It is
//!   given only when every write continued where the previous one ended, from offset 0 (no
//!   hole, no write over written bytes); otherwise there is none and the archive hashes the
//!   file itself.
//! - A write the disk refuses fails the upload: the error is reported at the next write or at
//!   the close, never lost, and the file is never handed over.
//! - Each write holds the room it claimed on the disk ([`crate::store::space`]) until it is
//!   on the file, or dropped unwritten: bytes queued here count against the reserve as
//!   surely as bytes on the disk.
//! - The writes of one session waiting for the disk hold at most [`QUEUED_BYTES`] in all
//!   uploads together (and at most [`QUEUED_WRITES`] writes per upload); a client faster than
//!   the disk waits.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use sha2::Digest as _;
use tempfile::TempPath;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::hash::{Hashed, Sha256};
use crate::store::space::Claim;

/// Bytes of one session's writes that may wait for the disk, in all its uploads together.
/// Larger than any SFTP write (russh-sftp takes packets of at most 256 KiB).
const QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// Writes of one upload that may wait for the disk.
const QUEUED_WRITES: usize = 512;
/// Bytes written between two flushes to disk.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

/// The room one session's uploads share for writes waiting for the disk.
pub(super) fn queue_room() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(QUEUED_BYTES))
}

/// One client write, holding its room in the session's queue and its room on the disk
/// until it is on the file.
struct Chunk {
    offset: u64,
    data: Vec<u8>,
    room: OwnedSemaphorePermit,
    space: Claim,
}

/// An upload still open for writing.
pub(super) struct Upload {
    tmp: TempPath,
    /// Bytes written so far (the highest offset reached).
    len: u64,
    room: Arc<Semaphore>,
    chunks: mpsc::Sender<Chunk>,
    /// The writer, until it is joined (once it stopped or the upload closed).
    writer: Option<JoinHandle<io::Result<Option<Hashed>>>>,
    /// Whether every write goes at the end, whatever its offset (SFTP's `APPEND`).
    appends: bool,
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
    /// Starts the writer of `file`, the open temporary file at `tmp`; its writes wait in the
    /// session's `room` (from [`queue_room`]).
    pub(super) fn start(file: File, tmp: TempPath, room: Arc<Semaphore>) -> Self {
        let disk = Disk {
            file,
            hasher: Some(sha2::Sha256::new()),
            end: 0,
            flushed: 0,
        };
        Self::run(disk, tmp, room, false)
    }

    /// Opens `closed` for writing again, to go on from its end (a resumed upload: OpenSSH's
    /// `reput`), its writes at the end whatever their offset when `appends`. The archive
    /// hashes such a file itself.
    pub(super) fn resume(closed: Closed, room: Arc<Semaphore>, appends: bool) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new().write(true).open(&closed.tmp)?;
        let disk = Disk {
            file,
            hasher: None,
            end: closed.len,
            flushed: 0,
        };
        let mut upload = Self::run(disk, closed.tmp, room, appends);
        upload.len = closed.len;
        Ok(upload)
    }

    fn run(disk: Disk, tmp: TempPath, room: Arc<Semaphore>, appends: bool) -> Self {
        let (chunks, queue) = mpsc::channel(QUEUED_WRITES);
        Self {
            tmp,
            len: 0,
            room,
            chunks,
            writer: Some(tokio::spawn(disk.take(queue))),
            appends,
        }
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Where a write the client sent for `offset` goes: at the end, for an upload opened to
    /// append.
    pub(super) fn offset_of(&self, offset: u64) -> u64 {
        if self.appends { self.len } else { offset }
    }

    /// Queues `data` to be written at `offset`, with its room on the disk (`space`), given
    /// back once it is on the file. An error is the disk's, from this write or one before it:
    /// the upload cannot go on.
    pub(super) async fn write(
        &mut self,
        offset: u64,
        data: Vec<u8>,
        space: Claim,
    ) -> io::Result<()> {
        let end = offset.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        let bytes = u32::try_from(data.len().min(QUEUED_BYTES)).unwrap_or(u32::MAX);
        let room = self
            .room
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(io::Error::other)?;
        let chunk = Chunk {
            offset,
            data,
            room,
            space,
        };
        if self.chunks.send(chunk).await.is_err() {
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
            ..
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

/// The file as the writer keeps it: how far the bytes run in order from offset 0, hashed,
/// and how far they are flushed.
struct Disk {
    file: File,
    /// The hash of bytes `0..end`, while every write continued at `end`.
    hasher: Option<sha2::Sha256>,
    end: u64,
    flushed: u64,
}

impl Disk {
    /// The writer task: whatever has queued, written in one visit to the blocking pool, until
    /// the session closes the queue; then the digest, when the writes ran in order.
    async fn take(mut self, mut queue: mpsc::Receiver<Chunk>) -> io::Result<Option<Hashed>> {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, QUEUED_WRITES).await > 0 {
            let chunks = std::mem::take(&mut batch);
            self = tokio::task::spawn_blocking(move || self.write(chunks).map(|()| self))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)))?;
        }
        Ok(self.hasher.map(|h| Hashed {
            sha256: Sha256::from_bytes(h.finalize().into()),
            size: self.end,
        }))
    }

    /// Writes `chunks` in order, each giving back its room in the queue and on the disk once
    /// written (or, after a failure, once dropped unwritten).
    fn write(&mut self, chunks: Vec<Chunk>) -> io::Result<()> {
        for Chunk {
            offset,
            data,
            room,
            space,
        } in chunks
        {
            self.file.write_all_at(&data, offset)?;
            drop((room, space));
            if offset == self.end
                && let Some(hasher) = self.hasher.as_mut()
            {
                hasher.update(&data);
            } else {
                self.hasher = None;
            }
            self.end = self.end.max(offset.saturating_add(data.len() as u64));
            if self.end - self.flushed >= FLUSH_EVERY {
                self.file.sync_data()?;
                self.flushed = self.end;
            }
        }
        Ok(())
    }
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
        let space = crate::store::space::tests::reserve_at(dir.path(), 0).uploads();
        let mut upload = Upload::start(file, tmp, queue_room());
        for (offset, data) in writes {
            let claim = space.claim(data.len() as u64).unwrap();
            upload.write(*offset, data.to_vec(), claim).await.unwrap();
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
