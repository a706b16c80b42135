//! What an operator does to tasks, whoever holds them: `task_cancel`,
//! `task_retry`, and the `tasks` table's UPDATE (reschedule) and DELETE.

use super::Queue;
use super::enqueue::unique_refusal;
use super::events;
use super::flow::{self, Finished, dependents_of, finished_note, release_sql};
use super::ids::parse_id;
use super::model::{
    MAX_ATTEMPTS_LIMIT, MAX_TIME_MS, PRIORITY_RANGE, Status, check_opt, clock, quoted,
};
use super::refusal::{Current, current};
use super::txn::atomically;
use super::writeback;
use crate::error::{Error, Result, code};

/// The event of a cancel (by an operator: no error).
macro_rules! cancelled_event {
    ($returns:expr) => {
        event!(
            $returns,
            "queue",
            kind!(cancelled),
            "'cancelled'",
            "attempts",
            "worker",
            "NULL",
            "NULL"
        )
    };
}

const CANCEL_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'cancelled', lease_until = NULL, completed_at = ?2, updated_at = ",
    cancelled_event!("?2"),
    "
 WHERE id = +?1 AND ",
    unfinished!(),
    " AND ",
    plain_task!()
);

const CANCEL_LINKED_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'cancelled', lease_until = NULL, completed_at = ?2,
       flags = ",
    flags_ended!(),
    ",
       updated_at = ",
    cancelled_event!(concat!(
        "task__note(?2, ",
        finished_note!("'cancelled'"),
        ")"
    )),
    "
 WHERE id = +?1 AND ",
    unfinished!()
);

/// Cancels a task that has not finished. A running task's worker learns
/// it at its next progress or heartbeat call, and can no longer complete
/// it. Its unfinished children and its dependents are cancelled with it,
/// and its parent fails (`flow.rs`).
pub fn cancel(q: &Queue, id: &str, now: Option<i64>) -> Result<()> {
    q.forget_heads();
    let id = parse_id("id", id)?;
    let now = clock(now)?;
    let mut st = q.prepare(CANCEL_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    st.finish()?;
    drop(st);
    if q.conn().changes() == 1 {
        writeback::take(q.key(), &id);
        return Ok(());
    }
    let cur = current(q, &id)?;
    let refusal = |cur: &Current| {
        Error::new(format!(
            "task {id} is already {}; only queued, running, blocked or waiting tasks can be \
             cancelled",
            cur.status
        ))
    };
    if !cur.linked || Status::parse(&cur.status).is_none_or(Status::is_finished) {
        return Err(refusal(&cur));
    }
    atomically(q, || {
        let mut st = q.prepare(CANCEL_LINKED_SQL)?;
        st.bind_text(1, &id)?;
        st.bind_i64(2, now)?;
        match q.notes().first::<Finished>(st)? {
            Some(t) => flow::settle(q, vec![t], now),
            None => Err(refusal(&current(q, &id)?)),
        }
    })
}

const RETRY_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'queued', attempts = 0, progress = 0, run_at = ?2, worker = NULL,
       lease_until = NULL, started_at = NULL, completed_at = NULL, updated_at = ",
    event!(
        "?2",
        "queue",
        kind!(retried),
        "'queued'",
        "0",
        "NULL",
        "NULL",
        "0"
    ),
    "
 WHERE id = +?1 AND (status = 'failed' OR status = 'cancelled')
   AND parent_id IS NULL AND children = 0 AND unique_key IS NULL AND flags & 9 = 0"
);

/// Puts a failed or cancelled task back in its queue with a fresh budget of
/// attempts, and returns its status then. Its last error is kept until it
/// runs again. A task with dependencies comes back blocked until they
/// complete; a parent whose own work was done comes back waiting (or
/// completes, if its children had all finished); a parent's failed and
/// cancelled descendants come back with it.
pub fn retry(q: &Queue, id: &str, now: Option<i64>) -> Result<Status> {
    q.forget_heads();
    let id = parse_id("id", id)?;
    let now = clock(now)?;
    let mut st = q.prepare(RETRY_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    let outcome = st.finish();
    drop(st);
    outcome.map_err(|e| unique_refusal(q, &id, e))?;
    if q.conn().changes() == 1 {
        writeback::take(q.key(), &id);
        return Ok(Status::Queued);
    }
    let cur = current(q, &id)?;
    if !cur.is(Status::Failed) && !cur.is(Status::Cancelled) {
        return Err(Error::new(format!(
            "task {id} is {}; only failed or cancelled tasks can be retried",
            cur.status
        )));
    }
    atomically(q, || super::tree::retry(q, &id, now))
}

/// What `UPDATE tasks SET ...` may change on a queued (or blocked) task.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reschedule {
    pub queue: Option<String>,
    pub priority: Option<i64>,
    pub run_at: Option<i64>,
    pub max_attempts: Option<i64>,
    pub now: Option<i64>,
}

// The event is kept by the rule of the queue the task moves to.
const RESCHEDULE_SQL: &str = concat!(
    "UPDATE main.task_store
   SET queue = coalesce(?2, queue), priority = coalesce(?3, priority),
       run_at = coalesce(?4, run_at), max_attempts = coalesce(?5, max_attempts),
       updated_at = ",
    event!(
        "?6",
        "coalesce(?2, queue)",
        kind!(updated),
        "status",
        "attempts",
        "NULL",
        "NULL",
        "NULL"
    ),
    "
 WHERE id = +?1 AND (status = 'queued' OR status = 'blocked') AND (?5 IS NULL OR ?5 > attempts)"
);

/// Changes the queue, priority, run_at or max_attempts of a task that has
/// not started: queued, or blocked by its dependencies.
pub fn reschedule(q: &Queue, id: &str, r: &Reschedule) -> Result<()> {
    q.forget_heads();
    let id = parse_id("id", id)?;
    if r.queue.as_deref() == Some("") {
        return Err(Error::new("queue must not be empty"));
    }
    let priority = check_opt("priority", r.priority, PRIORITY_RANGE)?;
    let run_at = check_opt("run_at", r.run_at, (0, MAX_TIME_MS))?;
    let max_attempts = check_opt("max_attempts", r.max_attempts, (1, MAX_ATTEMPTS_LIMIT))?;
    let now = clock(r.now)?;
    let mut st = q.prepare(RESCHEDULE_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_opt_text(2, r.queue.as_deref())?;
    st.bind_opt_i64(3, priority)?;
    st.bind_opt_i64(4, run_at)?;
    st.bind_opt_i64(5, max_attempts)?;
    st.bind_i64(6, now)?;
    let outcome = st.finish();
    drop(st);
    if let Err(e) = outcome {
        return Err(match &r.queue {
            Some(to) if e.code == code::CONSTRAINT_UNIQUE && e.msg.contains("unique_key") => {
                Error::with_code(
                    e.code,
                    format!(
                        "task {id} cannot move to queue {}: a task there holds its unique key",
                        quoted(to)
                    ),
                )
            }
            _ => e,
        });
    }
    if q.conn().changes() == 1 {
        return Ok(());
    }
    let cur = current(q, &id)?;
    if !cur.is(Status::Queued) && !cur.is(Status::Blocked) {
        return Err(Error::new(format!(
            "task {id} is {}; only queued or blocked tasks can be changed",
            cur.status
        )));
    }
    Err(Error::new(format!(
        "max_attempts must be greater than the attempts task {id} has already made ({})",
        cur.attempts
    )))
}

// A task and its descendants (UNION, not UNION ALL, so a parent cycle made
// by hand cannot recurse forever).
macro_rules! subtree {
    () => {
        "WITH RECURSIVE sub(id, seq, status, parent_id) AS (
  SELECT id, seq, status, parent_id FROM main.task_store WHERE seq = +?1
  UNION
  SELECT t.id, t.seq, t.status, t.parent_id
    FROM main.task_store t JOIN sub ON t.parent_id = sub.id)
"
    };
}

const SUBTREE_SQL: &str = concat!(subtree!(), "SELECT seq, status, parent_id, id FROM sub");

const BLOCKER_SQL: &str = concat!(
    subtree!(),
    "SELECT id, status, seq = ?1 FROM sub
 WHERE ",
    unfinished!(),
    "
 ORDER BY seq = ?1 DESC LIMIT 1"
);

// A finished task that is in no workflow goes in one statement.
const DELETE_PLAIN_SQL: &str = concat!(
    "DELETE FROM main.task_store
 WHERE seq = +?1 AND (status = 'completed' OR status = 'failed' OR status = 'cancelled')
   AND flags & 1 = 0 AND ",
    plain_task!()
);
const DELETE_ONE_SQL: &str = "DELETE FROM main.task_store WHERE seq = +?1";
// Its count of unfinished children goes with it.
const DELETE_COUNT_SQL: &str = "DELETE FROM main.task_parent_store WHERE seq = ?1";
// A finished child deleted: one child fewer (its unfinished ones stay).
const UNCOUNT_CHILD_SQL: &str =
    "UPDATE main.task_store SET children = max(children - 1, 0) WHERE id = +?1";
// A parent left without children has no count (and, in no workflow now, may
// go by a statement that does not know of counts).
const DROP_EMPTY_COUNT_SQL: &str = "\
DELETE FROM main.task_parent_store
 WHERE id = ?1 AND seq = (SELECT seq FROM main.task_store WHERE id = +?1 AND children = 0)";
const DEPS_OF_SQL: &str = "SELECT dep FROM main.task_deps WHERE task = +?1";
const UNCOUNT_DEPENDENT_SQL: &str =
    "UPDATE main.task_store SET dependents = max(dependents - 1, 0) WHERE seq = +?1";
const UNLINK_SQL: &str = "DELETE FROM main.task_deps WHERE task = +?1 OR dep = +?1";
// A failed or cancelled dependency that goes no longer holds its blocked
// dependents (a completed one was already counted done). DELETE takes no
// clock, so their updated_at stays, and a released one's event is at its
// updated_at.
const RELEASE_DEPENDENTS_SQL: &str = release_sql!(dependents_of!(), "updated_at");

/// Deletes a finished task (by storage rowid) and its finished descendants,
/// and the links to them (its parent's count of children, its
/// dependencies' count of dependents). A task already gone (deleted with
/// its parent) is not an error. Returns how many tasks went.
pub fn delete(q: &Queue, seq: i64) -> Result<usize> {
    delete_counting(q, seq, events::indexed(q)?).map(|(tasks, _)| tasks)
}

/// [`delete`], also returning how many events went with the tasks:
/// `with_events` says whether the log has its index by task
/// (`events::indexed`, which a caller deleting many tasks reads once).
pub fn delete_counting(q: &Queue, seq: i64, with_events: bool) -> Result<(usize, i64)> {
    q.forget_heads();
    // With the log's index by task, the task's events go with it, in the
    // same transaction: the path below.
    if !with_events {
        let mut st = q.prepare(DELETE_PLAIN_SQL)?;
        st.bind_i64(1, seq)?;
        st.finish()?;
        drop(st);
        if q.conn().changes() == 1 {
            return Ok((1, 0));
        }
    }
    let mut st = q.prepare(BLOCKER_SQL)?;
    st.bind_i64(1, seq)?;
    if st.step()? {
        let id = st.column_text(0).unwrap_or_default();
        let status = st.column_text(1).unwrap_or_default();
        return Err(if st.column_i64(2) == 1 {
            Error::new(format!(
                "task {id} is {status}; cancel it or let it finish before deleting it"
            ))
        } else {
            Error::new(format!(
                "task {id}, a descendant of the task being deleted, is {status}; \
                 cancel it or let it finish first"
            ))
        });
    }
    drop(st);
    let mut doomed: Vec<(i64, Option<String>, bool)> = Vec::new();
    let mut ids = Vec::new();
    let mut st = q.prepare(SUBTREE_SQL)?;
    st.bind_i64(1, seq)?;
    while st.step()? {
        let completed = st.column_text(1).as_deref() == Some(Status::Completed.as_str());
        doomed.push((st.column_i64(0), st.column_text(2), completed));
        ids.push(st.column_text(3).unwrap_or_default());
    }
    drop(st);
    if doomed.is_empty() {
        return Ok((0, 0));
    }
    atomically(q, || {
        let mut events = 0;
        let seqs: Vec<i64> = doomed.iter().map(|(s, _, _)| *s).collect();
        // The root's parent stays: it has one child fewer (the others'
        // parents go with them).
        if let Some((_, Some(parent), _)) = doomed.first() {
            let mut st = q.prepare(UNCOUNT_CHILD_SQL)?;
            st.bind_text(1, parent)?;
            st.finish()?;
            drop(st);
            let mut st = q.prepare(DROP_EMPTY_COUNT_SQL)?;
            st.bind_text(1, parent)?;
            st.finish()?;
        }
        for (&(s, _, completed), id) in doomed.iter().zip(&ids) {
            if !completed {
                let mut st = q.prepare(RELEASE_DEPENDENTS_SQL)?;
                st.bind_i64(1, s)?;
                st.finish()?;
            }
            let mut deps = Vec::new();
            let mut st = q.prepare(DEPS_OF_SQL)?;
            st.bind_i64(1, s)?;
            while st.step()? {
                deps.push(st.column_i64(0));
            }
            drop(st);
            for dep in deps.into_iter().filter(|d| !seqs.contains(d)) {
                let mut st = q.prepare(UNCOUNT_DEPENDENT_SQL)?;
                st.bind_i64(1, dep)?;
                st.finish()?;
            }
            let mut st = q.prepare(UNLINK_SQL)?;
            st.bind_i64(1, s)?;
            st.finish()?;
            drop(st);
            let mut st = q.prepare(DELETE_ONE_SQL)?;
            st.bind_i64(1, s)?;
            st.finish()?;
            drop(st);
            let mut st = q.prepare(DELETE_COUNT_SQL)?;
            st.bind_i64(1, s)?;
            st.finish()?;
            drop(st);
            if with_events {
                events += events::forget(q, id)?;
            }
        }
        Ok((doomed.len(), events))
    })
}
