"""Schedules and retention across several OS processes on one WAL file:
four processes ticking the same clock create each occurrence once and miss
none, and task_prune running in a loop beside four workers and a producer
never deletes a task that has not finished.

As in test_workflow_processes.py, each process is this file run as a
script with its own apsw connection (`main` there), released together by a
barrier; the fair wait is task_busy_timeout(5000), and an SQLITE_BUSY that
reaches a caller is counted and fails the test. Ticks use a supplied clock,
the same sequence in every process; the prune test uses the real clock
(leases of 5 minutes never expire in a run). Every deletion from task_store
is recorded by a trigger in the deleting transaction, with the row's status
and its parent's status at that moment: what the prune checks read.
"""

import json
import random
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import apsw

from conftest import one, rows
from test_workflow_processes import immediate, main, run_together, setup_db

SEC = 1_000
MIN = 60_000
T0 = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()) * 1000
TICKS = 200
STEP = 37 * SEC  # shorter than every period below, so each tick sees one at most
FINISHED = ("completed", "failed", "cancelled")


def fair_wait(db):
    one(db, "SELECT task_busy_timeout(5000)")


# --- The processes -----------------------------------------------------------

def ticker(db, name, mode):
    """Ticks T0 + STEP, T0 + 2 STEP, ... in order, in step with the others:
    after each tick it records how far it got in `progress` and waits for
    the slowest, so that all four tick each time at once. mode: 'auto' (a
    plain SELECT task_tick), 'immediate' (inside BEGIN IMMEDIATE) or
    'claim' (an idle claim on an empty queue first, which ticks too, then
    task_tick)."""
    fair_wait(db)
    enqueued, busy, errors = 0, 0, []
    deadline = time.monotonic() + 60
    for i in range(1, TICKS + 1):
        while one(db, "SELECT min(done) FROM progress") < i - 1:
            assert time.monotonic() < deadline, f"{name}: the others stopped before tick {i}"
            time.sleep(0.0001)
        now = json.dumps({"now": T0 + i * STEP})
        try:
            if mode == "claim":
                assert one(db, "SELECT task_claim(?, json_set(?, '$.queue', 'nothing'))",
                           name, now) is None
            if mode == "immediate":
                got = immediate(db, lambda: one(db, "SELECT task_tick(?)", now))
            else:
                got = one(db, "SELECT task_tick(?)", now)
            enqueued += json.loads(got)["enqueued"]
        except apsw.BusyError:
            busy += 1
        except apsw.Error as e:
            errors.append(f"tick {i}: {type(e).__name__}: {e}")
        # An SQLITE_BUSY here reaches `main`, which reports it.
        db.execute("UPDATE progress SET done = ? WHERE name = ?", (i, name))
    return {"enqueued": enqueued, "busy_errors": busy, "errors": errors[:5]}


PLAIN, FAMILIES, CHILDREN, CHAINS, BATCH = 3_000, 150, 3, 150, 25


def producer(db, name):
    """Enqueues plain tasks, families (a parent in 'parents', its children in
    'kids') and chains (b depends on a), BATCH at a time, recording every id
    in `made` in the transaction that enqueues it; then marks the end."""
    fair_wait(db)

    def add(kind, queue, **opts):
        tid = one(db, "SELECT task_enqueue(?, NULL, ?)", kind, json.dumps({"queue": queue, **opts}))
        db.execute("INSERT INTO made(id, kind) VALUES (?, ?)", (tid, kind))
        return tid

    def family():
        parent = add("parent", "parents")
        for _ in range(CHILDREN):
            add("child", "kids", parent_id=parent)

    def chain():
        first = add("first", "chain")
        add("second", "chain", depends_on=[first])

    work = [lambda: add("plain", "plain")] * PLAIN + [family] * FAMILIES + [chain] * CHAINS
    # Spread the families and chains among the plain tasks.
    random.Random(7).shuffle(work)
    for i in range(0, len(work), BATCH):
        immediate(db, lambda part=work[i:i + BATCH]: [f() for f in part])
        time.sleep(0.002)
    immediate(db, lambda: db.execute("INSERT INTO log(kind, task, worker) VALUES ('produced', '', ?)",
                                     (name,)))
    return {"made": one(db, "SELECT count(*) FROM made")}


def all_done(db):
    """The producer has finished and no task is unfinished."""
    produced, unfinished = rows(
        db, "SELECT (SELECT count(*) FROM log WHERE kind = 'produced'),"
            " (SELECT count(*) FROM task_store WHERE status NOT IN ('completed', 'failed', 'cancelled'))")[0]
    return produced and not unfinished


def worker(db, name):
    """Claims from every queue and completes, logging both in their
    transactions, until everything is done."""
    fair_wait(db)
    claims, errors = 0, []

    def claim():
        text = one(db, "SELECT task_claim(?)", name)
        if text is None:
            return None
        t = json.loads(text)
        db.execute("INSERT INTO log(kind, task, worker) VALUES ('claim', ?, ?)", (t["id"], name))
        return t

    def complete(t):
        status = one(db, "SELECT task_complete(?, NULL, ?)", t["id"],
                     json.dumps({"attempt": t["attempt"]}))
        db.execute("INSERT INTO log(kind, task, worker, status) VALUES ('complete', ?, ?, ?)",
                   (t["id"], name, status))

    while len(errors) < 20:
        try:
            t = immediate(db, claim)
            if t is None:
                if all_done(db):
                    break
                time.sleep(0.001)
                continue
            claims += 1
            immediate(db, lambda: complete(t))
        except apsw.BusyError:
            raise
        except apsw.Error as e:
            errors.append(f"{type(e).__name__}: {e}")
    return {"claims": claims, "errors": errors[:5]}


def pruner(db, name, step):
    """task_prune of every finished task (older than 0 ms) in steps of
    `step` rows, in a loop until everything is done, then once more."""
    fair_wait(db)
    prunes = deleted = steps = 0
    longest = 0.0
    options = json.dumps({"older_than": 0, "step": int(step)})
    while True:
        finished = all_done(db)
        if finished:
            # The last completion is a millisecond older than the cutoff.
            time.sleep(0.01)
        got = json.loads(one(db, "SELECT task_prune(?)", options))
        prunes += 1
        deleted += got["deleted"]
        steps += got["steps"]
        longest = max(longest, got["longest_step_ms"])
        if finished:
            break
        time.sleep(0.002)
    return {"prunes": prunes, "deleted": deleted, "steps": steps, "longest_step_ms": longest}


ROLES = {"ticker": ticker, "producer": producer, "worker": worker, "pruner": pruner}


# --- The tests ---------------------------------------------------------------

def occurrences(period_ms, end, minute_filter=None):
    """The multiples of period_ms in (T0, end], or (cron) the whole minutes
    there whose minute of the hour passes minute_filter."""
    out, t = [], T0 + period_ms
    while t <= end:
        if minute_filter is None or minute_filter(t // MIN % 60):
            out.append(t)
        t += period_ms
    return out


def test_four_processes_ticking_the_same_clock_create_each_occurrence_once(tmp_path):
    path = tmp_path / "tick.db"
    db = setup_db(path, "CREATE TABLE progress (name TEXT PRIMARY KEY, done INTEGER NOT NULL)")
    start = json.dumps({"now": T0})
    one(db, "SELECT task_schedule('every', '@every 1m', 'job', NULL,"
            " json_set(?, '$.queue', 'e', '$.catch_up', 'all'))", start)
    one(db, "SELECT task_schedule('cron', '*/7 * * * *', 'job', NULL,"
            " json_set(?, '$.queue', 'c', '$.catch_up', 'all'))", start)
    one(db, "SELECT task_schedule('latest', '@every 5m', 'job', NULL,"
            " json_set(?, '$.queue', 'l'))", start)
    specs = [("ticker", f"t{i}", mode) for i, mode in enumerate(("auto", "auto", "immediate", "claim"))]
    db.executemany("INSERT INTO progress VALUES (?, 0)", [(name,) for _, name, _ in specs])
    results = run_together(path, specs, script=__file__)

    assert {n: r["busy_errors"] for n, r in results.items()} == {n: 0 for n in results}
    assert {n: r["errors"] for n, r in results.items()} == {n: [] for n in results}
    end = T0 + TICKS * STEP
    by_queue = {q: Counter(r for (r,) in rows(db, "SELECT run_at FROM tasks WHERE queue = ?", q))
                for q in ("e", "c", "l")}
    twice = {q: [t for t, n in c.items() if n > 1] for q, c in by_queue.items()}
    assert twice == {"e": [], "c": [], "l": []}, "an occurrence enqueued twice"
    assert sorted(by_queue["e"]) == occurrences(MIN, end)
    assert sorted(by_queue["c"]) == occurrences(MIN, end, lambda m: m % 7 == 0)
    # Catch-up 'latest': ticks behind another process's may pass over an
    # occurrence, but never enqueue one twice or one that is not one, and
    # the last one before the last tick is there.
    assert set(by_queue["l"]) <= set(occurrences(5 * MIN, end))
    assert max(by_queue["l"]) == occurrences(5 * MIN, end)[-1]
    total = sum(len(c) for c in by_queue.values())
    # (The claims of the 'claim' process enqueue some, which no tick counts.)
    assert sum(r["enqueued"] for r in results.values()) <= total
    assert one(db, "SELECT count(*) FROM task_schedule_runs") == total
    assert one(db, "SELECT count(*) FROM tasks") == total
    assert one(db, "SELECT next_at FROM task_schedules WHERE name = 'every'") == (end // MIN + 1) * MIN
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


PRUNE_SCHEMA = """
CREATE TABLE log (
  seq INTEGER PRIMARY KEY,      -- commit order
  kind TEXT NOT NULL,           -- claim | complete | produced
  task TEXT NOT NULL,
  worker TEXT NOT NULL,
  status TEXT                   -- complete: what task_complete returned
);
CREATE TABLE made (id TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE deleted (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  status TEXT NOT NULL,         -- the row's status when it was deleted
  parent TEXT,
  parent_status TEXT            -- its parent's, then (NULL: gone already)
);
CREATE TRIGGER record_deletes AFTER DELETE ON task_store BEGIN
  INSERT INTO deleted(id, status, parent, parent_status)
  VALUES (old.id, old.status, old.parent_id,
          (SELECT status FROM task_store WHERE id = old.parent_id));
END;
"""


def test_prune_in_a_loop_beside_workers_never_deletes_an_unfinished_task(tmp_path, capsys):
    path = tmp_path / "prune.db"
    db = setup_db(path, PRUNE_SCHEMA)
    specs = [("worker", f"w{i}") for i in range(4)] + [("producer", "p"), ("pruner", "x", "100")]
    results = run_together(path, specs, script=__file__)
    made = dict(rows(db, "SELECT id, kind FROM made"))
    prune = results["x"]
    with capsys.disabled():
        print(f"\n  task_prune beside 4 workers: {prune['prunes']} calls, {prune['steps']} steps"
              f" of 100 rows, {prune['deleted']} tasks deleted, longest step"
              f" {prune['longest_step_ms']:.3f} ms")

    assert results["p"]["made"] == len(made) == PLAIN + FAMILIES * (1 + CHILDREN) + CHAINS * 2
    errors = {n: r["errors"] for n, r in results.items() if r.get("errors")}
    assert errors == {}, errors
    # Only finished tasks were deleted, and a child only with its parent.
    deleted = rows(db, "SELECT id, status, parent, parent_status FROM deleted")
    assert [d for d in deleted if d[1] not in FINISHED] == [], "an unfinished task was deleted"
    assert [d for d in deleted if d[2] is not None and d[3] is not None] == [], \
        "a child was deleted while its parent was still there"
    assert len(deleted) == prune["deleted"] > 0
    # Nothing disappeared before it was worked: every task was claimed and
    # completed once, by the log, and is either still there, completed, or
    # recorded as deleted.
    log = rows(db, "SELECT kind, task, status FROM log WHERE kind IN ('claim', 'complete')")
    claimed = Counter(t for k, t, _ in log if k == "claim")
    completed = Counter(t for k, t, _ in log if k == "complete")
    assert set(claimed) == set(completed) == set(made)
    assert set(claimed.values()) == set(completed.values()) == {1}
    remaining = dict(rows(db, "SELECT id, status FROM task_store"))
    assert set(remaining.values()) <= {"completed"}
    deleted_ids = [d[0] for d in deleted]
    assert len(set(deleted_ids)) == len(deleted_ids)
    assert set(remaining) | set(deleted_ids) == set(made)
    assert not set(remaining) & set(deleted_ids)
    # The prune after the end took every finished task left.
    assert remaining == {}
    assert sum(r.get("claims", 0) for r in results.values()) == len(made)
    assert one(db, "SELECT count(*) FROM task_deps") == 0
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], ROLES))
