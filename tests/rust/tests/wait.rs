//! Waiting through rusqlite (docs/reference/workers.md, "Waiting for work"):
//! a connection blocked in task_wait, or in a long-poll claim, wakes when
//! another connection of the process commits, and only then; and the waits
//! are refused inside a transaction. Across processes: tests/python/test_wait.py.

use rusqlite::Connection;
use sqlite_task_tests::{TempDir, err, file_db, one};
use std::time::{Duration, Instant};

#[test]
fn a_wait_ends_when_another_connection_commits() {
    let dir = TempDir::new("wait");
    let waiter = file_db(&dir.0);
    let path = dir.0.clone();
    let writer = std::thread::spawn(move || {
        let db = file_db(&path);
        std::thread::sleep(Duration::from_millis(200));
        one::<String>(&db, "SELECT task_enqueue('job')");
    });
    let start = Instant::now();
    let woke: i64 = one(&waiter, "SELECT task_wait(20000)");
    assert_eq!(woke, 1);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    writer.join().unwrap();
    // The connection's own commit is not another's.
    one::<String>(&waiter, "SELECT task_enqueue('mine')");
    assert_eq!(one::<i64>(&waiter, "SELECT task_wait(100)"), 0);
}

#[test]
fn a_long_poll_claims_the_task_another_connection_enqueues() {
    let dir = TempDir::new("longpoll");
    let worker = file_db(&dir.0);
    let path = dir.0.clone();
    let producer = std::thread::spawn(move || {
        let db = file_db(&path);
        std::thread::sleep(Duration::from_millis(200));
        one::<String>(
            &db,
            "SELECT task_enqueue('job', NULL, '{\"id\": \"00000000-0000-7000-8000-00000000c001\", \"queue\": \"lp\"}')",
        )
    });
    let claimed: String = one(
        &worker,
        "SELECT json_extract(task_claim('w', '{\"queue\": \"lp\", \"wait\": 20000}'), '$.id')",
    );
    assert_eq!(claimed, producer.join().unwrap());
}

#[test]
fn waits_are_refused_inside_a_transaction() {
    let dir = TempDir::new("waittxn");
    let db: Connection = file_db(&dir.0);
    db.execute_batch("BEGIN").unwrap();
    assert!(err(&db, "SELECT task_wait(10)").contains("cannot wait inside a transaction"));
    assert!(
        err(&db, "SELECT task_claim('w', '{\"wait\": 10}')")
            .contains("cannot wait inside a transaction")
    );
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(one::<i64>(&db, "SELECT task_wait(0)"), 0);
}
