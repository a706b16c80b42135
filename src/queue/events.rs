//! The event log: one row of `task_event_store` per transition of a task,
//! written inside the statement that makes the transition.
//!
//! Each write statement of the queue calls `task__event(…)` for every row
//! it changes (the `event!` macro in `queue/mod.rs`), and the function runs
//! [`EVENT_SQL`] right there, nested in the statement. So the transition and
//! its event are one statement: a rolled-back transition leaves no event,
//! a committed one always has its event, whether the verb ran in autocommit
//! mode, in the caller's transaction or in a trigger, and a plain task's
//! verbs stay one statement. The nested INSERT can only fail with the
//! database (no constraint on the table): then the function fails, and so
//! does the transition.
//!
//! A queue's `events` setting (`task_queue(name, '{"events": …}')`, read in
//! the statement) keeps all events (the default), only transitions (no
//! progress reports), or none. Write-back (`writeback.rs`) records the
//! reports it writes: a value held in memory has no event until it is
//! written.

use super::Queue;
use super::model::Status;
use crate::error::{Error, Result};
use crate::ffi::Value;

/// What happened to the task. The codes are stored (see
/// `006_events.sql`) and match the `kind!` macro's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Enqueued = 1,
    Claimed = 2,
    Progress = 3,
    Completed = 4,
    Failed = 5,
    Cancelled = 6,
    Retried = 7,
    Expired = 8,
    Released = 9,
    Waiting = 10,
    Updated = 11,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Enqueued,
        Kind::Claimed,
        Kind::Progress,
        Kind::Completed,
        Kind::Failed,
        Kind::Cancelled,
        Kind::Retried,
        Kind::Expired,
        Kind::Released,
        Kind::Waiting,
        Kind::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enqueued => "enqueued",
            Kind::Claimed => "claimed",
            Kind::Progress => "progress",
            Kind::Completed => "completed",
            Kind::Failed => "failed",
            Kind::Cancelled => "cancelled",
            Kind::Retried => "retried",
            Kind::Expired => "expired",
            Kind::Released => "released",
            Kind::Waiting => "waiting",
            Kind::Updated => "updated",
        }
    }
}

/// `kind!(reclaimed)`: an expired lease taken by a new claim, recorded as
/// two events.
const RECLAIMED: i64 = 12;

/// A status's stored code: its place in `Status::ALL`, from 1.
pub fn status_code(s: Status) -> i64 {
    Status::ALL
        .iter()
        .position(|&x| x == s)
        .map_or(0, |i| i as i64 + 1)
}

/// Which events a queue keeps (`task_queue_store.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    #[default]
    All = 0,
    /// Every transition, but no progress reports.
    Transitions = 1,
    Off = 2,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::All, Level::Transitions, Level::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Transitions => "transitions",
            Level::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn from_code(c: i64) -> Level {
        match c {
            1 => Level::Transitions,
            2 => Level::Off,
            _ => Level::All,
        }
    }

    fn keeps(self, kind: i64) -> bool {
        match self {
            Level::All => true,
            Level::Transitions => kind != Kind::Progress as i64,
            Level::Off => false,
        }
    }
}

const EVENT_SQL: &str = "\
INSERT INTO main.task_event_store (task_id, at, kind, status, attempt, worker, error, progress)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// One event, as a statement's `task__event` call passes it.
#[derive(Clone, Copy)]
struct Event<'a> {
    at: i64,
    kind: i64,
    task_id: &'a str,
    status: i64,
    attempt: Option<i64>,
    worker: Option<&'a str>,
    error: Option<&'a str>,
    progress: Option<f64>,
}

fn insert(q: &Queue, e: &Event<'_>) -> Result<()> {
    let mut st = q.prepare(EVENT_SQL)?;
    st.bind_text(1, e.task_id)?;
    st.bind_i64(2, e.at)?;
    st.bind_i64(3, e.kind)?;
    st.bind_i64(4, e.status)?;
    st.bind_opt_i64(5, e.attempt)?;
    st.bind_opt_text(6, e.worker)?;
    st.bind_opt_text(7, e.error)?;
    match e.progress {
        Some(p) => st.bind_f64(8, p)?,
        None => st.bind_null(8)?,
    }
    st.finish()
}

/// `task__event(at, level, kind, task_id, status, attempt, worker, error,
/// progress)`: records the event (unless kind 0 or the queue's level says
/// not to) and returns `at`, the value of the column it wraps.
pub fn from_sql(q: &Queue, args: &[Value<'_>]) -> Result<i64> {
    let [
        at,
        level,
        kind,
        id,
        status,
        attempt,
        worker,
        error,
        progress,
    ] = args
    else {
        return Err(Error::new("internal: task__event takes 9 arguments"));
    };
    let Value::Integer(at) = *at else {
        return Err(Error::new("internal: task__event without a time"));
    };
    let kind = int(kind).unwrap_or(0);
    if kind == 0 || !Level::from_code(int(level).unwrap_or(0)).keeps(kind) {
        return Ok(at);
    }
    let Value::Text(task_id) = *id else {
        return Err(Error::new("internal: task__event without a task id"));
    };
    let status = match status {
        Value::Text(s) => Status::parse(s).map_or(0, status_code),
        _ => 0,
    };
    let mut e = Event {
        at,
        kind,
        task_id,
        status,
        attempt: int(attempt),
        worker: text(worker),
        error: text(error),
        progress: match *progress {
            Value::Integer(i) => Some(i as f64),
            Value::Real(r) => Some(r),
            _ => None,
        },
    };
    let written = (|| {
        if kind == RECLAIMED {
            // The lease that expired (the task back to its queue, that
            // attempt used up), then the claim that took it.
            let expired = Event {
                kind: Kind::Expired as i64,
                status: status_code(Status::Queued),
                attempt: e.attempt.map(|a| a - 1),
                worker: None,
                ..e
            };
            insert(q, &expired)?;
            e.kind = Kind::Claimed as i64;
            e.error = None;
        }
        insert(q, &e)
    })();
    written
        .map(|()| at)
        .map_err(|err| Error::with_code(err.code, format!("writing the event log: {}", err.msg)))
}

fn int(v: &Value<'_>) -> Option<i64> {
    match *v {
        Value::Integer(i) => Some(i),
        _ => None,
    }
}

fn text<'a>(v: &Value<'a>) -> Option<&'a str> {
    match *v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

// The event of a task inserted by the workflow path's upsert (which may
// insert nothing, so it cannot record in its VALUES): the queue's level
// read here instead.
const ENQUEUED_SQL: &str = "\
INSERT INTO main.task_event_store (task_id, at, kind, status, attempt)
SELECT ?1, ?2, 1, ?3, 0
 WHERE coalesce((SELECT events FROM main.task_queue_store WHERE name = +?4), 0) < 2";

/// Records that `id` was enqueued in `queue` with `status`.
pub fn enqueued(q: &Queue, id: &str, queue: &str, status: Status, at: i64) -> Result<()> {
    let mut st = q.prepare(ENQUEUED_SQL)?;
    st.bind_text(1, id)?;
    st.bind_i64(2, at)?;
    st.bind_i64(3, status_code(status))?;
    st.bind_text(4, queue)?;
    st.finish()
}

const HAS_INDEX_SQL: &str = "SELECT 1 FROM main.sqlite_master \
     WHERE type = 'index' AND name = 'task_event_store_task'";
// Never the newest event, whose seq the next event follows (a deleted
// task's newest event stays, and the view no longer shows it).
const DELETE_OF_SQL: &str = "DELETE FROM main.task_event_store
 WHERE task_id = +?1 AND seq < (SELECT max(seq) FROM main.task_event_store)";

/// Whether the log has its index by task (`task_init('{"index_events":
/// true}')`): then deleting a task deletes its events, one seek each.
/// Without it they stay until `task_prune`'s age cutoff (a scan per task
/// deleted would cost more than the task), and `task_events` no longer
/// shows them: it joins each event to its task.
pub fn indexed(q: &Queue) -> Result<bool> {
    q.prepare(HAS_INDEX_SQL)?.step()
}

/// Deletes the events of the task `id` (through the index: call it only
/// when [`indexed`]); returns how many went.
pub fn forget(q: &Queue, id: &str) -> Result<i64> {
    let mut st = q.prepare(DELETE_OF_SQL)?;
    st.bind_text(1, id)?;
    st.finish()?;
    drop(st);
    Ok(q.conn().changes())
}

// The oldest `?2` events, but never the newest (whose seq the next event
// follows), of those older than ?1.
const OLDER_SQL: &str = "\
DELETE FROM main.task_event_store
 WHERE seq IN (SELECT seq FROM main.task_event_store
                WHERE seq < (SELECT max(seq) FROM main.task_event_store)
                ORDER BY seq LIMIT ?2)
   AND at < ?1";

/// Deletes the events older than `cutoff` (ms), from the oldest, `step`
/// rows a transaction, until a step finds a younger one (events are in
/// commit order, so their times grow but for clocks supplied out of
/// order). Returns how many went, and the steps taken.
pub fn prune_older(q: &Queue, cutoff: i64, step: i64) -> Result<(i64, i64)> {
    let (mut deleted, mut steps) = (0, 0);
    loop {
        let mut st = q.prepare(OLDER_SQL)?;
        st.bind_i64(1, cutoff)?;
        st.bind_i64(2, step)?;
        st.finish()?;
        drop(st);
        let n = q.conn().changes();
        deleted += n;
        steps += 1;
        if n < step {
            return Ok((deleted, steps));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_codes_are_the_enum_s() {
        let sql = [
            kind!(enqueued),
            kind!(claimed),
            kind!(progress),
            kind!(completed),
            kind!(failed),
            kind!(cancelled),
            kind!(retried),
            kind!(expired),
            kind!(released),
            kind!(waiting),
            kind!(updated),
        ];
        for (k, code) in Kind::ALL.iter().zip(sql) {
            assert_eq!(code, (*k as i64).to_string(), "{k:?}");
        }
        assert_eq!(kind!(reclaimed), RECLAIMED.to_string());
        assert_eq!(kind!(none), "0");
    }

    #[test]
    fn the_view_names_every_code() {
        let ddl = include_str!("../storage/006_events.sql");
        for k in Kind::ALL {
            let when = format!("WHEN {} THEN '{}'", k as i64, k.as_str());
            assert!(ddl.contains(&when), "{when}");
        }
        for s in Status::ALL {
            let when = format!("WHEN {} THEN '{}'", status_code(s), s.as_str());
            assert!(ddl.contains(&when), "{when}");
        }
    }

    #[test]
    fn levels_keep_what_they_say() {
        assert!(Level::All.keeps(Kind::Progress as i64));
        assert!(!Level::Transitions.keeps(Kind::Progress as i64));
        assert!(Level::Transitions.keeps(Kind::Claimed as i64));
        assert!(!Level::Off.keeps(Kind::Enqueued as i64));
        assert_eq!(Level::parse("transitions"), Some(Level::Transitions));
        assert_eq!(Level::parse("none"), None);
    }
}
