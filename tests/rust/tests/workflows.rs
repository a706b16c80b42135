//! Workflows through rusqlite (docs/reference/workflows.md): a parent that
//! completes with its last child, a failure that takes its dependents and
//! its parent along, a unique key enqueued from two connections on one
//! file, and the bad inputs, each refused with the storage unchanged. The
//! rules in full are specified by tests/python/test_workflows.py.

use rusqlite::{Connection, params};
use sqlite_task_tests::{TempDir, err, file_db, memory_db, one};

const P: &str = "0193f000-0000-7000-8000-000000000001";
const C1: &str = "0193f000-0000-7000-8000-000000000002";
const C2: &str = "0193f000-0000-7000-8000-000000000003";

fn call(db: &Connection, sql: &str, p: impl rusqlite::Params) -> String {
    db.query_row(sql, p, |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_default()
}

fn status(db: &Connection, id: &str) -> String {
    call(db, "SELECT status FROM tasks WHERE id = ?1", [id])
}

fn claimed(db: &Connection, queue: &str, now: i64) -> String {
    let opts = format!(r#"{{"queue": "{queue}", "now": {now}}}"#);
    call(
        db,
        "SELECT json_extract(task_claim('w', ?1), '$.id')",
        [opts],
    )
}

/// Every row of the storage, to prove a refused call changed nothing.
fn storage(db: &Connection) -> Vec<String> {
    let mut st = db
        .prepare("SELECT quote(id) || status || updated_at || children || dependents FROM task_store ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_parent_completes_with_its_last_child_and_rolls_their_progress_up() {
    let db = memory_db();
    call(
        &db,
        "SELECT task_enqueue('p', NULL, ?1)",
        [format!(r#"{{"id": "{P}", "queue": "p", "now": 0}}"#)],
    );
    assert_eq!(claimed(&db, "p", 1), P);
    for c in [C1, C2] {
        let o = format!(r#"{{"id": "{c}", "queue": "c", "parent_id": "{P}", "now": 2}}"#);
        call(&db, "SELECT task_enqueue('c', NULL, ?1)", [o]);
    }
    assert_eq!(
        call(&db, "SELECT task_complete(?1, NULL, '{\"now\": 3}')", [P]),
        "waiting"
    );
    assert_eq!(claimed(&db, "c", 4), C1);
    call(&db, "SELECT task_progress(?1, 50, '{\"now\": 5}')", [C1]);
    let rollup: f64 = one(&db, &format!("SELECT progress FROM tasks WHERE id = '{P}'"));
    assert_eq!(rollup, 25.0);
    call(&db, "SELECT task_complete(?1, NULL, '{\"now\": 6}')", [C1]);
    assert_eq!(status(&db, P), "waiting");
    let last = claimed(&db, "c", 7);
    call(
        &db,
        "SELECT task_complete(?1, NULL, '{\"now\": 8}')",
        [last],
    );
    assert_eq!(status(&db, P), "completed");
    let tree: i64 = one(&db, &format!("SELECT count(*) FROM task_tree('{P}')"));
    assert_eq!(tree, 3);
    let ok: String = one(&db, "SELECT task_check()");
    assert_eq!(ok, "ok");
}

#[test]
fn a_failed_dependency_cancels_its_dependents_and_fails_their_parent() {
    let db = memory_db();
    call(
        &db,
        "SELECT task_enqueue('p', NULL, ?1)",
        [format!(r#"{{"id": "{P}", "queue": "p", "now": 0}}"#)],
    );
    let dep = call(
        &db,
        "SELECT task_enqueue('a', NULL, '{\"queue\": \"a\", \"max_attempts\": 1, \"now\": 0}')",
        [],
    );
    let o = format!(
        r#"{{"id": "{C1}", "queue": "c", "parent_id": "{P}", "depends_on": ["{dep}"], "now": 0}}"#
    );
    call(&db, "SELECT task_enqueue('c', NULL, ?1)", [o]);
    assert_eq!(status(&db, C1), "blocked");
    let a = claimed(&db, "a", 1);
    call(&db, "SELECT task_fail(?1, 'x', '{\"now\": 2}')", [a]);
    assert_eq!(status(&db, C1), "cancelled");
    assert_eq!(status(&db, P), "failed");
    let why = call(&db, "SELECT error FROM tasks WHERE id = ?1", [P]);
    assert_eq!(why, format!("child task {C1} was cancelled"));
}

#[test]
fn a_unique_key_enqueued_from_two_connections_makes_one_task() {
    let dir = TempDir::new("unique");
    let a = file_db(&dir.0);
    let b = file_db(&dir.0);
    let opts = r#"{"queue": "q", "unique_key": "k"}"#;
    let first = call(&a, "SELECT task_enqueue('t', NULL, ?1)", [opts]);
    let second = call(&b, "SELECT task_enqueue('t', NULL, ?1)", [opts]);
    assert_eq!(first, second);
    let n: i64 = one(&a, "SELECT count(*) FROM tasks");
    assert_eq!(n, 1);
}

#[test]
fn workflow_bad_inputs_are_errors_that_change_nothing() {
    let db = memory_db();
    call(
        &db,
        "SELECT task_enqueue('p', NULL, ?1)",
        [format!(r#"{{"id": "{P}", "unique_key": "k", "now": 0}}"#)],
    );
    let cases = [
        (
            format!(r#"{{"parent_id": "{C2}"}}"#),
            format!("task_enqueue: parent task {C2} not found"),
        ),
        (
            format!(r#"{{"depends_on": ["{C2}"]}}"#),
            format!("task_enqueue: dependency task {C2} not found"),
        ),
        (
            format!(r#"{{"id": "{C1}", "depends_on": ["{C1}"]}}"#),
            format!("task_enqueue: task {C1} cannot depend on itself"),
        ),
        (
            r#"{"depends_on": 5}"#.to_string(),
            r#"task_enqueue: option "depends_on" must be an array of task ids, got a number"#
                .to_string(),
        ),
        (
            r#"{"unique_key": ["k"]}"#.to_string(),
            r#"task_enqueue: option "unique_key" must be a string, got an array"#.to_string(),
        ),
        (
            r#"{"unique_key": "k", "on_conflict": "update"}"#.to_string(),
            "task_enqueue: on_conflict must be 'keep', 'replace' or 'error', got 'update'"
                .to_string(),
        ),
        (
            r#"{"unique_key": "k", "on_conflict": "error"}"#.to_string(),
            format!(
                "task_enqueue: unique key 'k' of queue 'default' is taken by task {P} (queued)"
            ),
        ),
    ];
    for (opts, want) in cases {
        let before = storage(&db);
        let got = err(&db, &format!("SELECT task_enqueue('x', NULL, '{opts}')"));
        assert_eq!(got, want, "{opts}");
        assert_eq!(storage(&db), before, "{opts} changed the storage");
    }
    let got = err(&db, "SELECT * FROM task_tree");
    assert_eq!(
        got,
        "task_tree: give the id of the root task: SELECT * FROM task_tree('…')"
    );
    let n: i64 = db
        .query_row("SELECT count(*) FROM task_tree(?1)", params![P], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_version_7_storage_is_migrated_to_8_keeping_every_row_and_count_of_children() {
    let dir = TempDir::new("v7");
    const C3: &str = "0193f000-0000-7000-8000-000000000004";
    let enqueue = |c: &str| {
        format!(
            r#"SELECT task_enqueue('c', NULL, '{{"id": "{c}", "queue": "c", "parent_id": "{P}", "now": 2}}');"#
        )
    };
    // A waiting parent: one child completed, one running, one queued.
    let (db, before) = sqlite_task_tests::downgraded_to(
        &dir.0,
        7,
        &format!(
            r#"
            SELECT task_enqueue('p', NULL, '{{"id": "{P}", "queue": "p", "now": 0}}');
            SELECT task_claim('w', '{{"queue": "p", "now": 1}}');
            {}{}{}
            SELECT task_complete('{P}', NULL, '{{"now": 3}}');
            SELECT task_claim('w', '{{"queue": "c", "now": 4}}');
            SELECT task_complete('{C1}', NULL, '{{"now": 5}}');
            SELECT task_claim('w', '{{"queue": "c", "now": 6}}');
            UPDATE task_meta SET value = 7 WHERE key = 'schema_version';
            "#,
            enqueue(C1),
            enqueue(C2),
            enqueue(C3)
        ),
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT children_done FROM task_store WHERE children > 0"
        ),
        1,
        "version 7 counts finished children on the parent's row"
    );
    assert!(err(&db, "SELECT task_claim('w')").contains("schema version 7"));
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    assert_eq!(sqlite_task_tests::task_rows(&db), before);
    // The count moved: the parent's row no longer has it under its name.
    assert_eq!(
        call(
            &db,
            "SELECT id || ':' || unfinished FROM task_parent_store",
            []
        ),
        format!("{P}:2")
    );
    assert!(err(&db, "SELECT children_done FROM task_store").contains("no such column"));
    assert_eq!(
        one::<i64>(&db, "SELECT sum(retired_children_done) FROM task_store"),
        0
    );
    let row = "SELECT status || ' ' || children || ' ' || children_done || ' ' || round(progress, 1) \
               FROM tasks WHERE id = ?1";
    assert_eq!(call(&db, row, [P]), "waiting 3 1 33.3");
    assert_eq!(one::<String>(&db, "SELECT task_check()"), "ok");
    // The migrated count goes on: the last two children complete the parent.
    call(&db, "SELECT task_complete(?1, NULL, '{\"now\": 7}')", [C2]);
    assert_eq!(call(&db, row, [P]), "waiting 3 2 66.7");
    assert_eq!(claimed(&db, "c", 8), C3);
    call(&db, "SELECT task_complete(?1, NULL, '{\"now\": 9}')", [C3]);
    assert_eq!(call(&db, row, [P]), "completed 3 3 100.0");
    assert_eq!(one::<String>(&db, "SELECT task_check()"), "ok");
}
