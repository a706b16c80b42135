//! The SQL functions: the table of names, arities and flags, and thin
//! handlers that read arguments (`args.rs`, `options.rs`), call the queue,
//! and return a value. A new function is one entry in [`FUNCTIONS`] and one
//! handler here; registration and dispatch (panics caught, errors named
//! after the function, result codes kept) are `ffi/function.rs`.

use super::args::arg;
use super::options;
use crate::error::{Error, Result};
use crate::ffi::{self, Conn, Flags, Handler, MIN_SQLITE_VERSION_TEXT, Out, Value, libversion};
use crate::queue::{self, ClaimArgs, FailArgs, NewTask, Queue, WorkerArgs, bulk, check, model};
use crate::storage;
use std::os::raw::c_int;
use std::rc::Rc;

struct Function {
    name: &'static str,
    /// Every arity the function accepts; SQLite rejects others when the
    /// statement is prepared ("wrong number of arguments to function ...").
    arities: &'static [c_int],
    flags: Flags,
    handler: Handler<Rc<Queue>>,
}

const fn function(
    name: &'static str,
    arities: &'static [c_int],
    flags: Flags,
    handler: Handler<Rc<Queue>>,
) -> Function {
    Function {
        name,
        arities,
        flags,
        handler,
    }
}

/// Side-effecting functions are never DETERMINISTIC or INNOCUOUS. They are
/// not DIRECTONLY either, so triggers can enqueue (with the default
/// `trusted_schema=ON`; see docs/concurrency.md).
const WRITES: Flags = Flags::UTF8;
const PURE: Flags = Flags::UTF8.innocuous().deterministic();

const FUNCTIONS: &[Function] = &[
    function("task_version", &[0], PURE, version),
    function("task_debug", &[0], Flags::UTF8.innocuous(), debug),
    // Schema changes belong in top-level SQL, not in a trigger or view.
    function("task_init", &[0, 1], Flags::UTF8.direct_only(), init),
    function("task_check", &[0], Flags::UTF8, check),
    function("task_enqueue", &[1, 2, 3], WRITES, enqueue),
    function("task_claim", &[1, 2], WRITES, claim),
    function("task_claim_batch", &[2, 3], WRITES, claim_batch),
    function("task_progress", &[2, 3], WRITES, progress),
    function("task_heartbeat", &[1, 2], WRITES, heartbeat),
    function("task_complete", &[1, 2, 3], WRITES, complete),
    function("task_complete_batch", &[1, 2], WRITES, complete_batch),
    function("task_complete_next", &[3, 4], WRITES, complete_next),
    function("task_fail_batch", &[1, 2], WRITES, fail_batch),
    function("task_fail", &[2, 3], WRITES, fail),
    function("task_cancel", &[1, 2], WRITES, cancel),
    function("task_retry", &[1, 2], WRITES, retry),
    function("task_queue", &[1, 2], WRITES, queue_settings),
    function("task_schedule", &[3, 4, 5], WRITES, schedule),
    function("task_schedule_pause", &[1, 2], WRITES, schedule_pause),
    function("task_schedule_resume", &[1, 2], WRITES, schedule_resume),
    function("task_unschedule", &[1], WRITES, unschedule),
    function("task_tick", &[0, 1], WRITES, tick),
    function("task_prune", &[1], WRITES, prune),
    function("task_stats", &[0, 1], Flags::UTF8, stats),
    // Blocks its caller until another connection commits: for top-level
    // calls only (in a trigger or view it would wait inside a statement).
    function("task_wait", &[1, 2], Flags::UTF8.direct_only(), wait),
    // Changes the connection, not the data: no trigger or view may call it.
    function(
        "task_busy_timeout",
        &[1],
        Flags::UTF8.direct_only(),
        busy_timeout,
    ),
    // Internal: the extension's own UPDATEs call it to report the rows they
    // change (see queue/notes.rs). It records its arguments on the
    // connection and returns the first. DIRECTONLY keeps it out of triggers
    // and views; calling it directly only fills a buffer nobody reads.
    function("task__note", &[-1], Flags::UTF8.direct_only(), note),
    // Internal: the extension's write statements call it for each row they
    // change, to write that row's event in the same statement
    // (queue/events.rs). It returns its first argument.
    function("task__event", &[-1], Flags::UTF8.direct_only(), event),
];

/// Registers every function on `conn`'s database, sharing `q`.
pub fn register(conn: &Conn, q: &Rc<Queue>) -> Result<()> {
    for f in FUNCTIONS {
        ffi::register_function(conn, f.name, f.arities, f.flags, q, f.handler)?;
    }
    Ok(())
}

/// The options argument at position `i`.
fn options_at<'a>(args: &[Value<'a>], i: usize) -> Result<Option<&'a str>> {
    arg(args, i, "options").text_or_null()
}

fn version(_: &Rc<Queue>, _: &[Value<'_>]) -> Result<Out> {
    Ok(Out::Static(concat!("v", env!("CARGO_PKG_VERSION"))))
}

fn debug(q: &Rc<Queue>, _: &[Value<'_>]) -> Result<Out> {
    let schema = match storage::stored_version(q.conn()) {
        Ok(Some(v)) => format!("{v} (this build: {})", storage::SCHEMA_VERSION),
        Ok(None) => "none: run SELECT task_init()".to_string(),
        Err(e) => format!("unreadable: {e}"),
    };
    Ok(Out::Text(format!(
        "sqlite-task v{}\nsqlite {} (floor {})\nschema {}\nbuild {}",
        env!("CARGO_PKG_VERSION"),
        libversion(),
        MIN_SQLITE_VERSION_TEXT,
        schema,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )))
}

fn queue_settings(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let name = arg(args, 0, "name").nonempty()?;
    let o = options::QueueSettings::parse(options_at(args, 1)?)?;
    let change = queue::settings::Change {
        paused: o.paused,
        concurrency: o.concurrency,
        rate: o.rate,
        lease: o.lease,
        max_attempts: o.max_attempts,
        backoff: o.backoff,
        backoff_max: o.backoff_max,
        retention: o.retention,
        events: o.events,
        now: o.now,
    };
    q.ensure_writable()?;
    queue::settings::queue(q, name, &change).map(Out::Text)
}

/// The longest fair wait: what `PRAGMA busy_timeout` takes (a C int of ms).
const BUSY_TIMEOUT_MAX_MS: i64 = i32::MAX as i64;

fn busy_timeout(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let ms = arg(args, 0, "ms").integer()?;
    let ms = model::check_range("ms", ms, 0, BUSY_TIMEOUT_MAX_MS)?;
    q.conn().set_fair_busy_timeout(ms as u32)?;
    Ok(Out::Int(ms))
}

fn check(q: &Rc<Queue>, _: &[Value<'_>]) -> Result<Out> {
    check::check(q).map(Out::Text)
}

fn init(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let o = options::Init::parse(options_at(args, 0)?)?;
    q.init(o.index_completed, o.index_events).map(Out::Int)
}

fn schedule(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let name = arg(args, 0, "name").nonempty()?;
    let spec = arg(args, 1, "cron").text()?;
    let kind = arg(args, 2, "type").nonempty()?;
    let details = arg(args, 3, "details").text_or_null()?;
    let o = options::Schedule::parse(options_at(args, 4)?)?;
    let s = queue::schedule::NewSchedule {
        name,
        spec,
        kind,
        details,
        queue: o.queue.as_deref(),
        priority: o.priority,
        max_attempts: o.max_attempts,
        unique_key: o.unique_key.as_deref(),
        on_conflict: o.on_conflict.as_deref(),
        unique_scope: o.unique_scope.as_deref(),
        catch_up: o.catch_up.as_deref(),
        catch_up_window: o.catch_up_window,
        paused: o.paused,
        if_exists: o.if_exists.as_deref(),
        now: o.now,
    };
    q.ensure_writable()?;
    queue::schedule::schedule(q, &s).map(Out::Text)
}

fn schedule_pause(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    pause_or_resume(q, args, true)
}

fn schedule_resume(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    pause_or_resume(q, args, false)
}

fn pause_or_resume(q: &Rc<Queue>, args: &[Value<'_>], paused: bool) -> Result<Out> {
    let name = arg(args, 0, "name").nonempty()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_writable()?;
    queue::schedule::pause(q, name, paused, o.now).map(Out::Text)
}

fn unschedule(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let name = arg(args, 0, "name").nonempty()?;
    q.ensure_writable()?;
    queue::schedule::unschedule(q, name).map(|()| Out::Int(1))
}

fn tick(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let o = options::Clock::parse(options_at(args, 0)?)?;
    let now = model::clock(o.now)?;
    q.ensure_writable()?;
    let enqueued = queue::schedule::tick(q, now, queue::schedule::TICK)?;
    let pruned = queue::prune::retention(q, now)?;
    Ok(Out::Text(format!(
        "{{\"enqueued\":{enqueued},\"pruned\":{pruned}}}"
    )))
}

fn prune(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let o = options::Prune::parse(options_at(args, 0)?)?;
    let now = model::clock(o.now)?;
    let cutoff = match (o.older_than, o.before) {
        (Some(_), Some(_)) => return Err(Error::new("give older_than or before, not both")),
        (Some(age), None) => now - model::check_range("older_than", age, 0, model::MAX_TIME_MS)?,
        (None, Some(at)) => model::check_range("before", at, 0, model::MAX_TIME_MS)?,
        (None, None) => {
            return Err(Error::new(
                "give older_than (ms) or before (a time in ms): which finished tasks to delete",
            ));
        }
    };
    let step = model::check_range(
        "step",
        o.step.unwrap_or(queue::prune::DEFAULT_STEP),
        1,
        queue::prune::MAX_STEP,
    )?;
    let (completed, failed, cancelled) = o.status;
    let c = queue::prune::Cutoffs {
        completed: completed.then_some(cutoff),
        failed: failed.then_some(cutoff),
        cancelled: cancelled.then_some(cutoff),
        queue: o.queue.as_deref(),
    };
    // The event log is one for every queue: pruned by age with a prune of
    // every queue and status, unless told otherwise.
    let every = o.queue.is_none() && o.status == (true, true, true);
    let events = match o.events {
        Some(true) if o.queue.is_some() => {
            return Err(Error::new(
                "events are pruned for every queue at once; give events or queue, not both",
            ));
        }
        Some(on) => on,
        None => every,
    };
    q.ensure_writable()?;
    let p = queue::prune::prune(q, &c, step, events)?;
    Ok(Out::Text(format!(
        "{{\"deleted\":{},\"events\":{},\"steps\":{},\"longest_step_ms\":{:.3}}}",
        p.deleted, p.events, p.steps, p.longest_step_ms
    )))
}

fn wait(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    // A whole real is taken (better-sqlite3 binds every JS number as one).
    let ms = arg(args, 0, "timeout_ms").whole()?;
    let ms = model::check_range("timeout_ms", ms, 0, queue::wait::MAX_WAIT_MS)?;
    let o = options::Wait::parse(options_at(args, 1)?)?;
    let after = o
        .after_seq
        .map(|n| model::check_range("after_seq", n, 0, i64::MAX))
        .transpose()?;
    q.ensure_ready()?;
    queue::wait::wait(q, ms, after).map(|changed| Out::Int(i64::from(changed)))
}

fn stats(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let o = options::Stats::parse(options_at(args, 0)?)?;
    q.ensure_ready()?;
    queue::stats::stats(q, o.queue.as_deref(), o.now).map(Out::Text)
}

fn enqueue(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let kind = arg(args, 0, "type").nonempty()?;
    let details = arg(args, 1, "details").text_or_null()?;
    let o = options::Enqueue::parse(options_at(args, 2)?)?;
    let task = NewTask {
        kind,
        details,
        queue: o.queue.as_deref(),
        priority: o.priority,
        run_at: o.run_at,
        delay: o.delay,
        max_attempts: o.max_attempts,
        parent_id: o.parent_id.as_deref(),
        id: o.id.as_deref(),
        now: o.now,
        depends_on: o.depends_on,
        unique_key: o.unique_key.as_deref(),
        on_conflict: o.on_conflict.as_deref(),
        unique_scope: o.unique_scope.as_deref(),
        on_child_failure: o.on_child_failure.as_deref(),
        wait_for_children: o.wait_for_children,
    };
    q.ensure_writable()?;
    queue::enqueue(q, &task).map(|t| Out::Text(t.id))
}

fn claim_args(worker: &str, o: options::Claim) -> ClaimArgs<'_> {
    ClaimArgs {
        worker,
        queues: o.queue,
        lease_ms: o.lease,
        now: o.now,
        wait_ms: o.wait,
    }
}

fn claim(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let worker = arg(args, 0, "worker").nonempty()?;
    let o = options::Claim::parse(options_at(args, 1)?)?;
    let a = claim_args(worker, o);
    q.ensure_writable()?;
    Ok(match queue::claim(q, &a, 1)?.first() {
        Some(t) => Out::Text(t.to_json()),
        None => Out::Null,
    })
}

fn claim_batch(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let worker = arg(args, 0, "worker").nonempty()?;
    let limit = arg(args, 1, "limit").integer()?;
    let o = options::Claim::parse(options_at(args, 2)?)?;
    let a = claim_args(worker, o);
    q.ensure_writable()?;
    let tasks = queue::claim(q, &a, limit)?;
    Ok(Out::Text(queue::claim::list_json(&tasks)))
}

fn progress(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let percent = match arg(args, 1, "progress").value {
        Value::Integer(i) => i as f64,
        Value::Real(r) if r.is_finite() => r,
        Value::Real(r) => {
            return Err(Error::new(format!(
                "progress must be between 0 and 100, got {r}"
            )));
        }
        v => {
            return Err(Error::new(format!(
                "progress must be a number between 0 and 100, got {}",
                v.type_name()
            )));
        }
    };
    let o = options::Progress::parse(options_at(args, 2)?)?;
    let w = WorkerArgs {
        attempt: o.attempt,
        lease_ms: o.lease,
        now: o.now,
        writeback_ms: o.writeback,
    };
    q.ensure_writable()?;
    queue::progress(q, id, Some(percent), &w).map(|s| Out::Static(s.as_str()))
}

fn heartbeat(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let o = options::Heartbeat::parse(options_at(args, 1)?)?;
    let w = WorkerArgs {
        attempt: o.attempt,
        lease_ms: o.lease,
        now: o.now,
        writeback_ms: None,
    };
    q.ensure_writable()?;
    queue::progress(q, id, None, &w).map(|s| Out::Static(s.as_str()))
}

fn complete(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let result = arg(args, 1, "result").text_or_null()?;
    let o = options::Complete::parse(options_at(args, 2)?)?;
    let w = WorkerArgs {
        attempt: o.attempt,
        now: o.now,
        ..WorkerArgs::default()
    };
    q.ensure_writable()?;
    queue::complete(q, id, result, &w).map(|s| Out::Static(s.as_str()))
}

fn complete_batch(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let items = arg(args, 0, "items").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_writable()?;
    bulk::complete_batch(q, items, o.now).map(Out::Int)
}

fn fail_batch(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let items = arg(args, 0, "items").text()?;
    let o = options::FailBatch::parse(options_at(args, 1)?)?;
    let f = FailArgs {
        worker: WorkerArgs {
            now: o.now,
            ..WorkerArgs::default()
        },
        retry: o.retry.unwrap_or(true),
        delay_ms: o.delay,
    };
    q.ensure_writable()?;
    let out = bulk::fail_batch(q, items, &f)?;
    let list: Vec<serde_json::Value> = out
        .into_iter()
        .map(|(id, status)| serde_json::json!({"id": id, "status": status.as_str()}))
        .collect();
    Ok(Out::Text(serde_json::Value::Array(list).to_string()))
}

fn complete_next(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let result = arg(args, 1, "result").text_or_null()?;
    let worker = arg(args, 2, "worker").nonempty()?;
    let o = options::CompleteNext::parse(options_at(args, 3)?)?;
    let w = WorkerArgs {
        attempt: o.attempt,
        now: o.now,
        ..WorkerArgs::default()
    };
    let next = ClaimArgs {
        worker,
        queues: o.queue,
        lease_ms: o.lease,
        now: o.now,
        wait_ms: None,
    };
    q.ensure_writable()?;
    Ok(match bulk::complete_next(q, id, result, &w, &next)? {
        Some(t) => Out::Text(t.to_json()),
        None => Out::Null,
    })
}

fn fail(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let error = arg(args, 1, "error").text()?;
    let o = options::Fail::parse(options_at(args, 2)?)?;
    let f = FailArgs {
        worker: WorkerArgs {
            attempt: o.attempt,
            now: o.now,
            ..WorkerArgs::default()
        },
        retry: o.retry.unwrap_or(true),
        delay_ms: o.delay,
    };
    q.ensure_writable()?;
    queue::fail(q, id, error, &f).map(|s| Out::Static(s.as_str()))
}

fn cancel(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_writable()?;
    queue::cancel(q, id, o.now).map(|()| Out::Static(queue::Status::Cancelled.as_str()))
}

fn retry(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_writable()?;
    queue::retry(q, id, o.now).map(|s| Out::Static(s.as_str()))
}

fn event(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    queue::events::from_sql(q, args).map(Out::Int)
}

fn note(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    q.notes().record(args.get(1..).unwrap_or(&[]));
    Ok(match args.first() {
        Some(Value::Integer(i)) => Out::Int(*i),
        Some(Value::Text(t)) => Out::Text(t.to_string()),
        _ => Out::Null,
    })
}
