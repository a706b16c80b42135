//! Hostile input, the grid: every SQL function the extension registers,
//! at every arity it accepts, called with every combination of argument
//! types: NULL, integer, real, text, blob and 1 MB of text; the same for the
//! table-valued `task_tree(root)` (which `pragma_function_list` does not
//! list) and for each workflow column of `INSERT INTO tasks`. On a database
//! holding a task in each state (workflow ones included: a parent waiting
//! for its running child, a blocked dependent, a task waiting for children
//! it does not have yet), and on one without the storage.
//!
//! Nothing may panic (`internal error in sqlite-task`); a refused call names
//! its function (or table) and leaves the storage as it was; an accepted call
//! returns a value of the type its function returns. Each call runs in a
//! transaction that is rolled back, so every call sees the same database.

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

/// A task in each status, and workflows: `…0a1` waiting for its running
/// child `…0a2`, `…0a3` blocked by the running child, `…0a4` with no work of
/// its own waiting for its queued child `…0a5`.
fn populated() -> Connection {
    let db = one_task_per_status();
    db.execute_batch(
        r#"
        SELECT task_enqueue('p', NULL, '{"id":"00000000-0000-7000-8000-0000000000a1","queue":"wf","priority":9,"now":0}');
        SELECT task_claim('w', '{"queue":"wf","now":0}');
        SELECT task_enqueue('c', NULL, '{"id":"00000000-0000-7000-8000-0000000000a2","queue":"wf","parent_id":"00000000-0000-7000-8000-0000000000a1","now":0}');
        SELECT task_complete('00000000-0000-7000-8000-0000000000a1', NULL, '{"now":1}');
        SELECT task_claim('w', '{"queue":"wf","now":1}');
        SELECT task_enqueue('d', NULL, '{"id":"00000000-0000-7000-8000-0000000000a3","queue":"wf","depends_on":["00000000-0000-7000-8000-0000000000a2"],"unique_key":"k","now":1}');
        SELECT task_enqueue('g', NULL, '{"id":"00000000-0000-7000-8000-0000000000a4","wait_for_children":true,"now":1}');
        SELECT task_enqueue('c', NULL, '{"id":"00000000-0000-7000-8000-0000000000a5","queue":"wf2","parent_id":"00000000-0000-7000-8000-0000000000a4","now":1}');
        "#,
    )
    .expect("populate workflows");
    let statuses: String = one(
        &db,
        "SELECT group_concat(status, ',') FROM (SELECT status FROM tasks
          WHERE id LIKE '00000000-0000-7000-8000-0000000000a_' ORDER BY id)",
    );
    assert_eq!(statuses, "waiting,running,blocked,waiting,queued");
    db
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
        "SELECT (SELECT ifnull(group_concat(r, char(10)), '') FROM (SELECT quote(seq) || quote(id) ||
           quote(status) || quote(priority) || quote(progress) || quote(attempts) ||
           quote(worker) || quote(lease_until) || quote(run_at) || quote(updated_at) ||
           quote(result) || quote(error) || quote(details) || quote(parent_id) ||
           quote(unique_key) || quote(children) || quote(waiting_for) ||
           quote(dependents) || quote(flags) AS r
           FROM task_store ORDER BY seq))
         || (SELECT ifnull(group_concat(dep || '>' || task, ' '), '') FROM task_deps)
         || (SELECT ifnull(group_concat(seq || ':' || id || ':' || unfinished, ' '), '')
               FROM task_parent_store)",
    )
}

/// The SQL types a function's result may have.
fn result_types(name: &str) -> &'static [&'static str] {
    match name {
        "task_init" | "task_complete_batch" | "task_busy_timeout" | "task_unschedule" => {
            &["integer"]
        }
        "task_claim" | "task_complete_next" => &["text", "null"],
        "task__note" => &["integer", "text", "null"],
        "task__event" => &["integer"],
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

/// Runs `sql` with `args` in a transaction that is rolled back: Ok(accepted)
/// when it ran, with no panic and, when refused, an error naming `name` and
/// the storage unchanged.
fn attempt(db: &Connection, name: &str, call: &str, sql: &str, args: &[&dyn ToSql]) -> bool {
    db.execute_batch("BEGIN").unwrap();
    let before = snapshot(db);
    let r = db.prepare(sql).and_then(|mut st| {
        st.query(args).and_then(|mut rows| {
            while rows.next()?.is_some() {}
            Ok(())
        })
    });
    let accepted = match r {
        Ok(()) => true,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.contains("internal error in sqlite-task"),
                "{call}: panic inside the extension: {msg}"
            );
            assert!(
                msg.starts_with(&format!("{name}: ")) || msg.contains(&format!("{name}(")),
                "{call}: the error does not name {name}: {msg}"
            );
            assert_eq!(
                snapshot(db),
                before,
                "{call} was refused ({msg}) but changed the storage"
            );
            false
        }
    };
    db.execute_batch("ROLLBACK").unwrap();
    accepted
}

/// `task_tree(root)` with no root, each kind of root (and the id of a
/// task that has a child, and a UUID no task has), and two arguments; and a
/// write to it, which is refused.
fn tree_grid(db: &Connection) -> (usize, usize) {
    let mut roots = kinds();
    roots.push((
        "parent",
        Value::Text("00000000-0000-7000-8000-0000000000a1".into()),
    ));
    roots.push((
        "unknown",
        Value::Text("00000000-0000-7000-8000-0000000000ff".into()),
    ));
    let (mut accepted, mut refused) = (0, 0);
    let mut count = |ok: bool| if ok { accepted += 1 } else { refused += 1 };
    count(attempt(
        db,
        "task_tree",
        "task_tree()",
        "SELECT * FROM task_tree",
        &[],
    ));
    for (label, v) in &roots {
        let call = format!("task_tree({label})");
        count(attempt(
            db,
            "task_tree",
            &call,
            "SELECT * FROM task_tree(?1)",
            &[v],
        ));
        count(attempt(
            db,
            "task_tree",
            &format!("{call} by its hidden column"),
            "SELECT id, depth, progress FROM task_tree WHERE root = ?1",
            &[v],
        ));
        for (label2, w) in &roots[..2] {
            count(attempt(
                db,
                "task_tree",
                &format!("task_tree({label}, {label2})"),
                "SELECT * FROM task_tree(?1, ?2)",
                &[v, w],
            ));
        }
        count(attempt(
            db,
            "task_tree",
            &format!("INSERT INTO task_tree(id) VALUES ({label})"),
            "INSERT INTO task_tree(id) VALUES (?1)",
            &[v],
        ));
    }
    (accepted, refused)
}

/// `INSERT INTO tasks(type, <column>)` for each workflow column (and the
/// counters the queue manages) with each kind of value.
fn insert_grid(db: &Connection) -> (usize, usize) {
    let cols = [
        "parent_id",
        "unique_key",
        "depends_on",
        "on_conflict",
        "unique_scope",
        "on_child_failure",
        "wait_for_children",
        "children",
        "children_done",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for col in cols {
        for (label, v) in kinds() {
            let call = format!("INSERT INTO tasks(type, {col}) VALUES ('t', {label})");
            let sql = format!("INSERT INTO tasks(type, {col}, now) VALUES ('t', ?1, 5)");
            if attempt(db, "tasks", &call, &sql, &[&v]) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    (accepted, refused)
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
    for (what, db) in [("populated", populated()), ("without storage", bare())] {
        let (accepted, refused) = grid(&db);
        println!("{what}: {accepted} calls accepted, {refused} refused");
        assert!(
            refused > 1000,
            "{what}: only {refused} refusals: is the grid complete?"
        );
        let (accepted, refused) = tree_grid(&db);
        println!("{what}: task_tree: {accepted} reads accepted, {refused} refused");
        assert!(refused > 10, "{what}: task_tree: only {refused} refusals");
        let (accepted, refused) = insert_grid(&db);
        println!("{what}: INSERT INTO tasks: {accepted} accepted, {refused} refused");
        assert!(refused > 10, "{what}: INSERT: only {refused} refusals");
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
