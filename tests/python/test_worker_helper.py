"""The Python package's worker loop, sqlite_task.Worker (python/sqlite_task/
worker.py, docs/python.md), imported from this checkout's python/ and run on
the suite's apsw connections (test_package.py runs it through the installed
wheel and the other drivers).

What it must do: complete a task with its function's return value, fail it
with the text of the function's exception (retried while attempts remain),
pass the attempt to every call so that a task claimed again fences the old
function off, report progress and heartbeats, stop the function of a
cancelled task, commit the function's writes with the completion (or roll
them back), sleep in the long-poll claim when idle and wake for a commit,
and stop on SIGINT or SIGTERM: the first finishes the task in hand, a second
gives it back. The clock is supplied ({"now": ms}) wherever time matters; the
signals are real ones, sent to this process (os.kill) or to its main thread
(pthread_kill, so that the wait they end is the main thread's).
"""

import json
import os
import signal
import sys
import threading
import time

import pytest

from conftest import REPO, claim, connect, enqueue, one, rows, task

sys.path.insert(0, str(REPO / "python"))
from sqlite_task import Fail, Interrupted, Outcome, Task, TaskLost, Worker  # noqa: E402

START = 1_000_000


class Clock:
    """A supplied clock: ms since the epoch, moved by the test."""

    def __init__(self, ms=START):
        self.ms = ms

    def __call__(self):
        return self.ms


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def other(tmp_path, db):
    """A second connection on the `db` fixture's file: another process's view."""
    conn = connect(tmp_path / "task.db")
    yield conn
    conn.close()


def worker(db, handler, clock, **kw):
    return Worker(db, handler, **{"name": "w1", "wait_ms": 0, "now": clock, **kw})


def put(db, clock, kind="job", details=None, **options):
    return enqueue(db, kind, None if details is None else json.dumps(details), now=clock.ms, **options)


# --- completing and failing ----------------------------------------------------

def test_the_return_value_completes_the_task(db, clock):
    tid = put(db, clock, "resize", {"path": "a.png"}, queue="images", priority=2)
    seen = []

    def resize(t):
        seen.append(t)
        clock.ms += 500
        return {"out": t.details["path"] + ".webp"}

    outcome = worker(db, resize, clock).run_one()
    t = seen[0]
    assert isinstance(t, Task) and isinstance(outcome, Outcome)
    assert (t.id, t.type, t.queue, t.details, t.attempt, t.max_attempts, t.priority, t.parent_id,
            t.run_at, t.created_at, t.lease_until) == (
        tid, "resize", "images", {"path": "a.png"}, 1, 3, 2, None, START, START, START + 300_000)
    assert (outcome.task, outcome.status, outcome.result, outcome.error) == (t, "completed", {"out": "a.png.webp"}, None)
    row = task(db, tid)
    assert (row["status"], json.loads(row["result"]), row["worker"], row["attempts"], row["completed_at"]) == (
        "completed", {"out": "a.png.webp"}, "w1", 1, START + 500)


def test_none_completes_with_a_null_result(db, clock):
    tid = put(db, clock)
    assert worker(db, lambda t: None, clock).run_one().status == "completed"
    assert (task(db, tid)["status"], task(db, tid)["result"]) == ("completed", None)


def test_an_exception_fails_the_task_with_its_text_and_it_is_retried(db, clock):
    tid = put(db, clock, max_attempts=2)

    def broken(t):
        raise ValueError(f"bad input on attempt {t.attempt}")

    w = worker(db, broken, clock)
    first = w.run_one()
    assert (first.status, first.error) == ("queued", "ValueError: bad input on attempt 1")
    row = task(db, tid)
    assert (row["status"], row["error"], row["attempts"]) == ("queued", "ValueError: bad input on attempt 1", 1)
    assert START + 500 <= row["run_at"] <= START + 1000  # the backoff of attempt 1: 1 s × [0.5, 1]
    clock.ms = row["run_at"]
    last = w.run_one()
    assert (last.status, last.error) == ("failed", "ValueError: bad input on attempt 2")
    assert (task(db, tid)["status"], task(db, tid)["attempts"]) == ("failed", 2)


def test_fail_chooses_the_message_the_retry_and_the_delay(db, clock):
    final = put(db, clock, "a")
    later = put(db, clock, "b")

    def fn(t):
        if t.type == "a":
            raise Fail("no such image", retry=False)
        raise Fail("rate limited", delay_ms=5000)

    w = worker(db, fn, clock)
    assert (w.run_one().status, w.run_one().status) == ("failed", "queued")
    assert (task(db, final)["status"], task(db, final)["error"], task(db, final)["attempts"]) == (
        "failed", "no such image", 1)
    assert (task(db, later)["error"], task(db, later)["run_at"]) == ("rate limited", START + 5000)


def test_a_result_that_is_not_json_fails_the_task(db, clock):
    tid = put(db, clock)
    outcome = worker(db, lambda t: {1, 2}, clock).run_one()
    assert (outcome.status, outcome.error) == ("queued", "TypeError: Object of type set is not JSON serializable")
    assert task(db, tid)["error"] == outcome.error


def test_a_mapping_routes_each_type_to_its_function(db, clock):
    a, b, c = put(db, clock, "a"), put(db, clock, "b"), put(db, clock, "c")
    w = worker(db, {"a": lambda t: "A", "b": lambda t: "B"}, clock)
    assert [w.run_one().status for _ in range(3)] == ["completed", "completed", "failed"]
    assert (task(db, a)["result"], task(db, b)["result"]) == ('"A"', '"B"')
    assert (task(db, c)["status"], task(db, c)["attempts"], task(db, c)["error"]) == (
        "failed", 1, "worker w1 has no function for task type 'c' (it runs 'a', 'b')")


# --- progress, heartbeats, fencing, cancellation -------------------------------

def test_progress_and_heartbeats_reach_the_task(db, clock):
    tid = put(db, clock)
    seen = []

    def fn(t):
        t.progress(40)
        seen.append(rows(db, "SELECT progress, lease_until FROM tasks WHERE id = ?", t.id)[0])
        clock.ms += 300  # over a quarter of the 1 s lease: the next report renews it
        t.heartbeat()
        seen.append(rows(db, "SELECT progress, lease_until FROM tasks WHERE id = ?", t.id)[0])
        t.heartbeat(lease_ms=5000)  # renewed at once, to this length
        seen.append(rows(db, "SELECT progress, lease_until FROM tasks WHERE id = ?", t.id)[0])
        return "ok"

    assert worker(db, fn, clock, lease_ms=1000).run_one().status == "completed"
    assert seen == [(40, START + 1000), (40, START + 1300), (40, START + 5300)]
    assert one(db, "SELECT group_concat(kind, ',') FROM task_events WHERE task_id = ?", tid) == (
        "enqueued,claimed,progress,completed")


def test_progress_with_writeback_holds_reports_between_writes(db, clock, other):
    tid = put(db, clock)

    def fn(t):
        t.progress(10, writeback_ms=1000)  # the first report is written
        clock.ms += 10
        t.progress(20, writeback_ms=1000)  # held: another process sees 10
        return (one(other, "SELECT progress FROM task_store WHERE id = ?", t.id),
                one(db, "SELECT progress FROM tasks WHERE id = ?", t.id))

    assert worker(db, fn, clock).run_one().result == (10, 20)
    assert task(db, tid)["progress"] == 100


@pytest.mark.parametrize("verb", ["progress", "heartbeat"])
def test_a_task_claimed_again_fences_off_the_old_attempt(db, clock, other, verb):
    tid = put(db, clock)

    def slow(t):
        clock.ms += 2000  # the 1 s lease ran out; another worker takes the task over
        assert claim(other, "w2", now=clock.ms)["attempt"] == 2
        t.progress(50) if verb == "progress" else t.heartbeat(lease_ms=60_000)
        pytest.fail(f"{verb} on a stale attempt was accepted")

    outcome = worker(db, slow, clock, lease_ms=1000).run_one()
    assert outcome.status == "lost"
    assert outcome.error == (f"task_{verb}: attempt 1 of task {tid} is stale: the task is on attempt 2"
                             " (running, held by worker 'w2')")
    row = task(db, tid)
    assert (row["status"], row["worker"], row["attempts"], row["progress"], row["lease_until"], row["error"]) == (
        "running", "w2", 2, 0, clock.ms + 300_000, "lease expired on attempt 1 (worker w1)")


def test_a_function_that_returns_after_losing_its_task_completes_nothing(db, clock, other):
    tid = put(db, clock)
    db.execute("CREATE TABLE made (what TEXT)")

    def unaware(t):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO made VALUES ('thumbnail')")
        db.execute("COMMIT")  # its own transaction: kept
        clock.ms += 2000
        claim(other, "w2", now=clock.ms)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO made VALUES ('uncommitted')")  # left open: rolled back
        return "done"

    outcome = worker(db, unaware, clock, lease_ms=1000).run_one()
    assert (outcome.status, outcome.error) == (
        "lost", f"task_complete: attempt 1 of task {tid} is stale: the task is on attempt 2 (running, held by worker 'w2')")
    assert (task(db, tid)["status"], task(db, tid)["worker"], task(db, tid)["result"]) == ("running", "w2", None)
    assert rows(other, "SELECT what FROM made") == [("thumbnail",)]
    assert not db.in_transaction


def test_a_cancelled_task_stops_its_function_through_except_exception(db, clock, other):
    tid = put(db, clock)
    after = []

    def fn(t):
        one(other, "SELECT task_cancel(?)", t.id)
        try:
            t.progress(10)
        except Exception:  # TaskLost is not an Exception: this does not swallow it
            after.append("swallowed")
        after.append("went on")

    outcome = worker(db, fn, clock).run_one()
    assert (outcome.status, outcome.error) == ("cancelled", f"task_progress: task {tid} was cancelled")
    assert after == []
    assert (task(db, tid)["status"], task(db, tid)["error"]) == ("cancelled", None)
    assert issubclass(TaskLost, BaseException) and not issubclass(TaskLost, Exception)


def test_a_task_cancelled_while_its_function_runs_is_not_completed(db, clock, other):
    tid = put(db, clock)
    outcome = worker(db, lambda t: one(other, "SELECT task_cancel(?)", t.id), clock).run_one()
    assert (outcome.status, outcome.error) == ("cancelled", f"task_complete: task {tid} is cancelled, not running")
    assert task(db, tid)["status"] == "cancelled"


# --- the function's own writes -------------------------------------------------

def test_the_functions_writes_commit_with_the_completion_or_not_at_all(db, clock, other):
    db.execute("CREATE TABLE made (what TEXT)")
    good, bad = put(db, clock, "good"), put(db, clock, "bad")
    seen = []

    def fn(t):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO made VALUES (?)", (t.type,))
        seen.append(rows(other, "SELECT count(*) FROM made")[0][0])  # not committed yet
        if t.type == "bad":
            raise RuntimeError("disk full")
        return "made"

    w = worker(db, fn, clock)
    assert (w.run_one().status, w.run_one().status) == ("completed", "queued")
    assert seen == [0, 1]
    assert rows(other, "SELECT what FROM made") == [("good",)]
    assert (one(other, "SELECT status FROM task_store WHERE id = ?", good),
            one(other, "SELECT error FROM task_store WHERE id = ?", bad)) == ("completed", "RuntimeError: disk full")
    assert not db.in_transaction


# --- the loop ------------------------------------------------------------------

def test_run_stops_after_max_tasks_or_when_idle(db, clock):
    ids = [put(db, clock) for _ in range(3)]
    w = worker(db, lambda t: t.id, clock, wait_ms=1)
    assert w.run(max_tasks=2) == 2
    assert [task(db, i)["status"] for i in ids] == ["completed", "completed", "queued"]
    assert w.run(stop_when_idle=True) == 1
    assert w.run(stop_when_idle=True) == 0
    assert w.run_one() is None


def test_stop_from_the_function_ends_the_loop_after_its_task(db, clock):
    first, second = put(db, clock), put(db, clock)
    w = worker(db, lambda t: w.stop(), clock, wait_ms=1000)
    assert w.run() == 1
    assert (task(db, first)["status"], task(db, second)["status"]) == ("completed", "queued")


def test_bad_arguments_are_refused_with_what_is_wrong(db, clock):
    with pytest.raises(TypeError, match="^Worker: handler must be a function of a Task or a mapping from task type to one, got int$"):
        Worker(db, 42)
    for bad in (-1, 3_600_001, 1.5, True, "10"):
        with pytest.raises(ValueError, match=f"^Worker: wait_ms must be an integer from 0 to 3600000, got {bad!r}$"):
            Worker(db, print, wait_ms=bad)
    with pytest.raises(ValueError, match="^Worker.run: wait_ms=0 with nothing to stop an idle worker"):
        Worker(db, print, wait_ms=0).run()


def in_poll(native_id, deadline=10.0):
    """Waits until the thread sleeps in poll(2) (its kernel wait channel),
    i.e. in the extension's wait; fails after `deadline` s."""
    path = f"/proc/self/task/{native_id}/wchan"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with open(path) as f:
            if "poll" in f.read():
                return
        time.sleep(0.005)
    pytest.fail(f"thread {native_id} never slept in poll(2)")


def test_an_idle_worker_sleeps_in_the_long_poll_until_a_commit(tmp_path, db):
    # The worker thread's own connection; one claim with an hour's wait.
    conn = connect(tmp_path / "task.db")
    claims = []
    conn.exec_trace = lambda cursor, sql, bindings: claims.append((sql, bindings)) or True
    w = Worker(conn, lambda t: "woken", name="idle", wait_ms=3_600_000)
    ran, native = [], []

    def go():
        native.append(threading.get_native_id())
        ran.append(w.run(max_tasks=1))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    while not native:
        time.sleep(0.001)
    in_poll(native[0])
    tid = enqueue(db, "job")
    thread.join(30)  # the wait is an hour: done by now only if the commit woke it
    assert not thread.is_alive(), "the long poll did not wake for the commit"
    assert ran == [1] and task(db, tid)["result"] == '"woken"'
    assert [json.loads(b[1]) for sql, b in claims if "task_claim" in sql] == [{"wait": 3_600_000}]
    conn.close()


# --- signals -------------------------------------------------------------------

def test_the_first_signal_finishes_the_task_in_hand_then_stops(db, clock):
    first, second = put(db, clock), put(db, clock)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen = []

    def fn(t):
        seen.append(t.stopping)
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append(t.stopping)
        return "finished"

    w = worker(db, fn, clock, wait_ms=1000)
    assert w.run() == 1
    assert seen == [False, True]
    assert (task(db, first)["status"], task(db, first)["result"]) == ("completed", '"finished"')
    assert (task(db, second)["status"], task(db, second)["attempts"]) == ("queued", 0)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert not w.stopping  # it can run again


def test_a_second_signal_gives_the_task_back(db, clock):
    tid = put(db, clock)
    last = put(db, clock, max_attempts=1)
    reached = []

    def fn(t):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append(t.id)  # Interrupted is raised before this line

    w = worker(db, fn, clock, wait_ms=1000)
    clock.ms += 100
    assert w.run() == 1
    assert reached == []
    row = task(db, tid)
    assert (row["status"], row["attempts"], row["worker"], row["run_at"], row["error"]) == (
        "queued", 1, None, START + 100, "interrupted: worker w1 stopped by SIGTERM during attempt 1")
    # On its last attempt, given back means failed, with the same reason.
    assert w.run() == 1
    assert (task(db, last)["status"], task(db, last)["error"]) == (
        "failed", "interrupted: worker w1 stopped by SIGTERM during attempt 1")
    assert issubclass(Interrupted, BaseException) and not issubclass(Interrupted, Exception)


def test_a_signal_stops_an_idle_worker(db, clock):
    main = threading.main_thread()

    def interrupt():
        in_poll(main.native_id)
        signal.pthread_kill(main.ident, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    assert worker(db, print, clock, wait_ms=1000).run() == 0


def test_keyboard_interrupt_without_the_handlers_gives_the_task_back_and_goes_on_up(db, clock):
    tid = put(db, clock)

    def fn(t):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        worker(db, fn, clock, handle_signals=False).run_one()
    assert (task(db, tid)["status"], task(db, tid)["error"]) == (
        "queued", "interrupted: worker w1 stopped by KeyboardInterrupt during attempt 1")
