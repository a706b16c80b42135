"""A claim from every queue over many queues (docs/reference/workers.md,
"Many queues"): it keeps claim order across the queues, sees this
connection's new work at once and another connection's within a second of
the claims' clock, and never returns NULL while a queue it may take from
has a ready task. The clock is supplied throughout; nothing here times
anything.
"""

import json
import random

import pytest

from conftest import claim, connect, enqueue, one, rows, vm_steps

QUEUES = 40


def fill_queues(db, n_queues, per_queue, now=0, priority=lambda q, i: 0):
    """`per_queue` tasks in each of queues q00 … q<n-1>, enqueued at `now`,
    round-robin over the queues."""
    with db:
        for i in range(per_queue):
            for q in range(n_queues):
                enqueue(db, queue=f"q{q:02d}", now=now + i, priority=priority(q, i))


def claim_order(db):
    """Every queued task in claim order: priority, then run_at, then enqueue order."""
    return [r[0] for r in rows(db, "SELECT id FROM task_store WHERE status = 'queued'"
                                   " ORDER BY priority DESC, run_at, seq")]


def test_claims_over_many_queues_come_in_claim_order(db):
    fill_queues(db, QUEUES, 5, priority=lambda q, i: (q * 7 + i * 3) % 5)
    expected = claim_order(db)
    got = [claim(db, now=100)["id"] for _ in expected]
    assert got == expected
    assert claim(db, now=100) is None


def test_this_connection_s_new_work_is_claimed_at_once(db):
    fill_queues(db, QUEUES, 3)
    assert claim(db, now=100)["queue"] == "q00"
    # A new queue, and an earlier head in a known one, both ahead of the rest.
    new = enqueue(db, queue="zz", priority=5, now=50)
    known = enqueue(db, queue="q30", priority=3, now=50)
    assert claim(db, now=100)["id"] == new
    assert claim(db, now=100)["id"] == known
    assert claim(db, now=100)["queue"] == "q01"


def test_a_delayed_task_is_claimed_as_soon_as_it_is_due_in_claim_order(db):
    fill_queues(db, QUEUES, 3)
    # A queue whose only task is delayed, and in a known queue a delayed
    # task above its ready head: neither is ready when the claims begin.
    alone = enqueue(db, queue="zz", priority=5, run_at=200)
    above = enqueue(db, queue="q05", priority=3, run_at=300)
    assert claim(db, now=100)["queue"] == "q00"
    assert claim(db, now=199)["queue"] == "q01"
    assert claim(db, now=200)["id"] == alone
    assert claim(db, now=299)["queue"] == "q02"
    assert claim(db, now=300)["id"] == above
    assert claim(db, now=300)["queue"] == "q03"


def test_a_queue_whose_top_priority_is_delayed_gives_its_ready_lower_priority(db):
    # Many delayed tasks above one ready task, by name and from every queue.
    with db:
        for i in range(300):
            enqueue(db, queue="mixed", priority=9, run_at=1_000 + i, now=0)
        ready = enqueue(db, queue="mixed", priority=1, now=0)
        other = enqueue(db, queue="other", priority=0, now=0)
    assert claim(db, queue="mixed", now=10)["id"] == ready
    assert claim(db, queue="mixed", now=10) is None
    assert claim(db, now=10)["id"] == other
    assert claim(db, now=10) is None
    assert claim(db, now=1_000)["priority"] == 9


@pytest.mark.parametrize("batch", [None, 6, 8])
def test_the_claim_does_not_step_over_the_delayed_tasks_above_the_ready_ones(db, batch):
    # Retries backing off at high priorities above ready work: the claim,
    # which holds the write lock, takes the ready head without reading each
    # delayed task (it looks at the priorities above one by one). Counted in
    # VM instructions, not timed: the same with 30 delayed tasks as with
    # 3,000. A batch of 8 takes all 7 ready tasks of three priorities and
    # looks for more below the third, past its delayed tasks.
    sql = (f"SELECT task_claim_batch('w', {batch}, '{{\"queue\": \"q\", \"now\": 10}}')" if batch
           else "SELECT task_claim('w', '{\"queue\": \"q\", \"now\": 10}')")
    steps = []
    for delayed in (30, 3_000):
        db.execute("DELETE FROM task_store")
        with db:
            for i in range(delayed):
                enqueue(db, queue="q", priority=9 - i % 3, run_at=1_000 + i, now=0)
            ready = []
            for priority, n in ((5, 2), (1, 3), (0, 2)):
                ready += [enqueue(db, queue="q", priority=priority, now=0) for _ in range(n)]
                for i in range(delayed):
                    enqueue(db, queue="q", priority=priority, run_at=1_000 + i, now=0)
        out, n = vm_steps(db, sql)
        got = [t["id"] for t in json.loads(out)] if batch else [json.loads(out)["id"]]
        assert got == ready[:batch or 1]
        steps.append(n)
    assert steps[1] <= steps[0] + 5, steps


@pytest.mark.parametrize("seed", range(6))
def test_claims_and_batches_keep_claim_order_among_delayed_tasks(db, seed):
    # Ready and delayed tasks mixed over five priorities; single claims and
    # batches of every size, as time passes, take exactly the ready tasks,
    # in claim order.
    rng = random.Random(seed)
    with db:
        for _ in range(120):
            enqueue(db, queue="q", priority=rng.randrange(5), run_at=rng.randrange(0, 400), now=0)
    now = 0
    while one(db, "SELECT count(*) FROM task_store WHERE status = 'queued'"):
        now += rng.randrange(0, 60)
        n = rng.choice([1, 1, 2, 3, 8, 40])
        expected = [r[0] for r in rows(
            db, "SELECT id FROM task_store WHERE status = 'queued' AND run_at <= ?"
                " ORDER BY priority DESC, run_at, seq LIMIT ?", now, n)]
        if n == 1 and rng.random() < 0.5:
            got = claim(db, queue="q", now=now)
            got = [] if got is None else [got["id"]]
        else:
            text = one(db, "SELECT task_claim_batch('w', ?, ?)", n,
                       json.dumps({"queue": "q", "now": now}))
            got = [t["id"] for t in json.loads(text)]
        assert got == expected, (now, n)


def test_this_connection_s_delayed_task_is_claimed_once_due(db):
    fill_queues(db, QUEUES, 3)
    assert claim(db, now=100)["queue"] == "q00"
    later = enqueue(db, queue="zz", priority=5, now=100, delay=50)
    assert claim(db, now=149)["queue"] == "q01"
    assert claim(db, now=150)["id"] == later


def test_another_connection_s_new_work_is_seen_within_a_second(db, tmp_path):
    fill_queues(db, QUEUES, 3)
    other = connect(tmp_path / "task.db")
    try:
        assert claim(db, now=1_000)["queue"] == "q00"
        new = enqueue(other, queue="zz", priority=5, now=50)
        # Within the second the scan is trusted, the new head may wait; the
        # first claim a second after the scan takes it, if none did before.
        seen = [claim(db, now=1_000 + i * 100)["id"] for i in range(11)]
        assert new in seen
        assert seen.index(new) <= 10
    finally:
        other.close()


def test_a_claim_finds_what_is_left_when_another_connection_took_the_rest(db, tmp_path):
    fill_queues(db, QUEUES, 1)
    other = connect(tmp_path / "task.db")
    try:
        assert claim(db, now=100)["queue"] == "q00"
        # The other connection takes every task but the last queue's.
        for q in range(1, QUEUES - 1):
            assert claim(other, "w2", queue=f"q{q:02d}", now=100)
        got = claim(db, now=100)
        assert got is not None and got["queue"] == f"q{QUEUES - 1:02d}"
        assert claim(db, now=100) is None
    finally:
        other.close()


def test_a_queue_paused_by_another_connection_is_passed_over_at_once(db, tmp_path):
    fill_queues(db, QUEUES, 2)
    other = connect(tmp_path / "task.db")
    try:
        assert claim(db, now=100)["queue"] == "q00"
        # q01 comes next in claim order; paused elsewhere after this
        # connection read its head.
        one(other, "SELECT task_queue('q01', '{\"paused\": true}')")
        got = [claim(db, now=100)["queue"] for _ in range(QUEUES * 2 - 3)]
        assert "q01" not in got
        assert sorted(set(got)) == [f"q{q:02d}" for q in range(QUEUES) if q != 1]
        assert claim(db, now=100) is None
        one(other, "SELECT task_queue('q01', '{\"paused\": false}')")
        assert claim(db, now=100)["queue"] == "q01"
    finally:
        other.close()


def test_a_full_queue_is_passed_over_and_taken_again_once_it_has_a_slot(db):
    fill_queues(db, QUEUES, 2, priority=lambda q, i: 1 if q == 0 else 0)
    one(db, "SELECT task_queue('q00', '{\"concurrency\": 1}')")
    first = claim(db, now=100)
    assert first["queue"] == "q00"
    assert [claim(db, now=100)["queue"] for _ in range(3)] == ["q01", "q02", "q03"]
    assert one(db, "SELECT task_complete(?)", first["id"]) == "completed"
    # q00's second task comes first; the next scan (at most a second
    # later) reads its free slot.
    queues = [claim(db, now=100 + i * 500)["queue"] for i in range(4)]
    assert "q00" in queues and queues.index("q00") <= 2


def test_a_batch_over_many_queues_comes_from_the_first_head_s_queue(db):
    fill_queues(db, QUEUES, 4, priority=lambda q, i: 1 if q == 17 else 0)
    batch = json.loads(one(db, "SELECT task_claim_batch('w', 10, '{\"now\": 100}')"))
    assert [t["queue"] for t in batch] == ["q17"] * 4
    batch = json.loads(one(db, "SELECT task_claim_batch('w', 10, '{\"now\": 100}')"))
    assert [t["queue"] for t in batch] == ["q00"] * 4


def test_an_expired_lease_comes_first_over_many_queues(db):
    fill_queues(db, QUEUES, 2)
    lost = claim(db, now=100, lease=1_000)
    for _ in range(5):
        claim(db, now=200)
    again = claim(db, now=1_200)
    assert (again["id"], again["attempt"]) == (lost["id"], 2)


def test_a_claim_from_a_list_or_one_queue_among_many(db):
    fill_queues(db, QUEUES, 2)
    assert claim(db, queue="q33", now=100)["queue"] == "q33"
    got = claim(db, queue=["q20", "q10"], now=100)
    assert got["queue"] == "q10", "q10's head was enqueued first"
    assert one(db, "SELECT task_check()") == "ok"
