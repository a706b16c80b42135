//! `task_enqueue` and `INSERT INTO tasks`: adding a task.

use super::Queue;
use super::ids::{new_id, parse_id};
use super::json::check_json;
use super::model::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, MAX_ATTEMPTS_LIMIT, MAX_TIME_MS, PRIORITY_RANGE,
    check_range, clock,
};
use crate::error::{Error, Result, code};

/// What `task_enqueue` and `INSERT INTO tasks` accept.
#[derive(Debug, Default, Clone)]
pub struct NewTask<'a> {
    pub kind: &'a str,
    pub details: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub priority: Option<i64>,
    pub run_at: Option<i64>,
    pub delay: Option<i64>,
    pub max_attempts: Option<i64>,
    pub parent_id: Option<&'a str>,
    pub id: Option<&'a str>,
    pub now: Option<i64>,
}

/// A task just added: its id and its storage rowid.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: String,
    pub seq: i64,
}

const ENQUEUE_SQL: &str = "\
INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details)
VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8)";

// A child is inserted only if its parent exists, checked by the same
// statement (no read first, no window for the parent to be deleted).
const ENQUEUE_CHILD_SQL: &str = "\
INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details,
   parent_id)
SELECT ?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8, ?9
WHERE EXISTS (SELECT 1 FROM main.task_store WHERE id = +?9)";

/// Adds a task.
pub fn enqueue(q: &Queue, t: &NewTask<'_>) -> Result<Enqueued> {
    if t.kind.is_empty() {
        return Err(Error::new("type must not be empty"));
    }
    if let Some(d) = t.details {
        check_json("details", d)?;
    }
    let queue = t.queue.unwrap_or(DEFAULT_QUEUE);
    if queue.is_empty() {
        return Err(Error::new("queue must not be empty"));
    }
    let (lo, hi) = PRIORITY_RANGE;
    let priority = check_range("priority", t.priority.unwrap_or(0), lo, hi)?;
    let max_attempts = check_range(
        "max_attempts",
        t.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        1,
        MAX_ATTEMPTS_LIMIT,
    )?;
    let now = clock(t.now)?;
    let run_at = match (t.run_at, t.delay) {
        (Some(_), Some(_)) => return Err(Error::new("give run_at or delay, not both")),
        (Some(at), None) => check_range("run_at", at, 0, MAX_TIME_MS)?,
        (None, Some(d)) => now + check_range("delay", d, 0, MAX_TIME_MS - now)?,
        (None, None) => now,
    };
    let id = match t.id {
        Some(s) => parse_id("id", s)?,
        None => new_id(now),
    };
    let parent = t.parent_id.map(|p| parse_id("parent_id", p)).transpose()?;

    let mut st = q.prepare(if parent.is_some() {
        ENQUEUE_CHILD_SQL
    } else {
        ENQUEUE_SQL
    })?;
    st.bind_text(1, &id)?;
    st.bind_text(2, queue)?;
    st.bind_text(3, t.kind)?;
    st.bind_i64(4, priority)?;
    st.bind_i64(5, max_attempts)?;
    st.bind_i64(6, run_at)?;
    st.bind_i64(7, now)?;
    st.bind_opt_text(8, t.details)?;
    if let Some(p) = &parent {
        st.bind_text(9, p)?;
    }
    match st.finish() {
        Ok(()) => {}
        Err(e) if e.code == code::CONSTRAINT_UNIQUE && e.msg.contains("task_store.id") => {
            return Err(Error::with_code(
                e.code,
                format!("task {id} already exists"),
            ));
        }
        Err(e) => return Err(e),
    }
    drop(st);
    let conn = q.conn();
    if let Some(p) = parent
        && conn.changes() == 0
    {
        return Err(Error::new(format!("parent task {p} not found")));
    }
    Ok(Enqueued {
        id,
        seq: conn.last_insert_rowid(),
    })
}
