//! Each call is all-or-nothing, runs in the caller's transaction and works
//! from a trigger: the transactional outbox.

use sqlite_task_tests::{memory_db, one};

#[test]
fn enqueue_from_a_trigger_commits_and_rolls_back_with_the_business_row() {
    let db = memory_db();
    db.execute_batch(
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT NOT NULL);
         CREATE TRIGGER orders_ship AFTER INSERT ON orders BEGIN
           SELECT task_enqueue('ship', json_object('order', NEW.id));
         END;",
    )
    .unwrap();
    db.execute_batch("INSERT INTO orders(item) VALUES ('book')")
        .unwrap();
    assert_eq!(
        one::<String>(&db, "SELECT details FROM tasks"),
        r#"{"order":1}"#
    );

    db.execute_batch("BEGIN; INSERT INTO orders(item) VALUES ('pen'); ROLLBACK;")
        .unwrap();
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM tasks"),
        1,
        "rolled back with the order"
    );

    // A failing statement undoes its own trigger's enqueue.
    let e = db.execute_batch("INSERT INTO orders(item) VALUES ('a'), (NULL)");
    assert!(e.is_err());
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM orders"), 1);
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM tasks"), 1);
}

#[test]
fn a_trigger_that_fails_to_enqueue_aborts_the_business_write() {
    let db = memory_db();
    db.execute_batch(
        "CREATE TABLE jobs(kind TEXT);
         CREATE TRIGGER jobs_enqueue AFTER INSERT ON jobs BEGIN
           SELECT task_enqueue(NEW.kind);
         END;",
    )
    .unwrap();
    let msg = db
        .execute_batch("INSERT INTO jobs VALUES ('')")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("task_enqueue: type must not be empty"),
        "{msg}"
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM jobs"), 0);
}

#[test]
fn verbs_follow_the_callers_transaction_and_savepoints() {
    let db = memory_db();
    db.execute_batch(
        "BEGIN;
         SELECT task_enqueue('a');
         SAVEPOINT s;
         SELECT task_enqueue('b');
         SELECT task_claim('w');
         ROLLBACK TO s;
         RELEASE s;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(
        one::<String>(&db, "SELECT group_concat(type || ':' || status) FROM tasks"),
        "a:queued"
    );
    db.execute_batch("BEGIN; SELECT task_claim('w'); ROLLBACK;")
        .unwrap();
    assert_eq!(one::<String>(&db, "SELECT status FROM tasks"), "queued");
}

#[test]
fn a_trigger_on_the_storage_can_chain_tasks() {
    // Re-entrancy: task_complete's UPDATE fires a trigger that calls
    // task_enqueue on the same connection.
    let db = memory_db();
    db.execute_batch(
        "CREATE TRIGGER chain AFTER UPDATE OF status ON task_store
          WHEN NEW.status = 'completed' AND NEW.type = 'step1' BEGIN
           SELECT task_enqueue('step2', json_object('after', NEW.id));
         END;",
    )
    .unwrap();
    db.execute_batch("SELECT task_enqueue('step1')").unwrap();
    db.execute_batch("SELECT task_complete(json_extract(task_claim('w'), '$.id'))")
        .unwrap();
    assert_eq!(
        one::<String>(
            &db,
            "SELECT group_concat(type || ':' || status) FROM (SELECT * FROM tasks ORDER BY rowid)"
        ),
        "step1:completed,step2:queued"
    );
}
