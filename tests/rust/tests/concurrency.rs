//! Several connections on one WAL file, in threads: no task is claimed by
//! two workers at once, none is lost, and no SQLITE_BUSY reaches a caller
//! under the documented settings (WAL + busy_timeout). The multi-process
//! stress test lives in the stress suite; this one runs in every `make test`.

use rusqlite::{Connection, ErrorCode};
use sqlite_task_tests::{TempDir, file_db, one};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

#[test]
fn workers_in_threads_share_the_queue_without_double_claims() {
    const TASKS: usize = 2000;
    const WORKERS: usize = 4;
    let dir = TempDir::new("threads");
    let setup = file_db(&dir.0);
    drop(setup);
    let barrier = Arc::new(Barrier::new(WORKERS + 2)); // workers, producer, this thread
    let produced = Arc::new(AtomicBool::new(false));

    let producer = {
        let path = dir.0.clone();
        let barrier = Arc::clone(&barrier);
        let produced = Arc::clone(&produced);
        std::thread::spawn(move || {
            let db = file_db(&path);
            barrier.wait();
            for chunk in 0..(TASKS / 50) {
                db.execute_batch("BEGIN IMMEDIATE").unwrap();
                for i in 0..50 {
                    let n = chunk * 50 + i;
                    db.query_row(
                        "SELECT task_enqueue('t', json_object('n', ?1), json_object('priority', ?1 % 3))",
                        [n as i64],
                        |_| Ok(()),
                    )
                    .unwrap();
                }
                db.execute_batch("COMMIT").unwrap();
            }
            produced.store(true, Ordering::Release);
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let path = dir.0.clone();
            let barrier = Arc::clone(&barrier);
            let produced = Arc::clone(&produced);
            std::thread::spawn(move || {
                let db = file_db(&path);
                let name = format!("w{w}");
                barrier.wait();
                let mut done = Vec::new();
                let mut busy = 0;
                // Stop once the producer is done and the queue is empty.
                loop {
                    let finished = produced.load(Ordering::Acquire);
                    let claimed: rusqlite::Result<Option<String>> =
                        db.query_row("SELECT task_claim(?1)", [&name], |r| r.get(0));
                    let t = match claimed {
                        Ok(Some(t)) => t,
                        Ok(None) if finished => break,
                        Ok(None) => {
                            std::thread::yield_now();
                            continue;
                        }
                        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                            busy += 1;
                            continue;
                        }
                        Err(e) => panic!("claim: {e}"),
                    };
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    let id = v["id"].as_str().unwrap().to_string();
                    let attempt = v["attempt"].as_i64().unwrap();
                    let r: rusqlite::Result<String> = db.query_row(
                        "SELECT task_complete(?1, NULL, json_object('attempt', ?2))",
                        rusqlite::params![id, attempt],
                        |r| r.get(0),
                    );
                    match r {
                        Ok(_) => done.push(id),
                        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                            busy += 1
                        }
                        Err(e) => panic!("complete: {e}"),
                    }
                }
                (name, done, busy)
            })
        })
        .collect();

    barrier.wait();
    producer.join().unwrap();
    let mut completed_by: HashMap<String, String> = HashMap::new();
    let mut total_busy = 0;
    for h in workers {
        let (name, done, busy) = h.join().unwrap();
        println!("{name}: completed {} tasks, {busy} SQLITE_BUSY", done.len());
        total_busy += busy;
        for id in done {
            if let Some(other) = completed_by.insert(id.clone(), name.clone()) {
                panic!("task {id} completed by {other} and {name}");
            }
        }
    }
    let db = file_db(&dir.0);
    assert_eq!(total_busy, 0, "SQLITE_BUSY reached a caller");
    assert_eq!(completed_by.len(), TASKS, "every task completed once");
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM tasks WHERE status = 'completed'"),
        TASKS as i64
    );
    assert_eq!(one::<i64>(&db, "SELECT max(attempts) FROM tasks"), 1);
    assert_eq!(one::<String>(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn sqlite_busy_keeps_its_code_through_a_function() {
    let dir = TempDir::new("busy");
    let holder = file_db(&dir.0);
    let other = file_db(&dir.0);
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    other.execute_batch("SELECT task_enqueue('t')").unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for sql in ["SELECT task_enqueue('t')", "SELECT task_claim('w')"] {
        let e: rusqlite::Error = other.query_row(sql, [], |_| Ok(())).unwrap_err();
        assert_eq!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy),
            "{sql}: {e}"
        );
    }
    holder.execute_batch("COMMIT").unwrap();
    other
        .query_row("SELECT task_enqueue('t')", [], |_| Ok(()))
        .unwrap();
}

#[test]
fn a_claim_waits_for_the_lock_instead_of_failing() {
    // With a busy timeout, a claim issued while another connection holds the
    // write lock waits and then succeeds.
    let dir = TempDir::new("wait");
    let holder = file_db(&dir.0);
    holder
        .execute_batch("SELECT task_enqueue('t'); BEGIN IMMEDIATE;")
        .unwrap();
    let path = dir.0.clone();
    let waiter = std::thread::spawn(move || {
        let db: Connection = file_db(&path);
        let t: Option<String> = db
            .query_row("SELECT task_claim('w')", [], |r| r.get(0))
            .unwrap();
        t.is_some()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    holder.execute_batch("COMMIT").unwrap();
    assert!(waiter.join().unwrap());
}

#[test]
fn an_idle_claim_takes_no_write_lock() {
    // With nothing to claim, task_claim only reads: it answers NULL at once
    // even while another connection holds the write lock, so idle workers
    // polling the queue never contend with writers.
    let dir = TempDir::new("idle");
    let holder = file_db(&dir.0);
    let other = file_db(&dir.0);
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; SELECT task_enqueue('t');")
        .unwrap();
    for sql in [
        "SELECT task_claim('w')",
        r#"SELECT task_claim('w', '{"queue":"default"}')"#,
        r#"SELECT task_claim('w', '{"queue":["default","x"]}')"#,
    ] {
        let got: Option<String> = other.query_row(sql, [], |r| r.get(0)).unwrap();
        assert!(got.is_none(), "{sql}: the uncommitted task is not visible");
    }
    holder.execute_batch("COMMIT").unwrap();
}
