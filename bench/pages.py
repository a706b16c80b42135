"""WAL pages by b-tree: which tables and indexes each kind of transaction
writes, and how many pages of each, for raw SQL and for sqlite-task's
plain and workflow paths.

Why: in WAL mode with synchronous=NORMAL a transaction's cost follows the
pages it writes about as much as its instructions (each dirty page is a
frame appended to the -wal file, and a checkpoint copies it back and
syncs). bench/BENCHMARKS.md explains the ratios of `make bench` with these
counts; tests/python/test_pages.py holds the plain path to the b-trees
storage/mod.rs promises.

How: a fresh WAL database in a temporary directory, synchronous=NORMAL,
wal_autocheckpoint=0 (the WAL only grows, so every frame a transaction
appends stays in the file), through apsw. Each workload first fills the
queue (in one transaction), checkpoints, then runs its measured
transactions one by one in autocommit. After each one this reads the
frames it appended (each frame's header names its page) and gives each
page to the b-tree that owns it at that moment, from the `dbstat` virtual
table. A page written twice in one transaction is one frame. The -wal
file is only read: SQLite holds no POSIX lock on it (WAL-mode locks are on
the database file and the -shm file), so opening it here drops none.

    python bench/pages.py [--tasks N] [--transactions M] [--out FILE.json]

Prints one line per workload and transaction kind: mean pages per
transaction, then the b-trees by mean pages. Needs apsw (with dbstat, as
PyPI's wheels have) and TASK_EXT (the extension's path without suffix;
default dist/task0 beside this directory).
"""

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
from collections import Counter

import apsw

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = os.environ.get("TASK_EXT") or os.path.join(HERE, "..", "dist", "task0")

# The task model a user would write, and the statements of raw SQL's cycle,
# as bench/src/queue.rs runs them (RAW_SCHEMA, RAW_ENQUEUE, RAW_CLAIM,
# RAW_COMPLETE): the floor `make bench` rates sqlite-task against.
RAW_SCHEMA = """
CREATE TABLE jobs(id TEXT PRIMARY KEY, queue TEXT NOT NULL, type TEXT NOT NULL,
  status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, details TEXT, result TEXT, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3, worker TEXT,
  lease_until INTEGER, run_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER);
CREATE INDEX jobs_claim ON jobs(queue, status, priority DESC, run_at);"""
RAW_ENQUEUE = """INSERT INTO jobs(id, queue, type, status, details, run_at, created_at, updated_at)
  VALUES (lower(hex(randomblob(16))), 'default', 'bench', 'queued', '{}', ?1, ?1, ?1)"""
RAW_CLAIM = """UPDATE jobs SET status='running', worker='w', attempts=attempts+1,
  lease_until=?1 + 300000, started_at=?1, updated_at=?1
  WHERE id = (SELECT id FROM jobs WHERE queue='default' AND status='queued' AND run_at<=?1
              ORDER BY priority DESC, run_at LIMIT 1)
  RETURNING id"""
RAW_COMPLETE = """UPDATE jobs SET status='completed', result='{"ok":true}', completed_at=?1,
  updated_at=?1 WHERE id=?2 AND status='running'"""


class Wal:
    """The frames appended to a database's -wal file since the last call."""

    def __init__(self, path):
        self.path = path + "-wal"
        self.offset = None

    def pages(self):
        with open(self.path, "rb") as f:
            data = f.read()
        if len(data) < 32:
            return []
        size = struct.unpack(">I", data[8:12])[0]
        if self.offset is None:
            self.offset = 32
        out = []
        while self.offset + 24 + size <= len(data):
            out.append(struct.unpack(">I", data[self.offset : self.offset + 4])[0])
            self.offset += 24 + size
        return out


class Db:
    """One workload's database, with the WAL read after each transaction."""

    def __init__(self, directory, extension=True):
        self.path = os.path.join(directory, "pages.db")
        self.conn = apsw.Connection(self.path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if extension:
            self.conn.enable_load_extension(True)
            self.conn.load_extension(EXT)
            self.conn.execute("SELECT task_init()")
        self.wal = Wal(self.path)
        self.counts = {}

    def one(self, sql, args=()):
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def fill(self, sql, rows):
        """Runs `sql` once per argument tuple, all in one transaction."""
        with self.conn:
            for args in rows:
                self.conn.execute(sql, args)

    def start(self):
        """Checkpoints what the fill wrote: from here every frame is measured."""
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.wal.offset = None
        self.wal.pages()

    def measured(self, kind, sql, args=()):
        """Runs one transaction (a statement in autocommit) and counts its pages."""
        value = self.one(sql, args)
        owners = dict(self.conn.execute("SELECT pageno, name FROM dbstat"))
        pages = Counter(owners.get(p, "(free)") for p in self.wal.pages())
        self.counts.setdefault(kind, []).append(pages)
        return value


def claimed_id(db, kind):
    text = db.measured(kind, "SELECT task_claim('w')")
    if text is None:
        raise RuntimeError(f"{kind}: nothing to claim")
    return json.loads(text)["id"]


def cycles(db, m):
    for _ in range(m):
        db.measured("complete", "SELECT task_complete(?)", (claimed_id(db, "claim"),))


def plain(db, n, m, queue=None):
    if queue:
        db.one("SELECT task_queue('default', ?)", (json.dumps(queue),))
    db.fill("SELECT task_enqueue('bench', '{}')", [()] * n)
    db.start()
    cycles(db, m)


def children(db, n, m):
    parent = db.one("SELECT task_enqueue('parent', '{}')")
    db.one("SELECT task_claim('w')")
    db.fill(
        "SELECT task_enqueue('child', '{}', json_object('parent_id', ?))",
        [(parent,)] * n,
    )
    if db.one("SELECT task_complete(?)", (parent,)) != "waiting":
        raise RuntimeError("the parent is not waiting for its children")
    db.start()
    cycles(db, m)


def diamonds(db, n, m):
    """As `make bench`'s dag_drain: roots, 98 tasks on each, a join on all 98."""
    with db.conn:
        for _ in range(max(n // 100, 1)):
            root = db.one("SELECT task_enqueue('root', '{}')")
            on_root = json.dumps({"depends_on": [root]})
            middle = [db.one("SELECT task_enqueue('mid', '{}', ?)", (on_root,)) for _ in range(98)]
            db.one("SELECT task_enqueue('join', '{}', ?)", (json.dumps({"depends_on": middle}),))
    db.start()
    cycles(db, m)


def enqueues(db, n, m, unique=False):
    db.fill("SELECT task_enqueue('bench', '{}')", [()] * n)
    db.start()
    for i in range(m):
        options = json.dumps({"unique_key": f"k{i}"}) if unique else "{}"
        db.measured("enqueue", "SELECT task_enqueue('bench', '{}', ?)", (options,))


def progress(db, n, m, queue=None):
    if queue:
        db.one("SELECT task_queue('default', ?)", (json.dumps(queue),))
    db.fill("SELECT task_enqueue('bench', '{}')", [()] * n)
    task = json.loads(db.one("SELECT task_claim('w')"))["id"]
    db.start()
    for i in range(m):
        db.measured("progress", "SELECT task_progress(?, ?)", (task, i % 100))


def raw(db, n, m, what):
    db.conn.execute(RAW_SCHEMA)
    db.fill(RAW_ENQUEUE, [(1000,)] * n)
    db.start()
    for _ in range(m):
        if what == "enqueue":
            db.measured("enqueue", RAW_ENQUEUE, (1000,))
        else:
            job = db.measured("claim", RAW_CLAIM, (2000,))
            db.measured("complete", RAW_COMPLETE, (3000, job))


# name, what it is, whether it loads the extension, the workload.
WORKLOADS = [
    ("raw cycle", "raw SQL's claim and completion on the jobs table", False,
     lambda db, n, m: raw(db, n, m, "cycle")),
    ("plain cycle", "task_claim + task_complete, every event (the default)", True, plain),
    ("cycle, events off", "the queue's events off", True,
     lambda db, n, m: plain(db, n, m, {"events": "off"})),
    ("child cycle", "children of one waiting parent", True, children),
    ("limited cycle", "a queue with concurrency 4", True,
     lambda db, n, m: plain(db, n, m, {"concurrency": 4})),
    ("diamond drain", "100-task fan-out/fan-in diamonds (depends_on)", True, diamonds),
    ("raw enqueue", "raw SQL's INSERT", False, lambda db, n, m: raw(db, n, m, "enqueue")),
    ("enqueue", "task_enqueue, one per transaction", True, enqueues),
    ("unique enqueue", "task_enqueue with a new unique_key", True,
     lambda db, n, m: enqueues(db, n, m, unique=True)),
    ("progress", "task_progress, write-through, every event", True, progress),
    ("progress, transitions", "the queue's events 'transitions'", True,
     lambda db, n, m: progress(db, n, m, {"events": "transitions"})),
]


def summary(counts):
    """Mean and median pages per transaction, in all and by b-tree."""
    names = sorted({name for c in counts for name in c})
    by = {
        name: {
            "mean": round(statistics.fmean(c[name] for c in counts), 3),
            "median": statistics.median(c[name] for c in counts),
        }
        for name in names
    }
    totals = [sum(c.values()) for c in counts]
    return {
        "transactions": len(counts),
        "pages_mean": round(statistics.fmean(totals), 3),
        "pages_median": statistics.median(totals),
        "by_btree": dict(sorted(by.items(), key=lambda kv: -kv[1]["mean"])),
    }


def measure(name, n=3000, m=300):
    """Runs one workload of WORKLOADS on a fresh database: its summary by transaction kind."""
    _, _, extension, run = next(w for w in WORKLOADS if w[0] == name)
    with tempfile.TemporaryDirectory() as d:
        db = Db(d, extension)
        run(db, n, m)
        db.conn.close()
        return {kind: summary(c) for kind, c in db.counts.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=3000, help="tasks in the queue before measuring")
    ap.add_argument("--transactions", type=int, default=300, help="measured cycles or calls")
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()
    print(
        f"WAL pages per transaction by b-tree: mean of {a.transactions} transactions after "
        f"{a.tasks} tasks; WAL, synchronous=NORMAL, page size 4096, SQLite "
        f"{apsw.sqlite_lib_version()} (apsw)"
    )
    results = {}
    for name, what, _, _ in WORKLOADS:
        results[name] = {"what": what, "transactions": measure(name, a.tasks, a.transactions)}
        per = results[name]["transactions"]
        whole = sum(s["pages_mean"] for s in per.values())
        print(f"\n{name}: {what}" + (f"; {whole:.2f} pages per cycle" if len(per) > 1 else ""))
        for kind, s in per.items():
            parts = ", ".join(
                f"{b} {v['mean']:.2f}" for b, v in s["by_btree"].items() if v["mean"] >= 0.005
            )
            print(f"  {kind:<9} {s['pages_mean']:5.2f}  {parts}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"tasks": a.tasks, "transactions": a.transactions, "workloads": results}, f,
                      indent=1)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
