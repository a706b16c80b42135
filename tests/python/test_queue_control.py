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


# Queue settings: task_queue(name [, options]), pause and the concurrency limit.

import json  # noqa: E402

from conftest import claim, enqueue, opts, rows, snapshot  # noqa: E402


def settings(db, name, **options):
    text = one(db, "SELECT task_queue(?, ?)", name, opts(**options)) if options else one(
        db, "SELECT task_queue(?)", name)
    return json.loads(text)


def fill(db, queue, n, now=0):
    return [enqueue(db, "job", queue=queue, now=now) for _ in range(n)]


# The settings a queue has when none was given (defaults, rate limit).
UNSET = {"rate": None, "lease": None, "max_attempts": None, "backoff": None, "backoff_max": None}


def claim_batch(db, limit, worker="w1", **options):
    return json.loads(one(db, "SELECT task_claim_batch(?, ?, ?)", worker, limit, opts(**options)))


def test_a_queue_without_settings_reads_as_the_defaults_and_creates_nothing(db):
    before = snapshot(db)
    assert settings(db, "q") == {
        **UNSET, "name": "q", "paused": False, "concurrency": None, "created_at": None, "updated_at": None, "retention": None, "events": "all",
    }
    assert snapshot(db) == before
    assert rows(db, "SELECT * FROM task_queue_store") == []


def test_settings_are_created_changed_and_kept(db):
    assert settings(db, "q", paused=True, now=5) == {
        **UNSET, "name": "q", "paused": True, "concurrency": None, "created_at": 5, "updated_at": 5, "retention": None, "events": "all",
    }
    assert settings(db, "q", concurrency=3, now=9) == {
        **UNSET, "name": "q", "paused": True, "concurrency": 3, "created_at": 5, "updated_at": 9, "retention": None, "events": "all",
    }
    # An option left out is kept; null removes the limit.
    assert settings(db, "q", paused=False, now=10)["concurrency"] == 3
    assert settings(db, "q", concurrency=None, now=11) == {
        **UNSET, "name": "q", "paused": False, "concurrency": None, "created_at": 5, "updated_at": 11, "retention": None, "events": "all",
    }
    assert rows(db, "SELECT name, paused, concurrency FROM task_queue_store") == [("q", 0, None)]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT task_queue(NULL)", "name must be text, got NULL"),
        ("SELECT task_queue(7)", "name must be text, got an integer"),
        ("SELECT task_queue('')", "name must not be empty"),
        ("SELECT task_queue('q', 'nope')", "options are not valid JSON"),
        ("SELECT task_queue('q', '[1]')", "options must be a JSON object, got an array"),
        ("SELECT task_queue('q', '{\"pause\": true}')", 'unknown option "pause" (expected one of: paused, concurrency, rate, lease, max_attempts, backoff, backoff_max, retention, events, now)'),
        ("SELECT task_queue('q', '{\"paused\": 1}')", 'option "paused" must be true or false, got a number'),
        ("SELECT task_queue('q', '{\"concurrency\": 0}')", "concurrency must be between 1 and 1000000, got 0"),
        ("SELECT task_queue('q', '{\"concurrency\": -2}')", "concurrency must be between 1 and 1000000, got -2"),
        ("SELECT task_queue('q', '{\"concurrency\": 1000001}')", "concurrency must be between 1 and 1000000, got 1000001"),
        ("SELECT task_queue('q', '{\"concurrency\": 1.5}')", 'option "concurrency" must be a whole number'),
        ("SELECT task_queue('q', '{\"concurrency\": \"2\"}')", 'option "concurrency" must be a whole number or null, got a string'),
        ("SELECT task_queue('q', '{\"paused\": true, \"now\": -1}')", "now must be between 0 and"),
    ],
)
def test_task_queue_bad_inputs_change_nothing(db, sql, message):
    settings(db, "q", concurrency=2, now=1)
    fails(db, sql, match=f"task_queue: {message}")


def test_a_paused_queue_gives_nothing_to_any_kind_of_claim(db):
    fill(db, "p", 3)
    [other] = fill(db, "o", 1)
    settings(db, "p", paused=True)
    assert claim(db, queue="p", now=10) is None
    assert claim_batch(db, 10, queue="p", now=10) == []
    assert claim(db, queue=["p"], now=10) is None
    # Claiming from every queue skips it.
    assert claim(db, now=10)["id"] == other
    assert claim(db, now=10) is None
    assert one(db, "SELECT task_complete_next(?, NULL, 'w1', '{\"queue\": \"p\"}')", other) is None
    settings(db, "p", paused=False)
    assert claim(db, queue="p", now=10)["queue"] == "p"
    assert len(claim_batch(db, 10, now=10)) == 2


def test_a_queue_can_be_paused_before_it_has_tasks(db):
    settings(db, "later", paused=True)
    fill(db, "later", 2)
    assert claim(db, now=10) is None
    assert rows(db, "SELECT name, paused, queued FROM task_queues") == [("later", 1, 2)]


def test_task_queues_counts_blocked_and_waiting_tasks_and_lists_their_queues(db):
    # "deps" has only a blocked task and "parents" only a waiting one: both
    # are listed, with the counts that tell them from an empty queue.
    root = enqueue(db, "root", queue="a", now=0)
    enqueue(db, "dep", queue="deps", depends_on=[root], now=0)
    enqueue(db, "dep", queue="deps", depends_on=[root], now=0)
    parent = enqueue(db, "p", queue="parents", wait_for_children=True, now=0)
    child = enqueue(db, "c", queue="a", parent_id=parent, now=0)
    counts = "SELECT name, queued, running, blocked, waiting FROM task_queues ORDER BY name"
    assert rows(db, counts) == [("a", 2, 0, 0, 0), ("deps", 0, 0, 2, 0), ("parents", 0, 0, 0, 1)]
    assert claim(db, queue="a", now=1)["id"] == root
    one(db, "SELECT task_complete(?, NULL, ?)", root, opts(now=2))
    assert rows(db, counts) == [("a", 1, 0, 0, 0), ("deps", 2, 0, 0, 0), ("parents", 0, 0, 0, 1)]
    assert claim(db, queue="a", now=3)["id"] == child
    one(db, "SELECT task_complete(?, NULL, ?)", child, opts(now=4))
    assert rows(db, counts) == [("deps", 2, 0, 0, 0)]
    # Failed and cancelled tasks are not counted, and do not list a queue.
    enqueue(db, "x", queue="gone", now=5)
    one(db, "SELECT task_cancel(id) FROM tasks WHERE queue = 'gone'")
    assert rows(db, "SELECT name FROM task_queues WHERE name = 'gone'") == []


def test_a_pause_holds_for_a_connection_that_just_found_work(db, tmp_path):
    fill(db, "p", 5)
    worker = connect(tmp_path / "task.db")
    try:
        # The worker's claim found work: its next claim goes straight to the
        # write (the claim hint). A pause from another connection still holds.
        assert claim(worker, queue="p", now=10) is not None
        assert claim(worker, queue="p", now=11) is not None
        settings(db, "p", paused=True)
        assert claim(worker, queue="p", now=12) is None
        assert claim(worker, now=12) is None
        settings(db, "p", paused=False)
        assert claim(worker, queue="p", now=13) is not None
    finally:
        worker.close()


def test_a_paused_queue_s_expired_leases_wait_for_the_resume(db):
    [t] = fill(db, "p", 1)
    claim(db, queue="p", now=10, lease=100)
    settings(db, "p", paused=True)
    assert claim(db, "w2", now=1_000) is None
    assert claim(db, "w2", queue="p", now=1_000) is None
    settings(db, "p", paused=False)
    got = claim(db, "w2", queue="p", now=1_000)
    assert (got["id"], got["attempt"]) == (t, 2)


def running(db, queue):
    return one(db, "SELECT count(*) FROM tasks WHERE queue = ? AND status = 'running'", queue)


def test_a_limit_caps_single_claims_batches_and_complete_next(db):
    fill(db, "l", 10)
    settings(db, "l", concurrency=3)
    a = claim(db, queue="l", now=10)
    assert len(claim_batch(db, 10, queue="l", now=10)) == 2
    assert claim(db, queue="l", now=10) is None
    assert claim_batch(db, 10, now=10) == []
    assert running(db, "l") == 3
    # Completing frees a slot, which task_complete_next takes at once.
    nxt = json.loads(one(db, "SELECT task_complete_next(?, NULL, 'w1', '{\"queue\": \"l\", \"now\": 11}')", a["id"]))
    assert nxt["queue"] == "l" and running(db, "l") == 3
    assert rows(db, "SELECT name, concurrency, queued, running FROM task_queues") == [("l", 3, 6, 3)]
    assert one(db, "SELECT task_check()") == "ok"


@pytest.mark.parametrize("free", [
    "SELECT task_complete(?)",
    "SELECT task_fail(?, 'boom')",  # back to the queue for a retry
    "SELECT task_fail(?, 'boom', '{\"retry\": false}')",
    "SELECT task_cancel(?)",
    "UPDATE tasks SET status = 'cancelled' WHERE id = ?",
])
def test_every_way_out_of_running_frees_a_slot(db, free):
    fill(db, "l", 4)
    settings(db, "l", concurrency=1)
    t = claim(db, queue="l", now=10)
    assert claim(db, queue="l", now=10) is None
    db.execute(free, (t["id"],))
    assert claim(db, queue="l", now=10_000_000) is not None
    assert running(db, "l") == 1
    assert one(db, "SELECT task_check()") == "ok"


def test_an_expired_lease_is_reclaimed_even_at_the_limit(db):
    fill(db, "l", 2)
    settings(db, "l", concurrency=1)
    t = claim(db, queue="l", now=10, lease=100)
    got = claim(db, "w2", queue="l", now=1_000)
    assert (got["id"], got["attempt"]) == (t["id"], 2)
    assert running(db, "l") == 1
    assert claim(db, "w3", queue="l", now=1_000) is None


def test_a_limit_set_while_tasks_run_counts_them(db):
    fill(db, "l", 5)
    started = [claim(db, queue="l", now=10) for _ in range(3)]
    settings(db, "l", concurrency=2)
    assert claim(db, queue="l", now=10) is None
    one(db, "SELECT task_complete(?)", started[0]["id"])
    assert claim(db, queue="l", now=10) is None, "still 2 running, the limit"
    one(db, "SELECT task_complete(?)", started[1]["id"])
    assert claim(db, queue="l", now=10) is not None
    # Removing the limit opens the queue.
    settings(db, "l", concurrency=None)
    assert claim(db, queue="l", now=10) is not None
    assert one(db, "SELECT task_check()") == "ok"


def test_a_claim_from_every_queue_passes_over_a_full_one(db):
    fill(db, "full", 3, now=0)
    [later] = fill(db, "other", 1, now=5)
    settings(db, "full", concurrency=1)
    assert claim(db, now=10)["queue"] == "full"
    assert claim(db, now=10)["id"] == later
    assert claim(db, now=10) is None


def test_a_version_3_storage_is_migrated_to_4_keeping_every_row(tmp_path):
    path = tmp_path / "v3.db"
    db = connect(path)
    one(db, "SELECT task_init()")
    ids = fill(db, "q", 3)
    claim(db, queue="q", now=10)
    # Version 3 is version 9 without the additions of 4, 5, 6, 7, 8 and 9.
    db.execute("DROP TABLE task_parent_store")
    db.execute("ALTER TABLE task_store RENAME COLUMN retired_children_done TO children_done")
    db.execute("DROP TABLE task_rate_store")
    db.execute("DROP VIEW task_events")
    db.execute("DROP TABLE task_event_store")
    db.execute("DROP VIEW task_schedules")
    db.execute("DROP TABLE task_schedule_runs")
    db.execute("DROP TABLE task_schedule_store")
    db.execute("DROP VIEW task_queues")
    db.execute("DROP TABLE task_queue_store")
    db.execute("DROP INDEX task_store_unique")
    db.execute("CREATE UNIQUE INDEX task_store_unique ON task_store(queue, unique_key) WHERE flags & 32")
    db.execute("UPDATE task_meta SET value = 3 WHERE key = 'schema_version'")
    before = rows(db, "SELECT * FROM task_store ORDER BY seq")
    db.close()
    db = connect(path)
    try:
        assert one(db, "SELECT task_init()") == 9
        assert rows(db, "SELECT * FROM task_store ORDER BY seq") == before
        assert rows(db, "SELECT name, queued, running FROM task_queues") == [("q", 2, 1)]
        assert one(db, "SELECT sql FROM sqlite_master WHERE name = 'task_store_unique'").endswith("flags & 96")
        settings(db, "q", concurrency=1)
        assert claim(db, queue="q", now=10) is None
        assert one(db, "SELECT task_check()") == "ok"
        assert ids
    finally:
        db.close()


def test_expired_leases_of_other_queues_come_before_a_gated_queue_s_head(db):
    [a] = fill(db, "plain", 1, now=0)
    claim(db, queue="plain", now=10, lease=100)
    fill(db, "gated", 2, now=0)
    settings(db, "gated", concurrency=5)
    got = claim(db, "w2", now=1_000)
    assert (got["id"], got["attempt"]) == (a, 2)
    assert claim(db, "w2", now=1_000)["queue"] == "gated"
    batch = claim_batch(db, 5, "w3", now=100_000_000)
    assert [t["queue"] for t in batch] == ["plain"], "the expired lease's queue, as for plain queues"


def test_a_claim_from_every_queue_keeps_claiming_a_sole_gated_queue(db):
    fill(db, "g", 5, now=0)
    settings(db, "g", concurrency=2)
    # The second claim may go straight to the gated statement (the hint);
    # the limit holds either way.
    assert claim(db, now=10)["queue"] == "g"
    assert claim(db, now=11)["queue"] == "g"
    assert claim(db, now=12) is None
    assert running(db, "g") == 2
    fill(db, "h", 1, now=0)
    assert claim(db, now=13)["queue"] == "h"


def test_check_names_a_task_counted_toward_a_limit_that_is_not_running(db):
    [a, b] = fill(db, "l", 2)
    settings(db, "l", concurrency=2)
    claim(db, queue="l", now=10)
    assert one(db, "SELECT task_check()") == "ok"
    db.execute("UPDATE task_store SET flags = flags | 64 WHERE id = ?", (b,))
    before = snapshot(db)
    assert one(db, "SELECT task_check()") == (
        f"task {b}: queued, but counted toward its queue's concurrency limit (flags 64)")
    assert snapshot(db) == before


# ---- per-queue defaults ------------------------------------------------------


def test_a_queue_s_lease_is_the_default_of_claims_that_give_none(db):
    settings(db, "slow", lease=60_000, now=0)
    fill(db, "slow", 3)
    fill(db, "other", 1)
    assert claim(db, queue="slow", now=100)["lease_until"] == 60_100
    assert claim(db, queue="slow", now=100, lease=5_000)["lease_until"] == 5_100, "the claim's own wins"
    assert claim(db, queue="other", now=100)["lease_until"] == 300_100, "the built-in 5 minutes"
    assert settings(db, "slow", lease=None, now=1)["lease"] is None
    assert claim(db, queue="slow", now=200)["lease_until"] == 300_200


def test_a_reclaimed_task_gets_its_queue_s_lease_from_an_every_queue_claim(db):
    settings(db, "slow", lease=60_000, now=0)
    [t] = fill(db, "slow", 1)
    claim(db, queue="slow", now=0)
    again = claim(db, now=60_000)
    assert (again["id"], again["attempt"], again["lease_until"]) == (t, 2, 120_000)


def test_a_queue_s_max_attempts_is_the_default_of_its_new_tasks(db):
    settings(db, "flaky", max_attempts=5, now=0)
    a = enqueue(db, queue="flaky", now=0)
    b = enqueue(db, queue="flaky", max_attempts=2, now=0)
    db.execute("INSERT INTO tasks (queue, type) VALUES ('flaky', 'row')")
    c = enqueue(db, queue="other", now=0)
    got = dict(rows(db, "SELECT id, max_attempts FROM task_store WHERE type = 'job'"))
    assert (got[a], got[b], got[c]) == (5, 2, 3)
    assert one(db, "SELECT max_attempts FROM tasks WHERE type = 'row'") == 5
    # A default set later changes no task already there.
    settings(db, "flaky", max_attempts=9, now=1)
    assert one(db, "SELECT max_attempts FROM task_store WHERE id = ?", a) == 5


def test_a_queue_s_backoff_is_the_default_of_its_retries(db):
    settings(db, "b", backoff=10_000, backoff_max=15_000, now=0)
    [t] = fill(db, "b", 1)
    waits = []
    for attempt, now in ((1, 100), (2, 100_000)):
        assert claim(db, queue="b", now=now)["attempt"] == attempt
        assert one(db, "SELECT task_fail(?, 'boom', json_object('now', ?))", t, now) == "queued"
        waits.append(one(db, "SELECT run_at FROM task_store WHERE id = ?", t) - now)
    # base · 2^(attempt-1), capped, times a jitter in [0.5, 1].
    assert 5_000 <= waits[0] <= 10_000
    assert 7_500 <= waits[1] <= 15_000
    # A delay given to task_fail wins.
    [u] = fill(db, "b", 1)
    claim(db, queue="b", now=200_000)
    assert one(db, "SELECT task_fail(?, 'x', json_object('now', 200000, 'delay', 7))", u) == "queued"
    assert one(db, "SELECT run_at FROM task_store WHERE id = ?", u) == 200_007


@pytest.mark.parametrize(
    "options, message",
    [
        ('{"lease": 0}', "lease must be between 1 and 31622400000, got 0"),
        ('{"lease": "1s"}', 'option "lease" must be a whole number or null, got a string'),
        ('{"max_attempts": 0}', "max_attempts must be between 1 and 1000, got 0"),
        ('{"max_attempts": 1001}', "max_attempts must be between 1 and 1000, got 1001"),
        ('{"backoff": -1}', "backoff must be between 0 and 86400000, got -1"),
        ('{"backoff_max": 86400001}', "backoff_max must be between 0 and 86400000, got 86400001"),
        ('{"rate": {"limit": 5}}', 'option "rate" needs both limit (claims) and interval (ms)'),
        ('{"rate": {"interval": 1000}}', 'option "rate" needs both limit (claims) and interval (ms)'),
        ('{"rate": {"limit": 0, "interval": 1000}}', "rate.limit must be between 1 and 1000000, got 0"),
        ('{"rate": {"limit": 5, "interval": 0}}', "rate.interval must be between 1 and 31622400000, got 0"),
        ('{"rate": {"limit": 5, "interval": 1.5}}', 'option "rate.interval" must be a whole number'),
        ('{"rate": {"limit": 5, "every": 1000}}', 'unknown key "every" in option "rate" (expected: limit, interval)'),
        ('{"rate": 5}', 'option "rate" must be an object {"limit": n, "interval": ms} or null, got a number'),
    ],
)
def test_defaults_and_rate_bad_inputs_change_nothing(db, options, message):
    settings(db, "q", concurrency=2, lease=1_000, now=1)
    fails(db, "SELECT task_queue('q', ?)", options, match=f"task_queue: {message}")


def test_defaults_and_rates_are_kept_and_shown_in_task_queues(db):
    got = settings(db, "q", lease=1_000, max_attempts=4, backoff=50, backoff_max=500,
                   rate={"limit": 10, "interval": 60_000}, now=5)
    assert {k: got[k] for k in UNSET} == {"rate": {"limit": 10, "interval": 60_000}, "lease": 1_000,
                                          "max_attempts": 4, "backoff": 50, "backoff_max": 500}
    assert settings(db, "q", paused=True, now=6)["rate"] == {"limit": 10, "interval": 60_000}
    assert rows(db, "SELECT lease, max_attempts, backoff, backoff_max, rate_limit, rate_interval"
                    " FROM task_queues WHERE name = 'q'") == [(1_000, 4, 50, 500, 10, 60_000)]
    got = settings(db, "q", rate=None, lease=None, max_attempts=None, backoff=None, backoff_max=None, now=7)
    assert {k: got[k] for k in UNSET} == UNSET


# ---- rate limits ---------------------------------------------------------------


def test_a_rate_limit_allows_at_most_n_claims_in_any_interval(db):
    settings(db, "api", rate={"limit": 3, "interval": 1_000}, now=0)
    fill(db, "api", 20)
    got = {t: claim(db, queue="api", now=t) is not None
           for t in (10, 20, 30, 40, 999, 1_009, 1_010, 1_011, 1_020, 1_030, 2_000, 2_010)}
    assert [t for t, ok in got.items() if ok] == [10, 20, 30, 1_010, 1_020, 1_030, 2_010]
    assert one(db, "SELECT task_check()") == "ok"


def test_a_rate_limit_caps_batches_complete_next_and_every_queue_claims(db):
    settings(db, "api", rate={"limit": 4, "interval": 1_000}, now=0)
    fill(db, "api", 20)
    fill(db, "plain", 5, now=1)
    batch = claim_batch(db, 10, queue="api", now=100)
    assert len(batch) == 4
    nxt = one(db, "SELECT task_complete_next(?, NULL, 'w1', json_object('queue', 'api', 'now', 200))",
              batch[0]["id"])
    assert nxt is None, "the rate is spent"
    # Every-queue claims pass over the spent queue.
    assert {claim(db, now=300)["queue"] for _ in range(5)} == {"plain"}
    assert claim(db, now=300) is None
    # The window moves on: four more.
    assert len(claim_batch(db, 10, queue="api", now=1_100)) == 4
    assert one(db, "SELECT sum(n) FROM task_rate_store WHERE queue = 'api'") == 4, "old rows deleted"


def test_a_spent_rate_holds_an_expired_lease_too(db):
    settings(db, "api", rate={"limit": 1, "interval": 1_000}, now=0)
    [t] = fill(db, "api", 1)
    claim(db, queue="api", now=0, lease=100)
    assert claim(db, queue="api", now=500) is None, "reclaiming is a claim"
    again = claim(db, queue="api", now=1_000)
    assert (again["id"], again["attempt"]) == (t, 2)


def test_a_rate_limit_set_on_one_connection_holds_on_another(db, tmp_path):
    fill(db, "api", 5)
    other = connect(tmp_path / "task.db")
    try:
        assert claim(other, "w2", queue="api", now=10)
        assert claim(other, "w2", queue="api", now=11), "the hint is in use"
        settings(db, "api", rate={"limit": 2, "interval": 1_000}, now=12)
        assert claim(other, "w2", queue="api", now=13) is not None
        assert claim(other, "w2", queue="api", now=14) is not None
        assert claim(other, "w2", queue="api", now=15) is None
    finally:
        other.close()


def test_a_rate_limited_claim_that_waited_for_the_lock_counts_from_when_it_got_it(db, tmp_path):
    # The claim reads the clock, then waits for the write lock that another
    # connection holds. Counted from the time read before the wait, its
    # window would start too early: the other connection may have claimed
    # at a later time meanwhile, and dropped the records before its own
    # window that are still inside this one (found by the stress harness:
    # 6 claims in 100 ms at a limit of 5). So its time is read again under
    # the lock, and the claim, its lease and its event carry that time.
    settings(db, "api", rate={"limit": 5, "interval": 100})
    fill(db, "api", 1)
    db.setbusytimeout(10_000)
    other = hold_write_lock(tmp_path / "task.db")
    got = {}
    waiter = threading.Thread(target=lambda: got.update(t=claim(db, queue="api", lease=60_000)))
    try:
        waiter.start()
        # Long enough for the claim to be waiting (were it not yet, it reads
        # its clock after the release anyway, and the test proves nothing
        # but does not fail).
        time.sleep(0.3)
        released = int(time.time() * 1000)
    finally:
        other.execute("COMMIT")
        other.close()
    waiter.join(10)
    claimed_at = got["t"]["lease_until"] - 60_000
    assert claimed_at >= released, f"claimed at {claimed_at}, {released - claimed_at} ms before the lock was free"
    assert one(db, "SELECT max(at) FROM task_rate_store WHERE queue = 'api'") == claimed_at
    assert one(db, "SELECT at FROM task_events WHERE kind = 'claimed'") == claimed_at


def test_a_long_poll_wakes_when_the_rate_window_frees(db):
    settings(db, "api", rate={"limit": 1, "interval": 300})
    for _ in range(2):
        enqueue(db, queue="api")
    assert claim(db, queue="api") is not None
    t0 = time.monotonic()
    got = claim(db, queue="api", wait=10_000)
    assert got is not None, "the long poll gave up although the window freed"
    assert time.monotonic() - t0 < 9, "woke by its deadline, not by the window"
