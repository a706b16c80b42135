//! Why a write matched no row. Every verb is one write statement whose
//! WHERE clause holds the rule (`status = 'running' AND attempts = ?`);
//! when it matches nothing, a read-only follow-up here finds out which part
//! failed and says so. Nothing has changed by then.

use super::Queue;
use super::model::{Status, quoted};
use crate::error::{Error, Result, code};

/// The current state of a task, as far as a refusal needs it.
pub struct Current {
    /// As stored: a hand-edited row may hold a status outside [`Status`].
    pub status: String,
    pub attempts: i64,
    pub worker: Option<String>,
    /// Another task waits on it or for it (a parent, children, dependents).
    pub linked: bool,
    /// It has dependencies.
    pub has_deps: bool,
    pub seq: i64,
}

impl Current {
    pub fn is(&self, s: Status) -> bool {
        self.status == s.as_str()
    }
}

const CURRENT_SQL: &str = concat!(
    "SELECT status, attempts, worker, NOT (",
    plain_task!(),
    "), flags & 1, seq FROM main.task_store WHERE id = +?1"
);

/// The task's current state; `task … not found` if there is none.
pub fn current(q: &Queue, id: &str) -> Result<Current> {
    let mut st = q.prepare(CURRENT_SQL)?;
    st.bind_text(1, id)?;
    if !st.step()? {
        return Err(Error::new(format!("task {id} not found")));
    }
    Ok(Current {
        status: st.column_text(0).unwrap_or_default(),
        attempts: st.column_i64(1),
        worker: st.column_text(2),
        linked: st.column_i64(3) != 0,
        has_deps: st.column_i64(4) != 0,
        seq: st.column_i64(5),
    })
}

/// The error for a worker-side call that matched no running task.
pub fn not_running(q: &Queue, id: &str, attempt: Option<i64>) -> Error {
    let cur = match current(q, id) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Some(a) = attempt
        && a != cur.attempts
    {
        let holder = match (cur.is(Status::Running), &cur.worker) {
            (true, Some(w)) => format!(", held by worker {}", quoted(w)),
            _ => String::new(),
        };
        return Error::new(format!(
            "attempt {a} of task {id} is stale: the task is on attempt {} ({}{holder})",
            cur.attempts, cur.status
        ));
    }
    if cur.is(Status::Running) {
        // Changed between the write and this read: report it plainly.
        return Error::with_code(code::BUSY, format!("task {id} changed concurrently; retry"));
    }
    Error::new(format!("task {id} is {}, not running", cur.status))
}
