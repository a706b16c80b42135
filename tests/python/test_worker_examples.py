"""examples/python/worker.py and enqueue.py (examples/README.md), run as a
user runs them: real OS processes of the new virtual environment where pip
installed the wheel and apsw (conftest's `wheel_venv`), on one WAL file that
this test reads through its own connection.

A live queue: two workers drain what enqueue.py feeds them (checksums of
files whose digests the test knows, one of them missing), each task claimed
once. Signals: a SIGTERM while a task runs lets it finish (completed, with
the digest of what it read after the signal) and leaves the next task
queued, untouched; a second SIGTERM gives the task back (queued, its
attempt used up, its error saying why), and the next worker completes it:
never lost, never left running. A signal stops an idle worker.

No timing is asserted. A task is held "mid-task" by a named pipe: the
checksum function blocks opening it until the test writes, so the signal
surely comes while the task runs; each signal is sent once the worker
sleeps in that open(2) (/proc/PID/wchan), and each step waits for the
worker's log line that says it happened. The line waits have a deadline (DEADLINE) only
so that a broken worker fails the test instead of hanging it.
"""

import errno
import hashlib
import json
import os
import queue
import signal
import subprocess
import time

import pytest

from conftest import REPO, connect, one, read_lines, rows

WORKER = REPO / "examples" / "python" / "worker.py"
ENQUEUE = REPO / "examples" / "python" / "enqueue.py"
DEADLINE = 30.0  # s: the most a log line may take to come


class Worker:
    """worker.py DB --name NAME ARGS in the venv; its log read by a thread."""

    def __init__(self, venv, path, name, *args):
        self.name = name
        self.proc = subprocess.Popen([str(venv.python), str(WORKER), str(path), "--name", name, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=venv.env(), cwd=path.parent)
        self.lines, self.reader = read_lines(self.proc.stdout)
        self.log = []

    def expect(self, text):
        """The next log line that contains `text` (earlier ones are kept in .log)."""
        end = time.monotonic() + DEADLINE
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{self.name}: no line with {text!r} within {DEADLINE} s; its log:\n" + "\n".join(self.log))
            if line is None:
                pytest.fail(f"{self.name} ended ({self.proc.wait()}) before a line with {text!r}; its log:\n"
                            + "\n".join(self.log))
            self.log.append(line)
            if text in line:
                return line

    def signal(self, signum):
        self.proc.send_signal(signum)

    def exit_code(self):
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {DEADLINE} s; its log:\n" + "\n".join(self.log))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join()


@pytest.fixture
def workers(wheel_venv):
    """start(path, name, *args): a worker.py process, killed at the end of the test if still running."""
    started = []

    def start(path, name, *args):
        started.append(Worker(wheel_venv, path, name, *args))
        return started[-1]

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def enqueue(wheel_venv, tmp_path):
    """enqueue(path, *args, input=None): enqueue.py's ids, its exit code and its stderr."""
    def run(path, *args, input=None):
        done = wheel_venv.run(ENQUEUE, path, *args, cwd=tmp_path, input=input)
        return done.stdout.split(), done.returncode, done.stderr
    return run


@pytest.fixture
def path(tmp_path):
    return tmp_path / "queue.db"


def fresh(path):
    """The test's connection: task_init() run, as the examples would."""
    db = connect(path)
    one(db, "SELECT task_init()")
    return db


def feed(fifo, data):
    """Writes `data` into the named pipe once the worker has opened it to read, then closes it."""
    end = time.monotonic() + DEADLINE
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:  # ENXIO: no reader yet
            if e.errno != errno.ENXIO or time.monotonic() > end:
                raise
            time.sleep(0.01)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def sleeping_in(pid, where):
    """Waits until the process's main thread sleeps in the kernel function
    `where` (its wait channel): a signal then interrupts that system call,
    so the process's handler runs at once. Sent a moment earlier, between
    the interpreter's last look for signals and the call, the signal would
    be handled only after the call returns (a pipe open with no writer:
    never)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        with open(f"/proc/{pid}/wchan") as f:
            if where in f.read():
                return
        time.sleep(0.005)
    pytest.fail(f"process {pid} never slept in {where}")


def in_fifo_open(w):
    sleeping_in(w.proc.pid, "wait_for_partner")  # open(2) of a named pipe that has no writer yet


def digest(data):
    return {"algorithm": "sha256", "digest": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def running(db):
    return rows(db, "SELECT id, worker FROM tasks WHERE status = 'running'")


def test_two_workers_drain_a_queue_that_enqueue_feeds(tmp_path, path, workers, enqueue):
    db = fresh(path)
    contents = {f"f{n}.bin": os.urandom(n * 1000 + 1) for n in range(10)}
    contents["big.bin"] = os.urandom(3 << 20)  # three 1 MiB chunks: progress reports
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    pool = [workers(path, "w1"), workers(path, "w2")]
    for w in pool:
        w.expect("waiting for tasks")

    names = sorted(contents)
    ids, code, err = enqueue(path, "checksum", *[json.dumps({"path": str(tmp_path / n)}) for n in names[:-2]])
    assert (code, err, len(ids)) == (0, "", len(names) - 2)
    more, code, err = enqueue(path, "checksum", "-",
                              input="".join(json.dumps({"path": str(tmp_path / n)}) + "\n" for n in names[-2:]))
    assert (code, err, len(more)) == (0, "", 2)
    missing = tmp_path / "missing.bin"
    [lost], code, _ = enqueue(path, "checksum", json.dumps({"path": str(missing)}), "--max-attempts", "1")
    assert code == 0

    end = time.monotonic() + 60
    while one(db, "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')"):
        assert time.monotonic() < end, rows(db, "SELECT id, status FROM tasks")
        one(db, "SELECT task_wait(1000)")  # wakes at the workers' next commit
    by_id = dict(zip(ids + more, names))
    for tid, name in by_id.items():
        status, result, worker = rows(db, "SELECT status, result, worker FROM tasks WHERE id = ?", tid)[0]
        assert (status, json.loads(result)) == ("completed", digest(contents[name])), name
        assert worker in ("w1", "w2")
    assert rows(db, "SELECT status, attempts, error FROM tasks WHERE id = ?", lost) == [
        ("failed", 1, f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}'")]
    claims = rows(db, "SELECT task_id, count(*) FROM task_events WHERE kind = 'claimed' GROUP BY task_id")
    assert sorted(claims) == sorted((tid, 1) for tid in [*by_id, lost])
    big = [tid for tid, name in by_id.items() if name == "big.bin"][0]
    assert one(db, "SELECT count(*) FROM task_events WHERE task_id = ? AND kind = 'progress'", big) >= 1

    for w in pool:
        w.signal(signal.SIGTERM)
    for w in pool:
        w.expect("stopped (SIGTERM)")
        assert w.exit_code() == 0
    db.close()


def test_a_sigterm_mid_task_lets_the_task_finish(tmp_path, path, workers, enqueue):
    db = fresh(path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "next.bin").write_bytes(b"next")
    [held], _, _ = enqueue(path, "checksum", json.dumps({"path": str(fifo)}), "--priority", "1")
    [after], _, _ = enqueue(path, "checksum", json.dumps({"path": str(tmp_path / "next.bin")}))

    w = workers(path, "w1")
    w.expect(f"claimed task {held}")
    in_fifo_open(w)
    w.signal(signal.SIGTERM)
    w.expect(f"SIGTERM: stopping after task {held}")
    data = os.urandom(100_000)
    feed(fifo, data)  # the task reads all of it after the signal
    w.expect(f"task {held} completed")
    w.expect("stopped (SIGTERM) after 1 task")
    assert w.exit_code() == 0

    assert rows(db, "SELECT status, attempts FROM tasks WHERE id = ?", held) == [("completed", 1)]
    assert json.loads(one(db, "SELECT result FROM tasks WHERE id = ?", held)) == digest(data)
    assert rows(db, "SELECT status, attempts, worker FROM tasks WHERE id = ?", after) == [("queued", 0, None)]
    assert running(db) == []
    db.close()


def test_a_second_sigterm_gives_the_task_back_and_the_next_worker_completes_it(tmp_path, path, workers, enqueue):
    db = fresh(path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    [tid], _, _ = enqueue(path, "checksum", json.dumps({"path": str(fifo)}))

    first = workers(path, "w1")
    first.expect(f"claimed task {tid} (checksum, attempt 1 of 3)")
    in_fifo_open(first)
    first.signal(signal.SIGTERM)
    first.expect(f"SIGTERM: stopping after task {tid}")
    in_fifo_open(first)  # back in its open(2), which the handler let it retry
    first.signal(signal.SIGTERM)
    first.expect(f"task {tid} given back (queued again)")
    first.expect("stopped (SIGTERM) after 1 task")
    assert first.exit_code() == 0
    assert rows(db, "SELECT status, attempts, worker, error FROM tasks WHERE id = ?", tid) == [
        ("queued", 1, None, "interrupted: worker w1 stopped by SIGTERM during attempt 1")]
    assert running(db) == []

    second = workers(path, "w2")
    second.expect(f"claimed task {tid} (checksum, attempt 2 of 3)")
    feed(fifo, b"at last")
    second.expect(f"task {tid} completed")
    assert rows(db, "SELECT status, attempts, worker FROM tasks WHERE id = ?", tid) == [("completed", 2, "w2")]
    assert json.loads(one(db, "SELECT result FROM tasks WHERE id = ?", tid)) == digest(b"at last")
    second.signal(signal.SIGINT)
    second.expect("stopped (SIGINT) after 1 task")
    assert second.exit_code() == 0
    db.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_an_idle_worker(path, workers, signum):
    fresh(path).close()
    w = workers(path, "w1")
    w.expect("waiting for tasks on every queue (long poll 1000 ms)")
    w.signal(signum)
    w.expect(f"{signum.name}: stopping")
    w.expect(f"stopped ({signum.name}) after 0 tasks")
    assert w.exit_code() == 0


def test_a_signal_ends_a_long_poll_at_once(path, workers):
    fresh(path).close()
    w = workers(path, "w1", "--wait-ms", "3600000")
    w.expect("waiting for tasks")
    sleeping_in(w.proc.pid, "poll")
    w.signal(signal.SIGINT)
    try:
        w.proc.wait(3)  # an hour's wait: over by now only if the signal ended it
    except subprocess.TimeoutExpired:
        pytest.fail("the worker was still in its long poll 3 s after SIGINT")


def test_enqueue_enqueues_all_or_nothing(tmp_path, path, enqueue):
    ids, code, err = enqueue(path, "checksum", '{"path": "a"}', "{bad")
    assert (ids, code) == ([], 2)
    assert "enqueue.py: error: DETAILS must be JSON: '{bad': Expecting property name enclosed in double quotes" in err
    ids, code, err = enqueue(path, "checksum", '{"path": "a"}', '{"path": "b"}', "--priority", str(1 << 40))
    assert (ids, code) == ([], 1)
    assert err.startswith("enqueue.py: task_enqueue: priority must be")
    db = fresh(path)
    assert one(db, "SELECT count(*) FROM tasks") == 0
    ids, code, err = enqueue(path, "ping")
    assert (code, err, rows(db, "SELECT type, details FROM tasks")) == (0, "", [("ping", None)])
    assert ids == [one(db, "SELECT id FROM tasks")]
    db.close()
