//! `task_queue(name [, options])`: a queue's settings, pause and the
//! concurrency limit. They are rows of `task_queue_store`, which the claim
//! statements read (see `claim/sql.rs`, the gated statements), so a change
//! holds for the next claim on every connection and in every process.

use super::Queue;
use super::events::Level;
use super::json::{push_opt_int, push_str};
use super::model::{check_range, clock};
use super::txn::atomically;
use crate::error::{Error, Result};

/// The largest concurrency limit accepted.
pub const MAX_CONCURRENCY: i64 = 1_000_000;

/// How long a queue keeps its finished tasks, per status, in ms (`None`:
/// for ever). `task_tick` prunes what is older (`prune.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retain {
    pub completed: Option<i64>,
    pub failed: Option<i64>,
    pub cancelled: Option<i64>,
}

/// What `task_queue` changes; `None`: left as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change {
    pub paused: Option<bool>,
    /// `Some(None)` removes the limit.
    pub concurrency: Option<Option<i64>>,
    /// `Some(Retain::default())` removes the retention.
    pub retention: Option<Retain>,
    /// Which events the queue's tasks record (`events.rs`).
    pub events: Option<Level>,
    pub now: Option<i64>,
}

const UPSERT_SQL: &str = "\
INSERT INTO main.task_queue_store
  (name, paused, concurrency, retain_completed, retain_failed, retain_cancelled,
   created_at, updated_at, events)
VALUES (?1, coalesce(?2, 0), ?3, ?7, ?8, ?9, ?4, ?4, coalesce(?10, 0))
ON CONFLICT (name) DO UPDATE
   SET paused = coalesce(?2, paused), events = coalesce(?10, events),
       concurrency = CASE WHEN ?5 THEN ?3 ELSE concurrency END,
       retain_completed = CASE WHEN ?6 THEN ?7 ELSE retain_completed END,
       retain_failed = CASE WHEN ?6 THEN ?8 ELSE retain_failed END,
       retain_cancelled = CASE WHEN ?6 THEN ?9 ELSE retain_cancelled END,
       updated_at = ?4";

// A limit counts the queue's tasks already running when it is set: they
// get flags 64 as if the limited claim had taken them (and from then on
// finish through the workflow path, which clears it).
const COUNT_RUNNING_SQL: &str = "\
UPDATE main.task_store SET flags = flags | 64
 WHERE status = 'running' AND queue = +?1 AND NOT flags & 64";

const READ_SQL: &str = "\
SELECT paused, concurrency, created_at, updated_at,
       retain_completed, retain_failed, retain_cancelled, events
  FROM main.task_queue_store WHERE name = +?1";

/// Applies `change` to queue `name` (creating its settings row if needed)
/// and returns its settings as JSON. With nothing to change, only reads.
pub fn queue(q: &Queue, name: &str, change: &Change) -> Result<String> {
    if name.is_empty() {
        return Err(Error::new("name must not be empty"));
    }
    let limit = match change.concurrency {
        Some(Some(n)) => Some(Some(check_range("concurrency", n, 1, MAX_CONCURRENCY)?)),
        other => other,
    };
    let now = clock(change.now)?;
    let changes = change.paused.is_some()
        || limit.is_some()
        || change.retention.is_some()
        || change.events.is_some();
    if changes {
        atomically(q, || {
            let mut st = q.prepare(UPSERT_SQL)?;
            st.bind_text(1, name)?;
            match change.paused {
                Some(p) => st.bind_i64(2, i64::from(p))?,
                None => st.bind_null(2)?,
            }
            st.bind_opt_i64(3, limit.flatten())?;
            st.bind_i64(4, now)?;
            st.bind_i64(5, i64::from(limit.is_some()))?;
            let keep = change.retention.unwrap_or_default();
            st.bind_i64(6, i64::from(change.retention.is_some()))?;
            st.bind_opt_i64(7, keep.completed)?;
            st.bind_opt_i64(8, keep.failed)?;
            st.bind_opt_i64(9, keep.cancelled)?;
            st.bind_opt_i64(10, change.events.map(|l| l as i64))?;
            st.finish()?;
            drop(st);
            if let Some(Some(_)) = limit {
                let mut st = q.prepare(COUNT_RUNNING_SQL)?;
                st.bind_text(1, name)?;
                st.finish()?;
            }
            Ok(())
        })?;
    }
    read(q, name)
}

/// Queue `name`'s settings as JSON: `name`, `paused`, `concurrency` (null:
/// no limit), `created_at` and `updated_at` (null: never set), `retention`,
/// `events`.
fn read(q: &Queue, name: &str) -> Result<String> {
    let mut st = q.prepare(READ_SQL)?;
    st.bind_text(1, name)?;
    let row = if st.step()? {
        Some((
            st.column_i64(0) != 0,
            st.column_opt_i64(1),
            st.column_opt_i64(2),
            st.column_opt_i64(3),
            Retain {
                completed: st.column_opt_i64(4),
                failed: st.column_opt_i64(5),
                cancelled: st.column_opt_i64(6),
            },
            Level::from_code(st.column_i64(7)),
        ))
    } else {
        None
    };
    drop(st);
    let (paused, concurrency, created, updated, keep, events) =
        row.unwrap_or((false, None, None, None, Retain::default(), Level::All));
    let mut out = String::with_capacity(96 + name.len());
    out.push_str("{\"name\":");
    push_str(&mut out, name);
    out.push_str(",\"paused\":");
    out.push_str(if paused { "true" } else { "false" });
    for (key, v) in [
        ("concurrency", concurrency),
        ("created_at", created),
        ("updated_at", updated),
    ] {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        push_opt_int(&mut out, v);
    }
    out.push_str(",\"retention\":");
    if keep == Retain::default() {
        out.push_str("null");
    } else {
        out.push('{');
        for (i, (key, v)) in [
            ("completed", keep.completed),
            ("failed", keep.failed),
            ("cancelled", keep.cancelled),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            push_opt_int(&mut out, v);
        }
        out.push('}');
    }
    out.push_str(",\"events\":");
    push_str(&mut out, events.as_str());
    out.push('}');
    Ok(out)
}
