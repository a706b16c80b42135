//! The cases: each is one function that sets up a fresh database, does its untimed preparation
//! (a backlog built in one transaction, then a WAL checkpoint so no system inherits a large WAL),
//! and times only the work the case names. Peers run the same work; effectum runs in its own
//! process (bench/peers/effectum), the multi-process case in worker processes of this binary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::types::Value;

use crate::operations::Setup;
use crate::queue::{Q, QUEUE, Res, Sync, Sys};
use crate::{Env, Plan, operations, workflows};

/// One timed measurement: `ops` operations (or tasks) in `secs` seconds.
#[derive(Clone, Copy, Debug)]
pub struct M {
    pub ops: f64,
    pub secs: f64,
}

impl M {
    pub fn rate(&self) -> f64 {
        self.ops / self.secs
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// operations per second
    Rate,
    /// microseconds per operation (shown so; ratios still compare rates)
    Micros,
}

pub struct Cell {
    pub system: String,
    pub runs: Vec<M>,
    pub error: Option<String>,
}

impl Cell {
    /// Median rate over the runs (ops/s).
    pub fn median(&self) -> Option<f64> {
        if self.runs.is_empty() {
            return None;
        }
        let mut r: Vec<f64> = self.runs.iter().map(M::rate).collect();
        r.sort_by(|a, b| a.total_cmp(b));
        let n = r.len();
        Some(if n % 2 == 1 {
            r[n / 2]
        } else {
            (r[n / 2 - 1] + r[n / 2]) / 2.0
        })
    }
    /// The operations of the median run (less than asked when the time cap stopped it).
    pub fn ops(&self) -> Option<f64> {
        let med = self.median()?;
        self.runs
            .iter()
            .min_by(|a, b| (a.rate() - med).abs().total_cmp(&(b.rate() - med).abs()))
            .map(|m| m.ops)
    }
}

pub struct Row {
    pub key: String,
    pub title: String,
    pub sync: Sync,
    pub unit: Unit,
    /// A row that measures sqlite-task only borrows the other systems from this row.
    pub base: Option<String>,
    /// The count each run was asked to do.
    pub asked: u64,
    /// The 1-minute load average when the row started (this harness itself counts about 1).
    pub load: f64,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn get(&self, system: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.system == system)
    }
}

type Job<'a> = (String, Box<dyn Fn() -> Res<M> + 'a>);

/// The cell of a workflow row that runs the plain cycle (as `cycle_normal` does), each run
/// beside the row's own, so the row's ratio to the plain cycle pairs runs measured one after the
/// other instead of two rows minutes apart.
pub const PLAIN: &str = "plain cycle";

/// The same for the unique-key enqueue: the plain single enqueue (as `enqueue_single_normal`).
pub const PLAIN_ENQUEUE: &str = "plain enqueue";

/// The cells that run the plain work beside a workflow row's own.
pub const BESIDE: [&str; 2] = [PLAIN, PLAIN_ENQUEUE];

/// `job`, sqlite-task's run of a workflow row, and the plain cycle run beside it.
fn beside_plain<'a>(
    env: &'a Env,
    plan: &'a Plan,
    job: Box<dyn Fn() -> Res<M> + 'a>,
) -> Vec<Job<'a>> {
    let n = plan.cycle;
    vec![
        (s("sqlite-task"), job),
        (
            s(PLAIN),
            Box::new(move || cycle(env, Sys::Ext, Sync::Normal, n, n, plan.cap_own, false)),
        ),
    ]
}

pub(crate) struct Clock {
    pub(crate) t0: Instant,
    cap: Duration,
}

impl Clock {
    pub(crate) fn start(cap: Duration) -> Clock {
        Clock {
            t0: Instant::now(),
            cap,
        }
    }
    pub(crate) fn over(&self, done: u64) -> bool {
        done.is_multiple_of(32) && self.t0.elapsed() > self.cap
    }
    pub(crate) fn m(&self, done: u64) -> M {
        M {
            ops: done as f64,
            secs: self.t0.elapsed().as_secs_f64(),
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A path for a new database, with any leftovers of an earlier run removed.
fn fresh(env: &Env, tag: &str) -> Res<PathBuf> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let p = env.dir.join(format!("{tag}-{n}.db"));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let f = PathBuf::from(format!("{}{suffix}", p.display()));
        if f.exists() {
            std::fs::remove_file(&f)?;
        }
    }
    Ok(p)
}

/// Removes a case's database once measured, so the disk does not fill with 1M-task files.
fn drop_db(p: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

pub(crate) fn with_db<T>(env: &Env, tag: &str, f: impl FnOnce(&Path) -> Res<T>) -> Res<T> {
    let p = fresh(env, tag)?;
    let r = f(&p);
    drop_db(&p);
    r
}

fn enqueue_single(env: &Env, sys: Sys, sync: Sync, n: u64, cap: Duration) -> Res<M> {
    with_db(env, "enqueue", |p| {
        let q = Q::open(&env.libs, sys, p, sync)?;
        enqueue_each(&q, n, cap)
    })
}

/// Enqueues `n` tasks, one call each in its own transaction (or until the cap), and rates them.
pub(crate) fn enqueue_each(q: &Q, n: u64, cap: Duration) -> Res<M> {
    let clock = Clock::start(cap);
    let mut done = 0;
    for i in 0..n {
        q.enqueue(i)?;
        done += 1;
        if clock.over(done) {
            break;
        }
    }
    Ok(clock.m(done))
}

fn enqueue_bulk(env: &Env, sys: Sys, n: u64) -> Res<M> {
    with_db(env, "bulk", |p| {
        let q = Q::open(&env.libs, sys, p, Sync::Normal)?;
        let clock = Clock::start(Duration::MAX);
        q.enqueue_bulk(n)?;
        Ok(clock.m(n))
    })
}

pub(crate) fn backlog(q: &Q, n: u64) -> Res<Vec<Value>> {
    let ids = q.enqueue_bulk(n)?;
    q.checkpoint()?;
    Ok(ids)
}

/// Claim then complete, one task at a time, each call its own transaction.
#[allow(clippy::too_many_arguments)]
fn cycle(
    env: &Env,
    sys: Sys,
    sync: Sync,
    waiting: u64,
    cycles: u64,
    cap: Duration,
    queue_filter: bool,
) -> Res<M> {
    with_db(env, "cycle", |p| {
        let mut q = Q::open(&env.libs, sys, p, sync)?;
        q.queue_filter = queue_filter;
        backlog(&q, waiting)?;
        claim_complete(&q, cycles, cap)
    })
}

/// Claims and completes `cycles` tasks, one call each in its own transaction (or until the
/// cap), and rates the cycles done.
pub fn claim_complete(q: &Q, cycles: u64, cap: Duration) -> Res<M> {
    let clock = Clock::start(cap);
    let mut done = 0;
    while done < cycles {
        let id = q.claim()?.ok_or("the queue ran dry")?;
        q.complete(&id)?;
        done += 1;
        if clock.over(done) {
            break;
        }
    }
    Ok(clock.m(done))
}

/// The cycle on a queue with a concurrency limit (of 4: one worker never reaches it, so this
/// measures what the gated claim and the limited completion cost, not waiting).
fn limited_cycle(env: &Env, waiting: u64, cycles: u64, cap: Duration) -> Res<M> {
    with_db(env, "limited", |p| {
        let q = Q::open(&env.libs, Sys::Ext, p, Sync::Normal)?;
        backlog(&q, waiting)?;
        let _: String = q.c.query_row(
            "SELECT task_queue(?1, '{\"concurrency\": 4}')",
            [QUEUE],
            |r| r.get(0),
        )?;
        claim_complete(&q, cycles, cap)
    })
}

/// The cycle with `waiting` tasks spread round-robin over `queues` queues, claiming from every
/// queue; `named`: beside them, `cycles` tasks in the default queue, claimed by name.
fn queues_cycle(
    env: &Env,
    queues: u64,
    waiting: u64,
    cycles: u64,
    named: bool,
    cap: Duration,
) -> Res<M> {
    with_db(env, "queues", |p| {
        let mut q = Q::open(&env.libs, Sys::Ext, p, Sync::Normal)?;
        q.c.execute_batch("BEGIN IMMEDIATE")?;
        for i in 0..waiting {
            q.enqueue_with(i, &format!(r#"{{"queue": "q{:05}"}}"#, i % queues))?;
        }
        if named {
            for i in 0..cycles {
                q.enqueue(i)?;
            }
        }
        q.c.execute_batch("COMMIT")?;
        q.checkpoint()?;
        q.queue_filter = named;
        claim_complete(&q, cycles, cap)
    })
}

/// sqlite-task's worker loop: task_complete_next completes one task and claims the next.
fn worker_loop(env: &Env, waiting: u64, cap: Duration) -> Res<M> {
    with_db(env, "loop", |p| {
        let q = Q::open(&env.libs, Sys::Ext, p, Sync::Normal)?;
        backlog(&q, waiting)?;
        let clock = Clock::start(cap);
        let mut done = 0;
        let mut id = q.claim()?.ok_or("the queue is empty")?;
        loop {
            let next = q.complete_next(&id)?;
            done += 1;
            match next {
                Some(n) => id = n,
                None => break,
            }
            if clock.over(done) {
                break;
            }
        }
        Ok(clock.m(done))
    })
}

/// Claim a batch of `b`, complete it in one call (raw: one transaction), until all are done.
fn batch(env: &Env, sys: Sys, sync: Sync, waiting: u64, b: i64, cap: Duration) -> Res<M> {
    with_db(env, "batch", |p| {
        let q = Q::open(&env.libs, sys, p, sync)?;
        backlog(&q, waiting)?;
        let clock = Clock::start(cap);
        let mut done = 0;
        loop {
            let ids = q.claim_batch(b)?;
            if ids.is_empty() {
                break;
            }
            q.complete_batch(&ids)?;
            done += ids.len() as u64;
            if clock.over(done) {
                break;
            }
        }
        if done < waiting && clock.t0.elapsed() <= cap {
            return Err(format!("only {done} of {waiting} tasks were claimed").into());
        }
        Ok(clock.m(done))
    })
}

/// Progress reports round-robin over `tasks` running tasks.
/// Progress reports on `tasks` running tasks; `transitions`: on a queue that keeps only
/// transitions in its event log (no progress events).
#[allow(clippy::too_many_arguments)]
fn progress(
    env: &Env,
    sys: Sys,
    tasks: u64,
    n: u64,
    writeback: bool,
    cap: Duration,
    transitions: bool,
) -> Res<M> {
    with_db(env, "progress", |p| {
        let q = Q::open(&env.libs, sys, p, Sync::Normal)?;
        if sys == Sys::Raw {
            q.add_raw_progress_column()?;
        }
        if transitions {
            let set: String = q.c.query_row(
                r#"SELECT task_queue(?1, '{"events": "transitions"}')"#,
                [QUEUE],
                |r| r.get(0),
            )?;
            if !set.contains(r#""events":"transitions""#) {
                return Err(format!("task_queue kept progress events: {set}").into());
            }
        }
        backlog(&q, tasks)?;
        let ids = q.claim_batch(tasks as i64)?;
        if ids.len() as u64 != tasks {
            return Err("could not claim the running tasks".into());
        }
        q.checkpoint()?;
        let clock = Clock::start(cap);
        let mut done = 0;
        for i in 0..n {
            q.progress(&ids[(i % tasks) as usize], (i % 100) as i64, writeback)?;
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        Ok(clock.m(done))
    })
}

/// Point lookups of random tasks by id among `waiting` tasks.
fn lookup(env: &Env, sys: Sys, storage: bool, waiting: u64, n: u64, cap: Duration) -> Res<M> {
    with_db(env, "lookup", |p| {
        let q = Q::open(&env.libs, sys, p, Sync::Normal)?;
        let ids = backlog(&q, waiting)?;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let picks: Vec<usize> = (0..n)
            .map(|_| (rng.next() % ids.len() as u64) as usize)
            .collect();
        let clock = Clock::start(cap);
        let mut done = 0;
        for &i in &picks {
            q.lookup(&ids[i], storage)?;
            done += 1;
            if clock.over(done) {
                break;
            }
        }
        Ok(clock.m(done))
    })
}

/// xorshift64: reproducible picks without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The cycle in `procs` worker processes on one file; the rate counts all of their completions.
fn procs(env: &Env, sys: Sys, procs: usize, waiting: u64, cap: Duration) -> Res<M> {
    with_db(env, "procs", |p| {
        {
            let q = Q::open(&env.libs, sys, p, Sync::Normal)?;
            backlog(&q, waiting)?;
        }
        let exe = std::env::current_exe()?;
        let mut children = Vec::new();
        for _ in 0..procs {
            let child = Command::new(&exe)
                .arg("worker")
                .arg(sys.name())
                .arg(p)
                .arg(cap.as_millis().to_string())
                .env("TASK_EXT", &env.libs.task)
                .env("HONKER_EXT", &env.libs.honker)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            children.push(child);
        }
        let mut outs = Vec::new();
        for c in &mut children {
            let mut out = BufReader::new(c.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            out.read_line(&mut line)?;
            if line.trim() != "ready" {
                return Err(format!("worker did not start: {line:?}").into());
            }
            outs.push(out);
        }
        let t0 = Instant::now();
        for c in &mut children {
            let stdin = c.stdin.as_mut().ok_or("no stdin")?;
            stdin.write_all(b"go\n")?;
            stdin.flush()?;
        }
        let mut total = 0u64;
        for out in &mut outs {
            let mut line = String::new();
            out.read_line(&mut line)?;
            total += line
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("worker failed: {line:?}"))?;
        }
        let secs = t0.elapsed().as_secs_f64();
        for mut c in children {
            c.wait()?;
        }
        if total < waiting && secs <= cap.as_secs_f64() {
            return Err(format!("workers completed {total} of {waiting} tasks").into());
        }
        Ok(M {
            ops: total as f64,
            secs,
        })
    })
}

/// `bench worker <system> <db> <cap_ms>`: says `ready`, waits for a line, then claims and
/// completes until the queue is empty (or the cap), and prints how many it completed.
pub fn worker_main(args: &[String]) -> Res<()> {
    let [sys, db, cap_ms] = args else {
        return Err("usage: bench worker <system> <db> <cap_ms>".into());
    };
    let sys = Sys::parse(sys).ok_or("unknown system")?;
    let cap = Duration::from_millis(cap_ms.parse()?);
    let mut q = Q::open(&crate::libs_from_env(), sys, Path::new(db), Sync::Normal)?;
    q.immediate = sys == Sys::Honker;
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let clock = Clock::start(cap);
    let (mut done, mut retries) = (0, 0u64);
    while let Some(id) = busy_retry(sys, &mut retries, || q.claim())? {
        busy_retry(sys, &mut retries, || q.complete(&id))?;
        done += 1;
        if clock.over(done) {
            break;
        }
    }
    if retries > 0 {
        eprintln!(
            "   ({} worker: {retries} calls retried after \"database is locked\")",
            sys.name()
        );
    }
    println!("{done}");
    Ok(())
}

/// honker only: retries a call that failed with SQLITE_BUSY, as its users must. Its write
/// transactions last milliseconds (its claim reads every due job), and SQLite's busy handler is no
/// queue: a process that sleeps in it can miss the lock for longer than the busy timeout while the
/// others take turns. sqlite-task and raw get no retry: a BUSY there fails the case.
fn busy_retry<T>(sys: Sys, retries: &mut u64, f: impl Fn() -> Res<T>) -> Res<T> {
    loop {
        match f() {
            Err(e) if sys == Sys::Honker && *retries < 100_000 && is_busy(e.as_ref()) => {
                *retries += 1
            }
            r => return r,
        }
    }
}

fn is_busy(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DatabaseBusy
    )
}

/// One measurement by the effectum peer process: `effectum-peer <case> <args…>` prints
/// `{"ops": …, "secs": …}`.
fn effectum(env: &Env, args: &[String]) -> Res<M> {
    let exe = env.effectum.as_ref().ok_or("effectum peer not built")?;
    let p = fresh(env, "effectum")?;
    let out = Command::new(exe).args(args).arg(&p).output();
    drop_db(&p);
    let out = out?;
    if !out.status.success() {
        return Err(format!(
            "effectum-peer {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(M {
        ops: v["ops"].as_f64().ok_or("effectum-peer: no ops")?,
        secs: v["secs"].as_f64().ok_or("effectum-peer: no secs")?,
    })
}

struct Bench<'a> {
    plan: &'a Plan,
    rows: Vec<Row>,
}

impl<'a> Bench<'a> {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        key: &str,
        title: &str,
        sync: Sync,
        unit: Unit,
        base: Option<&str>,
        asked: u64,
        jobs: Vec<Job<'_>>,
    ) {
        if !self.plan.wants(key) {
            return;
        }
        let systems = &self.plan.systems;
        let jobs: Vec<Job<'_>> = jobs
            .into_iter()
            .filter(|(s, _)| {
                systems.is_empty()
                    || systems.contains(s)
                    || (BESIDE.contains(&s.as_str()) && systems.iter().any(|x| x == "sqlite-task"))
            })
            .collect();
        let load = load_average();
        eprintln!("── {title} [{}] (load average {load:.2})", sync.name());
        let mut cells: Vec<Cell> = jobs
            .iter()
            .map(|(s, _)| Cell {
                system: s.clone(),
                runs: Vec::new(),
                error: None,
            })
            .collect();
        for run in 0..self.plan.runs {
            for (i, (system, f)) in jobs.iter().enumerate() {
                if cells[i].error.is_some() {
                    continue;
                }
                match f() {
                    Ok(m) => {
                        eprintln!(
                            "   run {} {system:<12} {:>12.0} ops/s  ({} ops, {:.2} s)",
                            run + 1,
                            m.rate(),
                            m.ops,
                            m.secs
                        );
                        cells[i].runs.push(m);
                    }
                    Err(e) => {
                        eprintln!("   run {} {system:<12} ERROR {e}", run + 1);
                        cells[i].error = Some(e.to_string());
                        cells[i].runs.clear();
                    }
                }
            }
        }
        self.rows.push(Row {
            key: key.to_string(),
            title: title.to_string(),
            sync,
            unit,
            base: base.map(str::to_string),
            asked,
            load,
            cells,
        });
    }
}

/// The 1-minute load average (0 where /proc/loadavg does not exist).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

pub fn run_all(plan: &Plan, env: &Env) -> Res<Vec<Row>> {
    let mut b = Bench {
        plan,
        rows: Vec::new(),
    };
    let cap_ms = s(plan.cap.as_millis());
    let cap = |sys: Sys| match sys {
        Sys::Ext | Sys::Raw => plan.cap_own,
        Sys::Honker => plan.cap,
    };
    let all = [Sys::Ext, Sys::Raw, Sys::Honker];
    let eff = |args: Vec<String>| -> Job<'_> {
        (
            "effectum".to_string(),
            Box::new(move || effectum(env, &args)),
        )
    };

    for (sync, n) in [(Sync::Normal, plan.single), (Sync::Full, plan.single_full)] {
        let mut jobs: Vec<Job> = all
            .iter()
            .map(|&sys| -> Job {
                (
                    s(sys.name()),
                    Box::new(move || enqueue_single(env, sys, sync, n, cap(sys))),
                )
            })
            .collect();
        if sync == Sync::Normal {
            jobs.push(eff(vec![s("enqueue_single"), s(n), cap_ms.clone()]));
        }
        let key = format!("enqueue_single_{}", sync.name().to_lowercase());
        b.row(
            &key,
            "enqueue, one task per transaction",
            sync,
            Unit::Rate,
            None,
            n,
            jobs,
        );
    }

    let n = plan.single;
    let jobs: Vec<Job> = vec![
        (
            s("sqlite-task"),
            Box::new(move || workflows::unique_enqueue(env, n, plan.cap_own)),
        ),
        (
            s(PLAIN_ENQUEUE),
            Box::new(move || enqueue_single(env, Sys::Ext, Sync::Normal, n, plan.cap_own)),
        ),
    ];
    b.row(
        "unique_enqueue",
        "enqueue with a new unique_key, one per transaction",
        Sync::Normal,
        Unit::Rate,
        Some("enqueue_single_normal"),
        n,
        jobs,
    );
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || workflows::unique_conflict(env, n, plan.cap_own)),
    )];
    b.row(
        "unique_enqueue_conflict",
        "enqueue of a unique_key already held (keep)",
        Sync::Normal,
        Unit::Rate,
        Some("enqueue_single_normal"),
        n,
        jobs,
    );
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || operations::enqueue(env, Setup::IndexCompleted, n, plan.cap_own)),
    )];
    b.row(
        "enqueue_indexed",
        "enqueue, one per transaction, index_completed on",
        Sync::Normal,
        Unit::Rate,
        Some("enqueue_single_normal"),
        n,
        jobs,
    );

    let n = plan.bulk;
    let mut jobs: Vec<Job> = all
        .iter()
        .map(|&sys| -> Job { (s(sys.name()), Box::new(move || enqueue_bulk(env, sys, n))) })
        .collect();
    jobs.push(eff(vec![s("enqueue_bulk"), s(n)]));
    b.row(
        "enqueue_bulk",
        &format!("enqueue, {n} in one transaction"),
        Sync::Normal,
        Unit::Rate,
        None,
        n,
        jobs,
    );
    let k = plan.dag_diamonds;
    let dag_tasks = k * (workflows::DIAMOND_WIDTH + 2);
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || workflows::dag_enqueue(env, k)),
    )];
    b.row(
        "dag_enqueue",
        &format!("enqueue: {k} diamonds (depends_on), one transaction"),
        Sync::Normal,
        Unit::Rate,
        Some("enqueue_bulk"),
        dag_tasks,
        jobs,
    );

    for (sync, cycles) in [(Sync::Normal, plan.cycle), (Sync::Full, plan.cycle_full)] {
        let waiting = plan.cycle;
        let mut jobs: Vec<Job> = all
            .iter()
            .map(|&sys| -> Job {
                (
                    s(sys.name()),
                    Box::new(move || cycle(env, sys, sync, waiting, cycles, cap(sys), false)),
                )
            })
            .collect();
        if sync == Sync::Normal {
            jobs.push(eff(vec![
                s("cycle"),
                s(waiting),
                s(cycles),
                s(1),
                cap_ms.clone(),
            ]));
        }
        let key = format!("cycle_{}", sync.name().to_lowercase());
        let title = if cycles == waiting {
            format!("cycle: claim + complete, {waiting} tasks")
        } else {
            format!("cycle: claim + complete, {cycles} of {waiting} tasks")
        };
        b.row(&key, &title, sync, Unit::Rate, None, cycles, jobs);
        if sync == Sync::Normal {
            let jobs: Vec<Job> = vec![(
                s("sqlite-task"),
                Box::new(move || cycle(env, Sys::Ext, sync, waiting, cycles, plan.cap_own, true)),
            )];
            b.row(
                "cycle_queue",
                "cycle, claim filtered by queue",
                sync,
                Unit::Rate,
                Some("cycle_normal"),
                cycles,
                jobs,
            );
            let jobs = beside_plain(
                env,
                plan,
                Box::new(move || limited_cycle(env, waiting, cycles, plan.cap_own)),
            );
            b.row(
                "limited_cycle",
                "cycle on a queue with a concurrency limit",
                sync,
                Unit::Rate,
                Some("cycle_normal"),
                cycles,
                jobs,
            );
            // The claim over many queues: the same cycle with the tasks spread over 1, 100
            // and 10,000 queues (claiming from every queue), and a claim by name among 10,000.
            for (key, title, queues, named) in [
                ("queues_1", "cycle, every-queue claim, 1 queue", 1, false),
                (
                    "queues_100",
                    "cycle, every-queue claim, 100 queues",
                    100,
                    false,
                ),
                (
                    "queues_10k",
                    "cycle, every-queue claim, 10,000 queues",
                    10_000,
                    false,
                ),
                (
                    "queues_10k_named",
                    "cycle, claim by name among 10,000 queues",
                    10_000,
                    true,
                ),
            ] {
                let n = plan.scale_cycles;
                let jobs: Vec<Job> = vec![(
                    s("sqlite-task"),
                    Box::new(move || queues_cycle(env, queues, waiting, n, named, plan.cap_own)),
                )];
                b.row(key, title, sync, Unit::Rate, Some("queues_1"), n, jobs);
            }
            let jobs: Vec<Job> = vec![(
                s("sqlite-task"),
                Box::new(move || worker_loop(env, waiting, plan.cap_own)),
            )];
            b.row(
                "loop",
                "cycle as a task_complete_next loop",
                sync,
                Unit::Rate,
                Some("cycle_normal"),
                waiting,
                jobs,
            );
            let jobs = beside_plain(
                env,
                plan,
                Box::new(move || workflows::dag_drain(env, k, plan.cap_own)),
            );
            b.row(
                "dag_drain",
                &format!(
                    "cycle: drain {k} diamonds of {} tasks",
                    workflows::DIAMOND_WIDTH + 2
                ),
                sync,
                Unit::Rate,
                Some("cycle_normal"),
                dag_tasks,
                jobs,
            );
            let children = plan.child_cycle;
            let jobs = beside_plain(
                env,
                plan,
                Box::new(move || workflows::child_cycle(env, children, plan.cap_own)),
            );
            b.row(
                "child_cycle",
                &format!("cycle: {} children of one waiting parent", short(children)),
                sync,
                Unit::Rate,
                Some("cycle_normal"),
                children,
                jobs,
            );
            for (key, title, setup) in [
                (
                    "cycle_ops",
                    "cycle with a schedule and a queue retention",
                    Setup::ScheduleAndRetention,
                ),
                (
                    "cycle_indexed",
                    "cycle with index_completed on",
                    Setup::IndexCompleted,
                ),
                (
                    "cycle_events_off",
                    "cycle with the queue's events off",
                    Setup::EventsOff,
                ),
                (
                    "cycle_events_indexed",
                    "cycle with index_events on",
                    Setup::EventsIndexed,
                ),
            ] {
                let jobs: Vec<Job> = vec![(
                    s("sqlite-task"),
                    Box::new(move || operations::cycle(env, setup, waiting, cycles, plan.cap_own)),
                )];
                b.row(
                    key,
                    title,
                    sync,
                    Unit::Rate,
                    Some("cycle_normal"),
                    cycles,
                    jobs,
                );
            }
        }
    }

    for (size, sync) in [(32i64, Sync::Normal), (32, Sync::Full), (128, Sync::Normal)] {
        let waiting = plan.batch;
        let mut jobs: Vec<Job> = all
            .iter()
            .map(|&sys| -> Job {
                (
                    s(sys.name()),
                    Box::new(move || batch(env, sys, sync, waiting, size, cap(sys))),
                )
            })
            .collect();
        if sync == Sync::Normal {
            jobs.push(eff(vec![
                s("cycle"),
                s(waiting),
                s(waiting),
                s(size),
                cap_ms.clone(),
            ]));
        }
        let key = format!("batch{size}_{}", sync.name().to_lowercase());
        let title = format!("batched cycle, {size} per batch (tasks/s)");
        b.row(&key, &title, sync, Unit::Rate, None, waiting, jobs);
    }

    let (tasks, wt, wb) = (plan.progress_tasks, plan.progress_wt, plan.progress_wb);
    let mut jobs: Vec<Job> = all
        .iter()
        .map(|&sys| -> Job {
            (
                s(sys.name()),
                Box::new(move || progress(env, sys, tasks, wt, false, cap(sys), false)),
            )
        })
        .collect();
    jobs.push(eff(vec![s("progress"), s(tasks), s(wt), cap_ms.clone()]));
    b.row(
        "progress",
        &format!("progress on {tasks} running tasks, write-through"),
        Sync::Normal,
        Unit::Rate,
        None,
        wt,
        jobs,
    );
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || progress(env, Sys::Ext, tasks, wb, true, plan.cap_own, false)),
    )];
    b.row(
        "progress_writeback",
        "progress, write-back {\"writeback\": 1000}",
        Sync::Normal,
        Unit::Rate,
        Some("progress"),
        wb,
        jobs,
    );
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || progress(env, Sys::Ext, tasks, wt, false, plan.cap_own, true)),
    )];
    b.row(
        "progress_transitions",
        "progress, write-through, the queue's events transitions only",
        Sync::Normal,
        Unit::Rate,
        Some("progress"),
        wt,
        jobs,
    );

    for &waiting in &plan.scales {
        // `waiting` + `cycles` are enqueued, so at least `waiting` stay queued throughout.
        let cycles = plan.scale_cycles;
        let total = waiting + cycles;
        let mut jobs: Vec<Job> = all
            .iter()
            .map(|&sys| -> Job {
                (
                    s(sys.name()),
                    Box::new(move || cycle(env, sys, Sync::Normal, total, cycles, cap(sys), false)),
                )
            })
            .collect();
        jobs.push(eff(vec![
            s("cycle"),
            s(total),
            s(cycles),
            s(1),
            cap_ms.clone(),
        ]));
        let title = format!(
            "scale: cycle, {} with ≥ {} waiting",
            short(cycles),
            short(waiting)
        );
        b.row(
            &format!("scale_{waiting}"),
            &title,
            Sync::Normal,
            Unit::Rate,
            None,
            cycles,
            jobs,
        );
    }

    for p in [1usize, 2, 4] {
        let waiting = plan.procs_tasks;
        let jobs: Vec<Job> = all
            .iter()
            .map(|&sys| -> Job {
                (
                    s(sys.name()),
                    Box::new(move || procs(env, sys, p, waiting, cap(sys))),
                )
            })
            .collect();
        let title = format!(
            "processes: cycle in {p} worker process{}",
            if p == 1 { "" } else { "es" }
        );
        b.row(
            &format!("procs_{p}"),
            &title,
            Sync::Normal,
            Unit::Rate,
            None,
            waiting,
            jobs,
        );
    }

    let (waiting, n) = (plan.lookup_backlog, plan.lookups);
    let mut jobs: Vec<Job> = all
        .iter()
        .map(|&sys| -> Job {
            (
                s(sys.name()),
                Box::new(move || lookup(env, sys, false, waiting, n, cap(sys))),
            )
        })
        .collect();
    jobs.push(eff(vec![s("lookup"), s(waiting), s(n), cap_ms.clone()]));
    let title = format!(
        "read: task by id, tasks table, {} tasks (µs)",
        short(waiting)
    );
    b.row("lookup", &title, Sync::Normal, Unit::Micros, None, n, jobs);
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || lookup(env, Sys::Ext, true, waiting, n, plan.cap_own)),
    )];
    b.row(
        "lookup_storage",
        "read: task by id, task_store table (µs)",
        Sync::Normal,
        Unit::Micros,
        Some("lookup"),
        n,
        jobs,
    );
    let (children, n) = (plan.rollup_children, plan.rollup_reads);
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(move || workflows::rollup_read(env, children, n, plan.cap_own)),
    )];
    b.row(
        "rollup_read",
        &format!(
            "read: progress of a parent of {} children (µs)",
            short(children)
        ),
        Sync::Normal,
        Unit::Micros,
        Some("lookup"),
        n,
        jobs,
    );

    let (finished, n) = (plan.finished, plan.stats_reads);
    for (key, title, indexed) in [
        ("stats", "", false),
        ("stats_indexed", ", index_completed", true),
    ] {
        let jobs: Vec<Job> = vec![(
            s("sqlite-task"),
            Box::new(move || operations::stats(env, finished, n, indexed, plan.cap_own)),
        )];
        let title = format!(
            "read: task_stats(), {} finished{title} (µs)",
            short(finished)
        );
        b.row(key, &title, Sync::Normal, Unit::Micros, None, 1, jobs);
    }
    let steps = operations::LongestSteps::default();
    let jobs: Vec<Job> = vec![(
        s("sqlite-task"),
        Box::new(|| operations::prune(env, finished, &steps)),
    )];
    b.row(
        "prune",
        &format!("task_prune: {} finished tasks (rows/s)", short(finished)),
        Sync::Normal,
        Unit::Rate,
        None,
        finished,
        jobs,
    );
    let jobs: Vec<Job> = vec![(s("sqlite-task"), Box::new(|| steps.next()))];
    b.row(
        "prune_step",
        "task_prune: its longest step, those runs (µs)",
        Sync::Normal,
        Unit::Micros,
        None,
        1,
        jobs,
    );

    Ok(b.rows)
}

pub fn short(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}
