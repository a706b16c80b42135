"""Fixtures and helpers shared by the Python suite.

The extension is loaded from $TASK_EXT (the Makefile passes dist/task0 of the
build under test); without it, from this checkout's dist/task0. Each test gets
a fresh WAL database file in its own tmp_path, so tests never share state.

Helpers are plain functions (import them with `from conftest import ...`):
`one` runs a statement that returns one value, `fails` runs a statement that
must fail and proves it changed nothing.
"""

import json
import os
from pathlib import Path

import apsw
import pytest

REPO = Path(__file__).resolve().parents[2]
EXT = os.environ.get("TASK_EXT") or str(REPO / "dist" / "task0")

# Ids the tests supply, so that expected messages can name them.
ID1 = "0193a000-0000-7000-8000-000000000001"
ID2 = "0193a000-0000-7000-8000-000000000002"
ID3 = "0193a000-0000-7000-8000-000000000003"
UNKNOWN = "0193a000-0000-7000-8000-0000000000ff"


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
    assert one(db, "SELECT task_init()") == 6
    yield db
    db.close()


def rows(db, sql, *args):
    return db.execute(sql, args).fetchall()


def one(db, sql, *args):
    """The single value a statement returns."""
    result = rows(db, sql, *args)
    assert len(result) == 1 and len(result[0]) == 1, result
    return result[0][0]


def snapshot(db):
    """Everything the queue stores, its event log included (or the schema,
    before task_init)."""
    if one(db, "SELECT count(*) FROM sqlite_master WHERE name = 'task_store'"):
        tasks = rows(db, "SELECT * FROM task_store ORDER BY seq")
        if one(db, "SELECT count(*) FROM sqlite_master WHERE name = 'task_event_store'"):
            tasks.append(("events", rows(db, "SELECT * FROM task_event_store ORDER BY seq")))
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
