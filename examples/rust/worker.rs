//! A worker for a sqlite-task queue in a Rust application that links SQLite
//! itself (rusqlite with `bundled`, as a Tauri app does): the queue is
//! registered on the connection with `sqlite_task::register`, no `.so`.
//!
//!     worker DB [--queue Q] [--name NAME] [--wait-ms MS] [--exit-when-idle]
//!
//! It runs one type of task, a starting point for your own:
//!   sleep  {"ms": 2000} → {"slept_ms": 2000}: pretends to work, reporting
//!          progress every 100 ms.
//! Any other type fails with a message naming it (the queue retries while
//! attempts remain). An error returned by a handler fails the task with its
//! text.
//!
//! Stopping: SIGTERM or Ctrl-C lets the task in hand finish (completed or
//! failed as usual), then the worker exits 0. An idle worker sleeps in a long
//! poll (task_claim with "wait"), which the signal ends at once.
//! With --exit-when-idle it exits once a long poll finds nothing.
//! The log (one line per task) goes to stderr.
//!
//! Build and run it from this checkout:
//!     cargo run --release -p sqlite-task-static --bin worker -- app.db

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT set STOP. No SA_RESTART: a long poll the signal
/// interrupts returns at once, and the loop sees STOP.
fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

struct Args {
    db: String,
    queue: Option<String>,
    name: String,
    wait_ms: i64,
    exit_when_idle: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        db: String::new(),
        queue: None,
        name: format!("rust-worker-{}", std::process::id()),
        wait_ms: 5000,
        exit_when_idle: false,
    };
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--queue" => args.queue = Some(value("--queue")?),
            "--name" => args.name = value("--name")?,
            "--wait-ms" => {
                args.wait_ms = value("--wait-ms")?
                    .parse()
                    .map_err(|e| format!("--wait-ms: {e}"))?
            }
            "--exit-when-idle" => args.exit_when_idle = true,
            _ if args.db.is_empty() && !a.starts_with("--") => args.db = a,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if args.db.is_empty() {
        return Err(
            "usage: worker DB [--queue Q] [--name NAME] [--wait-ms MS] [--exit-when-idle]".into(),
        );
    }
    Ok(args)
}

/// A claimed task, as task_claim returns it.
struct Task {
    id: String,
    kind: String,
    attempt: i64,
    details: Value,
}

/// Runs a task; reports progress with the claim's attempt (fencing: a report
/// from an attempt that lost its lease is refused).
fn run(db: &Connection, task: &Task) -> Result<Value, String> {
    match task.kind.as_str() {
        "sleep" => {
            let ms = task
                .details
                .get("ms")
                .and_then(Value::as_u64)
                .unwrap_or(1000);
            let mut slept = 0;
            while slept < ms {
                let step = (ms - slept).min(100);
                std::thread::sleep(Duration::from_millis(step));
                slept += step;
                let opts = json!({"attempt": task.attempt}).to_string();
                db.query_row(
                    "SELECT task_progress(?1, ?2, ?3)",
                    params![task.id, 100.0 * slept as f64 / ms as f64, opts],
                    |_| Ok(()),
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(json!({"slept_ms": slept}))
        }
        other => Err(format!(
            "this worker has no handler for tasks of type {other:?}"
        )),
    }
}

fn claim(db: &Connection, args: &Args) -> rusqlite::Result<Option<Task>> {
    let mut opts = json!({"wait": args.wait_ms});
    if let Some(q) = &args.queue {
        opts["queue"] = json!(q);
    }
    let text: Option<String> = db
        .query_row(
            "SELECT task_claim(?1, ?2)",
            params![args.name, opts.to_string()],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(text) = text else { return Ok(None) };
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Some(Task {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        kind: v["type"].as_str().unwrap_or_default().to_string(),
        attempt: v["attempt"].as_i64().unwrap_or(0),
        details: v["details"].clone(),
    }))
}

fn work(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let db = Connection::open(&args.db)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    sqlite_task::register(&db)?;
    db.query_row("SELECT task_busy_timeout(30000)", [], |_| Ok(()))?;
    db.query_row("SELECT task_init()", [], |_| Ok(()))?;
    eprintln!("{}: working on {}", args.name, args.db);
    while !STOP.load(Ordering::SeqCst) {
        let Some(task) = claim(&db, args)? else {
            if args.exit_when_idle {
                break;
            }
            continue;
        };
        let opts = json!({"attempt": task.attempt}).to_string();
        match run(&db, &task) {
            Ok(result) => {
                db.query_row(
                    "SELECT task_complete(?1, ?2, ?3)",
                    params![task.id, result.to_string(), opts],
                    |_| Ok(()),
                )?;
                eprintln!("{}: completed {} {}", args.name, task.kind, task.id);
            }
            Err(error) => {
                db.query_row(
                    "SELECT task_fail(?1, ?2, ?3)",
                    params![task.id, error, opts],
                    |_| Ok(()),
                )?;
                eprintln!("{}: failed {} {}: {error}", args.name, task.kind, task.id);
            }
        }
    }
    eprintln!("{}: stopped", args.name);
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    install_stop_handler();
    if let Err(e) = work(&args) {
        eprintln!("{}: {e}", args.name);
        std::process::exit(1);
    }
}
