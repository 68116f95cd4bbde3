//! The cleanup ledger (`cleanup.audit_log`): one JSON line per cleanup decision, appended to
//! a file only this user can read. Before every delete an `intent` is synced to disk, and
//! after it an outcome, so that a deletion the service carried out always ends with exactly
//! one final `deleted` record, whatever crashed in between: intents without a final outcome
//! are reconciled (see `cleanup`) at the start of the next run.
//!
//! One writer at a time: a run takes an advisory lock on `<ledger>.lock` (which holds the
//! holder's pid) for as long as it writes. Under the lock, the ledger is re-read from where
//! this process last read it, so that records written by other processes (a retried Job, a
//! `once` next to the daemon) count towards the daily budget and reconciliation.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::CleanupMode;
use crate::inventory::OwnerState;

/// What a ledger record says happened to a token. The wire names are the `outcome` of the
/// records and the `action` label of `workmail_pat_cleanup_actions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deleted (enforce), confirmed by the service's answer or by reconciliation.
    Deleted,
    /// Would have been deleted (dry-run).
    WouldDelete,
    /// The delete (or its re-verification) failed, and the service did not apply it.
    Failed,
    /// The delete was sent but its outcome is unknown (a timeout, a lost connection, a
    /// server error): reconciled at the next run.
    Unconfirmed,
    /// Held back by a limit.
    SkippedLimit,
    /// Used, renewed or otherwise changed since the scan: the rule no longer matches.
    SkippedChanged,
    /// Already deleted by someone else.
    AlreadyGone,
    /// Protected by an exclusion, or held because an exclusion could not be evaluated.
    Excluded,
    /// About to send `DeletePersonalAccessToken` (ledger only, never a metric).
    Intent,
    /// Reconciliation found the token of an unfinished intent still there.
    NotDeleted,
}

impl Action {
    /// Every action, in label order.
    pub const ALL: [Action; 10] = [
        Action::Deleted,
        Action::WouldDelete,
        Action::Failed,
        Action::Unconfirmed,
        Action::SkippedLimit,
        Action::SkippedChanged,
        Action::AlreadyGone,
        Action::Excluded,
        Action::Intent,
        Action::NotDeleted,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deleted => "deleted",
            Action::WouldDelete => "would_delete",
            Action::Failed => "failed",
            Action::Unconfirmed => "unconfirmed",
            Action::SkippedLimit => "skipped_limit",
            Action::SkippedChanged => "skipped_changed",
            Action::AlreadyGone => "already_gone",
            Action::Excluded => "excluded",
            Action::Intent => "intent",
            Action::NotDeleted => "not_deleted",
        }
    }

    /// Whether a run that ends with this action needs an operator's attention.
    pub fn is_failure(self) -> bool {
        matches!(self, Action::Failed | Action::Unconfirmed)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the record was written (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The mode in force for the organization.
    pub mode: CleanupMode,
    /// Organization id.
    pub organization_id: String,
    /// Organization alias (the `organization` label).
    pub organization: String,
    /// Owner user id.
    pub user_id: String,
    /// Owner user name.
    pub user_name: Option<String>,
    /// Owner email.
    pub user_email: Option<String>,
    /// Owner state.
    pub user_state: OwnerState,
    /// Token id.
    pub token_id: String,
    /// Token name (`null` when the service sent none).
    pub token_name: Option<String>,
    /// Token creation time.
    pub token_created: Option<DateTime<Utc>>,
    /// Token last use.
    pub token_last_used: Option<DateTime<Utc>>,
    /// Token expiry.
    pub token_expires: Option<DateTime<Utc>>,
    /// The rule.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// What happened.
    pub outcome: Action,
    /// Written by reconciliation, about an intent of an earlier run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
    /// The cleanup run that wrote it.
    #[serde(default)]
    pub run_id: String,
    /// The process that wrote it.
    #[serde(default)]
    pub pid: u32,
}

impl Record {
    /// The token it is about.
    pub fn key(&self) -> (String, String) {
        (self.organization_id.clone(), self.token_id.clone())
    }
}

/// A ledger that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading or writing failed.
    #[error("cleanup ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "cleanup ledger {path} is locked by another cleanup run (pid {pid}); nothing was deleted"
    )]
    Locked {
        /// The ledger.
        path: PathBuf,
        /// The holder's pid, as it wrote it in the lock file (`unknown` when unreadable).
        pid: String,
    },
}

/// What the records read so far say, for reconciliation and the daily budget.
#[derive(Debug, Default, Clone)]
struct State {
    /// Intents (or unconfirmed deletes) without a final outcome, by (organization, token).
    open: BTreeMap<(String, String), Record>,
    /// When each final `deleted` record was written.
    deleted_at: Vec<DateTime<Utc>>,
    /// Lines that were not a whole record (a torn write).
    torn: u64,
}

impl State {
    fn apply(&mut self, r: &Record) {
        match r.outcome {
            Action::Intent | Action::Unconfirmed => {
                self.open.insert(r.key(), r.clone());
            }
            Action::Deleted => {
                self.open.remove(&r.key());
                self.deleted_at.push(r.timestamp);
            }
            // Final, and nothing was deleted.
            Action::Failed | Action::NotDeleted | Action::AlreadyGone => {
                self.open.remove(&r.key());
            }
            Action::WouldDelete
            | Action::SkippedLimit
            | Action::SkippedChanged
            | Action::Excluded => {}
        }
    }
}

/// What tells a file from the one that replaced it at the same path.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

/// The open ledger. Writing needs the lock: see [`Ledger::lock`].
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    /// The mode the file had when it was opened, when it had to be tightened.
    tightened: Option<u32>,
    identity: (u64, u64),
    /// How far this process has read (its own writes included).
    offset: u64,
    state: State,
}

impl Ledger {
    /// Opens (creating with mode 0600) the ledger. An existing file that its group or others
    /// may read is tightened to 0600, and that is logged.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let file = open_append(path)?;
        let meta = file.metadata().map_err(|e| io(path, e))?;
        if !meta.is_file() {
            return Err(io(path, std::io::Error::other("not a regular file")));
        }
        let tightened = tighten(path, &file, &meta)?;
        Ok(Self {
            path: path.to_owned(),
            tightened,
            identity: identity(&meta),
            file,
            offset: 0,
            state: State::default(),
        })
    }

    /// The mode the file had when it was opened, when it was readable by its group or others
    /// and had to be tightened to 0600.
    pub fn tightened(&self) -> Option<u32> {
        self.tightened
    }

    /// Takes the exclusive lock for a cleanup run and catches up with what other processes
    /// wrote meanwhile (reopening the file if it was rotated away). Fails at once if another
    /// process holds the lock.
    pub fn lock(&mut self) -> Result<Locked<'_>, LedgerError> {
        let lock_path = lock_path(&self.path);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode_0600()
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LedgerError::Locked {
                    path: self.path.clone(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path, e)),
        }
        // The lock is the open file: it is released when `Locked` drops it, even on a crash.
        lock.set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(|e| io(&lock_path, e))?;
        self.catch_up()?;
        Ok(Locked {
            ledger: self,
            _lock: lock,
        })
    }

    /// Re-opens the file if it was rotated away, then reads what was appended since the
    /// last read. A torn last line (a crash mid-write, a full disk) is skipped and ended,
    /// so that the next record starts on a line of its own.
    fn catch_up(&mut self) -> Result<(), LedgerError> {
        let current = std::fs::metadata(&self.path).ok().map(|m| identity(&m));
        if current != Some(self.identity) {
            tracing::info!(file = %self.path.display(), "the cleanup ledger was rotated away; opening a new one");
            let fresh = Self::open(&self.path)?;
            self.tightened = fresh.tightened;
            self.file = fresh.file;
            self.identity = fresh.identity;
            self.offset = 0;
            // What the old file said stays known to this process (open intents, the day's
            // deletions); a new process only knows the new file.
        }
        let mut reader = File::open(&self.path).map_err(|e| io(&self.path, e))?;
        let len = reader.metadata().map_err(|e| io(&self.path, e))?.len();
        if len < self.offset {
            // Truncated in place: read it again from the start.
            self.offset = 0;
        }
        reader
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| io(&self.path, e))?;
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| io(&self.path, e))?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            let ended = line.last() == Some(&b'\n');
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) => self.state.apply(&r),
                Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                Err(e) => {
                    self.state.torn += 1;
                    tracing::warn!(
                        file = %self.path.display(),
                        error = %e,
                        "a cleanup ledger line is not a whole record (a crash or a full disk while writing); skipped"
                    );
                }
            }
            if !ended {
                // Only a crashed writer leaves a last line unended (every writer holds the
                // lock): end it, so that the next record starts on a line of its own.
                self.append(b"\n", true)?;
                break;
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), LedgerError> {
        // One write per line: with O_APPEND, lines of this process never interleave.
        self.file.write_all(bytes).map_err(|e| io(&self.path, e))?;
        self.offset += bytes.len() as u64;
        if sync {
            self.file.sync_data().map_err(|e| io(&self.path, e))?;
        }
        Ok(())
    }
}

/// The ledger, locked for one cleanup run: the only way to write it.
#[derive(Debug)]
pub struct Locked<'a> {
    ledger: &'a mut Ledger,
    _lock: File,
}

impl Locked<'_> {
    /// Appends one record; `sync` forces it to disk before returning.
    pub fn write(&mut self, record: &Record, sync: bool) -> Result<(), LedgerError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| io(&self.ledger.path, std::io::Error::other(e)))?;
        line.push(b'\n');
        self.ledger.append(&line, sync)?;
        self.ledger.state.apply(record);
        Ok(())
    }

    /// Forces everything written to disk.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        let l = &mut *self.ledger;
        l.file.sync_data().map_err(|e| io(&l.path, e))
    }

    /// Intents (or unconfirmed deletes) that have no final outcome yet, oldest first.
    pub fn open_intents(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self.ledger.state.open.values().cloned().collect();
        v.sort_by_key(|r| r.timestamp);
        v
    }

    /// Deletions recorded since `since`, plus every intent without a final outcome (it may
    /// have been carried out): what the daily budget has spent.
    pub fn spent_since(&self, since: DateTime<Utc>) -> u32 {
        let s = &self.ledger.state;
        let deleted = s.deleted_at.iter().filter(|t| **t >= since).count();
        u32::try_from(deleted + s.open.len()).unwrap_or(u32::MAX)
    }

    /// Lines read so far that were not whole records.
    pub fn torn_lines(&self) -> u64 {
        self.ledger.state.torn
    }
}

/// The lock file of a ledger: `<ledger>.lock`.
pub fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn io(path: &Path, source: std::io::Error) -> LedgerError {
    LedgerError::Io {
        path: path.to_owned(),
        source,
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            self.mode(0o600);
        }
        self
    }
}

fn open_append(path: &Path) -> Result<File, LedgerError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode_0600()
        .open(path)
        .map_err(|e| io(path, e))
}

/// Creates (or truncates) a file only its owner can read or write, for output that holds
/// personal data (`report --output`). An existing file is tightened too.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode_0600()
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Makes a file its group or others may read 0600; returns the mode it had, when it did.
fn tighten(path: &Path, file: &File, meta: &std::fs::Metadata) -> Result<Option<u32>, LedgerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(path, e))?;
        tracing::warn!(
            file = %path.display(),
            was = format!("{mode:04o}"),
            "the cleanup ledger was readable by its group or others; its mode is now 0600"
        );
        Ok(Some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file, meta);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: &str, outcome: Action, at: DateTime<Utc>) -> Record {
        Record {
            timestamp: at,
            mode: CleanupMode::Enforce,
            organization_id: "m-1".into(),
            organization: "corp".into(),
            user_id: "u".into(),
            user_name: None,
            user_email: None,
            user_state: OwnerState::Enabled,
            token_id: token.into(),
            token_name: Some("n".into()),
            token_created: None,
            token_last_used: None,
            token_expires: None,
            rule: "r".into(),
            reason: "why".into(),
            outcome,
            reconciled: false,
            run_id: "run".into(),
            pid: 1,
        }
    }

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(h)
    }

    #[test]
    fn wire_names_are_stable() {
        for a in Action::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
    }

    #[test]
    fn intents_stay_open_until_a_final_outcome_and_deletions_count_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut ledger = Ledger::open(&path).unwrap();
        let mut l = ledger.lock().unwrap();
        for (tok, a, h) in [
            ("a", Action::Intent, 0),
            ("a", Action::Deleted, 1),
            ("b", Action::Intent, 2),
            ("b", Action::Unconfirmed, 3),
            ("c", Action::Intent, 4),
            ("c", Action::Failed, 5),
            ("d", Action::Intent, 6),
            ("d", Action::NotDeleted, 7),
            ("e", Action::WouldDelete, 8),
            ("f", Action::Intent, 30),
            ("f", Action::Deleted, 30),
        ] {
            l.write(&record(tok, a, t(h)), false).unwrap();
        }
        let open: Vec<String> = l.open_intents().into_iter().map(|r| r.token_id).collect();
        assert_eq!(open, ["b"]);
        // a (1h) and f (30h) deleted; b open.
        assert_eq!(l.spent_since(t(0)), 3);
        assert_eq!(l.spent_since(t(2)), 2);
        assert_eq!(l.spent_since(t(31)), 1);
        drop(l);
        // A second reader (another process) sees the same from the file.
        let mut other = Ledger::open(&path).unwrap();
        let l = other.lock().unwrap();
        assert_eq!(l.spent_since(t(0)), 3);
        assert_eq!(l.open_intents().len(), 1);
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut a = Ledger::open(&path).unwrap();
        let mut b = Ledger::open(&path).unwrap();
        let held = a.lock().unwrap();
        let err = b.lock().unwrap_err().to_string();
        assert!(err.contains("l.jsonl"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(b.lock().is_ok(), "released with the guard");
    }

    #[test]
    fn records_of_other_processes_are_read_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut a = Ledger::open(&path).unwrap();
        let mut b = Ledger::open(&path).unwrap();
        drop(a.lock().unwrap());
        b.lock()
            .unwrap()
            .write(&record("x", Action::Intent, t(0)), true)
            .unwrap();
        assert_eq!(a.lock().unwrap().open_intents().len(), 1);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_record_starts_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let whole = serde_json::to_string(&record("a", Action::Intent, t(0))).unwrap();
        // A blank line is not a torn one; a half-written last line is.
        std::fs::write(&path, format!("{whole}\n\n{}", &whole[..whole.len() / 2])).unwrap();
        let mut ledger = Ledger::open(&path).unwrap();
        let mut l = ledger.lock().unwrap();
        assert_eq!(l.torn_lines(), 1);
        assert_eq!(l.open_intents().len(), 1);
        l.write(&record("a", Action::Deleted, t(1)), true).unwrap();
        drop(l);
        let text = std::fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap();
        assert_eq!(
            serde_json::from_str::<Record>(last).unwrap().outcome,
            Action::Deleted
        );
        let mut again = Ledger::open(&path).unwrap();
        let l = again.lock().unwrap();
        assert!(l.open_intents().is_empty());
        assert_eq!(l.torn_lines(), 1);
    }

    #[test]
    fn a_rotated_ledger_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut ledger = Ledger::open(&path).unwrap();
        ledger
            .lock()
            .unwrap()
            .write(&record("a", Action::WouldDelete, t(0)), true)
            .unwrap();
        std::fs::rename(&path, dir.path().join("l.jsonl.1")).unwrap();
        ledger
            .lock()
            .unwrap()
            .write(&record("b", Action::WouldDelete, t(1)), true)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"token_id\":\"b\""));
        // Rotated the way logrotate does it: renamed, and a new empty file created at once.
        std::fs::rename(&path, dir.path().join("l.jsonl.2")).unwrap();
        std::fs::write(&path, "").unwrap();
        ledger
            .lock()
            .unwrap()
            .write(&record("c", Action::WouldDelete, t(2)), true)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"token_id\":\"c\""));
    }

    #[test]
    fn failures_are_the_outcomes_that_need_attention() {
        for a in Action::ALL {
            let want = matches!(a, Action::Failed | Action::Unconfirmed);
            assert_eq!(a.is_failure(), want, "{a}");
            assert_eq!(a.to_string(), a.as_str());
        }
    }

    #[test]
    fn what_was_read_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut a = Ledger::open(&path).unwrap();
        let mut b = Ledger::open(&path).unwrap();
        {
            let mut l = a.lock().unwrap();
            l.write(&record("x", Action::Intent, t(0)), true).unwrap();
            l.write(&record("x", Action::Deleted, t(1)), true).unwrap();
            assert_eq!(l.spent_since(t(0)), 1);
        }
        // Locking again, in this process or another, counts each record once.
        for _ in 0..3 {
            assert_eq!(a.lock().unwrap().spent_since(t(0)), 1);
            assert_eq!(b.lock().unwrap().spent_since(t(0)), 1);
        }
        // What another process appends after is read too, once.
        b.lock()
            .unwrap()
            .write(&record("y", Action::Deleted, t(2)), true)
            .unwrap();
        assert_eq!(a.lock().unwrap().spent_since(t(0)), 2);
        assert_eq!(a.lock().unwrap().spent_since(t(0)), 2);
        assert_eq!(
            a.lock().unwrap().torn_lines(),
            0,
            "a clean ledger has no torn line"
        );
    }

    #[test]
    fn a_ledger_truncated_in_place_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut a = Ledger::open(&path).unwrap();
        {
            let mut l = a.lock().unwrap();
            for i in 0..3 {
                l.write(&record(&format!("t{i}"), Action::WouldDelete, t(i)), true)
                    .unwrap();
            }
        }
        // Someone empties it in place (the same file), and another process writes to it.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut b = Ledger::open(&path).unwrap();
        b.lock()
            .unwrap()
            .write(&record("new", Action::Intent, t(5)), true)
            .unwrap();
        // The first process notices the shorter file and reads it from the start.
        let open: Vec<String> = a
            .lock()
            .unwrap()
            .open_intents()
            .into_iter()
            .map(|r| r.token_id)
            .collect();
        assert_eq!(open, ["new"]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.path().join("new.jsonl");
        assert_eq!(Ledger::open(&fresh).unwrap().tightened(), None);
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(
            Ledger::open(&fresh).unwrap().tightened(),
            None,
            "0600 stays"
        );
        for was in [0o644, 0o640, 0o604, 0o660, 0o777] {
            let loose = dir.path().join(format!("loose-{was:o}.jsonl"));
            std::fs::write(&loose, "").unwrap();
            std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(was)).unwrap();
            assert_eq!(Ledger::open(&loose).unwrap().tightened(), Some(was));
            assert_eq!(mode(&loose), 0o600, "tightened from {was:o}");
        }
        // Owner-only modes other than 0600 are left alone.
        let owner_only = dir.path().join("owner-only.jsonl");
        std::fs::write(&owner_only, "").unwrap();
        std::fs::set_permissions(&owner_only, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(Ledger::open(&owner_only).unwrap().tightened(), None);
        let report = dir.path().join("report.csv");
        std::fs::write(&report, "old").unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_private(&report).unwrap());
        assert_eq!(mode(&report), 0o600);
        assert_eq!(std::fs::read_to_string(&report).unwrap(), "");
    }
}
