"""Workflows settled by several OS processes on one WAL file: dependencies,
unique keys and a parent's rollup. tests/stress owns concurrency across
processes; these three short cases run on every `make test` and pin the
workflow guarantees only concurrency can break (docs/reference/workflows.md):
a dependent is never claimed before all its dependencies completed, a unique
key enqueued by four processes at once makes one task, and a parent completes
in the same transaction as its last child.

Each process is this file run as a script (`python test_workflow_processes.py
ROLE DB EXT NAME ...`), with its own apsw connection (WAL, busy_timeout
30000). It prints `ready`, waits for `go` on stdin (the barrier: all start
together), works, and prints a JSON summary as its last line. Claims and
completions are logged in a table of the same database, inside the
transaction that makes them (BEGIN IMMEDIATE; the verb; INSERT INTO log;
COMMIT), so the log's rowid order is the commit order: what the checks
compare. No check depends on timing, and leases (5 minutes) never expire in
a run, so the real clock is used.
"""

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict

import apsw

from conftest import EXT, one, rows

BUSY_TIMEOUT_MS = 30000
WORKERS = 4
FINISHED = ("completed", "failed", "cancelled")
LOG_SCHEMA = """CREATE TABLE log (
  seq INTEGER PRIMARY KEY,      -- commit order: each row is written under the write lock
  kind TEXT NOT NULL,           -- claim | complete
  task TEXT NOT NULL,
  worker TEXT NOT NULL,
  parent TEXT,                  -- children: the parent, and its status after the completion
  parent_status TEXT
)"""


# --- The processes -----------------------------------------------------------

def open_db(path, ext):
    """A connection as docs/concurrency.md advises."""
    db = apsw.Connection(str(path))
    db.setbusytimeout(BUSY_TIMEOUT_MS)
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    db.execute("PRAGMA synchronous = NORMAL").fetchall()
    db.enable_load_extension(True)
    db.load_extension(ext)
    return db


def immediate(db, fn):
    """fn() inside BEGIN IMMEDIATE ... COMMIT; rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        value = fn()
        db.execute("COMMIT")
        # Let a process waiting for the lock run before this one takes it
        # again: without, one process can do all the work of a short test.
        os.sched_yield()
        return value
    except BaseException:
        if not db.getautocommit():
            db.execute("ROLLBACK")
        raise


def log(db, kind, task, worker, parent=None, parent_status=None):
    db.execute("INSERT INTO log(kind, task, worker, parent, parent_status) VALUES (?, ?, ?, ?, ?)",
               (kind, task, worker, parent, parent_status))


def wait_for_work(db, queues):
    """Reads (no write lock) until a task of `queues` is queued: True; or every
    one has finished: False. The pause only spares the CPU for the workers;
    no check depends on it."""
    while True:
        queued, unfinished = rows(
            db, "SELECT count(*) FILTER (WHERE status = 'queued'),"
                " count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled'))"
                " FROM task_store WHERE queue IN (SELECT value FROM json_each(?))",
            json.dumps(queues))[0]
        if queued:
            return True
        if not unfinished:
            return False
        time.sleep(0.0002)


def dag_worker(db, name, mode, own):
    """Drains the queues 'dag' (shared by all) and `own` (its alone), logging
    each claim and completion in its transaction. mode: 'plain' (task_claim,
    task_complete), 'batch' (task_claim_batch of 3, task_complete_batch) or
    'next' (task_complete_next, which completes and claims in one statement)."""
    queues = ["dag", own]
    claim_opts = json.dumps({"queue": queues})
    claims = 0

    def claim():
        if mode == "batch":
            got = json.loads(one(db, "SELECT task_claim_batch(?, 3, ?)", name, claim_opts))
        else:
            text = one(db, "SELECT task_claim(?, ?)", name, claim_opts)
            got = [json.loads(text)] if text else []
        for t in got:
            log(db, "claim", t["id"], name)
        return got

    def complete_batch(tasks):
        items = json.dumps([{"id": t["id"], "attempt": t["attempt"]} for t in tasks])
        assert one(db, "SELECT task_complete_batch(?)", items) == len(tasks)
        for t in tasks:
            log(db, "complete", t["id"], name)

    def complete_next(t):
        opts = json.dumps({"attempt": t["attempt"], "queue": queues})
        text = one(db, "SELECT task_complete_next(?, NULL, ?, ?)", t["id"], name, opts)
        log(db, "complete", t["id"], name)
        if text is None:
            return []
        nxt = json.loads(text)
        log(db, "claim", nxt["id"], name)
        return [nxt]

    def complete(t):
        opts = json.dumps({"attempt": t["attempt"]})
        assert one(db, "SELECT task_complete(?, NULL, ?)", t["id"], opts) == "completed"
        log(db, "complete", t["id"], name)

    while True:
        tasks = immediate(db, claim)
        if not tasks:
            if not wait_for_work(db, queues):
                break
            continue
        claims += len(tasks)
        if mode == "batch":
            immediate(db, lambda: complete_batch(tasks))
        elif mode == "next":
            while tasks:
                tasks = immediate(db, lambda t=tasks[0]: complete_next(t))
                claims += len(tasks)
        else:
            for t in tasks:
                immediate(db, lambda t=t: complete(t))
    return {"claims": claims}


def unique_worker(db, name, mode, order):
    """Enqueues every key of UNIQUE_KEYS once, in its own order (0: as listed,
    1: reversed, else shuffled with that seed). mode: 'auto' (task_enqueue in
    autocommit), 'txn' (20 task_enqueue per BEGIN IMMEDIATE) or 'vtab' (20
    INSERT INTO tasks per BEGIN IMMEDIATE, the holder's id read back in the
    transaction). Returns {key: id it got back}."""
    keys = list(UNIQUE_KEYS)
    if order == "1":
        keys.reverse()
    elif order != "0":
        random.Random(int(order)).shuffle(keys)
    got = {}

    def enqueue(key):
        if mode == "vtab":
            db.execute("INSERT INTO tasks(type, queue, unique_key) VALUES ('sync', 'uq', ?)",
                       (key,))
            found = rows(db, "SELECT id FROM tasks WHERE queue = 'uq' AND unique_key = ?", key)
            assert len(found) == 1, (key, found)
            got[key] = found[0][0]
        else:
            got[key] = one(db, "SELECT task_enqueue('sync', NULL, ?)",
                           json.dumps({"queue": "uq", "unique_key": key}))

    if mode == "auto":
        for key in keys:
            enqueue(key)
    else:
        for i in range(0, len(keys), 20):
            immediate(db, lambda part=keys[i:i + 20]: [enqueue(k) for k in part])
    return {"ids": got}


def child_worker(db, name):
    """Works the children in queue 'kids': claim, one progress report, then
    complete and read the parent's status in one transaction, and log both."""
    claim_opts = json.dumps({"queue": "kids"})
    done = 0

    def finish(t):
        status = one(db, "SELECT task_complete(?, NULL, ?)", t["id"],
                     json.dumps({"attempt": t["attempt"]}))
        assert status == "completed", status
        parent = one(db, "SELECT status FROM task_store WHERE id = ?", t["parent_id"])
        log(db, "complete", t["id"], name, t["parent_id"], parent)

    while True:
        text = immediate(db, lambda: one(db, "SELECT task_claim(?, ?)", name, claim_opts))
        if text is None:
            if not wait_for_work(db, ["kids"]):
                break
            continue
        t = json.loads(text)
        assert one(db, "SELECT task_progress(?, 50, ?)", t["id"],
                   json.dumps({"attempt": t["attempt"]})) == "running"
        immediate(db, lambda: finish(t))
        done += 1
    return {"completed": done}


def rollup_reader(db, name):
    """Polls the parents until all have completed. Each poll is one read
    transaction: the parents' rows of the tasks table, and the children they
    roll up from task_store, so each poll checks one consistent snapshot: the
    progress in 0..100, equal to the mean of its children's (a finished child
    counting as 100), never going down; children_done equal to the finished
    children; status completed exactly when all of them are."""
    problems, polls, midway = [], 0, 0
    last = {}
    while True:
        db.execute("BEGIN")
        parents = rows(db, "SELECT id, status, progress, children, children_done FROM tasks"
                           " WHERE queue = 'parents'")
        kids = rows(db, "SELECT parent_id, status, progress FROM task_store WHERE queue = 'kids'")
        db.execute("COMMIT")
        polls += 1
        of = defaultdict(list)
        for parent, status, progress in kids:
            of[parent].append(100 if status in FINISHED else progress)
        finished = Counter(p for p, status, _ in kids if status in FINISHED)
        for pid, status, progress, children, children_done in parents:
            mean = sum(of[pid]) / len(of[pid])
            seen = f"poll {polls}: parent {pid} {status} progress {progress}"
            if not 0 <= progress <= 100:
                problems.append(f"{seen}: outside 0..100")
            if abs(progress - mean) > 1e-6:
                problems.append(f"{seen}: its children's mean is {mean}")
            if progress < last.get(pid, 0):
                problems.append(f"{seen}: went down from {last[pid]}")
            if (children, children_done) != (len(of[pid]), finished[pid]):
                problems.append(f"{seen}: children {children} done {children_done}, the children"
                                f" say {len(of[pid])} done {finished[pid]}")
            if (status == "completed") != (finished[pid] == len(of[pid])) or \
                    status not in ("waiting", "completed"):
                problems.append(f"{seen}: with {finished[pid]} of {len(of[pid])} children done")
            midway += 0 < progress < 100
            last[pid] = progress
        if all(p[1] == "completed" for p in parents) or len(problems) > 20:
            return {"polls": polls, "midway": midway, "problems": problems}


ROLES = {"dag": dag_worker, "unique": unique_worker, "child": child_worker,
         "reader": rollup_reader}
UNIQUE_KEYS = [f"account-{i:03}" for i in range(500)]


def main(argv, roles=ROLES):
    """A process of a test: `roles[ROLE](db, NAME, *ARGS)` once released."""
    role, path, ext, name, *args = argv
    db = open_db(path, ext)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    try:
        summary = roles[role](db, name, *args)
    except apsw.BusyError as e:
        summary = {"busy": f"{type(e).__name__}: {e}"}
    db.close()
    print(json.dumps(summary), flush=True)
    return 0


# --- The tests ---------------------------------------------------------------

def setup_db(path, log_schema=LOG_SCHEMA):
    db = open_db(path, EXT)
    assert one(db, "SELECT task_init()") == 9
    db.execute(log_schema)
    return db


def run_together(path, specs, timeout=120, script=__file__):
    """Starts one process per (role, name, *args) running `script` (this
    file, or another test's that has the same `main`), releases them
    together once all are ready, and returns {name: summary}. A process
    that fails, or an SQLITE_BUSY that reached one, fails the test."""
    procs = [subprocess.Popen([sys.executable, script, role, str(path), EXT, name, *args],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for role, name, *args in specs]
    results = {}
    try:
        for (_, name, *_), p in zip(specs, procs):
            if p.stdout.readline() != "ready\n":
                raise AssertionError(f"{name} did not start: {p.communicate(timeout=10)[1]}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for (_, name, *_), p in zip(specs, procs):
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0 and out, f"{name} exited with {p.returncode}: {err}"
            results[name] = json.loads(out.splitlines()[-1])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    busy = {name: r["busy"] for name, r in results.items() if "busy" in r}
    assert not busy, f"SQLITE_BUSY reached a caller: {busy}"
    return results


def test_four_processes_never_claim_a_dependent_before_its_dependencies(tmp_path):
    path = tmp_path / "dag.db"
    db = setup_db(path)
    wanted = {}  # id -> the ids it was enqueued to depend on

    def add(queue, on=()):
        opts = {"queue": queue}
        if on:
            opts["depends_on"] = list(on)
        tid = one(db, "SELECT task_enqueue('step', NULL, ?)", json.dumps(opts))
        wanted[tid] = set(on)
        return tid

    def build():
        # 20 diamonds: a root, 30 tasks on it (the first also on the previous
        # diamond's root), a join on all 30; 4 chains of 10; a last task on
        # every join and chain end. Most tasks are in the queue 'dag', which
        # every worker claims from; the others in the queue of one worker
        # ('dag0' ... 'dag3'), so that every process takes part however the
        # write lock is shared out, and each join waits for tasks other
        # processes completed.
        ends, roots = [], []
        for d in range(20):
            roots.append(add("dag"))
            mids = [add("dag" if i % 2 else f"dag{i // 2 % WORKERS}",
                        [roots[-1]] + (roots[-2:-1] if i == 0 else []))
                    for i in range(30)]
            ends.append(add(f"dag{d % WORKERS}", mids))
        for c in range(WORKERS):
            link = add(f"dag{c}")
            for i in range(9):
                link = add("dag" if i % 2 else f"dag{(c + 1) % WORKERS}", [link])
            ends.append(link)
        add("dag", ends)

    immediate(db, build)
    assert one(db, "SELECT count(*) FROM task_store WHERE status = 'blocked'") == \
        sum(1 for on in wanted.values() if on)

    results = run_together(path, [("dag", f"w{i}", mode, f"dag{i}")
                                  for i, mode in enumerate(("plain", "batch", "next", "plain"))])

    log_rows = rows(db, "SELECT seq, kind, task, worker FROM log ORDER BY seq")
    claimed, completed = defaultdict(list), defaultdict(list)  # task -> [(seq, worker)]
    for seq, kind, task, worker in log_rows:
        (claimed if kind == "claim" else completed)[task].append((seq, worker))
    assert {t for t, c in claimed.items() if len(c) != 1} == set()
    assert {t for t, c in completed.items() if len(c) != 1} == set()
    assert set(claimed) == set(completed) == set(wanted)
    late, across = [], 0
    for tid, depends_on in rows(db, "SELECT id, depends_on FROM tasks"):
        deps = set(json.loads(depends_on)) if depends_on else set()
        assert deps == wanted[tid], tid
        (claim_seq, claimer), = claimed[tid]
        assert claim_seq < completed[tid][0][0]
        for dep in deps:
            (done_seq, completer), = completed[dep]
            if claim_seq < done_seq:
                late.append((tid, dep))
            across += claimer != completer
    assert late == [], f"claimed before a dependency completed: {late[:5]}"
    assert across > 0
    assert rows(db, "SELECT status, attempts, count(*) FROM task_store GROUP BY 1, 2") == \
        [("completed", 1, len(wanted))]
    assert sum(r["claims"] for r in results.values()) == len(wanted)
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def test_four_processes_enqueueing_the_same_unique_keys_create_each_task_once(tmp_path):
    path = tmp_path / "unique.db"
    db = setup_db(path)
    results = run_together(path, [("unique", f"p{i}", mode, str(i))
                                  for i, mode in enumerate(("auto", "auto", "txn", "vtab"))])

    held = rows(db, "SELECT unique_key, count(*), min(id) FROM task_store GROUP BY unique_key")
    assert len(held) == len(UNIQUE_KEYS)
    assert [k for k, n, _ in held if n != 1] == []
    holder = {k: tid for k, _, tid in held}
    for name, r in results.items():
        wrong = {k: tid for k, tid in r["ids"].items() if holder[k] != tid}
        assert len(r["ids"]) == len(UNIQUE_KEYS) and wrong == {}, (name, list(wrong.items())[:3])
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def test_parents_complete_in_the_transaction_of_their_last_child(tmp_path):
    path = tmp_path / "family.db"
    db = setup_db(path)
    n_parents, n_children = 8, 50

    def build():
        parents = [one(db, "SELECT task_enqueue('album', NULL, '{\"queue\": \"parents\"}')")
                   for _ in range(n_parents)]
        for pid in parents:
            assert json.loads(one(db, "SELECT task_claim('setup', '{\"queue\": \"parents\"}')"))[
                "id"] == pid
        # Round robin, so the workers finish every parent's children together.
        for _ in range(n_children):
            for pid in parents:
                one(db, "SELECT task_enqueue('track', NULL, ?)",
                    json.dumps({"queue": "kids", "parent_id": pid}))
        for pid in parents:
            assert one(db, "SELECT task_complete(?)", pid) == "waiting"
        return parents

    parents = immediate(db, build)
    results = run_together(path, [("child", f"w{i}") for i in range(WORKERS)]
                           + [("reader", "reader")])

    reader = results.pop("reader")
    assert reader["problems"] == [], reader["problems"][:5]
    assert reader["polls"] >= 2, reader
    assert sum(r["completed"] for r in results.values()) == n_parents * n_children
    seen = defaultdict(list)  # parent -> the statuses its children's completions saw
    for _, parent, status in rows(db, "SELECT seq, parent, parent_status FROM log ORDER BY seq"):
        seen[parent].append(status)
    assert sorted(seen) == sorted(parents)
    for pid in parents:
        assert seen[pid] == ["waiting"] * (n_children - 1) + ["completed"], \
            (pid, Counter(seen[pid]))
    assert rows(db, "SELECT DISTINCT status, progress, children, children_done FROM tasks"
                    " WHERE queue = 'parents'") == [("completed", 100, n_children, n_children)]
    done = one(db, "SELECT count(*) FROM task_store WHERE queue = 'kids' AND status = 'completed'")
    assert done == n_parents * n_children
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
