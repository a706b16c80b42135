//! The SQL functions: thin adapters that read arguments, call `ops`, and
//! return a value or an error. Registered once per connection with the
//! connection's [`Conn`] as user data.
//!
//! Every call goes through [`dispatch`], which catches panics (a panic must
//! never unwind into SQLite) and reports errors with the function's name and
//! the right result code.

use crate::batch;
use crate::error::{Error, Result};
use crate::ops::{self, ClaimArgs, FailArgs, NewTask, Queues, WorkerArgs};
use crate::options::Options;
use crate::schema;
use crate::sqlite::{Conn, Owned, Value, libversion};
use rusqlite::ffi;
use std::ffi::{CString, c_void};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

/// What a function returns to SQL.
pub enum Out {
    Null,
    Int(i64),
    Text(String),
    Static(&'static str),
}

type Handler = fn(&Rc<Conn>, &[Value<'_>]) -> Result<Out>;

struct Function {
    name: &'static str,
    /// Every arity the function accepts; SQLite rejects others when the
    /// statement is prepared ("wrong number of arguments to function ...").
    arities: &'static [c_int],
    flags: c_int,
    handler: Handler,
}

/// Side-effecting functions are never DETERMINISTIC or INNOCUOUS. They are
/// not DIRECTONLY either, so triggers can enqueue (with the default
/// `trusted_schema=ON`; see the README).
const WRITES: c_int = ffi::SQLITE_UTF8;
const PURE: c_int = ffi::SQLITE_UTF8 | ffi::SQLITE_INNOCUOUS | ffi::SQLITE_DETERMINISTIC;

const FUNCTIONS: &[Function] = &[
    Function {
        name: "task_version",
        arities: &[0],
        flags: PURE,
        handler: version,
    },
    Function {
        name: "task_debug",
        arities: &[0],
        flags: ffi::SQLITE_UTF8 | ffi::SQLITE_INNOCUOUS,
        handler: debug,
    },
    Function {
        name: "task_init",
        arities: &[0],
        // Schema changes belong in top-level SQL, not in a trigger or view.
        flags: ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
        handler: init,
    },
    Function {
        name: "task_check",
        arities: &[0],
        flags: ffi::SQLITE_UTF8,
        handler: check,
    },
    Function {
        name: "task_enqueue",
        arities: &[1, 2, 3],
        flags: WRITES,
        handler: enqueue,
    },
    Function {
        name: "task_claim",
        arities: &[1, 2],
        flags: WRITES,
        handler: claim,
    },
    Function {
        name: "task_claim_batch",
        arities: &[2, 3],
        flags: WRITES,
        handler: claim_batch,
    },
    Function {
        name: "task_progress",
        arities: &[2, 3],
        flags: WRITES,
        handler: progress,
    },
    Function {
        name: "task_heartbeat",
        arities: &[1, 2],
        flags: WRITES,
        handler: heartbeat,
    },
    Function {
        name: "task_complete",
        arities: &[1, 2, 3],
        flags: WRITES,
        handler: complete,
    },
    Function {
        name: "task_complete_batch",
        arities: &[1, 2],
        flags: WRITES,
        handler: complete_batch,
    },
    Function {
        name: "task_complete_next",
        arities: &[3, 4],
        flags: WRITES,
        handler: complete_next,
    },
    Function {
        name: "task_fail_batch",
        arities: &[1, 2],
        flags: WRITES,
        handler: fail_batch,
    },
    Function {
        name: "task_fail",
        arities: &[2, 3],
        flags: WRITES,
        handler: fail,
    },
    Function {
        name: "task_cancel",
        arities: &[1, 2],
        flags: WRITES,
        handler: cancel,
    },
    Function {
        name: "task_retry",
        arities: &[1, 2],
        flags: WRITES,
        handler: retry,
    },
    // Internal: the extension's own UPDATEs call it to report the rows they
    // change (instead of RETURNING, which buffers every result row in a
    // temporary b-tree: ~100 µs per call). It records its arguments on the
    // connection and returns the first. DIRECTONLY keeps it out of triggers
    // and views; calling it directly only fills a buffer nobody reads.
    Function {
        name: "task__note",
        arities: &[-1],
        flags: ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
        handler: note,
    },
];

/// Registers every function on `conn`'s database.
pub fn register(conn: &Rc<Conn>) -> Result<()> {
    for f in FUNCTIONS {
        let name = CString::new(f.name).map_err(|_| Error::new("bad function name"))?;
        for &n in f.arities {
            let data = Box::into_raw(Box::new(Data {
                conn: Rc::clone(conn),
                name: f.name,
                handler: f.handler,
            }));
            // SAFETY: db is live; `data` is freed by `destroy` when SQLite
            // drops the function (on close or re-registration), including
            // when this call fails.
            let rc = unsafe {
                ffi::sqlite3_create_function_v2(
                    conn.db(),
                    name.as_ptr(),
                    n,
                    f.flags,
                    data.cast::<c_void>(),
                    Some(call),
                    None,
                    None,
                    Some(destroy),
                )
            };
            if rc != ffi::SQLITE_OK {
                return Err(conn.last_error(rc));
            }
        }
    }
    Ok(())
}

struct Data {
    conn: Rc<Conn>,
    name: &'static str,
    handler: Handler,
}

unsafe extern "C" fn destroy(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: p came from Box::into_raw in `register`.
        drop(unsafe { Box::from_raw(p.cast::<Data>()) });
    }
}

unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: SQLite passes the user data given at registration and
        // `argc` valid values that live for this call.
        let data = unsafe { &*ffi::sqlite3_user_data(ctx).cast::<Data>() };
        let n = usize::try_from(argc).unwrap_or(0);
        let raw: &[*mut ffi::sqlite3_value] = if n == 0 || argv.is_null() {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(argv, n) }
        };
        let args: Vec<Value<'_>> = raw.iter().map(|&v| unsafe { Value::from_raw(v) }).collect();
        let result = (data.handler)(&data.conn, &args).map_err(|e| e.context(data.name));
        (data.name, result)
    }));
    // SAFETY: ctx is the live function context of this call.
    unsafe {
        match outcome {
            Ok((_, Ok(out))) => set_result(ctx, out),
            Ok((_, Err(e))) => set_error(ctx, &e),
            Err(_) => set_error(
                ctx,
                &Error::new("internal error in sqlite-task (a bug: please report it)"),
            ),
        }
    }
}

unsafe fn set_result(ctx: *mut ffi::sqlite3_context, out: Out) {
    // SAFETY: ctx is live; SQLITE_TRANSIENT makes SQLite copy the text.
    unsafe {
        match out {
            Out::Null => ffi::sqlite3_result_null(ctx),
            Out::Int(i) => ffi::sqlite3_result_int64(ctx, i),
            Out::Text(s) => result_text(ctx, &s),
            Out::Static(s) => result_text(ctx, s),
        }
    }
}

unsafe fn result_text(ctx: *mut ffi::sqlite3_context, s: &str) {
    // SAFETY: s is valid for its length; SQLite copies it.
    unsafe {
        ffi::sqlite3_result_text64(
            ctx,
            s.as_ptr().cast::<c_char>(),
            s.len() as u64,
            ffi::SQLITE_TRANSIENT(),
            ffi::SQLITE_UTF8 as u8,
        )
    }
}

/// Sets the error message, then the code: `sqlite3_result_error` resets the
/// code to SQLITE_ERROR, so the order matters for SQLITE_BUSY to survive.
unsafe fn set_error(ctx: *mut ffi::sqlite3_context, e: &Error) {
    let len = c_int::try_from(e.msg.len()).unwrap_or(c_int::MAX);
    // SAFETY: ctx is live; the message is valid for len bytes and copied.
    unsafe {
        ffi::sqlite3_result_error(ctx, e.msg.as_ptr().cast::<c_char>(), len);
        if e.code != ffi::SQLITE_ERROR {
            ffi::sqlite3_result_error_code(ctx, e.code);
        }
    }
}

// ---- argument readers -------------------------------------------------

fn arg<'a>(args: &'a [Value<'a>], i: usize) -> Value<'a> {
    args.get(i).copied().unwrap_or(Value::Null)
}

/// A required text argument.
fn text<'a>(args: &'a [Value<'a>], i: usize, what: &str) -> Result<&'a str> {
    match arg(args, i) {
        Value::Text(s) => Ok(s),
        v => Err(Error::new(format!(
            "{what} must be text, got {}",
            v.type_name()
        ))),
    }
}

/// A required, non-empty text argument.
fn nonempty<'a>(args: &'a [Value<'a>], i: usize, what: &str) -> Result<&'a str> {
    let s = text(args, i, what)?;
    if s.is_empty() {
        return Err(Error::new(format!("{what} must not be empty")));
    }
    Ok(s)
}

/// An optional text argument: absent or NULL give `None`.
fn opt_text<'a>(args: &'a [Value<'a>], i: usize, what: &str) -> Result<Option<&'a str>> {
    match arg(args, i) {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s)),
        v => Err(Error::new(format!(
            "{what} must be text or NULL, got {}",
            v.type_name()
        ))),
    }
}

/// The options argument at position `i`, restricted to `allowed` keys.
fn options(args: &[Value<'_>], i: usize, allowed: &[&str]) -> Result<Options> {
    Options::parse(opt_text(args, i, "options")?, allowed)
}

fn worker_args(o: &Options) -> Result<WorkerArgs> {
    Ok(WorkerArgs {
        attempt: o.int("attempt")?,
        lease_ms: o.int("lease")?,
        now: o.int("now")?,
        writeback_ms: o.int("writeback")?,
    })
}

// ---- handlers -----------------------------------------------------------

fn version(_: &Rc<Conn>, _: &[Value<'_>]) -> Result<Out> {
    Ok(Out::Static(concat!("v", env!("CARGO_PKG_VERSION"))))
}

fn debug(conn: &Rc<Conn>, _: &[Value<'_>]) -> Result<Out> {
    let schema = match schema::stored_version(conn) {
        Ok(Some(v)) => format!("{v} (this build: {})", schema::SCHEMA_VERSION),
        Ok(None) => "none: run SELECT task_init()".to_string(),
        Err(e) => format!("unreadable: {e}"),
    };
    Ok(Out::Text(format!(
        "sqlite-task v{}\nsqlite {} (floor {})\nschema {}\nbuild {}",
        env!("CARGO_PKG_VERSION"),
        libversion(),
        crate::MIN_SQLITE_VERSION_TEXT,
        schema,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )))
}

fn check(conn: &Rc<Conn>, _: &[Value<'_>]) -> Result<Out> {
    crate::check::check(conn).map(Out::Text)
}

fn init(conn: &Rc<Conn>, _: &[Value<'_>]) -> Result<Out> {
    schema::init(conn).map(Out::Int)
}

fn enqueue(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let kind = nonempty(args, 0, "type")?;
    let details = opt_text(args, 1, "details")?;
    let o = options(
        args,
        2,
        &[
            "queue",
            "priority",
            "run_at",
            "delay",
            "max_attempts",
            "parent_id",
            "id",
            "now",
        ],
    )?;
    let task = NewTask {
        kind,
        details,
        queue: o.str("queue")?,
        priority: o.int("priority")?,
        run_at: o.int("run_at")?,
        delay: o.int("delay")?,
        max_attempts: o.int("max_attempts")?,
        parent_id: o.str("parent_id")?,
        id: o.str("id")?,
        now: o.int("now")?,
    };
    schema::ensure_ready(conn)?;
    ops::enqueue(conn, &task).map(|t| Out::Text(t.id))
}

fn claim(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let worker = nonempty(args, 0, "worker")?;
    let o = options(args, 1, &["queue", "lease", "now"])?;
    let a = claim_args(worker, &o)?;
    schema::ensure_ready(conn)?;
    Ok(match ops::claim(conn, &a, 1)?.first() {
        Some(t) => Out::Text(t.to_json()),
        None => Out::Null,
    })
}

fn claim_batch(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let worker = nonempty(args, 0, "worker")?;
    let limit = match arg(args, 1) {
        Value::Integer(n) => n,
        v => {
            return Err(Error::new(format!(
                "limit must be an integer, got {}",
                v.type_name()
            )));
        }
    };
    let o = options(args, 2, &["queue", "lease", "now"])?;
    let a = claim_args(worker, &o)?;
    schema::ensure_ready(conn)?;
    let tasks = ops::claim(conn, &a, limit)?;
    let mut out = String::with_capacity(2 + 300 * tasks.len());
    out.push('[');
    for (i, t) in tasks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        t.write_json(&mut out);
    }
    out.push(']');
    Ok(Out::Text(out))
}

fn claim_args<'a>(worker: &'a str, o: &Options) -> Result<ClaimArgs<'a>> {
    let queues = match o.get("queue") {
        None => Queues::All,
        Some(serde_json::Value::String(q)) if !q.is_empty() => Queues::One(q.clone()),
        Some(serde_json::Value::Array(items))
            if !items.is_empty()
                && items
                    .iter()
                    .all(|q| q.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            Queues::Many(
                items
                    .iter()
                    .filter_map(|q| q.as_str().map(str::to_string))
                    .collect(),
            )
        }
        Some(_) => {
            return Err(Error::new(
                "option \"queue\" must be a queue name or a non-empty array of queue names",
            ));
        }
    };
    Ok(ClaimArgs {
        worker,
        queues,
        lease_ms: o.int("lease")?.unwrap_or(ops::DEFAULT_LEASE_MS),
        now: o.int("now")?,
    })
}

fn progress(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let percent = match arg(args, 1) {
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
    let o = options(args, 2, &["attempt", "lease", "now", "writeback"])?;
    let w = worker_args(&o)?;
    schema::ensure_ready(conn)?;
    ops::progress(conn, id, Some(percent), &w).map(Out::Static)
}

fn heartbeat(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let o = options(args, 1, &["attempt", "lease", "now"])?;
    let w = worker_args(&o)?;
    schema::ensure_ready(conn)?;
    ops::progress(conn, id, None, &w).map(Out::Static)
}

fn complete(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let result = opt_text(args, 1, "result")?;
    let o = options(args, 2, &["attempt", "now"])?;
    let w = worker_args(&o)?;
    schema::ensure_ready(conn)?;
    ops::complete(conn, id, result, &w).map(|()| Out::Static("completed"))
}

fn complete_batch(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let items = text(args, 0, "items")?;
    let o = options(args, 1, &["now"])?;
    let now = o.int("now")?;
    schema::ensure_ready(conn)?;
    batch::complete_batch(conn, items, now).map(Out::Int)
}

fn fail_batch(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let items = text(args, 0, "items")?;
    let o = options(args, 1, &["now", "retry", "delay"])?;
    let f = FailArgs {
        worker: worker_args(&o)?,
        retry: o.bool("retry")?.unwrap_or(true),
        delay_ms: o.int("delay")?,
    };
    schema::ensure_ready(conn)?;
    let out = batch::fail_batch(conn, items, &f)?;
    let list: Vec<serde_json::Value> = out
        .into_iter()
        .map(|(id, status)| serde_json::json!({"id": id, "status": status}))
        .collect();
    Ok(Out::Text(serde_json::Value::Array(list).to_string()))
}

fn complete_next(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let result = opt_text(args, 1, "result")?;
    let worker = nonempty(args, 2, "worker")?;
    let o = options(args, 3, &["attempt", "now", "queue", "lease"])?;
    let w = WorkerArgs {
        attempt: o.int("attempt")?,
        now: o.int("now")?,
        ..WorkerArgs::default()
    };
    let c = claim_args(worker, &o)?;
    schema::ensure_ready(conn)?;
    Ok(match batch::complete_next(conn, id, result, &w, &c)? {
        Some(t) => Out::Text(t.to_json()),
        None => Out::Null,
    })
}

fn fail(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let error = text(args, 1, "error")?;
    let o = options(args, 2, &["attempt", "now", "retry", "delay"])?;
    let f = FailArgs {
        worker: worker_args(&o)?,
        retry: o.bool("retry")?.unwrap_or(true),
        delay_ms: o.int("delay")?,
    };
    schema::ensure_ready(conn)?;
    ops::fail(conn, id, error, &f).map(Out::Text)
}

fn cancel(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let o = options(args, 1, &["now"])?;
    let now = o.int("now")?;
    schema::ensure_ready(conn)?;
    ops::cancel(conn, id, now).map(|()| Out::Static("cancelled"))
}

fn note(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    conn.note(args.iter().skip(1).map(|v| Owned::from_value(*v)).collect());
    Ok(match arg(args, 0) {
        Value::Integer(i) => Out::Int(i),
        Value::Text(t) => Out::Text(t.to_string()),
        _ => Out::Null,
    })
}

fn retry(conn: &Rc<Conn>, args: &[Value<'_>]) -> Result<Out> {
    let id = text(args, 0, "id")?;
    let o = options(args, 1, &["now"])?;
    let now = o.int("now")?;
    schema::ensure_ready(conn)?;
    ops::retry(conn, id, now).map(|()| Out::Static("queued"))
}
