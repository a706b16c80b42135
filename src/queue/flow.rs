//! Workflows: what follows when a task that others wait for finishes.
//!
//! Three links make a task wait for others: a parent waits for its
//! children (it completes when its own work is done and every child has
//! completed), a dependent waits for its dependencies (it is `blocked`,
//! in no claim index, until the last one completes), and both are kept as
//! counters (`children`, `waiting_for` and `dependents` on the rows, a
//! parent's unfinished children in `task_parent_store`) so that no step has
//! to count rows.
//!
//! When a linked task finishes, [`settle`] works through the consequences,
//! one task at a time, until none is left:
//!
//! | the task that finished | its dependents | its open children | its parent |
//! |---|---|---|---|
//! | completed | released when it was their last dependency | (none: it waited for them) | one more child done; completed if it was waiting for the last one |
//! | failed for good | cancelled | cancelled | failed (or, with `on_child_failure: continue`, one more child done) |
//! | cancelled | cancelled | cancelled | as for failed |
//!
//! Each step is one statement whose WHERE holds its condition (a dependent
//! is released only while `blocked`, a parent completed only while
//! `waiting` with every child done), and a task finishes once, so the work
//! ends. The verbs run it together with the write that started it
//! (`txn::atomically`). A plain task (no parent, children, dependents or
//! unique key) never comes here: its verbs stay one statement.

use super::Queue;
use super::model::{Status, flags};
use super::notes::{Note, fields};
use super::writeback;
use crate::error::{Error, Result};
use crate::ffi::Owned;
use std::collections::VecDeque;

/// A task that just finished, as the statement that finished it noted it:
/// `task__note(?now, status, seq, id, parent_id, children, dependents)`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: Status,
    pub seq: i64,
    pub id: String,
    pub parent_id: Option<String>,
    pub children: i64,
    pub dependents: i64,
}

/// The note arguments of a statement that finishes linked tasks, after the
/// value `task__note` returns.
macro_rules! finished_note {
    ($status:expr) => {
        concat!($status, ", seq, id, parent_id, children, dependents")
    };
}
pub(crate) use finished_note;

impl Note for Finished {
    const WHAT: &'static str = "finish";

    fn read(values: Vec<Owned>) -> Result<Self> {
        let [status, seq, id, parent_id, children, dependents] = fields::<Self, 6>(values)?;
        let status = status
            .into_text()
            .as_deref()
            .and_then(Status::parse)
            .ok_or_else(|| Error::new("internal: bad finish note"))?;
        Ok(Finished {
            status,
            seq: seq.int(),
            id: id.into_text().unwrap_or_default(),
            parent_id: parent_id.into_text(),
            children: children.int(),
            dependents: dependents.int(),
        })
    }
}

/// What a child's end tells of its parent: the parent's status, row and
/// flags, and whether none of its children is unfinished now.
struct ParentNote {
    status: Option<Status>,
    seq: i64,
    flags: i64,
    all_finished: bool,
}

/// That a count of unfinished children reached 0 (`task__note(0, 0)`).
struct LastChild;

impl Note for LastChild {
    const WHAT: &'static str = "last child";

    fn read(values: Vec<Owned>) -> Result<Self> {
        fields::<Self, 1>(values).map(|_| LastChild)
    }
}

// A dependent of a task that completed (or was deleted unfinished, in
// admin.rs) at `$at`: counted down, and released (queued) by its last
// dependency.
macro_rules! release_sql {
    ($which:expr, $at:expr) => {
        concat!(
            "UPDATE main.task_store
   SET waiting_for = max(waiting_for - 1, 0),
       status = CASE WHEN waiting_for <= 1 THEN 'queued' ELSE 'blocked' END,
       updated_at = ",
            released_event!($at),
            "
 WHERE ",
            $which,
            " AND +status = 'blocked'"
        )
    };
}
pub(crate) use release_sql;

// `+status`: a dependent is found by rowid, through task_deps. Written
// plainly, the status test matches `task_store_parked`, and SQLite 3.53
// scans that index over every parked task instead (measured: 366 µs
// against 8 µs to release one dependent among 9,900 blocked tasks).
macro_rules! dependents_of {
    () => {
        "seq IN (SELECT task FROM main.task_deps WHERE dep = +?1)"
    };
}
pub(crate) use dependents_of;

/// All the dependents of task ?1, in one statement.
const RELEASE_SQL: &str = release_sql!(dependents_of!(), "?2");

/// The most dependents that are counted down one by one (by rowid).
///
/// The statement over all of them reads `seq IN (SELECT …)`, for which
/// SQLite builds a temporary table on every run, and it may change several
/// rows, so it keeps a statement journal; it also sets `status` on a
/// dependent that still waits, which deletes and inserts the row's entry
/// in `task_store_parked`. The join of a fan-in is counted down once by each
/// task it waits for: one by one, that costs a read of task_deps and an
/// UPDATE of one row that sets no indexed column (callgrind, a 98-wide
/// fan-in: see BENCHMARKS.md, "Dependencies counted down").
const ONE_BY_ONE: i64 = 8;

const DEPENDENTS_SQL: &str = "SELECT task FROM main.task_deps WHERE dep = +?1";

/// Dependent ?1 (a rowid) counted down, while others remain.
const COUNT_DOWN_SQL: &str = "\
UPDATE main.task_store SET waiting_for = waiting_for - 1, updated_at = ?2
 WHERE seq = +?1 AND +status = 'blocked' AND waiting_for > 1";

/// Dependent ?1 (a rowid) released: its last dependency completed.
const RELEASE_ONE_SQL: &str = release_sql!("seq = +?1", "?2");

/// Counts down (and releases) the dependents of the completed task `t`.
fn release(q: &Queue, t: &Finished, now: i64) -> Result<()> {
    let bind = |sql: &'static str, seq: i64| -> Result<i64> {
        let mut st = q.prepare(sql)?;
        st.bind_i64(1, seq)?;
        st.bind_i64(2, now)?;
        st.finish()?;
        Ok(q.conn().changes())
    };
    if t.dependents > ONE_BY_ONE {
        bind(RELEASE_SQL, t.seq)?;
        return Ok(());
    }
    // The rows of task_deps are what counts (the `dependents` counter only
    // chooses the way).
    let mut seqs = Vec::new();
    let mut st = q.prepare(DEPENDENTS_SQL)?;
    st.bind_i64(1, t.seq)?;
    while st.step()? {
        seqs.push(st.column_i64(0));
    }
    drop(st);
    for seq in seqs {
        if bind(COUNT_DOWN_SQL, seq)? == 0 {
            bind(RELEASE_ONE_SQL, seq)?;
        }
    }
    Ok(())
}

/// Ends the tasks `$where` selects as `$status` with error ?3 at ?2, as a
/// consequence of another task's end: out of every workflow index (flags)
/// and noted for settling in turn.
macro_rules! ended_by_another {
    ($status:literal, $where:expr) => {
        concat!(
            "UPDATE main.task_store
   SET status = ",
            $status,
            ", error = ?3, completed_at = ?2, lease_until = NULL,
       flags = ",
            flags_ended!(),
            ",
       updated_at = ",
            event!(
                concat!("task__note(?2, ", finished_note!($status), ")"),
                "queue",
                concat!(
                    "CASE ",
                    $status,
                    " WHEN 'failed' THEN ",
                    kind!(failed),
                    " ELSE ",
                    kind!(cancelled),
                    " END"
                ),
                $status,
                "attempts",
                "worker",
                "?3",
                "NULL"
            ),
            "
 WHERE ",
            $where
        )
    };
}

const CANCEL_DEPENDENTS_SQL: &str = ended_by_another!(
    "'cancelled'",
    concat!(dependents_of!(), " AND +status = 'blocked'")
);

const CANCEL_CHILDREN_SQL: &str = ended_by_another!(
    "'cancelled'",
    concat!("parent_id = +?1 AND ", unfinished!())
);

/// The parent ?1 (id), whose row in task_parent_store is ?2, has one
/// unfinished child fewer; noted when that was the last. A rowid seek in a
/// row of three columns: a parent's children end one by one, each telling it
/// (storage version 8 says why the count is not on the parent's own row).
const CHILD_FINISHED_SQL: &str = "\
UPDATE main.task_parent_store
   SET unfinished = CASE WHEN unfinished > 1 THEN unfinished - 1 ELSE task__note(0, 0) END
 WHERE seq = ?2 AND id = ?1";

/// What a child's end needs to know of its parent: by its row ?1, the id
/// ?2 checked.
const PARENT_SQL: &str = "SELECT status, flags FROM main.task_store WHERE seq = ?1 AND id = +?2";

const FAIL_PARENT_SQL: &str =
    ended_by_another!("'failed'", concat!("seq = +?1 AND ", unfinished!()));

const COMPLETE_PARENT_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'completed', completed_at = ?2, progress = 100,
       flags = ",
    flags_completed!(),
    ",
       updated_at = ",
    event!(
        concat!("task__note(?2, ", finished_note!("'completed'"), ")"),
        "queue",
        kind!(completed),
        "'completed'",
        "attempts",
        "worker",
        "NULL",
        "100"
    ),
    "
 WHERE seq = +?1 AND status = 'waiting' AND (",
    children_open!("task_store"),
    ") = 0"
);

/// Runs `sql` (binding ?1 `target`, ?2 `now`, and ?3 `error` if given)
/// and queues the tasks it finished.
fn finish_many(
    q: &Queue,
    sql: &'static str,
    target: Target<'_>,
    now: i64,
    error: Option<&str>,
    work: &mut VecDeque<Finished>,
) -> Result<()> {
    let mut st = q.prepare(sql)?;
    match target {
        Target::Seq(seq) => st.bind_i64(1, seq)?,
        Target::Id(id) => st.bind_text(1, id)?,
    }
    st.bind_i64(2, now)?;
    if let Some(e) = error {
        st.bind_text(3, e)?;
    }
    q.notes().run(st, |t: Finished| work.push_back(t))
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Seq(i64),
    Id(&'a str),
}

/// How a finished task is named in the errors of those it takes along.
fn ended(status: Status) -> &'static str {
    match status {
        Status::Completed => "completed",
        Status::Cancelled => "was cancelled",
        _ => "failed",
    }
}

/// Applies everything that follows from `first` having finished.
pub fn settle(q: &Queue, first: Vec<Finished>, now: i64) -> Result<()> {
    let mut work: VecDeque<Finished> = first.into();
    while let Some(t) = work.pop_front() {
        // A finished task holds no progress in memory any more.
        writeback::take(q.key(), &t.id);
        let done = t.status == Status::Completed;
        if t.dependents > 0 {
            if done {
                // Released dependents are queued where the kept heads do
                // not look; what this loop cancels or fails is only taken
                // out, which the claim's check of the head it takes sees.
                q.forget_heads();
                release(q, &t, now)?;
            } else {
                let why = format!("dependency task {} {}", t.id, ended(t.status));
                finish_many(
                    q,
                    CANCEL_DEPENDENTS_SQL,
                    Target::Seq(t.seq),
                    now,
                    Some(&why),
                    &mut work,
                )?;
            }
        }
        if t.children > 0 && !done {
            let why = format!("parent task {} {}", t.id, ended(t.status));
            finish_many(
                q,
                CANCEL_CHILDREN_SQL,
                Target::Id(&t.id),
                now,
                Some(&why),
                &mut work,
            )?;
        }
        if let Some(parent) = &t.parent_id {
            to_parent(q, parent, &t.id, t.status, now, &mut work)?;
        }
    }
    Ok(())
}

/// Tells `parent` that its child `child` ended as `status`: one more child done, and
/// the parent failed or completed if that follows (queued in `work`).
fn to_parent(
    q: &Queue,
    parent: &str,
    child: &str,
    status: Status,
    now: i64,
    work: &mut VecDeque<Finished>,
) -> Result<()> {
    let done = status == Status::Completed;
    // The parent may be gone (deleted by hand): nothing to tell.
    let Some(p) = tell_parent(q, parent, done)? else {
        return Ok(());
    };
    if p.status.is_none_or(Status::is_finished) {
        return Ok(());
    }
    if !done && p.flags & flags::CONTINUE_ON_CHILD_FAILURE == 0 {
        let why = format!("child task {child} {}", ended(status));
        finish_many(
            q,
            FAIL_PARENT_SQL,
            Target::Seq(p.seq),
            now,
            Some(&why),
            work,
        )?;
    } else if p.status == Some(Status::Waiting) && p.all_finished {
        finish_many(q, COMPLETE_PARENT_SQL, Target::Seq(p.seq), now, None, work)?;
    }
    Ok(())
}

/// Counts a finished child off `parent`'s unfinished ones and returns what
/// follows from the parent: none when the parent is gone, or, for a
/// completed child, when the parent has unfinished children still. By the
/// parent's row this connection remembers, else by its id (its row then
/// remembered).
fn tell_parent(q: &Queue, parent: &str, completed: bool) -> Result<Option<ParentNote>> {
    let mut counted = None;
    if let Some(seq) = q.parent_seq(parent) {
        match count_down(q, parent, seq)? {
            Some(last) => counted = Some((seq, last)),
            // Deleted, or its row is another task's now: by its id.
            None => q.forget_parent(parent),
        }
    }
    let (seq, last) = match counted {
        Some(c) => c,
        None => {
            // Deleted by hand: nothing to tell.
            let Some((seq, _)) = super::enqueue::lookup(q, parent)? else {
                return Ok(None);
            };
            let last = count_down(q, parent, seq)?;
            if last.is_some() {
                q.remember_parent(parent, seq);
            }
            // No count at all (a parent made by hand): a failed child still
            // fails it.
            (seq, last.unwrap_or(false))
        }
    };
    if completed && !last {
        return Ok(None);
    }
    let mut st = q.prepare(PARENT_SQL)?;
    st.bind_i64(1, seq)?;
    st.bind_text(2, parent)?;
    if !st.step()? {
        return Ok(None);
    }
    Ok(Some(ParentNote {
        status: st.column_text(0).as_deref().and_then(Status::parse),
        seq,
        flags: st.column_i64(1),
        all_finished: last,
    }))
}

/// One unfinished child fewer in the count of `parent` (rowid `seq`):
/// whether that was the last, or None when no count has that row and id.
fn count_down(q: &Queue, parent: &str, seq: i64) -> Result<Option<bool>> {
    let mut st = q.prepare(CHILD_FINISHED_SQL)?;
    st.bind_text(1, parent)?;
    st.bind_i64(2, seq)?;
    let last = q.notes().first::<LastChild>(st)?.is_some();
    Ok((q.conn().changes() == 1).then_some(last))
}

/// What follows from the completion of `id`, a child of `parent` with no
/// children or dependents of its own (`COMPLETE_LEAF_SQL` in `worker.rs`
/// completed it): its parent's count, and the parent's end if that was its
/// last child.
pub fn leaf_completed(q: &Queue, parent: &str, id: &str, now: i64) -> Result<()> {
    let mut work = VecDeque::new();
    to_parent(q, parent, id, Status::Completed, now, &mut work)?;
    settle(q, work.into(), now)
}

/// Completes the waiting task `seq` whose children have all finished, with
/// what follows from that.
pub fn complete_waiting(q: &Queue, seq: i64, now: i64) -> Result<()> {
    let mut work = VecDeque::new();
    finish_many(
        q,
        COMPLETE_PARENT_SQL,
        Target::Seq(seq),
        now,
        None,
        &mut work,
    )?;
    settle(q, work.into(), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_notes_have_as_many_values_as_their_reader_takes() {
        let args = finished_note!("'x'").split(',').count();
        assert_eq!(args, 6);
        let v = vec![
            Owned::Text("failed".into()),
            Owned::Integer(4),
            Owned::Text("id".into()),
            Owned::Null,
            Owned::Integer(0),
            Owned::Integer(2),
        ];
        let f = Finished::read(v).unwrap();
        assert_eq!((f.status, f.seq, f.dependents), (Status::Failed, 4, 2));
        assert!(Finished::read(vec![Owned::Null; 6]).is_err());
    }
}
