//! Retention: `task_prune` and the per-queue retention `task_tick` applies.
//! Deletes finished tasks (completed, failed, cancelled) whose
//! `completed_at` is older than a cutoff, with their descendants and their
//! dependency links, in bounded steps.
//!
//! A step is one transaction over a window of `step` consecutive rowids
//! (seq): it visits at most that many rows, whatever the table holds, so
//! the write lock is held for a bounded time, and other writers (workers
//! claiming and completing) get it between steps. Completed tasks are in no
//! index (storage/mod.rs), so walking the table in rowid order is also the
//! cheapest way to find them: old tasks have low seqs, and each row is
//! visited once per pass.
//!
//! What is deleted: a finished task with no parent (or whose parent is
//! gone), with its descendants, which are finished too (a parent finishes
//! after its children, or cancels them). A finished child of a parent that
//! is still there waits for its parent: deleting it would change the
//! parent's rollup. Occurrence records of schedules older than the cutoff
//! go as well.

use super::Queue;
use super::admin::delete_counting;
use super::events;
use super::txn::atomically;
use crate::error::Result;
use std::time::Instant;

/// Rows a step visits unless told otherwise.
pub const DEFAULT_STEP: i64 = 1_000;
pub const MAX_STEP: i64 = 100_000;

/// Which finished tasks go: those older than the cutoff of their status
/// (`None`: that status is kept), of one queue or of all.
#[derive(Debug, Clone, Default)]
pub struct Cutoffs<'a> {
    pub completed: Option<i64>,
    pub failed: Option<i64>,
    pub cancelled: Option<i64>,
    pub queue: Option<&'a str>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    pub deleted: i64,
    pub steps: i64,
    /// The longest step, in ms of wall time.
    pub longest_step_ms: f64,
    /// Where the last step ended (a seq).
    pub cursor: i64,
    /// Events deleted: with their tasks (with the log's index by task) and
    /// by age (`events::prune_older`).
    pub events: i64,
}

// The status and age test of every statement below; ?3, ?4, ?5 the
// cutoffs of completed, failed and cancelled tasks (NULL: kept), ?6 the
// queue (NULL: any). `+`: the window of rowids is the plan, not an index.
macro_rules! prunable {
    () => {
        "seq > ?1 AND seq <= ?2
   AND ((+status = 'completed' AND +completed_at < ?3)
     OR (+status = 'failed' AND +completed_at < ?4)
     OR (+status = 'cancelled' AND +completed_at < ?5))
   AND (?6 IS NULL OR +queue = ?6)"
    };
}

// A task in no workflow: one statement deletes every such task of the
// window. It is the step's first statement, and a write, so the step
// takes the write lock before it reads anything.
const DELETE_PLAIN_SQL: &str = concat!(
    "DELETE FROM main.task_store WHERE ",
    prunable!(),
    " AND flags & 1 = 0 AND ",
    plain_task!()
);

// With the event log's index by task (`events::indexed`), the events of
// the tasks DELETE_PLAIN_SQL is about to delete, first.
const FORGET_PLAIN_SQL: &str = concat!(
    "DELETE FROM main.task_event_store
 WHERE seq < (SELECT max(seq) FROM main.task_event_store)
   AND task_id IN (SELECT id FROM main.task_store WHERE ",
    prunable!(),
    " AND flags & 1 = 0 AND ",
    plain_task!(),
    ")"
);

// The rest: roots of finished trees and tasks with links, deleted one at a
// time with what hangs on them (admin.rs).
const LINKED_SQL: &str = concat!(
    "SELECT seq FROM main.task_store AS t WHERE ",
    prunable!(),
    "
   AND (t.parent_id IS NULL
        OR NOT EXISTS (SELECT 1 FROM main.task_store AS p WHERE p.id = t.parent_id))"
);

const MAX_SEQ_SQL: &str = "SELECT coalesce(max(seq), 0) FROM main.task_store";

// Occurrence records older than the oldest cutoff, a bounded number per
// step.
const RUNS_SQL: &str = "\
DELETE FROM main.task_schedule_runs
 WHERE (schedule, at) IN (SELECT schedule, at FROM main.task_schedule_runs
                           WHERE at < ?1 LIMIT ?2)";

/// The highest seq in use (0: no tasks).
pub fn max_seq(q: &Queue) -> Result<i64> {
    q.prepare(MAX_SEQ_SQL)?.first_i64()
}

/// One step over the rowids after `from`, `step` of them: deletes what
/// `c` selects there. Returns how many tasks went, and how many of their
/// events (with the log's index by task).
pub fn step(q: &Queue, c: &Cutoffs<'_>, from: i64, step: i64) -> Result<(i64, i64)> {
    let to = from.saturating_add(step);
    let bind = |st: &mut crate::ffi::Stmt| -> Result<()> {
        st.bind_i64(1, from)?;
        st.bind_i64(2, to)?;
        st.bind_opt_i64(3, c.completed)?;
        st.bind_opt_i64(4, c.failed)?;
        st.bind_opt_i64(5, c.cancelled)?;
        st.bind_opt_text(6, c.queue)
    };
    let with_events = events::indexed(q)?;
    atomically(q, || {
        let mut events = 0;
        if with_events {
            let mut st = q.prepare(FORGET_PLAIN_SQL)?;
            bind(&mut st)?;
            st.finish()?;
            drop(st);
            events = q.conn().changes();
        }
        let mut st = q.prepare(DELETE_PLAIN_SQL)?;
        bind(&mut st)?;
        st.finish()?;
        drop(st);
        let mut deleted = q.conn().changes();
        let mut st = q.prepare(LINKED_SQL)?;
        bind(&mut st)?;
        let mut linked = Vec::new();
        while st.step()? {
            linked.push(st.column_i64(0));
        }
        drop(st);
        for seq in linked {
            // Gone already (a descendant of one deleted before it), or
            // holding an unfinished descendant (a child added to it after
            // it finished, by hand): left for a later pass.
            match delete_counting(q, seq, with_events) {
                Ok((n, e)) => {
                    deleted += n as i64;
                    events += e;
                }
                Err(e) if e.code == crate::error::code::ERROR => {}
                Err(e) => return Err(e),
            }
        }
        let oldest = [c.completed, c.failed, c.cancelled]
            .into_iter()
            .flatten()
            .min();
        if let Some(cut) = oldest {
            let mut st = q.prepare(RUNS_SQL)?;
            st.bind_i64(1, cut)?;
            st.bind_i64(2, step)?;
            st.finish()?;
        }
        Ok((deleted, events))
    })
}

/// Walks the whole table once, a step at a time; then, with `events`, the
/// event log from its oldest, deleting the events older than the oldest
/// cutoff.
pub fn prune(q: &Queue, c: &Cutoffs<'_>, step_rows: i64, events: bool) -> Result<Pruned> {
    let end = max_seq(q)?;
    let mut out = Pruned::default();
    let mut from = 0;
    while from < end {
        let t = Instant::now();
        let (tasks, events) = step(q, c, from, step_rows)?;
        out.deleted += tasks;
        out.events += events;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if ms > out.longest_step_ms {
            out.longest_step_ms = ms;
        }
        out.steps += 1;
        from = from.saturating_add(step_rows);
        out.cursor = from.min(end);
    }
    // The event log by age: what is older than every cutoff given.
    let oldest = [c.completed, c.failed, c.cancelled]
        .into_iter()
        .flatten()
        .min();
    if let (true, Some(oldest)) = (events, oldest) {
        let t = Instant::now();
        let (n, steps) = events::prune_older(q, oldest, step_rows)?;
        out.events += n;
        let ms = t.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64;
        if ms > out.longest_step_ms {
            out.longest_step_ms = ms;
        }
    }
    Ok(out)
}

const RETENTION_SQL: &str = "\
SELECT name, retain_completed, retain_failed, retain_cancelled, retention_cursor
  FROM main.task_queue_store
 WHERE retain_completed IS NOT NULL OR retain_failed IS NOT NULL
    OR retain_cancelled IS NOT NULL";

const CURSOR_SQL: &str = "\
UPDATE main.task_queue_store SET retention_cursor = ?2 WHERE name = +?1";

/// The per-queue retention: one step for each queue that has one, from
/// where its last step ended (back to the start after the end). Returns how
/// many tasks went.
pub fn retention(q: &Queue, now: i64) -> Result<i64> {
    let mut queues = Vec::new();
    let mut st = q.prepare(RETENTION_SQL)?;
    while st.step()? {
        let cut = |i| st.column_opt_i64(i).map(|ms: i64| now.saturating_sub(ms));
        queues.push((
            st.column_text(0).unwrap_or_default(),
            cut(1),
            cut(2),
            cut(3),
            st.column_i64(4),
        ));
    }
    drop(st);
    if queues.is_empty() {
        return Ok(0);
    }
    let end = max_seq(q)?;
    let mut deleted = 0;
    for (name, completed, failed, cancelled, cursor) in queues {
        let from = if cursor >= end { 0 } else { cursor };
        let c = Cutoffs {
            completed,
            failed,
            cancelled,
            queue: Some(&name),
        };
        deleted += step(q, &c, from, DEFAULT_STEP)?.0;
        let mut st = q.prepare(CURSOR_SQL)?;
        st.bind_text(1, &name)?;
        st.bind_i64(2, from.saturating_add(DEFAULT_STEP).min(end))?;
        st.finish()?;
    }
    Ok(deleted)
}
