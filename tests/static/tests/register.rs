//! The queue linked into an application: a rusqlite connection on the
//! bundled SQLite, `sqlite_task::register`, and no `.so` or
//! `load_extension` anywhere (this crate never loads one).

use rusqlite::{Connection, params};
use serde_json::Value;

fn registered() -> Connection {
    let db = Connection::open_in_memory().expect("in-memory database");
    sqlite_task::register(&db).expect("register");
    db
}

fn one<T: rusqlite::types::FromSql>(db: &Connection, sql: &str) -> T {
    db.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn a_registered_connection_runs_a_task_from_enqueue_to_completed() {
    let db = registered();
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    let id: String = one(
        &db,
        r#"SELECT task_enqueue('resize', '{"w": 64}', '{"now": 1000}')"#,
    );
    let claimed: String = one(&db, r#"SELECT task_claim('w1', '{"now": 2000}')"#);
    let task: Value = serde_json::from_str(&claimed).expect("claim JSON");
    assert_eq!(task["id"], id.as_str());
    assert_eq!(task["details"]["w"], 64);
    let attempt = task["attempt"].as_i64().expect("attempt");
    let opts = format!(r#"{{"attempt": {attempt}, "now": 2500}}"#);
    let progress: f64 = db
        .query_row(
            "SELECT task_progress(?1, 50, ?2)",
            params![id, opts],
            |_| Ok(()),
        )
        .and_then(|()| {
            db.query_row("SELECT progress FROM tasks WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
        })
        .expect("progress");
    assert_eq!(progress, 50.0);
    let opts = format!(r#"{{"attempt": {attempt}, "now": 3000}}"#);
    let status: String = db
        .query_row(
            "SELECT task_complete(?1, '{\"ok\": true}', ?2)",
            params![id, opts],
            |r| r.get(0),
        )
        .expect("complete");
    assert_eq!(status, "completed");
    let (st, result, done): (String, String, i64) = db
        .query_row(
            "SELECT status, result, completed_at FROM tasks WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the tasks table");
    assert_eq!(
        (st.as_str(), result.as_str(), done),
        ("completed", r#"{"ok": true}"#, 3000)
    );
    let kinds: Vec<String> = db
        .prepare("SELECT kind FROM task_events WHERE task_id = ?1 ORDER BY seq")
        .and_then(|mut s| s.query_map([&id], |r| r.get(0))?.collect())
        .expect("the event log");
    assert_eq!(kinds, ["enqueued", "claimed", "progress", "completed"]);
    // The build this is: the same version as the loadable extension.
    assert_eq!(
        one::<String>(&db, "SELECT task_version()"),
        concat!("v", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn errors_keep_their_message_and_change_nothing() {
    let db = registered();
    let err = db
        .query_row("SELECT task_claim('w1')", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .expect_err("no storage yet");
    assert!(
        err.to_string().contains("run SELECT task_init() first"),
        "{err}"
    );
    one::<i64>(&db, "SELECT task_init()");
    let err = db
        .query_row("SELECT task_enqueue('t', '{not json')", [], |r| {
            r.get::<_, String>(0)
        })
        .expect_err("bad JSON");
    assert!(
        err.to_string().starts_with("task_enqueue: details"),
        "{err}"
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM tasks"), 0);
}

#[test]
fn a_file_database_closes_cleanly_after_every_kind_of_call() {
    let dir = std::env::temp_dir().join(format!("sqlite-task-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("app.db");
    for round in 0..3 {
        let db = Connection::open(&path).expect("open");
        sqlite_task::register(&db).expect("register");
        one::<i64>(&db, "SELECT task_init()");
        one::<String>(&db, "SELECT task_enqueue('job')");
        let claimed: String = one(&db, "SELECT task_claim('w1')");
        let task: Value = serde_json::from_str(&claimed).expect("claim JSON");
        let id = task["id"].as_str().expect("id").to_string();
        let _: String = db
            .query_row("SELECT task_complete(?1)", [&id], |r| r.get(0))
            .expect("complete");
        assert_eq!(
            one::<i64>(&db, "SELECT count(*) FROM tasks WHERE status = 'completed'"),
            round + 1
        );
        // Statements the queue keeps prepared must not make close fail.
        db.close().map_err(|(_, e)| e).expect("close");
    }
    std::fs::remove_dir_all(&dir).ok();
}
