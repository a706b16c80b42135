//! The workflow cases, sqlite-task only (raw SQLite and the peers have no parents, dependencies
//! or unique keys): draining fan-out/fan-in diamonds built with `depends_on`, enqueueing with a
//! unique key (a new key, and a key already held), reading the progress of a parent of many
//! children, and the cycle of one parent's children. report.rs divides each by the plain case of
//! the same run. Set up as cases.rs sets up its own: a fresh WAL database per run, the untimed
//! preparation in one transaction, then a WAL checkpoint; the harness checks every answer.

use std::time::Duration;

use rusqlite::types::Value;
use serde_json::json;

use crate::Env;
use crate::cases::{Clock, M, claim_complete, with_db};
use crate::queue::{Q, Res, Sync, Sys};

/// The tasks of one diamond between its root and its join: 1 + 98 + 1 = 100 tasks a diamond.
pub const DIAMOND_WIDTH: u64 = 98;
/// Running children of the rollup's parent that have reported progress.
const ROLLUP_RUNNING: u64 = 10;

fn open(env: &Env, p: &std::path::Path) -> Res<Q> {
    Q::open(&env.libs, Sys::Ext, p, Sync::Normal)
}

fn text(v: &Value) -> Res<&str> {
    match v {
        Value::Text(s) => Ok(s),
        _ => Err("task_enqueue returned no id".into()),
    }
}

fn scalar<T: rusqlite::types::FromSql>(q: &Q, sql: &str, id: &Value) -> Res<T> {
    Ok(q.c.query_row(sql, [id], |r| r.get(0))?)
}

/// `k` diamonds in one transaction: a root, `DIAMOND_WIDTH` tasks that depend on it, and a join
/// that depends on all of them. Returns the number of tasks.
fn diamonds(q: &Q, k: u64) -> Res<u64> {
    q.c.execute_batch("BEGIN IMMEDIATE")?;
    let mut n = 0;
    for _ in 0..k {
        let root = q.enqueue(n)?;
        n += 1;
        let on_root = json!({ "depends_on": [text(&root)?] }).to_string();
        let mut middle = Vec::with_capacity(DIAMOND_WIDTH as usize);
        for _ in 0..DIAMOND_WIDTH {
            middle.push(text(&q.enqueue_with(n, &on_root)?)?.to_string());
            n += 1;
        }
        q.enqueue_with(n, &json!({ "depends_on": middle }).to_string())?;
        n += 1;
    }
    q.c.execute_batch("COMMIT")?;
    Ok(n)
}

/// Building `k` diamonds in one transaction, timed (the drain's preparation).
pub fn dag_enqueue(env: &Env, k: u64) -> Res<M> {
    with_db(env, "dag", |p| {
        let q = open(env, p)?;
        let clock = Clock::start(Duration::MAX);
        let n = diamonds(&q, k)?;
        Ok(clock.m(n))
    })
}

/// `k` diamonds drained by claim + complete, one call per transaction as in the plain cycle:
/// the root releases its 98 dependents, the last of them releases the join.
pub fn dag_drain(env: &Env, k: u64, cap: Duration) -> Res<M> {
    with_db(env, "dag", |p| {
        let q = open(env, p)?;
        let total = diamonds(&q, k)?;
        q.checkpoint()?;
        let clock = Clock::start(cap);
        let mut done = 0;
        while let Some(id) = q.claim()? {
            q.complete(&id)?;
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        let m = clock.m(done);
        if done < total && m.secs <= cap.as_secs_f64() {
            return Err(format!("the queue ran dry after {done} of {total} tasks").into());
        }
        Ok(m)
    })
}

/// Enqueues with a new unique key each, one per transaction (the plain enqueue's counterpart).
pub fn unique_enqueue(env: &Env, n: u64, cap: Duration) -> Res<M> {
    with_db(env, "unique", |p| {
        let q = open(env, p)?;
        let clock = Clock::start(cap);
        let mut done = 0;
        for i in 0..n {
            q.enqueue_with(i, &format!(r#"{{"unique_key":"k{i}"}}"#))?;
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        let m = clock.m(done);
        let tasks: i64 =
            q.c.query_row("SELECT count(*) FROM task_store", [], |r| r.get(0))?;
        if tasks as u64 != done {
            return Err(format!("{done} unique keys made {tasks} tasks").into());
        }
        Ok(m)
    })
}

/// Enqueues of a key that a queued task holds (`on_conflict` keep, the default), one per
/// transaction: each returns the holder and adds nothing.
pub fn unique_conflict(env: &Env, n: u64, cap: Duration) -> Res<M> {
    const HELD: &str = r#"{"unique_key":"held"}"#;
    with_db(env, "unique", |p| {
        let q = open(env, p)?;
        let holder = q.enqueue_with(0, HELD)?;
        q.checkpoint()?;
        let clock = Clock::start(cap);
        let mut done = 0;
        for i in 1..=n {
            if q.enqueue_with(i, HELD)? != holder {
                return Err("a held unique key returned another task".into());
            }
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        Ok(clock.m(done))
    })
}

/// A parent, claimed, with `children` children enqueued in one transaction, then its own work
/// completed (it is `waiting`). Returns its id.
fn parent_of(q: &Q, children: u64) -> Res<Value> {
    let parent = q.enqueue(0)?;
    if q.claim()?.as_ref() != Some(&parent) {
        return Err("the parent was not claimed first".into());
    }
    let options = json!({ "parent_id": text(&parent)? }).to_string();
    q.c.execute_batch("BEGIN IMMEDIATE")?;
    for i in 1..=children {
        q.enqueue_with(i, &options)?;
    }
    q.c.execute_batch("COMMIT")?;
    let s: String = scalar(q, "SELECT task_complete(?1)", &parent)?;
    if s != "waiting" {
        return Err(format!("the parent's completion returned {s}, not waiting").into());
    }
    Ok(parent)
}

/// Reads of the progress of a parent of `children` children, a tenth of them completed and
/// `ROLLUP_RUNNING` running with progress: `SELECT progress FROM tasks WHERE id = ?`.
pub fn rollup_read(env: &Env, children: u64, n: u64, cap: Duration) -> Res<M> {
    with_db(env, "rollup", |p| {
        let q = open(env, p)?;
        let parent = parent_of(&q, children)?;
        let completed = children / 10;
        q.c.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..completed {
            let id = q.claim()?.ok_or("the queue ran dry")?;
            q.complete(&id)?;
        }
        let mut sum = 100.0 * completed as f64;
        for i in 1..=ROLLUP_RUNNING {
            let id = q.claim()?.ok_or("the queue ran dry")?;
            let pct = 5 * i as i64;
            q.progress(&id, pct, false)?;
            sum += pct as f64;
        }
        q.c.execute_batch("COMMIT")?;
        q.checkpoint()?;
        let expected = sum / children as f64;
        let clock = Clock::start(cap);
        let mut done = 0;
        for _ in 0..n {
            let got = q.progress_of(&parent)?;
            if (got - expected).abs() > 1e-9 {
                return Err(format!("the parent's progress is {got}, not {expected}").into());
            }
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        Ok(clock.m(done))
    })
}

/// Claim + complete of the `children` children of one waiting parent, one call per transaction
/// as in the plain cycle; the last completion also completes the parent.
pub fn child_cycle(env: &Env, children: u64, cap: Duration) -> Res<M> {
    with_db(env, "children", |p| {
        let q = open(env, p)?;
        let parent = parent_of(&q, children)?;
        q.checkpoint()?;
        let m = claim_complete(&q, children, cap)?;
        let status: String = scalar(&q, "SELECT status FROM tasks WHERE id = ?1", &parent)?;
        if m.ops as u64 == children && status != "completed" {
            return Err(format!("the parent is {status} after its last child").into());
        }
        Ok(m)
    })
}
