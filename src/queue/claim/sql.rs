//! The claim's SQL: the one UPDATE (in five variants) that claims, the
//! reads the plan makes before it, and the note each claimed row reports.
//!
//! The UPDATE claims by re-selecting its rows inside the statement: a
//! running task whose lease has expired (oldest expiry first: abandoned work
//! is reclaimed before new work), or else the head of the chosen queue's
//! ready index (priority, then run_at, then enqueue order). So two workers
//! that read the same head both claim something: the loser gets the next
//! one. An expired task with no attempts left is failed by the same UPDATE
//! (the CASEs) instead of being claimed; the caller then claims again.
//!
//! The SQL avoids anything that needs a temporary b-tree (IN-lists, ORDER BY
//! over a compound, recursive CTEs, RETURNING) on the single-task path: each
//! one costs a page-cache allocation per call, measured at ~100 µs. And the
//! bound values compared in WHERE clauses are written `+?N`: a plain `?N`
//! compared with an indexed column lets SQLite's planner look at the bound
//! value when matching partial indexes, which marks the statement to be
//! re-prepared every time that parameter is bound again (measured: 35 µs vs
//! 4.5 µs per claim on a SQLITE_ENABLE_STAT4 build). The unary plus keeps the
//! index usable and the plan fixed. The same holds for a bound LIMIT inside
//! an IN (subquery): `LIMIT +?5` (measured: 86 µs vs 38 µs per batch).
//!
//! Parameters of every claim UPDATE: ?1 now, ?2 worker, ?3 lease (ms; NULL:
//! the queue's default),
//! ?4 queue (NULL: any), ?5 batch limit (batch variants only).

use super::Claimed;
use crate::error::Result;
use crate::ffi::Owned;
use crate::queue::notes::{Note, fields};

/// What the claim UPDATE notes for each row it changes: how the row was
/// taken (see [`How`]), the claimed task's fields in [`Claimed`]'s order,
/// then whether it takes the workflow path (not a plain task: see
/// `plain_task!`). [`ClaimNote::read`] below reads them
/// back, in this order.
macro_rules! claim_note {
    () => {
        claim_note!(concat!(
            "CASE WHEN ",
            in_workflow!(),
            " THEN ",
            workflow_link!(),
            " WHEN flags & 64 THEN 2 ELSE 0 END"
        ))
    };
    ($linked:expr) => {
        concat!(
            "task__note(?1,
                      CASE WHEN status = 'running' AND attempts >= max_attempts THEN 2
                           WHEN status = 'running' THEN 1 ELSE 0 END,
                      id, queue, type, details, attempts + 1, max_attempts, priority,
                      parent_id, run_at, ?1 + ",
            lease!(),
            ", created_at,
                      ",
            $linked,
            ", seq)"
        )
    };
}

/// The lease a claim gives: ?3 as the claim gave it, else the claimed
/// task's queue's default, else the built-in one (`DEFAULT_LEASE_MS`).
/// Read from the queue's settings (`lv_lease`) in the subquery that sets
/// the lease and writes the note and the event.
macro_rules! lease {
    () => {
        "coalesce(?3, max(lv_lease), 300000)"
    };
}

/// A task in a workflow: its verbs take the workflow path.
macro_rules! in_workflow {
    () => {
        "parent_id IS NOT NULL OR children <> 0 OR dependents <> 0 OR unique_key IS NOT NULL"
    };
}

/// The linked value of a task in a workflow: a leaf child (3: a parent, no
/// children, dependents or unique key), else 1.
macro_rules! workflow_link {
    () => {
        "(CASE WHEN parent_id IS NOT NULL AND children = 0 AND dependents = 0
                    AND unique_key IS NULL THEN 3 ELSE 1 END)"
    };
}

/// The linked value of a gated claim's note: in a workflow (1 or 3), or
/// only counting toward the limit (2).
macro_rules! gated_linked {
    () => {
        concat!(
            "CASE WHEN ",
            in_workflow!(),
            " THEN ",
            workflow_link!(),
            " ELSE 2 END"
        )
    };
}

/// The condition, in SQL, that the queue named by `$queue` has no gate
/// (it is neither paused nor limited, by concurrency or rate): one seek by name in
/// `task_queue_store`, a table of one page while few queues have settings.
macro_rules! ungated {
    ($queue:expr) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM main.task_queue_store AS g WHERE g.name = ",
            $queue,
            " AND (g.paused OR g.concurrency IS NOT NULL OR g.rate_limit IS NOT NULL))"
        )
    };
}

/// How a claim UPDATE took a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A queued task, claimed.
    Queued,
    /// A running task whose lease expired, claimed as a new attempt.
    Expired,
    /// An expired task with no attempts left, failed instead of claimed.
    Reaped,
}

/// One row noted by a claim UPDATE.
pub struct ClaimNote {
    pub how: How,
    pub task: Claimed,
    /// 0: a plain task; 1: it has a parent, children, dependents or a
    /// unique key; 2: none of those, but it counts toward its queue's
    /// concurrency limit (flags 64); 3: a leaf child, a parent and none of
    /// the others (its completion has one statement of its own).
    pub linked: i64,
    /// The claimed task's row (rowid), for a completion that seeks it by
    /// rowid rather than through the id index.
    pub seq: i64,
}

impl Note for ClaimNote {
    const WHAT: &'static str = "claim";

    fn read(values: Vec<Owned>) -> Result<Self> {
        let [
            how_noted,
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
            linked,
            seq,
        ] = fields::<Self, 14>(values)?;
        let how = match how_noted.int() {
            0 => How::Queued,
            1 => How::Expired,
            _ => How::Reaped,
        };
        Ok(ClaimNote {
            how,
            task: Claimed {
                id: id.into_text().unwrap_or_default(),
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
                reclaimed: how == How::Expired,
            },
            linked: linked.int(),
            seq: seq.int(),
        })
    }
}

macro_rules! claim_sql {
    ($where:expr) => {
        claim_sql!("", claim_note!(), $where)
    };
    ($flags:expr, $note:expr, $where:expr) => {
        concat!(
            "UPDATE main.task_store SET",
            $flags,
            "
  status       = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN 'failed' ELSE 'running' END,
  error        = CASE WHEN status = 'running'
                      THEN 'lease expired on attempt ' || attempts
                           || ' (worker ' || ifnull(worker, '?') || ')'
                      ELSE error END,
  completed_at = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN ?1 ELSE NULL END,
  worker       = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN worker ELSE ?2 END,
  started_at   = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN started_at ELSE ?1 END,
  progress     = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN progress ELSE 0 END,
  attempts     = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN attempts ELSE attempts + 1 END,
  (lease_until, lease_ms, updated_at) = (SELECT
       CASE WHEN status = 'running' AND attempts >= max_attempts
            THEN NULL ELSE ?1 + ",
            lease!(),
            " END,
       CASE WHEN status = 'running' AND attempts >= max_attempts
            THEN lease_ms ELSE ",
            lease!(),
            " END,
       ",
            event!(
                level = "max(lv_events)";
                $note,
                concat!(
                    "CASE WHEN status = 'queued' THEN ",
                    kind!(claimed),
                    " WHEN attempts >= max_attempts THEN ",
                    kind!(expired),
                    " ELSE ",
                    kind!(reclaimed),
                    " END"
                ),
                "id",
                "CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN 'failed' ELSE 'running' END",
                "CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN attempts ELSE attempts + 1 END",
                "CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN worker ELSE ?2 END",
                "CASE WHEN status = 'running'
                      THEN 'lease expired on attempt ' || attempts
                           || ' (worker ' || ifnull(worker, '?') || ')' END",
                "NULL"
            ),
            "
     FROM ",
            queue_settings!("s.lease_ms AS lv_lease, s.events AS lv_events"),
            ")
WHERE ",
            $where
        )
    };
}

// Expired tasks a claim may take: any with attempts left, and the plain
// ones with none left, which the UPDATE fails (reaps) instead. A task in a
// workflow with no attempts left is failed by `reap_linked` (its parent
// and dependents must follow in the same transaction). A gated queue's
// (paused or limited) are left to the gated statements below.
macro_rules! expired_sql {
    ($queue_filter:literal, $limit:literal) => {
        concat!(
            "SELECT seq FROM main.task_store
      WHERE status = 'running' AND lease_until <= +?1",
            $queue_filter,
            " AND (attempts < max_attempts OR (",
            plain_task!(),
            ")) AND ",
            ungated!("task_store.queue"),
            " ORDER BY lease_until LIMIT ",
            $limit
        )
    };
}

// Queue ?4's head: its ready tasks (run_at <= ?1) in claim order, priority
// then run_at. `run_at <= ?1 ORDER BY priority DESC, run_at` alone steps
// over every delayed task that comes before a ready one, and after the
// last ready one of a priority (retries backing off), while the claim
// holds the write lock. So the queue's first task in claim order is read
// (one seek) and, only when it is delayed, the priorities below it are
// looked at one by one (two seeks each) for the first with a ready task;
// a priority's ready tasks are then read as a range of the ready index
// that ends at its first delayed task. SQLite runs a subquery in a CASE
// branch only when the branch is taken, a recursive CTE row by row, and
// the arms of a UNION ALL under a LIMIT only until the LIMIT is reached.

/// The condition of queue ?4's ready tasks at priority `$p` (a range of
/// the ready index, which ends at the priority's first delayed task).
macro_rules! ready_in {
    ($p:expr) => {
        concat!(
            "status = 'queued' AND queue = +?4 AND priority = ",
            $p,
            " AND run_at <= +?1"
        )
    };
}

/// The highest priority below `$p` among queue ?4's queued tasks, or
/// NULL: one seek.
macro_rules! priority_below {
    ($p:expr) => {
        concat!(
            "(SELECT priority FROM main.task_store
                    WHERE status = 'queued' AND queue = +?4 AND priority < ",
            $p,
            "
                    ORDER BY priority DESC LIMIT 1)"
        )
    };
}

/// `pr(p)`: the priorities of queue ?4's queued tasks below `$p`, highest
/// first, one seek each, and a NULL after the last.
macro_rules! priorities_below {
    ($p:expr) => {
        concat!(
            "WITH RECURSIVE pr(p) AS (
           SELECT ",
            priority_below!($p),
            "
           UNION ALL
           SELECT ",
            priority_below!("pr.p"),
            "
             FROM pr WHERE pr.p IS NOT NULL)"
        )
    };
}

/// The highest priority below `$p` among queue ?4's queued tasks that has
/// a ready task, or NULL: the priorities, highest first, each looked at
/// until one has a ready task.
macro_rules! ready_priority_below {
    ($p:expr) => {
        concat!(
            "(",
            priorities_below!($p),
            "
         SELECT p FROM pr
          WHERE p IS NULL OR EXISTS (SELECT 1 FROM main.task_store WHERE ",
            ready_in!("pr.p"),
            ")
          LIMIT 1)"
        )
    };
}

/// The first task of queue `$queue` in claim order, ready or not, as `f`:
/// one seek (the FROM onward of its SELECT).
macro_rules! first_queued {
    ($queue:expr) => {
        concat!(
            " FROM main.task_store AS f
      WHERE f.status = 'queued' AND f.queue = ",
            $queue,
            "
      ORDER BY f.priority DESC, f.run_at LIMIT 1"
        )
    };
}

/// The ready tasks of queue ?4 at priority `$p`, earliest first: a range
/// of the ready index.
macro_rules! ready_at {
    ($p:expr) => {
        concat!(
            "SELECT seq FROM main.task_store
      WHERE ",
            ready_in!($p),
            "
      ORDER BY run_at"
        )
    };
}

/// The head: the seq of queue ?4's first ready task in claim order.
macro_rules! head_one_sql {
    () => {
        concat!(
            "SELECT CASE WHEN f.run_at <= +?1 THEN f.seq ELSE (",
            ready_at!(ready_priority_below!("f.priority")),
            " LIMIT 1) END",
            first_queued!("+?4")
        )
    };
}

/// The highest priority of queue ?4 with a ready task (NULL: none ready).
macro_rules! top_ready_priority {
    () => {
        concat!(
            "(SELECT CASE WHEN f.run_at <= +?1 THEN f.priority ELSE ",
            ready_priority_below!("f.priority"),
            " END",
            first_queued!("+?4"),
            ")"
        )
    };
}

/// The ready tasks of queue ?4 at the priorities below `$p`, in claim
/// order: the priorities, highest first (one seek each, into a temporary
/// table), each joined as the outer loop (CROSS JOIN keeps it outside) to
/// its range of ready tasks, which ends at its first delayed task.
macro_rules! ready_below {
    ($p:expr) => {
        concat!(
            priorities_below!($p),
            "
         SELECT seq FROM pr CROSS JOIN main.task_store WHERE ",
            ready_in!("pr.p")
        )
    };
}

/// Up to ?5 ready tasks of queue ?4 in claim order: its highest priority
/// with ready tasks, read as a range, then the lower priorities' one by one
/// (`ready_below!`: only a batch that empties the first runs it, and it pays
/// for the temporary table then).
macro_rules! head_batch_sql {
    () => {
        concat!(
            "SELECT seq FROM (",
            ready_at!(top_ready_priority!()),
            " LIMIT +?5)
     UNION ALL SELECT seq FROM (",
            ready_below!(top_ready_priority!()),
            " LIMIT +?5)"
        )
    };
}

/// One task of queue ?4: `seq = coalesce(expired, head)`, two index seeks,
/// no temp b-tree. Expired tasks of other queues are only reaped here.
/// Every plain statement ends with the gate check of the row it takes: a
/// queue paused or limited since the plan read it (or since the hint) is
/// not claimed from here; the claim then plans again.
pub const CLAIM_ONE_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!(" AND (queue = +?4 OR attempts >= max_attempts)", "1"),
    "), (",
    head_one_sql!(),
    ")) AND ",
    ungated!("task_store.queue")
));

/// One task: any queue's expired task, else queue ?4's head.
pub const CLAIM_ONE_ANY_EXPIRED_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!("", "1"),
    "), (",
    head_one_sql!(),
    ")) AND ",
    ungated!("task_store.queue")
));

/// The guard of a claim that assumes queue ?4 is the only one with queued
/// tasks: it re-checks that inside the statement, with two seeks.
macro_rules! sole_guard {
    () => {
        "
  AND NOT EXISTS (SELECT 1 FROM main.task_store WHERE status = 'queued' AND queue < +?4)
  AND NOT EXISTS (SELECT 1 FROM main.task_store WHERE status = 'queued' AND queue > +?4)"
    };
}

/// Every-queue claim when queue ?4 is known to be the only one with queued
/// tasks: the guard re-checks that inside the statement, so a busy worker
/// claims with one write statement and no reads first.
pub const CLAIM_SOLE_SQL: &str = claim_sql!(concat!(
    "seq = coalesce((",
    expired_sql!("", "1"),
    "), (",
    head_one_sql!(),
    "))",
    sole_guard!(),
    " AND ",
    ungated!("task_store.queue")
));

/// A batch: up to ?5 tasks, expired first, then queue ?4's head in order.
/// The IN-list costs one temporary b-tree per batch, not per task.
pub const CLAIM_BATCH_SQL: &str = claim_sql!(concat!(
    "seq IN (SELECT seq FROM (",
    expired_sql!(" AND (queue = +?4 OR attempts >= max_attempts)", "+?5"),
    ") UNION ALL SELECT seq FROM (",
    head_batch_sql!(),
    ") LIMIT +?5) AND ",
    ungated!("task_store.queue")
));

/// A batch: any queue's expired tasks first, then queue ?4's head.
pub const CLAIM_BATCH_ANY_EXPIRED_SQL: &str = claim_sql!(concat!(
    "seq IN (SELECT seq FROM (",
    expired_sql!("", "+?5"),
    ") UNION ALL SELECT seq FROM (",
    head_batch_sql!(),
    ") LIMIT +?5) AND ",
    ungated!("task_store.queue")
));

// The gated statements: queue ?4 is paused or limited (the plan read it).
// They re-check the gate inside the statement, which holds the write lock,
// so a pause or a limit is exact across connections and processes: a
// paused queue gives nothing (its expired leases wait too), and a limited
// one never has more than `concurrency` tasks running. A claimed task gets
// flags 64 (it counts toward the limit while it runs; the running count
// reads `task_store_unique`, partial on flags 32 or 64); reclaiming an expired lease keeps the
// count as it was, so it is not limited.

/// Queue ?4 is not paused.
macro_rules! not_paused {
    () => {
        "NOT coalesce((SELECT paused FROM main.task_queue_store WHERE name = +?4), 0)"
    };
}

/// How many tasks of queue `$queue` count toward its limit now: its running
/// tasks with flags 64, a range of `task_store_unique` (partial on 96).
macro_rules! counted_running {
    ($queue:literal) => {
        concat!(
            "(SELECT count(*) FROM main.task_store AS r
              WHERE r.queue = ",
            $queue,
            " AND r.flags & 96 AND r.flags & 64 AND r.status = 'running')"
        )
    };
}

/// Free slots of queue ?4: its limit (or, with none, more than any batch)
/// minus its tasks that count toward it.
macro_rules! free_slots {
    () => {
        concat!(
            "(coalesce((SELECT concurrency FROM main.task_queue_store WHERE name = +?4), 1 << 40)
          - ",
            counted_running!("+?4"),
            ")"
        )
    };
}

/// The gated statements' SET of flags: a reaped (failed) row loses the bit,
/// a claimed one has it.
macro_rules! gated_flags {
    () => {
        "
  flags        = CASE WHEN status = 'running' AND attempts >= max_attempts
                      THEN flags & ~64 ELSE flags | 64 END,"
    };
}

/// The expired leases of queue `$queue` (bound as `+?N`) that a gated
/// claim takes (or reaps), oldest first.
macro_rules! expired_of_queue {
    ($queue:literal, $limit:literal) => {
        concat!(
            "SELECT seq FROM main.task_store
      WHERE status = 'running' AND lease_until <= +?1 AND queue = ",
            $queue,
            "
        AND (attempts < max_attempts OR (",
            plain_task!(),
            ")) ORDER BY lease_until LIMIT ",
            $limit
        )
    };
}

/// The WHERE of a single gated claim: queue ?4's oldest expired lease or
/// its head, if the queue is not paused and (for a queued task) has a free
/// slot.
macro_rules! gated_one_where {
    () => {
        concat!(
            "seq = coalesce((",
            expired_of_queue!("+?4", "1"),
            "), (",
            head_one_sql!(),
            ")) AND ",
            not_paused!(),
            " AND (status = 'running' OR ",
            free_slots!(),
            " > 0)"
        )
    };
}

/// One task of gated queue ?4, if it is not paused and (for a queued task)
/// has a free slot.
pub const CLAIM_GATED_ONE_SQL: &str = claim_sql!(
    gated_flags!(),
    claim_note!(gated_linked!()),
    gated_one_where!()
);

/// As CLAIM_GATED_ONE, when queue ?4 is known to be the only one with
/// queued tasks (an every-queue claim's hint): guarded as CLAIM_SOLE is.
pub const CLAIM_GATED_SOLE_SQL: &str = claim_sql!(
    gated_flags!(),
    claim_note!(gated_linked!()),
    concat!(gated_one_where!(), sole_guard!())
);

/// Up to ?5 tasks of gated queue ?4, no more than its free slots.
pub const CLAIM_GATED_BATCH_SQL: &str = claim_sql!(
    gated_flags!(),
    claim_note!(gated_linked!()),
    concat!(
        "seq IN (SELECT seq FROM (",
        expired_of_queue!("+?4", "+?5"),
        ") UNION ALL SELECT seq FROM (",
        head_batch_sql!(),
        ") LIMIT max(0, min(+?5, ",
        free_slots!(),
        "))) AND ",
        not_paused!()
    )
);

// The plan's reads. None takes the write lock.

/// The next queue name after `?1` among queued tasks, with its first task
/// in claim order, ready or not (the highest priority, that priority's
/// earliest run_at, its seq), and 1 if the queue is gated: one seek in the
/// ready index. If that task is ready it is the queue's head.
pub const NEXT_QUEUE_SQL: &str = "\
SELECT q.queue, q.priority, q.run_at, q.seq,
       (SELECT 1 FROM main.task_queue_store AS g
         WHERE g.name = q.queue
           AND (g.paused OR g.concurrency IS NOT NULL OR g.rate_limit IS NOT NULL))
  FROM (SELECT queue, priority, run_at, seq FROM main.task_store
         WHERE status = 'queued' AND queue > +?1
         ORDER BY queue, priority DESC, run_at LIMIT 1) AS q";

/// Queue ?1's first queued task in claim order, ready or not.
pub const TOP_OF_SQL: &str = concat!("SELECT f.priority, f.run_at, f.seq", first_queued!("+?1"));

/// Queue ?1's next priority below ?2 that has queued tasks, with its first
/// task ready at ?3 (run_at, seq; NULLs: none is ready yet) and its
/// earliest run_at after ?3 (NULL: none is delayed): three seeks. A head is
/// found priority by priority, so that delayed tasks of a priority are not
/// stepped over one by one (`run_at <= ?3 ORDER BY priority DESC, run_at`
/// over the whole queue cannot stop at a priority's first delayed task).
pub const PRIORITY_SQL: &str = "\
SELECT g.priority, h.run_at, h.seq,
       (SELECT f.run_at FROM main.task_store AS f
         WHERE f.status = 'queued' AND f.queue = +?1 AND f.priority = g.priority
           AND f.run_at > +?3
         ORDER BY f.run_at LIMIT 1)
  FROM (SELECT priority FROM main.task_store
         WHERE status = 'queued' AND queue = +?1 AND priority < +?2
         ORDER BY priority DESC LIMIT 1) AS g
  LEFT JOIN main.task_store AS h ON h.seq = (
       SELECT seq FROM main.task_store
        WHERE status = 'queued' AND queue = +?1 AND priority = g.priority AND run_at <= +?3
        ORDER BY run_at LIMIT 1)";

pub const EXPIRED_ANY_SQL: &str = concat!(
    "SELECT 1 FROM main.task_store WHERE status = 'running' AND lease_until <= +?1
   AND (attempts < max_attempts OR (",
    plain_task!(),
    ")) AND ",
    ungated!("task_store.queue"),
    " LIMIT 1"
);

/// Expired tasks this claim may take (its queue's), or must reap (any queue's
/// with no attempts left: a queue nobody claims from must not keep a dead
/// task 'running' forever).
pub const EXPIRED_IN_SQL: &str = concat!(
    "SELECT 1 FROM main.task_store
 WHERE status = 'running' AND lease_until <= +?1 AND (queue = +?2 OR attempts >= max_attempts)
   AND (attempts < max_attempts OR (",
    plain_task!(),
    ")) AND ",
    ungated!("task_store.queue"),
    " LIMIT 1"
);

/// The oldest expired task in a workflow with no attempts left: failed by
/// `reap_linked`, with its parent and dependents.
pub const EXPIRED_LINKED_SQL: &str = concat!(
    "SELECT seq FROM main.task_store
 WHERE status = 'running' AND lease_until <= +?1 AND attempts >= max_attempts
   AND NOT (",
    plain_task!(),
    ") ORDER BY lease_until LIMIT 1"
);

/// Fails an expired task in a workflow, as the claim UPDATE fails a plain one.
pub const REAP_LINKED_SQL: &str = concat!(
    "UPDATE main.task_store
   SET status = 'failed',
       error = 'lease expired on attempt ' || attempts || ' (worker ' || ifnull(worker, '?') || ')',
       completed_at = ?1, lease_until = NULL, flags = ",
    flags_ended!(),
    ",
       updated_at = ",
    event!(
        concat!(
            "task__note(?1, ",
            crate::queue::flow::finished_note!("'failed'"),
            ")"
        ),
        "queue",
        kind!(expired),
        "'failed'",
        "attempts",
        "worker",
        "'lease expired on attempt ' || attempts || ' (worker ' || ifnull(worker, '?') || ')'",
        "NULL"
    ),
    "
 WHERE seq = +?2 AND status = 'running' AND lease_until <= +?1 AND attempts >= max_attempts"
);

/// The queue of the oldest expired lease that can still be claimed (by
/// the plain statements: not a gated queue's).
pub const OLDEST_EXPIRED_QUEUE_SQL: &str = concat!(
    "SELECT queue FROM main.task_store
 WHERE status = 'running' AND lease_until <= +?1 AND attempts < max_attempts AND ",
    ungated!("task_store.queue"),
    " ORDER BY lease_until LIMIT 1"
);

/// An expired lease of queue ?2 that a gated claim may take (or reap).
pub const EXPIRED_OF_QUEUE_SQL: &str = expired_of_queue!("+?2", "1");

/// Queue ?1's gate, if it has one: paused, its limit, how many of its
/// tasks count toward the limit now, and whether its rate limit is spent
/// at ?2.
pub const GATE_SQL: &str = concat!(
    "SELECT paused, concurrency, ",
    counted_running!("+?1"),
    ", rate_limit <= (SELECT coalesce(sum(r.n), 0) FROM main.task_rate_store AS r
                      WHERE r.queue = +?1 AND r.at > +?2 - rate_interval_ms)
  FROM main.task_queue_store
 WHERE name = +?1 AND (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_has_as_many_values_as_its_reader_takes() {
        // The first argument is what task__note returns (updated_at); the
        // rest are noted and read back by ClaimNote::read.
        // The lease's expression is one argument: counted as a word.
        let call = claim_note!().replace(lease!(), "lease");
        let args = call["task__note(".len()..call.len() - 1]
            .split(',')
            .filter(|a| !a.contains("WHEN") || a.contains("CASE"))
            .count();
        assert_eq!(args, 1 + 14, "{call}");
        let values = (0..14).map(Owned::Integer).collect();
        assert!(ClaimNote::read(values).is_ok());
        assert!(ClaimNote::read(vec![Owned::Null; 13]).is_err());
    }

    #[test]
    fn the_sql_default_lease_is_the_built_in_one() {
        let built_in = crate::queue::model::DEFAULT_LEASE_MS;
        assert!(
            lease!().ends_with(&format!(", {built_in})")),
            "{}",
            lease!()
        );
    }

    #[test]
    fn every_claim_update_reads_its_queue_s_settings_once_per_row() {
        // The lease (three uses) and the events level come from one
        // row-value subquery: its SET names task_queue_store once.
        for sql in [
            CLAIM_ONE_SQL,
            CLAIM_ONE_ANY_EXPIRED_SQL,
            CLAIM_SOLE_SQL,
            CLAIM_BATCH_SQL,
            CLAIM_BATCH_ANY_EXPIRED_SQL,
            CLAIM_GATED_ONE_SQL,
            CLAIM_GATED_SOLE_SQL,
            CLAIM_GATED_BATCH_SQL,
        ] {
            let set = &sql[..sql.find("\nWHERE ").unwrap_or(sql.len())];
            assert_eq!(set.matches("task_queue_store").count(), 1, "{set}");
            assert!(set.contains("(lease_until, lease_ms, updated_at) = (SELECT"));
            assert_eq!(set.matches(lease!()).count(), 3, "{set}");
        }
    }

    #[test]
    fn every_claim_update_notes_its_rows() {
        let single = [CLAIM_ONE_SQL, CLAIM_ONE_ANY_EXPIRED_SQL, CLAIM_SOLE_SQL];
        for sql in single {
            assert!(sql.contains(claim_note!()), "{sql}");
            // The single-task path needs no temporary b-tree: no IN.
            assert!(!sql.contains(" IN ("), "{sql}");
        }
        for sql in [CLAIM_BATCH_SQL, CLAIM_BATCH_ANY_EXPIRED_SQL] {
            assert!(sql.contains(claim_note!()), "{sql}");
        }
    }
}
