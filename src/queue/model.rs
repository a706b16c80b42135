//! The task model shared by every verb: statuses, limits and defaults, the
//! clock, and the checks and quoting used in messages.

use crate::error::{Error, Result};
use std::time::{SystemTime, UNIX_EPOCH};

/// A task's status, as stored in `task_store.status` (CHECKed to be one
/// of these). In SQL text the statuses stay literals (`status = 'queued'`):
/// a partial index is only used when the query names its status as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Waiting for its dependencies to complete; claimable once released.
    Blocked,
    /// Its own work is done; waiting for its children to finish.
    Waiting,
}

impl Status {
    /// Every status, in the order of the storage's CHECK constraint.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Blocked,
        Status::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Blocked => "blocked",
            Status::Waiting => "waiting",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Completed, failed or cancelled: it will not change again unless
    /// retried.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// Bits of `task_store.flags`.
pub mod flags {
    /// The task has dependencies (rows in task_deps).
    pub const HAS_DEPS: i64 = 1;
    /// A child that fails or is cancelled does not fail it.
    pub const CONTINUE_ON_CHILD_FAILURE: i64 = 2;
    /// Its unique key counts while it is completed too.
    pub const UNIQUE_THROUGH_COMPLETED: i64 = 4;
    /// Its own work is done (it went on to wait for its children).
    pub const OWN_WORK_DONE: i64 = 8;
    /// An unfinished child that has progress or children of its own: in
    /// `task_store_busy`, which its parent's rollup reads. Set when that
    /// becomes true, cleared when it finishes (a stale bit only costs the
    /// rollup a row it filters out).
    pub const IN_ROLLUP: i64 = 16;
    /// It holds its unique key: in `task_store_unique`. Set while it is
    /// unfinished (and completed, with `UNIQUE_THROUGH_COMPLETED`).
    pub const HOLDS_KEY: i64 = 32;
    /// It was claimed from a queue with a concurrency limit and counts
    /// toward it while it runs: in `task_store_unique` (with the key holders). Set by that claim,
    /// cleared when it stops running (completed, failed, cancelled, or
    /// back to its queue for a retry).
    pub const COUNTS_TOWARD_LIMIT: i64 = 64;
}

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
pub const DEFAULT_LEASE_MS: i64 = 300_000;
pub const BACKOFF_BASE_MS: i64 = 1_000;
pub const BACKOFF_CAP_MS: i64 = 3_600_000;
pub const MAX_ATTEMPTS_LIMIT: i64 = 1_000;
/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z in milliseconds.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
pub const MAX_LEASE_MS: i64 = 366 * 24 * 3_600_000;
/// Most tasks one batch call claims, completes or fails.
pub const MAX_BATCH: i64 = 10_000;
/// Priorities are 32-bit.
pub const PRIORITY_RANGE: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);

/// Milliseconds since the Unix epoch, from the system clock. Time is taken
/// in Rust, never from SQL: `unixepoch('subsec')` is NULL on SQLite 3.40.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The clock of a call: the supplied `now`, checked, or the system's.
pub fn clock(now: Option<i64>) -> Result<i64> {
    check_range("now", now.unwrap_or_else(now_ms), 0, MAX_TIME_MS)
}

pub fn check_range(what: &str, v: i64, lo: i64, hi: i64) -> Result<i64> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Error::new(format!(
            "{what} must be between {lo} and {hi}, got {v}"
        )))
    }
}

/// `v` checked against `range`, when given.
pub fn check_opt(what: &str, v: Option<i64>, (lo, hi): (i64, i64)) -> Result<Option<i64>> {
    v.map(|v| check_range(what, v, lo, hi)).transpose()
}

/// A fencing token: the attempt number a worker got from its claim.
pub fn check_attempt(attempt: Option<i64>) -> Result<Option<i64>> {
    check_opt("attempt", attempt, (1, MAX_ATTEMPTS_LIMIT))
}

/// A user value quoted for an error message, cut to a readable length.
pub fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("'{s}'")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("'{cut}…'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Queued"), None);
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn the_storage_check_lists_every_status() {
        let ddl = include_str!("../storage/003_workflows.sql");
        let listed: Vec<String> = Status::ALL
            .iter()
            .map(|s| format!("status = '{}'", s.as_str()))
            .collect();
        let check = format!("CHECK ({})", listed.join(" OR "));
        assert!(ddl.contains(&check), "{check}");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let q = quoted(&"x".repeat(500));
        assert!(q.len() < 80);
        assert_eq!(quoted("abc"), "'abc'");
    }

    #[test]
    fn ranges_name_the_value() {
        assert_eq!(
            check_range("priority", 5, 0, 3).unwrap_err().msg,
            "priority must be between 0 and 3, got 5"
        );
        assert_eq!(
            clock(Some(-1)).unwrap_err().msg,
            format!("now must be between 0 and {MAX_TIME_MS}, got -1")
        );
        assert_eq!(clock(Some(7)).unwrap(), 7);
    }
}
