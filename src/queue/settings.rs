//! `task_queue(name [, options])`: a queue's settings, pause and the
//! concurrency limit. They are rows of `task_queue_store`, which the claim
//! statements read (see `claim/sql.rs`, the gated statements), so a change
//! holds for the next claim on every connection and in every process.

use super::Queue;
use super::events::Level;
use super::json::{push_opt_int, push_str};
use super::model::{MAX_ATTEMPTS_LIMIT, MAX_LEASE_MS, check_range, clock};
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

/// The largest rate limit accepted, in claims per interval.
pub const MAX_RATE: i64 = 1_000_000;

/// The longest backoff accepted: a day.
pub const MAX_BACKOFF_MS: i64 = 24 * 3_600_000;

/// A rate limit: at most `limit` claims in any `interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub limit: i64,
    pub interval_ms: i64,
}

/// What `task_queue` changes; `None`: left as it is, `Some(None)`: removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change {
    pub paused: Option<bool>,
    pub concurrency: Option<Option<i64>>,
    pub rate: Option<Option<Rate>>,
    /// The defaults of the queue's claims, enqueues and retries.
    pub lease: Option<Option<i64>>,
    pub max_attempts: Option<Option<i64>>,
    pub backoff: Option<Option<i64>>,
    pub backoff_max: Option<Option<i64>>,
    /// `Some(Retain::default())` removes the retention.
    pub retention: Option<Retain>,
    /// Which events the queue's tasks record (`events.rs`).
    pub events: Option<Level>,
    pub now: Option<i64>,
}

// ?11 … ?22: for each of rate_limit, rate_interval_ms, lease_ms,
// max_attempts, backoff_ms, backoff_max_ms, whether it changes, then its value.
const UPSERT_SQL: &str = "\
INSERT INTO main.task_queue_store
  (name, paused, concurrency, retain_completed, retain_failed, retain_cancelled,
   created_at, updated_at, events,
   rate_limit, rate_interval_ms, lease_ms, max_attempts, backoff_ms, backoff_max_ms)
VALUES (?1, coalesce(?2, 0), ?3, ?7, ?8, ?9, ?4, ?4, coalesce(?10, 0),
        ?12, ?14, ?16, ?18, ?20, ?22)
ON CONFLICT (name) DO UPDATE
   SET paused = coalesce(?2, paused), events = coalesce(?10, events),
       concurrency = CASE WHEN ?5 THEN ?3 ELSE concurrency END,
       retain_completed = CASE WHEN ?6 THEN ?7 ELSE retain_completed END,
       retain_failed = CASE WHEN ?6 THEN ?8 ELSE retain_failed END,
       retain_cancelled = CASE WHEN ?6 THEN ?9 ELSE retain_cancelled END,
       rate_limit = CASE WHEN ?11 THEN ?12 ELSE rate_limit END,
       rate_interval_ms = CASE WHEN ?13 THEN ?14 ELSE rate_interval_ms END,
       lease_ms = CASE WHEN ?15 THEN ?16 ELSE lease_ms END,
       max_attempts = CASE WHEN ?17 THEN ?18 ELSE max_attempts END,
       backoff_ms = CASE WHEN ?19 THEN ?20 ELSE backoff_ms END,
       backoff_max_ms = CASE WHEN ?21 THEN ?22 ELSE backoff_max_ms END,
       updated_at = ?4";

// A limit counts the queue's tasks already running when it is set: they
// get flags 64 as if the limited claim had taken them (and from then on
// finish through the workflow path, which clears it).
const COUNT_RUNNING_SQL: &str = "\
UPDATE main.task_store SET flags = flags | 64
 WHERE status = 'running' AND queue = +?1 AND NOT flags & 64";

const READ_SQL: &str = "\
SELECT paused, concurrency, created_at, updated_at,
       retain_completed, retain_failed, retain_cancelled, events,
       rate_limit, rate_interval_ms, lease_ms, max_attempts, backoff_ms, backoff_max_ms
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
    let rate = match change.rate {
        Some(Some(r)) => Some(Some(Rate {
            limit: check_range("rate.limit", r.limit, 1, MAX_RATE)?,
            interval_ms: check_range("rate.interval", r.interval_ms, 1, MAX_LEASE_MS)?,
        })),
        other => other,
    };
    let checked = |key: &str, v: Option<Option<i64>>, lo: i64, hi: i64| -> Result<_> {
        match v {
            Some(Some(n)) => Ok(Some(Some(check_range(key, n, lo, hi)?))),
            other => Ok(other),
        }
    };
    let defaults = [
        (
            rate.map(|r| r.map(|r| r.limit)),
            rate.map(|r| r.map(|r| r.interval_ms)),
        ),
        (
            checked("lease", change.lease, 1, MAX_LEASE_MS)?,
            checked("max_attempts", change.max_attempts, 1, MAX_ATTEMPTS_LIMIT)?,
        ),
        (
            checked("backoff", change.backoff, 0, MAX_BACKOFF_MS)?,
            checked("backoff_max", change.backoff_max, 0, MAX_BACKOFF_MS)?,
        ),
    ];
    let now = clock(change.now)?;
    let changes = change.paused.is_some()
        || limit.is_some()
        || change.retention.is_some()
        || change.events.is_some()
        || defaults.iter().any(|(a, b)| a.is_some() || b.is_some());
    if changes {
        q.forget_heads();
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
            let values = defaults.iter().flat_map(|(a, b)| [a, b]);
            for (i, v) in (11..).step_by(2).zip(values) {
                st.bind_i64(i, i64::from(v.is_some()))?;
                st.bind_opt_i64(i + 1, v.flatten())?;
            }
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
/// no limit), `rate` (null, or `{"limit", "interval"}`), the defaults
/// `lease`, `max_attempts`, `backoff`, `backoff_max` (null: the built-in
/// ones), `created_at` and `updated_at` (null: never set), `retention`,
/// `events`.
fn read(q: &Queue, name: &str) -> Result<String> {
    let mut st = q.prepare(READ_SQL)?;
    st.bind_text(1, name)?;
    let found = st.step()?;
    let int = |i| if found { st.column_opt_i64(i) } else { None };
    let paused = found && st.column_i64(0) != 0;
    let keep = Retain {
        completed: int(4),
        failed: int(5),
        cancelled: int(6),
    };
    let events = if found {
        Level::from_code(st.column_i64(7))
    } else {
        Level::All
    };
    let rate = int(8).zip(int(9));
    let mut out = String::with_capacity(192 + name.len());
    out.push_str("{\"name\":");
    push_str(&mut out, name);
    out.push_str(",\"paused\":");
    out.push_str(if paused { "true" } else { "false" });
    let field = |out: &mut String, key: &str, v: Option<i64>| {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        push_opt_int(out, v);
    };
    field(&mut out, "concurrency", int(1));
    out.push_str(",\"rate\":");
    match rate {
        Some((limit, interval)) => {
            out.push_str("{\"limit\":");
            push_opt_int(&mut out, Some(limit));
            out.push_str(",\"interval\":");
            push_opt_int(&mut out, Some(interval));
            out.push('}');
        }
        None => out.push_str("null"),
    }
    for (key, i) in [
        ("lease", 10),
        ("max_attempts", 11),
        ("backoff", 12),
        ("backoff_max", 13),
        ("created_at", 2),
        ("updated_at", 3),
    ] {
        field(&mut out, key, int(i));
    }
    drop(st);
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
