//! The one error type of the extension, and the messages users read.
//!
//! Every failure carries an SQLite result code as well as text, so that a
//! `SQLITE_BUSY` met by a statement the extension runs reaches the caller as
//! `SQLITE_BUSY` (a retryable condition), not as a generic `SQLITE_ERROR`.
//! The codes are SQLite's own numbers (a stable ABI, checked against the
//! bindings by a test in `ffi/`), so nothing above `ffi/` needs the bindings.

use std::fmt;

/// The SQLite result codes the extension itself chooses. Codes met by a
/// statement it runs are passed through whatever they are.
pub mod code {
    /// `SQLITE_ERROR`: usage errors (bad argument, invalid transition, …).
    pub const ERROR: i32 = 1;
    /// `SQLITE_BUSY`: retry the call.
    pub const BUSY: i32 = 5;
    /// `SQLITE_READONLY`: this database cannot take the write (a libSQL
    /// read replica's copy).
    pub const READONLY: i32 = 8;
    /// `SQLITE_CONSTRAINT_UNIQUE`: a UNIQUE index refused a row.
    pub const CONSTRAINT_UNIQUE: i32 = 19 | (8 << 8);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Extended SQLite result code reported to the caller.
    pub code: i32,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A usage error: bad argument, invalid transition, unknown task.
    pub fn new(msg: impl Into<String>) -> Self {
        Error {
            code: code::ERROR,
            msg: msg.into(),
        }
    }

    pub fn with_code(code: i32, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
        }
    }

    /// Prefixes the message with the SQL name of the function or table that
    /// failed, e.g. `task_complete: task … is queued, not running`.
    pub fn context(mut self, name: &str) -> Self {
        self.msg = format!("{name}: {}", self.msg);
        self
    }

    /// The error for a panic caught at the boundary with SQLite.
    pub fn internal() -> Self {
        Error::new("internal error in sqlite-task (a bug: please report it)")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Message for every verb run on a database where `task_init()` never ran.
pub const NOT_INITIALIZED: &str =
    "the task storage does not exist in this database; run SELECT task_init() first";
