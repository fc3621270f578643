//! The virtual intake folder of one SFTP session: the `sftp` subsystem's handler.
//!
//! A client sees one folder, `/`, holding only the files this session uploaded and has not
//! yet handed over. A connection that runs one subsystem after another (OpenSSH's
//! `ControlMaster`) gets a folder of its own for each, as if each came on a connection of its
//! own (what one left waiting for its name or its package is discarded when it ends), but its
//! bytes count towards one `sftp_max_session_bytes` and its uploads are in one entry.
//!
//! Uploads are written to a hidden temporary file in `<data_dir>/tmp` and handed to the
//! publisher ([`PublisherHandle::ingest`](crate::publisher::PublisherHandle::ingest),
//! channel `sftp`) when the file is closed, or, for a hidden name (`.name.part`), once the
//! client renames it to its final name. A `<name>.sha256` or `<name>.minisig` uploaded in the
//! same session before the package goes with it as evidence (with bytes already taken, a
//! duplicate, it is checked against them and journaled, never dropped:
//! [`crate::publisher`]'s `late`). Evidence uploaded after its
//! package that matches the package last taken under its name (a `.sha256` giving its digest,
//! a `.minisig` that verifies it with a configured key, checked off the async threads) is
//! journaled as that package's evidence come late (`evidence-late`, [`crate::intake`]'s
//! `late`); any other is kept for the next upload of its name in the session.
//!
//! # Guarantees
//! - Every client path is normalised before use: `..`, sub-folders (hence any absolute path
//!   other than `/<name>`), names with control characters (a newline, a tab), hidden evidence
//!   names and names no channel takes (ending in a dot or a space, or too long for the
//!   package's evidence names to fit: [`check_file_name`]) are refused at the open or rename
//!   with a message saying why, journaled with the session. Nothing on disk is ever named by
//!   the client: no path, symlink or rename can reach outside the intake, and no symlink or
//!   folder is made.
//! - Nothing can be read back (files open only for writing), and nothing handed over can be
//!   deleted or renamed; a session may remove only its own upload still in progress.
//! - A file over `max_package_bytes`, or a session (every subsystem of its connection) over
//!   `sftp_max_session_bytes`, fails at the write that passes the limit; the partial file
//!   is discarded, never handed over. A write is charged to the session for the bytes it
//!   sends or for how far it grows its file, whichever is more, so a write far past the end
//!   (a hole) costs what it will take on disk.
//! - A write whose charge would leave less free space on the disk than `min_free_space`
//!   fails likewise, with a refusal the client is told and the session's entry names; the
//!   partial file is discarded. Each write is checked against the free space less what every
//!   write still on its way to the disk will take, its own included
//!   ([`crate::store::space`]), so uploads of all sessions together (up to
//!   `sftp_max_sessions` × `sftp_max_session_bytes`) cannot take the disk under the reserve
//!   either: the journal and the access log keep their room.
//! - An upload waiting for its name, opened again to append or to write without truncating
//!   (OpenSSH's `reput` after a `put` cut short in the same session), goes on from its end,
//!   as a file would: never a new file whose first bytes are a hole of zeros. Opened to
//!   append with nothing of the session's to go on from (an upload is not kept past its
//!   session), it is refused, saying so: the client sends it whole.
//! - Every upload the session received is in its entry: handed over (`files`), refused by a
//!   limit (`refusals`), or discarded unfinished (`unfinished`, with the bytes received and
//!   why): still open or closed under a hidden name and never renamed when the session ended,
//!   replaced by a later upload under its hidden name, or removed by the client. A rename
//!   onto the name of another upload waiting for its name is refused, as SFTP's rename
//!   (version 3, the only one offered) refuses a name that exists.
//! - An upload this server cannot write (a full or read-only disk) fails at the open, write
//!   or close where it happens, as this server's fault: journaled as an `intake-error` and
//!   said on `/status` (`intake_failing`), never taken for the package's fault.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use russh_sftp::protocol::{
    Attrs, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
};
use russh_sftp::server::StatusReply;
use serde_json::json;

use super::Shared;
use super::session::{SessionStats, note_refusal, with_stats};
use super::upload::{Closed, Upload, queue_room};
use crate::intake::file::read_evidence;
use crate::intake::{Channel, Received};
use crate::journal::EventKind;
use crate::package::{
    EvidenceFile, FILE_NAME_MAX, PackageName, check_file_name, disguises, is_evidence,
};
use crate::publisher::{Fault, Outcome};

/// Most files one session may hold open at once.
const MAX_OPEN_HANDLES: usize = 16;
/// Most uploads one session may keep waiting for a rename.
const MAX_PENDING: usize = 64;

/// An open handle.
enum OpenHandle {
    /// A file open for writing, with its client name.
    File { name: String, upload: Upload },
    /// The root folder being listed; `true` once listed.
    Dir(bool),
}

/// One SFTP subsystem: the virtual intake folder of one session.
pub(super) struct SftpHandler {
    /// The client's address and key fingerprint, for the journal.
    origin: String,
    shared: Arc<Shared>,
    stats: Arc<Mutex<SessionStats>>,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
    /// Closed uploads under a hidden name, waiting to be renamed to their final name.
    pending: HashMap<String, Closed>,
    /// Text of `.sha256` / `.minisig` files uploaded this session, by their name.
    evidence: HashMap<String, EvidenceFile>,
    /// Room for this session's writes waiting for the disk.
    queue_room: Arc<tokio::sync::Semaphore>,
    initialized: bool,
    /// Held while this subsystem runs: the listener waits for it to go before it journals
    /// the session, and the connection takes no other subsystem until it has gone.
    _running: tokio::sync::watch::Sender<()>,
}

impl SftpHandler {
    /// The folder of a session whose client is `origin` (address and key fingerprint),
    /// holding `running` until it ends.
    pub(super) fn new(
        origin: String,
        shared: Arc<Shared>,
        stats: Arc<Mutex<SessionStats>>,
        running: tokio::sync::watch::Sender<()>,
    ) -> Self {
        Self {
            origin,
            shared,
            stats,
            handles: HashMap::new(),
            next_handle: 0,
            pending: HashMap::new(),
            evidence: HashMap::new(),
            queue_room: queue_room(),
            initialized: false,
            _running: running,
        }
    }
}

impl Drop for SftpHandler {
    /// The subsystem ended: what it left unfinished is discarded, and named in the session's
    /// entry; its files open for writing no longer count towards `sftp_upload_timeout` (the
    /// connection may run another subsystem).
    fn drop(&mut self) {
        with_stats(&self.stats, |s| {
            for handle in self.handles.keys() {
                s.open_uploads.remove(handle);
            }
        });
        let open = self.handles.values().filter_map(|h| match h {
            OpenHandle::File { name, upload } => Some((
                name,
                upload.len(),
                "the session ended before the client closed it",
            )),
            OpenHandle::Dir(_) => None,
        });
        let waiting = self.pending.iter().map(|(name, u)| {
            (
                name,
                u.len,
                "closed under a hidden name and never renamed to its final name",
            )
        });
        for (name, bytes, why) in open.chain(waiting) {
            self.left_unfinished(name, bytes, why);
        }
    }
}

impl SftpHandler {
    /// Notes an upload of `bytes` discarded unfinished, and why, in the session's entry.
    fn left_unfinished(&self, name: &str, bytes: u64, why: &str) {
        with_stats(&self.stats, |s| s.unfinished(name, bytes, why));
    }
}

/// A refusal with its message, as the client shows it.
fn deny(code: StatusCode, message: impl Into<String>) -> StatusReply {
    StatusReply::new(code).with_message(message)
}

fn ok_status(id: u32, message: &str) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: message.to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

/// What a client path names in the virtual folder.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// The folder itself.
    Root,
    /// A file in it.
    File(String),
}

/// Normalises a client path. Only `/`, `.` and `/<name>` (or `<name>`) exist.
fn resolve(path: &str) -> Result<Target, StatusReply> {
    if path.len() > 4096 || path.contains('\\') {
        return Err(deny(
            StatusCode::PermissionDenied,
            "refused: the path is too long or holds backslash characters",
        ));
    }
    if path.chars().any(disguises) {
        return Err(deny(
            StatusCode::PermissionDenied,
            "refused: names with control characters (a newline, a tab, NUL…), characters \
             that reorder text (a right-to-left override) or take no room (a zero-width \
             space) are not taken; use a plain name",
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(deny(
                    StatusCode::PermissionDenied,
                    "refused: `..` is not allowed; only the intake folder `/` can be reached",
                ));
            }
            p => parts.push(p),
        }
    }
    match parts.as_slice() {
        [] => Ok(Target::Root),
        [name] if name.len() <= FILE_NAME_MAX => Ok(Target::File((*name).to_owned())),
        [_] => Err(deny(
            StatusCode::PermissionDenied,
            format!("refused: names are limited to {FILE_NAME_MAX} bytes"),
        )),
        _ => Err(deny(
            StatusCode::PermissionDenied,
            format!(
                "refused: {path:?} is outside the intake folder; upload into `/` only (no \
                 sub-folders, no absolute paths elsewhere)"
            ),
        )),
    }
}

/// Whether a client may name an upload `name`, else why not: a hidden name (`.name.part`,
/// renamed to its final name later) that is not an evidence name, or a name every channel
/// takes as a file name (a package, or its evidence: [`check_file_name`]).
fn upload_name(name: &str) -> Result<(), String> {
    if name.starts_with('.') {
        if is_evidence(name) {
            return Err("evidence is named after its package, never hidden".to_owned());
        }
        Ok(())
    } else {
        check_file_name(name).map_err(|e| format!("the name {e}"))
    }
}

fn file_attrs(len: u64) -> FileAttributes {
    FileAttributes {
        size: Some(len),
        permissions: Some(0o100_600),
        ..FileAttributes::empty()
    }
}

fn dir_attrs() -> FileAttributes {
    FileAttributes {
        permissions: Some(0o040_300),
        ..FileAttributes::empty()
    }
}

impl SftpHandler {
    /// An upload of `name` this server could not write (a full or read-only disk): its own
    /// fault, as for a package of any other channel it fails to take. Logged, journaled as an
    /// `intake-error`, noted in the session's entry and on `/status` (`intake_failing`), and
    /// the reply for the client.
    fn cannot_store(&self, name: &str, error: &std::io::Error) -> StatusReply {
        let error = format!("writing the upload: {error}");
        tracing::error!(%name, %error, "an SFTP upload was not received, by a fault on this server's side");
        let server = &self.shared.server;
        server
            .publisher
            .faults()
            .failed(name, Channel::Sftp, &error);
        server.journal.post(
            EventKind::IntakeError,
            None,
            json!({"name": name, "channel": Channel::Sftp, "error": error, "fault": Fault::Ours}),
        );
        let outcome = Outcome::Failed {
            error,
            fault: Fault::Ours,
        };
        with_stats(&self.stats, |s| {
            s.file(json!({"name": name, "outcome": outcome}))
        });
        deny(
            StatusCode::Failure,
            "the server cannot store this upload now",
        )
    }

    /// Notes a refusal in the session's journal entry and returns it for the client.
    fn refuse(&self, what: &str, reply: StatusReply) -> StatusReply {
        let message = reply.error_message.clone().unwrap_or_default();
        note_refusal(&self.stats, format!("{what}: {message}"));
        reply
    }

    fn resolve_file(&self, what: &str, path: &str) -> Result<String, StatusReply> {
        match resolve(path).map_err(|r| self.refuse(what, r))? {
            Target::Root => Err(self.refuse(
                what,
                deny(
                    StatusCode::Failure,
                    "refused: `/` is the intake folder, not a file",
                ),
            )),
            Target::File(name) => Ok(name),
        }
    }

    /// Whether the session may open one more handle.
    fn room_for_handle(&self) -> Result<(), StatusReply> {
        if self.handles.len() >= MAX_OPEN_HANDLES {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::Failure,
                    format!("refused: at most {MAX_OPEN_HANDLES} files open at once"),
                ),
            ));
        }
        Ok(())
    }

    fn new_handle(&mut self, handle: OpenHandle) -> Result<String, StatusReply> {
        self.room_for_handle()?;
        self.next_handle += 1;
        let id = self.next_handle.to_string();
        if let OpenHandle::File { name, .. } = &handle {
            let opened = (name.clone(), tokio::time::Instant::now());
            with_stats(&self.stats, |s| s.open_uploads.insert(id.clone(), opened));
        }
        self.handles.insert(id.clone(), handle);
        Ok(id)
    }

    /// Forgets the open handle `handle` (an open upload is discarded with it).
    fn drop_handle(&mut self, handle: &str) -> Option<OpenHandle> {
        with_stats(&self.stats, |s| s.open_uploads.remove(handle));
        self.handles.remove(handle)
    }

    /// Hands a complete upload to the publisher, or keeps evidence for its package.
    async fn deliver(
        &mut self,
        id: u32,
        name: String,
        upload: Closed,
    ) -> Result<Status, StatusReply> {
        if is_evidence(&name) {
            // One larger than evidence may be is kept by its size only, not read: its package
            // is refused for it, named and journaled, as from the intake folder.
            let Ok(Some(file)) = read_evidence(&upload.tmp) else {
                return Err(self.cannot_store(
                    &name,
                    &std::io::Error::other("its upload could not be read back"),
                ));
            };
            // Evidence sent after its package (by `mput`, in name order) that matches the
            // package taken under its name is that package's, come late.
            let (shared, evidence, file_name) = (self.shared.clone(), file.clone(), name.clone());
            // A signature is checked by reading the archived package: off the async threads.
            let late = tokio::task::spawn_blocking(move || {
                let check = &shared.server.late_signatures;
                shared.taken.late_evidence(&file_name, &evidence, check)
            })
            .await
            .unwrap_or_else(|e| {
                // Kept for the next upload of its name, as evidence that does not match.
                tracing::error!(%name, error = %e, "checking evidence put after its package failed");
                None
            });
            if let Some(late) = late {
                late.record(
                    &self.shared.server.journal,
                    Channel::Sftp,
                    Some(&self.origin),
                );
                return Ok(ok_status(
                    id,
                    &format!(
                        "evidence recorded: it {} the package sent before it under its name, \
                         which was taken before it came; send evidence before its package to \
                         have it checked first",
                        late.says()
                    ),
                ));
            }
            if self.evidence.len() >= MAX_PENDING {
                return Err(self.refuse(
                    "close",
                    deny(
                        StatusCode::Failure,
                        "refused: too many evidence files this session",
                    ),
                ));
            }
            self.evidence.insert(name, file);
            return Ok(ok_status(id, "evidence kept for its package"));
        }
        let Some(package) = PackageName::new(&name) else {
            return Err(self.refuse(
                "close",
                deny(StatusCode::Failure, "refused: not a package file name"),
            ));
        };
        let package_name = package.clone();
        let received = Received {
            sidecar: self.evidence.remove(&format!("{name}.sha256")),
            signature: self.evidence.remove(&format!("{name}.minisig")),
            name: package,
            path: upload.tmp.to_path_buf(),
            hashed: upload.hashed,
            channel: Channel::Sftp,
            origin: Some(self.origin.clone()),
            received_at: Timestamp::now(),
        };
        let failed = |e: &str| deny(StatusCode::Failure, format!("not delivered: {e}"));
        let Ok(outcome) = self.shared.server.publisher.ingest(received).await else {
            tracing::error!(%name, "an SFTP upload was not delivered: the publisher is not running");
            return Err(failed(
                "the server cannot take packages now (it is stopping or restarting); upload it \
                 again shortly",
            ));
        };
        drop(upload); // archived (or refused) by now: the temporary copy goes
        self.shared.taken.note(&package_name, &outcome);
        let entry = json!({"name": name, "outcome": outcome});
        with_stats(&self.stats, |s| s.file(entry));
        match outcome {
            Outcome::Published { corte, .. } => {
                Ok(ok_status(id, &format!("delivered: corte {corte} is live")))
            }
            Outcome::Duplicate { .. } => Ok(ok_status(id, "delivered: already received before")),
            Outcome::Older { corte, .. } => Ok(ok_status(
                id,
                &format!("delivered: corte {corte} is older than the live one; archived"),
            )),
            Outcome::Held { corte, .. } => Ok(ok_status(
                id,
                &format!("delivered: corte {corte} is held for an operator (see its corte time)"),
            )),
            Outcome::Rejected { reason, .. } => Err(deny(
                StatusCode::Failure,
                format!("delivered but rejected: {reason}"),
            )),
            Outcome::Failed { error, .. } => Err(failed(&format!(
                "this server failed to keep it (not a fault of the package): {error}; upload it \
                 again later"
            ))),
        }
    }
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        deny(
            StatusCode::OpUnsupported,
            "not offered: this server only receives uploads",
        )
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<russh_sftp::protocol::Version, Self::Error> {
        if self.initialized {
            return Err(deny(
                StatusCode::BadMessage,
                "the session is already set up",
            ));
        }
        self.initialized = true;
        Ok(russh_sftp::protocol::Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let name = self.resolve_file("open", &filename)?;
        if pflags.contains(OpenFlags::READ) || !pflags.contains(OpenFlags::WRITE) {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {name} cannot be read; this server only receives uploads"),
                ),
            ));
        }
        if let Err(why) = upload_name(&name) {
            return Err(self.refuse(
                "open",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {name:?} is not a name the intake takes: {why}"),
                ),
            ));
        }
        self.room_for_handle()?;
        // Opened to append, or to write without truncating, an upload of this session waiting
        // for its name goes on from where it is (OpenSSH's `reput`, `put -a`), as a file
        // would; a new file in its place would keep the client's bytes past a hole of zeros.
        let appends = pflags.contains(OpenFlags::APPEND);
        let earlier = if appends || !pflags.contains(OpenFlags::TRUNCATE) {
            self.pending.remove(&name)
        } else {
            None
        };
        let upload = match earlier {
            Some(earlier) => Upload::resume(earlier, self.queue_room.clone(), appends)
                .map_err(|e| self.cannot_store(&name, &e))?,
            None if appends => {
                return Err(self.refuse(
                    "open",
                    deny(
                        StatusCode::NoSuchFile,
                        format!(
                            "refused: nothing of {name:?} is here to go on from (an upload is \
                             kept only under a hidden name, until it is renamed or its session \
                             ends); send it whole"
                        ),
                    ),
                ));
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix(".sftp-")
                    .tempfile_in(&self.shared.server.tmp_dir)
                    .map_err(|e| self.cannot_store(&name, &e))?;
                let (file, tmp) = tmp.into_parts();
                Upload::start(file, tmp, self.queue_room.clone())
            }
        };
        let handle = self.new_handle(OpenHandle::File { name, upload })?;
        Ok(Handle { id, handle })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let limit = self.shared.server.max_package_bytes;
        let session_limit = self.shared.server.settings.max_session_bytes;
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let Some(OpenHandle::File { name, upload }) = self.handles.get_mut(&handle) else {
            return Err(deny(StatusCode::Failure, "no such open file"));
        };
        let offset = upload.offset_of(offset);
        let end = offset.saturating_add(len);
        // The session pays for what a write sends, or for how far it grows the file if that
        // is more: a write far past the end leaves a hole that the archive's copy fills with
        // zeros on disk, so a few bytes sent must not buy hundreds of megabytes stored.
        let charge = len.max(end.saturating_sub(upload.len()));
        let over = if end > limit {
            Some(format!(
                "refused: {name} is larger than the limit of {limit} bytes (max_package_bytes); \
                 nothing of it is kept"
            ))
        } else if with_stats(&self.stats, |s| s.charged).saturating_add(charge) > session_limit {
            Some(format!(
                "refused: this session passed its limit of {session_limit} bytes \
                 (sftp_max_session_bytes); nothing of {name} is kept"
            ))
        } else {
            None
        };
        if let Some(message) = over {
            self.drop_handle(&handle); // drops the partial file
            return Err(self.refuse("write", deny(StatusCode::Failure, message)));
        }
        // Its room on the disk, counted from the free space less what every session's writes
        // under way will take: what all sessions send together cannot pass the reserve.
        let space = match self.shared.server.space.claim(charge) {
            Ok(space) => space,
            Err(short) => {
                // The client is told in plain words; the session's entry and the log say
                // what is free where.
                let message = format!(
                    "refused: the server is short of disk space and keeps what is left for its \
                     records; nothing of {name} is kept; send it again later"
                );
                note_refusal(&self.stats, format!("write: {message} ({short})"));
                self.drop_handle(&handle); // drops the partial file
                return Err(deny(StatusCode::Failure, message));
            }
        };
        // The disk may be slow: written off the async threads, by the upload's writer.
        if let Err(e) = upload.write(offset, data, space).await {
            let name = name.clone();
            self.drop_handle(&handle);
            return Err(self.cannot_store(&name, &e));
        }
        with_stats(&self.stats, |s| {
            s.charged += charge;
            s.bytes += len;
        });
        Ok(ok_status(id, "Ok"))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.drop_handle(&handle) {
            Some(OpenHandle::Dir(_)) => Ok(ok_status(id, "Ok")),
            Some(OpenHandle::File { name, upload }) => {
                let upload = upload
                    .close()
                    .await
                    .map_err(|e| self.cannot_store(&name, &e))?;
                if name.starts_with('.') {
                    if self.pending.len() >= MAX_PENDING {
                        return Err(self.refuse(
                            "close",
                            deny(
                                StatusCode::Failure,
                                format!(
                                    "refused: too many uploads wait for a rename; nothing of \
                                     {name} is kept"
                                ),
                            ),
                        ));
                    }
                    // Uploaded again under its hidden name (opened for writing, truncated, as
                    // a file is): the earlier one is replaced, and named in the entry.
                    if let Some(earlier) = self.pending.insert(name.clone(), upload) {
                        self.left_unfinished(
                            &name,
                            earlier.len,
                            "replaced by a later upload under the same hidden name before it \
                             was renamed",
                        );
                    }
                    return Ok(ok_status(
                        id,
                        "kept; rename it to its final name to deliver it",
                    ));
                }
                self.deliver(id, name, upload).await
            }
            None => Err(deny(StatusCode::Failure, "no such handle")),
        }
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let old = self.resolve_file("rename", &oldpath)?;
        let new = self.resolve_file("rename", &newpath)?;
        // SFTP's rename (version 3, the only one offered: no `posix-rename@openssh.com`)
        // refuses a name that exists, as OpenSSH's server does; replacing an upload waiting
        // for its name would discard it.
        if self.pending.contains_key(&new) {
            return Err(self.refuse(
                "rename",
                deny(
                    StatusCode::Failure,
                    format!(
                        "refused: {new:?} already names an upload of this session waiting for \
                         its name; rename it first, or remove it"
                    ),
                ),
            ));
        }
        let Some(upload) = self.pending.remove(&old) else {
            return Err(self.refuse(
                "rename",
                deny(
                    StatusCode::PermissionDenied,
                    format!(
                        "refused: {old:?} is not an upload of this session waiting for its \
                         name; files handed over cannot be renamed"
                    ),
                ),
            ));
        };
        if let Err(why) = upload_name(&new) {
            self.pending.insert(old, upload);
            return Err(self.refuse(
                "rename",
                deny(
                    StatusCode::PermissionDenied,
                    format!("refused: {new:?} is not a name the intake takes: {why}"),
                ),
            ));
        }
        if new.starts_with('.') {
            self.pending.insert(new, upload);
            return Ok(ok_status(id, "Ok"));
        }
        self.deliver(id, new, upload).await
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let name = self.resolve_file("remove", &filename)?;
        if let Some(upload) = self.pending.remove(&name) {
            self.left_unfinished(
                &name,
                upload.len,
                "removed by the client before it was renamed",
            );
            return Ok(ok_status(id, "Ok"));
        }
        Err(self.refuse(
            "remove",
            deny(
                StatusCode::PermissionDenied,
                format!("refused: {name:?} cannot be deleted; files handed over stay"),
            ),
        ))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        match resolve(&path).map_err(|r| self.refuse("opendir", r))? {
            Target::Root => {
                let handle = self.new_handle(OpenHandle::Dir(false))?;
                Ok(Handle { id, handle })
            }
            Target::File(_) => Err(deny(StatusCode::NoSuchFile, "no such folder")),
        }
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let names: Vec<File> = self
            .pending
            .iter()
            .map(|(name, u)| File::new(name.clone(), file_attrs(u.len)))
            .collect();
        match self.handles.get_mut(&handle) {
            Some(OpenHandle::Dir(done)) if !*done => {
                *done = true;
                Ok(Name { id, files: names })
            }
            Some(OpenHandle::Dir(_)) => Err(StatusReply::new(StatusCode::Eof)),
            _ => Err(deny(StatusCode::Failure, "no such folder handle")),
        }
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let shown = match resolve(&path).map_err(|r| self.refuse("realpath", r))? {
            Target::Root => "/".to_owned(),
            Target::File(name) => format!("/{name}"),
        };
        Ok(Name {
            id,
            files: vec![File::dummy(shown)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.attrs_of(id, &path)
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.attrs_of(id, &path)
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.handles.get(&handle) {
            Some(OpenHandle::File { upload, .. }) => Ok(Attrs {
                id,
                attrs: file_attrs(upload.len()),
            }),
            Some(OpenHandle::Dir(_)) => Ok(Attrs {
                id,
                attrs: dir_attrs(),
            }),
            None => Err(deny(StatusCode::Failure, "no such handle")),
        }
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        // Times and modes of an upload mean nothing here; accepted and ignored (scp -p).
        self.resolve_file("setstat", &path)?;
        Ok(ok_status(id, "Ok"))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if self.handles.contains_key(&handle) {
            Ok(ok_status(id, "Ok"))
        } else {
            Err(deny(StatusCode::Failure, "no such handle"))
        }
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let shown: String = path.chars().take(80).collect();
        Err(self.refuse(
            "mkdir",
            deny(
                StatusCode::PermissionDenied,
                format!("refused: folders cannot be made ({shown:?}); upload into `/` only"),
            ),
        ))
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(self.refuse(
            "rmdir",
            deny(
                StatusCode::PermissionDenied,
                "refused: nothing can be deleted here",
            ),
        ))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse(
            "symlink",
            deny(
                StatusCode::PermissionDenied,
                "refused: symbolic links cannot be made here",
            ),
        ))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, Self::Error> {
        Err(deny(
            StatusCode::NoSuchFile,
            "there are no symbolic links here",
        ))
    }
}

impl SftpHandler {
    fn attrs_of(&self, id: u32, path: &str) -> Result<Attrs, StatusReply> {
        match resolve(path)? {
            Target::Root => Ok(Attrs {
                id,
                attrs: dir_attrs(),
            }),
            Target::File(name) => match self.pending.get(&name) {
                Some(u) => Ok(Attrs {
                    id,
                    attrs: file_attrs(u.len),
                }),
                None => Err(deny(
                    StatusCode::NoSuchFile,
                    format!("{name}: no such file"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_folder() {
        assert_eq!(resolve("/"), Ok(Target::Root));
        assert_eq!(resolve("."), Ok(Target::Root));
        assert_eq!(resolve("//./"), Ok(Target::Root));
        assert_eq!(resolve("/a.zip"), Ok(Target::File("a.zip".into())));
        assert_eq!(resolve("./a.zip"), Ok(Target::File("a.zip".into())));
        for bad in [
            "../a.zip",
            "/../a",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "x/../y",
            "a\0",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
    }
}
