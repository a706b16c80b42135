//! The queue operations: enqueue, claim, progress, complete, fail, cancel,
//! retry. Plain Rust over a [`Conn`]; `functions.rs` and `vtab.rs` are thin
//! adapters over these, so each rule lives here once.
//!
//! Every operation is exactly one write statement. That is what makes it
//! all-or-nothing in every context the extension is called from: a
//! statement is atomic on its own (SQLite's statement journal), whereas a
//! SAVEPOINT cannot be opened inside a trigger or a virtual-table write. One
//! statement is also what keeps `SELECT task_claim(...)` free of
//! SQLITE_BUSY_SNAPSHOT: the statement takes the write lock before it reads,
//! so its snapshot can never be stale. When a write matches no row, a
//! read-only follow-up explains why (unknown id, wrong status, stale attempt);
//! nothing has changed by then.

use crate::error::{Error, Result};
use crate::sqlite::{Conn, Owned, Statement, randomness};
use crate::writeback;
use rusqlite::ffi;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
pub const DEFAULT_LEASE_MS: i64 = 300_000;
pub const BACKOFF_BASE_MS: i64 = 1_000;
pub const BACKOFF_CAP_MS: i64 = 3_600_000;
pub const MAX_ATTEMPTS_LIMIT: i64 = 1_000;
/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z in milliseconds.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
pub const MAX_LEASE_MS: i64 = 366 * 24 * 3_600_000;
/// Most tasks one batch call claims, completes or fails.
pub const MAX_BATCH: i64 = 10_000;

/// Milliseconds since the Unix epoch, from the system clock. Time is taken
/// in Rust, never from SQL: `unixepoch('subsec')` is NULL on SQLite 3.40.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

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

/// Which queues a claim takes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Queues {
    All,
    One(String),
    /// Several queue names.
    Many(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ClaimArgs<'a> {
    pub worker: &'a str,
    pub queues: Queues,
    pub lease_ms: i64,
    pub now: Option<i64>,
}

/// The claimed task, as `task_claim` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub details: Option<String>,
    pub attempt: i64,
    pub max_attempts: i64,
    pub priority: i64,
    pub parent_id: Option<String>,
    pub run_at: i64,
    pub lease_until: i64,
    pub created_at: i64,
}

/// Fencing and clock for the calls a worker makes on its task.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerArgs {
    /// The attempt number from the claim; a different current attempt means
    /// the lease was lost and the task re-claimed, and the call is refused.
    pub attempt: Option<i64>,
    /// New lease length in ms (progress and heartbeat only).
    pub lease_ms: Option<i64>,
    pub now: Option<i64>,
    /// Progress only: hold reports in memory, writing at most every this
    /// many ms (see `writeback.rs`).
    pub writeback_ms: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FailArgs {
    pub worker: WorkerArgs,
    /// False: fail for good, whatever attempts remain.
    pub retry: bool,
    /// Fixed delay before the retry, instead of the backoff.
    pub delay_ms: Option<i64>,
}

fn clock(now: Option<i64>) -> i64 {
    now.unwrap_or_else(now_ms)
}

/// Validates and canonicalises a task id (any UUID form → lowercase
/// hyphenated). `what` names the argument or option in the error.
pub fn parse_id(what: &str, id: &str) -> Result<String> {
    if is_canonical_id(id) {
        return Ok(id.to_string());
    }
    uuid::Uuid::try_parse(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::new(format!("{what} must be a UUID, got {}", quoted(id))))
}

/// Whether `id` is already a UUID in the form ids are stored in (lowercase
/// hex, hyphenated 8-4-4-4-12): the common case, checked without parsing.
fn is_canonical_id(id: &str) -> bool {
    let b = id.as_bytes();
    // Every byte a lowercase hex digit or a hyphen, and the four hyphens in
    // their places (no early exit: the loop stays branch-free).
    let (hex, hyphens) = b.iter().fold((0usize, 0usize), |(hex, hyphens), &c| {
        (
            hex + usize::from(c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            hyphens + usize::from(c == b'-'),
        )
    });
    b.len() == 36 && hex == 32 && hyphens == 4 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
}

/// A user value quoted for an error message, cut to a readable length.
pub fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("'{s}'")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("'{cut}…'")
    }
}

/// Deepest nesting accepted in stored JSON. SQLite's own JSON functions
/// refuse documents nested deeper than 1000 (fewer in older releases), and
/// a claim's result must stay readable with them.
pub const MAX_JSON_DEPTH: usize = 500;

/// Checks that `text` is one JSON value that SQLite's JSON functions can
/// read: well formed, nested at most [`MAX_JSON_DEPTH`] deep, and with no
/// escaped lone surrogate (`"\ud800"`), which strict parsers refuse.
pub fn check_json(what: &str, text: &str) -> Result<()> {
    let bad = |e: String| Error::new(format!("{what} is not valid JSON: {e}"));
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    let mut unicode_escape = false;
    for b in text.bytes() {
        match (in_str, esc, b) {
            (true, true, b) => {
                esc = false;
                unicode_escape |= b == b'u';
            }
            (true, false, b'\\') => esc = true,
            (true, false, b'"') => in_str = false,
            (true, false, _) => {}
            (false, _, b'"') => in_str = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                max = max.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_JSON_DEPTH {
        return Err(bad(format!(
            "nested {max} deep, more than the {MAX_JSON_DEPTH} allowed"
        )));
    }
    if unicode_escape {
        // Escapes are rare: decode fully to reject lone surrogates.
        serde_json::from_str::<serde_json::Value>(text).map_err(|e| bad(e.to_string()))?;
        return Ok(());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}

pub fn check_range(what: &str, v: i64, lo: i64, hi: i64) -> Result<i64> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Error::new(format!(
            "{what} must be between {lo} and {hi}, got {v}"
        )))
    }
}

/// A UUIDv7 for the clock `now` (ms). The random bits come from SQLite's
/// PRNG (seeded once by its VFS), not a system call per id.
fn new_id(now: i64) -> String {
    let mut random = [0u8; 10];
    randomness(&mut random);
    uuid_v7(now, &random)
}

fn uuid_v7(now: i64, random: &[u8; 10]) -> String {
    let ms = u64::try_from(now).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

const ENQUEUE_SQL: &str = "\
INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details)
VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8)";

const ENQUEUE_CHILD_SQL: &str = "\
INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details,
   parent_id)
SELECT ?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8, ?9
WHERE EXISTS (SELECT 1 FROM main.task_store WHERE id = +?9)";

/// A task just added: its id and its storage rowid.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: String,
    pub seq: i64,
}

/// Adds a task.
pub fn enqueue(conn: &Rc<Conn>, t: &NewTask<'_>) -> Result<Enqueued> {
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
    let priority = check_range(
        "priority",
        t.priority.unwrap_or(0),
        i64::from(i32::MIN),
        i64::from(i32::MAX),
    )?;
    let max_attempts = check_range(
        "max_attempts",
        t.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        1,
        MAX_ATTEMPTS_LIMIT,
    )?;
    let now = check_range("now", clock(t.now), 0, MAX_TIME_MS)?;
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

    let mut st = conn.prepare(if parent.is_some() {
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
        Err(e) if e.code == ffi::SQLITE_CONSTRAINT_UNIQUE && e.msg.contains("task_store.id") => {
            return Err(Error::with_code(
                e.code,
                format!("task {id} already exists"),
            ));
        }
        Err(e) => return Err(e),
    }
    drop(st);
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

// The claim. Reads first decide whether anything is claimable and from
// which queue (no write lock is taken when nothing is ready, so idle
// workers polling the queue never contend with writers). Then one UPDATE
// claims: it picks, inside the statement, a running task whose lease has
// expired (oldest expiry first: abandoned work is reclaimed before new work)
// or else the head of the chosen queue's ready index (priority, then run_at,
// then enqueue order). Because the UPDATE re-selects its rows, two workers
// that read the same head both claim something: the loser gets the next one.
//
// The SQL avoids anything that needs a temporary b-tree (IN-lists, ORDER BY
// over a compound, recursive CTEs, RETURNING) on the single-task path: each
// one costs a page-cache allocation per call, measured at ~100 µs. And the
// bound values compared in WHERE clauses are written `+?N`: a plain `?N`
// compared with an indexed column lets SQLite's planner look at the bound
// value when matching partial indexes, which marks the statement to be
// re-prepared every time that parameter is bound again (measured: 35 µs vs
// 4.5 µs per claim on a SQLITE_ENABLE_STAT4 build). The unary plus keeps the
// index usable and the plan fixed. The same holds for a bound LIMIT inside
// an IN (subquery): `LIMIT +?5` (measured: 86 µs vs 38 µs per batch).
//
// An expired task with no attempts left is failed by the same UPDATE (the
// CASEs below) instead of being claimed; the caller then claims again.
macro_rules! claim_sql {
    ($where:expr) => {
        concat!(
            "UPDATE main.task_store SET
  status       = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN 'failed' ELSE 'running' END,
  error        = CASE WHEN status = 'running'
                      THEN 'lease expired on attempt ' || attempts
                           || ' (worker ' || ifnull(worker, '?') || ')'
                      ELSE error END,
  completed_at = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN ?1 ELSE NULL END,
  lease_until  = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN NULL ELSE ?1 + ?3 END,
  lease_ms     = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN lease_ms ELSE ?3 END,
  worker       = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN worker ELSE ?2 END,
  started_at   = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN started_at ELSE ?1 END,
  progress     = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN progress ELSE 0 END,
  attempts     = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN attempts ELSE attempts + 1 END,
  updated_at   = task__note(?1,
                      CASE WHEN status = 'running' AND attempts >= max_attempts THEN 2
                           WHEN status = 'running' THEN 1 ELSE 0 END,
                      id, queue, type, details, attempts + 1, max_attempts, priority,
                      parent_id, run_at, ?1 + ?3, created_at)
WHERE ",
            $where
        )
    };
}

macro_rules! expired_sql {
    ($queue_filter:literal, $limit:literal) => {
        concat!(
            "SELECT seq FROM main.task_store
      WHERE status = 'running' AND lease_until <= +?1",
            $queue_filter,
            " ORDER BY lease_until LIMIT ",
            $limit
        )
    };
}

macro_rules! head_sql {
    ($limit:literal) => {
        concat!(
            "SELECT seq FROM main.task_store
      WHERE status = 'queued' AND queue = +?4 AND run_at <= +?1
      ORDER BY priority DESC, run_at LIMIT ",
            $limit
        )
    };
}

// One task: `seq = coalesce(expired, head)`, two index seeks, no temp b-tree.
const CLAIM_ONE_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!(" AND (queue = +?4 OR attempts >= max_attempts)", "1"),
    "), (",
    head_sql!("1"),
    "))"
));
const CLAIM_ONE_ANY_EXPIRED_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!("", "1"),
    "), (",
    head_sql!("1"),
    "))"
));
// Every-queue claim when one queue is known to be the only one with queued
// tasks: the guard re-checks that inside the statement (two seeks), so a
// busy worker claims with one write statement and no reads first.
const CLAIM_SOLE_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!("", "1"),
    "), (",
    head_sql!("1"),
    "))
  AND NOT EXISTS (SELECT 1 FROM main.task_store WHERE status = 'queued' AND queue < +?4)
  AND NOT EXISTS (SELECT 1 FROM main.task_store WHERE status = 'queued' AND queue > +?4)"
));
// A batch: up to ?5 tasks, expired first, then the queue's head in order.
// The IN-list costs one temporary b-tree per batch, not per task.
const CLAIM_BATCH_SQL: &str = claim_sql!(concat!(
    "seq IN (SELECT seq FROM (",
    expired_sql!(" AND (queue = +?4 OR attempts >= max_attempts)", "+?5"),
    ") UNION ALL SELECT seq FROM (",
    head_sql!("+?5"),
    ") LIMIT +?5)"
));
const CLAIM_BATCH_ANY_EXPIRED_SQL: &str = claim_sql!(concat!(
    "seq IN (SELECT seq FROM (",
    expired_sql!("", "+?5"),
    ") UNION ALL SELECT seq FROM (",
    head_sql!("+?5"),
    ") LIMIT +?5)"
));

/// The next queue name after `?1` among queued tasks, with that queue's
/// head: one seek in the ready index for each.
const NEXT_QUEUE_SQL: &str = "\
SELECT q.queue, h.priority, h.run_at, h.seq
  FROM (SELECT queue FROM main.task_store WHERE status = 'queued' AND queue > +?1
         ORDER BY queue LIMIT 1) AS q
  LEFT JOIN main.task_store AS h ON h.seq = (
       SELECT seq FROM main.task_store
        WHERE status = 'queued' AND queue = q.queue AND run_at <= +?2
        ORDER BY priority DESC, run_at LIMIT 1)";

const HEAD_OF_SQL: &str = "\
SELECT priority, run_at, seq FROM main.task_store
 WHERE status = 'queued' AND queue = +?1 AND run_at <= +?2
 ORDER BY priority DESC, run_at LIMIT 1";

const EXPIRED_ANY_SQL: &str = "\
SELECT 1 FROM main.task_store WHERE status = 'running' AND lease_until <= +?1 LIMIT 1";
// Expired tasks this claim may take (its queue's), or must reap (any queue's
// with no attempts left: a queue nobody claims from must not keep a dead
// task 'running' forever).
const EXPIRED_IN_SQL: &str = "\
SELECT 1 FROM main.task_store
 WHERE status = 'running' AND lease_until <= +?1 AND (queue = +?2 OR attempts >= max_attempts)
 LIMIT 1";

/// Claim order of a queue head: higher priority, then earlier run_at, then
/// earlier enqueue.
type HeadKey = (std::cmp::Reverse<i64>, i64, i64);

fn head_of(conn: &Rc<Conn>, queue: &str, now: i64) -> Result<Option<HeadKey>> {
    let mut st = conn.prepare(HEAD_OF_SQL)?;
    st.bind_text(1, queue)?;
    st.bind_i64(2, now)?;
    Ok(if st.step()? {
        Some((
            std::cmp::Reverse(st.column_i64(0)),
            st.column_i64(1),
            st.column_i64(2),
        ))
    } else {
        None
    })
}

const OLDEST_EXPIRED_QUEUE_SQL: &str = "\
SELECT queue FROM main.task_store
 WHERE status = 'running' AND lease_until <= +?1 AND attempts < max_attempts
 ORDER BY lease_until LIMIT 1";

fn oldest_expired_queue(conn: &Rc<Conn>, now: i64) -> Result<Option<String>> {
    let mut st = conn.prepare(OLDEST_EXPIRED_QUEUE_SQL)?;
    st.bind_i64(1, now)?;
    Ok(if st.step()? { st.column_text(0) } else { None })
}

fn expired_in(conn: &Rc<Conn>, queue: Option<&str>, now: i64) -> Result<bool> {
    let mut st = conn.prepare(if queue.is_some() {
        EXPIRED_IN_SQL
    } else {
        EXPIRED_ANY_SQL
    })?;
    st.bind_i64(1, now)?;
    if let Some(q) = queue {
        st.bind_text(2, q)?;
    }
    st.step()
}

/// The queue whose ready head comes first in claim order, among every queue
/// that has queued tasks, and how many queues have queued tasks.
fn best_queue_of_all(conn: &Rc<Conn>, now: i64) -> Result<(Option<String>, usize)> {
    let mut best: Option<(HeadKey, String)> = None;
    let mut queues = 0;
    let mut after = String::new();
    let mut st = conn.prepare(NEXT_QUEUE_SQL)?;
    loop {
        st.bind_text(1, &after)?;
        st.bind_i64(2, now)?;
        if !st.step()? {
            break;
        }
        let Some(queue) = st.column_text(0) else {
            break;
        };
        queues += 1;
        if st.column_type(3) != ffi::SQLITE_NULL {
            let key = (
                std::cmp::Reverse(st.column_i64(1)),
                st.column_i64(2),
                st.column_i64(3),
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, queue.clone()));
            }
        }
        after = queue;
        st.reset();
    }
    Ok((best.map(|(_, q)| q), queues))
}

/// Which claim statement a round uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The given queue's expired and ready tasks.
    Queue,
    /// Any queue's expired tasks, then the given queue's ready ones.
    AnyExpired,
    /// As AnyExpired, guarded: only if no other queue has queued tasks.
    Sole,
}

/// What the last claim on this connection learned, to skip reads next time.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Hint {
    #[default]
    None,
    /// The named queue had work.
    One(String),
    /// An every-queue claim found this queue the only one with queued tasks.
    Sole(String),
}

/// Claims up to `limit` ready tasks for `worker` (all from one queue).
pub fn claim(conn: &Rc<Conn>, a: &ClaimArgs<'_>, limit: i64) -> Result<Vec<Claimed>> {
    if a.worker.is_empty() {
        return Err(Error::new("worker must not be empty"));
    }
    let limit = check_range("limit", limit, 1, MAX_BATCH)?;
    let lease = check_range("lease", a.lease_ms, 1, MAX_LEASE_MS)?;
    let now = check_range("now", clock(a.now), 0, MAX_TIME_MS)?;
    // Reaping an exhausted expired task consumes a round; bound the rounds
    // so a pathological storage cannot spin forever.
    for _ in 0..1_000 {
        // Which queue, and which expired tasks, this round may claim from.
        // A worker that just found work goes straight to the UPDATE (the
        // hint); one that found none reads first, so idle polling takes no
        // write lock.
        let hint = conn.claim_hint();
        let sole = match &hint {
            Hint::Sole(q) if limit == 1 => Some(q.clone()),
            _ => None,
        };
        let (queue, sql_kind): (Option<String>, Kind) = match &a.queues {
            Queues::One(q) if matches!(&hint, Hint::One(h) if h == q) => {
                (Some(q.clone()), Kind::Queue)
            }
            Queues::One(q) => {
                let ready = head_of(conn, q, now)?.is_some();
                let expired = expired_in(conn, Some(q), now)?;
                if !ready && !expired {
                    return Ok(Vec::new());
                }
                (Some(q.clone()), Kind::Queue)
            }
            Queues::All if sole.is_some() => (sole, Kind::Sole),
            Queues::All => {
                let (best, n) = best_queue_of_all(conn, now)?;
                // A batch comes from one queue: the one holding the oldest
                // expired lease if any, else the one whose head is first.
                let expired_queue = if limit > 1 {
                    oldest_expired_queue(conn, now)?
                } else {
                    None
                };
                let q = expired_queue.or(best);
                if q.is_none() && !expired_in(conn, None, now)? {
                    conn.set_claim_hint(Hint::None);
                    return Ok(Vec::new());
                }
                match (limit, n, &q) {
                    (1, 1, _) => (q, Kind::Sole),
                    (1, _, _) | (_, _, None) => (q, Kind::AnyExpired),
                    _ => (q, Kind::Queue),
                }
            }
            Queues::Many(many) => {
                // A queue with an expired task goes first; otherwise the
                // queue whose head comes first.
                let mut pick: Option<((bool, HeadKey), &String)> = None;
                for q in many {
                    let expired = expired_in(conn, Some(q), now)?;
                    let head = head_of(conn, q, now)?;
                    if !expired && head.is_none() {
                        continue;
                    }
                    let last = (std::cmp::Reverse(i64::MIN), i64::MAX, i64::MAX);
                    let key = (!expired, head.unwrap_or(last));
                    if pick.as_ref().is_none_or(|(k, _)| key < *k) {
                        pick = Some((key, q));
                    }
                }
                match pick {
                    None => return Ok(Vec::new()),
                    Some((_, q)) => (Some(q.clone()), Kind::Queue),
                }
            }
        };
        let sql = match (limit, sql_kind) {
            (1, Kind::Queue) => CLAIM_ONE_SQL,
            (1, Kind::AnyExpired) => CLAIM_ONE_ANY_EXPIRED_SQL,
            (1, Kind::Sole) => CLAIM_SOLE_SQL,
            (_, Kind::Queue) => CLAIM_BATCH_SQL,
            (_, _) => CLAIM_BATCH_ANY_EXPIRED_SQL,
        };
        let mut st = conn.prepare(sql)?;
        st.bind_i64(1, now)?;
        st.bind_text(2, a.worker)?;
        st.bind_i64(3, lease)?;
        st.bind_opt_text(4, queue.as_deref())?;
        if limit > 1 {
            st.bind_i64(5, limit)?;
        }
        let notes = conn
            .finish_noted(st)
            .inspect_err(|_| conn.set_claim_hint(Hint::None))?;
        let mut claimed = Vec::new();
        // Expired leases reclaimed by this call come first in claim order.
        let mut reclaimed = Vec::new();
        let mut reaped = 0;
        for n in notes {
            // [how (0 queued, 1 expired lease, 2 reaped), id, queue, type,
            //  details, attempt, max_attempts, priority, parent_id, run_at,
            //  lease_until, created_at]
            let [
                how,
                id,
                queue,
                kind,
                details,
                attempt,
                max,
                prio,
                parent,
                run_at,
                lease_until,
                created,
            ] = <[Owned; 12]>::try_from(n).map_err(|_| Error::new("internal: bad claim note"))?;
            let how = how.int();
            let id = id.into_text().unwrap_or_default();
            if how == 2 {
                // Failed for an expired lease: nothing held for it stays.
                writeback::take(conn.key(), &id);
                reaped += 1;
                continue;
            }
            reclaimed.push(how == 1);
            claimed.push(Claimed {
                id,
                queue: queue.into_text().unwrap_or_default(),
                kind: kind.into_text().unwrap_or_default(),
                details: details.into_text(),
                attempt: attempt.int(),
                max_attempts: max.int(),
                priority: prio.int(),
                parent_id: parent.into_text(),
                run_at: run_at.int(),
                lease_until: lease_until.int(),
                created_at: created.int(),
            });
        }
        let hinted = hint != Hint::None;
        conn.set_claim_hint(match (&a.queues, sql_kind, claimed.is_empty(), &queue) {
            (_, _, true, _) => Hint::None,
            (Queues::One(q), _, false, _) => Hint::One(q.clone()),
            (Queues::All, Kind::Sole, false, Some(q)) => Hint::Sole(q.clone()),
            _ => Hint::None,
        });
        if !claimed.is_empty() {
            for t in &claimed {
                // A value held for an earlier attempt is stale now.
                writeback::take(conn.key(), &t.id);
            }
            if claimed.len() > 1 {
                // The UPDATE visits rows in rowid order; report claim order:
                // expired leases first, then priority, run_at, enqueue order
                // (the sort is stable).
                let mut order: Vec<(bool, Claimed)> = reclaimed.into_iter().zip(claimed).collect();
                order.sort_by_key(|(again, t)| (!*again, std::cmp::Reverse(t.priority), t.run_at));
                claimed = order.into_iter().map(|(_, t)| t).collect();
            }
            return Ok(claimed);
        }
        // Nothing claimed: an expired task was reaped (claim again), or the
        // hint was stale (read the queues and claim again), or there is
        // nothing to claim.
        if reaped == 0 && !hinted {
            return Ok(claimed);
        }
    }
    Ok(Vec::new())
}

impl Claimed {
    /// The JSON object `task_claim` returns. `details` is embedded as the
    /// JSON it is; if the stored text is not JSON (edited by hand), it is
    /// returned as a JSON string rather than producing invalid output.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends [`Claimed::to_json`]'s object to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.reserve(
            180 + self.id.len()
                + self.kind.len()
                + self.queue.len()
                + self.details.as_ref().map_or(4, String::len)
                + self.parent_id.as_ref().map_or(4, String::len),
        );
        out.push_str("{\"id\":");
        push_json_str(out, &self.id);
        out.push_str(",\"type\":");
        push_json_str(out, &self.kind);
        out.push_str(",\"queue\":");
        push_json_str(out, &self.queue);
        out.push_str(",\"details\":");
        match &self.details {
            None => out.push_str("null"),
            Some(d) if check_json("details", d).is_ok() => out.push_str(d),
            Some(d) => push_json_str(out, d),
        }
        out.push_str(",\"attempt\":");
        push_int(out, self.attempt);
        out.push_str(",\"max_attempts\":");
        push_int(out, self.max_attempts);
        out.push_str(",\"priority\":");
        push_int(out, self.priority);
        out.push_str(",\"parent_id\":");
        match &self.parent_id {
            None => out.push_str("null"),
            Some(p) => push_json_str(out, p),
        }
        out.push_str(",\"run_at\":");
        push_int(out, self.run_at);
        out.push_str(",\"lease_until\":");
        push_int(out, self.lease_until);
        out.push_str(",\"created_at\":");
        push_int(out, self.created_at);
        out.push('}');
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping). Runs of bytes
/// that need no escape are copied whole.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most text needs no escape: one branch-free pass finds out.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

/// Appends `v` in decimal, without going through `fmt`.
fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or("0"));
}

/// The current state of a task, for explaining why a write matched nothing.
struct Current {
    status: String,
    attempts: i64,
    worker: Option<String>,
}

const CURRENT_SQL: &str = "SELECT status, attempts, worker FROM main.task_store WHERE id = +?1";

fn current(conn: &Rc<Conn>, id: &str) -> Result<Current> {
    let mut st = conn.prepare(CURRENT_SQL)?;
    st.bind_text(1, id)?;
    if !st.step()? {
        return Err(Error::new(format!("task {id} not found")));
    }
    Ok(Current {
        status: st.column_text(0).unwrap_or_default(),
        attempts: st.column_i64(1),
        worker: st.column_text(2),
    })
}

/// The error for a worker-side call that matched no running task.
fn not_running(conn: &Rc<Conn>, id: &str, attempt: Option<i64>) -> Error {
    let cur = match current(conn, id) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Some(a) = attempt
        && a != cur.attempts
    {
        let holder = match (&cur.status[..], &cur.worker) {
            ("running", Some(w)) => format!(", held by worker {}", quoted(w)),
            _ => String::new(),
        };
        return Error::new(format!(
            "attempt {a} of task {id} is stale: the task is on attempt {} ({}{holder})",
            cur.attempts, cur.status
        ));
    }
    if cur.status == "running" {
        // Changed between the write and this read: report it plainly.
        return Error::with_code(
            ffi::SQLITE_BUSY,
            format!("task {id} changed concurrently; retry"),
        );
    }
    Error::new(format!("task {id} is {}, not running", cur.status))
}

fn check_attempt(attempt: Option<i64>) -> Result<Option<i64>> {
    attempt
        .map(|a| check_range("attempt", a, 1, MAX_ATTEMPTS_LIMIT))
        .transpose()
}

const PROGRESS_SQL: &str = "\
UPDATE main.task_store
   SET progress = coalesce(?3, progress),
       lease_ms = coalesce(?5, lease_ms),
       lease_until = ?2 + coalesce(?5, lease_ms),
       updated_at = task__note(?2, attempts, coalesce(?5, lease_ms))
 WHERE id = +?1 AND status = 'running' AND (?4 IS NULL OR attempts = +?4)";

/// Records progress (or, with `percent = None`, only renews the lease).
/// Returns the task's status: `running`, or `cancelled` when the task was
/// cancelled while it ran — the worker's signal to stop.
pub fn progress(
    conn: &Rc<Conn>,
    id: &str,
    percent: Option<f64>,
    w: &WorkerArgs,
) -> Result<&'static str> {
    let id = parse_id("id", id)?;
    if let Some(p) = percent
        && !(0.0..=100.0).contains(&p)
    {
        return Err(Error::new(format!(
            "progress must be between 0 and 100, got {p}"
        )));
    }
    let attempt = check_attempt(w.attempt)?;
    let lease = w
        .lease_ms
        .map(|l| check_range("lease", l, 1, MAX_LEASE_MS))
        .transpose()?;
    let now = check_range("now", clock(w.now), 0, MAX_TIME_MS)?;
    let writeback = w
        .writeback_ms
        .map(|ms| check_range("writeback", ms, 0, MAX_LEASE_MS))
        .transpose()?;
    if let (Some(p), Some(_)) = (percent, writeback)
        && lease.is_none()
        && writeback::hold(conn.key(), &id, attempt, p, now)
    {
        return Ok("running");
    }
    // A heartbeat writes the value held for the task, if any; a report
    // without write-back replaces it. The held value is only forgotten once
    // the write succeeded: a refused call changes nothing.
    let held = writeback::get(conn.key(), &id);
    let percent = match (percent, held) {
        (None, Some(h)) if attempt.is_none_or(|a| a == h.attempt) => Some(h.percent),
        (p, _) => p,
    };
    let mut st = conn.prepare(PROGRESS_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    match percent {
        // Whole numbers are stored as integers (the column has NUMERIC
        // affinity), so the shell shows 40, not 40.0.
        Some(p) => st.bind_f64(3, p)?,
        None => st.bind_null(3)?,
    }
    st.bind_opt_i64(4, attempt)?;
    st.bind_opt_i64(5, lease)?;
    let notes = conn.finish_noted(st)?;
    if let Some(row) = notes.first() {
        writeback::take(conn.key(), &id);
        if let (Some(ms), Some(p)) = (writeback, percent) {
            let attempts = row.first().map_or(0, Owned::int);
            let lease_ms = row.get(1).map_or(0, Owned::int);
            let held = writeback::Held {
                attempt: attempts,
                percent: p,
                written_at: now,
                interval: ms.min(lease_ms / 2),
            };
            writeback::wrote(conn.key(), &id, held);
        }
        return Ok("running");
    }
    let cur = current(conn, &id)?;
    if cur.status == "cancelled" && attempt.is_none_or(|a| a == cur.attempts) {
        return Ok("cancelled");
    }
    Err(not_running(conn, &id, attempt))
}

const COMPLETE_SQL: &str = "\
UPDATE main.task_store
   SET status = 'completed', result = ?3, progress = 100, lease_until = NULL,
       completed_at = ?2, updated_at = ?2
 WHERE id = +?1 AND status = 'running' AND (?4 IS NULL OR attempts = +?4)";

/// Marks a running task completed with an optional JSON result.
pub fn complete(conn: &Rc<Conn>, id: &str, result: Option<&str>, w: &WorkerArgs) -> Result<()> {
    let id = parse_id("id", id)?;
    if let Some(r) = result {
        check_json("result", r)?;
    }
    let attempt = check_attempt(w.attempt)?;
    let now = check_range("now", clock(w.now), 0, MAX_TIME_MS)?;
    let mut st = conn.prepare(COMPLETE_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    st.bind_opt_text(3, result)?;
    st.bind_opt_i64(4, attempt)?;
    st.finish()?;
    drop(st);
    if conn.changes() == 1 {
        writeback::take(conn.key(), &id);
        Ok(())
    } else {
        Err(not_running(conn, &id, attempt))
    }
}

// Retry or fail for good. The backoff is exponential in the attempt number
// (base · 2^(attempt-1), capped) times a jitter factor in [0.5, 1] drawn in
// Rust, so workers that fail together do not retry together.
const FAIL_SQL: &str = "\
UPDATE main.task_store
   SET status = CASE WHEN ?5 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
       run_at = CASE WHEN ?5 OR attempts >= max_attempts THEN run_at
                     ELSE ?2 + coalesce(?6, CAST(min(?7 * (1 << min(attempts - 1, 40)), ?8) * ?9
                                                 AS INTEGER)) END,
       completed_at = CASE WHEN ?5 OR attempts >= max_attempts THEN ?2 ELSE NULL END,
       worker = CASE WHEN ?5 OR attempts >= max_attempts THEN worker ELSE NULL END,
       error = ?3, lease_until = NULL, progress = coalesce(?10, progress),
       updated_at = task__note(?2, CASE WHEN ?5 OR attempts >= max_attempts
                                        THEN 'failed' ELSE 'queued' END)
 WHERE id = +?1 AND status = 'running' AND (?4 IS NULL OR attempts = +?4)";

/// Fails the current attempt. Returns `queued` when the task will be retried,
/// `failed` when it has no attempts left (or `retry` is false).
pub fn fail(conn: &Rc<Conn>, id: &str, error: &str, f: &FailArgs) -> Result<String> {
    let id = parse_id("id", id)?;
    let attempt = check_attempt(f.worker.attempt)?;
    let now = check_range("now", clock(f.worker.now), 0, MAX_TIME_MS)?;
    let delay = f
        .delay_ms
        .map(|d| check_range("delay", d, 0, MAX_TIME_MS - now))
        .transpose()?;
    let mut st = conn.prepare(FAIL_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    st.bind_text(3, error)?;
    st.bind_opt_i64(4, attempt)?;
    st.bind_i64(5, i64::from(!f.retry))?;
    st.bind_opt_i64(6, delay)?;
    st.bind_i64(7, BACKOFF_BASE_MS)?;
    st.bind_i64(8, BACKOFF_CAP_MS)?;
    st.bind_f64(9, jitter())?;
    match writeback::get(conn.key(), &id) {
        Some(h) if attempt.is_none_or(|a| a == h.attempt) => st.bind_f64(10, h.percent)?,
        _ => st.bind_null(10)?,
    }
    let notes = conn.finish_noted(st)?;
    if !notes.is_empty() {
        writeback::take(conn.key(), &id);
    }
    notes
        .into_iter()
        .next()
        .and_then(|n| n.into_iter().next())
        .and_then(Owned::into_text)
        .ok_or_else(|| not_running(conn, &id, attempt))
}

/// A factor in [0.5, 1.0] from SQLite's PRNG.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    randomness(&mut b);
    0.5 + 0.5 * (f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
}

const CANCEL_SQL: &str = "\
UPDATE main.task_store
   SET status = 'cancelled', lease_until = NULL, completed_at = ?2, updated_at = ?2
 WHERE id = +?1 AND (status = 'queued' OR status = 'running')";

/// Cancels a queued or running task. A running task's worker learns it at
/// its next progress or heartbeat call, and can no longer complete it.
pub fn cancel(conn: &Rc<Conn>, id: &str, now: Option<i64>) -> Result<()> {
    transition(conn, CANCEL_SQL, id, now, |id, status| {
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
pub fn retry(conn: &Rc<Conn>, id: &str, now: Option<i64>) -> Result<()> {
    transition(conn, RETRY_SQL, id, now, |id, status| {
        format!("task {id} is {status}; only failed or cancelled tasks can be retried")
    })
}

/// Runs an administrative transition (`sql` binds the id and the clock); on
/// no match, explains with `refusal(id, current status)`.
fn transition(
    conn: &Rc<Conn>,
    sql: &'static str,
    id: &str,
    now: Option<i64>,
    refusal: fn(&str, &str) -> String,
) -> Result<()> {
    let id = parse_id("id", id)?;
    let now = check_range("now", clock(now), 0, MAX_TIME_MS)?;
    let mut st = conn.prepare(sql)?;
    st.bind_text(1, &id)?;
    st.bind_i64(2, now)?;
    st.finish()?;
    drop(st);
    if conn.changes() == 1 {
        writeback::take(conn.key(), &id);
        return Ok(());
    }
    let cur = current(conn, &id)?;
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
pub fn reschedule(conn: &Rc<Conn>, id: &str, r: &Reschedule) -> Result<()> {
    let id = parse_id("id", id)?;
    if r.queue.as_deref() == Some("") {
        return Err(Error::new("queue must not be empty"));
    }
    let priority = r
        .priority
        .map(|p| check_range("priority", p, i64::from(i32::MIN), i64::from(i32::MAX)))
        .transpose()?;
    let run_at = r
        .run_at
        .map(|t| check_range("run_at", t, 0, MAX_TIME_MS))
        .transpose()?;
    let max_attempts = r
        .max_attempts
        .map(|m| check_range("max_attempts", m, 1, MAX_ATTEMPTS_LIMIT))
        .transpose()?;
    let now = check_range("now", clock(r.now), 0, MAX_TIME_MS)?;
    let mut st = conn.prepare(RESCHEDULE_SQL)?;
    st.bind_text(1, &id)?;
    st.bind_opt_text(2, r.queue.as_deref())?;
    st.bind_opt_i64(3, priority)?;
    st.bind_opt_i64(4, run_at)?;
    st.bind_opt_i64(5, max_attempts)?;
    st.bind_i64(6, now)?;
    st.finish()?;
    drop(st);
    if conn.changes() == 1 {
        return Ok(());
    }
    let cur = current(conn, &id)?;
    if cur.status != "queued" {
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
pub fn delete(conn: &Rc<Conn>, seq: i64) -> Result<()> {
    let mut st = conn.prepare(DELETE_SQL)?;
    st.bind_i64(1, seq)?;
    st.finish()?;
    drop(st);
    if conn.changes() > 0 {
        return Ok(());
    }
    let mut st = conn.prepare(BLOCKER_SQL)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonicalised() {
        let id = parse_id("id", "0193C1F2-7A5B-7C3D-8E9F-0123456789AB").unwrap();
        assert_eq!(id, "0193c1f2-7a5b-7c3d-8e9f-0123456789ab");
        let e = parse_id("parent_id", "not-a-uuid").unwrap_err();
        assert_eq!(e.msg, "parent_id must be a UUID, got 'not-a-uuid'");
        // The canonical form is taken as is; near misses go through the parser.
        let canonical = "0193c1f2-7a5b-7c3d-8e9f-0123456789ab";
        assert!(is_canonical_id(canonical));
        assert_eq!(parse_id("id", canonical).unwrap(), canonical);
        for near in [
            "0193c1f2-7a5b-7c3d-8e9f-0123456789aB",
            "0193c1f2a7a5b-7c3d-8e9f-0123456789ab",
            "{0193c1f2-7a5b-7c3d-8e9f-0123456789}",
            "0193c1f2-7a5b-7c3d-8e9f-0123456789ag",
        ] {
            assert!(!is_canonical_id(near), "{near}");
        }
        assert!(parse_id("id", "0193c1f2-7a5b-7c3d-8e9f-0123456789ag").is_err());
        assert!(parse_id("id", "{0193c1f2-7a5b-7c3d-8e9f-0123456789}").is_err());
    }

    #[test]
    fn integers_and_strings_are_written_as_json() {
        for v in [0, 7, -7, 10, 1_700_000_000_123, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_int(&mut out, v);
            assert_eq!(out, v.to_string());
        }
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é\u{7f}");
    }

    #[test]
    fn generated_ids_follow_the_supplied_clock() {
        let a = uuid_v7(1_000, &[0xff; 10]);
        let b = uuid_v7(2_000, &[0; 10]);
        assert!(a < b, "v7 ids sort by time: {a} {b}");
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
    }

    #[test]
    fn json_checks_reject_garbage() {
        assert!(check_json("details", r#"{"a":[1,2]}"#).is_ok());
        assert!(check_json("details", "{").is_err());
        assert!(check_json("details", "NaN").is_err());
        assert!(check_json("details", "1 2").is_err());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let q = quoted(&"x".repeat(500));
        assert!(q.len() < 80);
    }

    #[test]
    fn claimed_json_is_valid_even_with_bad_details() {
        let mut c = Claimed {
            id: "i".into(),
            queue: "q".into(),
            kind: "t\"x".into(),
            details: Some("{\"a\":1}".into()),
            attempt: 1,
            max_attempts: 3,
            priority: 0,
            parent_id: None,
            run_at: 0,
            lease_until: 5,
            created_at: 0,
        };
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["details"]["a"], 1);
        assert_eq!(v["type"], "t\"x");
        c.details = Some("{broken".into());
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["details"], "{broken");
        c.kind = "q\"\\\n\u{1}é✓".into();
        c.parent_id = Some("p".into());
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["type"], "q\"\\\n\u{1}é✓");
        assert_eq!(v["parent_id"], "p");
    }
}
