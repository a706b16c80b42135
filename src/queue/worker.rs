//! What a worker does with the task it holds: `task_progress`,
//! `task_heartbeat`, `task_complete`, `task_fail`. Each is one UPDATE
//! matching only a running task, and only the claimed attempt when the
//! worker passes it (fencing: a worker whose lease expired and whose task
//! was claimed again cannot touch the new attempt).

use super::flow::{self, Finished, finished_note};
use super::ids::parse_id;
use super::json::check_json;
use super::model::{
    BACKOFF_BASE_MS, BACKOFF_CAP_MS, MAX_LEASE_MS, MAX_TIME_MS, Status, check_attempt, check_opt,
    clock,
};
use super::notes::{Note, fields};
use super::refusal::{current, not_running};
use super::txn::atomically;
use super::writeback;
use super::{Link, Queue};
use crate::error::{Error, Result};
use crate::ffi::{Owned, randomness};

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

macro_rules! progress_sql {
    ($row:expr, $lease:expr, $flags:expr, $where:expr) => {
        concat!(
            "UPDATE main.task_store
   SET progress = coalesce(?3, progress),",
            $lease,
            $flags,
            "
       updated_at = ",
            event!(
                "task__note(?2, attempts, coalesce(?5, lease_ms),
                               CASE WHEN parent_id IS NULL OR ?7 IS NULL THEN 0 ELSE
                                 (SELECT p.seq FROM main.task_store AS p
                                   WHERE p.id = task_store.parent_id) END)",
                "queue",
                concat!(
                    "CASE WHEN ?3 IS NULL THEN ",
                    kind!(none),
                    " ELSE ",
                    kind!(progress),
                    " END"
                ),
                "'running'",
                "attempts",
                "worker",
                "NULL",
                "?3"
            ),
            "
 WHERE ",
            $row,
            " AND status = 'running' AND (?4 IS NULL OR attempts = +?4)",
            $where
        )
    };
}

/// The SET of a report that renews the lease.
macro_rules! renew {
    () => {
        "
       lease_ms = coalesce(?5, lease_ms),
       lease_until = ?2 + coalesce(?5, lease_ms),"
    };
}

/// The reports that need not touch the flags: a plain task's, a heartbeat,
/// a child's that is already read by its parent's rollup.
macro_rules! flags_kept {
    () => {
        " AND (?3 IS NULL OR ?3 <= 0 OR parent_id IS NULL OR flags & 16)"
    };
}

// A report renews the lease only once a quarter of it has passed since it
// was last renewed (or when it asks for a new length), so at least three
// quarters of the lease remain after any report. Most reports of a busy
// worker then write neither lease_until nor flags: the row stays where it
// is in the running index (ordered by lease_until), and the statement
// writes no index at all. Measured in BENCHMARKS.md ("Leases that cost
// less"): a write-through report went from 0.54 to 0.80 × the raw UPDATE.
macro_rules! progress_keep_sql {
    ($row:expr) => {
        progress_sql!(
            $row,
            "",
            "",
            concat!(
                flags_kept!(),
                " AND ?5 IS NULL AND lease_until > ?2 + lease_ms - lease_ms / 4"
            )
        )
    };
}
// A report that renews the lease, and leaves the flags as they are.
macro_rules! progress_renew_sql {
    ($row:expr) => {
        progress_sql!($row, renew!(), "", flags_kept!())
    };
}
// A child's first progress: from now on its parent's rollup reads it. A
// rare write, so one statement does both: renew by the rule, or keep.
macro_rules! progress_child_sql {
    ($row:expr) => {
        progress_sql!(
            $row,
            "
       lease_ms = coalesce(?5, lease_ms),
       lease_until = CASE WHEN ?5 IS NULL AND lease_until > ?2 + lease_ms - lease_ms / 4
                          THEN lease_until ELSE ?2 + coalesce(?5, lease_ms) END,",
            "
       flags = CASE WHEN parent_id IS NOT NULL AND ?3 > 0 THEN flags | 16 ELSE flags END,",
            ""
        )
    };
}

/// The three reports, tried in this order until one writes: by the task's
/// id, and by its row ?6 too (a task this connection claimed).
const PROGRESS_BY_ID: [&str; 3] = [
    progress_keep_sql!("id = +?1"),
    progress_renew_sql!("id = +?1"),
    progress_child_sql!("id = +?1"),
];
const PROGRESS_MINE: [&str; 3] = [
    progress_keep_sql!(mine!("?6")),
    progress_renew_sql!(mine!("?6")),
    progress_child_sql!(mine!("?6")),
];

/// What the reports note: the attempt and the lease length now in force,
/// and, for a report with write-back (?7 not NULL), the parent's rowid (0:
/// none, or no write-back).
struct ProgressNote {
    attempts: i64,
    lease_ms: i64,
    parent: i64,
}

impl Note for ProgressNote {
    const WHAT: &'static str = "progress";

    fn read(values: Vec<Owned>) -> Result<Self> {
        let [attempts, lease_ms, parent] = fields::<Self, 3>(values)?;
        Ok(ProgressNote {
            attempts: attempts.int(),
            lease_ms: lease_ms.int(),
            parent: parent.int(),
        })
    }
}

/// Records progress (or, with `percent = None`, only renews the lease).
/// Returns the task's status: `running`, or `cancelled` when the task was
/// cancelled while it ran — the worker's signal to stop.
pub fn progress(q: &Queue, id: &str, percent: Option<f64>, w: &WorkerArgs) -> Result<Status> {
    let id = parse_id("id", id)?;
    if let Some(p) = percent
        && !(0.0..=100.0).contains(&p)
    {
        return Err(Error::new(format!(
            "progress must be between 0 and 100, got {p}"
        )));
    }
    let attempt = check_attempt(w.attempt)?;
    let lease = check_opt("lease", w.lease_ms, (1, MAX_LEASE_MS))?;
    let now = clock(w.now)?;
    let writeback = check_opt("writeback", w.writeback_ms, (0, MAX_LEASE_MS))?;
    if let (Some(p), Some(_)) = (percent, writeback)
        && lease.is_none()
        && writeback::hold(q.key(), &id, attempt, p, now)
    {
        return Ok(Status::Running);
    }
    // A heartbeat writes the value held for the task, if any; a report
    // without write-back replaces it. The held value is only forgotten once
    // the write succeeded: a refused call changes nothing.
    let held = writeback::get(q.key(), &id);
    let percent = match (percent, held) {
        (None, Some(h)) if attempt.is_none_or(|a| a == h.attempt) => Some(h.percent),
        (p, _) => p,
    };
    let write = |sql: &'static str, seq: Option<i64>| -> Result<Option<ProgressNote>> {
        let mut st = q.prepare(sql)?;
        if let Some(seq) = seq {
            st.bind_i64(6, seq)?;
        }
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
        // Only write-back keeps the parent's row (for its rollup): a report
        // without it does not look the parent up.
        st.bind_opt_i64(7, writeback.map(|_| 1))?;
        q.notes().first::<ProgressNote>(st)
    };
    // The keep, then the renewal, then (a positive report) a child's first;
    // by the task's row if this connection claimed it, and by its id if it
    // did not or if the row missed.
    let reports = if percent.is_some_and(|p| p > 0.0) {
        3
    } else {
        2
    };
    let run = |sqls: &[&'static str; 3], seq: Option<i64>| -> Result<Option<ProgressNote>> {
        for sql in &sqls[..reports] {
            if let Some(note) = write(sql, seq)? {
                return Ok(Some(note));
            }
        }
        Ok(None)
    };
    let written = by_row_or_id(q.claimed_seq(&id), (&PROGRESS_MINE, &PROGRESS_BY_ID), run)?;
    if let Some(row) = written {
        writeback::take(q.key(), &id);
        if let (Some(ms), Some(p)) = (writeback, percent) {
            let held = writeback::Held {
                attempt: row.attempts,
                percent: p,
                written_at: now,
                interval: ms.min(row.lease_ms / 2),
                stored: p,
                parent: row.parent,
            };
            writeback::wrote(q.key(), &id, held);
        }
        return Ok(Status::Running);
    }
    let cur = current(q, &id)?;
    if cur.is(Status::Cancelled) && attempt.is_none_or(|a| a == cur.attempts) {
        return Ok(Status::Cancelled);
    }
    Err(not_running(q, &id, attempt))
}

// A plain task (no parent, children or dependents) completes in this one
// statement. Any other comes to `complete_linked`.
/// The event of a completion by the worker (`$status`: what it leaves).
macro_rules! completed_event {
    ($returns:expr) => {
        completed_event!($returns, kind!(completed), "'completed'")
    };
    ($returns:expr, $kind:expr, $status:expr) => {
        event!(
            $returns, "queue", $kind, $status, "attempts", "worker", "NULL", "100"
        )
    };
}

// A plain task completed in one statement, found by ?1 alone or, claimed
// by this connection, by its row ?5 too (a rowid seek, not the id index's).
macro_rules! complete_plain_sql {
    ($row:expr) => {
        concat!(
            "UPDATE main.task_store
   SET status = 'completed', result = ?3, progress = 100, lease_until = NULL,
       completed_at = ?2, updated_at = ",
            completed_event!("?2"),
            "
 WHERE ",
            $row,
            " AND status = 'running' AND (?4 IS NULL OR attempts = +?4) AND ",
            plain_task!()
        )
    };
}

const COMPLETE_SQL: &str = complete_plain_sql!("id = +?1");

const COMPLETE_MINE_SQL: &str = complete_plain_sql!(mine!());

// A task with no workflow links that counts toward its queue's limit
// (flags 64; claimed from a limited queue by this connection): completed in
// one statement too, which gives the flag up.
const COMPLETE_LIMITED_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'completed', result = ?3, progress = 100, lease_until = NULL,
       completed_at = ?2, flags = flags & ~64, updated_at = ",
    completed_event!("?2"),
    "
 WHERE ",
    mine!(),
    " AND status = 'running' AND (?4 IS NULL OR attempts = +?4)
   AND parent_id IS NULL AND children = 0 AND dependents = 0 AND unique_key IS NULL"
);

// A task with unfinished children is not completed: its own work is done,
// and it waits for them (`flow.rs` completes it with the last one).
macro_rules! completes_to {
    () => {
        concat!(
            "CASE WHEN ",
            waits_for_children!(),
            " THEN 'waiting' ELSE 'completed' END"
        )
    };
}

// Whether the task has unfinished children.
macro_rules! waits_for_children {
    () => {
        concat!("(", children_open!("task_store"), ") > 0")
    };
}

// Any running task completed (to `waiting` if its children have not all
// finished), noted for `flow::settle`; found by ?1, or by its row ?5 too.
macro_rules! complete_linked_sql {
    ($row:expr) => {
        concat!(
            "UPDATE main.task_store
   SET status = ",
            completes_to!(),
            ",
       result = ?3, progress = 100, lease_until = NULL,
       completed_at = CASE WHEN ",
            waits_for_children!(),
            " THEN NULL ELSE ?2 END,
       flags = CASE WHEN ",
            waits_for_children!(),
            " THEN flags | 8
                    ELSE (",
            flags_completed!(),
            ") | 8 END,
       updated_at = ",
            completed_event!(
                concat!("task__note(?2, ", finished_note!(completes_to!()), ")"),
                concat!(
                    "CASE WHEN ",
                    waits_for_children!(),
                    " THEN ",
                    kind!(waiting),
                    " ELSE ",
                    kind!(completed),
                    " END"
                ),
                completes_to!()
            ),
            "
 WHERE ",
            $row,
            " AND status = 'running' AND (?4 IS NULL OR attempts = +?4)"
        )
    };
}

const COMPLETE_LINKED_SQL: &str = complete_linked_sql!("id = +?1");

const COMPLETE_LINKED_MINE_SQL: &str = complete_linked_sql!(mine!());

// A child with no children, dependents or unique key: completed (its own
// work and all), as COMPLETE_LINKED_SQL would, in a statement that notes
// nothing; its parent is told by the caller (`flow::leaf_completed`).
const COMPLETE_LEAF_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'completed', result = ?3, progress = 100, lease_until = NULL,
       completed_at = ?2, flags = (",
    flags_completed!(),
    ") | 8, updated_at = ",
    completed_event!("?2"),
    "
 WHERE ",
    mine!(),
    " AND status = 'running' AND (?4 IS NULL OR attempts = +?4)
   AND parent_id IS NOT NULL AND children = 0 AND dependents = 0 AND unique_key IS NULL"
);

/// Marks a running task completed with an optional JSON result. Returns
/// `completed`, or `waiting` for a task whose children have not all
/// finished: it completes with the last of them.
pub fn complete(q: &Queue, id: &str, result: Option<&str>, w: &WorkerArgs) -> Result<Status> {
    let id = parse_id("id", id)?;
    if let Some(r) = result {
        check_json("result", r)?;
    }
    let attempt = check_attempt(w.attempt)?;
    let now = clock(w.now)?;
    let bind = |sql: &'static str, seq: Option<i64>| -> Result<crate::ffi::Stmt> {
        let mut st = q.prepare(sql)?;
        st.bind_text(1, &id)?;
        st.bind_i64(2, now)?;
        st.bind_opt_text(3, result)?;
        st.bind_opt_i64(4, attempt)?;
        if let Some(seq) = seq {
            st.bind_i64(5, seq)?;
        }
        Ok(st)
    };
    // Runs a completion that notes nothing: whether it completed the task.
    let completed = |sql: &'static str, seq: Option<i64>| -> Result<bool> {
        bind(sql, seq)?.finish()?;
        let done = q.conn().changes() == 1;
        if done {
            writeback::take(q.key(), &id);
        }
        Ok(done)
    };
    // A task this connection claimed is found by its row; one claimed as in
    // a workflow skips the plain statement, which could not match it; one
    // that only counts toward its queue's limit completes in one statement
    // that also clears its flag.
    let mine = q.take_claimed(&id);
    let plain = match &mine {
        None => Some((COMPLETE_SQL, None)),
        Some((seq, Link::Plain)) => Some((COMPLETE_MINE_SQL, Some(*seq))),
        Some((seq, Link::LimitedOnly)) => Some((COMPLETE_LIMITED_SQL, Some(*seq))),
        Some(_) => None,
    };
    if let Some((sql, seq)) = plain
        && completed(sql, seq)?
    {
        return Ok(Status::Completed);
    }
    // In a workflow, or not to be completed (then nothing matches and the
    // refusal says why).
    atomically(q, || {
        // A leaf child as its claim saw it: completed by a statement that
        // notes nothing (its parent is known), unless it has children,
        // dependents or a unique key by now.
        if let Some((seq, Link::Leaf { parent })) = &mine
            && completed(COMPLETE_LEAF_SQL, Some(*seq))?
        {
            flow::leaf_completed(q, parent, &id, now)?;
            return Ok(Status::Completed);
        }
        let noted = by_row_or_id(
            mine.as_ref().map(|(seq, _)| *seq),
            (COMPLETE_LINKED_MINE_SQL, COMPLETE_LINKED_SQL),
            |sql, seq| q.notes().first::<Finished>(bind(sql, seq)?),
        )?;
        let Some(t) = noted else {
            return Err(not_running(q, &id, attempt));
        };
        writeback::take(q.key(), &id);
        let status = t.status;
        if status == Status::Completed {
            flow::settle(q, vec![t], now)?;
        }
        Ok(status)
    })
}

// Retry or fail for good. The backoff is exponential in the attempt number
// (base · 2^(attempt-1), capped) times a jitter factor in [0.5, 1] drawn in
// Rust, so workers that fail together do not retry together. The base and
// the cap are the task's queue's (task_queue), else ?7 and ?8. They and the
// queue's events level are read from its settings row once
// (`queue_settings!`), by the row-value subquery that sets run_at and
// updated_at, where a subquery per setting made three seeks.
macro_rules! fail_sql {
    ($row:expr, $flags:expr, $note:expr, $where:expr) => {
        concat!(
            "UPDATE main.task_store
   SET status = CASE WHEN ?5 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
       completed_at = CASE WHEN ?5 OR attempts >= max_attempts THEN ?2 ELSE NULL END,
       worker = CASE WHEN ?5 OR attempts >= max_attempts THEN worker ELSE NULL END,
       error = ?3, lease_until = NULL, progress = coalesce(?10, progress),",
            $flags,
            "
       (run_at, updated_at) = (SELECT
            CASE WHEN ?5 OR attempts >= max_attempts THEN run_at
                 ELSE ?2 + coalesce(?6, CAST(min(coalesce(max(lv_backoff), ?7)
                                                 * (1 << min(attempts - 1, 40)),
                                                 coalesce(max(lv_backoff_max), ?8))
                                             * ?9 AS INTEGER)) END,
            ",
            event!(
                level = "max(lv_events)";
                concat!("task__note(?2, ", $note, ")"),
                kind!(failed),
                "id",
                fails_to!(),
                "attempts",
                "worker",
                "?3",
                "?10"
            ),
            "
          FROM ",
            queue_settings!(
                "s.backoff_ms AS lv_backoff, s.backoff_max_ms AS lv_backoff_max,
                       s.events AS lv_events"
            ),
            ")
 WHERE ",
            $row,
            " AND status = 'running' AND (?4 IS NULL OR attempts = +?4)",
            $where
        )
    };
}

macro_rules! fails_to {
    () => {
        "CASE WHEN ?5 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END"
    };
}

// A plain task's failure, found by ?1, or by its row ?11 too.
macro_rules! fail_plain_sql {
    ($row:expr) => {
        fail_sql!($row, "", fails_to!(), concat!(" AND ", plain_task!()))
    };
}

const FAIL_SQL: &str = fail_plain_sql!("id = +?1");
const FAIL_MINE_SQL: &str = fail_plain_sql!(mine!("?11"));

// A task in a workflow that fails for good gives up its flags 16, 32 and
// 64; a child that goes back to its queue with progress stays in the
// rollup; a task back in its queue no longer counts toward its limit (64).
macro_rules! fail_linked_sql {
    ($row:expr) => {
        fail_sql!(
            $row,
            concat!(
                "
       flags = CASE WHEN ?5 OR attempts >= max_attempts THEN ",
                flags_ended!(),
                "
                    WHEN parent_id IS NOT NULL AND coalesce(?10, progress) > 0
                    THEN (flags | 16) & ~64
                    ELSE flags & ~64 END,"
            ),
            finished_note!(fails_to!()),
            ""
        )
    };
}

const FAIL_LINKED_SQL: &str = fail_linked_sql!("id = +?1");
const FAIL_LINKED_MINE_SQL: &str = fail_linked_sql!(mine!("?11"));

/// What FAIL_SQL notes: the status the task is left in.
struct FailNote(Status);

impl Note for FailNote {
    const WHAT: &'static str = "fail";

    fn read(values: Vec<Owned>) -> Result<Self> {
        let [status] = fields::<Self, 1>(values)?;
        status
            .into_text()
            .as_deref()
            .and_then(Status::parse)
            .map(FailNote)
            .ok_or_else(|| Error::new("internal: bad fail note"))
    }
}

/// Fails the current attempt. Returns `queued` when the task will be retried,
/// `failed` when it has no attempts left (or `retry` is false).
pub fn fail(q: &Queue, id: &str, error: &str, f: &FailArgs) -> Result<Status> {
    q.forget_heads();
    let id = parse_id("id", id)?;
    let attempt = check_attempt(f.worker.attempt)?;
    let now = clock(f.worker.now)?;
    let delay = check_opt("delay", f.delay_ms, (0, MAX_TIME_MS - now))?;
    let jitter = jitter();
    let bind = |sql: &'static str, seq: Option<i64>| -> Result<crate::ffi::Stmt> {
        let mut st = q.prepare(sql)?;
        st.bind_text(1, &id)?;
        st.bind_i64(2, now)?;
        st.bind_text(3, error)?;
        st.bind_opt_i64(4, attempt)?;
        st.bind_i64(5, i64::from(!f.retry))?;
        st.bind_opt_i64(6, delay)?;
        st.bind_i64(7, BACKOFF_BASE_MS)?;
        st.bind_i64(8, BACKOFF_CAP_MS)?;
        st.bind_f64(9, jitter)?;
        match writeback::get(q.key(), &id) {
            Some(h) if attempt.is_none_or(|a| a == h.attempt) => st.bind_f64(10, h.percent)?,
            _ => st.bind_null(10)?,
        }
        if let Some(seq) = seq {
            st.bind_i64(11, seq)?;
        }
        Ok(st)
    };
    // As in `complete`: by its row if this connection claimed it, and the
    // plain statement unless it was claimed as in a workflow.
    let mine = q.take_claimed(&id);
    let seq = mine.as_ref().map(|(seq, _)| *seq);
    if matches!(mine, None | Some((_, Link::Plain))) {
        let sql = if seq.is_some() {
            FAIL_MINE_SQL
        } else {
            FAIL_SQL
        };
        if let Some(FailNote(status)) = q.notes().first::<FailNote>(bind(sql, seq)?)? {
            writeback::take(q.key(), &id);
            return Ok(status);
        }
    }
    atomically(q, || {
        let noted = by_row_or_id(seq, (FAIL_LINKED_MINE_SQL, FAIL_LINKED_SQL), |sql, seq| {
            q.notes().first::<Finished>(bind(sql, seq)?)
        })?;
        let Some(t) = noted else {
            return Err(not_running(q, &id, attempt));
        };
        writeback::take(q.key(), &id);
        let status = t.status;
        if status == Status::Failed {
            flow::settle(q, vec![t], now)?;
        }
        Ok(status)
    })
}

/// Runs `run` with the statement(s) `by_row` and the row `seq`, when this
/// connection knows the task's row, and with `by_id` and no row when it does
/// not or when that found nothing: the row is only a hint (the task may have
/// been deleted, and its id given to a task in another row).
fn by_row_or_id<S, T>(
    seq: Option<i64>,
    (by_row, by_id): (S, S),
    mut run: impl FnMut(S, Option<i64>) -> Result<Option<T>>,
) -> Result<Option<T>> {
    if seq.is_some()
        && let Some(found) = run(by_row, seq)?
    {
        return Ok(Some(found));
    }
    run(by_id, None)
}

/// A factor in [0.5, 1.0] from SQLite's PRNG.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    randomness(&mut b);
    0.5 + 0.5 * (f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
}
