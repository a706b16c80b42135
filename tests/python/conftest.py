"""Fixtures and helpers shared by the Python suite.

The extension is loaded from $TASK_EXT (the Makefile passes dist/task0 of the
build under test); without it, from this checkout's dist/task0. Each test gets
a fresh WAL database file in its own tmp_path, so tests never share state.

Helpers are plain functions (import them with `from conftest import ...`):
`one` runs a statement that returns one value, `fails` runs a statement that
must fail and proves it changed nothing.

The Python package's tests (test_package.py, test_worker_examples.py) use the
wheel that `make python` built, installed by the session's `wheel_venv` into
a new virtual environment with the three drivers it supports.
"""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import apsw
import pytest

REPO = Path(__file__).resolve().parents[2]
EXT = os.environ.get("TASK_EXT") or str(REPO / "dist" / "task0")
WHEELS = REPO / "dist" / "wheels"
# The drivers the package loads into, as pip names them.
DRIVERS = ("apsw", "sqlean.py", "pysqlite3-binary")

# Ids the tests supply, so that expected messages can name them.
ID1 = "0193a000-0000-7000-8000-000000000001"
ID2 = "0193a000-0000-7000-8000-000000000002"
ID3 = "0193a000-0000-7000-8000-000000000003"
UNKNOWN = "0193a000-0000-7000-8000-0000000000ff"



def read_lines(stream):
    """A queue that a thread of ours fills with `stream`'s lines (without
    their newline), then None at its end; and that thread."""
    lines = queue.Queue()

    def read():
        with stream:
            for line in stream:
                lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader

def connect(path, load=True):
    """A connection on `path` in WAL mode, with the extension loaded."""
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    if load:
        db.enable_load_extension(True)
        db.load_extension(EXT)
    return db


@pytest.fixture
def raw_db(tmp_path):
    """The extension loaded, task_init() not run."""
    db = connect(tmp_path / "raw.db")
    yield db
    db.close()


@pytest.fixture
def db(tmp_path):
    """The extension loaded and the storage created."""
    db = connect(tmp_path / "task.db")
    assert one(db, "SELECT task_init()") == 9
    yield db
    db.close()


def rows(db, sql, *args):
    return db.execute(sql, args).fetchall()


def one(db, sql, *args):
    """The single value a statement returns."""
    result = rows(db, sql, *args)
    assert len(result) == 1 and len(result[0]) == 1, result
    return result[0][0]


def vm_steps(db, sql, *args):
    """The result of `sql` and how many hundreds of VM instructions it took on
    `db`, the statements the extension runs inside it included (the progress
    handler is the connection's)."""
    steps = [0]

    def count():
        steps[0] += 1
        return 0

    db.setprogresshandler(count, 100)
    try:
        out = one(db, sql, *args)
    finally:
        db.setprogresshandler(None)
    return out, steps[0]


def snapshot(db):
    """Everything the queue stores: tasks, dependencies, parents' counts and
    the event log (or the schema, before task_init)."""
    if one(db, "SELECT count(*) FROM sqlite_master WHERE name = 'task_store'"):
        tasks = rows(db, "SELECT * FROM task_store ORDER BY seq")
        for table, key in (("task_deps", "dep, task"), ("task_parent_store", "seq"), ("task_event_store", "seq")):
            if one(db, "SELECT count(*) FROM sqlite_master WHERE name = ?", table):
                tasks.append((table, rows(db, f"SELECT * FROM {table} ORDER BY {key}")))
        return tasks
    return rows(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name")


def fails(db, sql, *args, match, exc=apsw.SQLError):
    """Runs `sql`, which must raise `exc` with `match` in its message and leave
    the storage as it was. Returns the message."""
    before = snapshot(db)
    with pytest.raises(exc) as err:
        rows(db, sql, *args)
    message = str(err.value)
    assert match in message, message
    assert snapshot(db) == before, f"a failing call changed the storage: {sql}"
    return message


def opts(**kw):
    return json.dumps(kw)


def enqueue(db, kind="job", details=None, **options):
    return one(db, "SELECT task_enqueue(?, ?, ?)", kind, details, opts(**options))


def claim(db, worker="w1", **options):
    """The claimed task as a dict, or None."""
    text = one(db, "SELECT task_claim(?, ?)", worker, opts(**options))
    return None if text is None else json.loads(text)


# The visible columns of the tasks table, in declaration order.
COLUMNS = [
    "id", "queue", "type", "status", "priority", "progress", "details", "result",
    "error", "attempts", "max_attempts", "parent_id", "worker", "lease_until",
    "run_at", "created_at", "updated_at", "started_at", "completed_at", "unique_key",
    "depends_on", "children", "children_done",
]


def task(db, task_id):
    """One row of the tasks table, as a dict."""
    found = rows(db, f"SELECT {', '.join(COLUMNS)} FROM tasks WHERE id = ?", task_id)
    assert len(found) == 1, found
    return dict(zip(COLUMNS, found[0]))


# The Python package, installed as a user installs it.

def the_wheel():
    """The one wheel that `make python` left in dist/wheels."""
    found = sorted(WHEELS.glob("sqlite_task-*.whl"))
    assert len(found) == 1, f"expected one wheel in {WHEELS}, found {[p.name for p in found]}: run `make python`"
    return found[0]


class Venv:
    """A virtual environment; `run` starts its python with a clean environment
    (no PYTHONPATH, no TASK_EXT), in `cwd`, so that what it imports is what
    pip installed."""

    def __init__(self, root):
        self.root = root
        self.python = root / "bin" / "python"

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TASK_EXT", "VIRTUAL_ENV")}
        return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}

    def run(self, *args, cwd, input=None, timeout=60):
        return subprocess.run([str(self.python), *map(str, args)], cwd=cwd, env=self.env(),
                              input=input, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """A new virtual environment (python -m venv) with the wheel and apsw,
    sqlean.py and pysqlite3-binary installed by pip, once per session (pip's
    cache makes the drivers' downloads cheap after the first run)."""
    wheel = the_wheel()
    root = tmp_path_factory.mktemp("wheel-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    venv = Venv(root)
    done = subprocess.run([str(venv.python), "-m", "pip", "install", "--quiet", str(wheel), *DRIVERS],
                          capture_output=True, text=True, env=venv.env())
    assert done.returncode == 0, f"pip install of {wheel.name} and {DRIVERS} failed:\n{done.stderr}"
    return venv
