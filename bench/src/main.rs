//! `make bench`: sqlite-task against raw SQLite, honker and effectum, in one run.
//!
//! Every case runs on a fresh WAL database per system and per run, the runs of the systems
//! interleaved; the table shows the median. Ratios are sqlite-task's rate divided by the other's
//! (above 1: sqlite-task is faster). The workflow rows that are rated against the plain work
//! (children, diamonds and a limited queue against the cycle, the unique-key enqueue against the
//! single enqueue) run that plain work beside their own, run by run, and take the median of the
//! paired runs' ratios. `BENCH_QUICK=1` shrinks every case to a smoke run.
//!
//! `bench worker <system> <db> <cap_ms>` is the worker process of the multi-process case.

mod cases;
mod operations;
mod queue;
mod report;
mod workflows;

use std::path::PathBuf;
use std::time::Duration;

use queue::{Libs, Res};

/// How big each case is. Counts are tasks or operations.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub runs: usize,
    /// A peer slower than this per measurement is stopped and rated on what it did.
    pub cap: Duration,
    /// The same for sqlite-task and raw: a safety net only, never reached on a quiet machine.
    pub cap_own: Duration,
    pub single: u64,
    pub single_full: u64,
    pub bulk: u64,
    pub cycle: u64,
    pub cycle_full: u64,
    pub batch: u64,
    pub progress_tasks: u64,
    pub progress_wt: u64,
    pub progress_wb: u64,
    pub scales: Vec<u64>,
    pub scale_cycles: u64,
    pub procs_tasks: u64,
    pub lookup_backlog: u64,
    pub lookups: u64,
    /// Fan-out/fan-in diamonds of 100 tasks each (workflows.rs).
    pub dag_diamonds: u64,
    /// Children of the parent whose progress is read, and the reads.
    pub rollup_children: u64,
    pub rollup_reads: u64,
    /// Children of the parent whose children are cycled: as many as the plain cycle does, so
    /// that the two compare like for like (a smaller table cycles faster).
    pub child_cycle: u64,
    /// Finished tasks of the stats and prune databases, and the stats reads (operations.rs).
    pub finished: u64,
    pub stats_reads: u64,
    /// `BENCH_ONLY`: run only the rows whose key starts with one of these (all when empty).
    pub only: Vec<String>,
    /// `BENCH_SYSTEMS`: run only these systems (all when empty).
    pub systems: Vec<String>,
    // `BENCH_RUNS` overrides `runs`.
}

impl Plan {
    /// Whether the row `key` is part of this run.
    pub fn wants(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| key.starts_with(p.as_str()))
    }

    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                runs: 1,
                cap: Duration::from_secs(3),
                cap_own: Duration::from_secs(20),
                single: 2_000,
                single_full: 300,
                bulk: 10_000,
                cycle: 10_000,
                cycle_full: 500,
                batch: 10_000,
                progress_tasks: 100,
                progress_wt: 2_000,
                progress_wb: 20_000,
                scales: vec![1_000, 10_000, 100_000],
                scale_cycles: 2_000,
                procs_tasks: 4_000,
                lookup_backlog: 10_000,
                lookups: 5_000,
                dag_diamonds: 10,
                rollup_children: 1_000,
                rollup_reads: 2_000,
                child_cycle: 10_000,
                finished: 100_000,
                stats_reads: 100,
                only: Vec::new(),
                systems: Vec::new(),
            }
        } else {
            Plan {
                quick,
                runs: 5,
                cap: Duration::from_secs(10),
                cap_own: Duration::from_secs(120),
                single: 20_000,
                single_full: 2_000,
                bulk: 100_000,
                cycle: 100_000,
                cycle_full: 10_000,
                batch: 100_000,
                progress_tasks: 100,
                progress_wt: 20_000,
                progress_wb: 200_000,
                scales: vec![10_000, 100_000, 1_000_000],
                scale_cycles: 20_000,
                procs_tasks: 40_000,
                lookup_backlog: 100_000,
                lookups: 50_000,
                dag_diamonds: 100,
                rollup_children: 10_000,
                rollup_reads: 20_000,
                child_cycle: 100_000,
                finished: 1_000_000,
                stats_reads: 200,
                only: Vec::new(),
                systems: Vec::new(),
            }
        }
    }
}

/// What the harness was pointed at (set by bench/run.sh).
#[derive(Clone, Debug)]
pub struct Env {
    pub libs: Libs,
    pub effectum: Option<PathBuf>,
    pub dir: PathBuf,
    pub out: PathBuf,
}

fn env_path(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = if args.get(1).map(String::as_str) == Some("worker") {
        cases::worker_main(&args[2..])
    } else {
        run()
    };
    if let Err(e) = r {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut plan = Plan::new(quick);
    // Focused runs while working on one figure; `make bench` sets none of these.
    let list = |name: &str| -> Vec<String> {
        std::env::var(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    plan.only = list("BENCH_ONLY");
    plan.systems = list("BENCH_SYSTEMS");
    if let Some(n) = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        plan.runs = n;
    }
    let env = Env {
        libs: libs_from_env(),
        effectum: std::env::var("EFFECTUM_PEER")
            .ok()
            .map(PathBuf::from)
            .filter(|p| p.exists()),
        dir: PathBuf::from(env_path("BENCH_DIR", "bench/target/db")),
        out: PathBuf::from(env_path("BENCH_OUT", "bench")),
    };
    std::fs::create_dir_all(&env.dir)?;
    if env.effectum.is_none() {
        eprintln!("bench: EFFECTUM_PEER not built; the effectum column stays empty");
    }
    let rows = cases::run_all(&plan, &env)?;
    report::write(&plan, &env, &rows)
}

pub fn libs_from_env() -> Libs {
    Libs {
        task: env_path("TASK_EXT", "dist/task0"),
        honker: env_path("HONKER_EXT", "bench/target/honker/release/libhonker_ext"),
    }
}
