//! Every verb through rusqlite, with the clock supplied (`{"now": ms}`) so
//! leases, backoff and run_at are tested without sleeping.

use rusqlite::{Connection, params};
use serde_json::Value;
use sqlite_task_tests::{err, memory_db, one};

fn enqueue(db: &Connection, kind: &str, opts: &str) -> String {
    db.query_row(
        "SELECT task_enqueue(?1, NULL, ?2)",
        params![kind, opts],
        |r| r.get(0),
    )
    .unwrap()
}

fn claim(db: &Connection, worker: &str, opts: &str) -> Option<Value> {
    let s: Option<String> = db
        .query_row("SELECT task_claim(?1, ?2)", params![worker, opts], |r| {
            r.get(0)
        })
        .unwrap();
    s.map(|s| serde_json::from_str(&s).unwrap())
}

fn call(db: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<String> {
    db.query_row(sql, p, |r| r.get(0))
}

fn status(db: &Connection, id: &str) -> String {
    db.query_row("SELECT status FROM tasks WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_task_goes_from_enqueue_to_completed() {
    let db = memory_db();
    let id = enqueue(&db, "resize", r#"{"now": 1000}"#);
    assert_eq!(status(&db, &id), "queued");

    let t = claim(&db, "w1", r#"{"now": 2000, "lease": 10000}"#).unwrap();
    assert_eq!(t["id"], id.as_str());
    assert_eq!(t["type"], "resize");
    assert_eq!(t["queue"], "default");
    assert_eq!(t["attempt"], 1);
    assert_eq!(t["lease_until"], 12000);
    assert_eq!(status(&db, &id), "running");

    let r = call(
        &db,
        "SELECT task_progress(?1, 40, '{\"attempt\":1,\"now\":4500}')",
        [&id],
    );
    assert_eq!(r.unwrap(), "running");
    let (progress, lease): (i64, i64) = db
        .query_row(
            "SELECT progress, lease_until FROM tasks WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (progress, lease),
        (40, 14500),
        "progress a quarter of the lease after the claim renews it by the claim's length"
    );

    let r = call(
        &db,
        "SELECT task_complete(?1, '{\"ok\":1}', '{\"attempt\":1,\"now\":4000}')",
        [&id],
    );
    assert_eq!(r.unwrap(), "completed");
    let (st, result, done, prog): (String, String, i64, i64) = db
        .query_row(
            "SELECT status, result, completed_at, progress FROM tasks WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (st.as_str(), result.as_str(), done, prog),
        ("completed", "{\"ok\":1}", 4000, 100)
    );
    assert!(claim(&db, "w1", r#"{"now": 5000}"#).is_none());
}

#[test]
fn claims_follow_priority_then_run_at_then_fifo() {
    let db = memory_db();
    let a = enqueue(&db, "a", r#"{"now": 1000}"#);
    let b = enqueue(&db, "b", r#"{"now": 1000, "priority": 5}"#);
    let c = enqueue(&db, "c", r#"{"now": 1000}"#);
    let d = enqueue(&db, "d", r#"{"now": 1000, "run_at": 500}"#);
    let e = enqueue(&db, "e", r#"{"now": 1000, "delay": 5000}"#);
    let order: Vec<String> = (0..4)
        .map(|_| {
            claim(&db, "w", r#"{"now": 2000}"#).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, vec![b, d, a, c]);
    assert!(
        claim(&db, "w", r#"{"now": 5999}"#).is_none(),
        "delayed task is not ready yet"
    );
    assert_eq!(
        claim(&db, "w", r#"{"now": 6000}"#).unwrap()["id"],
        e.as_str()
    );
}

#[test]
fn queue_filters_take_a_name_or_a_list() {
    let db = memory_db();
    let mail = enqueue(&db, "m", r#"{"queue": "mail", "now": 1}"#);
    let img = enqueue(&db, "i", r#"{"queue": "images", "now": 2, "priority": 1}"#);
    let other = enqueue(&db, "o", r#"{"queue": "other", "now": 3, "priority": 9}"#);
    assert_eq!(
        claim(&db, "w", r#"{"queue": "mail", "now": 10}"#).unwrap()["id"],
        mail.as_str()
    );
    assert!(claim(&db, "w", r#"{"queue": "mail", "now": 10}"#).is_none());
    let t = claim(&db, "w", r#"{"queue": ["mail", "images"], "now": 10}"#).unwrap();
    assert_eq!(t["id"], img.as_str());
    assert_eq!(t["queue"], "images");
    assert_eq!(
        claim(&db, "w", r#"{"now": 10}"#).unwrap()["id"],
        other.as_str()
    );
}

#[test]
fn an_expired_lease_is_reclaimed_and_the_old_worker_is_fenced_off() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0}"#);
    let t1 = claim(&db, "slow", r#"{"now": 0, "lease": 1000}"#).unwrap();
    assert_eq!(t1["attempt"], 1);
    assert!(
        claim(&db, "fast", r#"{"now": 999}"#).is_none(),
        "lease still held"
    );
    let t2 = claim(&db, "fast", r#"{"now": 1000}"#).unwrap();
    assert_eq!(
        (t2["id"].as_str(), t2["attempt"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    let e: String = db
        .query_row("SELECT error FROM tasks WHERE id = ?1", [&id], |r| r.get(0))
        .unwrap();
    assert_eq!(e, "lease expired on attempt 1 (worker slow)");

    for sql in [
        "SELECT task_progress(?1, 50, '{\"attempt\":1}')",
        "SELECT task_heartbeat(?1, '{\"attempt\":1}')",
        "SELECT task_complete(?1, NULL, '{\"attempt\":1}')",
        "SELECT task_fail(?1, 'x', '{\"attempt\":1}')",
    ] {
        let msg = call(&db, sql, [&id]).unwrap_err().to_string();
        assert!(
            msg.contains(&format!(
                "attempt 1 of task {id} is stale: the task is on attempt 2"
            )),
            "{sql}: {msg}"
        );
        assert!(msg.contains("held by worker 'fast'"), "{msg}");
    }
    assert_eq!(
        call(
            &db,
            "SELECT task_complete(?1, NULL, '{\"attempt\":2}')",
            [&id]
        )
        .unwrap(),
        "completed"
    );
}

#[test]
fn a_lease_that_expires_on_the_last_attempt_fails_the_task() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0, "max_attempts": 1}"#);
    claim(&db, "w1", r#"{"now": 0, "lease": 100}"#).unwrap();
    assert!(
        claim(&db, "w2", r#"{"now": 100}"#).is_none(),
        "nothing left to claim"
    );
    let (st, e, done): (String, String, i64) = db
        .query_row(
            "SELECT status, error, completed_at FROM tasks WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (st.as_str(), e.as_str(), done),
        ("failed", "lease expired on attempt 1 (worker w1)", 100)
    );
}

#[test]
fn a_lease_is_renewed_by_heartbeat_and_progress() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0}"#);
    claim(&db, "w", r#"{"now": 0, "lease": 1000}"#).unwrap();
    call(&db, "SELECT task_heartbeat(?1, '{\"now\": 900}')", [&id]).unwrap();
    assert!(
        claim(&db, "w2", r#"{"now": 1500}"#).is_none(),
        "heartbeat moved the lease to 1900"
    );
    call(
        &db,
        "SELECT task_progress(?1, 10, '{\"now\": 1800, \"lease\": 5000}')",
        [&id],
    )
    .unwrap();
    assert_eq!(one::<i64>(&db, "SELECT lease_until FROM tasks"), 6800);
    call(&db, "SELECT task_heartbeat(?1, '{\"now\": 6000}')", [&id]).unwrap();
    assert_eq!(
        one::<i64>(&db, "SELECT lease_until FROM tasks"),
        11000,
        "the new length sticks"
    );
    assert_eq!(
        one::<i64>(&db, "SELECT progress FROM tasks"),
        10,
        "heartbeat keeps progress"
    );
}

#[test]
fn failures_retry_with_exponential_backoff_and_jitter_then_fail() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0, "max_attempts": 4}"#);
    let mut now = 0;
    for attempt in 1..=3 {
        let t = claim(&db, "w", &format!(r#"{{"now": {now}}}"#)).unwrap();
        assert_eq!(t["attempt"], attempt);
        let r = call(
            &db,
            &format!("SELECT task_fail(?1, 'boom {attempt}', '{{\"now\": {now}}}')"),
            [&id],
        );
        assert_eq!(r.unwrap(), "queued");
        let run_at: i64 = one(&db, "SELECT run_at FROM tasks");
        let full = 1000 * (1 << (attempt - 1));
        let wait = run_at - now;
        assert!(
            wait >= full / 2 && wait <= full,
            "attempt {attempt}: waited {wait}, full {full}"
        );
        assert!(claim(&db, "w", &format!(r#"{{"now": {}}}"#, run_at - 1)).is_none());
        now = run_at;
    }
    claim(&db, "w", &format!(r#"{{"now": {now}}}"#)).unwrap();
    assert_eq!(
        call(&db, "SELECT task_fail(?1, 'last')", [&id]).unwrap(),
        "failed"
    );
    let (st, e): (String, String) = db
        .query_row("SELECT status, error FROM tasks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((st.as_str(), e.as_str()), ("failed", "last"));
}

#[test]
fn backoff_is_capped_at_an_hour() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0, "max_attempts": 30}"#);
    db.execute("UPDATE task_store SET attempts = 24", [])
        .unwrap();
    claim(&db, "w", r#"{"now": 0}"#).unwrap();
    call(&db, "SELECT task_fail(?1, 'x', '{\"now\": 0}')", [&id]).unwrap();
    let run_at: i64 = one(&db, "SELECT run_at FROM tasks");
    assert!((1_800_000..=3_600_000).contains(&run_at), "{run_at}");
}

#[test]
fn fail_options_set_a_delay_or_skip_retries() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0}"#);
    claim(&db, "w", r#"{"now": 0}"#).unwrap();
    call(
        &db,
        "SELECT task_fail(?1, 'x', '{\"now\": 10, \"delay\": 0}')",
        [&id],
    )
    .unwrap();
    assert_eq!(one::<i64>(&db, "SELECT run_at FROM tasks"), 10);
    claim(&db, "w", r#"{"now": 10}"#).unwrap();
    let r = call(
        &db,
        "SELECT task_fail(?1, 'fatal', '{\"retry\": false}')",
        [&id],
    );
    assert_eq!(r.unwrap(), "failed");
}

#[test]
fn cancelling_a_running_task_tells_its_worker() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0}"#);
    claim(&db, "w", r#"{"now": 0}"#).unwrap();
    assert_eq!(
        call(&db, "SELECT task_cancel(?1)", [&id]).unwrap(),
        "cancelled"
    );
    assert_eq!(
        call(
            &db,
            "SELECT task_progress(?1, 60, '{\"attempt\": 1}')",
            [&id]
        )
        .unwrap(),
        "cancelled"
    );
    assert_eq!(
        call(&db, "SELECT task_heartbeat(?1)", [&id]).unwrap(),
        "cancelled"
    );
    let msg = call(&db, "SELECT task_complete(?1)", [&id])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is cancelled, not running"), "{msg}");
    assert_eq!(
        one::<i64>(&db, "SELECT progress FROM tasks"),
        0,
        "progress after cancel is not recorded"
    );
    let msg = call(&db, "SELECT task_cancel(?1)", [&id])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is already cancelled"), "{msg}");
}

#[test]
fn retry_requeues_failed_and_cancelled_tasks_only() {
    let db = memory_db();
    let id = enqueue(&db, "t", r#"{"now": 0, "max_attempts": 1}"#);
    let msg = call(&db, "SELECT task_retry(?1)", [&id])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("is queued; only failed or cancelled tasks can be retried"),
        "{msg}"
    );
    claim(&db, "w", r#"{"now": 0}"#).unwrap();
    call(&db, "SELECT task_fail(?1, 'x')", [&id]).unwrap();
    assert_eq!(
        call(&db, "SELECT task_retry(?1, '{\"now\": 50}')", [&id]).unwrap(),
        "queued"
    );
    let (att, run_at, worker): (i64, i64, Option<String>) = db
        .query_row("SELECT attempts, run_at, worker FROM tasks", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((att, run_at, worker), (0, 50, None));
    assert_eq!(claim(&db, "w", r#"{"now": 50}"#).unwrap()["attempt"], 1);
}

#[test]
fn children_name_an_existing_parent() {
    let db = memory_db();
    let parent = enqueue(&db, "playlist", r#"{"now": 0}"#);
    let child = enqueue(
        &db,
        "track",
        &format!(r#"{{"parent_id": "{parent}", "now": 0}}"#),
    );
    let got: String = db
        .query_row(
            "SELECT id FROM tasks WHERE parent_id = ?1",
            [&parent],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(got, child);
    let t = claim(&db, "w", r#"{"now": 0}"#).unwrap();
    assert_eq!(t["parent_id"], Value::Null);
    let t = claim(&db, "w", r#"{"now": 0}"#).unwrap();
    assert_eq!(t["parent_id"], parent.as_str());
}

#[test]
fn supplied_ids_are_canonical_and_unique() {
    let db = memory_db();
    let id = enqueue(
        &db,
        "t",
        r#"{"id": "0193A000-0000-7000-8000-0000000000AB"}"#,
    );
    assert_eq!(id, "0193a000-0000-7000-8000-0000000000ab");
    let msg = err(
        &db,
        r#"SELECT task_enqueue('t', NULL, '{"id": "0193a000-0000-7000-8000-0000000000ab"}')"#,
    );
    assert!(
        msg.contains("task_enqueue: task 0193a000-0000-7000-8000-0000000000ab already exists"),
        "{msg}"
    );
    let generated = enqueue(&db, "t", "{}");
    assert_eq!(
        &generated[14..15],
        "7",
        "generated ids are UUIDv7: {generated}"
    );
}

#[test]
fn details_come_back_as_json_in_the_claim() {
    let db = memory_db();
    db.query_row(
        r#"SELECT task_enqueue('t', '{"path": "a.png", "sizes": [1, 2], "u": "é✓"}')"#,
        [],
        |_| Ok(()),
    )
    .unwrap();
    let t = claim(&db, "w", "{}").unwrap();
    assert_eq!(t["details"]["sizes"][1], 2);
    assert_eq!(t["details"]["u"], "é✓");
}
