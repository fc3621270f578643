//! The SHA-256 of a member, computed while it is read: every member is served with it as its
//! strong ETag (`"<sha256>"`), and a member list is checked against it.
//!
//! The first [`OVERLAP_FROM`] bytes of a member are hashed on the reading thread. A member
//! that turns out larger is handed, hash so far and every later chunk, to a helper thread, so
//! hashing overlaps reading (and inflating) instead of following it: a 200 MB member is live
//! about a tenth of a second sooner. The work is the same; it is only done sooner.
//!
//! # Guarantees
//! - The digest is of exactly the bytes the member ends up with: every chunk the reader
//!   appended, in order; none is given for a read that failed.
//! - The helper is started from the bytes actually read, never from a size the archive
//!   declares: a package of many small members claiming to be large starts none. At most one
//!   helper runs per member being read, and at most [`QUEUED_CHUNKS`] chunks wait for it.
//!   When no thread can be started, the member is hashed on the reading thread.

use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};

use sha2::Digest as _;

use super::super::Rejection;
use crate::hash::Sha256;

/// Bytes of a member hashed on the reading thread; the rest of a larger one goes to a helper.
const OVERLAP_FROM: u64 = 1024 * 1024;
/// Chunks that may wait for the helper.
const QUEUED_CHUNKS: usize = 32;

/// A helper hashing the chunks it is sent, from a hash already begun.
type Helper<'scope> = (mpsc::SyncSender<Vec<u8>>, ScopedJoinHandle<'scope, Sha256>);

/// Runs `read`, which hands every chunk it keeps to the function it is given, and returns its
/// result with the SHA-256 of those chunks.
pub(super) fn while_reading<T>(
    read: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<T, Rejection>,
) -> Result<(T, Sha256), Rejection> {
    std::thread::scope(|scope| {
        let mut hasher = sha2::Sha256::new();
        let mut fed = 0u64;
        let mut helper: Option<Helper<'_>> = None;
        let out = read(&mut |chunk| {
            if let Some((chunks, _)) = &helper {
                // The helper takes chunks until the queue closes, so a send cannot fail.
                let _ = chunks.send(chunk.to_vec());
                return;
            }
            hasher.update(chunk);
            let before = fed;
            fed = fed.saturating_add(chunk.len() as u64);
            if before < OVERLAP_FROM && fed >= OVERLAP_FROM {
                helper = start_helper(scope, hasher.clone());
            }
        });
        let digest = match helper {
            Some((chunks, helper)) => {
                drop(chunks);
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
            None => finish(hasher),
        };
        out.map(|out| (out, digest))
    })
}

/// A helper that goes on from `hasher`; `None` when no thread can be started.
fn start_helper<'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut hasher: sha2::Sha256,
) -> Option<Helper<'scope>> {
    let (chunks, queue) = mpsc::sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
    let helper = std::thread::Builder::new()
        .name("hasher".into())
        .spawn_scoped(scope, move || {
            for chunk in queue {
                hasher.update(&chunk);
            }
            finish(hasher)
        })
        .ok()?;
    Some((chunks, helper))
}

fn finish(hasher: sha2::Sha256) -> Sha256 {
    Sha256::from_bytes(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    //! The digest of every member, small ones hashed on the reading thread and large ones on
    //! the helper, deflated and stored, at the top and nested; and none for a failed read.

    use super::super::tests::{MIB, open_bytes, stored};
    use super::*;
    use crate::package::corpus::{zip_of, zip_with};

    #[test]
    fn every_member_has_the_digest_of_its_bytes() {
        // Incompressible (xorshift), so that the package's ratio limits let it through.
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let large: Vec<u8> = (0..3 * MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let inner = zip_of(&[("b/grande.csv", &large), ("b/chico.csv", b"x,y\n")]);
        for package in [
            zip_of(&[("index.html", b"<p>hola</p>"), ("datos.bin", &large)]),
            zip_with(&[("datos.bin", &large), ("a.json", b"{}")], stored()),
            zip_of(&[("interno.zip", &inner), ("LEEME.txt", b"hola")]),
        ] {
            let opened = open_bytes(&package).unwrap();
            for member in opened.files.iter().chain(&opened.nested) {
                assert_eq!(member.sha256, Sha256::of(&member.bytes), "{}", member.path);
            }
        }
    }

    #[test]
    fn a_failed_read_gives_no_digest() {
        for size in [4096, 2 * OVERLAP_FROM as usize] {
            let failed: Result<((), Sha256), Rejection> = while_reading(|feed| {
                feed(&vec![1; size]);
                Err(Rejection::Empty)
            });
            assert!(matches!(failed, Err(Rejection::Empty)));
        }
    }

    /// Below, at and past the point where a helper takes over, in chunks of every size.
    #[test]
    fn the_digest_is_of_every_chunk_in_order_on_either_thread() {
        for count in [3u8, 16, 40] {
            let chunks: Vec<Vec<u8>> = (0..count)
                .map(|i| vec![i; 64 * 1024 + usize::from(i)])
                .collect();
            let whole = chunks.concat();
            let (len, digest) = while_reading(|feed| {
                chunks.iter().for_each(|c| feed(c));
                Ok(whole.len())
            })
            .unwrap();
            assert_eq!((len, digest), (whole.len(), Sha256::of(&whole)), "{count}");
        }
    }
}
