"""Waiting for work (docs/reference/workers.md): task_wait(timeout_ms), which
returns 1 as soon as another connection or process has committed and 0 at
its timeout, and the long-poll claim (task_claim and task_claim_batch with
{"wait": ms}), which sleeps until a task can be claimed: another process's
commit, a delayed task's run_at, an expired lease or a schedule's next
occurrence (by the system clock).

Where another process is needed, it is this file run as a script, with its
own apsw connection (`main` of test_workflow_processes.py: it prints
`ready`, works once it reads `go`, prints a JSON summary last). A process
that waits prints `waiting` just before its call, so that the test can act
on it while it sleeps. CPU time is each process's own (user + system, the
getrusage of the process) over its call or its run, so that starting the
interpreter does not count.

Timing: a wait is asserted to last at least its timeout, and a wake to come
well before it (within 5 s of a 10 s wait); upper bounds otherwise are only
a sanity check (the timeout + 2 s), and a CPU bound only proves that no
waiter spins (under half a core, where a busy loop takes a whole one).
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import apsw
import pytest

from conftest import EXT, connect, enqueue, fails, one, rows
from test_workflow_processes import immediate, main, setup_db

SLACK = 2.0  # s: the sanity bound on a wait beyond its timeout
REFUSED = ("cannot wait inside a transaction or a statement that reads the database:"
           " it would wait on a snapshot that cannot change; call it on its own")
SCHEMA = """
CREATE TABLE made (id TEXT PRIMARY KEY);  -- every task the producer enqueued
CREATE TABLE log (
  seq INTEGER PRIMARY KEY,      -- commit order
  kind TEXT NOT NULL,           -- complete | produced
  task TEXT NOT NULL,
  worker TEXT NOT NULL
);
"""


# --- The processes -----------------------------------------------------------

def producer(db, name, delay_ms, count):
    """After delay_ms, enqueues `count` tasks in one transaction."""
    time.sleep(int(delay_ms) / 1000)
    ids = immediate(db, lambda: [one(db, "SELECT task_enqueue('job')") for _ in range(int(count))])
    return {"ids": ids, "committed_ms": time.time() * 1000}


def waiter(db, name, how, ms, queue=""):
    """Prints `waiting`, then task_wait(ms) ('wait') or a long-poll claim of
    `queue` (every queue when empty) ('claim'); returns what it got, how long
    it took, and the CPU time of the process over the call."""
    opts = {"wait": int(ms), **({"queue": queue} if queue else {})}
    print("waiting", flush=True)
    t0, cpu0 = time.monotonic(), time.process_time()
    if how == "wait":
        got = one(db, "SELECT task_wait(?)", int(ms))
    else:
        got = one(db, "SELECT task_claim(?, ?)", name, json.dumps(opts))
    return {"got": got, "elapsed": time.monotonic() - t0, "cpu": time.process_time() - cpu0,
            "returned_ms": time.time() * 1000}


def worker(db, name, wait_ms):
    """Long-polls every queue and completes what it claims (the completion
    logged in its transaction), until the producer has finished and nothing
    is queued. A long-poll claim cannot be inside a transaction, so the
    claimed ids are returned instead of logged."""
    opts = json.dumps({"wait": int(wait_ms)})
    claimed, errors, empty = [], [], 0
    t0, cpu0 = time.monotonic(), time.process_time()

    def complete(t):
        status = one(db, "SELECT task_complete(?, NULL, ?)", t["id"],
                     json.dumps({"attempt": t["attempt"]}))
        assert status == "completed", (t["id"], status)
        db.execute("INSERT INTO log(kind, task, worker) VALUES ('complete', ?, ?)", (t["id"], name))

    while len(errors) < 20:
        try:
            text = one(db, "SELECT task_claim(?, ?)", name, opts)
            if text is None:
                empty += 1
                # One statement, one snapshot: the end marker is committed
                # after the last task, so with it seen, nothing queued means
                # nothing more will come.
                produced, queued = rows(
                    db, "SELECT (SELECT count(*) FROM log WHERE kind = 'produced'),"
                        " (SELECT count(*) FROM task_store WHERE status = 'queued')")[0]
                if produced and not queued:
                    break
                continue
            t = json.loads(text)
            claimed.append(t["id"])
            immediate(db, lambda: complete(t))
        except apsw.BusyError:
            raise
        except (apsw.Error, AssertionError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    return {"claimed": claimed, "errors": errors[:5], "empty": empty,
            "wall": time.monotonic() - t0, "cpu": time.process_time() - cpu0}


def bursts(db, name, n, size, pause_ms):
    """n bursts of `size` tasks, each after a pause: the even ones in one
    transaction, the odd ones a commit per task. Every id goes into `made`
    in the transaction that enqueues it; then the end marker."""
    def add():
        tid = one(db, "SELECT task_enqueue('job')")
        db.execute("INSERT INTO made(id) VALUES (?)", (tid,))

    for b in range(int(n)):
        time.sleep(int(pause_ms) / 1000)
        if b % 2 == 0:
            immediate(db, lambda: [add() for _ in range(int(size))])
        else:
            for _ in range(int(size)):
                immediate(db, add)
    immediate(db, lambda: db.execute(
        "INSERT INTO log(kind, task, worker) VALUES ('produced', '', ?)", (name,)))
    return {"made": one(db, "SELECT count(*) FROM made")}


ROLES = {"producer": producer, "waiter": waiter, "worker": worker, "bursts": bursts}


# --- Helpers -----------------------------------------------------------------

@pytest.fixture
def spawn():
    """spawn(path, role, name, *args): a process of this file, started and
    ready (not yet released); any still running at the end is killed."""
    started = []

    def start(path, role, name, *args):
        p = subprocess.Popen([sys.executable, __file__, role, str(path), EXT, name,
                              *map(str, args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        started.append(p)
        if p.stdout.readline() != "ready\n":
            raise AssertionError(f"{name} did not start: {p.communicate(timeout=10)[1]}")
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def go(*procs):
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def waiting(p):
    """Returns once the process is about to call its wait."""
    line = p.stdout.readline()
    assert line == "waiting\n", (line, p.poll())


def summary(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0 and out, f"exited with {p.returncode}: {err}"
    result = json.loads(out.splitlines()[-1])
    assert "busy" not in result, f"SQLITE_BUSY reached a caller: {result['busy']}"
    return result


def timed(db, sql, *args):
    """(value, wall seconds, CPU seconds of this process) of one statement."""
    t0, cpu0 = time.monotonic(), time.process_time()
    value = one(db, sql, *args)
    return value, time.monotonic() - t0, time.process_time() - cpu0


def checkpoint_truncate(db):
    """PRAGMA wal_checkpoint(TRUNCATE) without a busy handler. A waiter
    reads data_version for a few µs at least once a second; a checkpoint that lands
    in one is retried, up to 5 times, so only a lock held on and on fails."""
    for _ in range(5):
        result = rows(db, "PRAGMA wal_checkpoint(TRUNCATE)")[0]
        if result[0] == 0:
            break
        time.sleep(0.01)
    return result


def now_ms():
    return time.time() * 1000


def claim_json(db, worker, **options):
    return json.loads(one(db, "SELECT task_claim(?, ?)", worker, json.dumps(options)))


# --- task_wait ---------------------------------------------------------------

def test_task_wait_returns_0_at_its_timeout_when_nothing_commits(db):
    got, elapsed, _ = timed(db, "SELECT task_wait(300)")
    assert got == 0
    assert 0.3 <= elapsed < 0.3 + SLACK
    got, elapsed, _ = timed(db, "SELECT task_wait(0)")
    assert got == 0 and elapsed < SLACK


def test_task_wait_returns_1_soon_after_another_process_commits(tmp_path, spawn, capsys):
    path = tmp_path / "wake.db"
    db = setup_db(path, SCHEMA)
    p = spawn(path, "producer", "p", 300, 1)
    go(p)
    got, elapsed, _ = timed(db, "SELECT task_wait(10000)")
    returned = now_ms()
    produced = summary(p)
    (tid,) = produced["ids"]
    assert got == 1
    assert elapsed < 5, "woken well before its timeout"
    # What woke it is visible to it at once.
    assert one(db, "SELECT count(*) FROM task_store WHERE id = ?", tid) == 1
    with capsys.disabled():
        print(f"\n  task_wait woke {elapsed * 1000:.0f} ms after it began (the commit came"
              f" ~300 ms in), {returned - produced['committed_ms']:+.1f} ms from the time the"
              " producer saw its commit return")
    db.close()


def test_a_commit_of_the_waiting_connection_does_not_count(db):
    enqueue(db)
    db.execute("BEGIN; SELECT task_enqueue('job'); COMMIT").fetchall()
    got, elapsed, _ = timed(db, "SELECT task_wait(200)")
    assert got == 0
    assert 0.2 <= elapsed < 0.2 + SLACK


def test_a_commit_on_another_connection_of_the_process_wakes_it(db, tmp_path):
    # apsw releases the GIL while a statement runs, so a thread with its own
    # connection commits while this one is blocked in task_wait. The commit
    # is to a table of the user's: any commit to the file counts.
    other = connect(tmp_path / "task.db")
    other.execute("CREATE TABLE notes (body TEXT)")

    def commit_later():
        time.sleep(0.3)
        other.execute("INSERT INTO notes VALUES ('hello')")

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        got, elapsed, _ = timed(db, "SELECT task_wait(10000)")
    finally:
        thread.join()
    assert got == 1
    assert elapsed < 5
    assert one(db, "SELECT body FROM notes") == "hello"
    other.close()


# --- Refusals ----------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (-1, "task_wait: timeout_ms must be between 0 and 3600000, got -1"),
    (3_600_001, "task_wait: timeout_ms must be between 0 and 3600000, got 3600001"),
    ("x", "task_wait: timeout_ms must be an integer, got text"),
    ("10", "task_wait: timeout_ms must be an integer, got text"),
    (None, "task_wait: timeout_ms must be an integer, got NULL"),
    (1.5, "task_wait: timeout_ms must be an integer, got a real"),
])
def test_task_wait_bad_timeouts(db, value, message):
    enqueue(db)
    assert fails(db, "SELECT task_wait(?)", value, match=message) == message


def test_task_wait_is_refused_inside_a_transaction(db):
    enqueue(db)
    for begin in ("BEGIN", "BEGIN IMMEDIATE"):
        db.execute(begin)
        t0 = time.monotonic()
        assert fails(db, "SELECT task_wait(10)", match=REFUSED) == f"task_wait: {REFUSED}"
        assert time.monotonic() - t0 < SLACK
        db.execute("ROLLBACK")


def test_task_wait_is_refused_in_a_statement_that_reads_the_database(db):
    enqueue(db)  # a row, so that the function is called
    message = fails(db, "SELECT task_wait(10) FROM task_store", match=REFUSED)
    assert message == f"task_wait: {REFUSED}"


def test_task_wait_is_refused_in_triggers_and_views(db):
    enqueue(db)
    db.execute("CREATE TABLE t (x); CREATE TRIGGER t_wait AFTER INSERT ON t"
               " BEGIN SELECT task_wait(1); END;"
               "CREATE VIEW v AS SELECT task_wait(1) AS w")
    assert fails(db, "INSERT INTO t VALUES (1)", match="unsafe use of task_wait()") == \
        "unsafe use of task_wait()"
    assert one(db, "SELECT count(*) FROM t") == 0
    assert fails(db, "SELECT w FROM v", match="unsafe use of task_wait()") == \
        "unsafe use of task_wait()"


def test_task_wait_before_task_init(raw_db):
    message = "task_wait: the task storage does not exist in this database; run SELECT task_init() first"
    assert fails(raw_db, "SELECT task_wait(10)", match=message) == message


@pytest.mark.parametrize("options, message", [
    ('{"wait": -1}', "wait must be between 0 and 3600000, got -1"),
    ('{"wait": 3600001}', "wait must be between 0 and 3600000, got 3600001"),
    ('{"wait": "x"}', 'option "wait" must be a whole number, got a string'),
    ('{"wait": 1.5}', 'option "wait" must be a whole number, got 1.5'),
])
def test_claim_bad_waits(db, options, message):
    enqueue(db)  # a bad wait is refused even with a task ready
    assert fails(db, "SELECT task_claim('w', ?)", options, match=message) == \
        f"task_claim: {message}"
    assert fails(db, "SELECT task_claim_batch('w', 2, ?)", options, match=message) == \
        f"task_claim_batch: {message}"


def test_a_claim_with_wait_is_refused_inside_a_transaction(db):
    enqueue(db)  # refused even with a task ready
    db.execute("BEGIN")
    assert fails(db, """SELECT task_claim('w', '{"wait": 10}')""", match=REFUSED) == \
        f"task_claim: {REFUSED}"
    assert fails(db, """SELECT task_claim_batch('w', 2, '{"wait": 10}')""", match=REFUSED) == \
        f"task_claim_batch: {REFUSED}"
    db.execute("ROLLBACK")
    assert fails(db, """SELECT task_claim('w', '{"wait": 10}') FROM task_store""",
                 match=REFUSED) == f"task_claim: {REFUSED}"


# --- The long-poll claim -----------------------------------------------------

def test_a_long_poll_claims_the_task_another_process_enqueues(tmp_path, spawn):
    path = tmp_path / "poll.db"
    db = setup_db(path, SCHEMA)
    p = spawn(path, "producer", "p", 300, 1)
    go(p)
    text, elapsed, _ = timed(db, """SELECT task_claim('w', '{"wait": 10000}')""")
    (tid,) = summary(p)["ids"]
    assert text is not None and json.loads(text)["id"] == tid
    assert elapsed < 5
    assert one(db, "SELECT status || ' ' || worker FROM tasks WHERE id = ?", tid) == "running w"
    db.close()


def test_a_long_poll_batch_returns_the_tasks_as_a_json_array(tmp_path, spawn):
    path = tmp_path / "batch.db"
    db = setup_db(path, SCHEMA)
    p = spawn(path, "producer", "p", 300, 3)
    go(p)
    text, elapsed, _ = timed(db, """SELECT task_claim_batch('w', 5, '{"wait": 10000}')""")
    ids = summary(p)["ids"]
    got = json.loads(text)
    assert isinstance(got, list)
    # The three were committed together, so the batch that wakes takes all.
    assert [t["id"] for t in got] == ids
    assert {t["attempt"] for t in got} == {1}
    assert elapsed < 5
    text, elapsed, _ = timed(db, """SELECT task_claim_batch('w', 5, '{"wait": 300}')""")
    assert text == "[]"
    assert 0.3 <= elapsed < 0.3 + SLACK
    db.close()


def test_a_long_poll_of_an_empty_queue_returns_null_after_its_wait(db):
    got, elapsed, _ = timed(db, """SELECT task_claim('w', '{"wait": 300}')""")
    assert got is None
    assert 0.3 <= elapsed < 0.3 + SLACK


def test_wait_0_or_null_is_no_wait(db):
    for options in ('{"wait": 0}', '{"wait": null}'):
        got, elapsed, _ = timed(db, "SELECT task_claim('w', ?)", options)
        assert got is None and elapsed < 0.25
        got, elapsed, _ = timed(db, "SELECT task_claim_batch('w', 3, ?)", options)
        assert got == "[]" and elapsed < 0.25
    # And, not waiting, it is allowed inside a transaction.
    tid = enqueue(db)
    db.execute("BEGIN")
    assert json.loads(one(db, """SELECT task_claim('w', '{"wait": 0}')"""))["id"] == tid
    db.execute("COMMIT")


def test_a_long_poll_claims_a_delayed_task_once_it_is_due(db):
    tid = enqueue(db, delay=400)
    run_at = one(db, "SELECT run_at FROM tasks WHERE id = ?", tid)
    text, elapsed, _ = timed(db, """SELECT task_claim('w', '{"wait": 5000, "lease": 60000}')""")
    returned = now_ms()
    t = json.loads(text)
    assert t["id"] == tid and t["run_at"] == run_at
    # Claimed at lease_until - lease: not before its run_at.
    assert run_at <= t["lease_until"] - 60000 <= returned
    assert elapsed < 0.4 + SLACK


def test_a_long_poll_claims_a_task_whose_lease_expires(db):
    tid = enqueue(db)
    first = json.loads(one(db, """SELECT task_claim('w1', '{"lease": 400}')"""))
    text, elapsed, _ = timed(db, """SELECT task_claim('w2', '{"wait": 5000, "lease": 60000}')""")
    t = json.loads(text)
    assert (t["id"], t["attempt"]) == (tid, 2)
    assert first["lease_until"] <= t["lease_until"] - 60000 <= now_ms()
    assert elapsed < 0.4 + SLACK


def test_a_long_poll_claims_a_schedules_next_occurrence(db):
    schedule = json.loads(one(db, "SELECT task_schedule('beat', '@every 1s', 'beat', NULL,"
                                  " '{\"queue\": \"beats\"}')"))
    text, elapsed, _ = timed(
        db, """SELECT task_claim('w', '{"queue": "beats", "wait": 5000, "lease": 60000}')""")
    t = json.loads(text)
    assert (t["type"], t["run_at"]) == ("beat", schedule["next_at"])
    assert schedule["next_at"] <= t["lease_until"] - 60000 <= now_ms()
    assert elapsed < 1 + SLACK


@pytest.mark.parametrize("blocked", ["in another queue", "in a paused queue"])
def test_a_long_poll_beside_an_expired_lease_it_cannot_take_does_not_spin(db, blocked):
    """An expired lease the claim cannot reclaim (another queue's, or a
    paused queue's) is no reason to wake: the claim must still sleep."""
    enqueue(db, queue="other")
    assert claim_json(db, "w1", queue="other", lease=1)["queue"] == "other"
    time.sleep(0.01)
    if blocked == "in a paused queue":
        one(db, """SELECT task_queue('other', '{"paused": true}')""")
        options = {"wait": 1000}
    else:
        options = {"queue": "mine", "wait": 1000}
    got, elapsed, cpu = timed(db, "SELECT task_claim('w2', ?)", json.dumps(options))
    assert got is None
    assert 1.0 <= elapsed < 1.0 + SLACK
    assert cpu < 0.5 * elapsed, f"{cpu:.3f} s of CPU in a {elapsed:.3f} s wait: a busy loop"


# --- Several processes -------------------------------------------------------

def test_an_idle_waiter_sleeps(tmp_path, spawn, capsys):
    path = tmp_path / "idle.db"
    setup_db(path, SCHEMA).close()
    procs = [spawn(path, "waiter", "task_wait", "wait", 2000),
             spawn(path, "waiter", "long poll", "claim", 2000)]
    go(*procs)
    results = {name: summary(p) for name, p in zip(("task_wait", "long poll"), procs)}
    with capsys.disabled():
        print("\n  idle 2 s: " + ", ".join(f"{n} {r['cpu'] / r['elapsed'] * 1000:.1f} ms CPU/s"
                                           for n, r in results.items()))
    assert [r["got"] for r in results.values()] == [0, None]
    for name, r in results.items():
        assert 2.0 <= r["elapsed"] < 2.0 + SLACK, name
        assert r["cpu"] < 0.5 * r["elapsed"], (name, r)


def test_four_long_polling_workers_claim_every_burst_once(tmp_path, spawn, capsys):
    path = tmp_path / "bursts.db"
    db = setup_db(path, SCHEMA)
    n, size = 6, 50
    workers = [spawn(path, "worker", f"w{i}", 2000) for i in range(4)]
    prod = spawn(path, "bursts", "p", n, size, 300)
    go(*workers, prod)
    results = {f"w{i}": summary(p) for i, p in enumerate(workers)}
    made = summary(prod)["made"]
    with capsys.disabled():
        print("\n  4 long-polling workers, 6 bursts of 50: " + ", ".join(
            f"{name} {len(r['claimed'])} tasks {r['cpu'] / r['wall'] * 1000:.0f} ms CPU/s"
            for name, r in results.items()))

    assert {n: r["errors"] for n, r in results.items()} == {n: [] for n in results}
    made_ids = {i for (i,) in rows(db, "SELECT id FROM made")}
    assert made == len(made_ids) == n * size
    claims = Counter(i for r in results.values() for i in r["claimed"])
    assert [i for i, c in claims.items() if c > 1] == [], "a task claimed twice"
    assert set(claims) == made_ids, "a task lost"
    completes = Counter(i for (i,) in rows(db, "SELECT task FROM log WHERE kind = 'complete'"))
    assert set(completes.values()) == {1} and set(completes) == made_ids
    assert rows(db, "SELECT status, attempts, count(*) FROM task_store GROUP BY 1, 2") == \
        [("completed", 1, n * size)]
    for name, r in results.items():
        assert r["cpu"] < 0.5 * r["wall"], (name, r["cpu"], r["wall"])
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def test_a_waiter_killed_in_its_wait_leaves_nothing_behind(tmp_path, spawn):
    path = tmp_path / "kill.db"
    db = setup_db(path, SCHEMA)
    for _ in range(20):
        enqueue(db, queue="elsewhere")
    procs = [spawn(path, "waiter", "k1", "wait", 30000),
             spawn(path, "waiter", "k2", "claim", 30000, "empty")]
    go(*procs)
    for p in procs:
        waiting(p)
    time.sleep(0.3)
    for p in procs:
        assert p.poll() is None, "the waiter should still be waiting"
        p.kill()  # SIGKILL
        assert p.wait(timeout=10) == -9
    db.setbusytimeout(0)
    db.execute("BEGIN IMMEDIATE")
    enqueue(db, queue="elsewhere")
    db.execute("COMMIT")
    assert checkpoint_truncate(db) == (0, 0, 0)
    assert one(db, "PRAGMA integrity_check") == "ok"
    assert one(db, "SELECT task_check()") == "ok"
    assert one(db, "SELECT count(*) FROM task_store WHERE status = 'queued'") == 21
    db.close()


def test_a_checkpoint_truncates_the_wal_beside_two_waiters(tmp_path, spawn, capsys):
    path = tmp_path / "checkpoint.db"
    db = setup_db(path, SCHEMA)
    for _ in range(20):
        enqueue(db, queue="elsewhere")
    assert os.path.getsize(f"{path}-wal") > 0
    procs = [spawn(path, "waiter", f"c{i}", "wait", 10000) for i in range(2)]
    go(*procs)
    for p in procs:
        waiting(p)
    time.sleep(0.3)
    db.setbusytimeout(0)
    assert checkpoint_truncate(db) == (0, 0, 0), "a waiter kept the checkpoint from its end"
    assert os.path.getsize(f"{path}-wal") == 0
    time.sleep(0.3)
    # A write beside them, without a busy handler: they hold no lock.
    enqueue(db, queue="elsewhere")
    wrote = now_ms()
    results = [summary(p) for p in procs]
    for r in results:
        assert r["got"] == 1 and r["elapsed"] < 5, r
    early = sum(r["returned_ms"] < wrote for r in results)
    with capsys.disabled():
        print(f"\n  wal_checkpoint(TRUNCATE) beside 2 waiters: not busy; {early} of 2 woke at"
              " the checkpoint, before the next commit")
    db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], ROLES))
