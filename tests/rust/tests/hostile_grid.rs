//! Hostile input, the grid: every SQL function the extension registers,
//! at every arity it accepts, called with every combination of argument
//! types: NULL, integer, real, text, blob and 1 MB of text. On a database
//! holding a task in each state, and on one without the storage.
//!
//! Nothing may panic (`internal error in sqlite-task`); a refused call names
//! its function and leaves the storage as it was; an accepted call returns a
//! value of the type its function returns. Each call runs in a transaction
//! that is rolled back, so every call sees the same database.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ToSql};
use sqlite_task_tests::{load, one, one_task_per_status};

/// One argument of each SQL type, and a big one.
fn kinds() -> Vec<(&'static str, Value)> {
    vec![
        ("NULL", Value::Null),
        ("int", Value::Integer(42)),
        ("real", Value::Real(2.5)),
        ("text", Value::Text("x".into())),
        ("blob", Value::Blob(vec![0, 0xff])),
        ("1MB", Value::Text("x".repeat(1 << 20))),
    ]
}

/// A database with the extension loaded but no storage.
fn bare() -> Connection {
    let db = Connection::open_in_memory().unwrap();
    load(&db);
    db
}

fn snapshot(db: &Connection) -> String {
    let exists: i64 = one(
        db,
        "SELECT count(*) FROM sqlite_schema WHERE name = 'task_store'",
    );
    if exists == 0 {
        return "no storage".into();
    }
    one(
        db,
        "SELECT ifnull(group_concat(r, char(10)), '') FROM (SELECT quote(seq) || quote(id) ||
           quote(status) || quote(priority) || quote(progress) || quote(attempts) ||
           quote(worker) || quote(lease_until) || quote(run_at) || quote(updated_at) ||
           quote(result) || quote(error) || quote(details) AS r FROM task_store ORDER BY seq)",
    )
}

/// The SQL types a function's result may have.
fn result_types(name: &str) -> &'static [&'static str] {
    match name {
        "task_init" | "task_complete_batch" => &["integer"],
        "task_claim" | "task_complete_next" => &["text", "null"],
        "task__note" => &["integer", "text", "null"],
        _ => &["text"],
    }
}

fn type_of(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "integer",
        ValueRef::Real(_) => "real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "blob",
    }
}

/// Every (function, arity) registered, from SQLite's own list.
fn functions(db: &Connection) -> Vec<(String, usize)> {
    let mut st = db
        .prepare(
            "SELECT DISTINCT name, narg FROM pragma_function_list
              WHERE name LIKE 'task%' ORDER BY name, narg",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        let (name, narg) = r.unwrap();
        match usize::try_from(narg) {
            Ok(n) => out.push((name, n)),
            // variadic: a few arities
            Err(_) => out.extend((0..=3).map(|n| (name.clone(), n))),
        }
    }
    out
}

/// All `n`-tuples of indexes into `k` kinds.
fn tuples(k: usize, n: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for _ in 0..n {
        out = out
            .into_iter()
            .flat_map(|t| {
                (0..k).map(move |i| {
                    let mut t = t.clone();
                    t.push(i);
                    t
                })
            })
            .collect();
    }
    out
}

fn grid(db: &Connection) -> (usize, usize) {
    let kinds = kinds();
    let (mut accepted, mut refused) = (0, 0);
    for (name, n) in functions(db) {
        let sql = format!(
            "SELECT {name}({})",
            (1..=n)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for t in tuples(kinds.len(), n) {
            let args: Vec<&dyn ToSql> = t.iter().map(|&i| &kinds[i].1 as &dyn ToSql).collect();
            let label: Vec<&str> = t.iter().map(|&i| kinds[i].0).collect();
            let call = format!("{name}({})", label.join(", "));
            db.execute_batch("BEGIN").unwrap();
            let before = snapshot(db);
            let r = db.query_row(&sql, args.as_slice(), |r| {
                Ok(type_of(r.get_ref(0)?).to_string())
            });
            match r {
                Ok(ty) => {
                    accepted += 1;
                    assert!(
                        result_types(&name).contains(&ty.as_str()),
                        "{call} returned {ty}"
                    );
                }
                Err(e) => {
                    refused += 1;
                    let msg = e.to_string();
                    assert!(
                        !msg.contains("internal error in sqlite-task"),
                        "{call}: panic inside the extension: {msg}"
                    );
                    assert!(
                        msg.starts_with(&format!("{name}: ")),
                        "{call}: the error does not name the function: {msg}"
                    );
                    assert_eq!(
                        snapshot(db),
                        before,
                        "{call} was refused ({msg}) but changed the storage"
                    );
                }
            }
            db.execute_batch("ROLLBACK").unwrap();
        }
    }
    (accepted, refused)
}

#[test]
fn every_function_with_every_argument_type() {
    for (what, db) in [
        ("populated", one_task_per_status()),
        ("without storage", bare()),
    ] {
        let (accepted, refused) = grid(&db);
        println!("{what}: {accepted} calls accepted, {refused} refused");
        assert!(
            refused > 1000,
            "{what}: only {refused} refusals: is the grid complete?"
        );
        // The connection still works: the storage is intact and a task can
        // be enqueued and claimed.
        let ok: String = one(&db, "PRAGMA integrity_check");
        assert_eq!(ok, "ok");
        db.execute_batch("SELECT task_init()").unwrap();
        let check: String = one(&db, "SELECT task_check()");
        assert_eq!(check, "ok", "{what}");
        let id: String = one(
            &db,
            r#"SELECT task_enqueue('after', NULL, '{"priority": 100, "now": 10}')"#,
        );
        let claimed: String = one(
            &db,
            r#"SELECT json_extract(task_claim('w9', '{"now": 10}'), '$.id')"#,
        );
        assert_eq!(claimed, id, "{what}: the claim after the grid");
    }
}
