//! Evidence that a package is the one the institute sent: a `.sha256` sidecar, a member list
//! (a `SHA256SUMS`-style file inside the package) and a minisign signature.
//!
//! [`check`] looks at each kind of evidence the package came with. Evidence that is present
//! and contradicts the package always rejects it; evidence that is missing, or present in a
//! form that cannot be checked, rejects it only when the [`EvidencePolicy`] says that kind is
//! [`Policy::Required`]. The resulting [`Evidence`] says, for each kind, what became of it, so
//! operators and the memoria técnica can tell exactly what a published corte was checked against.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;

use minisign_verify::{PublicKey, Signature};

use super::{Incoming, MAX_EVIDENCE_BYTES, Member, Rejection};
use crate::config::{Config, Invalid};
use crate::hash::{self, Sha256};

pub(crate) use crate::config::Policy;

/// What evidence packages must carry, and what to check signatures and member lists with.
#[derive(Debug, Clone)]
pub(crate) struct EvidencePolicy {
    /// The `<package>.sha256` file beside the package.
    pub(crate) sidecar: Policy,
    /// A member list inside the package (see `member_list_names`).
    pub(crate) member_list: Policy,
    /// A `<package>.minisig` signature beside the package.
    pub(crate) signature: Policy,
    /// Keys a signature may be made with; one must verify it.
    pub(crate) public_keys: Vec<PublicKey>,
    /// Names a top-level member list may have, compared without regard to case
    /// (e.g. `SHA256SUMS`, `HASH`).
    pub(crate) member_list_names: Vec<String>,
}

impl EvidencePolicy {
    /// The policy the settings give: `evidence_sidecar`, `evidence_member_list`,
    /// `evidence_signature`, `minisign_keys` (each read now) and `member_list_names`.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let public_keys = s
            .minisign_keys
            .iter()
            .map(|k| minisign_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        if s.evidence_signature == Policy::Required && public_keys.is_empty() {
            return Err(Invalid::new(
                "evidence_signature",
                "signatures are required but `minisign_keys` is empty; add the institute's \
                 public key or set evidence_signature = \"if-present\"",
            ));
        }
        Ok(Self {
            sidecar: s.evidence_sidecar,
            member_list: s.evidence_member_list,
            signature: s.evidence_signature,
            public_keys,
            member_list_names: s.member_list_names.clone(),
        })
    }
}

/// One of `minisign_keys`: a public key from its base64 line or from a `.pub` file.
fn minisign_key(text: &str) -> Result<PublicKey, Invalid> {
    if let Ok(key) = PublicKey::from_base64(text.trim()) {
        return Ok(key);
    }
    let content = std::fs::read_to_string(text).map_err(|e| {
        Invalid::new(
            "minisign_keys",
            format!("{text:?} is neither a minisign public key (RW…) nor a readable file ({e})"),
        )
    })?;
    PublicKey::decode(&content)
        .or_else(|_| PublicKey::from_base64(content.trim()))
        .map_err(|e| {
            Invalid::new(
                "minisign_keys",
                format!("{text} holds no minisign public key ({e})"),
            )
        })
}

/// What became of one kind of evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EvidenceState {
    /// The package came without it.
    Absent,
    /// It was present and matches the package; the text says what was checked.
    Verified(String),
    /// It was present but could not be checked; the text says why.
    Unchecked(String),
}

impl EvidenceState {
    /// The state in one word: `absent`, `verified` or `unchecked`.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            EvidenceState::Absent => "absent",
            EvidenceState::Verified(_) => "verified",
            EvidenceState::Unchecked(_) => "unchecked",
        }
    }
}

impl fmt::Display for EvidenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Which evidence a verified package had, and what became of each kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Evidence {
    /// The `.sha256` sidecar.
    pub(crate) sidecar: EvidenceState,
    /// The member list inside the package.
    pub(crate) member_list: EvidenceState,
    /// The minisign signature.
    pub(crate) signature: EvidenceState,
}

impl fmt::Display for Evidence {
    /// One line: `sidecar verified; member list absent; signature absent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sidecar {}; member list {}; signature {}",
            self.sidecar, self.member_list, self.signature
        )
    }
}

/// Checks every kind of evidence of `incoming`, whose top-level files are `files`.
///
/// Errors are [`Rejection::Evidence`] (evidence contradicts the package, or required evidence
/// is missing or uncheckable) or [`Rejection::Io`] (the archived copy could not be read to
/// check its signature).
pub(crate) fn check(
    incoming: &Incoming,
    files: &[Member],
    policy: &EvidencePolicy,
) -> Result<Evidence, Rejection> {
    let sidecar = check_sidecar(incoming)?;
    let member_list = check_member_list(files, &policy.member_list_names)?;
    let signature = check_signature(incoming, &policy.public_keys)?;
    enforce(
        policy.sidecar,
        &sidecar,
        "a .sha256 file beside the package",
    )?;
    let list_names = policy.member_list_names.join(", ");
    enforce(
        policy.member_list,
        &member_list,
        &format!("a member list inside the package ({list_names})"),
    )?;
    enforce(
        policy.signature,
        &signature,
        "a minisign signature (.minisig) beside the package",
    )?;
    Ok(Evidence {
        sidecar,
        member_list,
        signature,
    })
}

/// Applies `policy` to a state: a required kind must be [`EvidenceState::Verified`].
fn enforce(policy: Policy, state: &EvidenceState, what: &str) -> Result<(), Rejection> {
    match (policy, state) {
        (Policy::Required, EvidenceState::Absent) => Err(Rejection::Evidence(format!(
            "{what} is required but missing"
        ))),
        (Policy::Required, EvidenceState::Unchecked(why)) => Err(Rejection::Evidence(format!(
            "{what} is required but could not be checked: {why}"
        ))),
        _ => Ok(()),
    }
}

/// The last path component of a name written in a checksum file (`/` or `\` separated).
fn basename(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// The `sha256sum` line for a file `name` whose digest is `digest`: `<hex>  <name>`, with its
/// line end. [`parse_sum_line`] reads it back (and the `<hex> *<name>` binary-mode form too).
pub(crate) fn sum_line(digest: Sha256, name: &str) -> String {
    format!("{digest}  {name}\n")
}

/// One `<hex>  <name>` / `<hex> *<name>` line of `sha256sum` output, or `None`.
fn parse_sum_line(line: &str) -> Option<(Sha256, &str)> {
    let hex = line.get(..64)?;
    let rest = line.get(64..)?;
    let digest = hex.parse::<Sha256>().ok()?;
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    (!name.is_empty()).then_some((digest, name))
}

/// The text of an evidence file as it was sent: UTF-8, or UTF-16 after its byte-order mark
/// (what Windows PowerShell 5 writes with `>` or `Out-File`), or else Latin-1 (Windows-1252,
/// a Windows editor's `AÑO`, as the PREP reader takes it). Every file is some text, so one
/// that is there is checked, and refused if it says nothing usable, rather than taken for
/// absent.
pub(crate) fn evidence_text(bytes: &[u8]) -> String {
    use encoding_rs::{UTF_8, WINDOWS_1252};
    match encoding_rs::Encoding::for_bom(bytes) {
        Some((utf16, bom)) if utf16 != UTF_8 => {
            // Whole code units only: an odd last byte is no character.
            let units = bytes.get(bom..).unwrap_or_default();
            let whole = units.len() - units.len() % 2;
            let units = units.get(..whole).unwrap_or_default();
            utf16.decode_without_bom_handling(units).0.into_owned()
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        },
    }
}

/// An evidence file (`.sha256`, `.minisig`) as it came with its package: the bytes the sender
/// sent, which the archive keeps as they are, or, for a file larger than any evidence may be
/// ([`MAX_EVIDENCE_BYTES`]), only its size: such a file is not read, and the package is refused
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EvidenceFile {
    /// The file's bytes, at most [`MAX_EVIDENCE_BYTES`].
    Sent(Vec<u8>),
    /// The file was this many bytes, more than [`MAX_EVIDENCE_BYTES`].
    TooLarge(u64),
}

impl EvidenceFile {
    /// `bytes` as sent, or [`EvidenceFile::TooLarge`] when there are too many of them.
    pub(crate) fn of_bytes(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        if len > MAX_EVIDENCE_BYTES {
            Self::TooLarge(len)
        } else {
            Self::Sent(bytes)
        }
    }

    /// The bytes as sent; `None` for a file too large to be read.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Sent(bytes) => Some(bytes),
            Self::TooLarge(_) => None,
        }
    }

    /// The text, as [`evidence_text`] decodes it; `None` for a file too large to be read.
    pub(crate) fn text(&self) -> Option<String> {
        self.bytes().map(evidence_text)
    }

    /// The file's text, or the refusal of a file too large to be evidence; `what` names it
    /// (`the .sha256 file`).
    fn text_or_refusal(&self, what: &str) -> Result<String, Rejection> {
        match self {
            Self::Sent(bytes) => Ok(evidence_text(bytes)),
            Self::TooLarge(len) => Err(Rejection::Evidence(format!(
                "{what} is too large: {} bytes, and an evidence file is at most {} bytes; it \
                 was not read",
                indicatif::HumanCount(*len),
                indicatif::HumanCount(MAX_EVIDENCE_BYTES)
            ))),
        }
    }
}

/// The non-empty lines of a text file, without a byte-order mark or line-end whitespace.
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .filter(|l| !l.trim().is_empty())
}

/// Checks the `.sha256` sidecar against the package's digest.
fn check_sidecar(incoming: &Incoming) -> Result<EvidenceState, Rejection> {
    let Some(file) = &incoming.sidecar else {
        return Ok(EvidenceState::Absent);
    };
    let text = file.text_or_refusal("the .sha256 file")?;
    let expected = sidecar_digest(&text, &incoming.name)?;
    if expected != incoming.sha256 {
        return Err(Rejection::Evidence(format!(
            "the .sha256 file says {expected}, but the package's SHA-256 is {}",
            incoming.sha256
        )));
    }
    Ok(EvidenceState::Verified(format!(
        "SHA-256 {expected} matches the .sha256 file"
    )))
}

/// The digest a sidecar gives for the package `name`: a bare digest, or the `sha256sum` line
/// whose file name (less any directories) is `name`.
pub(crate) fn sidecar_digest(text: &str, name: &str) -> Result<Sha256, Rejection> {
    let lines: Vec<&str> = text_lines(text).collect();
    if let [only] = lines.as_slice()
        && let Ok(digest) = only.trim().parse::<Sha256>()
    {
        return Ok(digest);
    }
    let mut entries = Vec::with_capacity(lines.len());
    for (number, line) in lines.iter().enumerate() {
        let Some(entry) = parse_sum_line(line) else {
            let shown: String = line.chars().take(80).collect();
            return Err(Rejection::Evidence(format!(
                "the .sha256 file is neither a SHA-256 digest nor `sha256sum` output \
                 (line {}: {shown:?})",
                number + 1
            )));
        };
        entries.push(entry);
    }
    let mut for_name = entries.iter().filter(|(_, n)| basename(n) == name);
    if let Some((digest, _)) = for_name.next() {
        if for_name.next().is_some() {
            return Err(Rejection::Evidence(format!(
                "the .sha256 file lists {name} more than once: contradictory or repeated \
                 entries are ambiguous"
            )));
        }
        return Ok(*digest);
    }
    match entries.as_slice() {
        [] => Err(Rejection::Evidence("the .sha256 file is empty".to_owned())),
        [(_, other)] => Err(Rejection::Evidence(format!(
            "the .sha256 file is for {other}, not for {name}"
        ))),
        several => {
            let names: Vec<&str> = several.iter().map(|(_, n)| *n).take(5).collect();
            Err(Rejection::Evidence(format!(
                "the .sha256 file lists {}, but not {name}",
                names.join(", ")
            )))
        }
    }
}

/// The digest and file name (less any directories) of a sidecar that is exactly one
/// `sha256sum` line; `None` for a bare digest or several lines.
pub(crate) fn sidecar_single_entry(text: &str) -> Option<(Sha256, String)> {
    let mut lines = text_lines(text);
    let (digest, name) = parse_sum_line(lines.next()?)?;
    lines
        .next()
        .is_none()
        .then(|| (digest, basename(name).to_owned()))
}

/// Checks the member list, if the package has one among its top-level files (the first whose
/// name is one of `names`, in archive order).
///
/// When it parses, it must list each path once, every path it lists (but its own) must be a
/// file of the package with that digest, and every other file of the package must be listed. When it does not parse, the
/// list is [`EvidenceState::Unchecked`].
fn check_member_list(files: &[Member], names: &[String]) -> Result<EvidenceState, Rejection> {
    let Some(list) = files
        .iter()
        .find(|m| !m.path.contains('/') && names.iter().any(|n| n.eq_ignore_ascii_case(&m.path)))
    else {
        return Ok(EvidenceState::Absent);
    };
    let Some(entries) = parse_member_list(&list.bytes) else {
        return Ok(EvidenceState::Unchecked(format!(
            "{} is not a list of `<sha256>  <path>` lines",
            list.path
        )));
    };
    let mut seen = HashSet::new();
    if let Some((_, twice)) = entries.iter().find(|(_, p)| !seen.insert(p.as_str())) {
        return Err(Rejection::Evidence(format!(
            "{} lists {twice:?} more than once: contradictory or repeated entries are ambiguous",
            list.path
        )));
    }
    let by_path: HashMap<&str, &Member> = files.iter().map(|m| (m.path.as_str(), m)).collect();
    let mut listed = HashSet::new();
    // A list cannot hold its own digest; `sha256sum * > SHA256SUMS` writes a line for it anyway.
    for (expected, path) in entries.iter().filter(|(_, p)| *p != list.path) {
        let Some(member) = by_path.get(path.as_str()) else {
            return Err(Rejection::Evidence(format!(
                "{} lists {path:?}, which is not in the package",
                list.path
            )));
        };
        let actual = member.sha256;
        if actual != *expected {
            return Err(Rejection::Evidence(format!(
                "{} gives {expected} for {path:?}, but its SHA-256 is {actual}",
                list.path
            )));
        }
        listed.insert(path.as_str());
    }
    if let Some(unlisted) = files
        .iter()
        .find(|m| m.path != list.path && !listed.contains(m.path.as_str()))
    {
        return Err(Rejection::Evidence(format!(
            "{:?} is not listed in {}",
            unlisted.path, list.path
        )));
    }
    Ok(EvidenceState::Verified(format!(
        "{} files match {}",
        listed.len(),
        list.path
    )))
}

/// The `(digest, path)` entries of a member list (read as [`evidence_text`] reads it), `./`
/// removed; `None` unless every non-empty line is a `sha256sum` line and there is at least one.
fn parse_member_list(bytes: &[u8]) -> Option<Vec<(Sha256, String)>> {
    let text = evidence_text(bytes);
    let entries: Option<Vec<_>> = text_lines(&text)
        .map(|line| {
            let (digest, path) = parse_sum_line(line)?;
            let path = path.trim_start_matches("./");
            Some((digest, path.to_owned()))
        })
        .collect();
    entries.filter(|e| !e.is_empty())
}

/// Checks the minisign signature over the archived package file.
fn check_signature(incoming: &Incoming, keys: &[PublicKey]) -> Result<EvidenceState, Rejection> {
    let Some(file) = &incoming.signature else {
        return Ok(EvidenceState::Absent);
    };
    let text = file.text_or_refusal("the .minisig file")?;
    if keys.is_empty() {
        return Ok(EvidenceState::Unchecked(
            "a signature came with the package, but no public key is configured".to_owned(),
        ));
    }
    match verify_signature(&text, keys, || File::open(&incoming.path)) {
        Ok(trusted_comment) => Ok(EvidenceState::Verified(format!(
            "minisign signature verified (trusted comment: {trusted_comment})"
        ))),
        Err(SignatureError::Io(e)) => Err(Rejection::Io(e)),
        Err(e) => Err(Rejection::Evidence(e.to_string())),
    }
}

/// Why a minisign signature does not verify a file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignatureError {
    /// The text is no minisign signature.
    #[error("the .minisig file is not a minisign signature: {0}")]
    Malformed(String),
    /// The signed file could not be read.
    #[error("the file it signs could not be read: {0}")]
    Io(io::Error),
    /// Made with none of the keys, or not over these bytes; the text says why, for each key.
    #[error("the minisign signature does not verify with any configured public key ({0})")]
    Invalid(String),
}

/// Verifies the minisign signature `text` over the file `open` opens, with any of `keys`: its
/// trusted comment when one of them verifies it. The file is opened only when the signature
/// may be made with one of the keys, and read once, in chunks, through a verifier for each
/// such key (at most what the reader `open` gives yields: a caller bounds it there). Only
/// prehashed signatures (the minisign default) can be streamed; legacy ones are refused
/// rather than read whole.
pub(crate) fn verify_signature<R: io::Read>(
    text: &str,
    keys: &[PublicKey],
    open: impl FnOnce() -> io::Result<R>,
) -> Result<String, SignatureError> {
    use minisign_verify::Error as E;
    let signature =
        Signature::decode(text).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let mut reasons = Vec::new();
    let mut verifiers = Vec::new();
    for key in keys {
        match key.verify_stream(&signature) {
            Ok(verifier) => verifiers.push(verifier),
            Err(E::UnexpectedKeyId) => reasons.push("made with another key".to_owned()),
            Err(E::UnsupportedLegacyMode) => {
                reasons.push("legacy (not prehashed) signatures are not accepted".to_owned())
            }
            Err(other) => reasons.push(other.to_string()),
        }
    }
    if !verifiers.is_empty() {
        let file = open().map_err(SignatureError::Io)?;
        hash::stream(file, |chunk| {
            for verifier in &mut verifiers {
                verifier.update(chunk);
            }
        })
        .map_err(SignatureError::Io)?;
        if verifiers.iter_mut().any(|v| v.finalize().is_ok()) {
            return Ok(signature.trusted_comment().to_owned());
        }
        reasons.push("signature does not match the package".to_owned());
    }
    if keys.is_empty() {
        reasons.push("no public key is configured".to_owned());
    }
    reasons.dedup();
    Err(SignatureError::Invalid(reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::PathBuf;

    use bytes::Bytes;

    use super::*;

    /// The detail text of a verified or unchecked state.
    fn detail(state: &EvidenceState) -> &str {
        match state {
            EvidenceState::Absent => panic!("no detail for an absent state"),
            EvidenceState::Verified(d) | EvidenceState::Unchecked(d) => d,
        }
    }

    /// minisign-verify's own test key and a prehashed signature of the 4 bytes `test`.
    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const SIG: &str = "untrusted comment: signature from minisign secret key
RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=
trusted comment: timestamp:1633700835\tfile:test\tprehashed
wLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==";
    /// The same key's legacy (not prehashed) signature of `test`.
    const LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key
RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=
trusted comment: timestamp:1555779966\tfile:test
QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==";
    /// Another key id (the first characters after `RWQ` changed).
    const OTHER_KEY: &str = "RWQg6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    /// The same key id with other key bytes.
    const FORGED_KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO4";

    const NAME: &str = "20240603_2005_PREP.zip";

    /// A package file holding `content`, and its [`Incoming`] without evidence.
    fn package(content: &[u8]) -> (tempfile::TempDir, Incoming) {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join(NAME);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        let incoming = Incoming {
            name: NAME.to_owned(),
            path,
            sha256: Sha256::of(content),
            size: content.len() as u64,
            sidecar: None,
            signature: None,
        };
        (dir, incoming)
    }

    fn policy() -> EvidencePolicy {
        crate::package::tests::lenient_policy()
    }

    fn member(path: &str, bytes: &[u8]) -> Member {
        Member::new(path, Bytes::copy_from_slice(bytes))
    }

    /// The message of an evidence rejection.
    fn evidence_error(result: Result<Evidence, Rejection>) -> String {
        match result {
            Err(Rejection::Evidence(why)) => why,
            other => panic!("expected an evidence rejection, got {other:?}"),
        }
    }

    fn with_sidecar(text: &str) -> Result<Evidence, Rejection> {
        let (_dir, mut incoming) = package(b"package bytes");
        incoming.sidecar = Some(EvidenceFile::Sent(text.as_bytes().to_vec()));
        check(&incoming, &[], &policy())
    }

    #[test]
    fn no_evidence_is_fine_unless_required() {
        let (_dir, incoming) = package(b"x");
        let evidence = check(&incoming, &[], &policy()).unwrap();
        assert_eq!(
            evidence.to_string(),
            "sidecar absent; member list absent; signature absent"
        );
        for required in [
            EvidencePolicy {
                sidecar: Policy::Required,
                ..policy()
            },
            EvidencePolicy {
                member_list: Policy::Required,
                ..policy()
            },
            EvidencePolicy {
                signature: Policy::Required,
                ..policy()
            },
        ] {
            let why = evidence_error(check(&incoming, &[], &required));
            assert!(why.contains("is required but missing"), "{why}");
        }
    }

    #[test]
    fn evidence_is_read_as_utf8_utf16_or_latin1_text() {
        assert_eq!(evidence_text("año\n".as_bytes()), "año\n");
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("año\r\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(evidence_text(&le), "año\r\n");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("año".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(evidence_text(&be), "año");
        // A lone surrogate is shown as such; an odd last byte is no character.
        assert_eq!(evidence_text(&[0xFF, 0xFE, 0x00, 0xD8]), "\u{FFFD}");
        assert_eq!(evidence_text(&[0xFF, 0xFE, b'a', 0, b'b']), "a");
        // Not UTF-8: Latin-1, as a Windows editor writes `AÑO`.
        assert_eq!(evidence_text(b"A\xd1O"), "AÑO");
    }

    #[test]
    fn sidecars_in_every_accepted_form_verify() {
        let digest = Sha256::of(b"package bytes").to_hex();
        let upper = digest.to_uppercase();
        for text in [
            digest.clone(),
            format!("{digest}\n"),
            format!("\u{feff}{upper}\r\n"),
            format!("{digest}  {NAME}\n"),
            format!("{digest} *{NAME}\r\n"),
            format!("{digest}  /srv/prep/out/{NAME}\n"),
            format!("{}  other.zip\n{digest}  {NAME}\n", Sha256::of(b"o")),
        ] {
            let evidence = with_sidecar(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(evidence.sidecar.word(), "verified", "{text:?}");
            assert!(detail(&evidence.sidecar).contains(&digest));
        }
    }

    #[test]
    fn a_written_sum_line_reads_back() {
        let digest = Sha256::of(b"package bytes");
        let line = sum_line(digest, NAME);
        assert_eq!(line, format!("{digest}  {NAME}\n"));
        assert_eq!(parse_sum_line(line.trim_end()), Some((digest, NAME)));
        assert!(with_sidecar(&line).is_ok());
    }

    #[test]
    fn sidecars_that_do_not_match_reject_the_package() {
        let wrong = Sha256::of(b"other bytes");
        let right = Sha256::of(b"package bytes");
        let why = evidence_error(with_sidecar(&format!("{wrong}  {NAME}\n")));
        assert!(
            why.contains(&wrong.to_hex()) && why.contains(&right.to_hex()),
            "{why}"
        );
        let why = evidence_error(with_sidecar(&format!("{wrong}\n")));
        assert!(why.contains("the .sha256 file says"), "{why}");

        let why = evidence_error(with_sidecar(&format!("{right}  20240603_2000_PREP.zip\n")));
        assert_eq!(
            why,
            format!("the .sha256 file is for 20240603_2000_PREP.zip, not for {NAME}")
        );
        let two = format!("{right}  a.zip\n{right}  b.zip\n");
        assert!(evidence_error(with_sidecar(&two)).contains("lists a.zip, b.zip, but not"));

        for garbage in [
            "",
            "\n\n",
            "not a digest",
            "abc123  x.zip",
            &format!("{right}:{NAME}"),
        ] {
            let why = evidence_error(with_sidecar(garbage));
            assert!(why.contains("the .sha256 file"), "{garbage:?}: {why}");
        }
    }

    #[test]
    fn a_sidecar_naming_the_package_twice_is_ambiguous() {
        let right = Sha256::of(b"package bytes");
        let wrong = Sha256::of(b"other bytes");
        for text in [
            format!("{right}  {NAME}\n{wrong}  {NAME}\n"),
            format!("{right}  {NAME}\n{right} *{NAME}\n"),
            format!("{right}  {NAME}\n{wrong}  /otro/{NAME}\n"),
        ] {
            let why = evidence_error(with_sidecar(&text));
            assert!(why.contains("more than once"), "{text:?}: {why}");
        }
    }

    #[test]
    fn a_member_list_naming_a_path_twice_is_ambiguous() {
        let index = member("index.html", b"<p>hola</p>");
        let text = format!(
            "{}  index.html\n{}  ./index.html\n",
            Sha256::of(&index.bytes),
            Sha256::of(b"otro")
        );
        let list = member("SHA256SUMS", text.as_bytes());
        let (_dir, incoming) = package(b"x");
        let why = evidence_error(check(&incoming, &[index, list], &policy()));
        assert_eq!(
            why,
            "SHA256SUMS lists \"index.html\" more than once: contradictory or repeated entries \
             are ambiguous"
        );
    }

    #[test]
    fn member_lists_verify_every_top_level_file() {
        let index = member("index.html", b"<p>hola</p>");
        let css = member("css/site.css", b"body{}");
        let list_text = format!(
            "{}  ./index.html\r\n{} *css/site.css\r\n\r\n",
            Sha256::of(&index.bytes),
            Sha256::of(&css.bytes)
        );
        let list_text = format!("{list_text}{}  sha256sums\n", Sha256::of(b""));
        let list = member("sha256sums", list_text.as_bytes());
        let (_dir, incoming) = package(b"x");
        let files = [index.clone(), list.clone(), css.clone()];
        let evidence = check(&incoming, &files, &policy()).unwrap();
        assert_eq!(
            evidence.member_list,
            EvidenceState::Verified("2 files match sha256sums".to_owned())
        );
        assert_eq!(
            evidence.to_string(),
            "sidecar absent; member list verified; signature absent"
        );

        let extra = member("app.js", b"1");
        let why = evidence_error(check(
            &incoming,
            &[index.clone(), list.clone(), css.clone(), extra],
            &policy(),
        ));
        assert_eq!(why, "\"app.js\" is not listed in sha256sums");

        let why = evidence_error(check(&incoming, &[index.clone(), list.clone()], &policy()));
        assert_eq!(
            why,
            "sha256sums lists \"css/site.css\", which is not in the package"
        );

        let changed = member("index.html", b"<p>adios</p>");
        let why = evidence_error(check(&incoming, &[changed, list, css], &policy()));
        assert!(
            why.starts_with("sha256sums gives") && why.contains("\"index.html\""),
            "{why}"
        );
    }

    #[test]
    fn a_member_list_in_another_format_is_unchecked_unless_required() {
        let (_dir, incoming) = package(b"x");
        let files = [
            member("index.html", b"1"),
            member("HASH", b"MD5 (index.html) = abc\n"),
        ];
        let evidence = check(&incoming, &files, &policy()).unwrap();
        assert_eq!(
            evidence.member_list,
            EvidenceState::Unchecked("HASH is not a list of `<sha256>  <path>` lines".to_owned())
        );
        let required = EvidencePolicy {
            member_list: Policy::Required,
            ..policy()
        };
        let why = evidence_error(check(&incoming, &files, &required));
        assert!(why.contains("required but could not be checked"), "{why}");
        // A file of that name in a folder is not the member list.
        let nested = [member("docs/HASH", b"whatever")];
        assert_eq!(
            check(&incoming, &nested, &policy()).unwrap().member_list,
            EvidenceState::Absent
        );
    }

    #[test]
    fn signatures_verify_against_a_configured_key() {
        let key = PublicKey::from_base64(KEY).unwrap();
        let (_dir, mut incoming) = package(b"test");
        incoming.signature = Some(EvidenceFile::Sent(SIG.as_bytes().to_vec()));
        let keys = EvidencePolicy {
            signature: Policy::Required,
            public_keys: vec![PublicKey::from_base64(OTHER_KEY).unwrap(), key.clone()],
            ..policy()
        };
        let evidence = check(&incoming, &[], &keys).unwrap();
        assert_eq!(evidence.signature.word(), "verified");
        assert!(detail(&evidence.signature).contains("timestamp:1633700835"));

        // Not over these bytes.
        let (_dir2, mut changed) = package(b"tesT");
        changed.signature = Some(EvidenceFile::Sent(SIG.as_bytes().to_vec()));
        let why = evidence_error(check(&changed, &[], &keys));
        assert!(why.contains("does not verify"), "{why}");

        for wrong in [OTHER_KEY, FORGED_KEY] {
            let wrong = EvidencePolicy {
                public_keys: vec![PublicKey::from_base64(wrong).unwrap()],
                ..policy()
            };
            assert!(evidence_error(check(&incoming, &[], &wrong)).contains("does not verify"));
        }

        let mut legacy = incoming.clone();
        legacy.signature = Some(EvidenceFile::Sent(LEGACY_SIG.as_bytes().to_vec()));
        assert!(evidence_error(check(&legacy, &[], &keys)).contains("legacy"));

        let mut garbage = incoming.clone();
        garbage.signature = Some(EvidenceFile::Sent(
            "untrusted comment: x\nnot base64\n".as_bytes().to_vec(),
        ));
        assert!(evidence_error(check(&garbage, &[], &keys)).contains("not a minisign signature"));
    }

    #[test]
    fn a_signature_without_keys_is_unchecked_unless_required() {
        let (_dir, mut incoming) = package(b"test");
        incoming.signature = Some(EvidenceFile::Sent(SIG.as_bytes().to_vec()));
        let evidence = check(&incoming, &[], &policy()).unwrap();
        assert_eq!(evidence.signature.word(), "unchecked");
        assert_eq!(
            evidence.to_string(),
            "sidecar absent; member list absent; signature unchecked"
        );
        let required = EvidencePolicy {
            signature: Policy::Required,
            ..policy()
        };
        assert!(evidence_error(check(&incoming, &[], &required)).contains("no public key"));
    }

    #[test]
    fn evidence_serialises_with_its_details() {
        let evidence = Evidence {
            sidecar: EvidenceState::Verified("ok".to_owned()),
            member_list: EvidenceState::Absent,
            signature: EvidenceState::Unchecked("no key".to_owned()),
        };
        let json = serde_json::to_string(&evidence).unwrap();
        assert_eq!(
            json,
            r#"{"sidecar":{"verified":"ok"},"member_list":"absent","signature":{"unchecked":"no key"}}"#
        );
    }
}
