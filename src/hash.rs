//! SHA-256 digests: the identity of every package, file and corte.
//!
//! A [`Sha256`] is always 32 bytes; its text form is 64 lowercase hex digits, the form
//! `sha256sum` prints and the one the journal, the archive and the `X-PREP-Package`
//! header use.
//!
//! [`stream`] is how a file is read through any digest or verifier (this one, a minisign
//! signature's): in large chunks, never whole into memory.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::Digest as _;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sha256([u8; 32]);

impl Sha256 {
    /// Wraps a digest computed elsewhere.
    pub(crate) fn from_bytes(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// The digest of everything `reader` yields, and how many bytes that was.
    pub(crate) fn of_reader(reader: impl Read) -> io::Result<(Self, u64)> {
        let mut hasher = sha2::Sha256::new();
        let total = stream(reader, |chunk| hasher.update(chunk))?;
        Ok((Self(hasher.finalize().into()), total))
    }

    /// The 64-digit lowercase hex form.
    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// The SHA-256 and size of a file, computed by whoever wrote every byte of it (the SFTP
/// intake's upload writer, the pull's download), for the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// SHA-256 of the file's bytes.
    pub(crate) sha256: Sha256,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// How many bytes [`stream`] reads at a time.
const STREAM_CHUNK: usize = 256 * 1024;

/// Hands everything `reader` yields to `consume`, in chunks of up to [`STREAM_CHUNK`] bytes,
/// and returns how many bytes that was. Interrupted reads are retried; any other read error
/// ends the stream.
pub(crate) fn stream(reader: impl Read, consume: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut reader = io::BufReader::with_capacity(STREAM_CHUNK, reader);
    io::copy(&mut reader, &mut Feed(consume))
}

/// A writer that hands every slice written to it to a function.
struct Feed<F>(F);

impl<F: FnMut(&[u8])> io::Write for Feed<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (self.0)(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// Why a text is not a SHA-256 digest.
#[derive(Debug, thiserror::Error)]
#[error("not a SHA-256 digest (64 hexadecimal digits): {0:?}")]
pub(crate) struct NotADigest(pub(crate) String);

impl FromStr for Sha256 {
    type Err = NotADigest;

    /// Accepts 64 hex digits in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(NotADigest(s.chars().take(80).collect()));
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Sha256::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let (d, n) = Sha256::of_reader(&b"abc"[..]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(d, Sha256::of(b"abc"));
    }

    #[test]
    fn parses_either_case_and_rejects_other_text() {
        let d = Sha256::of(b"x");
        assert_eq!(d.to_hex().to_uppercase().parse::<Sha256>().unwrap(), d);
        assert!("abc".parse::<Sha256>().is_err());
        assert!("g".repeat(64).parse::<Sha256>().is_err());
    }

    #[test]
    fn streaming_reads_every_byte_in_chunks_and_retries_interrupted_reads() {
        /// Yields `data`, failing with `Interrupted` before every read.
        struct Interrupting<'a> {
            data: &'a [u8],
            interrupt: bool,
        }
        impl Read for Interrupting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.interrupt = !self.interrupt;
                if self.interrupt {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                self.data.read(buf)
            }
        }
        let data: Vec<u8> = (0..3 * STREAM_CHUNK + 7).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::new();
        let reader = Interrupting {
            data: &data,
            interrupt: false,
        };
        let total = stream(reader, |chunk| chunks.push(chunk.to_vec())).unwrap();
        assert_eq!(total, data.len() as u64);
        assert!(chunks.iter().all(|c| c.len() <= STREAM_CHUNK));
        assert_eq!(chunks.concat(), data);
        let reader = Interrupting {
            data: &data,
            interrupt: false,
        };
        assert_eq!(
            Sha256::of_reader(reader).unwrap(),
            (Sha256::of(&data), data.len() as u64)
        );
    }
}
