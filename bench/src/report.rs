//! The outputs: the table on stdout (also bench/results.txt), the headline figures as flat numbers
//! in bench/results.json, and every run of every cell with the machine and settings in
//! bench/results-detail.json (which bench/chart.py draws from).

use std::fmt::Write as _;
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::cases::{BESIDE, PLAIN, PLAIN_ENQUEUE, Row, Unit, short};
use crate::queue::Res;
use crate::{Env, Plan};

const US: &str = "sqlite-task";
const OTHERS: [&str; 3] = ["raw", "honker", "effectum"];

fn find<'a>(rows: &'a [Row], key: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.key == key)
}

/// The median rate of `system` in `row`, or in the row it extends.
fn rate(rows: &[Row], row: &Row, system: &str) -> Option<f64> {
    if let Some(c) = row.get(system) {
        return c.median();
    }
    let base = find(rows, row.base.as_deref()?)?;
    base.get(system)?.median()
}

fn ratio(rows: &[Row], row: &Row, other: &str) -> Option<f64> {
    Some(rate(rows, row, US)? / rate(rows, row, other)?)
}

/// The median of the per-run ratios (run i of sqlite-task against run i of the other, measured
/// one after the other): less moved by a burst of load from outside than the ratio of medians.
fn paired_ratio(row: &Row, other: &str) -> Option<f64> {
    let (a, b) = (row.get(US)?, row.get(other)?);
    if a.runs.is_empty() || a.runs.len() != b.runs.len() {
        return None;
    }
    let mut r: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .map(|(x, y)| x.rate() / y.rate())
        .collect();
    r.sort_by(|x, y| x.total_cmp(y));
    let n = r.len();
    Some(if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    })
}

/// A workflow row against the plain work: paired with the cell `plain` run beside it when the
/// row has one, else the ratio of its median to that of row `base`, measured apart.
fn vs_plain(rows: &[Row], key: &str, plain: &str, base: &str) -> Option<f64> {
    find(rows, key)
        .and_then(|row| paired_ratio(row, plain))
        .or_else(|| key_ratio(rows, (key, US), (base, US)))
}

fn key_rate(rows: &[Row], key: &str, system: &str) -> Option<f64> {
    find(rows, key)?.get(system)?.median()
}

fn key_ratio(rows: &[Row], a: (&str, &str), b: (&str, &str)) -> Option<f64> {
    Some(key_rate(rows, a.0, a.1)? / key_rate(rows, b.0, b.1)?)
}

fn fmt_value(unit: Unit, rate: f64) -> String {
    match unit {
        Unit::Rate => group(rate),
        Unit::Micros => format!("{:.2} µs", 1e6 / rate),
    }
}

fn group(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<54} {:<6} {:>12} {:>12} {:>12} {:>12} {:>8} {:>9} {:>9}",
        "case (ops/s unless noted; median)",
        "sync",
        US,
        "raw",
        "honker",
        "effectum",
        "vs raw",
        "vs honker",
        "vs effect."
    );
    let _ = writeln!(t, "{}", "-".repeat(144));
    for row in rows {
        let cell = |system: &str| -> String {
            match row.get(system) {
                Some(c) => match (c.median(), &c.error) {
                    (Some(r), _) => {
                        let capped = c.ops().is_some_and(|o| o < row.asked as f64);
                        format!(
                            "{}{}",
                            fmt_value(row.unit, r),
                            if capped { "*" } else { "" }
                        )
                    }
                    (None, Some(_)) => "error".to_string(),
                    _ => "-".to_string(),
                },
                None => "".to_string(),
            }
        };
        let rat = |other: &str| -> String {
            match ratio(rows, row, other) {
                Some(x) if row.get(other).is_none() => format!("{x:.2}†"),
                Some(x) => format!("{x:.2}"),
                None => "-".to_string(),
            }
        };
        let _ = writeln!(
            t,
            "{:<54} {:<6} {:>12} {:>12} {:>12} {:>12} {:>8} {:>9} {:>9}",
            row.title,
            row.sync.name(),
            cell(US),
            cell("raw"),
            cell("honker"),
            cell("effectum"),
            rat("raw"),
            rat("honker"),
            rat("effectum"),
        );
    }
    let _ = writeln!(
        t,
        "\n*  stopped by the time cap before the asked count; rated on the operations it did"
    );
    let _ = writeln!(
        t,
        "†  against the figures of the row this one extends (the row above it of the same kind)"
    );
    for row in rows {
        for plain in BESIDE {
            if let (Some(x), Some(p)) = (
                paired_ratio(row, plain),
                row.get(plain).and_then(|c| c.median()),
            ) {
                let _ = writeln!(
                    t,
                    "‡  {}: {x:.2} × the {plain} run beside it (median of the paired runs' \
                     ratios; the {plain}'s median {}/s)",
                    row.title,
                    group(p)
                );
            }
        }
    }
    let loads: Vec<f64> = rows.iter().map(|r| r.load).collect();
    let (lo, hi) = loads
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let _ = writeln!(
        t,
        "   1-minute load average at the start of the rows: {lo:.2} … {hi:.2} (the harness itself \
         adds about 1; more means something else was running)"
    );
    for row in rows {
        for c in &row.cells {
            if let Some(e) = &c.error {
                let _ = writeln!(t, "error in \"{}\", {}: {e}", row.title, c.system);
            }
        }
    }
    t
}

/// The headline figures, by the names the performance issue gives them, and their targets.
fn headline(rows: &[Row], plan: &Plan) -> Vec<(&'static str, Option<f64>, &'static str)> {
    let us = |key: &str, system: &str| key_rate(rows, key, system).map(|r| 1e6 / r);
    let (s_lo, s_hi) = (
        plan.scales.first().copied().unwrap_or(0),
        plan.scales.last().copied().unwrap_or(0),
    );
    let scale_lo = format!("scale_{s_lo}");
    let scale_hi = format!("scale_{s_hi}");
    let scale_100k = format!("scale_{}", plan.cycle);
    let lookup_vtab = us("lookup", US);
    let lookup_storage = us("lookup_storage", US);
    vec![
        (
            "enqueue_single_vs_raw",
            key_ratio(
                rows,
                ("enqueue_single_normal", US),
                ("enqueue_single_normal", "raw"),
            ),
            "≥ 0.9",
        ),
        (
            "enqueue_single_vs_honker",
            key_ratio(
                rows,
                ("enqueue_single_normal", US),
                ("enqueue_single_normal", "honker"),
            ),
            "≥ 2",
        ),
        (
            "enqueue_single_vs_effectum",
            key_ratio(
                rows,
                ("enqueue_single_normal", US),
                ("enqueue_single_normal", "effectum"),
            ),
            "",
        ),
        (
            "enqueue_single_full_vs_raw",
            key_ratio(
                rows,
                ("enqueue_single_full", US),
                ("enqueue_single_full", "raw"),
            ),
            "",
        ),
        (
            "enqueue_bulk_vs_raw",
            key_ratio(rows, ("enqueue_bulk", US), ("enqueue_bulk", "raw")),
            "",
        ),
        ("cycle_tasks_per_s", key_rate(rows, "cycle_normal", US), ""),
        (
            "cycle_vs_raw",
            key_ratio(rows, ("cycle_normal", US), ("cycle_normal", "raw")),
            "≥ 1.0",
        ),
        (
            "cycle_vs_honker",
            key_ratio(rows, (&scale_100k, US), (&scale_100k, "honker")),
            "≥ 10",
        ),
        (
            "cycle_vs_effectum",
            key_ratio(rows, ("cycle_normal", US), ("cycle_normal", "effectum")),
            "",
        ),
        (
            "cycle_full_vs_raw",
            key_ratio(rows, ("cycle_full", US), ("cycle_full", "raw")),
            "",
        ),
        (
            "cycle_queue_vs_raw",
            key_ratio(rows, ("cycle_queue", US), ("cycle_normal", "raw")),
            "",
        ),
        (
            "batch32_tasks_per_s",
            key_rate(rows, "batch32_normal", US),
            "≥ 100000",
        ),
        (
            "batch32_vs_raw",
            key_ratio(rows, ("batch32_normal", US), ("batch32_normal", "raw")),
            "",
        ),
        (
            "batch32_vs_honker",
            key_ratio(rows, ("batch32_normal", US), ("batch32_normal", "honker")),
            "≥ 10",
        ),
        (
            "batch32_vs_effectum",
            key_ratio(rows, ("batch32_normal", US), ("batch32_normal", "effectum")),
            "",
        ),
        (
            "batch128_tasks_per_s",
            key_rate(rows, "batch128_normal", US),
            "",
        ),
        (
            "batch128_vs_raw",
            key_ratio(rows, ("batch128_normal", US), ("batch128_normal", "raw")),
            "",
        ),
        (
            "scale_1m_vs_10k",
            key_ratio(rows, (&scale_hi, US), (&scale_lo, US)),
            "≥ 0.8",
        ),
        (
            "loop_vs_raw",
            key_ratio(rows, ("loop", US), ("cycle_normal", "raw")),
            "≥ 1.3",
        ),
        (
            "progress_writeback_vs_writethrough",
            key_ratio(rows, ("progress_writeback", US), ("progress", US)),
            "≥ 10",
        ),
        (
            "progress_vs_raw",
            key_ratio(rows, ("progress", US), ("progress", "raw")),
            "",
        ),
        (
            "procs4_vs_procs1",
            key_ratio(rows, ("procs_4", US), ("procs_1", US)),
            "≥ 0.9",
        ),
        (
            "procs4_vs_raw",
            key_ratio(rows, ("procs_4", US), ("procs_4", "raw")),
            "",
        ),
        ("lookup_vtab_us", lookup_vtab, "≤ 2 × lookup_storage_us"),
        ("lookup_storage_us", lookup_storage, ""),
        ("lookup_raw_us", us("lookup", "raw"), ""),
        // Workflows (sqlite-task only): against the plain case of the same run.
        (
            "dag_enqueue_vs_bulk",
            key_ratio(rows, ("dag_enqueue", US), ("enqueue_bulk", US)),
            "",
        ),
        ("dag_drain_tasks_per_s", key_rate(rows, "dag_drain", US), ""),
        (
            "dag_drain_vs_cycle",
            vs_plain(rows, "dag_drain", PLAIN, "cycle_normal"),
            "≥ 0.8",
        ),
        (
            "unique_enqueue_vs_enqueue",
            vs_plain(
                rows,
                "unique_enqueue",
                PLAIN_ENQUEUE,
                "enqueue_single_normal",
            ),
            "≥ 0.8",
        ),
        (
            "unique_conflict_per_s",
            key_rate(rows, "unique_enqueue_conflict", US),
            "",
        ),
        (
            "rollup_read_10k_children_us",
            us("rollup_read", US),
            "≤ 1000 µs",
        ),
        (
            "child_cycle_vs_cycle",
            vs_plain(rows, "child_cycle", PLAIN, "cycle_normal"),
            "≥ 0.9",
        ),
        (
            "scale_queues_10k_vs_1",
            key_ratio(rows, ("queues_10k", US), ("queues_1", US)),
            "≥ 0.8",
        ),
        (
            "scale_queues_100_vs_1",
            key_ratio(rows, ("queues_100", US), ("queues_1", US)),
            "",
        ),
        (
            "scale_queues_10k_named_vs_1",
            key_ratio(rows, ("queues_10k_named", US), ("queues_1", US)),
            "",
        ),
        (
            "limited_cycle_vs_cycle",
            vs_plain(rows, "limited_cycle", PLAIN, "cycle_normal"),
            "≥ 0.8",
        ),
        // Operations (sqlite-task only): stats and prune on 1M finished tasks, and the plain
        // cycle and enqueue beside a schedule, a retention or the index of completed tasks.
        ("stats_1m_us", us("stats", US), "≤ 5000 µs"),
        ("stats_1m_indexed_us", us("stats_indexed", US), ""),
        ("prune_rows_per_s", key_rate(rows, "prune", US), ""),
        (
            "prune_longest_step_ms",
            key_rate(rows, "prune_step", US).map(|r| 1e3 / r),
            "",
        ),
        (
            "cycle_ops_vs_cycle",
            key_ratio(rows, ("cycle_ops", US), ("cycle_normal", US)),
            "",
        ),
        (
            "cycle_ops_vs_raw",
            key_ratio(rows, ("cycle_ops", US), ("cycle_normal", "raw")),
            "≥ 1.0",
        ),
        // The event log: the plain cycle writes two events (claimed, completed); the same cycle
        // on a queue whose events are off, and with the log's index by task.
        (
            "cycle_events_off_vs_on",
            key_ratio(rows, ("cycle_events_off", US), ("cycle_normal", US)),
            "",
        ),
        (
            "cycle_events_off_vs_raw",
            key_ratio(rows, ("cycle_events_off", US), ("cycle_normal", "raw")),
            "",
        ),
        (
            "progress_transitions_vs_raw",
            key_ratio(rows, ("progress_transitions", US), ("progress", "raw")),
            "",
        ),
        (
            "progress_transitions_vs_all",
            key_ratio(rows, ("progress_transitions", US), ("progress", US)),
            "",
        ),
        (
            "cycle_events_indexed_vs_cycle",
            key_ratio(rows, ("cycle_events_indexed", US), ("cycle_normal", US)),
            "",
        ),
        (
            "cycle_indexed_vs_cycle",
            key_ratio(rows, ("cycle_indexed", US), ("cycle_normal", US)),
            "",
        ),
        (
            "enqueue_indexed_vs_enqueue",
            key_ratio(rows, ("enqueue_indexed", US), ("enqueue_single_normal", US)),
            "",
        ),
    ]
}

fn met(name: &str, value: f64, target: &str, all: &[(&str, Option<f64>, &str)]) -> Option<bool> {
    if target.is_empty() {
        return None;
    }
    if name == "lookup_vtab_us" {
        let storage = all.iter().find(|x| x.0 == "lookup_storage_us")?.1?;
        return Some(value <= 2.0 * storage);
    }
    if let Some(max) = target.strip_prefix("≤ ") {
        let n: f64 = max.trim_end_matches(" µs").parse().ok()?;
        return Some(value <= n);
    }
    let n: f64 = target.trim_start_matches("≥ ").parse().ok()?;
    Some(value >= n)
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem_kb: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let cmd = |c: &str, args: &[&str]| {
        Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kb / 1048576.0).round(),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "date": cmd("date", &["-u", "+%Y-%m-%dT%H:%MZ"]),
        "rustc": cmd("rustc", &["--version"]),
        "sqlite_harness": rusqlite::version(),
        "sqlite_effectum": std::env::var("EFFECTUM_SQLITE").unwrap_or_default(),
    })
}

pub fn write(plan: &Plan, env: &Env, rows: &[Row]) -> Res<()> {
    let table = table(rows);
    let heads = headline(rows, plan);
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "\n{:<36} {:>14}  {:<26} verdict",
        "figure", "value", "target"
    );
    for (name, v, target) in &heads {
        let value = v.map_or("-".to_string(), |v| {
            if v >= 1000.0 {
                group(v)
            } else {
                format!("{v:.2}")
            }
        });
        let verdict = match v.and_then(|v| met(name, v, target, &heads)) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        let _ = writeln!(summary, "{name:<36} {value:>14}  {target:<26} {verdict}");
    }
    let scales: Vec<String> = plan.scales.iter().map(|&n| short(n)).collect();
    let settings = format!(
        "{} mode, median of {} run(s); fresh WAL database per system and run; synchronous=NORMAL \
         unless FULL is shown; busy_timeout=5000; time cap per measurement {} s for peers, {} s \
         for sqlite-task and raw; scale backlogs {}",
        if plan.quick { "QUICK" } else { "full" },
        plan.runs,
        plan.cap.as_secs(),
        plan.cap_own.as_secs(),
        scales.join("/"),
    );
    print!("{table}{summary}\n{settings}\n");
    std::fs::write(
        env.out.join("results.txt"),
        format!("{table}{summary}\n{settings}\n"),
    )?;

    let mut flat = Map::new();
    for (name, v, _) in &heads {
        if let Some(v) = v {
            let v = if v.abs() >= 100.0 {
                v.round()
            } else {
                (v * 1000.0).round() / 1000.0
            };
            flat.insert(name.to_string(), json!(v));
        }
    }
    flat.insert("quick".to_string(), json!(if plan.quick { 1 } else { 0 }));
    flat.insert("runs".to_string(), json!(plan.runs));
    std::fs::write(
        env.out.join("results.json"),
        serde_json::to_string_pretty(&Value::Object(flat))? + "\n",
    )?;

    let detail_rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let cells: Map<String, Value> = row
                .cells
                .iter()
                .map(|c| {
                    (
                        c.system.clone(),
                        json!({
                            "median_ops_per_s": c.median(),
                            "runs": c.runs.iter().map(|m| json!({"ops": m.ops, "secs": m.secs})).collect::<Vec<_>>(),
                            "error": c.error,
                        }),
                    )
                })
                .collect();
            let ratios: Map<String, Value> = OTHERS
                .iter()
                .filter_map(|o| ratio(rows, row, o).map(|x| (o.to_string(), json!(x))))
                .collect();
            let paired: Map<String, Value> = OTHERS
                .iter()
                .chain(&BESIDE)
                .filter_map(|o| paired_ratio(row, o).map(|x| (o.to_string(), json!(x))))
                .collect();
            json!({
                "key": row.key, "title": row.title, "sync": row.sync.name(),
                "unit": if row.unit == Unit::Micros { "us" } else { "ops/s" },
                "base": row.base, "asked": row.asked, "load_average": row.load, "systems": cells, "ratios": ratios,
                "paired_ratios": paired,
            })
        })
        .collect();
    let detail = json!({
        "machine": machine(),
        "settings": settings,
        "plan": format!("{plan:?}"),
        "scales": plan.scales,
        "rows": detail_rows,
    });
    std::fs::write(
        env.out.join("results-detail.json"),
        serde_json::to_string_pretty(&detail)? + "\n",
    )?;
    Ok(())
}
