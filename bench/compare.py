"""Postgres beside sqlite-task, in one table and one chart: reads bench/postgres.json (written by
bench/postgres.py) and bench/results-detail.json (the SQLite harness, `make bench`), measures
nothing itself.

Each line is one piece of work at one durability: "flushed" pairs Postgres's
synchronous_commit=on with SQLite's synchronous=FULL (the WAL reaches the disk at every commit),
"not flushed" pairs synchronous_commit=off with NORMAL. The SQLite harness has no FULL row for
the bulk enqueue (one commit per 100,000 tasks) nor for several processes, and no 8-process or
4-process batch row: those cells stay empty. The two files come from two runs; each says when
it ran and under what load, and the header repeats it.

    python3 bench/compare.py [--postgres FILE] [--sqlite FILE] [--out-dir DIR]

Writes DIR/postgres-vs-sqlite.txt and, when matplotlib imports, DIR/postgres-vs-sqlite.png.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

LINES = [
    ("enqueue_single", "enqueue, one task per transaction"),
    ("enqueue_bulk", "enqueue in bulk (SQLite 100k, Postgres 1000 a transaction)"),
    ("cycle_c1", "cycle: claim + complete, 1 worker"),
    ("cycle_c4", "cycle, 4 workers (SQLite: processes)"),
    ("cycle_c8", "cycle, 8 workers"),
    ("batch32_c1", "batched cycle, 32 a batch, 1 worker"),
    ("batch32_c4", "batched cycle, 32 a batch, 4 workers"),
]
DURABILITY = [("on", "flushed"), ("off", "not flushed")]
SYSTEMS = [
    ("sqlite-task", "#2a9d4b"),
    ("raw", "#555555"),
    ("postgres", "#336791"),
    ("graphile-worker", "#c2185b"),
]


def pick(rows, group, sync, system):
    for r in rows:
        if r["group"] == group and r["synchronous_commit"] == sync and r["system"] == system:
            return r
    return None


def lines(pg, lite):
    """One dict per (case, durability): the four systems' medians and where they came from."""
    by_key = {r["key"]: r for r in lite["rows"]}
    out = []
    for group, label in LINES:
        for sync, durability in DURABILITY:
            p = pick(pg["rows"], group, sync, "postgres")
            g = pick(pg["rows"], group, sync, "graphile-worker")
            if p is None and g is None:
                continue
            key = next((r["sqlite"] for r in (p, g) if r and r.get("sqlite")), None)
            s = by_key.get(key) if key else None

            def lite_rate(system, s=s):
                cell = s["systems"].get(system) if s else None
                return cell["median_ops_per_s"] if cell and not cell.get("error") else None

            out.append(
                {
                    "group": group,
                    "label": label,
                    "durability": durability,
                    "pg_sync": sync,
                    "sqlite_key": key if s else None,
                    "sqlite_sync": s["sync"] if s else None,
                    "sqlite_load": s["load_average"] if s else None,
                    "rates": {
                        "sqlite-task": lite_rate("sqlite-task"),
                        "raw": lite_rate("raw"),
                        "postgres": p["median_tasks_per_s"] if p else None,
                        "graphile-worker": g["median_tasks_per_s"] if g else None,
                    },
                    "capped": bool(g and g.get("capped")),
                    "pg_latency_ms": p.get("median_latency_ms") if p else None,
                    "pg_load": p["load_average"] if p else (g["load_average"] if g else None),
                }
            )
    return out


def load_range(rows, field):
    loads = [r[field] for r in rows if r[field] is not None]
    return f"{min(loads):.2f} … {max(loads):.2f}" if loads else "unknown"


def fmt(x):
    return "" if x is None else f"{x:,.0f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else ""


def text(pg, lite, rows):
    lm, pm, ps = lite["machine"], pg["machine"], pg["settings"]
    head = [
        "Postgres beside sqlite-task (tasks/s, medians; ÷: sqlite-task's rate over the other's)",
        (
            f"sqlite-task, raw SQLite: bench/results-detail.json of {lm.get('date')} "
            f"({lite['settings'].split(';')[0]}); 1-minute load "
            f"{load_range(rows, 'sqlite_load')} at these rows"
        ),
        (
            f"postgres, graphile-worker: bench/postgres.json of {pm.get('date')} "
            f"(median of {ps['runs']}, {ps['secs']} s a pgbench run, "
            f"{pg['versions']['postgres'].split(' on ')[0]}, "
            f"shared_buffers {ps['shared_buffers']}, fsync {ps['fsync']}, graphile-worker "
            f"{pg['versions'].get('graphile_worker')}); 1-minute load "
            f"{load_range(rows, 'pg_load')} at these rows"
        ),
        (
            f"{pm.get('cores')} cores. flushed: SQLite synchronous=FULL, Postgres "
            "synchronous_commit=on; not flushed: NORMAL / off"
        ),
        "",
        (
            f"{'case':<60} {'durability':<11} {'SQLite':>6} {'sqlite-task':>11} {'raw SQLite':>10} "
            f"{'postgres':>9} {'graphile':>9} {'÷ postgres':>10} {'÷ graphile':>10}"
        ),
        "-" * 143,
    ]
    body = []
    for r in rows:
        t = r["rates"]
        gw = fmt(t["graphile-worker"]) + ("*" if r["capped"] else "")
        body.append(
            f"{r['label']:<60} {r['durability']:<11} {r['sqlite_sync'] or '':>6} "
            f"{fmt(t['sqlite-task']):>11} {fmt(t['raw']):>10} {fmt(t['postgres']):>9} "
            f"{gw:>9} {ratio(t['sqlite-task'], t['postgres']):>10} "
            f"{ratio(t['sqlite-task'], t['graphile-worker']):>10}"
        )
    lat = [
        "",
        (
            "One worker, time per task (µs; the inverse of the one-worker rate; "
            "Postgres: pgbench's mean latency of the script, over the socket)"
        ),
        (
            f"{'case':<60} {'durability':<11} {'sqlite-task':>11} {'raw SQLite':>10} "
            f"{'postgres':>9} {'graphile':>9}"
        ),
    ]
    for r in rows:
        if r["group"] not in ("enqueue_single", "cycle_c1"):
            continue
        t = r["rates"]

        def us(x):
            return f"{1e6 / x:,.0f}" if x else ""

        pgl = f"{r['pg_latency_ms'] * 1000:,.0f}" if r["pg_latency_ms"] else us(t["postgres"])
        lat.append(
            f"{r['label']:<60} {r['durability']:<11} {us(t['sqlite-task']):>11} "
            f"{us(t['raw']):>10} {pgl:>9} {us(t['graphile-worker']):>9}"
        )
    foot = [
        "",
        (
            "*: graphile-worker stopped by its time cap and rated on what it did. Empty: the "
            "SQLite harness has no such row."
        ),
    ]
    return "\n".join(head + body + lat + foot) + "\n"


def chart(pg, lite, rows, dst):
    try:
        import matplotlib
    except ImportError:
        print("compare.py: no matplotlib; chart skipped", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 0.62 * len(rows) + 2))
    height = 0.8 / len(SYSTEMS)
    labelled = set()
    for i, r in enumerate(rows):
        for j, (system, colour) in enumerate(SYSTEMS):
            v = r["rates"].get(system)
            if not v:
                continue
            y = i + (j - 1.5) * height
            name = "raw SQLite" if system == "raw" else system
            ax.barh(y, v, height=height, color=colour, label=None if system in labelled else name)
            labelled.add(system)
            ax.text(v * 1.04, y, f"{v:,.0f}", va="center", fontsize=7)
    ax.set_xscale("log")
    top = max((v for r in rows for v in r["rates"].values() if v), default=10)
    ax.set_xlim(right=top * 3)  # room for the figures beside the longest bars
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['label']} [{r['durability']}]" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tasks per second (log; median)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        "sqlite-task and raw SQLite beside Postgres (hand-written SKIP LOCKED queue, "
        "graphile-worker)",
        fontsize=10,
    )
    fig.suptitle(
        f"SQLite figures: run of {lite['machine'].get('date')}, 1-minute load "
        f"{load_range(rows, 'sqlite_load')}; Postgres figures: run of "
        f"{pg['machine'].get('date')}, load {load_range(rows, 'pg_load')}; "
        f"{pg['machine'].get('cores')} cores; flushed = FULL / synchronous_commit on, "
        "not flushed = NORMAL / off",
        fontsize=7,
        y=0.995,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(dst, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--postgres", default=os.path.join(HERE, "postgres.json"))
    ap.add_argument("--sqlite", default=os.path.join(HERE, "results-detail.json"))
    ap.add_argument("--out-dir", default=HERE)
    a = ap.parse_args()
    with open(a.postgres) as f:
        pg = json.load(f)
    with open(a.sqlite) as f:
        lite = json.load(f)
    rows = lines(pg, lite)
    out = text(pg, lite, rows)
    with open(os.path.join(a.out_dir, "postgres-vs-sqlite.txt"), "w") as f:
        f.write(out)
    sys.stdout.write(out)
    sys.stdout.flush()
    png = os.path.join(a.out_dir, "postgres-vs-sqlite.png")
    if chart(pg, lite, rows, png):
        print(f"compare.py: wrote {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
