"""Queue control: the fair wait for the write lock (task_busy_timeout) and
the cheaper lease renewal of progress reports and heartbeats.

Waits are tested by holding the write lock on a second connection: what a
test asserts is what the handler decides (retry until the timeout, give up
after it, succeed once the lock is free), never how fast anything ran.
"""

import threading
import time

import apsw
import pytest
from conftest import ID1, connect, fails, one


def hold_write_lock(path):
    """A second connection holding the write lock until released."""
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_busy_timeout_returns_what_it_set(db):
    assert one(db, "SELECT task_busy_timeout(250)") == 250
    assert one(db, "SELECT task_busy_timeout(0)") == 0


def test_a_locked_database_fails_with_busy_after_the_fair_wait(db, tmp_path):
    other = hold_write_lock(tmp_path / "task.db")
    try:
        one(db, "SELECT task_busy_timeout(200)")
        t0 = time.monotonic()
        with pytest.raises(apsw.BusyError):
            db.execute("SELECT task_enqueue('job')").fetchall()
        waited = time.monotonic() - t0
        assert waited >= 0.2, f"gave up after {waited:.3f} s, before its timeout"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert one(db, "SELECT count(*) FROM tasks") == 0


def test_a_zero_timeout_fails_at_once(db, tmp_path):
    other = hold_write_lock(tmp_path / "task.db")
    try:
        one(db, "SELECT task_busy_timeout(0)")
        with pytest.raises(apsw.BusyError):
            db.execute("SELECT task_enqueue('job')").fetchall()
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_the_wait_ends_when_the_lock_is_released(db, tmp_path):
    other = hold_write_lock(tmp_path / "task.db")
    one(db, "SELECT task_busy_timeout(30000)")
    release = threading.Timer(0.1, lambda: other.execute("ROLLBACK"))
    release.start()
    try:
        assert one(db, "SELECT task_enqueue('job', NULL, json_object('id', ?))", ID1) == ID1
    finally:
        release.join()
        other.close()


def test_a_later_pragma_busy_timeout_replaces_the_fair_wait(db, tmp_path):
    one(db, "SELECT task_busy_timeout(30000)")
    db.execute("PRAGMA busy_timeout = 0")
    other = hold_write_lock(tmp_path / "task.db")
    try:
        t0 = time.monotonic()
        with pytest.raises(apsw.BusyError):
            db.execute("SELECT task_enqueue('job')").fetchall()
        assert time.monotonic() - t0 < 10, "still the 30 s fair wait"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_the_fair_wait_belongs_to_its_connection(db, tmp_path):
    one(db, "SELECT task_busy_timeout(30000)")
    second = connect(tmp_path / "task.db")
    other = hold_write_lock(tmp_path / "task.db")
    try:
        with pytest.raises(apsw.BusyError):
            second.execute("SELECT task_enqueue('job')").fetchall()
    finally:
        other.execute("ROLLBACK")
        other.close()
        second.close()


@pytest.mark.parametrize(
    "arg, message",
    [
        ("'x'", "ms must be an integer, got text"),
        ("NULL", "ms must be an integer, got NULL"),
        ("1.5", "ms must be an integer, got a real"),
        ("-1", "ms must be between 0 and 2147483647, got -1"),
        ("2147483648", "ms must be between 0 and 2147483647, got 2147483648"),
    ],
)
def test_busy_timeout_bad_arguments(db, arg, message):
    fails(db, f"SELECT task_busy_timeout({arg})", match=f"task_busy_timeout: {message}")


def test_busy_timeout_is_refused_in_triggers(db):
    db.execute("CREATE TABLE t(x)")
    db.execute(
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT task_busy_timeout(10); END"
    )
    with pytest.raises(apsw.SQLError, match="unsafe use of task_busy_timeout"):
        db.execute("INSERT INTO t VALUES (1)")


# Lease renewal: a report renews the lease once a quarter of it has passed.


def claimed(db, lease=40_000, now=1_000):
    one(db, "SELECT task_enqueue('job', NULL, json_object('id', ?, 'now', 0))", ID1)
    one(db, "SELECT task_claim('w1', json_object('lease', ?, 'now', ?))", lease, now)
    return one(db, "SELECT lease_until FROM tasks WHERE id = ?", ID1)


def lease_until(db):
    return one(db, "SELECT lease_until FROM tasks WHERE id = ?", ID1)


@pytest.mark.parametrize("verb", ["task_progress(?1, 10, ?2)", "task_heartbeat(?1, ?2)"])
def test_a_report_renews_the_lease_once_a_quarter_of_it_has_passed(db, verb):
    assert claimed(db) == 41_000
    # 9,999 ms into a 40,000 ms lease: kept.
    assert one(db, f"SELECT {verb}", ID1, '{"now": 10999}') == "running"
    assert lease_until(db) == 41_000
    # 10,000 ms in: renewed to now + lease.
    assert one(db, f"SELECT {verb}", ID1, '{"now": 11000}') == "running"
    assert lease_until(db) == 51_000
    # The quarter counts from the last renewal.
    assert one(db, f"SELECT {verb}", ID1, '{"now": 20999}') == "running"
    assert lease_until(db) == 51_000
    assert one(db, f"SELECT {verb}", ID1, '{"now": 21000}') == "running"
    assert lease_until(db) == 61_000


def test_a_kept_lease_still_records_the_progress(db):
    claimed(db)
    one(db, "SELECT task_progress(?, 55, '{\"now\": 2000}')", ID1)
    assert one(db, "SELECT progress || '|' || updated_at FROM tasks WHERE id = ?", ID1) == "55|2000"
    assert lease_until(db) == 41_000


@pytest.mark.parametrize("verb", ["task_progress(?1, 10, ?2)", "task_heartbeat(?1, ?2)"])
def test_a_new_lease_length_renews_at_once(db, verb):
    claimed(db)
    one(db, f"SELECT {verb}", ID1, '{"now": 2000, "lease": 5000}')
    assert lease_until(db) == 7_000
    assert one(db, "SELECT lease_ms FROM task_store WHERE id = ?", ID1) == 5_000


def test_after_any_report_three_quarters_of_the_lease_remain(db):
    claimed(db, lease=40_000, now=1_000)
    for now in range(1_000, 200_000, 3_000):
        one(db, "SELECT task_progress(?, 10, json_object('now', ?))", ID1, now)
        assert lease_until(db) - now >= 30_000, now
    # A claim just before the lease runs out does not take it back.
    assert one(db, "SELECT task_claim('w2', json_object('now', ?))", lease_until(db) - 1) is None


def test_a_refused_report_changes_nothing_on_either_path(db):
    claimed(db)
    # A stale attempt, on the path that keeps the lease and on the one that renews it.
    for now in (2_000, 20_000):
        fails(
            db,
            f"SELECT task_progress('{ID1}', 10, json_object('attempt', 7, 'now', {now}))",
            match="attempt",
        )
    assert lease_until(db) == 41_000
