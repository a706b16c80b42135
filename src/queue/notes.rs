//! The note protocol: how the extension's UPDATEs report the rows they
//! change, without RETURNING.
//!
//! RETURNING would be the obvious way, but SQLite buffers every returned
//! row in a temporary b-tree with its own page cache: ~100 µs per call,
//! measured, more than the claim itself. Instead each write statement that
//! needs to know what it changed sets
//! `updated_at = task__note(?now, v1, v2, …)`: the internal SQL function
//! `task__note` records `v1, v2, …` for that row on the connection and
//! returns its first argument, the value `updated_at` gets anyway. After the
//! statement ran, [`Notes::run`] hands the recorded rows to the caller,
//! decoded by the statement's own [`Note`] type, which sits next to the
//! statement's SQL so that the argument list and its reader are read
//! together (`claim/sql.rs`, `worker.rs`).
//!
//! Rows are recorded only while one of the extension's statements runs (a
//! user's `SELECT task__note(…)` records nothing), and recordings nest like a
//! stack: a trigger on the storage that calls a verb inside our statement
//! takes its own rows and leaves the outer statement's.

use crate::error::{Error, Result};
use crate::ffi::{Owned, Stmt, Value};
use std::cell::{Cell, RefCell};

/// One row's noted values, decoded.
pub trait Note: Sized {
    /// Names the statement in the internal error for a malformed row.
    const WHAT: &'static str;
    fn read(values: Vec<Owned>) -> Result<Self>;
}

/// The values of a note, as an array of the length the statement writes.
pub fn fields<N: Note, const K: usize>(values: Vec<Owned>) -> Result<[Owned; K]> {
    <[Owned; K]>::try_from(values)
        .map_err(|_| Error::new(format!("internal: bad {} note", N::WHAT)))
}

/// Rows recorded on one connection.
#[derive(Default)]
pub struct Notes {
    rows: RefCell<Vec<Vec<Owned>>>,
    /// Statements of ours running inside `run`.
    depth: Cell<u32>,
}

impl Notes {
    /// `task__note`'s side: records `values` for the current row, if one
    /// of the extension's statements is running.
    pub fn record(&self, values: &[Value<'_>]) {
        if self.depth.get() > 0 {
            self.rows
                .borrow_mut()
                .push(values.iter().map(|v| v.to_owned_value()).collect());
        }
    }

    /// Runs `st` to completion, then hands each row its `task__note()`
    /// calls recorded to `each`, decoded.
    pub fn run<N: Note>(&self, mut st: Stmt, mut each: impl FnMut(N)) -> Result<()> {
        let rec = self.begin();
        let outcome = st.finish();
        drop(st);
        let rows = rec.take();
        outcome?;
        for row in rows {
            each(N::read(row)?);
        }
        Ok(())
    }

    /// Runs `st` (which changes at most one row) and returns its note.
    pub fn first<N: Note>(&self, st: Stmt) -> Result<Option<N>> {
        let mut first = None;
        self.run(st, |n| {
            first.get_or_insert(n);
        })?;
        Ok(first)
    }

    fn begin(&self) -> Recording<'_> {
        self.depth.set(self.depth.get() + 1);
        Recording {
            notes: self,
            mark: self.rows.borrow().len(),
            open: true,
        }
    }
}

/// An open recording; ends on `take` or drop (an early return by `?`
/// included).
struct Recording<'a> {
    notes: &'a Notes,
    mark: usize,
    open: bool,
}

impl Recording<'_> {
    /// Removes and returns the rows noted since the recording began.
    fn take(mut self) -> Vec<Vec<Owned>> {
        let taken = {
            let mut rows = self.notes.rows.borrow_mut();
            let at = self.mark.min(rows.len());
            rows.split_off(at)
        };
        self.close();
        taken
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            let depth = &self.notes.depth;
            depth.set(depth.get().saturating_sub(1));
            if depth.get() == 0 {
                // Nothing of ours is running: drop rows nobody will read.
                self.notes.rows.borrow_mut().truncate(self.mark);
            }
        }
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.close();
    }
}
