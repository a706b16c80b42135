//! Waiting without polling: `task_wait(timeout_ms)` and the long-poll claim
//! (`task_claim(worker, '{"wait": ms}')`).
//!
//! A wait sleeps until another connection or process commits, or until its
//! deadline. What wakes it is a file-change notification on the database's
//! `-wal` and main files (`ffi/watch.rs`, inotify on Linux); what confirms a
//! commit is `PRAGMA data_version`, which changes when a connection other
//! than this one has committed since the last read. Between notifications
//! the waiter sleeps in the kernel; it looks again at least every
//! [`SAFETY_NET_MS`] in case a notification was missed (a `-wal` file
//! created or replaced after the watch was made). Where no watch can be
//! made (not Linux, an in-memory database) it polls `data_version` every
//! [`POLL_MS`].
//!
//! Refused inside a transaction (or a statement that reads the database):
//! a read transaction is a snapshot, in which `data_version` never changes
//! and which keeps the WAL from being checkpointed while it lasts; a write
//! transaction would hold the write lock others need to commit. A wait at
//! the top level holds nothing: each `data_version` read is a statement of
//! its own.

use super::Queue;
use crate::error::{Error, Result};
use crate::ffi::{Wake, Watch};

use std::time::{Duration, Instant};

/// The longest sleep between two looks at `data_version` with a watch.
pub const SAFETY_NET_MS: u64 = 1_000;
/// The sleep between two looks without a watch.
pub const POLL_MS: u64 = 5;
/// The longest wait accepted: an hour.
pub const MAX_WAIT_MS: i64 = 3_600_000;

const DATA_VERSION_SQL: &str = "PRAGMA main.data_version";

fn data_version(q: &Queue) -> Result<i64> {
    q.prepare(DATA_VERSION_SQL)?.first_i64()
}

/// Refuses a wait where it could not see other connections' commits, or
/// would keep them from committing.
pub fn check_waitable(q: &Queue) -> Result<()> {
    if q.conn().txn_open() || !q.conn().autocommit() {
        return Err(Error::new(
            "cannot wait inside a transaction or a statement that reads the database: \
             it would wait on a snapshot that cannot change; call it on its own",
        ));
    }
    Ok(())
}

/// A wait in progress: the data_version it started from.
pub struct Waiter {
    version: i64,
    /// The files were written just before the wait began: a commit may be
    /// about to become visible without another write to wake the watch.
    recent: bool,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Another connection committed.
    Commit,
    /// The deadline passed.
    Deadline,
    /// A signal arrived: the caller returns at once, so that the host's
    /// handler runs (a wait that went on would hide it until its end).
    Signal,
}

impl Waiter {
    /// Starts a wait: reads data_version, and makes (once per connection)
    /// or readies the watch.
    pub fn new(q: &Queue) -> Result<Waiter> {
        let paths = q.conn().commit_paths();
        let mut watch = q.watch.borrow_mut();
        // Made again if a file it could not watch (the -wal, before the
        // first write in WAL mode) has appeared since.
        let existing = paths
            .iter()
            .filter(|p| std::path::Path::new(p).exists())
            .count();
        if watch.as_ref().is_none_or(|w| w.watching() < existing) {
            *watch = Watch::new(&paths);
        }
        // Drained before data_version is read: a commit whose writes were
        // drained and that became visible after the read is looked for
        // at once (`recent`), not at the next safety-net look.
        let recent = watch.as_ref().is_some_and(Watch::drain);
        drop(watch);
        let version = data_version(q)?;
        Ok(Waiter { version, recent })
    }

    /// Sleeps until another connection commits, `until`, or a signal.
    pub fn wait_until(&mut self, q: &Queue, until: Instant) -> Result<Woke> {
        loop {
            let v = data_version(q)?;
            if v != self.version {
                self.version = v;
                return Ok(Woke::Commit);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Woke::Deadline);
            }
            if std::mem::take(&mut self.recent) {
                self.settle(q, until)?;
                continue;
            }
            let left = until - now;
            let seen = {
                let watch = q.watch.borrow();
                match watch.as_ref() {
                    Some(w) => {
                        let wake = w.wait(left.min(Duration::from_millis(SAFETY_NET_MS)));
                        if wake == Wake::Signal {
                            // Ends the wait at once: the host handles the
                            // signal (a Ctrl-C handler, a worker's stop).
                            return Ok(Woke::Signal);
                        }
                        let seen = wake == Wake::Changed;
                        if seen {
                            // A write to the files: a commit is under way,
                            // and becomes visible when its writer updates
                            // the WAL index (shared memory, which raises no
                            // event), a few µs after its last write. Let the
                            // writes end, then look again shortly.
                            w.quiet(Duration::from_micros(QUIET_US), Duration::from_millis(5));
                        }
                        seen
                    }
                    None => {
                        std::thread::sleep(left.min(Duration::from_millis(POLL_MS)));
                        false
                    }
                }
            };
            if seen {
                self.settle(q, until)?;
            }
        }
    }
}

impl Waiter {
    /// After a write was seen: looks at `data_version` every
    /// [`SETTLE_STEP_US`] for up to [`SETTLE_US`] (or until `until`), and
    /// returns as soon as it changed (the caller's next look sees it).
    fn settle(&self, q: &Queue, until: Instant) -> Result<()> {
        let end = (Instant::now() + Duration::from_micros(SETTLE_US)).min(until);
        // The writes have gone quiet, so the commit is most often visible
        // already: look before the first sleep (which a VM stretches to
        // ~300 µs; measured in BENCHMARKS.md, "Waking").
        loop {
            if data_version(q)? != self.version {
                return Ok(());
            }
            if Instant::now() >= end {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(SETTLE_STEP_US));
        }
    }
}

/// How long after a write a waiter keeps looking for its commit, and how
/// often: a commit's frames and its WAL-index update are microseconds
/// apart (longer with synchronous=FULL, whose fsync comes between them).
pub const SETTLE_US: u64 = 20_000;
pub const SETTLE_STEP_US: u64 = 100;
/// Writes this far apart belong to one commit still being written.
pub const QUIET_US: u64 = 150;

// The newest event the task_events view shows: not one of a deleted task,
// which a follower reading the view never sees (else a cursor taken from
// the view would wake a wait at once, for ever). Read from the end of the
// log: one step back per such hidden event.
const NEWEST_EVENT_SQL: &str =
    "SELECT coalesce((SELECT seq FROM main.task_events ORDER BY seq DESC LIMIT 1), 0)";

/// The seq of the newest event shown (0: none).
pub fn newest_event(q: &Queue) -> Result<i64> {
    q.prepare(NEWEST_EVENT_SQL)?.first_i64()
}

/// `task_wait`: true when another connection committed within
/// `timeout_ms`; with `after_seq`, when the event log has an event after
/// it (at once if it has one already), whoever wrote it.
pub fn wait(q: &Queue, timeout_ms: i64, after_seq: Option<i64>) -> Result<bool> {
    check_waitable(q)?;
    let until = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
    let mut waiter = Waiter::new(q)?;
    let Some(after) = after_seq else {
        return Ok(waiter.wait_until(q, until)? == Woke::Commit);
    };
    // The waiter's data_version is read first: a commit after the look at
    // the log below changes it, and the wait returns at once to look again.
    loop {
        if newest_event(q)? > after {
            return Ok(true);
        }
        if waiter.wait_until(q, until)? != Woke::Commit {
            return Ok(false);
        }
    }
}
