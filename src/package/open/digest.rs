//! The SHA-256 of a member, computed while it is read: every member is served with it as its
//! strong ETag (`"<sha256>"`), and a member list is checked against it.
//!
//! A large member is hashed on a helper thread fed with each chunk as it is read (and
//! inflated), so hashing overlaps reading instead of following it: a 200 MB member is live
//! about a tenth of a second sooner. The work is the same; it is only done sooner.
//!
//! # Guarantees
//! - The digest is of exactly the bytes the member ends up with: every chunk the reader
//!   appended, in order; none is given for a read that failed.
//! - At most [`QUEUED_CHUNKS`] chunks wait for the helper; no more than one helper runs per
//!   member being read. When no thread can be started, the member is hashed on the reading
//!   thread instead.

use std::sync::mpsc;

use sha2::Digest as _;

use super::super::Rejection;
use crate::hash::Sha256;

/// Members declared at least this large are hashed on a helper thread.
const OVERLAP_FROM: u64 = 1024 * 1024;
/// Chunks that may wait for the helper.
const QUEUED_CHUNKS: usize = 32;

/// Runs `read`, which hands every chunk it keeps to the function it is given, and returns its
/// result with the SHA-256 of those chunks. `declared` is the member's declared size (only a
/// hint: a lie changes where the hashing runs, not what it gives).
pub(super) fn while_reading<T>(
    declared: u64,
    read: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<T, Rejection>,
) -> Result<(T, Sha256), Rejection> {
    if declared < OVERLAP_FROM {
        return here(read);
    }
    std::thread::scope(|scope| {
        let (chunks, queue) = mpsc::sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let helper = std::thread::Builder::new()
            .name("hasher".into())
            .spawn_scoped(scope, move || {
                let mut hasher = sha2::Sha256::new();
                for chunk in queue {
                    hasher.update(&chunk);
                }
                finish(hasher)
            });
        let Ok(helper) = helper else {
            return here(read);
        };
        // The helper takes chunks until the queue closes, so a send cannot fail.
        let out = read(&mut |chunk| {
            let _ = chunks.send(chunk.to_vec());
        });
        drop(chunks);
        let digest = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        out.map(|out| (out, digest))
    })
}

/// [`while_reading`] on the reading thread alone.
fn here<T>(
    read: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<T, Rejection>,
) -> Result<(T, Sha256), Rejection> {
    let mut hasher = sha2::Sha256::new();
    let out = read(&mut |chunk| hasher.update(chunk))?;
    Ok((out, finish(hasher)))
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
        for declared in [10, 2 * OVERLAP_FROM] {
            let failed: Result<((), Sha256), Rejection> = while_reading(declared, |feed| {
                feed(&[1; 4096]);
                Err(Rejection::Empty)
            });
            assert!(matches!(failed, Err(Rejection::Empty)));
        }
    }

    #[test]
    fn the_digest_is_of_every_chunk_in_order_on_either_thread() {
        let chunks: Vec<Vec<u8>> = (0..40u8)
            .map(|i| vec![i; 64 * 1024 + usize::from(i)])
            .collect();
        let whole = chunks.concat();
        for declared in [0, OVERLAP_FROM, u64::MAX] {
            let (len, digest) = while_reading(declared, |feed| {
                chunks.iter().for_each(|c| feed(c));
                Ok(whole.len())
            })
            .unwrap();
            assert_eq!((len, digest), (whole.len(), Sha256::of(&whole)));
        }
    }
}
