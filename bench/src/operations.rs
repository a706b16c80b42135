//! The operations cases, sqlite-task only (raw SQLite and the peers have no schedules, retention,
//! pruning or stats): a `task_stats()` read on a database of 1M finished tasks, with and without
//! the index of completed tasks; `task_prune` deleting 1M finished tasks in its bounded steps; and
//! the plain cycle and single enqueue on a database with a schedule and a queue retention, or with
//! the index of completed tasks, which report.rs divides by the plain case of the same run.
//!
//! The finished tasks are written straight into task_store by one INSERT … SELECT: made by claim
//! and complete they would take over a minute a million, untimed but in every run. Each row is
//! what the extension writes for a task completed, failed after its attempts, or cancelled while
//! queued; the unfinished tasks beside them are made through the extension. Set up as cases.rs
//! sets up its own: a fresh WAL database per run, the untimed preparation, then a WAL checkpoint;
//! the harness checks every answer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::Env;
use crate::cases::{Clock, M, backlog, claim_complete, enqueue_each, with_db};
use crate::queue::{Q, Res, Sync, Sys, WORKER, now_ms};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// The queues the tasks are spread over: q0 … q9.
const QUEUES: u64 = 10;
/// Unfinished tasks beside the finished ones: queued (spread over the queues), and running.
const QUEUED: u64 = 1_000;
const RUNNING: u64 = 10;

/// `?1` finished tasks completed over the day before `?2`, in seq and time order as a queue makes
/// them (a prune walks seqs: old tasks have low ones), task i in queue q(i % 10). Of every 100
/// of a queue, 5 failed after their 3 attempts and 1 was cancelled while queued; the rest
/// completed. Each ran 10 … 999 ms after waiting 50 ms. The ids are UUIDv7-shaped: the enqueue
/// time, then i.
const FINISHED_SQL: &str = "
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?1),
t(i, done, ran, status) AS (
  SELECT i, ?2 - 86400000 + i * 86400000 / ?1, 10 + i * 7919 % 990,
         CASE WHEN i / 10 % 100 < 5 THEN 'failed' WHEN i / 10 % 100 = 5 THEN 'cancelled'
              ELSE 'completed' END
    FROM k)
INSERT INTO task_store (id, queue, type, status, progress, attempts, max_attempts, worker,
    run_at, created_at, updated_at, started_at, completed_at, details, result, error)
SELECT printf('%08x-%04x-7000-8000-%012x', (done - ran - 50) >> 16, (done - ran - 50) & 65535, i),
       'q' || (i % 10), 'bench', status,
       CASE status WHEN 'completed' THEN 100 ELSE 0 END,
       CASE status WHEN 'completed' THEN 1 WHEN 'failed' THEN 3 ELSE 0 END, 3,
       CASE WHEN status <> 'cancelled' THEN 'w1' END,
       done - ran - 50, done - ran - 50, done,
       CASE WHEN status <> 'cancelled' THEN done - ran END, done,
       '{\"n\":' || i || '}',
       CASE status WHEN 'completed' THEN '{\"ok\":true}' END,
       CASE status WHEN 'failed' THEN 'bench failure' END
  FROM t";

/// The status `FINISHED_SQL` gives task i.
fn status_of(i: u64) -> &'static str {
    match i / QUEUES % 100 {
        0..5 => "failed",
        5 => "cancelled",
        _ => "completed",
    }
}

fn open(env: &Env, p: &Path) -> Res<Q> {
    Q::open(&env.libs, Sys::Ext, p, Sync::Normal)
}

/// `finished` tasks finished over the day before `end` and `QUEUED + RUNNING` enqueued (one
/// transaction), then `RUNNING` of them claimed, on the clock `now`; then a checkpoint.
fn finished_db(q: &Q, finished: u64, end: i64, now: i64) -> Res<()> {
    q.c.execute_batch("BEGIN IMMEDIATE")?;
    let n = q.c.execute(FINISHED_SQL, [finished as i64, end])?;
    if n as u64 != finished {
        return Err(format!("{n} finished tasks written, not {finished}").into());
    }
    for i in 0..QUEUED + RUNNING {
        let options = json!({ "queue": format!("q{}", i % QUEUES), "now": now }).to_string();
        q.enqueue_with(i, &options)?;
    }
    q.c.execute_batch("COMMIT")?;
    let claimed: String = q.c.query_row(
        "SELECT task_claim_batch(?1, ?2, ?3)",
        rusqlite::params![WORKER, RUNNING as i64, json!({ "now": now }).to_string()],
        |r| r.get(0),
    )?;
    let claimed: Json = serde_json::from_str(&claimed)?;
    if claimed.as_array().map(Vec::len) != Some(RUNNING as usize) {
        return Err(format!("task_claim_batch claimed {claimed}, not {RUNNING} tasks").into());
    }
    q.checkpoint()
}

/// What the database of a cycle or an enqueue case has beside its tasks.
#[derive(Clone, Copy, Debug)]
pub enum Setup {
    /// A schedule of another queue, due each hour on the hour (the claims check it; in a case
    /// that spans the start of an hour it enqueues one task), and a retention of a day on the
    /// queue the tasks are in (`task_tick` applies it; nothing ticks).
    ScheduleAndRetention,
    /// `task_init('{"index_completed": true}')`: completions add an index entry.
    IndexCompleted,
    /// `task_queue('default', '{"events": "off"}')`: the queue's tasks write no events.
    EventsOff,
    /// `task_init('{"index_events": true}')`: every event adds an entry to the log's index by
    /// task.
    EventsIndexed,
}

impl Setup {
    fn apply(self, q: &Q) -> Res<()> {
        match self {
            Setup::ScheduleAndRetention => {
                let s: String = q.c.query_row(
                    r#"SELECT task_schedule('s', '@every 1h', 'other', NULL,
                         '{"queue":"elsewhere"}')"#,
                    [],
                    |r| r.get(0),
                )?;
                let s: Json = serde_json::from_str(&s)?;
                if s["next_at"].as_i64().is_none_or(|at| at <= now_ms()) {
                    return Err(format!("task_schedule set no future occurrence: {s}").into());
                }
                let queue: String = q.c.query_row(
                    r#"SELECT task_queue('default', '{"retention": 86400000}')"#,
                    [],
                    |r| r.get(0),
                )?;
                let queue: Json = serde_json::from_str(&queue)?;
                if queue["retention"]["completed"] != json!(DAY_MS) {
                    return Err(format!("task_queue set no retention: {queue}").into());
                }
            }
            Setup::IndexCompleted => {
                q.c.query_row(
                    r#"SELECT task_init('{"index_completed": true}')"#,
                    [],
                    |_| Ok(()),
                )?;
                let n: i64 = q.c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'task_store_done'",
                    [],
                    |r| r.get(0),
                )?;
                if n != 1 {
                    return Err("task_init made no task_store_done index".into());
                }
            }
            Setup::EventsOff => {
                let queue: String = q.c.query_row(
                    r#"SELECT task_queue('default', '{"events": "off"}')"#,
                    [],
                    |r| r.get(0),
                )?;
                let queue: Json = serde_json::from_str(&queue)?;
                if queue["events"] != json!("off") {
                    return Err(format!("task_queue did not turn events off: {queue}").into());
                }
            }
            Setup::EventsIndexed => {
                q.c.query_row(r#"SELECT task_init('{"index_events": true}')"#, [], |_| {
                    Ok(())
                })?;
                let n: i64 = q.c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'task_event_store_task'",
                    [],
                    |r| r.get(0),
                )?;
                if n != 1 {
                    return Err("task_init made no task_event_store_task index".into());
                }
            }
        }
        Ok(())
    }
}

/// The plain cycle (claim + complete, one call per transaction) on a database set up so.
pub fn cycle(env: &Env, setup: Setup, waiting: u64, cycles: u64, cap: Duration) -> Res<M> {
    with_db(env, "ops-cycle", |p| {
        let q = open(env, p)?;
        setup.apply(&q)?;
        backlog(&q, waiting)?;
        claim_complete(&q, cycles, cap)
    })
}

/// Single enqueues, one per transaction, on a database set up so.
pub fn enqueue(env: &Env, setup: Setup, n: u64, cap: Duration) -> Res<M> {
    with_db(env, "ops-enqueue", |p| {
        let q = open(env, p)?;
        setup.apply(&q)?;
        q.checkpoint()?;
        enqueue_each(&q, n, cap)
    })
}

/// What `task_stats`, on the clock its database was made on, must say of `finished_db`'s tasks.
fn check_stats(text: &str, finished: u64, indexed: bool) -> Res<()> {
    let v: Json = serde_json::from_str(text)?;
    let queues = v["queues"].as_array().ok_or("task_stats: no queues")?;
    let sum = |key: &str| -> i64 { queues.iter().filter_map(|q| q[key].as_i64()).sum() };
    let count = |status: &str, last_hour: bool| {
        (0..finished)
            .filter(|&i| status_of(i) == status)
            .filter(|&i| !last_hour || DAY_MS - (i as i64 * DAY_MS / finished as i64) <= HOUR_MS)
            .count() as i64
    };
    let mut want = vec![
        ("queued", QUEUED as i64),
        ("ready", QUEUED as i64),
        ("running", RUNNING as i64),
        ("expired", 0),
        ("failed", count("failed", false)),
        ("cancelled", count("cancelled", false)),
        ("failed_last_hour", count("failed", true)),
    ];
    if indexed {
        want.push(("completed_last_hour", count("completed", true)));
    }
    for (key, n) in want {
        if sum(key) != n {
            return Err(format!("task_stats: {key} is {}, not {n}: {text}", sum(key)).into());
        }
    }
    if queues.len() as u64 != QUEUES || v["index_completed"] != json!(indexed) {
        return Err(format!("task_stats: unexpected answer {text}").into());
    }
    if indexed && queues.iter().any(|q| q["run_ms_p95"].as_i64().is_none()) {
        return Err(format!("task_stats: no run times with the index: {text}").into());
    }
    Ok(())
}

/// `reads` reads of `task_stats` (on the database's clock) among `finished` finished tasks,
/// each timed: one operation of the median read's length.
pub fn stats(env: &Env, finished: u64, reads: u64, indexed: bool, cap: Duration) -> Res<M> {
    with_db(env, "stats", |p| {
        let q = open(env, p)?;
        let now = now_ms();
        finished_db(&q, finished, now, now)?;
        if indexed {
            Setup::IndexCompleted.apply(&q)?;
            q.checkpoint()?;
        }
        let options = json!({ "now": now }).to_string();
        let mut st = q.c.prepare_cached("SELECT task_stats(?1)")?;
        let first: String = st.query_row([&options], |r| r.get(0))?;
        check_stats(&first, finished, indexed)?;
        let clock = Clock::start(cap);
        let mut times = Vec::with_capacity(reads as usize);
        while (times.len() as u64) < reads {
            let t = Instant::now();
            let text: String = st.query_row([&options], |r| r.get(0))?;
            times.push(t.elapsed().as_secs_f64());
            if text != first {
                return Err(format!("task_stats changed on the same clock: {text}").into());
            }
            if clock.over(times.len() as u64) {
                break;
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(M {
            ops: 1.0,
            secs: times[times.len() / 2],
        })
    })
}

/// The longest step of each prune run, in run order, for the row that reports it.
#[derive(Default)]
pub struct LongestSteps(RefCell<VecDeque<f64>>);

impl LongestSteps {
    /// The next prune run's longest step, as one operation that long.
    pub fn next(&self) -> Res<M> {
        let ms = self
            .0
            .borrow_mut()
            .pop_front()
            .ok_or("no prune run to report: the prune row did not run")?;
        Ok(M {
            ops: 1.0,
            secs: ms / 1e3,
        })
    }
}

/// One `task_prune` (default step) of `finished` finished tasks, all older than its cutoff of an
/// hour ago, beside the unfinished ones: rates the rows deleted by the call's wall time, and
/// keeps the longest step it reports in `steps`.
pub fn prune(env: &Env, finished: u64, steps: &LongestSteps) -> Res<M> {
    with_db(env, "prune", |p| {
        let q = open(env, p)?;
        let now = now_ms();
        finished_db(&q, finished, now - HOUR_MS, now)?;
        let options = json!({ "older_than": HOUR_MS, "now": now }).to_string();
        let t0 = Instant::now();
        let out: String =
            q.c.query_row("SELECT task_prune(?1)", [&options], |r| r.get(0))?;
        let secs = t0.elapsed().as_secs_f64();
        let v: Json = serde_json::from_str(&out)?;
        let (deleted, longest) = (v["deleted"].as_u64(), v["longest_step_ms"].as_f64());
        let left: i64 =
            q.c.query_row("SELECT count(*) FROM task_store", [], |r| r.get(0))?;
        match (deleted, longest) {
            (Some(d), Some(ms)) if d == finished && left as u64 == QUEUED + RUNNING => {
                steps.0.borrow_mut().push_back(ms);
                Ok(M {
                    ops: d as f64,
                    secs,
                })
            }
            _ => Err(format!("task_prune returned {out}, {left} tasks left").into()),
        }
    })
}
