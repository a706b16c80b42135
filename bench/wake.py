"""Waiting without polling, measured: how soon `task_wait` and the long-poll
claim (`task_claim(worker, '{"wait": ms}')`) see another process's commit,
and what an idle waiter costs in CPU.

- wake: process A loops `SELECT task_wait(5000)`; this process (B) commits
  one `task_enqueue` at random intervals of 20–80 ms. The latency is A's
  time.time_ns() right after task_wait returns, less B's right after its
  commit returned (the figure without the commit), and less B's right
  before the commit (with it). A pairs each wake with a commit by reading
  the newest task's `i` after it has taken its timestamp. A wake can come
  before B's call returns: an enqueue that runs the WAL's autocheckpoint
  is visible before the checkpoint ends.
- idle CPU: waiters in `task_wait(60000)` with nothing committing; the CPU
  time each spends over a window of wall time, read by this process from
  /proc/<pid>/task/*/schedstat (nanoseconds; utime+stime from
  /proc/<pid>/stat, in clock ticks, where schedstat is missing). One
  waiter, then four; beside the one waiter, a process in time.sleep is
  measured the same way, the floor of the method.
- long poll: A loops `task_claim('w', '{"wait": 5000}')` and completes what
  it claims; B enqueues one task at random intervals of 20–80 ms with its
  pre-enqueue time.time_ns() in the details. The latency is A's time right
  after the claim returned less that timestamp (the enqueue's commit
  included); less B's time after its commit, too.

The first 5 commits of each are not timed (warm-up).

All on a fresh WAL database in a temporary directory, synchronous=NORMAL,
through apsw. `make bench` runs it after bench/fairness.py and writes
bench/wake.json and bench/wake.txt.

    python bench/wake.py [--samples N] [--longpoll N] [--idle-secs S] [--out FILE]

Needs apsw and TASK_EXT (the extension's path without suffix; default
dist/task0 beside this directory).
"""

import argparse
import datetime
import json
import math
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time

import apsw

TARGETS = {"wake_p50_us": 500, "wake_p99_us": 2000, "idle_cpu_ms_per_s": 0.3}
# Histogram edges in µs, to show a distribution with two modes.
EDGES_US = [200, 300, 400, 500, 600, 800, 1000, 1500, 2000, 5000, 20000]


def connect(path, ext):
    db = apsw.Connection(path)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def pct(xs, p):
    """The nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(us):
    if not us:
        return None
    return {
        "n": len(us),
        "min": round(min(us), 1),
        "p50": round(pct(us, 50), 1),
        "p90": round(pct(us, 90), 1),
        "p99": round(pct(us, 99), 1),
        "max": round(max(us), 1),
    }


def histogram(us):
    labels = []
    lo = 0
    for hi in EDGES_US + [None]:
        labels.append(f"{lo}–{hi}" if hi else f"≥{lo}")
        lo = hi
    counts = [0] * len(labels)
    for x in us:
        counts[next((i for i, e in enumerate(EDGES_US) if x < e), len(EDGES_US))] += 1
    return dict(zip(labels, counts))


def machine():
    """What kind of machine: a Firecracker VM's idle vCPUs take longer to wake."""
    try:
        with open("/proc/cmdline") as f:
            if "firecracker" in f.read():
                return "Firecracker microVM (KVM guest)"
        with open("/proc/cpuinfo") as f:
            if " hypervisor" in f.read():
                return "virtual machine"
    except OSError:
        pass
    return None


def commit():
    """The checkout the extension was built from, marked when src/ differs."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../src"],
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+dirty src" if dirty else "")) or None


def gaps(n, seed):
    rnd = random.Random(seed)
    return [rnd.uniform(0.020, 0.080) for _ in range(n)]


def start(ext, d, name, target):
    """A fresh database `name` in `d`, and process A running `target` on it,
    waiting when this returns. Returns B's connection, A and A's queue."""
    path = os.path.join(d, f"{name}.db")
    db = connect(path, ext)
    db.execute("SELECT task_init()")
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=target, args=(path, ext, ready, out))
    p.start()
    if not ready.wait(30):
        sys.exit(f"{name}: process A did not start")
    time.sleep(0.3)  # A is in its wait
    return db, p, out


# --- wake: task_wait in A, commits in B ---------------------------------


def wake_waiter(path, ext, ready, out):
    db = connect(path, ext)
    wakes, timeouts = [], 0
    ready.set()
    while True:
        r = db.execute("SELECT task_wait(5000)").fetchone()[0]
        t = time.time_ns()
        if r == 0:
            timeouts += 1
            continue
        d = json.loads(
            db.execute("SELECT details FROM task_store ORDER BY seq DESC LIMIT 1").fetchone()[0]
        )
        if d.get("stop"):
            break
        wakes.append((d["i"], t))
    out.put({"wakes": wakes, "timeouts": timeouts})


def run_wake(ext, d, n, warmup, seed):
    db, p, out = start(ext, d, "wake", wake_waiter)
    commits = {}
    for i, gap in enumerate(gaps(n + warmup, seed)):
        time.sleep(gap)
        details = json.dumps({"i": i})
        t0 = time.time_ns()
        db.execute("SELECT task_enqueue('wake', ?)", (details,))
        t1 = time.time_ns()
        commits[i] = (t0, t1)
    time.sleep(0.05)
    db.execute("SELECT task_enqueue('wake', ?)", (json.dumps({"stop": True}),))
    r = out.get(timeout=60)
    p.join()
    db.close()
    # The first wake after each commit; a later one that finds no newer
    # task is a wake without a new commit of B's (counted, not timed).
    seen, repeats = {}, 0
    for i, t in r["wakes"]:
        if i in seen:
            repeats += 1
        elif i >= warmup:
            seen[i] = t
    after = [(seen[i] - commits[i][1]) / 1000 for i in sorted(seen)]
    before = [(seen[i] - commits[i][0]) / 1000 for i in sorted(seen)]
    commit = [(t1 - t0) / 1000 for i, (t0, t1) in commits.items() if i >= warmup]
    return {
        "commits": n,
        "warmup_commits_dropped": warmup,
        "wakes_paired": len(after),
        "commits_missed": n - len(after),
        "wait_timeouts": r["timeouts"],
        "wakes_without_new_commit": repeats,
        "after_commit_us": summary(after),
        "before_commit_us": summary(before),
        "commit_us": summary(commit),
        "after_commit_histogram_us": histogram(after),
        "negative_after_commit": sum(x < 0 for x in after),
        # Per paired commit: [wake after commit returned, the commit itself], µs.
        "samples_us": [
            [round(x, 1), round((commits[i][1] - commits[i][0]) / 1000, 1)]
            for x, i in zip(after, sorted(seen))
        ],
    }


# --- idle CPU: waiters with nothing committing --------------------------


def idle_waiter(path, ext, ready):
    db = connect(path, ext)
    ready.set()
    db.execute("SELECT task_wait(60000)").fetchone()


def idle_sleeper(ready):
    ready.set()
    time.sleep(60)


def cpu_ns(pid):
    """CPU time of every thread of `pid`, in ns, and how it was read."""
    total, found = 0, False
    tdir = f"/proc/{pid}/task"
    for tid in os.listdir(tdir):
        try:
            with open(f"{tdir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                found = True
        except (FileNotFoundError, ProcessLookupError):
            pass
    if found:
        return total, "schedstat"
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK"), "stat"


def run_idle(ext, d, waiters, secs, control):
    path = os.path.join(d, f"idle{waiters}.db")
    db = connect(path, ext)
    db.execute("SELECT task_init()")
    ctx = mp.get_context("spawn")
    procs = []
    for _ in range(waiters):
        ready = ctx.Event()
        procs.append((ctx.Process(target=idle_waiter, args=(path, ext, ready)), ready))
    if control:
        ready = ctx.Event()
        procs.append((ctx.Process(target=idle_sleeper, args=(ready,)), ready))
    for p, _ in procs:
        p.start()
    for _, ready in procs:
        if not ready.wait(30):
            sys.exit("idle: a waiter did not start")
    time.sleep(0.5)  # every waiter is in task_wait
    t0 = time.monotonic()
    c0 = [cpu_ns(p.pid) for p, _ in procs]
    time.sleep(secs)
    c1 = [cpu_ns(p.pid) for p, _ in procs]
    wall = time.monotonic() - t0
    alive = all(p.is_alive() for p, _ in procs)
    # One commit ends the waits; the sleeper is ours to stop.
    db.execute("SELECT task_enqueue('idle', NULL)")
    if control:
        procs[-1][0].terminate()
    for p, _ in procs:
        p.join(30)
    db.close()
    per = [(b[0] - a[0]) / 1e6 / wall for a, b in zip(c0, c1)]
    r = {
        "waiters": waiters,
        "wall_s": round(wall, 3),
        "method": c0[0][1],
        "ms_per_s_each": [round(x, 4) for x in per[:waiters]],
        "ms_per_s_per_waiter": round(sum(per[:waiters]) / waiters, 4),
        "all_waiting_throughout": alive,
    }
    if control:
        r["sleeper_ms_per_s"] = round(per[-1], 4)
    return r


# --- long poll: task_claim with wait in A, enqueues in B ----------------


def longpoll_worker(path, ext, ready, out):
    db = connect(path, ext)
    got, timeouts = [], 0
    ready.set()
    while True:
        row = db.execute("SELECT task_claim('w', '{\"wait\": 5000}')").fetchone()[0]
        t = time.time_ns()
        if row is None:
            timeouts += 1
            continue
        task = json.loads(row)
        db.execute("SELECT task_complete(?)", (task["id"],))
        d = task["details"]
        if d.get("stop"):
            break
        got.append((d["i"], d["t"], t))
    out.put({"claims": got, "timeouts": timeouts})


def run_longpoll(ext, d, n, warmup, seed):
    db, p, out = start(ext, d, "longpoll", longpoll_worker)
    done = {}
    for i, gap in enumerate(gaps(n + warmup, seed)):
        time.sleep(gap)
        t0 = time.time_ns()
        db.execute("SELECT task_enqueue('poll', ?)", (json.dumps({"i": i, "t": t0}),))
        done[i] = time.time_ns()
    time.sleep(0.05)
    db.execute("SELECT task_enqueue('poll', ?)", (json.dumps({"stop": True}),))
    r = out.get(timeout=60)
    p.join()
    db.close()
    rows = [(i, t0, t) for i, t0, t in r["claims"] if i >= warmup]
    return {
        "enqueues": n,
        "warmup_enqueues_dropped": warmup,
        "claims_paired": len(rows),
        "claim_timeouts": r["timeouts"],
        "from_enqueue_us": summary([(t - t0) / 1000 for _, t0, t in rows]),
        "from_commit_us": summary([(t - done[i]) / 1000 for i, _, t in rows]),
        "from_enqueue_histogram_us": histogram([(t - t0) / 1000 for _, t0, t in rows]),
        # Per claim: [enqueue → claim returned, the enqueue itself], µs.
        "samples_us": [
            [round((t - t0) / 1000, 1), round((done[i] - t0) / 1000, 1)] for i, t0, t in rows
        ],
    }


# --- the report ----------------------------------------------------------


def met(value, target):
    return "met" if value <= target else "missed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400, help="commits timed for the wake")
    ap.add_argument("--longpoll", type=int, default=300, help="enqueues timed for the long poll")
    ap.add_argument("--idle-secs", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    if not 0 < a.idle_secs <= 50:
        sys.exit("wake: --idle-secs must be within the waiters' task_wait(60000): 0 < S ≤ 50")
    here = os.path.dirname(os.path.abspath(__file__))
    ext = os.environ.get("TASK_EXT") or os.path.join(here, "..", "dist", "task0")
    warmup = 5
    started = datetime.datetime.now(datetime.timezone.utc)
    settings = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "cpus": os.cpu_count(),
        "machine": machine(),
        "commit": commit(),
        "kernel": os.uname().release,
        "loadavg_1m_start": round(os.getloadavg()[0], 2),
        "gaps_ms": [20, 80],
        "warmup_dropped": warmup,
        "clock": "time.time_ns() in both processes",
    }
    print(
        f"wake: WAL, synchronous=NORMAL, {a.samples} commits, {a.longpoll} long polls, "
        f"idle windows of {a.idle_secs:g} s, {os.cpu_count()} CPUs, "
        f"load {settings['loadavg_1m_start']}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as d:
        wake = run_wake(ext, d, a.samples, warmup, a.seed)
        print(f"  wake {wake['after_commit_us']}", file=sys.stderr)
        idle1 = run_idle(ext, d, 1, a.idle_secs, control=True)
        idle4 = run_idle(ext, d, 4, a.idle_secs, control=False)
        print(
            f"  idle {idle1['ms_per_s_per_waiter']} / {idle4['ms_per_s_per_waiter']} ms/s",
            file=sys.stderr,
        )
        poll = run_longpoll(ext, d, a.longpoll, warmup, a.seed + 1)
        print(f"  long poll {poll['from_enqueue_us']}", file=sys.stderr)
    settings["loadavg_1m_end"] = round(os.getloadavg()[0], 2)

    w, b, c = wake["after_commit_us"], wake["before_commit_us"], wake["commit_us"]
    lp = poll["from_enqueue_us"]
    figures = {
        "wake_p50_us": w["p50"],
        "wake_p99_us": w["p99"],
        "wake_max_us": w["max"],
        "idle_cpu_ms_per_s": idle1["ms_per_s_per_waiter"],
        "idle_cpu_ms_per_s_4_waiters": idle4["ms_per_s_per_waiter"],
        "longpoll_latency_us": lp["p50"],
        "longpoll_latency_p99_us": lp["p99"],
    }
    rows = [
        ("wake after commit returned (task_wait)", w, "p50 ≤ 500, p99 ≤ 2000"),
        ("wake from before the commit", b, ""),
        ("the commit itself (task_enqueue)", c, ""),
        ("long poll, enqueue → claim returned", lp, ""),
        ("long poll, commit returned → claim returned", poll["from_commit_us"], ""),
    ]
    print("\n| µs | n | p50 | p90 | p99 | max | target |")
    print("|---|--:|--:|--:|--:|--:|---|")
    for name, s, target in rows:
        print(
            f"| {name} | {s['n']} | {s['p50']:,.0f} | {s['p90']:,.0f} | {s['p99']:,.0f} "
            f"| {s['max']:,.0f} | {target} |"
        )
    print("\n| idle waiters | CPU ms/s per waiter | each | target |")
    print("|--:|--:|---|---|")
    for r in (idle1, idle4):
        each = ", ".join(f"{x:.3f}" for x in r["ms_per_s_each"])
        print(f"| {r['waiters']} | {r['ms_per_s_per_waiter']:.3f} | {each} | ≤ 0.3 |")
    print(
        f"\nidle: {idle1['wall_s']} s windows, read from /proc ({idle1['method']}); "
        f"a process in time.sleep beside the one waiter: {idle1['sleeper_ms_per_s']:.3f} ms/s"
    )
    for name, h in (
        ("wake after commit", wake["after_commit_histogram_us"]),
        ("long poll from enqueue", poll["from_enqueue_histogram_us"]),
    ):
        print(f"{name}, µs: " + ", ".join(f"{k}: {v}" for k, v in h.items() if v))
    print(
        f"missed commits {wake['commits_missed']}, wake timeouts {wake['wait_timeouts']}, "
        f"wakes without a new commit {wake['wakes_without_new_commit']}, "
        f"wakes before B's clock read {wake['negative_after_commit']}, "
        f"long polls paired {poll['claims_paired']}/{poll['enqueues']}, "
        f"timeouts {poll['claim_timeouts']}"
    )
    verdict = [
        f"wake_p50_us {w['p50']:.0f} ≤ 500: {met(w['p50'], 500)}",
        f"wake_p99_us {w['p99']:.0f} ≤ 2000: {met(w['p99'], 2000)}",
        f"idle_cpu_ms_per_s {idle1['ms_per_s_per_waiter']:.3f} (4 waiters: "
        f"{idle4['ms_per_s_per_waiter']:.3f}) ≤ 0.3: "
        f"{met(max(idle1['ms_per_s_per_waiter'], idle4['ms_per_s_per_waiter']), 0.3)}",
        f"longpoll_latency_us p50 {lp['p50']:.0f}, p99 {lp['p99']:.0f} (no target)",
    ]
    print("targets: " + "; ".join(verdict))
    print(
        f"settings: WAL, synchronous=NORMAL, SQLite {settings['sqlite']} (apsw), "
        f"{settings['cpus']} CPUs, {settings['machine'] or 'machine unknown'}, "
        f"Linux {settings['kernel']}, "
        f"commit {settings['commit']}, "
        f"load {settings['loadavg_1m_start']} → {settings['loadavg_1m_end']}, {settings['date']}"
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(
                {
                    "settings": settings,
                    "targets": TARGETS,
                    "figures": figures,
                    "wake": wake,
                    "idle": [idle1, idle4],
                    "longpoll": poll,
                },
                f,
                indent=2,
            )
            f.write("\n")


if __name__ == "__main__":
    main()
