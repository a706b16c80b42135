"""The event log (docs/reference/events.md): one row of task_events per
transition, written by the statement that makes it, so that a rolled-back
transition leaves no event and a committed one always has one; each queue's
events setting; pruning; cursors; task_wait's after_seq.

Every test supplies the clock, so the times in the events are the test's.
The error paths are proven to write no event by `fails` (its snapshot holds
the event log).
"""

import signal
import threading
import time

import apsw
import pytest

from conftest import ID1, ID2, ID3, UNKNOWN, claim, connect, enqueue, fails, one, opts, rows


def story(db, task_id):
    """(kind, status, at, attempt, worker, error, progress) of each event of a task."""
    return rows(db, """SELECT kind, status, at, attempt, worker, error, progress
                         FROM task_events WHERE task_id = ? ORDER BY seq""", task_id)


def kinds(db, task_id):
    return [(k, s) for k, s, *_ in story(db, task_id)]


def seqs(db):
    return [s for (s,) in rows(db, "SELECT seq FROM task_events ORDER BY seq")]


def test_a_task_s_life_is_its_events(db):
    enqueue(db, "resize", '{"w":1}', id=ID1, now=1000)
    assert claim(db, "w1", now=2000)["id"] == ID1
    assert one(db, "SELECT task_progress(?, 40, ?)", ID1, opts(now=2500)) == "running"
    assert one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(now=2600)) == "running"
    assert one(db, "SELECT task_complete(?, '{}', ?)", ID1, opts(now=3000)) == "completed"
    assert story(db, ID1) == [
        ("enqueued", "queued", 1000, 0, None, None, None),
        ("claimed", "running", 2000, 1, "w1", None, None),
        ("progress", "running", 2500, 1, "w1", None, 40),
        ("completed", "completed", 3000, 1, "w1", None, 100),
    ]
    # The view names the task's queue and type.
    assert rows(db, "SELECT DISTINCT queue, type FROM task_events") == [("default", "resize")]
    assert seqs(db) == [1, 2, 3, 4]


def test_failures_retries_and_cancels(db):
    enqueue(db, id=ID1, max_attempts=2, now=0)
    claim(db, now=10)
    one(db, "SELECT task_fail(?, 'disk full', ?)", ID1, opts(now=20))
    claim(db, "w2", now=10_000_000)
    one(db, "SELECT task_fail(?, 'disk full again', ?)", ID1, opts(now=10_000_010))
    one(db, "SELECT task_retry(?, ?)", ID1, opts(now=10_000_020))
    one(db, "SELECT task_cancel(?, ?)", ID1, opts(now=10_000_030))
    assert [(k, s, at, a, w, e) for k, s, at, a, w, e, _ in story(db, ID1)] == [
        ("enqueued", "queued", 0, 0, None, None),
        ("claimed", "running", 10, 1, "w1", None),
        ("failed", "queued", 20, 1, "w1", "disk full"),
        ("claimed", "running", 10_000_000, 2, "w2", None),
        ("failed", "failed", 10_000_010, 2, "w2", "disk full again"),
        ("retried", "queued", 10_000_020, 0, None, None),
        ("cancelled", "cancelled", 10_000_030, 0, None, None),
    ]


def test_a_lease_that_expires_is_an_event_then_a_claim(db):
    enqueue(db, id=ID1, max_attempts=2, now=0)
    claim(db, "w1", lease=100, now=1000)
    assert claim(db, "w2", lease=100, now=2000)["attempt"] == 2
    # No attempts left: the next claim fails it instead.
    assert claim(db, "w3", now=3000) is None
    assert [(k, s, at, a, w) for k, s, at, a, w, _, _ in story(db, ID1)] == [
        ("enqueued", "queued", 0, 0, None),
        ("claimed", "running", 1000, 1, "w1"),
        ("expired", "queued", 2000, 1, None),
        ("claimed", "running", 2000, 2, "w2"),
        ("expired", "failed", 3000, 2, "w2"),
    ]
    errors = [e for k, _, _, _, _, e, _ in story(db, ID1) if k == "expired"]
    assert errors == ["lease expired on attempt 1 (worker w1)",
                      "lease expired on attempt 2 (worker w2)"]


def test_a_rolled_back_transition_leaves_no_event(db):
    enqueue(db, id=ID1, now=0)
    before = seqs(db)
    db.execute("BEGIN")
    enqueue(db, id=ID2, now=1)
    claim(db, now=2)
    db.execute("ROLLBACK")
    assert seqs(db) == before
    db.execute("BEGIN")
    db.execute("SAVEPOINT s")
    claim(db, now=3)
    db.execute("ROLLBACK TO s")
    db.execute("COMMIT")
    assert seqs(db) == before
    # A committed one always has its event, in the caller's transaction too.
    db.execute("BEGIN")
    claim(db, now=4)
    db.execute("COMMIT")
    assert kinds(db, ID1) == [("enqueued", "queued"), ("claimed", "running")]


def test_refused_calls_write_no_event(db):
    enqueue(db, id=ID1, now=0)
    fails(db, "SELECT task_complete(?, '{}')", ID1, match="is queued")
    fails(db, "SELECT task_fail(?, 'x')", UNKNOWN, match="not found")
    fails(db, "SELECT task_enqueue('t', 'not json')", match="JSON")
    fails(db, "SELECT task_enqueue('t', NULL, ?)", opts(id=ID1), match="already exists",
          exc=apsw.ConstraintError)
    claim(db, now=1)
    one(db, "SELECT task_complete(?, '{}', ?)", ID1, opts(now=2))
    fails(db, "SELECT task_cancel(?)", ID1, match="already completed")
    fails(db, "SELECT task_retry(?)", ID1, match="only failed or cancelled")


def test_every_kind_of_enqueue_writes_its_one_event_and_a_held_key_none(db):
    # A unique key new, kept, refused, replaced; a child; a blocked dependent.
    enqueue(db, id=ID1, unique_key="k", now=0)
    assert enqueue(db, id=ID2, unique_key="k", now=1) == ID1
    fails(db, "SELECT task_enqueue('job', NULL, ?)",
          opts(id=ID2, unique_key="k", on_conflict="error", now=2),
          match="is taken by task", exc=apsw.ConstraintError)
    assert enqueue(db, "job", '{"v": 2}', id=ID2, unique_key="k", on_conflict="replace",
                   now=3) == ID1
    assert one(db, "SELECT details FROM tasks WHERE id = ?", ID1) == '{"v": 2}'
    child = enqueue(db, parent_id=ID1, now=4)
    dependent = enqueue(db, depends_on=[ID1], now=5)
    assert rows(db, "SELECT task_id, kind, status, at FROM task_events ORDER BY seq") == [
        (ID1, "enqueued", "queued", 0),
        (child, "enqueued", "queued", 4),
        (dependent, "enqueued", "blocked", 5),
    ]
    assert one(db, "SELECT count(*) FROM task_store") == 3


def test_batch_verbs_write_one_event_per_task(db):
    ids = [enqueue(db, details=f'{{"n":{i}}}', now=i) for i in range(5)]
    claimed = one(db, "SELECT task_claim_batch('w', 5, ?)", opts(now=10))
    assert claimed.count('"id"') == 5
    items = "[" + ",".join(f'{{"id":"{i}","result":{{}}}}' for i in ids[:3]) + "]"
    one(db, "SELECT task_complete_batch(?, ?)", items, opts(now=20))
    items = "[" + ",".join(f'{{"id":"{i}","error":"no"}}' for i in ids[3:]) + "]"
    one(db, "SELECT task_fail_batch(?, ?)", items, opts(now=30))
    counts = rows(db, "SELECT kind, count(*) FROM task_events GROUP BY kind ORDER BY kind")
    assert counts == [("claimed", 5), ("completed", 3), ("enqueued", 5), ("failed", 2)]
    for i in ids:
        assert len(kinds(db, i)) == 3


def test_the_tasks_table_writes_events_too(db):
    db.execute("INSERT INTO tasks(id, type, details, run_at) VALUES (?, 't', NULL, 5)", (ID1,))
    db.execute("UPDATE tasks SET priority = 3 WHERE id = ?", (ID1,))
    db.execute("UPDATE tasks SET status = 'cancelled' WHERE id = ?", (ID1,))
    assert [k for k, _ in kinds(db, ID1)] == ["enqueued", "updated", "cancelled"]


def test_workflow_transitions(db):
    parent = enqueue(db, "playlist", id=ID1, now=0)
    assert claim(db, now=1)["id"] == parent
    child = enqueue(db, "video", parent_id=parent, id=ID2, now=2)
    assert one(db, "SELECT task_complete(?, '{}', ?)", parent, opts(now=3)) == "waiting"
    zipper = enqueue(db, "zip", depends_on=[child], id=ID3, now=4)
    assert claim(db, now=5)["id"] == child
    one(db, "SELECT task_complete(?, '{}', ?)", child, opts(now=6))
    assert kinds(db, parent) == [
        ("enqueued", "queued"), ("claimed", "running"), ("waiting", "waiting"),
        ("completed", "completed")]
    assert kinds(db, zipper) == [("enqueued", "blocked"), ("released", "queued")]
    # The child's completion, the parent's and the release: one transaction,
    # consecutive events.
    last = rows(db, "SELECT task_id, kind, at FROM task_events ORDER BY seq DESC LIMIT 3")
    assert sorted(last) == sorted([(child, "completed", 6), (parent, "completed", 6),
                                   (zipper, "released", 6)])


def test_a_failure_that_cancels_dependents_names_it(db):
    dep = enqueue(db, id=ID1, max_attempts=1, now=0)
    after = enqueue(db, depends_on=[dep], id=ID2, now=1)
    claim(db, now=2)
    one(db, "SELECT task_fail(?, 'broken', ?)", dep, opts(now=3))
    (kind, status, at, _, _, error, _) = story(db, after)[-1]
    assert (kind, status, at) == ("cancelled", "cancelled", 3)
    assert dep in error


def test_write_back_records_what_it_writes(db):
    enqueue(db, id=ID1, now=0)
    claim(db, now=0)
    for i, p in enumerate([10, 20, 30]):
        one(db, "SELECT task_progress(?, ?, ?)", ID1, p, opts(now=100 + i, writeback=1000))
    # The first report is written; the next two are held in memory.
    assert [p for k, *_, p in story(db, ID1) if k == "progress"] == [10]
    one(db, "SELECT task_progress(?, 50, ?)", ID1, opts(now=2000, writeback=1000))
    assert [p for k, *_, p in story(db, ID1) if k == "progress"] == [10, 50]


def test_a_queue_keeps_all_transitions_or_no_events(db):
    assert '"events":"all"' in one(db, "SELECT task_queue('quiet')")
    assert '"events":"transitions"' in one(
        db, "SELECT task_queue('some', ?)", opts(events="transitions"))
    one(db, "SELECT task_queue('quiet', ?)", opts(events="off"))
    a = enqueue(db, queue="some", now=0)
    b = enqueue(db, queue="quiet", now=0)
    for q in ("some", "quiet"):
        task_id = claim(db, queue=q, now=1)["id"]
        one(db, "SELECT task_progress(?, 50, ?)", task_id, opts(now=2))
        one(db, "SELECT task_complete(?, '{}', ?)", task_id, opts(now=3))
    assert [k for k, _ in kinds(db, a)] == ["enqueued", "claimed", "completed"]
    assert kinds(db, b) == []
    # Back on: the next transitions are recorded.
    one(db, "SELECT task_queue('quiet', ?)", opts(events="all"))
    c = enqueue(db, queue="quiet", now=4)
    assert kinds(db, c) == [("enqueued", "queued")]
    # A move between queues follows the rule of the queue it moves to.
    one(db, "SELECT task_queue('quiet', ?)", opts(events="off"))
    db.execute("UPDATE tasks SET queue = 'some' WHERE id = ?", (c,))
    db.execute("UPDATE tasks SET queue = 'quiet' WHERE id = ?", (c,))
    assert [k for k, _ in kinds(db, c)] == ["enqueued", "updated"]


def test_bad_event_settings_are_refused(db):
    fails(db, "SELECT task_queue('q', ?)", opts(events="none"),
          match="option \"events\" must be 'all', 'transitions' or 'off', got \"none\"")
    fails(db, "SELECT task_queue('q', ?)", opts(events=1), match='option "events" must be')


def test_the_cursor_survives_a_restart(db, tmp_path):
    for i in range(3):
        enqueue(db, now=i)
    cursor = max(seqs(db))
    db.close()
    again = connect(tmp_path / "task.db")
    enqueue(again, now=10)
    new = rows(again, "SELECT seq, kind FROM task_events WHERE seq > ? ORDER BY seq", cursor)
    assert new == [(cursor + 1, "enqueued")]
    again.close()


def test_prune_deletes_old_events_but_never_the_newest(db):
    for i in range(4):
        enqueue(db, id=[ID1, ID2, ID3, UNKNOWN][i], now=1000 * i)
    # The newest event stays, whatever its age, so the next seq follows it.
    out = one(db, "SELECT task_prune(?)", opts(older_than=0, now=10_000))
    assert '"events":3' in out
    assert seqs(db) == [4]
    enqueue(db, now=20_000)
    assert seqs(db) == [4, 5]
    # Only what is older than the cutoff goes.
    out = one(db, "SELECT task_prune(?)", opts(before=10_000, now=30_000))
    assert '"events":1' in out and seqs(db) == [5]


def test_prune_keeps_events_when_told_or_of_one_queue(db):
    enqueue(db, now=0)
    enqueue(db, now=1)
    assert '"events":0' in one(db, "SELECT task_prune(?)", opts(older_than=0, events=False))
    assert '"events":0' in one(db, "SELECT task_prune(?)",
                               opts(older_than=0, status="completed"))
    assert '"events":0' in one(db, "SELECT task_prune(?)", opts(older_than=0, queue="default"))
    assert len(seqs(db)) == 2
    fails(db, "SELECT task_prune(?)", opts(older_than=0, queue="default", events=True),
          match="events are pruned for every queue at once")


def test_deleted_tasks_leave_the_view_and_with_the_index_the_log(db):
    for i, task_id in enumerate([ID1, ID2]):
        enqueue(db, id=task_id, now=i)
        claim(db, now=10 + i)
        one(db, "SELECT task_complete(?, '{}', ?)", task_id, opts(now=20 + i))
    db.execute("DELETE FROM tasks WHERE id = ?", (ID1,))
    assert story(db, ID1) == []
    assert one(db, "SELECT count(*) FROM task_event_store WHERE task_id = ?", ID1) == 3
    assert one(db, "SELECT task_init(?)", opts(index_events=True)) == 9
    plan = rows(db, "EXPLAIN QUERY PLAN SELECT * FROM task_events WHERE task_id = ?", ID2)
    assert any("task_event_store_task" in r[-1] for r in plan), plan
    db.execute("DELETE FROM tasks WHERE id = ?", (ID2,))
    # All but the newest event of the log, which the next seq follows.
    newest = one(db, "SELECT max(seq) FROM task_event_store")
    assert rows(db, "SELECT seq FROM task_event_store WHERE task_id = ?", ID2) == [(newest,)]
    # A prune of old tasks takes their events along with the index.
    enqueue(db, id=ID3, now=30)
    claim(db, now=31)
    one(db, "SELECT task_complete(?, '{}', ?)", ID3, opts(now=32))
    enqueue(db, now=33)
    one(db, "SELECT task_prune(?)", opts(older_than=0, now=100, events=False))
    assert one(db, "SELECT count(*) FROM task_event_store WHERE task_id = ?", ID3) == 0


def test_the_feed_read_is_a_range_of_the_log(db):
    plan = rows(db, "EXPLAIN QUERY PLAN SELECT * FROM task_events WHERE seq > ? ORDER BY seq", 0)
    text = " | ".join(r[-1] for r in plan)
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid>?)" in text, text
    assert "TEMP B-TREE" not in text, text


def test_wait_after_seq_returns_at_once_for_events_it_has_not_seen(db, tmp_path):
    enqueue(db, now=0)
    newest = max(seqs(db))
    started = time.monotonic()
    assert one(db, "SELECT task_wait(10000, ?)", opts(after_seq=newest - 1)) == 1
    assert time.monotonic() - started < 2
    # Nothing after the newest: the timeout.
    assert one(db, "SELECT task_wait(50, ?)", opts(after_seq=newest)) == 0
    # Another connection's enqueue wakes it.
    other = connect(tmp_path / "task.db")
    timer = threading.Timer(0.3, lambda: enqueue(other, now=1))
    timer.start()
    started = time.monotonic()
    assert one(db, "SELECT task_wait(10000, ?)", opts(after_seq=newest)) == 1
    assert time.monotonic() - started < 5
    timer.join()
    other.close()
    assert max(seqs(db)) == newest + 1


def test_wait_after_seq_errors(db):
    fails(db, "SELECT task_wait(0, ?)", opts(after_seq=-1), match="after_seq must be")
    fails(db, "SELECT task_wait(0, ?)", opts(after_seq="x"), match='option "after_seq"')
    fails(db, "SELECT task_wait(0, ?)", opts(after=1), match="unknown option")


def test_a_schedule_s_occurrence_is_enqueued_with_its_event(db):
    one(db, "SELECT task_schedule('s', '@every 60s', 'tick', NULL, ?)", opts(now=0))
    assert one(db, "SELECT task_tick(?)", opts(now=60_000)).startswith('{"enqueued":1')
    (kind, status, at) = rows(db, "SELECT kind, status, at FROM task_events")[0]
    assert (kind, status) == ("enqueued", "queued")


def test_events_are_plain_sql_without_the_extension(tmp_path, db):
    enqueue(db, id=ID1, now=0)
    plain = apsw.Connection(str(tmp_path / "task.db"))
    assert plain.execute("SELECT task_id, kind, status FROM task_events").fetchall() == [
        (ID1, "enqueued", "queued")]
    plain.close()


def test_a_deleted_task_s_newest_event_stays_so_seq_only_grows(db):
    one(db, "SELECT task_init(?)", opts(index_events=True))
    enqueue(db, id=ID1, now=0)
    enqueue(db, id=ID2, now=0)
    one(db, "SELECT task_cancel(?, ?)", ID2, opts(now=1))
    assert seqs(db) == [1, 2, 3]
    out = one(db, "SELECT task_prune(?)", opts(older_than=0, now=10, events=False))
    # ID2's enqueue went with it; its cancel is the newest event, kept.
    assert '"deleted":1,"events":1' in out, out
    assert rows(db, "SELECT seq FROM task_event_store ORDER BY seq") == [(1,), (3,)]
    enqueue(db, id=ID3, now=20)
    assert rows(db, "SELECT seq, task_id FROM task_events ORDER BY seq") == [(1, ID1), (4, ID3)]


def test_after_seq_looks_at_the_events_the_view_shows(db):
    enqueue(db, id=ID1, now=0)
    enqueue(db, id=ID2, now=0)
    one(db, "SELECT task_cancel(?, ?)", ID2, opts(now=1))
    db.execute("DELETE FROM tasks WHERE id = ?", (ID2,))
    shown = one(db, "SELECT max(seq) FROM task_events")
    assert shown == 1 and one(db, "SELECT max(seq) FROM task_event_store") == 3
    # The hidden events of the deleted task do not end the wait.
    started = time.monotonic()
    assert one(db, "SELECT task_wait(300, ?)", opts(after_seq=shown)) == 0
    assert time.monotonic() - started >= 0.3


def test_a_failure_s_event_has_only_the_progress_it_writes(db):
    enqueue(db, id=ID1, now=0)
    claim(db, now=1)
    one(db, "SELECT task_progress(?, 30, ?)", ID1, opts(now=2))
    one(db, "SELECT task_fail(?, 'x', ?)", ID1, opts(now=3))
    # A report held by write-back is written by the failure, and is its event's.
    claim(db, now=10_000_000)
    one(db, "SELECT task_progress(?, 10, ?)", ID1, opts(now=10_000_001, writeback=60000))
    one(db, "SELECT task_progress(?, 60, ?)", ID1, opts(now=10_000_002, writeback=60000))
    one(db, "SELECT task_fail(?, 'y', ?)", ID1, opts(now=10_000_003))
    assert [p for k, *_, p in story(db, ID1) if k == "failed"] == [None, 60]


@pytest.mark.parametrize("sql, nothing", [
    ("SELECT task_wait(20000)", 0),
    ("""SELECT task_claim('w1', '{"wait": 20000}')""", None),
    ("""SELECT task_claim_batch('w1', 5, '{"wait": 20000}')""", "[]"),
])
def test_a_signal_ends_a_wait_early_so_its_handler_runs(db, sql, nothing):
    # The long-poll claims too: a worker's stop must not wait for the end
    # of its long poll (it did, until a Python worker's test caught it).
    caught = []
    previous = signal.signal(signal.SIGALRM, lambda *_: caught.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        assert one(db, sql) == nothing
        took = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert caught == [1]
    assert 0.25 <= took < 5, took


def test_a_whole_real_timeout_is_taken(db):
    # better-sqlite3 binds every JavaScript number as a real.
    assert one(db, "SELECT task_wait(10.0)") == 0
    fails(db, "SELECT task_wait(10.5)", match="timeout_ms must be an integer, got a real")
