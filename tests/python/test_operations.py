"""Operations without a daemon: recurring schedules (task_schedule, its
pause, resume and removal, task_tick and the claims that enqueue what is
due), retention (task_prune, and the per-queue retention task_tick
applies) and task_stats; each rule, and each bad input with its exact
message and an unchanged storage.

Time is always supplied with {"now": ms}; nothing here sleeps. Times are
UTC milliseconds, written with `at(...)` where a calendar date matters.
Several processes at once: test_operations_processes.py.
"""

import json
import math
from datetime import datetime, timezone

import apsw
import pytest

from conftest import claim, connect, enqueue, fails, one, opts, rows

SEC = 1_000
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
MAX_TIME = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def at(y, mo, d, h=0, mi=0):
    """A UTC calendar time in ms."""
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()) * 1000


def schedule(db, name, cron, kind="job", details=None, **options):
    """task_schedule's JSON, as a dict."""
    return json.loads(one(db, "SELECT task_schedule(?, ?, ?, ?, ?)", name, cron, kind, details,
                          opts(**options)))


def tick(db, now):
    return json.loads(one(db, "SELECT task_tick(?)", opts(now=now)))


def run_ats(db, queue=None):
    """The run_at of the tasks (of `queue`), in order."""
    if queue is None:
        return [r for (r,) in rows(db, "SELECT run_at FROM tasks ORDER BY run_at")]
    return [r for (r,) in rows(db, "SELECT run_at FROM tasks WHERE queue = ? ORDER BY run_at",
                               queue)]


def next_at(db, name):
    return one(db, "SELECT next_at FROM task_schedules WHERE name = ?", name)


def prune(db, **options):
    return json.loads(one(db, "SELECT task_prune(?)", opts(**options)))


def stats(db, **options):
    return json.loads(one(db, "SELECT task_stats(?)", opts(**options)))


def queue_stats(db, queue, now):
    """The one entry of task_stats for `queue`."""
    [entry] = stats(db, queue=queue, now=now)["queues"]
    assert entry["queue"] == queue
    return entry


def set_queue(db, name, **options):
    return json.loads(one(db, "SELECT task_queue(?, ?)", name, opts(**options)))


def finish(db, task_id, how, now):
    """Ends a task `how`: completes or fails (for good) a claimed one, cancels
    a queued one."""
    if how == "completed":
        return one(db, "SELECT task_complete(?, NULL, ?)", task_id, opts(now=now))
    if how == "failed":
        return one(db, "SELECT task_fail(?, 'boom', ?)", task_id, opts(now=now, retry=False))
    return one(db, "SELECT task_cancel(?, ?)", task_id, opts(now=now))


def finished_task(db, how="completed", queue="q", at_ms=1_000, started=None, **options):
    """A task of `queue` that ended `how` at `at_ms` (claimed at `started`)."""
    tid = enqueue(db, "job", queue=queue, now=0, **options)
    if how != "cancelled":
        got = claim(db, queue=queue, now=at_ms if started is None else started)
        assert got["id"] == tid, got
    assert finish(db, tid, how, at_ms) == how
    return tid


def everything(db):
    """Every table the queue keeps, for `refused`."""
    return {t: rows(db, f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in ("task_store", "task_schedule_store", "task_schedule_runs",
                      "task_queue_store", "task_deps")}


def refused(db, sql, *args, message):
    """`sql` fails with exactly `message` and changes no table at all (the
    schedules, their runs and the queue settings too, which `fails`'s
    snapshot of task_store does not cover)."""
    before = everything(db)
    got = fails(db, sql, *args, match=message)
    assert got == message
    assert everything(db) == before, f"a failing call changed the storage: {sql}"


# ---- schedules: registering -------------------------------------------------


def test_a_schedule_is_returned_with_its_first_occurrence_strictly_after_now(db):
    got = schedule(db, "sync", "@every 10s", "sync", '{"full": false}', now=5_000)
    assert got == {
        "name": "sync", "spec": "@every 10s", "type": "sync", "details": {"full": False},
        "queue": "default", "priority": 0, "max_attempts": None, "unique_key": None,
        "catch_up": "latest", "catch_up_window": None, "paused": False, "next_at": 10_000,
        "last_at": None, "last_task": None, "created_at": 5_000, "updated_at": 5_000,
    }
    # An occurrence at now itself is not the next one.
    assert schedule(db, "on", "@every 10s", now=10_000)["next_at"] == 20_000
    assert rows(db, "SELECT * FROM tasks") == []


@pytest.mark.parametrize("spec, now, first", [
    # @every: multiples of the period since the epoch, whatever now is.
    ("@every 7m", 1_000, 7 * MIN),
    ("@every 1h30m", at(2024, 1, 1), at(2024, 1, 1, 1, 30)),
    ("@every 90s", 0, 90 * SEC),
    ("@every 2d", at(1970, 1, 2, 12), at(1970, 1, 3)),
    # Cron, in UTC.
    ("*/15 * * * *", at(2024, 1, 1, 10, 7), at(2024, 1, 1, 10, 15)),
    ("0 9 * * mon-fri", at(2024, 6, 1), at(2024, 6, 3, 9)),  # a Saturday: Monday next
    ("0 0 29 2 *", at(2023, 1, 1), at(2024, 2, 29)),
    ("@hourly", at(2024, 6, 1, 10, 30), at(2024, 6, 1, 11)),
    ("@daily", at(2024, 6, 1, 0, 0) + 1, at(2024, 6, 2)),
    ("@weekly", at(2024, 6, 1), at(2024, 6, 2)),  # Sunday
    ("@monthly", at(2024, 6, 1), at(2024, 7, 1)),
    ("@yearly", at(2024, 6, 1), at(2025, 1, 1)),
    ("0 0 * JAN,jul *", at(2024, 2, 1), at(2024, 7, 1)),
])
def test_the_first_occurrence_of_each_kind_of_expression(db, spec, now, first):
    assert schedule(db, "s", spec, now=now)["next_at"] == first


def test_cron_occurrences_become_tasks_at_their_exact_times(db):
    # Both day fields restricted: the 13th or any Friday (crontab(5)).
    schedule(db, "fri13", "0 12 13 * 5", queue="c", catch_up="all", now=at(2024, 9, 1))
    assert tick(db, at(2024, 10, 18, 12)) == {"enqueued": 8, "pruned": 0}
    assert run_ats(db, "c") == [at(2024, 9, d, 12) for d in (6, 13, 20, 27)] + \
        [at(2024, 10, d, 12) for d in (4, 11, 13, 18)]
    assert next_at(db, "fri13") == at(2024, 10, 25, 12)


def test_every_occurrences_become_tasks_at_multiples_of_the_period(db):
    schedule(db, "e", "@every 7m", queue="e", catch_up="all", now=1_000)
    assert tick(db, 30 * MIN)["enqueued"] == 4
    assert run_ats(db, "e") == [7 * MIN, 14 * MIN, 21 * MIN, 28 * MIN]
    assert next_at(db, "e") == 35 * MIN


def test_an_occurrence_task_carries_the_schedule_s_type_details_and_options(db):
    schedule(db, "report", "@every 1m", "report", '{"kind": "daily"}', queue="reports",
             priority=7, max_attempts=5, now=0)
    assert tick(db, MIN + 30) == {"enqueued": 1, "pruned": 0}
    got = claim(db, queue="reports", now=MIN + 40)
    assert (got["type"], got["details"], got["priority"], got["max_attempts"], got["run_at"],
            got["created_at"]) == ("report", {"kind": "daily"}, 7, 5, MIN, MIN + 30)
    sched = json.loads(one(db, "SELECT task_schedule_resume('report', '{\"now\": 1}')"))
    assert (sched["last_at"], sched["last_task"]) == (MIN, got["id"])
    assert rows(db, "SELECT schedule, at, task FROM task_schedule_runs") == [
        ("report", MIN, got["id"])]


def test_nothing_is_enqueued_before_the_first_occurrence(db):
    schedule(db, "s", "@every 1m", now=0)
    assert tick(db, MIN - 1) == {"enqueued": 0, "pruned": 0}
    assert tick(db, MIN) == {"enqueued": 1, "pruned": 0}
    assert tick(db, MIN) == {"enqueued": 0, "pruned": 0}
    assert run_ats(db) == [MIN]


def test_a_tick_without_options_uses_the_clock(db):
    schedule(db, "soon", "@every 1s", now=0)
    got = json.loads(one(db, "SELECT task_tick()"))
    assert got == {"enqueued": 1, "pruned": 0}
    [(run_at, created)] = rows(db, "SELECT run_at, created_at FROM tasks")
    assert run_at % SEC == 0 and created - SEC < run_at <= created and created > at(2024, 1, 1)


def test_a_tick_commits_or_rolls_back_with_the_caller_s_transaction(db):
    schedule(db, "s", "@every 1m", now=0)
    db.execute("BEGIN IMMEDIATE")
    assert tick(db, MIN)["enqueued"] == 1
    db.execute("ROLLBACK")
    assert (next_at(db, "s"), run_ats(db)) == (MIN, [])
    assert rows(db, "SELECT * FROM task_schedule_runs") == []
    # From a trigger, as part of the statement that fired it.
    db.execute("CREATE TABLE clock (now INTEGER)")
    db.execute("CREATE TRIGGER tick_on_insert AFTER INSERT ON clock"
               " BEGIN SELECT task_tick(json_object('now', new.now)); END")
    db.execute("INSERT INTO clock VALUES (?)", (2 * MIN,))
    assert (next_at(db, "s"), run_ats(db)) == (3 * MIN, [2 * MIN])


def test_a_unique_key_keeps_one_task_for_occurrences_that_pile_up(db):
    schedule(db, "u", "@every 1m", unique_key="sync", queue="u", now=0)
    assert tick(db, MIN)["enqueued"] == 1
    [holder] = [t for (t,) in rows(db, "SELECT id FROM tasks")]
    # The first occurrence's task is still queued: the next ones map to it.
    assert tick(db, 2 * MIN)["enqueued"] == 0
    assert tick(db, 3 * MIN)["enqueued"] == 0
    assert rows(db, "SELECT id, unique_key, run_at FROM tasks") == [(holder, "sync", MIN)]
    assert rows(db, "SELECT at, task FROM task_schedule_runs ORDER BY at") == [
        (MIN, holder), (2 * MIN, holder), (3 * MIN, holder)]
    assert json.loads(one(db, "SELECT task_schedule_pause('u')"))["last_task"] == holder
    # Once it finished, the next occurrence makes a new task.
    one(db, "SELECT task_schedule_resume('u')")
    got = claim(db, queue="u", now=3 * MIN + 1)
    one(db, "SELECT task_complete(?, NULL, ?)", got["id"], opts(now=3 * MIN + 2))
    assert tick(db, 4 * MIN)["enqueued"] == 1
    assert one(db, "SELECT count(*) FROM tasks WHERE status = 'queued' AND run_at = ?", 4 * MIN) == 1


def test_a_unique_key_with_on_conflict_replace_updates_the_queued_holder(db):
    schedule(db, "r", "@every 1m", details='{"v": 1}', unique_key="k", on_conflict="replace",
             now=0)
    tick(db, MIN)
    schedule(db, "r", "@every 1m", details='{"v": 2}', unique_key="k", on_conflict="replace",
             now=MIN + 1)
    assert tick(db, 2 * MIN)["enqueued"] == 0
    assert rows(db, "SELECT details, run_at FROM tasks") == [('{"v": 2}', 2 * MIN)]


def test_a_held_unique_key_with_on_conflict_error_does_not_stop_ticks_or_claims(db):
    # An occurrence that cannot be enqueued because the schedule's previous
    # task still holds the key is passed over. Otherwise every idle claim, in
    # any queue, fails with the enqueue's error, the holder itself can never
    # be claimed (so the key is never released), and other schedules stop.
    schedule(db, "e", "@every 1m", unique_key="k", on_conflict="error", queue="sq", now=0)
    schedule(db, "f", "@every 1m", queue="fq", now=0)
    other = enqueue(db, "other", queue="o", now=0)
    assert tick(db, MIN)["enqueued"] == 2
    [holder] = [t for (t,) in rows(db, "SELECT id FROM tasks WHERE queue = 'sq'")]
    # The claim is the first to find the 2-minute occurrences due.
    assert claim(db, queue="o", now=2 * MIN + 10)["id"] == other
    assert run_ats(db, "fq") == [MIN, 2 * MIN]
    assert claim(db, "w2", queue="sq", now=3 * MIN + 10)["id"] == holder
    assert tick(db, 4 * MIN)["enqueued"] == 1
    assert (next_at(db, "e"), next_at(db, "f")) == (5 * MIN, 5 * MIN)
    assert one(db, "SELECT count(*) FROM tasks WHERE queue = 'sq'") == 1


# ---- replace, keep, error ---------------------------------------------------


def test_registering_again_with_the_same_expression_keeps_next_at(db):
    schedule(db, "s", "@every 1m", details='{"v": 1}', now=0)
    # A restart five minutes later registers it again: what was due is kept.
    got = schedule(db, "s", "@every 1m", details='{"v": 2}', priority=3, now=5 * MIN + 30)
    assert (got["next_at"], got["details"], got["priority"], got["created_at"],
            got["updated_at"]) == (MIN, {"v": 2}, 3, 0, 5 * MIN + 30)
    assert tick(db, 5 * MIN + 30)["enqueued"] == 1
    assert rows(db, "SELECT run_at, details, priority FROM tasks") == [(5 * MIN, '{"v": 2}', 3)]


def test_registering_again_with_catch_up_all_keeps_every_due_occurrence(db):
    schedule(db, "s", "@every 1m", catch_up="all", now=0)
    schedule(db, "s", "@every 1m", catch_up="all", now=5 * MIN + 30)
    assert tick(db, 5 * MIN + 30)["enqueued"] == 5
    assert run_ats(db) == [MIN, 2 * MIN, 3 * MIN, 4 * MIN, 5 * MIN]


@pytest.mark.parametrize("cron, change", [
    ("@every 2m", {}),
    ("@every 1m", {"catch_up": "all"}),
    ("0 * * * *", {}),
])
def test_a_new_expression_or_catch_up_starts_after_now(db, cron, change):
    schedule(db, "s", "@every 1m", now=0)
    # What was due under the old one is not enqueued.
    got = schedule(db, "s", cron, now=5 * MIN + 30, **change)
    assert got["next_at"] == (HOUR if cron == "0 * * * *" else 6 * MIN)
    assert tick(db, 5 * MIN + 30)["enqueued"] == 0


def test_a_new_expression_starts_after_the_last_occurrence_it_enqueued(db):
    schedule(db, "s", "@every 1m", now=0)
    tick(db, 10 * MIN)
    # Registered with a clock behind the last occurrence: nothing twice.
    assert schedule(db, "s", "@every 2m", now=MIN)["next_at"] == 12 * MIN


def test_if_exists_keep_leaves_the_schedule_as_it_was(db):
    first = schedule(db, "s", "@every 1m", queue="a", now=0)
    assert schedule(db, "s", "@daily", queue="b", if_exists="keep", now=99) == first
    # A name not taken is registered as usual.
    assert schedule(db, "t", "@daily", if_exists="keep", now=0)["next_at"] == DAY


def test_if_exists_error_refuses_a_name_in_use(db):
    schedule(db, "s", "@every 1m", now=0)
    refused(db, "SELECT task_schedule('s', '@daily', 'job', NULL, '{\"if_exists\": \"error\"}')",
            message="task_schedule: a schedule named 's' exists (if_exists 'error')")
    assert schedule(db, "t", "@daily", if_exists="error", now=0)["name"] == "t"


# ---- catch-up after downtime ------------------------------------------------


def test_catch_up_latest_enqueues_only_the_latest_missed_occurrence(db):
    schedule(db, "h", "0 * * * *", queue="h", now=at(2024, 1, 1))
    # Down from 00:00 to 05:30: five occurrences missed, the 05:00 one runs.
    assert tick(db, at(2024, 1, 1, 5, 30))["enqueued"] == 1
    assert run_ats(db, "h") == [at(2024, 1, 1, 5)]
    assert next_at(db, "h") == at(2024, 1, 1, 6)


def test_catch_up_all_enqueues_every_missed_occurrence(db):
    schedule(db, "h", "0 * * * *", queue="h", catch_up="all", now=at(2024, 1, 1))
    assert tick(db, at(2024, 1, 1, 5, 30))["enqueued"] == 5
    assert run_ats(db, "h") == [at(2024, 1, 1, h) for h in range(1, 6)]


def test_catch_up_window_keeps_only_the_occurrences_within_it(db):
    schedule(db, "m", "@every 1m", catch_up="all", catch_up_window=2 * MIN, now=0)
    assert tick(db, 10 * MIN)["enqueued"] == 3
    assert run_ats(db) == [8 * MIN, 9 * MIN, 10 * MIN]
    assert next_at(db, "m") == 11 * MIN
    got = schedule(db, "m", "@every 1m", catch_up="all", catch_up_window=2 * MIN, now=0)
    assert got["catch_up_window"] == 2 * MIN


def test_catch_up_window_shorter_than_the_gap_may_enqueue_nothing(db):
    schedule(db, "h", "@hourly", catch_up="all", catch_up_window=10 * MIN, now=0)
    assert tick(db, 5 * HOUR + 30 * MIN)["enqueued"] == 0
    assert next_at(db, "h") == 6 * HOUR
    assert tick(db, 6 * HOUR + 5 * MIN)["enqueued"] == 1


def test_catch_up_all_enqueues_at_most_1000_occurrences_a_tick(db):
    schedule(db, "s", "@every 1s", catch_up="all", now=0)
    assert tick(db, 2_500 * SEC)["enqueued"] == 1_000
    assert next_at(db, "s") == 1_001 * SEC
    assert tick(db, 2_500 * SEC)["enqueued"] == 1_000
    assert tick(db, 2_500 * SEC)["enqueued"] == 500
    assert tick(db, 2_500 * SEC)["enqueued"] == 0
    assert run_ats(db) == [n * SEC for n in range(1, 2_501)]


# ---- pause, resume, unschedule, the view ------------------------------------


def test_a_paused_schedule_enqueues_nothing_and_catches_up_latest_on_resume(db):
    schedule(db, "p", "@every 1m", queue="p", now=0)
    got = json.loads(one(db, "SELECT task_schedule_pause('p', '{\"now\": 30000}')"))
    assert (got["paused"], got["updated_at"], got["next_at"]) == (True, 30_000, MIN)
    assert tick(db, 5 * MIN) == {"enqueued": 0, "pruned": 0}
    got = json.loads(one(db, "SELECT task_schedule_resume('p', '{\"now\": 310000}')"))
    assert (got["paused"], got["updated_at"]) == (False, 310_000)
    assert tick(db, 310_000)["enqueued"] == 1
    assert run_ats(db, "p") == [5 * MIN]


def test_a_paused_schedule_with_catch_up_all_enqueues_what_it_missed_on_resume(db):
    schedule(db, "p", "@every 1m", catch_up="all", now=0)
    tick(db, MIN)
    one(db, "SELECT task_schedule_pause('p', '{\"now\": 61000}')")
    assert tick(db, 4 * MIN)["enqueued"] == 0
    one(db, "SELECT task_schedule_resume('p', '{\"now\": 250000}')")
    assert tick(db, 250_000)["enqueued"] == 3
    assert run_ats(db) == [MIN, 2 * MIN, 3 * MIN, 4 * MIN]


def test_a_schedule_can_be_registered_paused(db):
    got = schedule(db, "p", "@every 1m", paused=True, now=0)
    assert (got["paused"], got["next_at"]) == (True, MIN)
    assert tick(db, 3 * MIN)["enqueued"] == 0
    one(db, "SELECT task_schedule_resume('p', '{\"now\": 1}')")
    assert tick(db, 3 * MIN)["enqueued"] == 1


def test_pausing_twice_and_resuming_a_running_schedule_are_no_errors(db):
    schedule(db, "p", "@every 1m", now=0)
    assert json.loads(one(db, "SELECT task_schedule_resume('p', '{\"now\": 5}')"))["paused"] is False
    one(db, "SELECT task_schedule_pause('p', '{\"now\": 6}')")
    assert json.loads(one(db, "SELECT task_schedule_pause('p', '{\"now\": 7}')"))["paused"] is True


def test_unschedule_removes_the_schedule_and_its_runs_but_not_its_tasks(db):
    schedule(db, "s", "@every 1m", now=0)
    tick(db, MIN)
    assert one(db, "SELECT task_unschedule('s')") == 1
    assert rows(db, "SELECT * FROM task_schedules") == []
    assert rows(db, "SELECT * FROM task_schedule_runs") == []
    assert run_ats(db) == [MIN]
    assert tick(db, 10 * MIN)["enqueued"] == 0
    # The name is free again, and starts after now.
    assert schedule(db, "s", "@every 1m", now=10 * MIN)["next_at"] == 11 * MIN


def test_the_view_lists_the_schedules_and_reads_without_the_extension(db, tmp_path):
    schedule(db, "a", "@every 1m", "ping", '{"x": 1}', queue="qa", priority=2, max_attempts=4,
             unique_key="ka", catch_up="all", catch_up_window=5 * MIN, now=0)
    schedule(db, "b", "0 3 * * *", now=0)
    one(db, "SELECT task_schedule_pause('b', '{\"now\": 10}')")
    tick(db, MIN)
    [a_task] = [t for (t,) in rows(db, "SELECT id FROM tasks")]
    plain = connect(tmp_path / "task.db", load=False)
    try:
        cols = [c[1] for c in rows(plain, "PRAGMA table_info(task_schedules)")]
        assert cols == ["name", "spec", "type", "details", "queue", "priority", "max_attempts",
                        "unique_key", "catch_up", "catch_up_window", "paused", "next_at",
                        "last_at", "last_task", "created_at", "updated_at"]
        assert rows(plain, "SELECT * FROM task_schedules ORDER BY name") == [
            ("a", "@every 1m", "ping", '{"x": 1}', "qa", 2, 4, "ka", "all", 5 * MIN, 0, 2 * MIN,
             MIN, a_task, 0, MIN),
            ("b", "0 3 * * *", "job", None, "default", 0, None, None, "latest", None, 1,
             3 * HOUR, None, None, 0, 10),
        ]
    finally:
        plain.close()


# ---- claims enqueue what is due ---------------------------------------------


def test_an_idle_worker_s_claim_enqueues_and_takes_a_due_occurrence(db, tmp_path):
    schedule(db, "c", "@every 1m", queue="cq", now=0)
    worker = connect(tmp_path / "task.db")
    try:
        assert claim(worker, queue="cq", now=MIN - 1) is None
        got = claim(worker, queue="cq", now=MIN + 5)
        assert (got["queue"], got["run_at"], got["created_at"]) == ("cq", MIN, MIN + 5)
        # Every idle claim does it, from every queue too.
        got = claim(worker, now=2 * MIN + 5_000)
        assert (got["queue"], got["run_at"]) == ("cq", 2 * MIN)
        assert next_at(db, "c") == 3 * MIN
    finally:
        worker.close()


def test_a_claim_from_another_queue_also_enqueues_the_due_occurrences(db):
    schedule(db, "c", "@every 1m", queue="cq", now=0)
    assert claim(db, queue="elsewhere", now=MIN) is None
    assert run_ats(db, "cq") == [MIN]


def test_a_claim_enqueues_at_most_10_occurrences_of_at_most_10_schedules(db):
    schedule(db, "all", "@every 1s", queue="a", catch_up="all", now=0)
    batch = json.loads(one(db, "SELECT task_claim_batch('w', 50, ?)", opts(queue="a", now=25 * SEC)))
    assert [t["run_at"] for t in batch] == [n * SEC for n in range(1, 11)]
    assert next_at(db, "all") == 11 * SEC
    one(db, "SELECT task_unschedule('all')")
    for i in range(12):
        schedule(db, f"b{i:02}", "@every 1s", queue="b", now=100 * SEC)
    assert claim(db, "w2", queue="b", now=105 * SEC)["run_at"] == 105 * SEC
    assert one(db, "SELECT count(*) FROM tasks WHERE queue = 'b'") == 10
    # A tick does the rest.
    assert tick(db, 105 * SEC)["enqueued"] == 2


def test_two_connections_ticking_the_same_times_create_each_occurrence_once(db, tmp_path):
    schedule(db, "every", "@every 1m", queue="e", catch_up="all", now=0)
    schedule(db, "cron", "*/5 * * * *", queue="c", now=0)
    other = connect(tmp_path / "task.db")
    try:
        total = 0
        for now in range(0, 60 * MIN + 1, 37 * SEC):
            total += tick(db, now)["enqueued"] + tick(other, now)["enqueued"]
            total += tick(other, now)["enqueued"] + tick(db, now)["enqueued"]
        assert run_ats(db, "e") == [n * MIN for n in range(1, 60)]
        assert run_ats(db, "c") == [n * 5 * MIN for n in range(1, 12)]
        assert total == 59 + 11
        assert one(db, "SELECT count(*) FROM task_schedule_runs") == total
    finally:
        other.close()


# ---- task_prune ---------------------------------------------------------------


def pruned(got):
    """(deleted, steps) of task_prune's result, whose timing is only checked
    to be a number of ms."""
    assert set(got) == {"deleted", "events", "steps", "longest_step_ms"}, got
    assert isinstance(got["longest_step_ms"], (int, float)) and got["longest_step_ms"] >= 0
    return got["deleted"], got["steps"]


def statuses(db):
    return sorted(rows(db, "SELECT queue, status, completed_at FROM tasks"))


def test_prune_older_than_deletes_finished_tasks_before_the_cutoff(db):
    for t in (1_000, 2_000, 2_500, 3_000):
        finished_task(db, at_ms=t)
    # now 4000 - 1500: completed before 2500 go; at 2500 itself stays.
    assert pruned(prune(db, older_than=1_500, now=4_000)) == (2, 1)
    assert [c for _, _, c in statuses(db)] == [2_500, 3_000]


def test_prune_before_deletes_what_finished_before_that_time(db):
    for t in (1_000, 2_000, 3_000):
        finished_task(db, at_ms=t)
    assert prune(db, before=2_001, now=99)["deleted"] == 2
    assert [c for _, _, c in statuses(db)] == [3_000]
    assert prune(db, older_than=0, now=3_001)["deleted"] == 1


def test_prune_older_than_longer_than_the_clock_has_run_deletes_nothing(db):
    finished_task(db, at_ms=10)
    assert pruned(prune(db, older_than=DAY, now=5_000)) == (0, 1)
    assert pruned(prune(db, older_than=4_990, now=5_000)) == (0, 1)
    assert pruned(prune(db, older_than=4_989, now=5_000)) == (1, 1)


def test_prune_never_deletes_an_unfinished_task(db):
    running = enqueue(db, "running", queue="q", now=0)
    assert claim(db, queue="q", now=1)["id"] == running
    enqueue(db, "queued", queue="q", now=0)
    dep = enqueue(db, "dep", queue="d", now=0)
    enqueue(db, "blocked", queue="b", depends_on=[dep], now=0)
    enqueue(db, "waiting", queue="w", wait_for_children=True, now=0)
    before = statuses(db)
    assert prune(db, before=MAX_TIME, now=0)["deleted"] == 0
    assert statuses(db) == before
    assert sorted(s for _, s, _ in before) == ["blocked", "queued", "queued", "running", "waiting"]


@pytest.mark.parametrize("status, kept", [
    ("completed", ["cancelled", "failed"]),
    ("failed", ["cancelled", "completed"]),
    ("cancelled", ["completed", "failed"]),
    (["completed", "cancelled"], ["failed"]),
    (["failed", "failed"], ["cancelled", "completed"]),
])
def test_prune_status_chooses_which_finished_statuses_go(db, status, kept):
    for how in ("completed", "failed", "cancelled"):
        finished_task(db, how, at_ms=1_000, max_attempts=1)
    assert prune(db, older_than=0, status=status, now=5_000)["deleted"] == 3 - len(kept)
    assert sorted(s for _, s, _ in statuses(db)) == kept


def test_prune_queue_keeps_the_other_queues(db):
    finished_task(db, queue="a")
    finished_task(db, queue="b")
    assert prune(db, older_than=0, queue="a", now=5_000)["deleted"] == 1
    assert [q for q, _, _ in statuses(db)] == ["b"]


def family(db, n_children=2, parent_queue="parents"):
    """A parent with children in queue 'kids', the parent's own work done."""
    parent = enqueue(db, "parent", queue=parent_queue, now=0)
    assert claim(db, queue=parent_queue, now=1)["id"] == parent
    kids = [enqueue(db, "child", queue="kids", parent_id=parent, now=1) for _ in range(n_children)]
    assert one(db, "SELECT task_complete(?, NULL, '{\"now\": 2}')", parent) == "waiting"
    return parent, kids


def complete_next_child(db, now):
    got = claim(db, queue="kids", now=now)
    return one(db, "SELECT task_complete(?, NULL, ?)", got["id"], opts(now=now))


def test_a_finished_parent_goes_with_its_children(db):
    parent, kids = family(db)
    complete_next_child(db, 10)
    complete_next_child(db, 11)
    assert one(db, "SELECT status FROM tasks WHERE id = ?", parent) == "completed"
    assert prune(db, older_than=0, now=100)["deleted"] == 3
    assert rows(db, "SELECT * FROM task_store") == []
    assert one(db, "SELECT task_check()") == "ok"


def test_a_finished_child_of_an_unfinished_parent_stays(db):
    parent, kids = family(db)
    complete_next_child(db, 10)
    before = statuses(db)
    assert prune(db, older_than=0, now=100)["deleted"] == 0
    assert statuses(db) == before
    assert rows(db, "SELECT children, children_done FROM tasks WHERE id = ?", parent) == [(2, 1)]
    # Not even when only the children's queue is pruned.
    assert prune(db, older_than=0, queue="kids", now=100)["deleted"] == 0
    complete_next_child(db, 20)
    assert prune(db, older_than=0, queue="kids", now=100)["deleted"] == 0, \
        "a finished child of a parent that still exists is left for its parent"
    assert prune(db, older_than=0, queue="parents", now=100)["deleted"] == 3
    assert one(db, "SELECT task_check()") == "ok"


def test_a_parent_finished_after_the_cutoff_keeps_its_old_children(db):
    parent, kids = family(db)
    complete_next_child(db, 10)
    complete_next_child(db, 5_000)
    # The first child finished before the cutoff, its parent after it.
    assert prune(db, before=1_000, now=6_000)["deleted"] == 0
    assert one(db, "SELECT count(*) FROM tasks") == 3


def test_pruned_dependencies_leave_their_dependents_whole(db):
    a = enqueue(db, "a", queue="d", now=0)
    assert claim(db, queue="d", now=1)["id"] == a
    one(db, "SELECT task_complete(?, NULL, '{\"now\": 2}')", a)
    b = enqueue(db, "b", queue="d", depends_on=[a], now=3)
    c = enqueue(db, "c", queue="d", depends_on=[b], now=3)
    assert rows(db, "SELECT count(*) FROM task_deps") == [(2,)]
    assert prune(db, older_than=0, now=100)["deleted"] == 1
    assert rows(db, "SELECT task, dep FROM task_deps") == [
        (one(db, "SELECT seq FROM task_store WHERE id = ?", c),
         one(db, "SELECT seq FROM task_store WHERE id = ?", b))]
    assert one(db, "SELECT task_check()") == "ok"
    # b is claimable, and c follows it as before.
    assert claim(db, queue="d", now=200)["id"] == b
    one(db, "SELECT task_complete(?, NULL, '{\"now\": 201}')", b)
    assert claim(db, queue="d", now=202)["id"] == c
    one(db, "SELECT task_complete(?, NULL, '{\"now\": 203}')", c)
    assert prune(db, older_than=0, now=300)["deleted"] == 2
    assert rows(db, "SELECT * FROM task_deps") == []
    assert rows(db, "SELECT * FROM task_store") == []
    assert one(db, "SELECT task_check()") == "ok"


@pytest.mark.parametrize("n, step", [(25, 10), (25, 7), (25, 25), (25, 1_000), (25, 1), (0, 10)])
def test_prune_takes_one_step_per_step_rows_of_the_table(db, n, step):
    if n:
        complete_many(db, "q", n, now=2)
    max_seq = one(db, "SELECT coalesce(max(seq), 0) FROM task_store")
    assert max_seq == n
    assert pruned(prune(db, older_than=0, step=step, now=10)) == (n, math.ceil(max_seq / step))
    assert one(db, "SELECT count(*) FROM tasks") == 0


def test_prune_default_step_is_1000_rows(db):
    with db:
        for _ in range(2_001):
            enqueue(db, "job", queue="q", now=0)
    assert pruned(prune(db, older_than=0, now=10)) == (0, 3)


def test_prune_deletes_the_schedule_runs_older_than_its_cutoff(db):
    schedule(db, "s", "@every 1m", catch_up="all", now=0)
    tick(db, 3 * MIN)
    assert prune(db, before=2 * MIN + 1, now=0)["deleted"] == 0  # the tasks are queued
    assert [a for (a,) in rows(db, "SELECT at FROM task_schedule_runs")] == [3 * MIN]
    assert run_ats(db) == [MIN, 2 * MIN, 3 * MIN]
    # The next occurrence is still enqueued once.
    assert tick(db, 4 * MIN)["enqueued"] == 1
    assert tick(db, 4 * MIN)["enqueued"] == 0


# ---- retention through task_tick ----------------------------------------------


def test_task_queue_reports_and_keeps_retention(db):
    assert set_queue(db, "r", retention=HOUR, now=5) == {
        "name": "r", "paused": False, "concurrency": None, "rate": None, "lease": None,
        "max_attempts": None, "backoff": None, "backoff_max": None, "created_at": 5, "updated_at": 5,
        "retention": {"completed": HOUR, "failed": HOUR, "cancelled": HOUR}, "events": "all"}
    # Other settings leave it as it is.
    assert set_queue(db, "r", paused=True, now=6)["retention"] == {
        "completed": HOUR, "failed": HOUR, "cancelled": HOUR}
    assert set_queue(db, "r", retention={"completed": MIN, "failed": None}, now=7)["retention"] == {
        "completed": MIN, "failed": None, "cancelled": None}
    assert set_queue(db, "r", retention=None, now=8) == {
        "name": "r", "paused": True, "concurrency": None, "rate": None, "lease": None,
        "max_attempts": None, "backoff": None, "backoff_max": None, "created_at": 5, "updated_at": 8,
        "retention": None, "events": "all"}
    assert json.loads(one(db, "SELECT task_queue('fresh')"))["retention"] is None
    assert rows(db, "SELECT retain_completed, retain_failed, retain_cancelled FROM task_queue_store"
                    " WHERE name = 'r'") == [(None, None, None)]


def test_a_tick_prunes_the_finished_tasks_of_a_queue_with_retention(db):
    set_queue(db, "r", retention={"completed": 1_000, "cancelled": 5_000})
    done = finished_task(db, "completed", queue="r", at_ms=100)
    finished_task(db, "failed", queue="r", at_ms=100, max_attempts=1)
    cancelled = finished_task(db, "cancelled", queue="r", at_ms=100)
    finished_task(db, "completed", queue="other", at_ms=100)
    live = enqueue(db, "job", queue="r", now=0)
    assert tick(db, 1_099) == {"enqueued": 0, "pruned": 0}
    assert tick(db, 1_101) == {"enqueued": 0, "pruned": 1}
    assert done not in [t for (t,) in rows(db, "SELECT id FROM tasks")]
    assert tick(db, 5_101) == {"enqueued": 0, "pruned": 1}
    assert cancelled not in [t for (t,) in rows(db, "SELECT id FROM tasks")]
    assert sorted(rows(db, "SELECT queue, status FROM tasks")) == [
        ("other", "completed"), ("r", "failed"), ("r", "queued")]
    assert live in [t for (t,) in rows(db, "SELECT id FROM tasks")]
    assert one(db, "SELECT task_check()") == "ok"


def test_a_retention_of_ms_applies_to_every_finished_status(db):
    set_queue(db, "r", retention=1_000)
    for how in ("completed", "failed", "cancelled"):
        finished_task(db, how, queue="r", at_ms=100)
    live = enqueue(db, "job", queue="r", now=0)
    assert tick(db, 1_100) == {"enqueued": 0, "pruned": 0}
    assert tick(db, 1_101) == {"enqueued": 0, "pruned": 3}
    assert rows(db, "SELECT id, status FROM tasks") == [(live, "queued")]
    # Removed, it prunes nothing more.
    set_queue(db, "r", retention=None)
    claim(db, queue="r", now=200)
    assert finish(db, live, "completed", 200) == "completed"
    assert tick(db, 10_000)["pruned"] == 0
    assert rows(db, "SELECT id, status FROM tasks") == [(live, "completed")]


def complete_many(db, queue, n, now):
    with db:
        for _ in range(n):
            enqueue(db, "job", queue=queue, now=0)
    batch = json.loads(one(db, "SELECT task_claim_batch('w', ?, ?)", n, opts(queue=queue, now=now)))
    items = json.dumps([{"id": t["id"]} for t in batch])
    assert one(db, "SELECT task_complete_batch(?, ?)", items, opts(now=now)) == n


def test_retention_prunes_one_step_of_1000_rows_a_tick_walking_the_table(db):
    set_queue(db, "r", retention=1_000)
    complete_many(db, "r", 2_500, now=10)
    assert [tick(db, 5_000 + i)["pruned"] for i in range(4)] == [1_000, 1_000, 500, 0]
    assert one(db, "SELECT count(*) FROM tasks") == 0
    # The walk starts again from the beginning of the table.
    complete_many(db, "r", 100, now=20)
    assert sum(tick(db, 6_000 + i)["pruned"] for i in range(3)) == 100
    assert one(db, "SELECT count(*) FROM tasks") == 0


# ---- task_stats -------------------------------------------------------------


def test_stats_count_each_status_per_queue(db):
    enqueue(db, "job", queue="m", now=0, run_at=10 * HOUR)  # queued, not ready
    enqueue(db, "job", queue="m", now=0, run_at=100)  # queued, ready
    enqueue(db, "job", queue="m", now=0, run_at=300)  # queued, ready
    got = claim(db, queue="m", now=400, lease=1_000)  # running, expired by now
    assert got["run_at"] == 100
    dep = enqueue(db, "dep", queue="m", now=0, run_at=10 * HOUR)
    enqueue(db, "blocked", queue="m", depends_on=[dep], now=0)
    enqueue(db, "group", queue="m", wait_for_children=True, now=0)
    finished_task(db, "cancelled", queue="m", at_ms=5)
    finished_task(db, "completed", queue="m", at_ms=6)
    one(db, "SELECT task_queue('m', '{\"concurrency\": 9}')")
    now = HOUR
    assert queue_stats(db, "m", now) == {
        "queue": "m", "paused": False, "concurrency": 9, "queued": 3, "ready": 1, "running": 1,
        "expired": 1, "blocked": 1, "waiting": 1, "failed": 0, "cancelled": 1,
        "failed_last_minute": 0, "failed_last_hour": 0, "oldest_ready_age_ms": now - 300,
        "completed_last_minute": None, "completed_last_hour": None, "run_ms_avg": None,
        "run_ms_p95": None, "run_sample": 0,
    }


def test_stats_count_failures_in_the_last_minute_and_hour(db):
    for t in (10 * MIN, 100 * MIN, 119 * MIN + 30 * SEC, 119 * MIN + 50 * SEC):
        finished_task(db, "failed", queue="f", at_ms=t, max_attempts=1)
    s = queue_stats(db, "f", 2 * HOUR)
    assert (s["failed"], s["failed_last_minute"], s["failed_last_hour"]) == (4, 2, 3)
    # A failure with attempts left is a queued task, not a failure here.
    tid = enqueue(db, "job", queue="g", now=0, max_attempts=3)
    claim(db, queue="g", now=1)
    one(db, "SELECT task_fail(?, 'again', '{\"now\": 2}')", tid)
    s = queue_stats(db, "g", 3)
    assert (s["queued"], s["failed"], s["failed_last_minute"]) == (1, 0, 0)


def test_stats_list_every_queue_in_order_and_the_schedules(db):
    enqueue(db, "job", queue="b", now=0)
    enqueue(db, "job", queue="a", now=0)
    one(db, "SELECT task_queue('c', '{\"paused\": true}')")
    schedule(db, "s1", "@every 1m", now=0)
    schedule(db, "s2", "@every 7m", now=0)
    schedule(db, "s3", "@every 30s", paused=True, now=0)
    got = stats(db, now=10)
    assert got["now"] == 10 and got["index_completed"] is False
    assert [(q["queue"], q["paused"], q["queued"]) for q in got["queues"]] == [
        ("a", False, 1), ("b", False, 1), ("c", True, 0)]
    assert got["schedules"] == {"count": 3, "paused": 1, "next_at": MIN}
    # One queue, even one that has nothing.
    assert [q["queue"] for q in stats(db, queue="b", now=10)["queues"]] == ["b"]
    assert queue_stats(db, "none", 10)["queued"] == 0
    assert stats(db, now=10)["schedules"] == {"count": 3, "paused": 1, "next_at": MIN}
    # Stats read, never write.
    assert one(db, "SELECT count(*) FROM task_queue_store") == 1


def test_stats_without_options_use_the_clock(db):
    got = json.loads(one(db, "SELECT task_stats()"))
    assert got["queues"] == [] and got["now"] > at(2024, 1, 1)
    assert got["schedules"] == {"count": 0, "paused": 0, "next_at": None}


def test_index_completed_is_added_and_dropped_by_task_init(db):
    def has_index():
        return one(db, "SELECT count(*) FROM sqlite_master WHERE name = 'task_store_done'")
    assert has_index() == 0
    assert one(db, "SELECT task_init('{\"index_completed\": true}')") == 9
    assert has_index() == 1 and stats(db, now=0)["index_completed"] is True
    assert one(db, "SELECT task_init()") == 9
    assert has_index() == 1, "task_init() without the option leaves the index as it is"
    assert one(db, "SELECT task_init('{\"index_completed\": false}')") == 9
    assert has_index() == 0 and stats(db, now=0)["index_completed"] is False
    assert one(db, "SELECT task_init('{\"index_completed\": false}')") == 9


def test_completion_figures_with_the_index(db):
    one(db, "SELECT task_init('{\"index_completed\": true}')")
    now = 3 * HOUR
    # Run times 10, 20, ..., 200 ms: 5 completed more than an hour ago, 15
    # in the last hour, the last 3 of them in the last minute.
    times = ([now - 2 * HOUR + i * MIN for i in range(5)]
             + [now - 50 * MIN + i * MIN for i in range(12)]
             + [now - 30 * SEC, now - 20 * SEC, now - 10 * SEC])
    for i, t in enumerate(times):
        finished_task(db, "completed", queue="q", at_ms=t, started=t - 10 * (i + 1))
    s = queue_stats(db, "q", now)
    assert (s["completed_last_minute"], s["completed_last_hour"]) == (3, 15)
    assert (s["run_ms_avg"], s["run_ms_p95"], s["run_sample"]) == (105.0, 190, 20)
    # Failed and cancelled tasks are no completions.
    finished_task(db, "failed", queue="q", at_ms=now - 1, max_attempts=1)
    assert queue_stats(db, "q", now)["completed_last_minute"] == 3
    # A queue without completions has zeros and no run times.
    enqueue(db, "job", queue="idle", now=0)
    s = queue_stats(db, "idle", now)
    assert (s["completed_last_minute"], s["completed_last_hour"], s["run_ms_avg"],
            s["run_ms_p95"], s["run_sample"]) == (0, 0, None, None, 0)


def test_run_times_cover_the_latest_1000_completions(db):
    one(db, "SELECT task_init('{\"index_completed\": true}')")
    complete_many(db, "q", 1_100, now=HOUR)
    s = queue_stats(db, "q", HOUR)
    assert (s["run_sample"], s["completed_last_minute"], s["completed_last_hour"]) == (1_000, 1_100, 1_100)
    assert (s["run_ms_avg"], s["run_ms_p95"]) == (0.0, 0)


def test_a_queue_whose_tasks_all_completed_is_listed_with_its_throughput(db):
    # A drained queue is the busiest one a dashboard wants to see: with the
    # index, task_stats() lists it with its completions, as it does when
    # asked for that queue alone.
    one(db, "SELECT task_init('{\"index_completed\": true}')")
    complete_many(db, "drained", 3, now=HOUR)
    enqueue(db, "job", queue="busy", now=0)
    alone = queue_stats(db, "drained", HOUR + 1)
    assert alone["completed_last_minute"] == 3
    listed = {q["queue"]: q for q in stats(db, now=HOUR + 1)["queues"]}
    assert sorted(listed) == ["busy", "drained"]
    assert listed["drained"] == alone


# ---- bad inputs: each an error with its exact message, changing nothing ------


@pytest.fixture
def busy(db):
    """A database with something in every table a bad call could touch."""
    schedule(db, "s", "@every 1m", queue="sq", catch_up="all", now=0)
    tick(db, 2 * MIN)
    set_queue(db, "r", retention=1_000, concurrency=3, now=0)
    finished_task(db, "completed", queue="r", at_ms=10)
    a = finished_task(db, "completed", queue="d", at_ms=10)
    enqueue(db, "dep", queue="d", depends_on=[a], now=20)
    return db


SCHEDULE_KEYS = ("queue, priority, max_attempts, unique_key, on_conflict, unique_scope, "
                 "catch_up, catch_up_window, paused, if_exists, now")
FIELDS = "expected 5 fields (minute hour day-of-month month day-of-week)"


@pytest.mark.parametrize("cron, problem", [
    ("61 * * * *", 'cron "61 * * * *": minute field "61": 61 is out of range 0-59'),
    ("* 24 * * *", 'cron "* 24 * * *": hour field "24": 24 is out of range 0-23'),
    ("* * 0 * *", 'cron "* * 0 * *": day-of-month field "0": 0 is out of range 1-31'),
    ("* * * 13 *", 'cron "* * * 13 *": month field "13": 13 is out of range 1-12'),
    ("* * * * 8", 'cron "* * * * 8": day-of-week field "8": 8 is out of range 0-7'),
    ("*/0 * * * *", 'cron "*/0 * * * *": minute field "*/0": step 0 is out of range 1-59'),
    ("5-1 * * * *", 'cron "5-1 * * * *": minute field "5-1": range 5-1 runs backwards (5 > 1)'),
    ("* * * foo *", 'cron "* * * foo *": month field "foo": "foo" is not a number or a month name (jan-dec)'),
    ("* * * * funday", 'cron "* * * * funday": day-of-week field "funday": "funday" is not a number or a weekday name (sun-sat)'),
    ("a b c d e", 'cron "a b c d e": minute field "a": "a" is not a number'),
    ("1,,2 * * * *", 'cron "1,,2 * * * *": minute field "1,,2": empty list element'),
    ("* * *", f'cron "* * *": {FIELDS}, got 3'),
    ("* * * * * *", f'cron "* * * * * *": {FIELDS}, got 6'),
    ("", f'cron "": {FIELDS}, got 0'),
    ("0 0 30 2 *", 'cron "0 0 30 2 *": never occurs: no date in any year has that day-of-month in those months (and that day-of-week)'),
    ("@reboot", '"@reboot": @reboot is not supported: schedules follow the clock, and there is no daemon start to run at'),
    ("@fortnightly", '"@fortnightly": unknown macro "@fortnightly": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>'),
    ("@daily 5", '"@daily 5": @daily takes nothing after it'),
    ("@every", '"@every": @every needs a duration, like 30s, 5m or 1h30m (units d, h, m, s)'),
    ("@every 500ms", '"@every 500ms": "ms" is not a unit: the period is whole seconds, at least 1s (units d, h, m, s)'),
    ("@every 0s", '"@every 0s": the period must be at least 1s'),
    ("@every 10", '"@every 10": 10 has no unit (units d, h, m, s)'),
    ("@every 1.5h", '"@every 1.5h": amounts must be whole numbers (write 90m, not 1.5h)'),
    ("@every 367d", '"@every 367d": the period must be at most 366d (31622400s)'),
])
def test_an_expression_that_does_not_parse_is_refused(busy, cron, problem):
    refused(busy, "SELECT task_schedule('s', ?, 'job')", cron, message=f"task_schedule: {problem}")
    refused(busy, "SELECT task_schedule('new', ?, 'job')", cron, message=f"task_schedule: {problem}")


@pytest.mark.parametrize("args, problem", [
    (("", "@daily", "job"), "name must not be empty"),
    ((None, "@daily", "job"), "name must be text, got NULL"),
    ((7, "@daily", "job"), "name must be text, got an integer"),
    (("n", None, "job"), "cron must be text, got NULL"),
    (("n", "@daily", ""), "type must not be empty"),
    (("n", "@daily", None), "type must be text, got NULL"),
    (("n", "@daily", "job", "nope"), "details is not valid JSON: expected ident at line 1 column 2"),
    (("n", "@daily", "job", None, "nope"), "options are not valid JSON: expected ident at line 1 column 2"),
    (("n", "@daily", "job", None, "[1]"), "options must be a JSON object, got an array"),
    (("n", "@daily", "job", None, '{"x": 1}'), f'unknown option "x" (expected one of: {SCHEDULE_KEYS})'),
    (("n", "@daily", "job", None, '{"catch_up": "some"}'), "catch_up must be 'latest' or 'all', got 'some'"),
    (("n", "@daily", "job", None, '{"catch_up_window": 5}'), "catch_up_window applies to catch_up 'all'"),
    (("n", "@daily", "job", None, '{"catch_up": "latest", "catch_up_window": 5}'), "catch_up_window applies to catch_up 'all'"),
    (("n", "@daily", "job", None, '{"catch_up": "all", "catch_up_window": 0}'), f"catch_up_window must be between 1 and {MAX_TIME}, got 0"),
    (("n", "@daily", "job", None, '{"if_exists": "maybe"}'), "if_exists must be 'replace', 'keep' or 'error', got 'maybe'"),
    (("s", "@daily", "job", None, '{"if_exists": "error"}'), "a schedule named 's' exists (if_exists 'error')"),
    (("n", "@daily", "job", None, '{"on_conflict": "keep"}'), "on_conflict and unique_scope apply to a schedule with a unique_key"),
    (("n", "@daily", "job", None, '{"unique_scope": "completed"}'), "on_conflict and unique_scope apply to a schedule with a unique_key"),
    (("n", "@daily", "job", None, '{"unique_key": "k", "on_conflict": "maybe"}'), "on_conflict must be 'keep', 'replace' or 'error', got 'maybe'"),
    (("n", "@daily", "job", None, '{"unique_key": ""}'), 'option "unique_key" must not be empty'),
    (("n", "@daily", "job", None, '{"queue": ""}'), 'option "queue" must not be empty'),
    (("n", "@daily", "job", None, '{"max_attempts": 0}'), "max_attempts must be between 1 and 1000, got 0"),
    (("n", "@daily", "job", None, '{"priority": 2147483648}'), "priority must be between -2147483648 and 2147483647, got 2147483648"),
    (("n", "@daily", "job", None, '{"paused": 1}'), 'option "paused" must be true or false, got a number'),
    (("n", "@daily", "job", None, '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
])
def test_task_schedule_bad_inputs(busy, args, problem):
    marks = ", ".join("?" * len(args))
    refused(busy, f"SELECT task_schedule({marks})", *args, message=f"task_schedule: {problem}")


@pytest.mark.parametrize("fn", ["task_schedule_pause", "task_schedule_resume"])
@pytest.mark.parametrize("args, problem", [
    (("zz",), "no schedule named 'zz'"),
    (("zz", '{"now": 5}'), "no schedule named 'zz'"),
    (("",), "name must not be empty"),
    ((None,), "name must be text, got NULL"),
    (("s", '{"x": 1}'), 'unknown option "x" (expected one of: now)'),
    (("s", '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
    (("s", "nope"), "options are not valid JSON: expected ident at line 1 column 2"),
])
def test_pause_and_resume_bad_inputs(busy, fn, args, problem):
    marks = ", ".join("?" * len(args))
    refused(busy, f"SELECT {fn}({marks})", *args, message=f"{fn}: {problem}")


@pytest.mark.parametrize("arg, problem", [
    ("zz", "no schedule named 'zz'"),
    ("", "name must not be empty"),
    (None, "name must be text, got NULL"),
])
def test_unschedule_bad_inputs(busy, arg, problem):
    refused(busy, "SELECT task_unschedule(?)", arg, message=f"task_unschedule: {problem}")


@pytest.mark.parametrize("options, problem", [
    ('{"x": 1}', 'unknown option "x" (expected one of: now)'),
    ('{"now": -1}', f"now must be between 0 and {MAX_TIME}, got -1"),
    ('{"now": "soon"}', 'option "now" must be a whole number, got a string'),
    ("[]", "options must be a JSON object, got an array"),
    ("nope", "options are not valid JSON: expected ident at line 1 column 2"),
])
def test_task_tick_bad_inputs(busy, options, problem):
    refused(busy, "SELECT task_tick(?)", options, message=f"task_tick: {problem}")


PRUNE_KEYS = "older_than, before, status, queue, step, events, now"
NEITHER = "give older_than (ms) or before (a time in ms): which finished tasks to delete"


@pytest.mark.parametrize("options, problem", [
    ({"now": 5_000}, NEITHER),
    (None, NEITHER),
    ({"older_than": -1, "now": 5_000}, f"older_than must be between 0 and {MAX_TIME}, got -1"),
    ({"older_than": MAX_TIME + 1}, f"older_than must be between 0 and {MAX_TIME}, got {MAX_TIME + 1}"),
    ({"before": -1}, f"before must be between 0 and {MAX_TIME}, got -1"),
    ({"older_than": 1, "before": 2}, "give older_than or before, not both"),
    ({"older_than": 0, "status": "queued"}, 'option "status" names finished statuses (\'completed\', \'failed\', \'cancelled\'), got "queued"'),
    ({"older_than": 0, "status": "running"}, 'option "status" names finished statuses (\'completed\', \'failed\', \'cancelled\'), got "running"'),
    ({"older_than": 0, "status": ["completed", "waiting"]}, 'option "status" names finished statuses (\'completed\', \'failed\', \'cancelled\'), got "waiting"'),
    ({"older_than": 0, "status": []}, "option \"status\" must be 'completed', 'failed' or 'cancelled', or a non-empty array of them"),
    ({"older_than": 0, "status": 5}, "option \"status\" must be 'completed', 'failed' or 'cancelled', or a non-empty array of them"),
    ({"older_than": 0, "step": 0}, "step must be between 1 and 100000, got 0"),
    ({"older_than": 0, "step": 100_001}, "step must be between 1 and 100000, got 100001"),
    ({"older_than": 0, "queue": ""}, 'option "queue" must not be empty'),
    ({"older_than": 0, "queues": "r"}, f'unknown option "queues" (expected one of: {PRUNE_KEYS})'),
    ({"older_than": 1.5}, 'option "older_than" must be a whole number, got 1.5'),
    ({"older_than": 0, "now": -1}, f"now must be between 0 and {MAX_TIME}, got -1"),
])
def test_task_prune_bad_inputs(busy, options, problem):
    # Every one of these would otherwise delete the finished tasks.
    arg = None if options is None else json.dumps(options)
    refused(busy, "SELECT task_prune(?)", arg, message=f"task_prune: {problem}")
    assert one(busy, "SELECT count(*) FROM tasks WHERE status = 'completed'") == 2


def test_task_prune_needs_its_options_argument(busy):
    with pytest.raises(apsw.SQLError, match="wrong number of arguments to function task_prune"):
        rows(busy, "SELECT task_prune()")


@pytest.mark.parametrize("options, problem", [
    ('{"retention": 0}', 'option "retention" must be at least 1 ms, got 0'),
    ('{"retention": -5}', 'option "retention" must be at least 1 ms, got -5'),
    ('{"retention": {"failed": 0}}', 'option "retention.failed" must be at least 1 ms, got 0'),
    ('{"retention": {"done": 5}}', 'unknown status "done" in option "retention" (expected one of: cancelled, completed, failed)'),
    ('{"retention": "1h"}', 'option "retention" must be a number of ms, an object of them by status, or null, got a string'),
    ('{"retention": true}', 'option "retention" must be a number of ms, an object of them by status, or null, got a boolean'),
    ('{"retain": 5}', 'unknown option "retain" (expected one of: paused, concurrency, rate, lease, max_attempts, backoff, backoff_max, retention, events, now)'),
])
def test_task_queue_retention_bad_inputs(busy, options, problem):
    refused(busy, "SELECT task_queue('r', ?)", options, message=f"task_queue: {problem}")


@pytest.mark.parametrize("args, problem", [
    (('{"queues": 1}',), 'unknown option "queues" (expected one of: queue, now)'),
    (('{"queue": ""}',), 'option "queue" must not be empty'),
    (('{"queue": 5}',), 'option "queue" must be a string, got a number'),
    (('{"now": -1}',), f"now must be between 0 and {MAX_TIME}, got -1"),
    (("[]",), "options must be a JSON object, got an array"),
    ((5,), "options must be text or NULL, got an integer"),
])
def test_task_stats_bad_inputs(busy, args, problem):
    refused(busy, "SELECT task_stats(?)", *args, message=f"task_stats: {problem}")


@pytest.mark.parametrize("options, problem", [
    ('{"x": 1}', 'unknown option "x" (expected one of: index_completed, index_events)'),
    ('{"index_completed": 1}', 'option "index_completed" must be true or false, got a number'),
])
def test_task_init_bad_inputs(busy, options, problem):
    refused(busy, "SELECT task_init(?)", options, message=f"task_init: {problem}")
    assert one(busy, "SELECT count(*) FROM sqlite_master WHERE name = 'task_store_done'") == 0


@pytest.mark.parametrize("sql", [
    "SELECT task_schedule('s', '@daily', 'job')",
    "SELECT task_schedule_pause('s')",
    "SELECT task_schedule_resume('s')",
    "SELECT task_unschedule('s')",
    "SELECT task_tick()",
    "SELECT task_prune('{\"older_than\": 0}')",
    "SELECT task_stats()",
])
def test_the_operations_need_the_storage(raw_db, sql):
    fails(raw_db, sql, match="the task storage does not exist in this database; run SELECT task_init() first")
