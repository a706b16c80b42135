//! The `tasks` virtual table: filters reach the storage's indexes, and
//! INSERT / UPDATE / DELETE follow docs/reference/tasks-table.md.

use rusqlite::Connection;
use sqlite_task_tests::{memory_db, one};

/// The storage query the vtab runs for `sql` (its idxStr, from EXPLAIN
/// QUERY PLAN), and the indexes SQLite uses for that query.
fn storage_plan(db: &Connection, sql: &str) -> (String, Vec<String>) {
    let mut st = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let details: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let inner = details
        .iter()
        .find_map(|d| {
            d.split_once("VIRTUAL TABLE INDEX ")
                .map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_else(|| panic!("no vtab scan in {details:?}"));
    let inner_sql = inner
        .split_once(':')
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    if inner_sql.is_empty() {
        return (inner_sql, vec![]);
    }
    let mut st = db
        .prepare(&format!("EXPLAIN QUERY PLAN {inner_sql}"))
        .unwrap();
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    let steps: Vec<String> = st
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    (inner_sql, steps)
}

fn uses(steps: &[String], index: &str) -> bool {
    steps.iter().any(|s| {
        s.contains(&format!("USING INDEX {index}"))
            || s.contains(&format!("USING COVERING INDEX {index}"))
    })
}

#[test]
fn filters_reach_the_storage_indexes() {
    let db = memory_db();
    let (_, steps) = storage_plan(&db, "SELECT * FROM tasks WHERE id = 'x'");
    assert!(uses(&steps, "task_store_id"), "{steps:?}");
    let (_, steps) = storage_plan(&db, "SELECT * FROM tasks WHERE parent_id = 'x'");
    assert!(uses(&steps, "task_store_parent"), "{steps:?}");
    for filter in [
        "status = 'running'",
        "queue = 'q'",
        "type = 't'",
        "status = 'failed' AND type = 't'",
        "queue = 'q' AND type = 't'",
    ] {
        let (inner, steps) = storage_plan(&db, &format!("SELECT * FROM tasks WHERE {filter}"));
        for index in [
            "task_store_ready",
            "task_store_running",
            "task_store_parked",
        ] {
            assert!(
                uses(&steps, index),
                "{filter}: {index} not used\n{inner}\n{steps:?}"
            );
        }
        // Completed tasks are in no status index: their branch, and only
        // theirs, reads the table (docs/storage.md).
        let scans = steps
            .iter()
            .filter(|s| s.starts_with("SCAN main.task_store") && !s.contains("INDEX"))
            .count();
        assert_eq!(scans, 1, "{filter}: {steps:?}");
        assert!(inner.contains("status = 'completed'"), "{inner}");
    }
    let (_, steps) = storage_plan(
        &db,
        "SELECT * FROM tasks WHERE status = 'failed' AND type = 't'",
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("task_store_parked (status=? AND type=?)")),
        "{steps:?}"
    );
}

#[test]
fn filters_return_the_right_rows() {
    let db = memory_db();
    db.execute_batch(
        r#"
        SELECT task_enqueue('a', NULL, '{"id":"00000000-0000-7000-8000-000000000001","queue":"q1"}');
        SELECT task_enqueue('b', NULL, '{"id":"00000000-0000-7000-8000-000000000002","queue":"q2",
                                          "parent_id":"00000000-0000-7000-8000-000000000001"}');
        SELECT task_enqueue('a', NULL, '{"id":"00000000-0000-7000-8000-000000000003","queue":"q2"}');
        SELECT task_claim('w', '{"queue":"q1"}');
        SELECT task_complete(json_extract(task_claim('w', '{"queue":"q2"}'), '$.id'));
        "#,
    )
    .unwrap();
    let ids = |filter: &str| -> String {
        one(
            &db,
            &format!(
                "SELECT group_concat(substr(id, 36), ',') FROM (SELECT id FROM tasks WHERE {filter} ORDER BY id)"
            ),
        )
    };
    assert_eq!(ids("type = 'a'"), "1,3");
    assert_eq!(ids("queue = 'q2'"), "2,3");
    assert_eq!(ids("status = 'running'"), "1");
    assert_eq!(ids("status = 'completed'"), "2");
    assert_eq!(ids("status = 'queued'"), "3");
    assert_eq!(ids("status IN ('queued', 'running')"), "1,3");
    assert_eq!(
        ids("parent_id = '00000000-0000-7000-8000-000000000001'"),
        "2"
    );
    assert_eq!(ids("id = '00000000-0000-7000-8000-000000000003'"), "3");
    assert_eq!(ids("type = 'a' AND queue = 'q2'"), "3");
    assert_eq!(ids("type = 'a' AND status = 'running'"), "1");
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM tasks WHERE status = 'nope'"),
        0
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM tasks"), 3);
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM tasks WHERE priority = 0"),
        3,
        "unindexed filters still work"
    );
}

#[test]
fn insert_enqueues_with_the_same_rules() {
    let db = memory_db();
    db.execute_batch(
        r#"INSERT INTO tasks(type, details, queue, priority, max_attempts, delay, now)
           VALUES ('t', '{"x":1}', 'q', 4, 7, 500, 1000)"#,
    )
    .unwrap();
    let row: (String, String, i64, i64, i64, i64, String) = db
        .query_row(
            "SELECT type, queue, priority, max_attempts, run_at, created_at, status FROM tasks",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        ("t".into(), "q".into(), 4, 7, 1500, 1000, "queued".into())
    );
    let rowid: i64 = one(&db, "SELECT rowid FROM tasks");
    assert_eq!(rowid, one::<i64>(&db, "SELECT seq FROM task_store"));
    db.execute_batch("INSERT INTO tasks(type) SELECT 'bulk' FROM generate_series(1, 10)")
        .unwrap_or_else(|_| {
            db.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 10)
                 INSERT INTO tasks(type) SELECT 'bulk' FROM n",
            )
            .unwrap()
        });
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM tasks WHERE type = 'bulk'"),
        10
    );
}

#[test]
fn update_reschedules_queued_tasks_and_changes_status() {
    let db = memory_db();
    db.execute_batch(r#"SELECT task_enqueue('t', NULL, '{"id":"00000000-0000-7000-8000-000000000001","now":0}')"#)
        .unwrap();
    db.execute_batch(
        "UPDATE tasks SET priority = 7, run_at = 99, queue = 'later', max_attempts = 9
          WHERE id = '00000000-0000-7000-8000-000000000001'",
    )
    .unwrap();
    let row: (i64, i64, String, i64) = db
        .query_row(
            "SELECT priority, run_at, queue, max_attempts FROM tasks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, (7, 99, "later".into(), 9));
    assert!(
        one::<Option<String>>(
            &db,
            r#"SELECT task_claim('w', '{"queue":"later","now":98}')"#
        )
        .is_none()
    );
    db.execute_batch("UPDATE tasks SET status = 'cancelled'")
        .unwrap();
    assert_eq!(one::<String>(&db, "SELECT status FROM tasks"), "cancelled");
    db.execute_batch("UPDATE tasks SET status = 'queued'")
        .unwrap();
    assert_eq!(one::<String>(&db, "SELECT status FROM tasks"), "queued");
    db.execute_batch("UPDATE tasks SET priority = priority")
        .unwrap();
}

#[test]
fn delete_removes_finished_tasks_with_their_descendants() {
    let db = memory_db();
    db.execute_batch(
        r#"
        SELECT task_enqueue('p', NULL, '{"id":"00000000-0000-7000-8000-000000000001"}');
        SELECT task_enqueue('c', NULL, '{"id":"00000000-0000-7000-8000-000000000002",
                                          "parent_id":"00000000-0000-7000-8000-000000000001"}');
        SELECT task_enqueue('g', NULL, '{"id":"00000000-0000-7000-8000-000000000003",
                                          "parent_id":"00000000-0000-7000-8000-000000000002"}');
        SELECT task_enqueue('x', NULL, '{"id":"00000000-0000-7000-8000-000000000004"}');
        -- Finished with a descendant still queued: only a write around the
        -- functions (or a storage from before version 3) makes this.
        UPDATE task_store SET status = 'cancelled', completed_at = 1
         WHERE id IN ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000002');
        "#,
    )
    .unwrap();
    let msg = db
        .execute_batch("DELETE FROM tasks WHERE id = '00000000-0000-7000-8000-000000000001'")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("task 00000000-0000-7000-8000-000000000003, a descendant"),
        "{msg}"
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM tasks"), 4);
    db.execute_batch("SELECT task_cancel('00000000-0000-7000-8000-000000000003')")
        .unwrap();
    db.execute_batch("DELETE FROM tasks WHERE status = 'cancelled'")
        .unwrap();
    assert_eq!(
        one::<String>(&db, "SELECT group_concat(type) FROM tasks"),
        "x"
    );
}
