//! examples/rust/worker.rs as a real process on a live queue: it drains what
//! a producer enqueues, and a SIGTERM in the middle of a task lets that task
//! finish (completed), then the worker exits 0; nothing is left running.

use rusqlite::Connection;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

fn db_in(name: &str) -> (std::path::PathBuf, Connection) {
    let dir =
        std::env::temp_dir().join(format!("sqlite-task-worker-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("q.db");
    let db = Connection::open(&path).expect("open");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    sqlite_task::register(&db).expect("register");
    db.query_row("SELECT task_init()", [], |_| Ok(()))
        .expect("init");
    (path, db)
}

fn count(db: &Connection, status: &str) -> i64 {
    db.query_row(
        "SELECT count(*) FROM tasks WHERE status = ?1",
        [status],
        |r| r.get(0),
    )
    .expect("count")
}

/// Polls `cond` until it holds; a deadline only turns a hang into a failure.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_worker_drains_a_live_queue_and_fails_what_it_cannot_run() {
    let (path, db) = db_in("drain");
    let child = Command::new(WORKER)
        .args([
            path.to_str().expect("path"),
            "--wait-ms",
            "2000",
            "--exit-when-idle",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the worker");
    // Enqueued while it runs: its long poll wakes for them.
    for i in 0..20 {
        let details = format!(r#"{{"ms": {}}}"#, i % 3);
        db.query_row("SELECT task_enqueue('sleep', ?1)", [&details], |_| Ok(()))
            .expect("enqueue");
    }
    db.query_row(
        r#"SELECT task_enqueue('unknown', NULL, '{"max_attempts": 1}')"#,
        [],
        |_| Ok(()),
    )
    .expect("enqueue");
    let out = child.wait_with_output().expect("worker exit");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(count(&db, "completed"), 20, "{log}");
    let error: String = db
        .query_row("SELECT error FROM tasks WHERE type = 'unknown'", [], |r| {
            r.get(0)
        })
        .expect("the failed task");
    assert!(
        error.contains("no handler for tasks of type \"unknown\""),
        "{error}"
    );
    assert_eq!(count(&db, "failed"), 1);
    let result: String = db
        .query_row(
            r#"SELECT result FROM tasks WHERE type = 'sleep' AND json_extract(details, '$.ms') = 2 LIMIT 1"#,
            [],
            |r| r.get(0),
        )
        .expect("a result");
    assert_eq!(result, r#"{"slept_ms":2}"#);
}

#[test]
fn a_sigterm_mid_task_lets_the_task_finish_then_the_worker_exits() {
    let (path, db) = db_in("sigterm");
    db.query_row(
        r#"SELECT task_enqueue('sleep', '{"ms": 1500}')"#,
        [],
        |_| Ok(()),
    )
    .expect("enqueue");
    db.query_row(r#"SELECT task_enqueue('sleep', '{"ms": 10}')"#, [], |_| {
        Ok(())
    })
    .expect("enqueue a second, never started");
    let child = Command::new(WORKER)
        .args([path.to_str().expect("path"), "--wait-ms", "60000"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the worker");
    // Mid-task: it has reported progress on the long task.
    until("a progress report", || {
        db.query_row(
            "SELECT max(progress) FROM tasks WHERE status = 'running'",
            [],
            |r| r.get::<_, Option<f64>>(0),
        )
        .expect("progress")
        .is_some_and(|p| p > 0.0)
    });
    // SAFETY: a plain kill(2) of our own child.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("worker exit");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("stopped"), "{log}");
    let rows: Vec<(String, String)> = db
        .prepare("SELECT json_extract(details, '$.ms'), status FROM tasks ORDER BY status")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?)))?
                .collect()
        })
        .expect("tasks");
    // The task in hand finished; the next was not claimed; none is running.
    // (By status: both were enqueued in the same millisecond, and ids within
    // one are not in enqueue order.)
    assert_eq!(
        rows,
        [
            ("1500".into(), "completed".into()),
            ("10".into(), "queued".into())
        ],
        "{log}"
    );
}
