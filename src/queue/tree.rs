//! Parents and children beyond what `flow.rs` settles: the rollup of a
//! parent's progress, and the retry of a parent with its failed children.
//!
//! The rollup of a task with children is the mean over its children of
//! their progress, a finished child (completed, failed, cancelled)
//! counting as 100 and a child that has children counting as its own
//! rollup. It is computed when read: the parent row counts its children,
//! `task_parent_store` its unfinished ones, and the `task_store_busy` index holds only the
//! unfinished children that have progress or children of their own, so a
//! parent of 10,000 children is read through the few at work. Values that
//! write-back holds in this process count instead of the stored ones.

use super::Queue;
use super::model::Status;
use super::writeback;
use crate::error::{Error, Result};

// `flags & 16` as the partial index `task_store_busy` has it, so that
// SQLite reads it; the index may hold a child that has finished since
// (the bit is cleared on the workflow path, and a stale one is harmless),
// so the status is checked on the row.
const BUSY_CHILDREN_SQL: &str = concat!(
    "SELECT id, seq, progress, children, children - (",
    children_open!("task_store"),
    ") FROM main.task_store
 WHERE parent_id = +?1 AND flags & 16 AND ",
    unfinished!()
);

/// Deepest tree a rollup descends (a parent cycle made by hand must not
/// recurse forever).
const MAX_DEPTH: usize = 64;

/// The rollup of the task `id` (rowid `seq`) that has `children` children,
/// `done` of them finished.
pub fn rollup(q: &Queue, id: &str, seq: i64, children: i64, done: i64) -> Result<f64> {
    rollup_at(q, id, seq, children, done, 0)
}

fn rollup_at(q: &Queue, id: &str, seq: i64, children: i64, done: i64, depth: usize) -> Result<f64> {
    if children <= 0 {
        return Ok(0.0);
    }
    let mut sum = 100.0 * done as f64;
    let mut busy: Vec<(String, i64, f64, i64, i64)> = Vec::new();
    let mut st = q.prepare(BUSY_CHILDREN_SQL)?;
    st.bind_text(1, id)?;
    while st.step()? {
        busy.push((
            st.column_text(0).unwrap_or_default(),
            st.column_i64(1),
            st.column_f64(2),
            st.column_i64(3),
            st.column_i64(4),
        ));
    }
    drop(st);
    for (child, child_seq, progress, grandchildren, grand_done) in &busy {
        sum += if *grandchildren > 0 && depth < MAX_DEPTH {
            rollup_at(q, child, *child_seq, *grandchildren, *grand_done, depth + 1)?
        } else {
            *progress
        };
    }
    // Held progress of leaf children (a parent's own progress is not
    // shown, so a held value of one is not either).
    for (child, delta) in writeback::held_children(q.key(), seq) {
        if !busy.iter().any(|(id, _, _, g, _)| *id == child && *g > 0) {
            sum += delta;
        }
    }
    Ok((sum / children as f64).clamp(0.0, 100.0))
}

// A failed or cancelled task back to its queue: waiting if its own work
// was done (a parent that failed with a child), blocked while a dependency
// has not completed, queued otherwise.
macro_rules! retried_to {
    () => {
        "CASE
         WHEN flags & 8 THEN 'waiting'
         WHEN (SELECT count(*) FROM main.task_deps AS x JOIN main.task_store AS d ON d.seq = x.dep
                WHERE x.task = task_store.seq AND d.status <> 'completed') > 0 THEN 'blocked'
         ELSE 'queued' END"
    };
}

const RETRY_ONE_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = ",
    retried_to!(),
    ",
       waiting_for = (SELECT count(*) FROM main.task_deps AS x
                        JOIN main.task_store AS d ON d.seq = x.dep
                       WHERE x.task = task_store.seq AND d.status <> 'completed'),
       attempts = 0, progress = 0, run_at = ?2, worker = NULL, lease_until = NULL,
       started_at = NULL, completed_at = NULL,
       flags = flags | CASE WHEN unique_key IS NOT NULL THEN 32 ELSE 0 END
                     | CASE WHEN parent_id IS NOT NULL AND children > 0 THEN 16 ELSE 0 END,
       updated_at = ",
    event!(
        "?2",
        "queue",
        kind!(retried),
        retried_to!(),
        "0",
        "NULL",
        "NULL",
        "0"
    ),
    "
 WHERE seq = +?1 AND (status = 'failed' OR status = 'cancelled')"
);

const ENDED_CHILDREN_SQL: &str = "\
SELECT seq, id FROM main.task_store
 WHERE parent_id = +?1 AND (status = 'failed' OR status = 'cancelled')";

// Children retried: unfinished again.
const UNDONE_SQL: &str = "\
UPDATE main.task_parent_store SET unfinished = unfinished + ?2 WHERE seq = ?1 AND id = ?3";

const PARENT_OF_SQL: &str = "\
SELECT p.seq, p.id, p.status FROM main.task_store AS c JOIN main.task_store AS p ON p.id = c.parent_id
 WHERE c.id = +?1";

const STATE_SQL: &str = concat!(
    "SELECT status, ",
    children_open!("task_store"),
    " FROM main.task_store WHERE seq = +?1"
);

/// `task_retry` of a task that is in a workflow (the fast path in
/// `admin.rs` took the others): the task, and each failed or cancelled
/// descendant through it, back to their queues; counters follow. Returns
/// the task's status then.
pub fn retry(q: &Queue, id: &str, now: i64) -> Result<Status> {
    q.forget_heads();
    let mut st = q.prepare(PARENT_OF_SQL)?;
    st.bind_text(1, id)?;
    let parent = if st.step()? {
        Some((
            st.column_i64(0),
            st.column_text(1).unwrap_or_default(),
            st.column_text(2).unwrap_or_default(),
        ))
    } else {
        None
    };
    drop(st);
    if let Some((_, pid, pstatus)) = &parent
        && Status::parse(pstatus).is_none_or(Status::is_finished)
    {
        return Err(Error::new(format!(
            "task {id} belongs to task {pid}, which is {pstatus}; retry task {pid}, which \
             retries its failed and cancelled children"
        )));
    }
    let cur = super::refusal::current(q, id)?;
    if !retry_one(q, cur.seq, id, now)? {
        return Err(Error::new(format!(
            "task {id} is {}; only failed or cancelled tasks can be retried",
            cur.status
        )));
    }
    if let Some((pseq, pid, _)) = &parent {
        undone(q, *pseq, pid, 1)?;
    }
    // Descendants, depth first.
    let mut work = vec![(cur.seq, id.to_string())];
    while let Some((seq, id)) = work.pop() {
        let mut ended = Vec::new();
        let mut st = q.prepare(ENDED_CHILDREN_SQL)?;
        st.bind_text(1, &id)?;
        while st.step()? {
            ended.push((st.column_i64(0), st.column_text(1).unwrap_or_default()));
        }
        drop(st);
        let mut n = 0;
        for (child_seq, child_id) in ended {
            if retry_one(q, child_seq, &child_id, now)? {
                n += 1;
                work.push((child_seq, child_id));
            }
        }
        if n > 0 {
            undone(q, seq, &id, n)?;
        }
        complete_if_done(q, seq, now)?;
    }
    state(q, cur.seq)?
        .and_then(|(status, _)| status)
        .ok_or_else(|| Error::new(format!("internal: task {id} has no status after its retry")))
}

/// The status of the task `seq`, and whether all its children have
/// finished; None if it is gone.
fn state(q: &Queue, seq: i64) -> Result<Option<(Option<Status>, bool)>> {
    let mut st = q.prepare(STATE_SQL)?;
    st.bind_i64(1, seq)?;
    if !st.step()? {
        return Ok(None);
    }
    let status = st.column_text(0).as_deref().and_then(Status::parse);
    Ok(Some((status, st.column_i64(1) == 0)))
}

fn retry_one(q: &Queue, seq: i64, id: &str, now: i64) -> Result<bool> {
    let mut st = q.prepare(RETRY_ONE_SQL)?;
    st.bind_i64(1, seq)?;
    st.bind_i64(2, now)?;
    let outcome = st.finish();
    drop(st);
    outcome.map_err(|e| super::enqueue::unique_refusal(q, id, e))?;
    let changed = q.conn().changes() == 1;
    if changed {
        writeback::take(q.key(), id);
    }
    Ok(changed)
}

/// `n` children of the task `id` (row `seq`) are unfinished again.
fn undone(q: &Queue, seq: i64, id: &str, n: i64) -> Result<()> {
    let mut st = q.prepare(UNDONE_SQL)?;
    st.bind_i64(1, seq)?;
    st.bind_i64(2, n)?;
    st.bind_text(3, id)?;
    st.finish()
}

/// A task back to waiting whose children had all finished after all (its
/// failure came from elsewhere) completes now, with what follows.
fn complete_if_done(q: &Queue, seq: i64, now: i64) -> Result<()> {
    if let Some((Some(Status::Waiting), true)) = state(q, seq)? {
        super::flow::complete_waiting(q, seq, now)?;
    }
    Ok(())
}
