//! The one error type of the extension, and the messages users read.
//!
//! Every failure carries an SQLite result code as well as text, so that a
//! `SQLITE_BUSY` met by a statement the extension runs reaches the caller as
//! `SQLITE_BUSY` (a retryable condition), not as a generic `SQLITE_ERROR`.

use rusqlite::ffi;
use std::fmt;
use std::os::raw::c_int;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Extended SQLite result code reported to the caller.
    pub code: c_int,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A usage error: bad argument, invalid transition, unknown task.
    pub fn new(msg: impl Into<String>) -> Self {
        Error {
            code: ffi::SQLITE_ERROR,
            msg: msg.into(),
        }
    }

    pub fn with_code(code: c_int, msg: impl Into<String>) -> Self {
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
