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
    function("task_init", &[0], Flags::UTF8.direct_only(), init),
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
        now: o.now,
    };
    q.ensure_ready()?;
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

fn init(q: &Rc<Queue>, _: &[Value<'_>]) -> Result<Out> {
    q.init().map(Out::Int)
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
    q.ensure_ready()?;
    queue::enqueue(q, &task).map(|t| Out::Text(t.id))
}

fn claim_args(worker: &str, o: options::Claim) -> ClaimArgs<'_> {
    ClaimArgs {
        worker,
        queues: o.queue,
        lease_ms: o.lease.unwrap_or(model::DEFAULT_LEASE_MS),
        now: o.now,
    }
}

fn claim(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let worker = arg(args, 0, "worker").nonempty()?;
    let o = options::Claim::parse(options_at(args, 1)?)?;
    let a = claim_args(worker, o);
    q.ensure_ready()?;
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
    q.ensure_ready()?;
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
    q.ensure_ready()?;
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
    q.ensure_ready()?;
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
    q.ensure_ready()?;
    queue::complete(q, id, result, &w).map(|s| Out::Static(s.as_str()))
}

fn complete_batch(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let items = arg(args, 0, "items").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_ready()?;
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
    q.ensure_ready()?;
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
        lease_ms: o.lease.unwrap_or(model::DEFAULT_LEASE_MS),
        now: o.now,
    };
    q.ensure_ready()?;
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
    q.ensure_ready()?;
    queue::fail(q, id, error, &f).map(|s| Out::Static(s.as_str()))
}

fn cancel(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_ready()?;
    queue::cancel(q, id, o.now).map(|()| Out::Static(queue::Status::Cancelled.as_str()))
}

fn retry(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    let id = arg(args, 0, "id").text()?;
    let o = options::Clock::parse(options_at(args, 1)?)?;
    q.ensure_ready()?;
    queue::retry(q, id, o.now).map(|()| Out::Static(queue::Status::Queued.as_str()))
}

fn note(q: &Rc<Queue>, args: &[Value<'_>]) -> Result<Out> {
    q.notes().record(args.get(1..).unwrap_or(&[]));
    Ok(match args.first() {
        Some(Value::Integer(i)) => Out::Int(*i),
        Some(Value::Text(t)) => Out::Text(t.to_string()),
        _ => Out::Null,
    })
}
