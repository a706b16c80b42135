//! Every bad input gives an SQL error that names the function and the
//! problem, and changes nothing.

use rusqlite::Connection;
use sqlite_task_tests::{load, memory_db, one_task_per_status};

/// Everything in the storage, as text, to compare before and after a call.
fn snapshot(db: &Connection) -> String {
    db.query_row(
        "SELECT group_concat(quote(seq) || quote(id) || quote(status) || quote(priority) ||
                quote(progress) || quote(attempts) || quote(worker) || quote(lease_until) ||
                quote(run_at) || quote(updated_at) || quote(result) || quote(error), ';')
           FROM (SELECT * FROM task_store ORDER BY seq)",
        [],
        |r| r.get::<_, Option<String>>(0),
    )
    .unwrap()
    .unwrap_or_default()
}

const Q: &str = "'00000000-0000-7000-8000-000000000001'";
const R: &str = "'00000000-0000-7000-8000-000000000002'";
const DONE: &str = "'00000000-0000-7000-8000-000000000003'";
const CANC: &str = "'00000000-0000-7000-8000-000000000004'";
const UNKNOWN: &str = "'00000000-0000-7000-8000-0000000000ff'";

fn cases() -> Vec<(String, &'static str)> {
    let c = |sql: &str, want: &'static str| (sql.to_string(), want);
    vec![
        // arity is checked by SQLite when the statement is prepared
        c(
            "SELECT task_enqueue()",
            "wrong number of arguments to function task_enqueue()",
        ),
        c(
            "SELECT task_enqueue('a','b','c','d')",
            "wrong number of arguments to function task_enqueue()",
        ),
        c(
            "SELECT task_claim()",
            "wrong number of arguments to function task_claim()",
        ),
        c(
            "SELECT task_progress('x')",
            "wrong number of arguments to function task_progress()",
        ),
        c(
            "SELECT task_fail('x')",
            "wrong number of arguments to function task_fail()",
        ),
        c(
            "SELECT task_init(1, 2)",
            "wrong number of arguments to function task_init()",
        ),
        c(
            "SELECT task_init(1)",
            "task_init: options must be text or NULL, got an integer",
        ),
        c(
            r#"SELECT task_init('{"index": true}')"#,
            "task_init: unknown option \"index\" (expected one of: index_completed, index_events)",
        ),
        // types
        c(
            "SELECT task_enqueue(1)",
            "task_enqueue: type must be text, got an integer",
        ),
        c(
            "SELECT task_enqueue(NULL)",
            "task_enqueue: type must be text, got NULL",
        ),
        c(
            "SELECT task_enqueue(x'00')",
            "task_enqueue: type must be text, got a blob",
        ),
        c(
            "SELECT task_enqueue('')",
            "task_enqueue: type must not be empty",
        ),
        c(
            "SELECT task_enqueue('t', 42)",
            "task_enqueue: details must be text or NULL, got an integer",
        ),
        c(
            "SELECT task_enqueue('t', '{\"a\":')",
            "task_enqueue: details is not valid JSON",
        ),
        c(
            "SELECT task_enqueue('t', 'NaN')",
            "task_enqueue: details is not valid JSON",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{')",
            "task_enqueue: options are not valid JSON",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '[1]')",
            "task_enqueue: options must be a JSON object",
        ),
        c(
            "SELECT task_enqueue('t', NULL, 7)",
            "task_enqueue: options must be text or NULL, got an integer",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"prority\":1}')",
            "task_enqueue: unknown option \"prority\"",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"priority\":\"high\"}')",
            "task_enqueue: option \"priority\" must be a whole number, got a string",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"priority\":1.5}')",
            "task_enqueue: option \"priority\" must be a whole number, got 1.5",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"priority\":18446744073709551615}')",
            "task_enqueue: option \"priority\" is out of range for a 64-bit integer, got 18446744073709551615",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"parent_id\":\"nope\"}')",
            "task_enqueue: parent_id must be a UUID, got 'nope'",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"priority\":2147483648}')",
            "task_enqueue: priority must be between -2147483648 and 2147483647, got 2147483648",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"max_attempts\":0}')",
            "task_enqueue: max_attempts must be between 1 and 1000, got 0",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"max_attempts\":1001}')",
            "task_enqueue: max_attempts must be between 1 and 1000, got 1001",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"delay\":-1}')",
            "task_enqueue: delay must be between 0 and",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"run_at\":-5}')",
            "task_enqueue: run_at must be between 0 and",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"run_at\":5,\"delay\":5}')",
            "task_enqueue: give run_at or delay, not both",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"now\":-1}')",
            "task_enqueue: now must be between 0 and",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"queue\":\"\"}')",
            "task_enqueue: option \"queue\" must not be empty",
        ),
        c(
            "SELECT task_enqueue('t', NULL, '{\"id\":\"nope\"}')",
            "task_enqueue: id must be a UUID, got 'nope'",
        ),
        c(
            &format!("SELECT task_enqueue('t', NULL, json_object('id', {Q}))"),
            "task_enqueue: task 00000000-0000-7000-8000-000000000001 already exists",
        ),
        c(
            &format!("SELECT task_enqueue('t', NULL, json_object('parent_id', {UNKNOWN}))"),
            "task_enqueue: parent task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            "SELECT task_claim('')",
            "task_claim: worker must not be empty",
        ),
        c(
            "SELECT task_claim(3)",
            "task_claim: worker must be text, got an integer",
        ),
        c(
            "SELECT task_claim('w', '{\"lease\":0}')",
            "task_claim: lease must be between 1 and",
        ),
        c(
            "SELECT task_claim('w', '{\"queue\":[]}')",
            "task_claim: option \"queue\" must be a queue name or a non-empty array",
        ),
        c(
            "SELECT task_claim('w', '{\"queue\":[1]}')",
            "task_claim: option \"queue\" must be a queue name or a non-empty array",
        ),
        c(
            "SELECT task_claim('w', '{\"worker\":\"x\"}')",
            "task_claim: unknown option \"worker\"",
        ),
        // ids
        c(
            "SELECT task_progress('nope', 5)",
            "task_progress: id must be a UUID, got 'nope'",
        ),
        c(
            &format!("SELECT task_progress({UNKNOWN}, 5)"),
            "task_progress: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            &format!("SELECT task_complete({UNKNOWN})"),
            "task_complete: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            &format!("SELECT task_fail({UNKNOWN}, 'e')"),
            "task_fail: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            &format!("SELECT task_cancel({UNKNOWN})"),
            "task_cancel: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            &format!("SELECT task_retry({UNKNOWN})"),
            "task_retry: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            &format!("SELECT task_heartbeat({UNKNOWN})"),
            "task_heartbeat: task 00000000-0000-7000-8000-0000000000ff not found",
        ),
        c(
            "SELECT task_complete(5)",
            "task_complete: id must be text, got an integer",
        ),
        // progress values
        c(
            &format!("SELECT task_progress({R}, 101)"),
            "task_progress: progress must be between 0 and 100, got 101",
        ),
        c(
            &format!("SELECT task_progress({R}, -1)"),
            "task_progress: progress must be between 0 and 100, got -1",
        ),
        c(
            &format!("SELECT task_progress({R}, NULL)"),
            "task_progress: progress must be a number between 0 and 100, got NULL",
        ),
        c(
            &format!("SELECT task_progress({R}, '40')"),
            "task_progress: progress must be a number between 0 and 100, got text",
        ),
        c(
            &format!("SELECT task_progress({R}, 1e999)"),
            "task_progress: progress must be between 0 and 100, got inf",
        ),
        c(
            &format!("SELECT task_progress({R}, 5, '{{\"attempt\":0}}')"),
            "task_progress: attempt must be between 1 and 1000, got 0",
        ),
        // transitions
        c(
            &format!("SELECT task_complete({Q})"),
            "is queued, not running",
        ),
        c(
            &format!("SELECT task_complete({DONE})"),
            "is completed, not running",
        ),
        c(
            &format!("SELECT task_complete({CANC})"),
            "is cancelled, not running",
        ),
        c(
            &format!("SELECT task_progress({Q}, 5)"),
            "is queued, not running",
        ),
        c(
            &format!("SELECT task_fail({DONE}, 'e')"),
            "is completed, not running",
        ),
        c(
            &format!("SELECT task_complete({R}, '{{')"),
            "task_complete: result is not valid JSON",
        ),
        c(
            &format!("SELECT task_complete({R}, NULL, '{{\"attempt\":2}}')"),
            "task_complete: attempt 2 of task 00000000-0000-7000-8000-000000000002 is stale: the task is on attempt 1",
        ),
        c(
            &format!("SELECT task_fail({R}, NULL)"),
            "task_fail: error must be text, got NULL",
        ),
        c(
            &format!("SELECT task_fail({R}, 'e', '{{\"retry\":\"no\"}}')"),
            "task_fail: option \"retry\" must be true or false, got a string",
        ),
        c(
            &format!("SELECT task_cancel({DONE})"),
            "task_cancel: task 00000000-0000-7000-8000-000000000003 is already completed",
        ),
        c(
            &format!("SELECT task_retry({DONE})"),
            "task_retry: task 00000000-0000-7000-8000-000000000003 is completed; only failed or cancelled",
        ),
        c(
            &format!("SELECT task_retry({R})"),
            "is running; only failed or cancelled",
        ),
        // the tasks table
        c(
            "INSERT INTO tasks(type, worker) VALUES ('t', 'w')",
            "tasks: column worker cannot be set on INSERT",
        ),
        c(
            "INSERT INTO tasks(type, status) VALUES ('t', 'running')",
            "tasks: a new task's status is 'queued', got 'running'",
        ),
        c(
            "INSERT INTO tasks(details) VALUES ('{}')",
            "tasks: type must be given and not empty",
        ),
        c(
            "INSERT INTO tasks(type, details) VALUES ('t', '{')",
            "tasks: details is not valid JSON",
        ),
        c(
            "INSERT INTO tasks(type, priority) VALUES ('t', 'high')",
            "tasks: column priority must be an integer, got text",
        ),
        c(
            &format!("UPDATE tasks SET priority = 3 WHERE id = {R}"),
            "tasks: task 00000000-0000-7000-8000-000000000002 is running; only queued or blocked tasks can be changed",
        ),
        c(
            &format!("UPDATE tasks SET worker = 'x' WHERE id = {Q}"),
            "tasks: column worker cannot be changed",
        ),
        c(
            &format!("UPDATE tasks SET status = 'completed' WHERE id = {R}"),
            "tasks: status can only be set to 'cancelled' or to 'queued' (retry), got 'completed'",
        ),
        c(
            &format!("UPDATE tasks SET status = 'cancelled', priority = 1 WHERE id = {Q}"),
            "tasks: change status in an UPDATE of its own",
        ),
        c(
            &format!("UPDATE tasks SET priority = NULL WHERE id = {Q}"),
            "tasks: priority cannot be NULL",
        ),
        c(
            &format!("DELETE FROM tasks WHERE id = {R}"),
            "tasks: task 00000000-0000-7000-8000-000000000002 is running; cancel it or let it finish before deleting it",
        ),
    ]
}

#[test]
fn every_bad_input_is_an_error_that_changes_nothing() {
    let db = one_task_per_status();
    let before = snapshot(&db);
    assert!(!before.is_empty());
    let mut failures = Vec::new();
    for (sql, want) in cases() {
        match db.execute_batch(&sql) {
            Ok(()) => failures.push(format!("{sql}: succeeded, expected `{want}`")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(want) {
                    failures.push(format!("{sql}:\n   got: {msg}\n  want: {want}"));
                }
            }
        }
        let after = snapshot(&db);
        if after != before {
            failures.push(format!("{sql}: changed the storage"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn verbs_before_task_init_say_to_run_it() {
    let db = Connection::open_in_memory().unwrap();
    load(&db);
    for sql in [
        "SELECT task_enqueue('t')",
        "SELECT task_claim('w')",
        "SELECT task_progress('00000000-0000-7000-8000-000000000001', 1)",
        "SELECT task_complete('00000000-0000-7000-8000-000000000001')",
        "SELECT task_fail('00000000-0000-7000-8000-000000000001', 'e')",
        "SELECT task_cancel('00000000-0000-7000-8000-000000000001')",
        "SELECT task_retry('00000000-0000-7000-8000-000000000001')",
        "SELECT task_heartbeat('00000000-0000-7000-8000-000000000001')",
        "SELECT * FROM tasks",
        "INSERT INTO tasks(type) VALUES ('t')",
    ] {
        let msg = db.execute_batch(sql).unwrap_err().to_string();
        assert!(
            msg.contains(
                "the task storage does not exist in this database; run SELECT task_init() first"
            ),
            "{sql}: {msg}"
        );
    }
    let tables: i64 = db
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "a failing verb creates nothing");
}

#[test]
fn a_storage_from_a_newer_release_is_refused() {
    let db = memory_db();
    db.execute(
        "UPDATE task_meta SET value = 99 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    let msg = db
        .execute_batch("SELECT task_init()")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("schema version 99, newer than this extension"),
        "{msg}"
    );
}

#[test]
fn task_init_is_refused_in_a_trigger() {
    let db = memory_db();
    db.execute_batch(
        "CREATE TABLE t(x); CREATE TRIGGER t_init AFTER INSERT ON t BEGIN SELECT task_init(); END;",
    )
    .unwrap();
    let msg = db
        .execute_batch("INSERT INTO t VALUES (1)")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unsafe use of task_init()"), "{msg}");
}
