//! The event log through rusqlite (docs/reference/events.md): four worker
//! threads and a producer on one WAL file leave exactly the events of the
//! transitions they committed; a version 5 storage migrates to 6 keeping
//! every row. The lifecycle paths one by one: tests/python/test_events.py.

use rusqlite::Connection;
use sqlite_task_tests::{TempDir, downgraded, file_db, one, task_rows};

/// The text a one-value statement returns.
fn call(db: &Connection, sql: &str) -> String {
    one(db, sql)
}

/// Runs a one-row statement for what it does.
fn run(db: &Connection, sql: &str) {
    db.query_row(sql, [], |_| Ok(())).unwrap();
}
use std::collections::HashMap;

/// (task_id, kind) of every event, in seq order, and whether seq grew by 1.
fn log(db: &Connection) -> (Vec<(String, String)>, bool) {
    let mut st = db
        .prepare("SELECT seq, task_id, kind FROM task_events ORDER BY seq")
        .unwrap();
    let mut last = 0;
    let mut dense = true;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })
        .unwrap()
        .map(|r| {
            let (seq, id, kind) = r.unwrap();
            dense &= seq == last + 1;
            last = seq;
            (id, kind)
        })
        .collect();
    (rows, dense)
}

#[test]
fn threads_leave_one_event_per_committed_transition() {
    let dir = TempDir::new("events");
    let db = file_db(&dir.0);
    const TASKS: usize = 400;
    let producer = {
        let path = dir.0.clone();
        std::thread::spawn(move || {
            let db = file_db(&path);
            run(&db, "SELECT task_busy_timeout(30000)");
            for i in 0..TASKS {
                one::<String>(&db, &format!("SELECT task_enqueue('job', '{{\"n\":{i}}}')"));
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let path = dir.0.clone();
            std::thread::spawn(move || {
                let db = file_db(&path);
                run(&db, "SELECT task_busy_timeout(30000)");
                let mut done: HashMap<String, &str> = HashMap::new();
                let mut idle = 0;
                while idle < 200 {
                    let claimed: Option<String> = db
                        .query_row("SELECT task_claim(?1)", [format!("w{w}")], |r| r.get(0))
                        .unwrap();
                    let Some(text) = claimed else {
                        idle += 1;
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    };
                    idle = 0;
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let id = v["id"].as_str().unwrap().to_string();
                    // A third fail once and are retried; the others complete.
                    let n = v["details"]["n"].as_i64().unwrap();
                    if n % 3 == 0 && v["attempt"] == 1 {
                        run(&db, &format!("SELECT task_fail('{id}', 'once')"));
                    } else {
                        run(&db, &format!("SELECT task_complete('{id}', NULL)"));
                        done.insert(id, "completed");
                    }
                }
                done
            })
        })
        .collect();
    producer.join().unwrap();
    let mut completed = 0;
    for w in workers {
        completed += w.join().unwrap().len();
    }
    assert_eq!(completed, TASKS);
    let (events, dense) = log(&db);
    assert!(dense, "seq grew by one per event");
    let mut by_task: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, kind) in &events {
        by_task.entry(id).or_default().push(kind);
    }
    assert_eq!(by_task.len(), TASKS);
    for (id, kinds) in &by_task {
        let n: i64 = one(
            &db,
            &format!("SELECT json_extract(details, '$.n') FROM tasks WHERE id = '{id}'"),
        );
        let want: &[&str] = if n % 3 == 0 {
            &["enqueued", "claimed", "failed", "claimed", "completed"]
        } else {
            &["enqueued", "claimed", "completed"]
        };
        assert_eq!(kinds, want, "{id}");
    }
}

#[test]
fn a_version_5_storage_is_migrated_to_6_keeping_every_row() {
    let dir = TempDir::new("v5");
    let (db, before) = downgraded(
        &dir.0,
        r#"
        SELECT task_enqueue('a', '{"x": 1}', '{"queue": "q", "now": 0}');
        SELECT task_claim('w', '{"queue": "q", "now": 1}');
        SELECT task_queue('q', '{"concurrency": 2, "retention": 60000}');
        DROP VIEW task_events;
        DROP TABLE task_event_store;
        ALTER TABLE task_queue_store DROP COLUMN events;
        UPDATE task_meta SET value = 5 WHERE key = 'schema_version';
        "#,
    );
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    assert_eq!(task_rows(&db), before);
    let q = call(&db, "SELECT task_queue('q')");
    assert!(q.contains(r#""concurrency":2"#), "{q}");
    assert!(q.ends_with(r#""events":"all"}"#), "{q}");
    // The log starts empty, and the running task's completion is its first event.
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM task_events"), 0);
    let id: String = one(&db, "SELECT id FROM tasks");
    run(&db, &format!("SELECT task_complete('{id}', NULL)"));
    let (events, _) = log(&db);
    assert_eq!(events, vec![(id, "completed".to_string())]);
    assert_eq!(call(&db, "SELECT task_check()"), "ok");
}
