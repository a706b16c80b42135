//! Operations without a daemon through rusqlite (docs/reference/operations.md):
//! schedules ticked from two connections of one file enqueue each occurrence
//! once, a claim enqueues what is due, prune and retention delete only old
//! finished tasks, stats count from the indexes, and a version 4 storage is
//! migrated to 5 keeping every row. The rules in full are specified by
//! tests/python/test_operations.py.

use rusqlite::Connection;
use sqlite_task_tests::{TempDir, downgraded, err, file_db, memory_db, one, task_rows};

const MIN: i64 = 60_000;

fn call(db: &Connection, sql: &str) -> String {
    db.query_row(sql, [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn tick(db: &Connection, now: i64) -> i64 {
    one(
        db,
        &format!("SELECT json_extract(task_tick('{{\"now\": {now}}}'), '$.enqueued')"),
    )
}

fn run_ats(db: &Connection, queue: &str) -> Vec<i64> {
    let mut st = db
        .prepare("SELECT run_at FROM tasks WHERE queue = ?1 ORDER BY run_at")
        .unwrap();
    st.query_map([queue], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn two_connections_ticking_the_same_times_enqueue_each_occurrence_once() {
    let dir = TempDir::new("tick");
    let a = file_db(&dir.0);
    let b = file_db(&dir.0);
    call(
        &a,
        r#"SELECT task_schedule('m', '@every 1m', 'job', NULL,
                  '{"queue": "m", "catch_up": "all", "now": 0}')"#,
    );
    let mut total = 0;
    for step in 1..=30 {
        let now = step * MIN + 7;
        total += tick(&a, now) + tick(&b, now);
    }
    assert_eq!(total, 30);
    assert_eq!(
        run_ats(&a, "m"),
        (1..=30).map(|i| i * MIN).collect::<Vec<_>>()
    );
    let runs: i64 = one(
        &a,
        "SELECT count(*) FROM task_schedule_runs WHERE schedule = 'm'",
    );
    assert_eq!(runs, 30);
}

#[test]
fn an_idle_worker_s_claim_enqueues_the_due_occurrence_and_takes_it() {
    let db = memory_db();
    call(
        &db,
        r#"SELECT task_schedule('nightly', '0 3 * * *', 'report', '{"k": 1}',
                  '{"queue": "n", "priority": 5, "now": 0}')"#,
    );
    let before: Option<String> = db
        .query_row(
            "SELECT task_claim('w', '{\"queue\": \"n\", \"now\": 10000}')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(before, None);
    let claimed = call(
        &db,
        "SELECT task_claim('w', '{\"queue\": \"n\", \"now\": 10800001}')",
    );
    let v: serde_json::Value = serde_json::from_str(&claimed).unwrap();
    assert_eq!(v["type"], "report");
    assert_eq!(v["run_at"], 10_800_000);
    assert_eq!(v["priority"], 5);
    assert_eq!(v["details"]["k"], 1);
    let next: i64 = one(
        &db,
        "SELECT next_at FROM task_schedules WHERE name = 'nightly'",
    );
    assert_eq!(next, 10_800_000 + 24 * 60 * MIN);
}

#[test]
fn prune_deletes_old_finished_trees_and_keeps_the_rest() {
    let db = memory_db();
    db.execute_batch(
        r#"
        SELECT task_enqueue('old', NULL, '{"id": "00000000-0000-7000-8000-000000000001", "now": 0}');
        SELECT task_enqueue('live', NULL, '{"id": "00000000-0000-7000-8000-000000000002", "now": 0}');
        SELECT task_enqueue('parent', NULL, '{"id": "00000000-0000-7000-8000-000000000003", "queue": "p", "now": 0}');
        SELECT task_claim('w', '{"queue": "p", "now": 1}');
        SELECT task_enqueue('child', NULL, '{"parent_id": "00000000-0000-7000-8000-000000000003", "queue": "c", "now": 1}');
        SELECT task_complete('00000000-0000-7000-8000-000000000003', NULL, '{"now": 2}');
        SELECT task_complete(json_extract(task_claim('w', '{"queue": "c", "now": 3}'), '$.id'), NULL, '{"now": 4}');
        SELECT task_claim('w', '{"queue": "default", "now": 5}');
        SELECT task_complete('00000000-0000-7000-8000-000000000001', NULL, '{"now": 6}');
        "#,
    )
    .unwrap();
    let left = |db: &Connection| -> String {
        one(
            db,
            "SELECT group_concat(type, ',') FROM (SELECT type FROM task_store ORDER BY seq)",
        )
    };
    assert_eq!(left(&db), "old,live,parent,child");
    // The child completed at 4, its parent at 4 too (with it), "old" at 6.
    let p = call(
        &db,
        r#"SELECT task_prune('{"before": 5, "step": 2, "now": 100}')"#,
    );
    let v: serde_json::Value = serde_json::from_str(&p).unwrap();
    assert_eq!(v["deleted"], 2);
    assert_eq!(v["steps"], 2);
    assert_eq!(left(&db), "old,live");
    call(&db, r#"SELECT task_prune('{"older_than": 0, "now": 100}')"#);
    assert_eq!(left(&db), "live");
    assert_eq!(call(&db, "SELECT task_check()"), "ok");
}

#[test]
fn retention_set_on_a_queue_is_applied_by_ticks() {
    let db = memory_db();
    call(
        &db,
        r#"SELECT task_queue('r', '{"retention": {"completed": 1000}}')"#,
    );
    db.execute_batch(
        r#"
        SELECT task_enqueue('a', NULL, '{"queue": "r", "now": 0}');
        SELECT task_enqueue('b', NULL, '{"queue": "r", "now": 0}');
        SELECT task_enqueue('c', NULL, '{"queue": "other", "now": 0}');
        SELECT task_complete(json_extract(task_claim('w', '{"queue": "r", "now": 1}'), '$.id'), NULL, '{"now": 2}');
        SELECT task_complete(json_extract(task_claim('w', '{"queue": "other", "now": 1}'), '$.id'), NULL, '{"now": 2}');
        "#,
    )
    .unwrap();
    let t = call(&db, r#"SELECT task_tick('{"now": 500}')"#);
    assert_eq!(t, r#"{"enqueued":0,"pruned":0}"#);
    let t = call(&db, r#"SELECT task_tick('{"now": 1003}')"#);
    assert_eq!(t, r#"{"enqueued":0,"pruned":1}"#);
    let left: String = one(
        &db,
        "SELECT group_concat(type) FROM (SELECT type FROM task_store ORDER BY seq)",
    );
    assert_eq!(left, "b,c");
}

#[test]
fn stats_count_every_status_and_completions_only_with_the_index() {
    let db = memory_db();
    db.execute_batch(
        r#"
        SELECT task_enqueue('a', NULL, '{"queue": "s", "now": 0}');
        SELECT task_enqueue('b', NULL, '{"queue": "s", "now": 0}');
        SELECT task_enqueue('c', NULL, '{"queue": "s", "run_at": 90000, "now": 0}');
        SELECT task_complete(json_extract(task_claim('w', '{"queue": "s", "now": 1000}'), '$.id'), NULL, '{"now": 1500}');
        SELECT task_fail(json_extract(task_claim('w', '{"queue": "s", "now": 2000}'), '$.id'), 'no', '{"retry": false, "now": 2100}');
        "#,
    )
    .unwrap();
    let stats = |db: &Connection| -> serde_json::Value {
        serde_json::from_str(&call(
            db,
            r#"SELECT task_stats('{"queue": "s", "now": 3000}')"#,
        ))
        .unwrap()
    };
    let v = stats(&db);
    let s = &v["queues"][0];
    assert_eq!(s["queue"], "s");
    assert_eq!(
        (s["queued"].as_i64(), s["ready"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        (s["failed"].as_i64(), s["failed_last_minute"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["completed_last_hour"], serde_json::Value::Null);
    assert_eq!(v["index_completed"], false);
    one::<i64>(&db, r#"SELECT task_init('{"index_completed": true}')"#);
    let v = stats(&db);
    let s = &v["queues"][0];
    assert_eq!(v["index_completed"], true);
    assert_eq!(s["completed_last_hour"], 1);
    assert_eq!(s["run_ms_p95"], 500);
    one::<i64>(&db, r#"SELECT task_init('{"index_completed": false}')"#);
    assert_eq!(stats(&db)["index_completed"], false);
    assert!(
        err(&db, r#"SELECT task_stats('{"queues": "s"}')"#).contains("unknown option \"queues\"")
    );
}

#[test]
fn a_version_4_storage_is_migrated_to_6_keeping_every_row() {
    let dir = TempDir::new("v4");
    let (db, before) = downgraded(
        &dir.0,
        r#"
        SELECT task_enqueue('a', '{"x": 1}', '{"queue": "q", "now": 0}');
        SELECT task_claim('w', '{"queue": "q", "now": 1}');
        SELECT task_queue('q', '{"concurrency": 2}');
        DROP VIEW task_events;
        DROP TABLE task_event_store;
        ALTER TABLE task_queue_store DROP COLUMN events;
        DROP VIEW task_schedules;
        DROP TABLE task_schedule_runs;
        DROP TABLE task_schedule_store;
        ALTER TABLE task_queue_store DROP COLUMN retain_completed;
        ALTER TABLE task_queue_store DROP COLUMN retain_failed;
        ALTER TABLE task_queue_store DROP COLUMN retain_cancelled;
        ALTER TABLE task_queue_store DROP COLUMN retention_cursor;
        UPDATE task_meta SET value = 4 WHERE key = 'schema_version';
        "#,
    );
    assert!(err(&db, "SELECT task_claim('w')").contains("schema version 4"));
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    assert_eq!(task_rows(&db), before);
    let q = call(&db, "SELECT task_queue('q')");
    assert!(q.contains(r#""concurrency":2"#), "{q}");
    assert!(q.ends_with(r#""retention":null,"events":"all"}"#), "{q}");
    call(&db, "SELECT task_schedule('s', '@hourly', 't')");
    assert_eq!(call(&db, "SELECT task_check()"), "ok");
}
