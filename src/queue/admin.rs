//! What an operator does to tasks, whoever holds them: `task_cancel`,
//! `task_retry`, and the `tasks` table's UPDATE (reschedule) and DELETE.

use super::Queue;
use super::ids::parse_id;
use super::model::{MAX_ATTEMPTS_LIMIT, MAX_TIME_MS, PRIORITY_RANGE, Status, check_opt, clock};
use super::refusal::current;
use super::writeback;
use crate::error::{Error, Result};

const CANCEL_SQL: &str = "\
UPDATE main.task_store
   SET status = 'cancelled', lease_until = NULL, completed_at = ?2, updated_at = ?2
 WHERE id = +?1 AND (status = 'queued' OR status = 'running')";

/// Cancels a queued or running task. A running task's worker learns it at
/// its next progress or heartbeat call, and can no longer complete it.
pub fn cancel(q: &Queue, id: &str, now: Option<i64>) -> Result<()> {
    transition(q, CANCEL_SQL, id, now, |id, status| {
        format!("task {id} is already {status}; only queued or running tasks can be cancelled")
    })
}

const RETRY_SQL: &str = "\
UPDATE main.task_store
   SET status = 'queued', attempts = 0, progress = 0, run_at = ?2, worker = NULL,
       lease_until = NULL, started_at = NULL, completed_at = NULL, updated_at = ?2
 WHERE id = +?1 AND (status = 'failed' OR status = 'cancelled')";

/// Puts a failed or cancelled task back in its queue with a fresh budget of
/// attempts. Its last error is kept until it runs again.
pub fn retry(q: &Queue, id: &str, now: Option<i64>) -> Result<()> {
    transition(q, RETRY_SQL, id, now, |id, status| {
        format!("task {id} is {status}; only failed or cancelled tasks can be retried")
    })
}

/// Runs an administrative transition (`sql` binds the id and the clock); on
/// no match, explains with `refusal(id, current status)`.
fn transition(
    q: &Queue,
    sql: &'static str,
    id: &str,
    now: Option<i64>,
    refusal: fn(&str, &str) -> String,
) -> Result<()> {
    let id = parse_id("id", id)?;
    let now = clock(now)?;
    let mut st = q.prepare(sql)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    st.finish()?;
    drop(st);
    if q.conn().changes() == 1 {
        writeback::take(q.key(), &id);
        return Ok(());
    }
    let cur = current(q, &id)?;
    Err(Error::new(refusal(&id, &cur.status)))
}

/// What `UPDATE tasks SET ...` may change on a queued task.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reschedule {
    pub queue: Option<String>,
    pub priority: Option<i64>,
    pub run_at: Option<i64>,
    pub max_attempts: Option<i64>,
    pub now: Option<i64>,
}

const RESCHEDULE_SQL: &str = "\
UPDATE main.task_store
   SET queue = coalesce(?2, queue), priority = coalesce(?3, priority),
       run_at = coalesce(?4, run_at), max_attempts = coalesce(?5, max_attempts),
       updated_at = ?6
 WHERE id = +?1 AND status = 'queued' AND (?5 IS NULL OR ?5 > attempts)";

/// Changes the queue, priority, run_at or max_attempts of a queued task.
pub fn reschedule(q: &Queue, id: &str, r: &Reschedule) -> Result<()> {
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
    st.finish()?;
    drop(st);
    if q.conn().changes() == 1 {
        return Ok(());
    }
    let cur = current(q, &id)?;
    if !cur.is(Status::Queued) {
        return Err(Error::new(format!(
            "task {id} is {}; only queued tasks can be changed",
            cur.status
        )));
    }
    Err(Error::new(format!(
        "max_attempts must be greater than the attempts task {id} has already made ({})",
        cur.attempts
    )))
}

// A task is deleted with its descendants, and only if none of them is still
// queued or running (UNION, not UNION ALL, so a parent cycle made by hand
// cannot recurse forever).
const DELETE_SQL: &str = "\
WITH RECURSIVE sub(id, seq, status) AS (
  SELECT id, seq, status FROM main.task_store WHERE seq = +?1
  UNION
  SELECT t.id, t.seq, t.status FROM main.task_store t JOIN sub ON t.parent_id = sub.id)
DELETE FROM main.task_store
 WHERE seq IN (SELECT seq FROM sub)
   AND NOT EXISTS (SELECT 1 FROM sub WHERE status = 'queued' OR status = 'running')";

const BLOCKER_SQL: &str = "\
WITH RECURSIVE sub(id, seq, status) AS (
  SELECT id, seq, status FROM main.task_store WHERE seq = +?1
  UNION
  SELECT t.id, t.seq, t.status FROM main.task_store t JOIN sub ON t.parent_id = sub.id)
SELECT id, status, seq = ?1 FROM sub WHERE status = 'queued' OR status = 'running'
 ORDER BY seq = ?1 DESC LIMIT 1";

/// Deletes a finished task (by storage rowid) and its finished descendants.
/// A task already gone (deleted with its parent) is not an error.
pub fn delete(q: &Queue, seq: i64) -> Result<()> {
    let mut st = q.prepare(DELETE_SQL)?;
    st.bind_i64(1, seq)?;
    st.finish()?;
    drop(st);
    if q.conn().changes() > 0 {
        return Ok(());
    }
    let mut st = q.prepare(BLOCKER_SQL)?;
    st.bind_i64(1, seq)?;
    if !st.step()? {
        return Ok(());
    }
    let id = st.column_text(0).unwrap_or_default();
    let status = st.column_text(1).unwrap_or_default();
    if st.column_i64(2) == 1 {
        Err(Error::new(format!(
            "task {id} is {status}; cancel it or let it finish before deleting it"
        )))
    } else {
        Err(Error::new(format!(
            "task {id}, a descendant of the task being deleted, is {status}; \
             cancel it or let it finish first"
        )))
    }
}
