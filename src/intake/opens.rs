//! Who holds the intake folder's files open, as the kernel tells it: a watch of its own on
//! the folder (inotify) for every open and every close, whatever the file was opened for.
//!
//! The folder's general watch ([`super::watch`], through `notify`) is told of a close only
//! after a write. Counted from it alone, a file opened to be read (an on-access virus
//! scanner, an operator's `sha256sum`, a backup agent, this server's own look at its first
//! bytes) would stay open for ever, and a package written in place and read once before it
//! was taken would never be taken.
//!
//! # Guarantees
//! - Every open of a file of the folder, and every close (after a write or not), is told as
//!   a [`Change`], in the order the kernel queued them: one queue holds both, so a close is
//!   never told before its open.
//! - When the kernel's queue overflowed, or the watch cannot be read, [`Change::Lost`] is
//!   told: who holds what open is unknown from then on, and the caller lets `settle` decide,
//!   as for its other events lost. A watch that cannot be read is not read again (no loop on
//!   an error) until it is made again ([`Opens::renew`]).

use std::io;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};

/// Bytes read from the kernel's queue at once: a few hundred events.
const BUFFER: usize = 16 * 1024;

/// What the kernel told of a file of the folder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The file at this path was opened.
    Opened(PathBuf),
    /// The file at this path was closed, after a write or not.
    Closed(PathBuf),
    /// Events were lost: every count is unknown.
    Lost,
}

/// The watch of opens and closes on one folder.
pub(crate) struct Opens {
    dir: PathBuf,
    /// `None` once the watch could not be read: nothing more is told until renewed.
    stream: Option<EventStream<Vec<u8>>>,
    watches: Watches,
    watch: Option<WatchDescriptor>,
}

impl Opens {
    /// Watches `dir` for opens and closes.
    pub(crate) fn start(dir: &Path) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        let stream = inotify.into_event_stream(vec![0u8; BUFFER])?;
        let mut watches = stream.watches();
        let watch = watches.add(dir, WatchMask::OPEN | WatchMask::CLOSE | WatchMask::ONLYDIR)?;
        Ok(Self {
            dir: dir.to_owned(),
            stream: Some(stream),
            watches,
            watch: Some(watch),
        })
    }

    /// Watches the folder again (it was replaced, or its watch could not be read); every
    /// count kept before is to be forgotten by the caller.
    pub(crate) fn renew(&mut self) -> io::Result<()> {
        if let Some(old) = self.watch.take() {
            // Gone with its folder already, most likely.
            let _ = self.watches.remove(old);
        }
        if self.stream.is_none() {
            *self = Self::start(&self.dir)?;
            return Ok(());
        }
        self.watch = Some(self.watches.add(
            &self.dir,
            WatchMask::OPEN | WatchMask::CLOSE | WatchMask::ONLYDIR,
        )?);
        Ok(())
    }

    /// The next change; waits for ever once the watch could not be read.
    pub(crate) async fn next(&mut self) -> Change {
        loop {
            let Some(stream) = &mut self.stream else {
                return std::future::pending().await;
            };
            let event = match stream.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read who opens the intake folder's files; settle decides");
                    self.stream = None;
                    return Change::Lost;
                }
                None => {
                    self.stream = None;
                    return Change::Lost;
                }
            };
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                return Change::Lost;
            }
            if Some(&event.wd) != self.watch.as_ref() {
                continue; // a watch replaced, or the folder itself
            }
            let Some(name) = event.name else {
                continue;
            };
            let path = self.dir.join(name);
            if event.mask.contains(EventMask::OPEN) {
                return Change::Opened(path);
            }
            if event
                .mask
                .intersects(EventMask::CLOSE_WRITE | EventMask::CLOSE_NOWRITE)
            {
                return Change::Closed(path);
            }
        }
    }
}
