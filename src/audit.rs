//! The audit log: one JSON line per cleanup decision, appended to a file created with mode
//! 0600. Each line is written before the decision is reported anywhere else, and synced
//! after every deletion and at the end of each run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the decision was made (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// `dry-run` or `enforce`.
    pub mode: String,
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
    pub user_state: String,
    /// Token id.
    pub token_id: String,
    /// Token name.
    pub token_name: String,
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
    /// `deleted`, `would_delete`, `failed`, `skipped_limit`, `skipped_changed`,
    /// `already_gone` or `excluded`.
    pub outcome: String,
}

/// An audit log that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// An open audit log (or none, when not configured).
#[derive(Debug)]
pub struct AuditLog {
    file: Option<(PathBuf, File)>,
}

impl AuditLog {
    /// No audit file: decisions go to the structured log only.
    pub fn disabled() -> Self {
        Self { file: None }
    }

    /// Opens (creating with mode 0600) an append-only audit log.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let err = |source| AuditError {
            path: path.to_owned(),
            source,
        };
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path).map_err(err)?;
        Ok(Self {
            file: Some((path.to_owned(), file)),
        })
    }

    /// Appends one record; `sync` forces it to disk.
    pub fn write(&mut self, record: &Record, sync: bool) -> Result<(), AuditError> {
        let Some((path, file)) = &mut self.file else {
            return Ok(());
        };
        let err = |source| AuditError {
            path: path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        // One write per line: with O_APPEND, lines never interleave or tear on a crash
        // of this process.
        file.write_all(&line).map_err(err)?;
        if sync {
            file.sync_data().map_err(err)?;
        }
        Ok(())
    }

    /// Forces everything written to disk.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        match &mut self.file {
            Some((path, file)) => file.sync_data().map_err(|source| AuditError {
                path: path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}
