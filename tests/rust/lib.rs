//! Shared helpers for the integration tests: open a database and load the
//! built extension into it, as an application would.

use rusqlite::{Connection, LoadExtensionGuard};
use std::path::PathBuf;

/// Path of the built extension, without suffix (SQLite adds `.so`/`.dylib`).
/// `make test-rust` sets TASK_EXT; the default is the repository's dist/.
pub fn extension_path() -> PathBuf {
    match std::env::var_os("TASK_EXT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/task0"),
    }
}

/// Loads the extension into `conn`.
pub fn load(conn: &Connection) {
    let path = extension_path();
    // SAFETY: loading our own extension; the guard re-disables loading.
    unsafe {
        let _guard = LoadExtensionGuard::new(conn).expect("enable extension loading");
        conn.load_extension(&path, None::<&str>)
            .unwrap_or_else(|e| panic!("load {}: {e} (run `make loadable`)", path.display()));
    }
}

/// An in-memory database with the extension loaded and the storage created.
pub fn memory_db() -> Connection {
    let conn = Connection::open_in_memory().expect("open");
    load(&conn);
    conn.query_row("SELECT task_init()", [], |_| Ok(()))
        .expect("task_init");
    conn
}

/// An in-memory database holding one task of each status, with the clock
/// supplied: ids ending 01 (queued, run_at 5), 02 (running, attempt 1),
/// 03 (completed), 04 (cancelled), 05 (failed).
pub fn one_task_per_status() -> Connection {
    let db = memory_db();
    db.execute_batch(
        r#"
        SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000002","now":0}');
        SELECT task_claim('w', '{"now":0}');
        SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000003","now":0}');
        SELECT task_complete(json_extract(task_claim('w', '{"now":0}'), '$.id'), NULL, '{"now":1}');
        SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000004","now":0}');
        SELECT task_cancel('00000000-0000-7000-8000-000000000004', '{"now":1}');
        SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000005","now":0,"max_attempts":1}');
        SELECT task_fail(json_extract(task_claim('w', '{"now":0}'), '$.id'), 'x', '{"now":1}');
        SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000001","now":5}');
        "#,
    )
    .expect("populate");
    db
}

/// A file database in a fresh temporary directory, WAL mode, extension loaded.
pub fn file_db(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("queue.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    load(&conn);
    conn.query_row("SELECT task_init()", [], |_| Ok(()))
        .expect("task_init");
    conn
}

/// `file_db`'s database, storage set up as an older version would have
/// left it by `downgrade` (SQL run on the current storage), closed and
/// opened again with the extension loaded but no `task_init()`; and every
/// task row as one string (id, status, details, flags), to compare after the
/// migration.
pub fn downgraded(dir: &std::path::Path, downgrade: &str) -> (Connection, String) {
    downgraded_to(dir, 6, downgrade)
}

/// [`downgraded`] to the shape of storage `version` (6, 7 or 8): the undo
/// of each migration after it runs after `downgrade`, which sets the version.
pub fn downgraded_to(dir: &std::path::Path, version: i64, downgrade: &str) -> (Connection, String) {
    let db = file_db(dir);
    let undo_v9 = format!("DROP VIEW task_queues;\n{}", v7_queues_view());
    let undo = match version {
        8.. => undo_v9,
        7 => format!("{undo_v9}{UNDO_V8}"),
        _ => format!("{undo_v9}{UNDO_V8}{UNDO_V7}{}", v4_queues_view()),
    };
    db.execute_batch(&format!("{downgrade}{undo}"))
        .expect("downgrade");
    let before = task_rows(&db);
    drop(db);
    let db = Connection::open(dir.join("queue.db")).expect("reopen");
    load(&db);
    (db, before)
}

/// SQL that undoes what migration 008 did: the counts of finished children
/// back on the parents' rows.
const UNDO_V8: &str = "
    ALTER TABLE task_store RENAME COLUMN retired_children_done TO children_done;
    UPDATE task_store SET children_done = children - coalesce(
        (SELECT o.unfinished FROM task_parent_store AS o WHERE o.seq = task_store.seq), 0)
     WHERE children > 0;
    DROP TABLE task_parent_store;
";

/// SQL that undoes what migration 007 added; `downgraded` runs it after
/// the test's own SQL, which sets the version, and then makes the queues
/// view version 4's again (`V4_QUEUES_VIEW`).
const UNDO_V7: &str = "
    DROP VIEW task_queues;
    DROP TABLE task_rate_store;
    ALTER TABLE task_queue_store DROP COLUMN rate_interval_ms;
    ALTER TABLE task_queue_store DROP COLUMN rate_limit;
    ALTER TABLE task_queue_store DROP COLUMN backoff_max_ms;
    ALTER TABLE task_queue_store DROP COLUMN backoff_ms;
    ALTER TABLE task_queue_store DROP COLUMN max_attempts;
    ALTER TABLE task_queue_store DROP COLUMN lease_ms;
";

/// The queues view as migration 004 made it: the end of that file.
fn v4_queues_view() -> &'static str {
    queues_view(include_str!("../../src/storage/004_queues.sql"))
}

/// The queues view as migration 007 made it (and 009 replaced): the end of
/// that file.
fn v7_queues_view() -> &'static str {
    queues_view(include_str!("../../src/storage/007_queue_defaults.sql"))
}

/// The queues view a migration's SQL makes: from its CREATE VIEW to the end.
fn queues_view(ddl: &'static str) -> &'static str {
    let at = ddl
        .find("CREATE VIEW main.task_queues")
        .expect("the migration makes the queues view");
    &ddl[at..]
}

/// Every task row as one string: id, status, details and flags.
pub fn task_rows(db: &Connection) -> String {
    one(
        db,
        "SELECT group_concat(id || status || ifnull(details, '') || flags) FROM task_store",
    )
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("sqlite-task-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a query that returns one value.
pub fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs a statement expected to fail and returns the error message.
pub fn err(conn: &Connection, sql: &str) -> String {
    match conn.query_row(sql, [], |_| Ok(())) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => e.to_string(),
    }
}
