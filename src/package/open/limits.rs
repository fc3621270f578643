//! The limits walk: what one package may still spend of its [`Limits`], and the reads that
//! spend it.
//!
//! A [`Budget`] counts members and inflated bytes over a whole package, nested archives
//! included. [`Budget::read_member`] is the only way member bytes are read: it checks the
//! member size, the total unpacked size, the member's own compression ratio (zip) and the whole
//! package's ratio after every chunk, so a bomb is stopped within [`READ_CHUNK`] of the limit,
//! whatever sizes the archive declares. Declared sizes are used only to reserve memory, and
//! never beyond what the limits still allow. A [`CountingReader`] caps and measures a stream
//! (the compressed bytes a zip member pulls, the whole of a tar stream).

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use bytes::Bytes;

use super::super::{Limits, Rejection};

/// Members under this many inflated bytes are not held to [`Limits::max_ratio`], nor packages
/// under it in all to [`Limits::max_package_ratio`].
const RATIO_EXEMPT_BYTES: u64 = 1024 * 1024;

/// Room for a tar member's headers beyond its names ([`Budget::tar_header_room`]).
const TAR_HEADER_ROOM: u64 = 64 * 1024;

/// How many bytes are read from the inflater at a time, so limits stop a bomb early.
const READ_CHUNK: u64 = 64 * 1024;

/// Refuses a package larger than [`Limits::max_package_bytes`].
pub(super) fn check_package_size(size: u64, limits: &Limits) -> Result<(), Rejection> {
    if size > limits.max_package_bytes {
        return Err(Rejection::Limit {
            what: format!("package size, {size} bytes (max_package_bytes)"),
            limit: limits.max_package_bytes,
        });
    }
    Ok(())
}

/// What one package has consumed of its limits so far, at every nesting depth.
pub(super) struct Budget<'l> {
    /// The limits of this package.
    limits: &'l Limits,
    /// Size of the package file, for [`Limits::max_package_ratio`].
    package_bytes: u64,
    /// Members (files and directories) seen so far, at every depth.
    members: u64,
    /// Bytes of files inflated so far, at every depth.
    unpacked: u64,
}

impl<'l> Budget<'l> {
    /// The budget of a package file of `package_bytes` that has consumed nothing yet.
    pub(super) fn new(limits: &'l Limits, package_bytes: u64) -> Self {
        Budget {
            limits,
            package_bytes,
            members: 0,
            unpacked: 0,
        }
    }

    /// The limits of this package.
    pub(super) fn limits(&self) -> &'l Limits {
        self.limits
    }

    /// Refuses, before any is read, `more` members than [`Limits::max_members`] still allows.
    pub(super) fn check_members_ahead(&self, more: u64) -> Result<(), Rejection> {
        let remaining = self.limits.max_members.saturating_sub(self.members);
        if more > remaining {
            return Err(self.too_many_members());
        }
        Ok(())
    }

    /// Counts one more member (file or directory) against [`Limits::max_members`].
    pub(super) fn count_member(&mut self) -> Result<(), Rejection> {
        self.members += 1;
        if self.members > self.limits.max_members {
            return Err(self.too_many_members());
        }
        Ok(())
    }

    /// The rejection for passing [`Limits::max_members`].
    fn too_many_members(&self) -> Rejection {
        Rejection::Limit {
            what: "number of members".to_owned(),
            limit: self.limits.max_members,
        }
    }

    /// Reads one member's bytes, stopping as soon as it passes the member size, the total
    /// size, the whole package's compression ratio, or (for a zip member) its own ratio,
    /// measured against the compressed bytes pulled so far. Every chunk kept is also handed
    /// to `feed`, in order, as it is read.
    pub(super) fn read_member(
        &mut self,
        reader: &mut dyn Read,
        path: &str,
        sizes: Sizes<'_>,
        feed: &mut dyn FnMut(&[u8]),
    ) -> Result<Bytes, Rejection> {
        let limits = self.limits;
        let mut bytes = Vec::with_capacity(self.capacity_hint(&sizes));
        loop {
            // Straight into the member's buffer, at most a chunk at a time (interrupted reads
            // are retried by `read_to_end`).
            let before = bytes.len();
            match reader.take(READ_CHUNK).read_to_end(&mut bytes) {
                Ok(0) => break,
                Ok(_) => feed(bytes.get(before..).unwrap_or_default()),
                Err(e) => {
                    return Err(Rejection::NotAnArchive(format!(
                        "cannot read member {path:?}: {e}"
                    )));
                }
            }
            let len = bytes.len() as u64;
            if len > limits.max_member_bytes {
                return Err(Rejection::Limit {
                    what: format!("size of member {path:?}"),
                    limit: limits.max_member_bytes,
                });
            }
            let total = self.unpacked.saturating_add(len);
            if total > limits.max_unpacked_bytes {
                return Err(Rejection::Limit {
                    what: format!("total unpacked size, at member {path:?}"),
                    limit: limits.max_unpacked_bytes,
                });
            }
            if let Some(pulled) = &sizes.pulled {
                let compressed = sizes.compressed.unwrap_or(u64::MAX).min(pulled());
                check_ratio(len, compressed, limits, || format!("member {path:?}"))?;
            }
            check_package_ratio(total, self.package_bytes, limits)?;
        }
        self.unpacked = self.unpacked.saturating_add(bytes.len() as u64);
        bytes.shrink_to_fit();
        Ok(Bytes::from(bytes))
    }

    /// How many bytes to reserve for a member: its declared size, but never more than the
    /// limits still allow, so a lying header cannot make us reserve memory.
    fn capacity_hint(&self, sizes: &Sizes<'_>) -> usize {
        let limits = self.limits;
        let mut most = limits
            .max_member_bytes
            .min(limits.max_unpacked_bytes.saturating_sub(self.unpacked))
            .min(
                limits
                    .max_package_ratio
                    .saturating_mul(self.package_bytes)
                    .max(RATIO_EXEMPT_BYTES)
                    .saturating_sub(self.unpacked),
            );
        if let Some(compressed) = sizes.compressed {
            most = most.min(
                limits
                    .max_ratio
                    .saturating_mul(compressed)
                    .max(RATIO_EXEMPT_BYTES),
            );
        }
        usize::try_from(sizes.declared.min(most)).unwrap_or(0)
    }

    /// The most bytes of headers the tar reader may read before one member: its header
    /// block, and pax extended headers and GNU long names and links, which the reader holds
    /// in memory whole. Generous for any archiver (a long name and link, times, owners,
    /// extended attributes), and far from what a header crafted to exhaust memory needs.
    pub(super) fn tar_header_room(&self) -> u64 {
        TAR_HEADER_ROOM.saturating_add(2u64.saturating_mul(self.limits.max_name_len as u64))
    }

    /// The most bytes a tar stream may hold: every member at its limit, plus generous room for
    /// headers, long names and padding. Bounds what the tar reader itself buffers.
    pub(super) fn tar_stream_cap(&self) -> u64 {
        let per_member =
            4096u64.saturating_add(2u64.saturating_mul(self.limits.max_name_len as u64));
        self.limits
            .max_unpacked_bytes
            .saturating_add(
                self.limits
                    .max_members
                    .saturating_add(1)
                    .saturating_mul(per_member),
            )
            .saturating_add(RATIO_EXEMPT_BYTES)
    }
}

/// What is known of a member's size before it is read.
pub(super) struct Sizes<'a> {
    /// The size its header declares (a hint only: it may lie).
    pub(super) declared: u64,
    /// The compressed size it declares, for a zip member.
    pub(super) compressed: Option<u64>,
    /// The compressed bytes the inflater has pulled so far, for a zip member: unlike the
    /// declared size, it cannot lie upwards to hide a bomb.
    pub(super) pulled: Option<&'a dyn Fn() -> u64>,
}

/// Refuses a package whose members inflate, in all, to more than
/// [`Limits::max_package_ratio`] times the package file, once past [`RATIO_EXEMPT_BYTES`]:
/// many members each just under the per-member exemption cannot add up to a bomb.
fn check_package_ratio(unpacked: u64, package: u64, limits: &Limits) -> Result<(), Rejection> {
    if unpacked >= RATIO_EXEMPT_BYTES && unpacked > limits.max_package_ratio.saturating_mul(package)
    {
        return Err(Rejection::Limit {
            what: format!(
                "compression ratio of the whole package ({unpacked} bytes inflated so far from \
                 a package of {package}; max_package_ratio)"
            ),
            limit: limits.max_package_ratio,
        });
    }
    Ok(())
}

/// The most bytes `compressed` bytes may inflate to under [`Limits::max_ratio`] (any size
/// up to [`RATIO_EXEMPT_BYTES`]).
pub(super) fn ratio_bound(compressed: u64, limits: &Limits) -> u64 {
    limits
        .max_ratio
        .saturating_mul(compressed)
        .max(RATIO_EXEMPT_BYTES)
}

/// Refuses a member of `inflated` bytes made from `compressed` bytes when it is at least
/// [`RATIO_EXEMPT_BYTES`] and inflates more than [`Limits::max_ratio`] times.
pub(super) fn check_ratio(
    inflated: u64,
    compressed: u64,
    limits: &Limits,
    what: impl FnOnce() -> String,
) -> Result<(), Rejection> {
    if inflated >= RATIO_EXEMPT_BYTES && inflated > limits.max_ratio.saturating_mul(compressed) {
        return Err(Rejection::Limit {
            what: format!(
                "compression ratio of {} ({inflated} bytes inflated from {compressed})",
                what()
            ),
            limit: limits.max_ratio,
        });
    }
    Ok(())
}

/// A shared count of the bytes a [`CountingReader`] has passed on.
#[derive(Clone)]
pub(super) struct Counter {
    /// Bytes passed on so far (may exceed `cap` by the one read that tripped it).
    count: Rc<Cell<u64>>,
    /// Whether a read found the end of the underlying stream.
    end: Rc<Cell<bool>>,
    /// The most bytes the reader passes on without failing.
    cap: u64,
    /// A tighter bound for a stretch of the stream (the count it may reach), while one is set.
    stretch: Rc<Cell<Option<u64>>>,
}

impl Counter {
    /// Bytes passed on so far.
    pub(super) fn get(&self) -> u64 {
        self.count.get()
    }

    /// Whether the reader refused to go past its cap.
    pub(super) fn tripped(&self) -> bool {
        self.count.get() > self.cap
    }

    /// The most bytes the reader passes on without failing.
    pub(super) fn cap(&self) -> u64 {
        self.cap
    }

    /// Lets the reader pass on at most `room` more bytes until [`Counter::unbound`].
    pub(super) fn bound_next(&self, room: u64) {
        self.stretch
            .set(Some(self.count.get().saturating_add(room)));
    }

    /// Lifts the bound of [`Counter::bound_next`].
    pub(super) fn unbound(&self) {
        self.stretch.set(None);
    }

    /// Whether the reader refused to go past the bound of [`Counter::bound_next`].
    pub(super) fn stretch_tripped(&self) -> bool {
        self.stretch.get().is_some_and(|end| self.count.get() > end)
    }

    /// Whether a read asked for bytes and found the end of the stream instead.
    pub(super) fn reached_end(&self) -> bool {
        self.end.get()
    }
}

/// A reader that counts what it passes on and fails once it would pass more than `cap` bytes.
/// Seeking passes through and does not change the count.
pub(super) struct CountingReader<R> {
    /// The reader counted.
    inner: R,
    /// The count, shared with handles from [`CountingReader::counter`].
    counter: Counter,
}

impl<R: Read> CountingReader<R> {
    /// Counts what `inner` yields, failing past `cap` bytes.
    pub(super) fn new(inner: R, cap: u64) -> Self {
        CountingReader {
            inner,
            counter: Counter {
                count: Rc::new(Cell::new(0)),
                end: Rc::new(Cell::new(false)),
                cap,
                stretch: Rc::new(Cell::new(None)),
            },
        }
    }

    /// A handle on the count, readable after the reader has been moved away.
    pub(super) fn counter(&self) -> Counter {
        self.counter.clone()
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.counter.end.set(true);
        }
        let total = self.counter.get().saturating_add(n as u64);
        self.counter.count.set(total);
        if total > self.counter.cap || self.counter.stretch_tripped() {
            return Err(io::Error::other("unpacked stream limit passed"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::super::tests::{MIB, limit, not_an_archive, open_bytes, open_with, paths, stored};
    use crate::package::corpus::{TarKind, gzip, low_ratio_data, patch, tar_of, zip_of, zip_with};
    use crate::package::tests::test_limits;
    use crate::package::{Limits, Rejection};

    #[test]
    fn directories_are_skipped_but_counted() {
        let zip = zip_with(&[("css/", b""), ("css/site.css", b"body{}")], stored());
        assert_eq!(paths(&open_bytes(&zip).unwrap().files), ["css/site.css"]);
        let tight = Limits {
            max_members: 1,
            ..test_limits()
        };
        assert_eq!(limit(open_with(&zip, &tight)), "number of members");
    }

    #[test]
    fn limits_are_measured_on_inflated_bytes() {
        let limits = test_limits();
        let big = Limits {
            max_package_bytes: 10,
            ..limits.clone()
        };
        assert!(limit(open_with(&zip_of(&[("a", b"1")]), &big)).starts_with("package size"));

        let sized = low_ratio_data(9 * MIB, 3);
        assert!(limit(open_bytes(&zip_of(&[("big.csv", &sized)]))).starts_with("size of member"));
        let tar = tar_of(&[(b"big.csv", TarKind::File(&sized))]);
        assert!(limit(open_bytes(&tar)).starts_with("size of member"));

        let zeros = vec![0u8; 2 * MIB];
        let bomb = zip_of(&[("bomb.csv", &zeros)]);
        assert!(limit(open_bytes(&bomb)).starts_with("compression ratio of member \"bomb.csv\""));
        // Under 1 MiB a member may compress as well as it likes.
        let small = vec![0u8; MIB - 1];
        assert!(open_bytes(&zip_of(&[("zeros.csv", &small)])).is_ok());
        // The same bytes stored are no bomb.
        assert!(open_bytes(&zip_with(&[("zeros.csv", &zeros)], stored())).is_ok());

        let total = Limits {
            max_unpacked_bytes: 3 * MIB as u64,
            max_ratio: 100_000,
            max_package_ratio: 100_000,
            ..limits.clone()
        };
        let two = zip_of(&[("a.csv", &zeros), ("b.csv", &zeros)]);
        assert!(limit(open_with(&two, &total)).starts_with("total unpacked size"));

        // A tar.gz stream is held to max_ratio as it inflates, before its member is whole.
        let tar_gz = gzip(&tar_of(&[(b"bomb.csv", TarKind::File(&zeros))]));
        let what = limit(open_bytes(&tar_gz));
        assert!(
            what.starts_with("compression ratio of the tar.gz stream (more than 1048576 bytes"),
            "{what}"
        );
        let lax = Limits {
            max_ratio: 100_000,
            ..limits.clone()
        };
        assert!(
            limit(open_with(&tar_gz, &lax)).starts_with("compression ratio of the whole package")
        );
        let lax = Limits {
            max_package_ratio: 100_000,
            ..limits.clone()
        };
        let what = limit(open_with(&tar_gz, &lax));
        assert!(
            what.starts_with("compression ratio of the tar.gz stream"),
            "{what}"
        );
    }

    #[test]
    fn a_lying_declared_size_does_not_get_past_the_limits() {
        // The sizes in both headers claim 1 byte; the deflate stream holds 2 MiB of zeros.
        let zeros = vec![0u8; 2 * MIB];
        let mut zip = zip_of(&[("bomb.csv", &zeros)]);
        let declared = (2 * MIB as u32).to_le_bytes();
        patch(&mut zip, &declared, &1u32.to_le_bytes());
        let err = open_bytes(&zip).unwrap_err();
        assert!(matches!(
            err,
            Rejection::NotAnArchive(_) | Rejection::Limit { .. }
        ));
    }

    #[test]
    fn a_lying_compressed_size_does_not_hide_a_bomb() {
        let zeros = vec![0u8; 4 * MIB];
        let mut zip = zip_of(&[("bomb.csv", &zeros), ("pad.bin", &low_ratio_data(MIB, 5))]);
        let real = {
            let mut archive = ::zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
            archive.by_index(0).unwrap().compressed_size() as u32
        };
        // Claim the bomb's compressed data runs on over the next member: 4 MiB from 600 kB
        // would be a ratio of 7. The entries then overlap, which is refused before any
        // member is read.
        let claimed = real + 600_000;
        patch(&mut zip, &real.to_le_bytes(), &claimed.to_le_bytes());
        match open_bytes(&zip) {
            Err(Rejection::Ambiguous(why)) => assert!(why.contains("overlapping"), "{why}"),
            other => panic!(
                "expected an ambiguous zip, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    #[test]
    fn a_bomb_is_stopped_after_a_few_megabytes_whatever_its_declared_sizes() {
        // 64 MiB of zeros deflate to about 64 kB: the running ratio, measured on the bytes the
        // inflater pulled so far, stops it long before the whole member is in memory.
        let zeros = vec![0u8; 64 * MIB];
        let bomb = zip_of(&[("bomb.csv", &zeros)]);
        let roomy = Limits {
            max_member_bytes: 128 * MIB as u64,
            max_unpacked_bytes: 128 * MIB as u64,
            ..test_limits()
        };
        let what = limit(open_with(&bomb, &roomy));
        let inflated: u64 = what
            .split('(')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(what.starts_with("compression ratio of member"), "{what}");
        assert!(
            inflated < 8 * MIB as u64,
            "stopped only after {inflated} bytes"
        );
    }

    #[test]
    fn many_small_members_cannot_add_up_to_a_bomb() {
        // Each member is just under the per-member exemption; the whole package is not.
        let almost = vec![0u8; MIB - 1];
        let names: Vec<String> = (0..40).map(|i| format!("part{i}.csv")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &almost[..])).collect();
        let zip = zip_of(&members);
        let what = limit(open_bytes(&zip));
        assert!(
            what.starts_with("compression ratio of the whole package"),
            "{what}"
        );
        // The same members stored are no bomb.
        assert!(open_bytes(&zip_with(&members[..4], stored())).is_ok());
    }

    #[test]
    fn nested_members_count_against_the_same_limits() {
        let names: Vec<String> = (0..6).map(|i| format!("{i}.csv")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"1"[..])).collect();
        let outer = zip_of(&[("a.zip", &zip_of(&members))]);
        let tight = Limits {
            max_members: 6,
            ..test_limits()
        };
        assert_eq!(limit(open_with(&outer, &tight)), "number of members");

        let zeros = vec![0u8; 2 * MIB];
        let inner = zip_of(&[("bomb.csv", &zeros)]);
        let outer = zip_with(&[("a.zip", &inner)], stored());
        assert!(limit(open_bytes(&outer)).contains("\"a/bomb.csv\""));

        let garbage = zip_with(&[("a.zip", b"not a zip at all".as_slice())], stored());
        assert!(not_an_archive(open_bytes(&garbage)).starts_with("inner zip \"a\".zip"));
        // An empty inner zip is fine: it holds nothing.
        let empty_inner = zip_with(&[("a.zip", &zip_of(&[])), ("b.csv", b"1")], stored());
        assert!(open_bytes(&empty_inner).unwrap().nested.is_empty());
    }
}
