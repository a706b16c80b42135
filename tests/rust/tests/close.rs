//! The extension keeps prepared statements per connection. A connection that
//! used every verb must still close cleanly (sqlite3_close fails while any
//! statement lives) and leak nothing across many open/use/close cycles.

use rusqlite::Connection;
use sqlite_task_tests::{load, memory_db};

const EVERY_VERB: &str = r#"
    SELECT task_version(), task_debug();
    SELECT task_enqueue('a', '{"n":1}', '{"id":"00000000-0000-7000-8000-000000000001"}');
    SELECT task_enqueue('b', NULL, '{"parent_id":"00000000-0000-7000-8000-000000000001"}');
    SELECT task_enqueue('c', NULL, '{"queue":"q"}');
    SELECT task_claim('w', '{"queue":["q"]}');
    SELECT task_claim('w', '{"queue":"default"}');
    SELECT task_claim('w');
    SELECT task_progress('00000000-0000-7000-8000-000000000001', 50);
    SELECT task_heartbeat('00000000-0000-7000-8000-000000000001');
    SELECT task_complete('00000000-0000-7000-8000-000000000001', '{}');
    SELECT task_fail(id, 'e', '{"retry": false}') FROM tasks WHERE type = 'b';
    SELECT task_retry(id) FROM tasks WHERE type = 'a';
    SELECT task_cancel(id) FROM tasks WHERE type = 'b';
    SELECT task_enqueue('e', NULL, json_object('depends_on', json_array(id), 'unique_key', 'k',
                                               'queue', 'q'))
      FROM tasks WHERE type = 'c';
    SELECT task_enqueue('e', NULL, '{"unique_key": "k", "queue": "q"}');
    SELECT count(*) FROM tasks WHERE status = 'running';
    INSERT INTO tasks(type) VALUES ('d');
    UPDATE tasks SET priority = 2 WHERE type = 'd';
    DELETE FROM tasks WHERE status = 'cancelled';
"#;

#[test]
fn a_connection_that_used_every_verb_closes_cleanly() {
    let db = memory_db();
    db.execute_batch(EVERY_VERB).unwrap();
    db.close().map_err(|(_, e)| e).expect("close");
}

#[test]
fn a_connection_that_never_touched_the_table_closes_cleanly() {
    let db = memory_db();
    db.execute_batch("SELECT task_enqueue('a'); SELECT task_claim('w');")
        .unwrap();
    db.close().map_err(|(_, e)| e).expect("close");
}

#[test]
fn loading_twice_then_closing_works() {
    let db = memory_db();
    db.execute_batch("SELECT task_version(); SELECT count(*) FROM tasks;")
        .unwrap();
    load(&db);
    db.execute_batch(EVERY_VERB).unwrap();
    db.close().map_err(|(_, e)| e).expect("close");
}

fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

#[test]
fn open_use_close_cycles_keep_memory_flat() {
    let cycle = || {
        let db = Connection::open_in_memory().unwrap();
        load(&db);
        db.execute_batch("SELECT task_init()").unwrap();
        db.execute_batch(EVERY_VERB).unwrap();
        db.close().map_err(|(_, e)| e).expect("close");
    };
    for _ in 0..50 {
        cycle();
    }
    let Some(start) = rss_kib() else { return };
    for _ in 0..500 {
        cycle();
    }
    let end = rss_kib().unwrap_or(start);
    println!("RSS after warm-up {start} KiB, after 500 more cycles {end} KiB");
    assert!(
        end < start + 8 * 1024,
        "memory grew from {start} to {end} KiB"
    );
}
