//! The effectum peer: one measurement per process, printed as `{"ops": …, "secs": …}`.
//!
//! `effectum-peer <case> <args…> <db>`:
//!   enqueue_single <n> <cap_ms> <db>      add_job n times (each its own transaction)
//!   enqueue_bulk <n> <db>                  add_jobs with n jobs (one transaction)
//!   cycle <waiting> <n> <conc> <cap_ms> <db>
//!                                          n jobs run and completed by a worker running up to
//!                                          <conc> at once (min_concurrency 1: it fetches a new
//!                                          batch when its jobs are done), <waiting> queued first
//!   progress <tasks> <n> <cap_ms> <db>     n checkpoints (effectum's progress) from a running job
//!   lookup <waiting> <n> <cap_ms> <db>     get_job_status of random jobs among <waiting>
//!   version                                the SQLite effectum links
//!
//! Effectum opens the file itself; it asks for WAL with `PRAGMA journal`, which SQLite ignores,
//! so the file is put in WAL mode here first (WAL is persistent), as every case of the bench uses
//! WAL. Effectum sets synchronous=NORMAL on its writer connection.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use effectum::{Job, JobRunner, Queue, RunningJob, Worker};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Default)]
struct Counter {
    done: AtomicU64,
    /// the progress case's (ops, secs), set by its job when it finishes
    progress: std::sync::Mutex<Option<(u64, f64)>>,
    progress_n: AtomicU64,
    cap_ms: AtomicU64,
}

type Ctx = Arc<Counter>;

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> Res<T> {
    args.get(i)
        .ok_or("missing argument")?
        .parse()
        .map_err(|_| format!("bad argument {}", i).into())
}

fn job(i: u64) -> Res<Job> {
    Ok(Job::builder("bench")
        .json_payload(&json!({ "n": i }))?
        .build())
}

async fn open(db: &Path) -> Res<Queue> {
    {
        let c = rusqlite::Connection::open(db)?;
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("journal_mode is {mode}").into());
        }
    }
    Ok(Queue::new(db).await?)
}

fn checkpoint(db: &Path) -> Res<()> {
    let c = rusqlite::Connection::open(db)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

async fn backlog(q: &Queue, db: &Path, n: u64) -> Res<Vec<uuid::Uuid>> {
    let jobs = (0..n).map(job).collect::<Res<Vec<_>>>()?;
    let ids = q.add_jobs(jobs).await?;
    checkpoint(db)?;
    Ok(ids)
}

async fn run_job(job: RunningJob, ctx: Ctx) -> Result<(), effectum::Error> {
    job.complete(json!({"ok": true})).await?;
    ctx.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn progress_job(job: RunningJob, ctx: Ctx) -> Result<(), effectum::Error> {
    let n = ctx.progress_n.load(Ordering::Relaxed);
    let cap = Duration::from_millis(ctx.cap_ms.load(Ordering::Relaxed));
    let t0 = Instant::now();
    let mut done = 0;
    for i in 0..n {
        job.checkpoint_json(json!({ "n": 0, "progress": i % 100 }))
            .await?;
        done += 1;
        if done % 32 == 0 && t0.elapsed() > cap {
            break;
        }
    }
    *ctx.progress.lock().unwrap() = Some((done, t0.elapsed().as_secs_f64()));
    job.complete(json!({"ok": true})).await?;
    ctx.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn worker(q: &Queue, ctx: Ctx, conc: u16, progress: bool) -> Res<Worker> {
    let runner = if progress {
        JobRunner::builder("bench", progress_job).build()
    } else {
        JobRunner::builder("bench", run_job).build()
    };
    Ok(Worker::builder(q, ctx)
        .max_concurrency(conc)
        .min_concurrency(1)
        .jobs([runner])
        .build()
        .await?)
}

async fn wait_for(ctx: &Counter, n: u64, t0: Instant, cap: Duration) {
    while ctx.done.load(Ordering::Relaxed) < n && t0.elapsed() <= cap {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn run(args: &[String]) -> Res<(u64, f64)> {
    let case = args.first().ok_or("no case")?.as_str();
    let db = Path::new(args.last().ok_or("no db")?);
    match case {
        "enqueue_single" => {
            let (n, cap) = (arg::<u64>(args, 1)?, Duration::from_millis(arg(args, 2)?));
            let q = open(db).await?;
            let t0 = Instant::now();
            let mut done = 0;
            for i in 0..n {
                q.add_job(job(i)?).await?;
                done += 1;
                if done % 32 == 0 && t0.elapsed() > cap {
                    break;
                }
            }
            Ok((done, t0.elapsed().as_secs_f64()))
        }
        "enqueue_bulk" => {
            let n = arg::<u64>(args, 1)?;
            let q = open(db).await?;
            let jobs = (0..n).map(job).collect::<Res<Vec<_>>>()?;
            let t0 = Instant::now();
            q.add_jobs(jobs).await?;
            Ok((n, t0.elapsed().as_secs_f64()))
        }
        "cycle" => {
            let (waiting, n, conc) = (
                arg::<u64>(args, 1)?,
                arg::<u64>(args, 2)?,
                arg::<u16>(args, 3)?,
            );
            let cap = Duration::from_millis(arg(args, 4)?);
            let q = open(db).await?;
            backlog(&q, db, waiting).await?;
            let ctx: Ctx = Arc::default();
            let t0 = Instant::now();
            let _w = worker(&q, ctx.clone(), conc, false).await?;
            wait_for(&ctx, n, t0, cap).await;
            Ok((ctx.done.load(Ordering::Relaxed), t0.elapsed().as_secs_f64()))
        }
        "progress" => {
            let (_tasks, n) = (arg::<u64>(args, 1)?, arg::<u64>(args, 2)?);
            let cap_ms: u64 = arg(args, 3)?;
            let q = open(db).await?;
            backlog(&q, db, 1).await?;
            let ctx: Ctx = Arc::default();
            ctx.progress_n.store(n, Ordering::Relaxed);
            ctx.cap_ms.store(cap_ms, Ordering::Relaxed);
            let _w = worker(&q, ctx.clone(), 1, true).await?;
            wait_for(&ctx, 1, Instant::now(), Duration::from_millis(cap_ms * 4)).await;
            let r = *ctx.progress.lock().unwrap();
            r.ok_or_else(|| "the progress job did not finish".into())
        }
        "lookup" => {
            let (waiting, n) = (arg::<u64>(args, 1)?, arg::<u64>(args, 2)?);
            let cap = Duration::from_millis(arg(args, 3)?);
            let q = open(db).await?;
            let ids = backlog(&q, db, waiting).await?;
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let t0 = Instant::now();
            let mut done = 0;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let st = q
                    .get_job_status(ids[(x % ids.len() as u64) as usize])
                    .await?;
                std::hint::black_box(st);
                done += 1;
                if done % 32 == 0 && t0.elapsed() > cap {
                    break;
                }
            }
            Ok((done, t0.elapsed().as_secs_f64()))
        }
        _ => Err(format!("unknown case {case}").into()),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("version") {
        println!("{}", rusqlite::version());
        return;
    }
    match run(&args).await {
        Ok((ops, secs)) => {
            println!("{}", json!({ "ops": ops, "secs": secs }));
            // Skip the queue's orderly shutdown: the measurement is done and printed.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
