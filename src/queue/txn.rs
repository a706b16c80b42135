//! All-or-nothing for the verbs that need more than one statement: the
//! batch verbs, and the workflow paths (a child's completion that finishes
//! its parent, a failure that cancels dependents, ...).

use super::Queue;
use crate::error::{Error, Result, code};

const BEGIN: &str = "SAVEPOINT task_verb";
const RELEASE: &str = "RELEASE task_verb";
const ROLLBACK: &str = "ROLLBACK TO task_verb";

/// Runs `f` inside a savepoint: all of its writes commit together or
/// none do. In autocommit mode the savepoint is the transaction, and the
/// first statement `f` runs must be a write (the verbs' are), so the
/// write lock is taken before anything is read. SQLite refuses to open a
/// savepoint while another write statement is running (a trigger, a
/// write to the `tasks` table): the batch verbs are for top-level calls.
pub fn savepoint<T>(q: &Queue, f: impl FnOnce() -> Result<T>) -> Result<T> {
    q.prepare(BEGIN)?.finish()?;
    inside(q, f)
}

/// Runs `f` so that its writes take effect together or not at all,
/// wherever the verb was called from: in a savepoint, or, when a write
/// statement is running (the verb was called from a trigger, from
/// `INSERT … SELECT`, from a write to the `tasks` table) and SQLite
/// refuses one, as part of that statement, whose statement journal undoes
/// everything run inside it if it fails (checked: a trigger whose function
/// writes and then fails leaves none of the writes).
pub fn atomically<T>(q: &Queue, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match q.prepare(BEGIN)?.finish() {
        Ok(()) => inside(q, f),
        // "cannot open savepoint - SQL statements in progress"
        Err(e) if e.code & 0xff == code::BUSY => f(),
        Err(e) => Err(e),
    }
}

/// Runs `f` in the savepoint just opened, and releases or rolls it back.
fn inside<T>(q: &Queue, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let out = f();
    let end = match &out {
        Ok(_) => q.prepare(RELEASE).and_then(|mut s| s.finish()),
        Err(_) => Err(Error::new("rolled back")),
    };
    if let Err(e) = end {
        let _ = q.prepare(ROLLBACK).and_then(|mut s| s.finish());
        let _ = q.prepare(RELEASE).and_then(|mut s| s.finish());
        return match out {
            Ok(_) => Err(e),
            Err(orig) => Err(orig),
        };
    }
    out
}
