"""Closing: the extension keeps prepared statements per connection, and a
statement still alive makes sqlite3_close fail. apsw's Connection.close()
raises when that happens; in WAL mode a clean close of the last connection
also checkpoints and removes the -wal file, which is checked as well.
"""

import os

import pytest

from conftest import EXT, claim, connect, enqueue, one, opts, rows


def use_everything(db):
    """Calls every function and reads and writes the tasks table."""
    assert one(db, "SELECT task_init()") == 9
    one(db, "SELECT task_version()")
    one(db, "SELECT task_debug()")
    a = enqueue(db, "a", '{"n": 1}', now=0)
    assert claim(db, now=0)["id"] == a
    assert one(db, "SELECT task_progress(?, 5, ?)", a, opts(attempt=1)) == "running"
    assert one(db, "SELECT task_heartbeat(?, ?)", a, opts(attempt=1)) == "running"
    assert one(db, "SELECT task_fail(?, 'x', ?)", a, opts(delay=0, now=0)) == "queued"
    assert claim(db, now=0)["attempt"] == 2
    assert one(db, "SELECT task_complete(?, '{}')", a) == "completed"
    b = enqueue(db, "b", now=0)
    assert one(db, "SELECT task_cancel(?)", b) == "cancelled"
    assert one(db, "SELECT task_retry(?, ?)", b, opts(now=0)) == "queued"
    db.execute("INSERT INTO tasks(type, now) VALUES ('c', 0)")
    db.execute("UPDATE tasks SET priority = 3 WHERE status = 'queued'")
    assert len(rows(db, "SELECT * FROM tasks WHERE id = ?", a)) == 1
    rows(db, "SELECT * FROM tasks WHERE status = 'queued' AND queue = 'default'")
    db.execute("DELETE FROM tasks WHERE status = 'completed'")
    # Leave nothing running, so later cycles start from the same state.
    db.execute("UPDATE tasks SET status = 'cancelled' WHERE status IN ('queued', 'running')")
    db.execute("DELETE FROM tasks")


def close_cleanly(db, path):
    db.close()  # raises if the extension left a statement unfinalized
    assert not os.path.exists(f"{path}-wal"), "the WAL was not checkpointed: the close did not complete"


def test_close_after_using_everything(tmp_path):
    path = tmp_path / "a.db"
    db = connect(path)
    use_everything(db)
    close_cleanly(db, path)


def test_close_after_only_functions(tmp_path):
    path = tmp_path / "a.db"
    db = connect(path)
    one(db, "SELECT task_init()")
    enqueue(db, now=0)
    claim(db, now=0)
    close_cleanly(db, path)


def test_close_after_a_schema_change(tmp_path):
    path = tmp_path / "a.db"
    db = connect(path)
    use_everything(db)
    db.execute("CREATE TABLE other (x)")
    use_everything(db)
    db.execute("DROP TABLE other")
    close_cleanly(db, path)


def test_close_with_a_tasks_cursor_in_flight(tmp_path):
    path = tmp_path / "a.db"
    db = connect(path)
    one(db, "SELECT task_init()")
    for _ in range(3):
        enqueue(db)
    cursor = db.execute("SELECT * FROM tasks")
    next(cursor)
    close_cleanly(db, path)


@pytest.mark.parametrize("used_before", [False, True], ids=["fresh", "after use"])
def test_loading_twice_then_closing(tmp_path, used_before):
    path = tmp_path / "a.db"
    db = connect(path)
    if used_before:
        use_everything(db)
    db.load_extension(EXT)
    use_everything(db)
    close_cleanly(db, path)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_open_use_close_cycles_do_not_leak(tmp_path):
    path = tmp_path / "cycles.db"

    def cycle():
        db = connect(path)
        use_everything(db)
        close_cleanly(db, path)

    for _ in range(20):  # warm up allocator and caches
        cycle()
    before = resident_bytes()
    for _ in range(200):
        cycle()
    after = resident_bytes()
    growth = after - before
    print(f"RSS before {before / 2**20:.1f} MiB, after 200 cycles {after / 2**20:.1f} MiB, growth {growth / 2**10:.0f} KiB")
    assert growth < 20 * 2**20
