//! The storage: plain tables any SQLite client can read, and their
//! versioned migrations (the numbered `.sql` files beside this one,
//! included at build time and applied in order by `task_init()`).
//!
//! Layout decisions (measured in `make bench`; the b-trees each kind of
//! transaction writes are counted by `bench/pages.py` and held by
//! `tests/python/test_pages.py`):
//! - `seq INTEGER PRIMARY KEY` is the rowid. It gives FIFO order for free and
//!   keeps every secondary index entry small (an index entry carries the
//!   rowid, not the 36-byte UUID).
//! - The claim path reads one partial index, `task_store_ready`, holding only
//!   queued tasks in claim order. A task enters it once (enqueue, retry) and
//!   leaves it once (claim), so finished tasks cost nothing there and the
//!   claim stays O(log n) however many tasks have finished.
//! - Running tasks sit in `task_store_running`, ordered by lease expiry, so
//!   finding expired leases is one index seek. No daemon is needed: every
//!   claim reclaims what has expired.
//! - Status tests are written as OR chains, never `IN (...)`: SQLite
//!   evaluates an IN-list of three or more constants through a temporary
//!   b-tree, and the CHECK and partial-index conditions run on every write
//!   (measured: +24 µs per claim).
//! - Completed tasks are in no status index (schema version 2), so a
//!   completion, the last write of most tasks, touches the row and the
//!   running index only. Measured with WAL page counts: 5.3 frames per
//!   claim-and-complete cycle instead of 6.4, and 9.9 per batch of 32
//!   instead of 13.7 (an index appended at its right edge rebalances three
//!   pages whenever its last page fills). Failed and cancelled tasks, the
//!   ones people look for, sit in `task_store_parked` by status, type,
//!   queue and completion time: one insert when they end, never updated;
//!   since version 3 with the tasks that wait for others (blocked,
//!   waiting). A query for completed tasks reads the table.
//! - Every index a statement may move a row in costs it a cursor and a
//!   test of the index's WHERE on the old and the new row, whether the row
//!   is in it or not (measured with callgrind: about 600 instructions per
//!   index and statement, where a claim plus a completion is some 90,000).
//!   SQLite spends them only on the indexes whose columns or WHERE the
//!   statement writes. So the workflow indexes are few and partial on
//!   `flags` bits, which only the workflow path writes: one for the unique
//!   keys (32), one for the children a rollup reads (16,
//!   `task_store_busy`); a plain task's claim and completion, which write
//!   `status` and `progress`, skip both. The waiting tasks share
//!   `task_store_parked` with the failed ones.
//! - No index is keyed on type or queue for every row: each would cost a
//!   page write on every enqueue (measured: one such index cuts single
//!   enqueues by ~15%). Filters on them use the status indexes above,
//!   and for completed tasks a table scan; together they cover every row
//!   because `status` is CHECKed.
//! - Children are found through `task_store_parent`, which only holds tasks
//!   that have a parent.
//!
//! A new schema version is a new numbered file appended to [`MIGRATIONS`]
//! (never an edit of an earlier one), tested as a step from the last
//! released version. SQLite cannot alter a CHECK constraint: a new status
//! means rebuilding the table in that step.

use crate::error::{Error, NOT_INITIALIZED, Result};
use crate::ffi::Conn;
use std::rc::Rc;

/// One version's step from the one before.
struct Migration {
    sql: &'static str,
    /// The step rebuilds task_store (drops it for a copy): the triggers and
    /// views that name it are dropped before and recreated after.
    rebuilds: bool,
}

/// Each version's step, applied in order from the stored version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("001_initial.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("002_completed_leave_status_indexes.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("003_workflows.sql"),
        rebuilds: true,
    },
    Migration {
        sql: include_str!("004_queues.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("005_operations.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("006_events.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("007_queue_defaults.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("008_parent_counts.sql"),
        rebuilds: false,
    },
    Migration {
        sql: include_str!("009_queue_counts.sql"),
        rebuilds: false,
    },
];

/// The schema version this build writes and expects.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const META_DDL: &str = "CREATE TABLE IF NOT EXISTS main.task_meta (key TEXT PRIMARY KEY, value)";

/// The stored schema version: `None` when the storage does not exist.
pub fn stored_version(conn: &Rc<Conn>) -> Result<Option<i64>> {
    let mut exists = conn.prepare_once(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'task_meta'",
    )?;
    if !exists.step()? {
        return Ok(None);
    }
    drop(exists);
    let mut st =
        conn.prepare_once("SELECT value FROM main.task_meta WHERE key = 'schema_version'")?;
    if st.step()? {
        Ok(st.column_opt_i64(0))
    } else {
        Ok(None)
    }
}

/// Verifies that the storage exists at this build's version. The queue
/// calls it once per connection (`Queue::ensure_ready`), not per call.
pub fn check_version(conn: &Rc<Conn>) -> Result<()> {
    match stored_version(conn)? {
        None => Err(Error::new(NOT_INITIALIZED)),
        Some(v) if v < SCHEMA_VERSION => Err(Error::new(format!(
            "the task storage is at schema version {v}, this extension needs \
             {SCHEMA_VERSION}; run SELECT task_init() to migrate it"
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(newer(v)),
        Some(_) => Ok(()),
    }
}

fn newer(v: i64) -> Error {
    Error::new(format!(
        "the task storage is at schema version {v}, newer than this extension \
         (version {SCHEMA_VERSION}); load a newer sqlite-task"
    ))
}

// The optional index of completed tasks by queue and completion time, for
// the throughput and run-time figures of task_stats (queue/stats.rs says
// what it costs). Not part of the schema version: a database has it or not.
const DONE_INDEX_ON: &str = "CREATE INDEX IF NOT EXISTS main.task_store_done \
     ON task_store(queue, completed_at) WHERE status = 'completed'";
const DONE_INDEX_OFF: &str = "DROP INDEX IF EXISTS main.task_store_done";

/// Adds (`on`) or drops the index of completed tasks.
pub fn index_completed(conn: &Rc<Conn>, on: bool) -> Result<()> {
    let mut st = conn.prepare_once(if on { DONE_INDEX_ON } else { DONE_INDEX_OFF })?;
    st.finish()
}

// An index of the event log by task (`task_init('{"index_events": true}')`):
// `SELECT … FROM task_events WHERE task_id = ?` reads a task's events
// through it instead of scanning the log, and deleting a task deletes its
// events with it (without the index they are left for task_prune's age
// cutoff, and the task_events view no longer shows them). It costs every
// event an index entry, in a page of its own: opt-in (BENCHMARKS.md).
const EVENTS_INDEX_ON: &str = "CREATE INDEX IF NOT EXISTS main.task_event_store_task \
     ON task_event_store(task_id)";
const EVENTS_INDEX_OFF: &str = "DROP INDEX IF EXISTS main.task_event_store_task";

/// Adds (`on`) or drops the index of the event log by task.
pub fn index_events(conn: &Rc<Conn>, on: bool) -> Result<()> {
    let mut st = conn.prepare_once(if on {
        EVENTS_INDEX_ON
    } else {
        EVENTS_INDEX_OFF
    })?;
    st.finish()
}

/// Creates or migrates the storage. Idempotent; returns the schema version.
///
/// Outside a transaction it takes the write lock first (BEGIN IMMEDIATE) so
/// two processes initialising at once serialise instead of one failing with
/// SQLITE_BUSY_SNAPSHOT; inside the caller's transaction it uses a savepoint
/// so the migration commits or rolls back with the caller.
pub fn init(conn: &Rc<Conn>) -> Result<i64> {
    if stored_version(conn)? == Some(SCHEMA_VERSION) {
        return Ok(SCHEMA_VERSION);
    }
    let own_txn = conn.autocommit();
    if own_txn {
        conn.exec("BEGIN IMMEDIATE")?;
    } else {
        conn.exec("SAVEPOINT task_init")?;
    }
    let result = migrate(conn);
    match (&result, own_txn) {
        (Ok(_), true) => conn.exec("COMMIT")?,
        (Ok(_), false) => conn.exec("RELEASE task_init")?,
        (Err(_), true) => {
            let _ = conn.exec("ROLLBACK");
        }
        (Err(_), false) => {
            let _ = conn.exec("ROLLBACK TO task_init; RELEASE task_init");
        }
    }
    result
}

fn migrate(conn: &Rc<Conn>) -> Result<i64> {
    conn.exec(META_DDL)?;
    let current = stored_version(conn)?.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(newer(current));
    }
    for (i, step) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if version <= current {
            continue;
        }
        if step.rebuilds && current > 0 {
            rebuild(conn, step.sql)?;
        } else {
            conn.exec(step.sql)?;
        }
    }
    let mut st = conn.prepare_once(
        "INSERT INTO main.task_meta(key, value) VALUES ('schema_version', ?1) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?;
    st.bind_i64(1, SCHEMA_VERSION)?;
    st.finish()?;
    Ok(SCHEMA_VERSION)
}

/// Runs a step that replaces task_store with a rebuilt copy, keeping the
/// user's triggers and views that name it: SQLite drops a table's triggers
/// with it, and renaming the old table out of the way would rewrite them
/// to name the old one. So they are dropped first and made again, from
/// their own SQL, once the new table stands under the name (as SQLite's
/// documentation describes for changes ALTER TABLE cannot make).
fn rebuild(conn: &Rc<Conn>, sql: &str) -> Result<()> {
    let mut saved: Vec<(String, String, String)> = Vec::new();
    let mut st = conn.prepare_once(
        "SELECT type, name, sql FROM main.sqlite_master
          WHERE (type = 'trigger' OR type = 'view') AND sql IS NOT NULL
            AND (tbl_name = 'task_store' OR sql LIKE '%task\\_store%' ESCAPE '\\')
          ORDER BY type = 'view' DESC, rowid",
    )?;
    while st.step()? {
        saved.push((
            st.column_text(0).unwrap_or_default(),
            st.column_text(1).unwrap_or_default(),
            st.column_text(2).unwrap_or_default(),
        ));
    }
    drop(st);
    for (kind, name, _) in &saved {
        let kind = if kind == "view" { "VIEW" } else { "TRIGGER" };
        conn.exec(&format!("DROP {kind} main.{}", quote_name(name)))?;
    }
    conn.exec(sql)?;
    // Views first, then triggers (a trigger may read a view).
    for (_, _, create) in saved.iter().filter(|(k, _, _)| k == "view") {
        conn.exec(create)?;
    }
    for (_, _, create) in saved.iter().filter(|(k, _, _)| k == "trigger") {
        conn.exec(create)?;
    }
    Ok(())
}

/// An identifier quoted for SQL text.
fn quote_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_only_name_the_main_schema_s_tables() {
        // Every statement a migration runs names `main.` explicitly: an
        // attached database with a task_store of its own is never touched.
        for step in MIGRATIONS {
            let code: String = step
                .sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ");
            for stmt in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                assert!(stmt.contains(" main.task_"), "{stmt}");
            }
        }
        assert_eq!(SCHEMA_VERSION, 9);
    }
}
