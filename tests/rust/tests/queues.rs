//! Queue control through rusqlite (docs/reference/queues.md,
//! docs/reference/workers.md): a pause and a limit set on one connection
//! hold for claims on another of the same file, a batch gets only the free
//! slots, the fair wait is the connection's, and the bad inputs are refused
//! with the storage unchanged. The rules in full are specified by
//! tests/python/test_queue_control.py.

use rusqlite::Connection;
use sqlite_task_tests::{TempDir, err, file_db, memory_db, one};

fn call(db: &Connection, sql: &str, p: impl rusqlite::Params) -> Option<String> {
    db.query_row(sql, p, |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn enqueue(db: &Connection, queue: &str, n: usize) {
    for _ in 0..n {
        call(
            db,
            "SELECT task_enqueue('job', NULL, json_object('queue', ?1, 'now', 0))",
            [queue],
        );
    }
}

fn claim(db: &Connection, queue: &str) -> Option<String> {
    call(
        db,
        "SELECT task_claim('w', json_object('queue', ?1, 'now', 10))",
        [queue],
    )
}

fn storage(db: &Connection) -> String {
    one(
        db,
        "SELECT (SELECT ifnull(group_concat(status || updated_at || flags), '') FROM task_store)
             || '/' || (SELECT ifnull(group_concat(name || paused || ifnull(concurrency, '-')), '')
                          FROM task_queue_store)",
    )
}

#[test]
fn a_pause_set_on_one_connection_holds_for_another_that_just_found_work() {
    let dir = TempDir::new("pause");
    let admin = file_db(&dir.0);
    let worker = file_db(&dir.0);
    enqueue(&admin, "p", 4);
    assert!(claim(&worker, "p").is_some());
    assert!(
        claim(&worker, "p").is_some(),
        "the claim hint is in use now"
    );
    call(&admin, "SELECT task_queue('p', '{\"paused\": true}')", []);
    assert_eq!(claim(&worker, "p"), None);
    assert_eq!(
        call(&worker, "SELECT task_claim('w', '{\"now\": 10}')", []),
        None
    );
    call(&admin, "SELECT task_queue('p', '{\"paused\": false}')", []);
    assert!(claim(&worker, "p").is_some());
}

#[test]
fn a_limit_gives_a_batch_only_the_free_slots_across_connections() {
    let dir = TempDir::new("limit");
    let a = file_db(&dir.0);
    let b = file_db(&dir.0);
    enqueue(&a, "l", 10);
    call(&a, "SELECT task_queue('l', '{\"concurrency\": 3}')", []);
    assert!(claim(&a, "l").is_some());
    let batch = call(
        &b,
        "SELECT task_claim_batch('w', 10, '{\"queue\": \"l\", \"now\": 10}')",
        [],
    )
    .unwrap_or_default();
    assert_eq!(
        one::<i64>(&b, &format!("SELECT json_array_length('{batch}')")),
        2
    );
    assert_eq!(claim(&a, "l"), None);
    assert_eq!(
        one::<String>(
            &a,
            "SELECT name || concurrency || queued || running FROM task_queues"
        ),
        "l373"
    );
    assert_eq!(one::<String>(&a, "SELECT task_check()"), "ok");
}

#[test]
fn the_fair_wait_is_set_per_connection_and_returns_its_timeout() {
    let db = memory_db();
    assert_eq!(one::<i64>(&db, "SELECT task_busy_timeout(1234)"), 1234);
    assert_eq!(one::<i64>(&db, "SELECT task_busy_timeout(0)"), 0);
}

#[test]
fn bad_queue_settings_are_refused_and_change_nothing() {
    let db = memory_db();
    enqueue(&db, "q", 2);
    call(&db, "SELECT task_queue('q', '{\"concurrency\": 2}')", []);
    let before = storage(&db);
    for (sql, want) in [
        (
            "SELECT task_queue(NULL)",
            "task_queue: name must be text, got NULL",
        ),
        (
            "SELECT task_queue('')",
            "task_queue: name must not be empty",
        ),
        (
            "SELECT task_queue('q', '{\"concurrency\": 0}')",
            "task_queue: concurrency must be between 1 and 1000000, got 0",
        ),
        (
            "SELECT task_queue('q', '{\"paused\": \"no\"}')",
            "task_queue: option \"paused\" must be true or false, got a string",
        ),
        (
            "SELECT task_queue('q', '{\"rate\": 5}')",
            "task_queue: option \"rate\" must be an object {\"limit\": n, \"interval\": ms} or null, got a number",
        ),
        (
            "SELECT task_queue('q', '{\"rate\": {\"limit\": 5}}')",
            "task_queue: option \"rate\" needs both limit (claims) and interval (ms), as in {\"limit\": 10, \"interval\": 1000}",
        ),
        (
            "SELECT task_queue('q', '{\"lease\": 0}')",
            "task_queue: lease must be between 1 and 31622400000, got 0",
        ),
        (
            "SELECT task_queue('q', '{\"limit\": 5}')",
            "task_queue: unknown option \"limit\" (expected one of: paused, concurrency, rate, lease, max_attempts, backoff, backoff_max, retention, events, now)",
        ),
        (
            "SELECT task_busy_timeout(-5)",
            "task_busy_timeout: ms must be between 0 and 2147483647, got -5",
        ),
        (
            "SELECT task_busy_timeout(2.5)",
            "task_busy_timeout: ms must be an integer, got a real",
        ),
    ] {
        assert_eq!(err(&db, sql), want, "{sql}");
        assert_eq!(storage(&db), before, "{sql} changed the storage");
    }
}

#[test]
fn claims_from_every_queue_over_many_queues_keep_claim_order_across_connections() {
    let dir = TempDir::new("many");
    let producer = file_db(&dir.0);
    let worker = file_db(&dir.0);
    // 200 queues, two tasks each; queue q007's are ahead of the rest.
    producer.execute_batch("BEGIN").unwrap();
    for i in 0..400 {
        let queue = format!("q{:03}", i % 200);
        let priority = i64::from(queue == "q007");
        call(
            &producer,
            "SELECT task_enqueue('job', NULL, json_object('queue', ?1, 'priority', ?2, 'now', ?3))",
            rusqlite::params![queue, priority, i],
        );
    }
    producer.execute_batch("COMMIT").unwrap();
    let every = |now: i64| -> Option<String> {
        call(
            &worker,
            "SELECT task_claim('w', json_object('now', ?1)) ->> 'queue'",
            [now],
        )
    };
    assert_eq!(every(1_000).as_deref(), Some("q007"));
    assert_eq!(every(1_000).as_deref(), Some("q007"));
    assert_eq!(every(1_000).as_deref(), Some("q000"));
    // Another connection's new head is seen by the scan a second later at
    // the latest; until then the known heads come in claim order.
    call(
        &producer,
        "SELECT task_enqueue('job', NULL, '{\"queue\": \"zz\", \"priority\": 9, \"now\": 0}')",
        [],
    );
    let seen: Vec<String> = (0..3).filter_map(|i| every(1_000 + i * 500)).collect();
    assert!(seen.iter().any(|q| q == "zz"), "{seen:?}");
    let mut left = 0;
    while every(3_000).is_some() {
        left += 1;
    }
    assert_eq!(left, 400 + 1 - 3 - seen.len());
    assert_eq!(one::<String>(&worker, "SELECT task_check()"), "ok");
}

#[test]
fn a_version_6_storage_is_migrated_to_7_keeping_every_row_and_setting() {
    let dir = TempDir::new("v6");
    let (db, before) = sqlite_task_tests::downgraded(
        &dir.0,
        r#"
        SELECT task_enqueue('a', '{"x": 1}', '{"queue": "q", "now": 0}');
        SELECT task_enqueue('b', NULL, '{"queue": "q", "now": 0}');
        SELECT task_claim('w', '{"queue": "q", "now": 1}');
        SELECT task_queue('q', '{"concurrency": 2, "retention": 60000, "events": "transitions"}');
        UPDATE task_meta SET value = 6 WHERE key = 'schema_version';
        "#,
    );
    assert!(err(&db, "SELECT task_claim('w')").contains("schema version 6"));
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    assert_eq!(sqlite_task_tests::task_rows(&db), before);
    let q = call(&db, "SELECT task_queue('q')", []).unwrap_or_default();
    for kept in [
        r#""concurrency":2"#,
        r#""rate":null,"lease":null,"max_attempts":null"#,
        r#""completed":60000"#,
        r#""events":"transitions""#,
    ] {
        assert!(q.contains(kept), "{q}");
    }
    // The new settings work on the migrated storage.
    call(
        &db,
        r#"SELECT task_queue('q', '{"lease": 1000, "rate": {"limit": 1, "interval": 60000}}')"#,
        [],
    );
    let claimed = call(
        &db,
        "SELECT CAST(task_claim('w', '{\"queue\": \"q\", \"now\": 10}') ->> 'lease_until' AS TEXT)",
        [],
    );
    assert_eq!(claimed.as_deref(), Some("1010"));
    assert_eq!(
        call(
            &db,
            "SELECT task_claim('w', '{\"queue\": \"q\", \"now\": 11}')",
            []
        ),
        None
    );
    assert_eq!(one::<String>(&db, "SELECT task_check()"), "ok");
}

#[test]
fn a_version_8_storage_is_migrated_to_9_whose_task_queues_counts_blocked_and_waiting_tasks() {
    let dir = TempDir::new("v8");
    const ROOT: &str = "0193f000-0000-7000-8000-000000000001";
    const PARENT: &str = "0193f000-0000-7000-8000-000000000002";
    // Queue "deps" has only a blocked task, "parents" only a waiting one.
    let (db, before) = sqlite_task_tests::downgraded_to(
        &dir.0,
        8,
        &format!(
            r#"
            SELECT task_enqueue('root', NULL, '{{"id": "{ROOT}", "queue": "a", "now": 0}}');
            SELECT task_enqueue('dep', NULL, '{{"queue": "deps", "depends_on": ["{ROOT}"], "now": 0}}');
            SELECT task_enqueue('p', NULL,
                '{{"id": "{PARENT}", "queue": "parents", "wait_for_children": true, "now": 0}}');
            SELECT task_enqueue('c', NULL, '{{"queue": "a", "parent_id": "{PARENT}", "now": 0}}');
            UPDATE task_meta SET value = 8 WHERE key = 'schema_version';
            "#
        ),
    );
    let queues = "SELECT group_concat(name || ':' || queued || running, ' ') FROM task_queues";
    assert_eq!(call(&db, queues, []).as_deref(), Some("a:20"));
    assert!(err(&db, "SELECT blocked FROM task_queues").contains("no such column"));
    assert!(err(&db, "SELECT task_claim('w')").contains("schema version 8"));
    assert_eq!(one::<i64>(&db, "SELECT task_init()"), 9);
    assert_eq!(sqlite_task_tests::task_rows(&db), before);
    let counts = "SELECT group_concat(name || ':' || queued || running || blocked || waiting, ' ') \
                  FROM (SELECT * FROM task_queues ORDER BY name)";
    assert_eq!(
        call(&db, counts, []).as_deref(),
        Some("a:2000 deps:0010 parents:0001")
    );
    // The counts follow the tasks: the root's completion releases its
    // dependent, the child's completes the parent.
    call(&db, "SELECT task_claim('w', '{\"now\": 1}')", []);
    call(
        &db,
        "SELECT task_complete(?1, NULL, '{\"now\": 2}')",
        [ROOT],
    );
    assert_eq!(
        call(&db, counts, []).as_deref(),
        Some("a:1000 deps:1000 parents:0001")
    );
    let child =
        call(&db, "SELECT id FROM tasks WHERE parent_id = ?1", [PARENT]).unwrap_or_default();
    call(
        &db,
        "SELECT task_claim('w', '{\"queue\": \"a\", \"now\": 3}')",
        [],
    );
    call(
        &db,
        "SELECT task_complete(?1, NULL, '{\"now\": 4}')",
        [child.as_str()],
    );
    assert_eq!(call(&db, counts, []).as_deref(), Some("deps:1000"));
    assert_eq!(one::<String>(&db, "SELECT task_check()"), "ok");
}
