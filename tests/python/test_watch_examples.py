"""examples/python/watch.py (examples/README.md), run as a process as a user
runs it, on a WAL file that this test changes through its own connection.

It must print every event after its cursor, in seq order, as each is
committed: the watcher waits with an hour's --timeout-ms, so a line that
comes within DEADLINE came from a wake, not from a timeout. What it prints
is compared with task_events itself. "Nothing more" is proven with a later
event that must be the next line, never with a pause. Over IDLE seconds an
idle watcher must use under CPU_MS of CPU time (user + system) and wake
(leave the CPU, every thread counted) at most WAKES times, both read from
/proc: task_wait's own look once a second makes 2 wakes, a loop polling
every 100 ms makes 20 (the bounds prove that nothing polls, not a cost).
tests/node/watch.test.js checks examples/node/watch.js the same way, with
the same expected lines.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

from conftest import EXT, ID1, ID2, REPO, claim, connect, enqueue, one, opts, read_lines, rows

WATCH = REPO / "examples" / "python" / "watch.py"
HOUR_MS = "3600000"
DEADLINE = 10.0  # s: the most a line may take to come
IDLE = 2.0       # s: the window of the idle measurements
CPU_MS = 20      # the CPU an idle watcher may use in it (measured: 0)
WAKES = 10       # the times it may wake in it (measured: 2)
COLUMNS = ["seq", "task_id", "queue", "type", "kind", "status", "at", "attempt", "worker",
           "error", "progress"]


class Watcher:
    """watch.py DB ARGS as a process; its stdout read by a thread of ours."""

    def __init__(self, path, *args):
        env = {**os.environ, "TASK_EXT": EXT, "TZ": "UTC"}
        env.pop("PYTHONUNBUFFERED", None)  # the script flushes each line itself
        self.proc = subprocess.Popen([sys.executable, str(WATCH), str(path), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines, self.reader = read_lines(self.proc.stdout)  # None: end of output

    def take(self, n):
        """The next n lines, each within DEADLINE."""
        got = []
        for _ in range(n):
            try:
                line = self.lines.get(timeout=DEADLINE)
            except queue.Empty:
                pytest.fail(f"no line within {DEADLINE} s after {got}")
            if line is None:
                self.proc.wait()
                pytest.fail(f"the watcher ended ({self.proc.returncode}) after {got}: "
                            f"{self.proc.stderr.read()}")
            got.append(line)
        return got

    def events(self, n):
        return [json.loads(line) for line in self.take(n)]

    def cpu_ms(self):
        """User + system CPU time of the process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command's name
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def wakes(self):
        """Context switches of all its threads so far."""
        total = 0
        for status in Path(f"/proc/{self.proc.pid}/task").glob("*/status"):
            total += sum(int(line.split()[1]) for line in status.read_text().splitlines()
                         if "ctxt_switches:" in line)
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join()
        self.proc.stderr.close()


@pytest.fixture
def watch():
    """watch(path, *args): starts a watcher, stopped at the end of the test."""
    started = []

    def start(path, *args):
        started.append(Watcher(path, *args))
        return started[-1]

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "task.db"  # the `db` fixture's file


def events(db, where="1", *args):
    """task_events as the watcher prints them."""
    return [dict(zip(COLUMNS, r)) for r in
            rows(db, f"SELECT {', '.join(COLUMNS)} FROM task_events WHERE {where} ORDER BY seq", *args)]


def story(printed, task_id):
    return [(e["kind"], e["status"]) for e in printed if e["task_id"] == task_id]


def test_each_change_is_printed_as_it_is_committed(db, path, watch):
    w = watch(path, "--json", "--timeout-ms", HOUR_MS)
    printed = []
    a = enqueue(db, "resize", '{"path":"a.png"}')
    printed += w.events(1)
    b = enqueue(db, "email", None, max_attempts=1)
    printed += w.events(1)
    assert claim(db, "w1")["id"] == a
    printed += w.events(1)
    assert one(db, "SELECT task_progress(?, 40)", a) == "running"
    printed += w.events(1)
    assert one(db, "SELECT task_complete(?, '{}')", a) == "completed"
    printed += w.events(1)
    assert claim(db, "w2")["id"] == b
    printed += w.events(1)
    assert one(db, "SELECT task_fail(?, 'boom')", b) == "failed"
    printed += w.events(1)

    assert printed == events(db)
    seqs = [e["seq"] for e in printed]
    assert seqs == sorted(set(seqs)), seqs
    assert story(printed, a) == [("enqueued", "queued"), ("claimed", "running"),
                                 ("progress", "running"), ("completed", "completed")]
    assert story(printed, b) == [("enqueued", "queued"), ("claimed", "running"), ("failed", "failed")]
    progress, = (e for e in printed if e["kind"] == "progress")
    assert (progress["progress"], progress["worker"], progress["attempt"]) == (40, "w1", 1)
    failed, = (e for e in printed if e["kind"] == "failed")
    assert (failed["error"], failed["worker"]) == ("boom", "w2")


def test_after_prints_only_the_later_events(db, path, watch):
    enqueue(db, id=ID1)
    enqueue(db, id=ID2)
    claim(db)
    mid = events(db)[1]["seq"]
    w = watch(path, "--json", "--after", str(mid), "--timeout-ms", HOUR_MS)
    printed = w.events(1)
    assert [(e["task_id"], e["kind"]) for e in printed] == [(ID1, "claimed")]
    later = enqueue(db)
    printed += w.events(1)
    assert printed[-1]["task_id"] == later
    assert printed == events(db, "seq > ?", mid)


def test_queue_prints_only_that_queue_s_events(db, path, watch):
    w = watch(path, "--json", "--queue", "images", "--timeout-ms", HOUR_MS)
    other = enqueue(db, "report")
    image = enqueue(db, "resize", queue="images")
    printed = w.events(1)
    claim(db, queue="default")
    one(db, "SELECT task_complete(?, '{}')", other)
    one(db, "SELECT task_cancel(?)", image)
    printed += w.events(1)
    assert story(printed, image) == [("enqueued", "queued"), ("cancelled", "cancelled")]
    assert printed == events(db, "queue = 'images'")


class Stop(Exception):
    pass


def test_a_commit_between_the_read_and_the_wait_is_not_missed(db, path):
    """watch() itself, in this process: on_event runs between the read and
    task_wait, so an event committed from on_event is one that a wait for
    the next commit (task_wait without after_seq) would sleep through."""
    sys.path.insert(0, str(WATCH.parent))
    try:
        from watch import watch as watch_loop
    finally:
        sys.path.pop(0)
    other = connect(path)
    first = enqueue(db)
    marker, committed, seen = [], [], []

    def on_event(e):
        seen.append(e["task_id"])
        if e["task_id"] == first:
            marker.append(enqueue(other))
            committed.append(time.monotonic())
        elif marker and e["task_id"] == marker[0]:
            raise Stop

    with pytest.raises(Stop):
        watch_loop(db, timeout_ms=20_000, on_event=on_event)
    assert time.monotonic() - committed[0] < DEADLINE / 2, "waited for the timeout"
    assert seen == [first, marker[0]]
    other.close()


@pytest.mark.parametrize("args", [[], ["--queue", "images"]], ids=["every queue", "one queue"])
def test_an_idle_watcher_sleeps_past_the_events_it_does_not_show(db, path, watch, args):
    # The newest events are of another queue, and of a task deleted since,
    # which task_events no longer shows: a cursor left behind them would
    # make task_wait return at once, again and again.
    image = enqueue(db, "resize", queue="images")
    enqueue(db, "report")
    gone = enqueue(db, "report")
    one(db, "SELECT task_cancel(?)", gone)
    db.execute("DELETE FROM tasks WHERE id = ?", (gone,))
    w = watch(path, "--json", *args)
    printed = w.events(1 if args else 2)
    assert printed[0]["task_id"] == image
    cpu, wakes = w.cpu_ms(), w.wakes()
    time.sleep(IDLE)
    cpu, wakes = w.cpu_ms() - cpu, w.wakes() - wakes
    assert w.proc.poll() is None, w.proc.stderr.read()
    assert cpu < CPU_MS and wakes <= WAKES, f"{cpu} ms of CPU and {wakes} wakes in {IDLE} s idle"
    # And it still wakes for the next event.
    later = enqueue(db, "resize", queue="images")
    assert w.events(1)[0]["task_id"] == later


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_it_at_once_in_its_wait(db, path, watch, sig):
    enqueue(db)
    w = watch(path, "--json", "--timeout-ms", HOUR_MS)
    w.take(1)
    w.proc.send_signal(sig)
    started = time.monotonic()
    assert w.proc.wait(timeout=DEADLINE) == -sig  # ended by the signal, as `tail -f` is
    assert time.monotonic() - started < 2
    assert w.proc.stderr.read() == ""


# The same lines are expected of examples/node/watch.js (tests/node/watch.test.js).
LINES = [
    f"seq=1 00:00:01.000 enqueued  default/resize {ID1} status=queued attempt=0",
    f"seq=2 00:00:02.000 claimed   default/resize {ID1} status=running attempt=1 worker=w1",
    f"seq=3 00:00:02.500 progress  default/resize {ID1} status=running attempt=1 worker=w1 progress=40.5",
    f'seq=4 00:00:03.000 failed    default/resize {ID1} status=queued attempt=1 worker=w1 error="disk \\"full\\" é"',
]


def test_the_line_printed_without_json(db, path, watch):
    enqueue(db, "resize", id=ID1, now=1000)
    claim(db, "w1", now=2000)
    one(db, "SELECT task_progress(?, 40.5, ?)", ID1, opts(now=2500))
    one(db, "SELECT task_fail(?, ?, ?)", ID1, 'disk "full" é', opts(now=3000))
    w = watch(path)  # TZ=UTC
    assert w.take(4) == LINES


def test_a_new_file_is_created_and_initialized(tmp_path, watch):
    path = tmp_path / "new.db"
    w = watch(path, "--json", "--timeout-ms", HOUR_MS)
    # This connection may create the file and the storage first, or the
    # watcher may: the busy timeout lets each wait for the other's writes.
    db = apsw.Connection(str(path))
    db.execute("PRAGMA busy_timeout = 10000")
    db.enable_load_extension(True)
    db.load_extension(EXT)
    assert one(db, "SELECT task_init()") == 9
    task_id = enqueue(db)
    assert w.events(1)[0]["task_id"] == task_id
    db.close()
    fresh = apsw.Connection(str(path))  # reads the mode from the file's header
    assert one(fresh, "PRAGMA journal_mode") == "wal"
    fresh.close()


@pytest.mark.parametrize("args, message", [
    (["--timeout-ms=-1"], "watch.py: task_wait: timeout_ms must be between 0 and 3600000, got -1"),
    (["--after", "x"], "argument --after: invalid int value: 'x'"),
])
def test_bad_arguments_end_it_with_a_message(db, path, args, message):
    done = subprocess.run([sys.executable, str(WATCH), str(path), *args], capture_output=True,
                          text=True, env={**os.environ, "TASK_EXT": EXT}, timeout=DEADLINE)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_file_that_cannot_be_opened(tmp_path):
    done = subprocess.run([sys.executable, str(WATCH), str(tmp_path / "no" / "such.db")],
                          capture_output=True, text=True, env={**os.environ, "TASK_EXT": EXT},
                          timeout=DEADLINE)
    assert (done.returncode, done.stderr) == (1, "watch.py: unable to open database file\n")
