"""The same queue work on PostgreSQL, on this machine: the SKIP LOCKED queue people write by hand,
driven by pgbench, and graphile-worker, the Postgres job queue users pick.

It starts a throwaway cluster (initdb + pg_ctl on a temporary directory, a Unix socket in it and
no TCP; as the `postgres` user, or `nobody`, when run as root), runs every case, stops the
cluster and deletes it, also when a case fails or the run is interrupted. Postgres keeps its
defaults (shared_buffers 128MB, fsync on, synchronous_commit on); each case runs --runs times
with synchronous_commit on and as many off, interleaved, set per connection through PGOPTIONS
and checked.

Raw Postgres (pgbench -M prepared: C, prepared statements; scripts in bench/peers/postgres/):
the jobs table of the SQLite harness's raw system with a partial ready index (schema.sql); the
claim is `UPDATE … WHERE id = (SELECT id … ORDER BY priority DESC, run_at FOR UPDATE SKIP LOCKED
LIMIT 1) RETURNING …` and the completion an UPDATE, one transaction each (cycle.pgbench), with 1,
4 and 8 connections; batches claim 32 with LIMIT 32 and complete them in one UPDATE
(batch.pgbench); enqueue is one INSERT per transaction (enqueue.pgbench), or 1000 INSERTs per
transaction (the bulk row; the SQLite harness does 100,000 in one). Each run is timed by pgbench
(-T seconds, connection time excluded); the tasks counted are those the table holds afterwards,
checked against pgbench's transaction count. The cycle runs start from a fresh backlog of
--backlog queued tasks, the batch runs from --batch-backlog (loaded in one transaction, VACUUM
ANALYZE, CHECKPOINT: untimed); a run that empties it fails.

graphile-worker (npm, bench/peers/postgres/graphile.js): addJob one job per call, addJobs 1000
per call, and a worker pool with concurrency 1 and 4 draining --jobs no-op jobs, and with its
batch mode (a local queue of 32, batched completions). Its figures stop at --cap seconds a run
and are rated on what was done (marked *).

    python3 bench/postgres.py [--runs N] [--secs S] [--backlog N] [--batch-backlog N]
                              [--jobs N] [--cap S] [--quick] [--only KEY,…] [--skip-graphile]
                              [--out-dir DIR]

Writes DIR/postgres.json (every run, the settings, the machine, the load average at each run)
and DIR/postgres.txt (the medians). Needs PostgreSQL's server binaries (PG_BIN, else
/usr/lib/postgresql/<newest>/bin), node, and `npm ci` done in bench/peers/postgres
(bench/postgres.sh does it).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peers", "postgres")

# The values the SQLite harness binds (bench/src/queue.rs): worker, queue, type, lease, result.
BOUND = {
    "worker": "w1",
    "queue": "default",
    "type": "bench",
    "lease_ms": "300000",
    "result": '{"ok":true}',
}
BULK = 1000  # INSERTs per transaction in the bulk enqueue row, jobs per addJobs call
BATCH = 32


def load_average():
    return round(os.getloadavg()[0], 2)


def pg_bin():
    if os.environ.get("PG_BIN"):
        return os.environ["PG_BIN"]
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0,
    )
    if not found:
        sys.exit("postgres.py: no PostgreSQL server found; set PG_BIN")
    return os.path.dirname(found[-1])


class Cluster:
    """A throwaway cluster: created by start(), gone after stop()."""

    def __init__(self, bindir):
        self.bin = bindir
        self.dir = tempfile.mkdtemp(prefix="sqlite-task-pg.")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = 5432
        self.user = None
        self.started = False
        if os.geteuid() == 0:
            # The server refuses to run as root.
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                    self.user = name
                    break
                except KeyError:
                    continue
            if self.user is None:
                sys.exit("postgres.py: running as root and no postgres or nobody user")
            os.chown(self.dir, pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid)
            os.chmod(self.dir, 0o700)

    def _as_server(self, args, **kw):
        cmd = [os.path.join(self.bin, args[0])] + args[1:]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return subprocess.run(cmd, check=True, **kw)

    def env(self, sync="on"):
        e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        e.update(
            PGHOST=self.dir,
            PGPORT=str(self.port),
            PGUSER="postgres",
            PGDATABASE="postgres",
            PGOPTIONS=f"-c synchronous_commit={sync}",
        )
        return e

    def start(self):
        self._as_server(
            [
                "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            stdout=subprocess.DEVNULL,
        )
        opts = f"-k {self.dir} -c listen_addresses='' -p {self.port}"
        self._as_server(
            ["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-o", opts, "start"],
            stdout=subprocess.DEVNULL,
        )
        self.started = True

    def psql(self, sql, sync="on", variables=None, file=None):
        cmd = [os.path.join(self.bin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        for k, v in (variables or {}).items():
            cmd += ["-v", f"{k}={v}"]
        cmd += ["-f", file] if file else ["-c", sql]
        out = subprocess.run(cmd, env=self.env(sync), capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr.strip()}")
        return out.stdout.strip()

    def stop(self, failed=False):
        if failed:
            try:
                with open(self.log) as f:
                    tail = f.readlines()[-20:]
                print("postgres.py: the server's log ends:\n" + "".join(tail), file=sys.stderr)
            except OSError:
                pass
        try:
            if self.started:
                try:
                    self._as_server(
                        ["pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                        stdout=subprocess.DEVNULL,
                        timeout=60,
                    )
                except (subprocess.SubprocessError, OSError):
                    # pg_ctl could not stop it: end the postmaster this script started, by its pid.
                    try:
                        with open(os.path.join(self.data, "postmaster.pid")) as f:
                            os.kill(int(f.readline()), signal.SIGQUIT)
                    except (OSError, ValueError):
                        pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def parse_pgbench(text):
    def num(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None

    return {
        "transactions": num(r"number of transactions actually processed: (\d+)"),
        "failed": num(r"number of failed transactions: (\d+)"),
        "latency_ms": num(r"latency average = ([\d.]+) ms"),
        "tps": num(r"tps = ([\d.]+) \(without initial connection time\)"),
    }


def script(name):
    return os.path.join(PEER, name)


def bulk_script(tmpdir):
    """enqueue.pgbench's INSERT, BULK times in one transaction."""
    with open(script("enqueue.pgbench")) as f:
        body = "".join(line for line in f if not line.startswith("--"))
    path = os.path.join(tmpdir, "enqueue-bulk.pgbench")
    with open(path, "w") as f:
        f.write(
            "-- generated by bench/postgres.py: enqueue.pgbench's INSERT, "
            f"{BULK} per transaction\nBEGIN;\n" + body * BULK + "COMMIT;\n"
        )
    return path


class Bench:
    def __init__(self, args, cluster):
        self.args = args
        self.c = cluster
        self.rows = []
        self.seeded = None

    def fresh_backlog(self, n):
        """Empties jobs and fills it with n queued tasks, copied from a seed table made once."""
        if self.seeded is None:
            self.seeded = max(self.args.backlog, self.args.batch_backlog)
            self.c.psql("", variables={"n": self.seeded}, file=script("seed.sql"))
        self.c.psql("", variables={"n": n}, file=script("load.sql"))

    def empty(self):
        self.c.psql("TRUNCATE jobs")

    def counts(self, sync):
        out = self.c.psql(
            "SELECT count(*) FILTER (WHERE status = 'queued'), "
            "count(*) FILTER (WHERE status = 'running'), "
            "count(*) FILTER (WHERE status = 'completed'), count(*) FROM jobs",
            sync,
        )
        q, r, c, total = (int(x) for x in out.split("|"))
        return {"queued": q, "running": r, "completed": c, "total": total}

    def pgbench(self, file, sync, clients, per_tx, kind, options=""):
        """One pgbench measurement; the tasks done are counted in the table afterwards.
        `options`: more settings for its connections (PGOPTIONS)."""
        if kind == "enqueue":
            self.empty()
        else:
            self.fresh_backlog(self.args.batch_backlog if kind == "batch" else self.args.backlog)
        env = self.c.env(sync)
        env["PGOPTIONS"] += options
        shown = self.c.psql("SHOW synchronous_commit", sync)
        if shown != sync:
            raise RuntimeError(f"synchronous_commit is {shown}, not {sync}")
        cmd = [
            os.path.join(self.c.bin, "pgbench"),
            "-n",
            "-M",
            "prepared",
            "-f",
            file,
            "-c",
            str(clients),
            "-j",
            str(min(clients, os.cpu_count() or 1)),
            "-T",
            str(self.args.secs),
        ]
        for k, v in BOUND.items():
            cmd += ["-D", f"{k}={v}"]
        cmd += ["-D", f"size={BATCH}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench: {(out.stderr or out.stdout).strip()[-600:]}")
        p = parse_pgbench(out.stdout)
        if not p["transactions"] or not p["tps"]:
            raise RuntimeError(f"pgbench: no figures in {out.stdout[-600:]!r}")
        if p["failed"]:
            raise RuntimeError(f"pgbench: {p['failed']:.0f} failed transactions")
        n = self.counts(sync)
        tx = p["transactions"]
        if kind == "enqueue":
            ops = n["total"]
        else:
            ops = n["completed"]
            if n["running"]:
                raise RuntimeError(f"{n['running']} tasks left running")
            if n["queued"] == 0:
                raise RuntimeError("the backlog ran dry; raise --backlog or --batch-backlog")
        if ops != tx * per_tx:
            raise RuntimeError(
                f"pgbench did {tx:.0f} transactions of {per_tx}, the table counts {ops} tasks"
            )
        return {"ops": ops, "secs": tx / p["tps"], "latency_ms": p["latency_ms"], "capped": False}

    def graphile(self, args, sync, n):
        env = self.c.env(sync)
        cmd = ["node", script("graphile.js"), *args, "--cap", str(self.args.cap)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"graphile.js {' '.join(args)}: {out.stderr.strip()[-600:]}")
        m = json.loads(out.stdout.strip().splitlines()[-1])
        if m["synchronous_commit"] != sync:
            raise RuntimeError(f"graphile.js ran with synchronous_commit={m['synchronous_commit']}")
        return {"ops": m["ops"], "secs": m["secs"], "latency_ms": None, "capped": m["ops"] < n}

    def row(self, key, title, system, driver, workers, per, measure, sqlite, group=None):
        """Runs one case `runs` times with synchronous_commit on and off, interleaved.
        `group`: the raw Postgres case a graphile-worker row does the same work as (compare.py
        puts them in one line); `sqlite`: the row of bench/results-detail.json beside it."""
        if self.args.only and not any(key.startswith(p) for p in self.args.only):
            return
        rows = {}
        for sync in ("on", "off"):
            rows[sync] = {
                "key": f"{key}_{sync}",
                "case": key,
                "group": group or key,
                "title": title,
                "system": system,
                "driver": driver,
                "workers": workers,
                "per": per,
                "synchronous_commit": sync,
                "sqlite": sqlite.get(sync),
                "load_average": load_average(),
                "runs": [],
                "error": None,
            }
        print(f"── {title} [{system}] (load average {load_average():.2f})", file=sys.stderr)
        for run in range(self.args.runs):
            for sync in ("on", "off"):
                r = rows[sync]
                if r["error"]:
                    continue
                load = load_average()
                try:
                    m = measure(sync)
                except (RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as e:
                    r["error"] = str(e)
                    print(f"   run {run + 1} sync {sync:<3} ERROR {e}", file=sys.stderr)
                    continue
                m["load"] = load
                m["rate"] = m["ops"] / m["secs"]
                r["runs"].append(m)
                lat = f", {m['latency_ms']:.3f} ms a transaction" if m["latency_ms"] else ""
                print(
                    f"   run {run + 1} sync {sync:<3} {m['rate']:>10.0f} tasks/s  "
                    f"({m['ops']:.0f} in {m['secs']:.2f} s{lat}"
                    f"{', capped' if m['capped'] else ''}; "
                    f"load {load:.2f})",
                    file=sys.stderr,
                )
        for r in rows.values():
            if r["runs"] and not r["error"]:
                rates = [m["rate"] for m in r["runs"]]
                r["median_tasks_per_s"] = statistics.median(rates)
                lats = [m["latency_ms"] for m in r["runs"] if m["latency_ms"]]
                r["median_latency_ms"] = statistics.median(lats) if lats else None
                r["capped"] = any(m["capped"] for m in r["runs"])
            else:
                r["median_tasks_per_s"] = None
                r["median_latency_ms"] = None
                r["capped"] = False
            self.rows.append(r)

    def run_all(self, tmpdir):
        a = self.args
        pg = "postgres"
        gw = "graphile-worker"
        pgb = "pgbench -M prepared"
        node = "node graphile.js"
        # Which SQLite row of bench/results-detail.json each case stands beside, by the
        # durability it matches: synchronous_commit on flushes the WAL at every commit, as
        # SQLite's synchronous=FULL; off leaves it to the WAL writer, as NORMAL leaves it to
        # the OS (Postgres off also loses the last commits if the server crashes).
        enq = {"on": "enqueue_single_full", "off": "enqueue_single_normal"}
        bulk = {"on": "enqueue_bulk", "off": "enqueue_bulk"}
        cyc = {"on": "cycle_full", "off": "cycle_normal"}
        procs = {"off": "procs_4"}
        b32 = {"on": "batch32_full", "off": "batch32_normal"}

        self.c.psql("", file=script("schema.sql"))
        self.row(
            "enqueue_single",
            "enqueue, one task per transaction",
            pg,
            pgb,
            1,
            1,
            lambda s: self.pgbench(script("enqueue.pgbench"), s, 1, 1, "enqueue"),
            enq,
        )
        # The bulk script holds BULK copies of one INSERT, each run once per transaction: with
        # the default plan cache each copy would be planned afresh at every run, where a client
        # looping over one prepared INSERT gets its generic plan after five executions.
        bulk_file = bulk_script(tmpdir)
        generic = " -c plan_cache_mode=force_generic_plan"
        self.row(
            "enqueue_bulk",
            f"enqueue, {BULK} INSERTs per transaction",
            pg,
            pgb,
            1,
            BULK,
            lambda s: self.pgbench(bulk_file, s, 1, BULK, "enqueue", generic),
            bulk,
        )
        for w in (1, 4, 8):
            self.row(
                f"cycle_c{w}",
                f"cycle: claim + complete, {w} connection{'s' * (w > 1)}",
                pg,
                pgb,
                w,
                1,
                lambda s, w=w: self.pgbench(script("cycle.pgbench"), s, w, 1, "cycle"),
                {1: cyc, 4: procs}.get(w, {}),
            )
        for w in (1, 4):
            self.row(
                f"batch{BATCH}_c{w}",
                f"batched cycle, {BATCH} per batch, {w} connection{'s' * (w > 1)}",
                pg,
                pgb,
                w,
                BATCH,
                lambda s, w=w: self.pgbench(script("batch.pgbench"), s, w, BATCH, "batch"),
                b32 if w == 1 else {},
            )

        if a.skip_graphile:
            return
        self.c.psql("SELECT 1")  # the server is up; graphile-worker installs its schema
        subprocess.run(["node", script("graphile.js"), "migrate"], env=self.c.env(), check=True)
        n = a.jobs
        self.row(
            "gw_enqueue_single",
            "enqueue, addJob (one job per call)",
            gw,
            node,
            1,
            1,
            lambda s: self.graphile(["enqueue", str(n)], s, n),
            enq,
            "enqueue_single",
        )
        nb = n * 10
        self.row(
            "gw_enqueue_bulk",
            f"enqueue, addJobs ({BULK} jobs per call)",
            gw,
            node,
            1,
            BULK,
            lambda s: self.graphile(["enqueue-batch", str(nb), str(BULK)], s, nb),
            bulk,
            "enqueue_bulk",
        )
        for w in (1, 4):
            self.row(
                f"gw_drain_c{w}",
                f"cycle: a worker draining no-op jobs, concurrency {w}",
                gw,
                node,
                w,
                1,
                lambda s, w=w: self.graphile(["drain", str(n), str(w)], s, n),
                cyc if w == 1 else procs,
                f"cycle_c{w}",
            )
        self.row(
            f"gw_drain_c4_local{BATCH}",
            f"batched: concurrency 4, local queue of {BATCH}, batched completion",
            gw,
            node,
            4,
            BATCH,
            lambda s: self.graphile(["drain", str(nb), "4", str(BATCH)], s, nb),
            {},
            f"batch{BATCH}_c4",
        )


def versions(cluster):
    def cmd(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return None

    gw = None
    try:
        with open(os.path.join(PEER, "node_modules", "graphile-worker", "package.json")) as f:
            gw = json.load(f)["version"]
    except OSError:
        pass
    return {
        "postgres": cluster.psql("SELECT version()"),
        "pgbench": cmd([os.path.join(cluster.bin, "pgbench"), "--version"]),
        "node": cmd(["node", "--version"]),
        "graphile_worker": gw,
    }


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else None
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
    }


def fmt(x):
    return "" if x is None else f"{x:,.0f}"


def table(data):
    s = data["settings"]
    lines = [
        (
            f"PostgreSQL queue bench, {s.get('started', '?')} to {data['machine']['date']}: "
            f"median of {s['runs']} run(s), {s['secs']} s each (pgbench -T); "
            f"{data['machine']['cores']} cores; load average {s['load_start']} at the start, "
            f"{s['load_end']} at the end"
        ),
        f"{data['versions']['postgres']}",
        (
            f"shared_buffers {s['shared_buffers']}, fsync {s['fsync']}, wal_sync_method "
            f"{s['wal_sync_method']}, max_wal_size {s['max_wal_size']}; synchronous_commit per row"
        ),
        (
            f"cycle rows start from {s['backlog']:,} queued tasks, batch rows from "
            f"{s['batch_backlog']:,}; graphile-worker "
            f"{data['versions']['graphile_worker']}: {s['jobs']:,} jobs a run "
            f"({s['jobs'] * 10:,} for addJobs and its batch mode), capped at {s['cap']} s (*)"
        ),
        "",
        (
            f"{'case (tasks/s; median)':<62} {'system':<16} {'sync_commit':>11} {'tasks/s':>10} "
            f"{'ms/txn':>8} {'load':>5}  driver"
        ),
        "-" * 130,
    ]
    for r in data["rows"]:
        rate = r["median_tasks_per_s"]
        shown = "ERROR" if r["error"] else fmt(rate) + ("*" if r["capped"] else "")
        lat = f"{r['median_latency_ms']:.3f}" if r.get("median_latency_ms") else ""
        lines.append(
            f"{r['title']:<62} {r['system']:<16} {r['synchronous_commit']:>11} {shown:>10} "
            f"{lat:>8} {r['load_average']:>5.2f}  {r['driver']}"
        )
        if r["error"]:
            lines.append(f"    {r['error']}")
    lines += [
        "",
        "ms/txn: pgbench's average latency of one script run (a claim and a completion are two",
        "transactions; a batch is a claim of 32 and one completion). load: the 1-minute load",
        "average when the row started. *: stopped by the cap and rated on what it did.",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=3, help="seconds per pgbench run")
    ap.add_argument("--backlog", type=int, default=100_000, help="queued tasks, cycle rows")
    ap.add_argument("--batch-backlog", type=int, default=200_000, help="queued, batch rows")
    ap.add_argument("--jobs", type=int, default=1000, help="graphile-worker jobs per run")
    ap.add_argument("--cap", type=int, default=10, help="graphile-worker seconds per run")
    ap.add_argument("--quick", action="store_true", help="one short run of each: a smoke test")
    ap.add_argument("--only", default="", help="case keys or prefixes, comma-separated")
    ap.add_argument("--skip-graphile", action="store_true")
    ap.add_argument("--out-dir", default=HERE)
    a = ap.parse_args()
    if a.quick:
        a.runs, a.secs, a.backlog, a.batch_backlog, a.jobs, a.cap = 1, 1, 20_000, 40_000, 200, 5
    a.only = [x for x in a.only.split(",") if x]

    cluster = Cluster(pg_bin())

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    t0 = time.monotonic()
    started = machine()["date"]
    try:
        cluster.start()
        settings = {
            k: cluster.psql(f"SHOW {k}")
            for k in (
                "shared_buffers",
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
                "max_wal_size",
                "checkpoint_timeout",
                "autovacuum",
                "full_page_writes",
                "max_connections",
            )
        }
        settings.update(
            runs=a.runs,
            secs=a.secs,
            backlog=a.backlog,
            batch_backlog=a.batch_backlog,
            jobs=a.jobs,
            cap=a.cap,
            batch=BATCH,
            bulk=BULK,
            socket="Unix socket, no TCP",
            load_start=load_average(),
            started=started,
        )
        vers = versions(cluster)
        bench = Bench(a, cluster)
        print(
            f"postgres.py: cluster in {cluster.dir} (server user {cluster.user or 'self'}); "
            f"{vers['postgres'].split(' on ')[0]}",
            file=sys.stderr,
        )
        bench.run_all(cluster.dir)
        settings["load_end"] = load_average()
        settings["wall_secs"] = round(time.monotonic() - t0, 1)
        failed = any(r["error"] for r in bench.rows)
    except BaseException:
        failed = True
        raise
    finally:
        cluster.stop(failed)

    data = {"machine": machine(), "versions": vers, "settings": settings, "rows": bench.rows}
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "postgres.json"), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    text = table(data)
    with open(os.path.join(a.out_dir, "postgres.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    print(
        f"postgres.py: {settings['wall_secs']} s; wrote {a.out_dir}/postgres.json and postgres.txt",
        file=sys.stderr,
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
