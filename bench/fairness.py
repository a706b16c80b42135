"""Fair waits, measured: N worker processes claim and complete in a loop
with no work between calls, on one WAL file, once with SQLite's own
`PRAGMA busy_timeout` and once with `task_busy_timeout` (the extension's
fair wait), with the same timeout.

For each run it reports the claims per process (max/min: how unevenly the
lock was shared), the longest single call, how many calls waited over
100 ms and over 1 s, SQLITE_BUSY errors, and the throughput. `make bench`
runs it after the main harness and writes bench/fairness.json.

    python bench/fairness.py [--tasks N] [--procs 4,8] [--timeout MS] [--out FILE]

Needs apsw and TASK_EXT (the extension's path without suffix).
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

import apsw


def connect(path, ext):
    db = apsw.Connection(path)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def worker(path, ext, name, mode, timeout_ms, start, out):
    db = connect(path, ext)
    if mode == "fair":
        db.execute("SELECT task_busy_timeout(?)", (timeout_ms,))
    else:
        db.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
    claimed = busy = 0
    longest = 0.0
    over_100 = over_1s = 0
    start.wait()
    t_first = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        try:
            row = db.execute("SELECT task_claim(?)", (name,)).fetchone()
            task = row[0]
            if task is None:
                break
            task_id = json.loads(task)["id"]
            took = time.perf_counter() - t0
            t1 = time.perf_counter()
            db.execute("SELECT task_complete(?)", (task_id,))
            took = max(took, time.perf_counter() - t1)
        except apsw.BusyError:
            busy += 1
            continue
        claimed += 1
        longest = max(longest, took)
        over_100 += took > 0.1
        over_1s += took > 1.0
    out.put(
        {
            "worker": name,
            "claimed": claimed,
            "busy": busy,
            "longest_ms": longest * 1000,
            "over_100ms": over_100,
            "over_1s": over_1s,
            "secs": time.perf_counter() - t_first,
        }
    )


def run(ext, procs, mode, tasks, timeout_ms):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fair.db")
        db = connect(path, ext)
        db.execute("SELECT task_init()")
        with db:
            for i in range(tasks):
                db.execute("SELECT task_enqueue('job', NULL)")
        db.close()
        ctx = mp.get_context("spawn")
        start = ctx.Event()
        out = ctx.Queue()
        ps = [
            ctx.Process(
                target=worker, args=(path, ext, f"w{i}", mode, timeout_ms, start, out)
            )
            for i in range(procs)
        ]
        for p in ps:
            p.start()
        time.sleep(1.0)  # every worker connected and waiting at the start line
        t0 = time.perf_counter()
        start.set()
        results = [out.get(timeout=600) for _ in ps]
        wall = time.perf_counter() - t0
        for p in ps:
            p.join()
        db = connect(path, ext)
        left = db.execute(
            "SELECT count(*) FROM tasks WHERE status <> 'completed'"
        ).fetchone()[0]
        db.close()
    shares = sorted(r["claimed"] for r in results)
    return {
        "procs": procs,
        "mode": mode,
        "tasks": tasks,
        "timeout_ms": timeout_ms,
        "shares": shares,
        "max_over_min": (shares[-1] / shares[0]) if shares[0] else None,
        "longest_call_ms": round(max(r["longest_ms"] for r in results), 2),
        "calls_over_100ms": sum(r["over_100ms"] for r in results),
        "calls_over_1s": sum(r["over_1s"] for r in results),
        "busy_errors": sum(r["busy"] for r in results),
        "tasks_per_s": round(sum(shares) / wall),
        "not_completed": left,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--procs", default="4,8")
    ap.add_argument("--timeout", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    ext = os.environ.get("TASK_EXT")
    if not ext:
        sys.exit("fairness: set TASK_EXT to the extension's path (no suffix)")
    rows = []
    print(
        f"fair waits: no-work claim+complete loops, {a.tasks} tasks, timeout {a.timeout} ms, "
        f"WAL, synchronous=NORMAL, median of {a.runs} runs (each run alternates the modes)",
        file=sys.stderr,
    )
    for procs in [int(p) for p in a.procs.split(",")]:
        runs = {"plain": [], "fair": []}
        for _ in range(a.runs):
            for mode in ("plain", "fair"):
                r = run(ext, procs, mode, a.tasks, a.timeout)
                runs[mode].append(r)
                print(
                    f"  {procs} procs {mode:<5} shares {r['shares']} "
                    f"longest {r['longest_call_ms']} ms, >100 ms {r['calls_over_100ms']}, "
                    f">1 s {r['calls_over_1s']}, busy {r['busy_errors']}, "
                    f"{r['tasks_per_s']} tasks/s",
                    file=sys.stderr,
                )
        for mode, rs in runs.items():
            ratios = [r["max_over_min"] for r in rs]
            # A process that claimed nothing makes the ratio infinite (null in the JSON).
            mm = statistics.median([x if x is not None else float("inf") for x in ratios])
            rows.append(
                {
                    "procs": procs,
                    "mode": mode,
                    "runs": rs,
                    "max_over_min_median": None if mm == float("inf") else round(mm, 2),
                    "longest_call_ms_median": statistics.median(
                        r["longest_call_ms"] for r in rs
                    ),
                    "calls_over_100ms_median": statistics.median(
                        r["calls_over_100ms"] for r in rs
                    ),
                    "tasks_per_s_median": statistics.median(r["tasks_per_s"] for r in rs),
                    "busy_errors": sum(r["busy_errors"] for r in rs),
                }
            )
    print("\n| procs | wait | max/min claims | longest call ms | calls > 100 ms | tasks/s | BUSY |")
    print("|--:|---|--:|--:|--:|--:|--:|")
    for r in rows:
        mm = r["max_over_min_median"]
        print(
            f"| {r['procs']} | {'task_busy_timeout' if r['mode'] == 'fair' else 'PRAGMA busy_timeout'} "
            f"| {'∞' if mm is None else f'{mm:.2f}'} | {r['longest_call_ms_median']:.1f} "
            f"| {r['calls_over_100ms_median']:g} | {r['tasks_per_s_median']:,.0f} | {r['busy_errors']} |"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(
                {"tasks": a.tasks, "timeout_ms": a.timeout, "runs": a.runs, "rows": rows},
                f,
                indent=2,
                default=lambda x: None,
            )
            f.write("\n")


if __name__ == "__main__":
    main()
