"""sqlite-task on libSQL server (sqld 0.24.32, SQLite 3.45.1): a primary and a
read replica, both loading the extension, driven over Hrana (docs/scaling.md).

A replica runs on its own copy every request whose statements all read as
queries, and `SELECT task_claim(...)` reads as one: the extension refuses to
write there (the copy has `client_wal_index` beside it). The writes that
reach the primary are a write statement (`INSERT INTO tasks ...`) and a
transaction opened by a request of its own (`BEGIN`, then the verb, then
`COMMIT`, each its own request of one stream), which the replica forwards.

The load tests run real processes: producers enqueue through the primary,
4 workers claim and complete through the replica, and load.py proves that
nothing was claimed twice, nothing was lost and the replica converged. Lock
errors that the server passes back are retried by the workers, counted and
printed; any other error fails the test. Throughput is printed, never
asserted.
"""

import json
import threading
import time

import pytest

import load
from hrana import HranaError, Stream, query

T1 = "0193a000-0000-7000-8000-00000000a001"
T2 = "0193a000-0000-7000-8000-00000000a002"

# Every verb that writes, called as a plain statement: on the replica's copy.
WRITES = [
    "SELECT task_claim('w1')",
    "SELECT task_claim_batch('w1', 10)",
    f"SELECT task_complete('{T2}')",
    f"SELECT task_complete_batch('[{{\"id\": \"{T2}\"}}]')",
    f"SELECT task_fail('{T2}', 'boom')",
    f"SELECT task_heartbeat('{T2}')",
    f"SELECT task_progress('{T2}', 50)",
    f"SELECT task_complete_next('{T2}', NULL, 'w1')",
    "SELECT task_enqueue('job')",
    f"SELECT task_cancel('{T1}')",
    "SELECT task_tick()",
]


def converged(cluster, seconds=10):
    assert cluster.wait_converged(seconds), "the replica did not catch up with the primary"


@pytest.fixture
def queue(cluster):
    """T1 queued, T2 running (claimed by w0 on the primary), both copies equal."""
    p = cluster.primary
    query(*p, "SELECT task_enqueue('job', NULL, ?)", json.dumps({"id": T2}))
    query(*p, "SELECT task_claim('w0')")
    query(*p, "SELECT task_enqueue('job', NULL, ?)", json.dumps({"id": T1}))
    converged(cluster)
    return cluster


@pytest.mark.parametrize("sql", WRITES)
def test_a_write_verb_on_the_replica_copy_is_refused_and_changes_neither_copy(queue, sql):
    before = queue.snapshot_primary()
    _, marker = queue.replica_copy()
    with pytest.raises(HranaError) as e:
        query(*queue.replica, sql)
    assert "read replica" in e.value.message, e.value.message
    assert str(marker) in e.value.message and "BEGIN IMMEDIATE" in e.value.message
    assert e.value.code == "SQLITE_READONLY"
    time.sleep(0.2)  # a write that reached the primary would be replicated by now
    assert queue.snapshot_primary() == before
    assert queue.snapshot_replica() == before


def test_a_batch_request_runs_on_the_copy_and_is_refused(queue):
    """BEGIN ... COMMIT in one Hrana batch is one program of statements that
    all read as queries: the replica runs it on its copy, so the claim is
    refused there instead of claiming on the copy."""
    before = queue.snapshot_primary()
    for begin in ("BEGIN IMMEDIATE", "BEGIN"):
        with Stream(*queue.replica) as s, pytest.raises(HranaError) as e:
            s.batch([(begin, ()), ("SELECT task_claim('w1')", ()), ("COMMIT", ())])
        assert "read replica" in e.value.message
    time.sleep(0.2)
    assert queue.snapshot_primary() == before
    assert queue.snapshot_replica() == before


def test_reads_on_the_replica_work(queue):
    r = queue.replica
    assert query(*r, "SELECT status FROM tasks ORDER BY id") == [["queued"], ["running"]]
    assert query(*r, "SELECT count(*) FROM task_events WHERE kind = 'claimed'") == [[1]]
    (stats,) = json.loads(query(*r, "SELECT task_stats()")[0][0])["queues"]
    assert (stats["queued"], stats["running"]) == (1, 1)


def test_task_wait_on_the_replica_wakes_when_a_commit_is_replicated(queue):
    """task_wait only reads, so the replica runs it on its copy; replication
    writing the copy's file wakes it: a worker can wait there for work."""
    timer = threading.Timer(0.5, query, (*queue.primary, "SELECT task_enqueue('job')"))
    started = time.monotonic()
    timer.start()
    try:
        assert query(*queue.replica, "SELECT task_wait(10000)") == [[1]]
    finally:
        timer.join()
    assert 0.4 < time.monotonic() - started < 5
    seq = query(*queue.primary, "SELECT max(seq) FROM task_event_store")[0][0]
    converged(queue)
    assert query(*queue.replica, "SELECT task_wait(300, ?)",
                 json.dumps({"after_seq": seq})) == [[0]]


@pytest.mark.parametrize("begin", ["BEGIN IMMEDIATE", "BEGIN"])
def test_a_transaction_of_separate_requests_claims_on_the_primary(queue, begin):
    with Stream(*queue.replica) as s:
        s.execute(begin)
        task = json.loads(s.one("SELECT task_claim('w1')"))
        s.execute("COMMIT")
        assert task["id"] == T1
    assert query(*queue.primary, "SELECT status, worker FROM tasks WHERE id = ?", T1) \
        == [["running", "w1"]]
    converged(queue)
    with Stream(*queue.replica) as s:
        s.execute(begin)
        assert s.one("SELECT task_complete(?, NULL, '{\"attempt\": 1}')", T1) == "completed"
        s.execute("COMMIT")
    assert query(*queue.primary, "SELECT kind FROM task_events WHERE task_id = ? ORDER BY seq",
                 T1) == [["enqueued"], ["claimed"], ["completed"]]
    converged(queue)


def test_the_three_requests_may_share_one_http_request(queue):
    """A pipeline of three execute requests: each is its own request of the
    stream to the replica, so the claim is forwarded."""
    with Stream(*queue.replica) as s:
        rows = s.execute_many([("BEGIN IMMEDIATE", ()), ("SELECT task_claim('w1')", ()),
                               ("COMMIT", ())])
    assert json.loads(rows[1][0][0])["id"] == T1
    assert query(*queue.primary, "SELECT worker FROM tasks WHERE id = ?", T1) == [["w1"]]
    converged(queue)


def test_a_write_statement_on_the_tasks_table_is_forwarded(queue):
    """INSERT INTO tasks reads as a write: the replica sends it to the primary
    as it is, in autocommit (so producers can enqueue through a replica)."""
    query(*queue.replica, "INSERT INTO tasks(type, details) "
                          "SELECT 'job', json_object('n', value) FROM generate_series(1, 5)")
    assert query(*queue.primary, "SELECT count(*) FROM tasks WHERE type = 'job'") == [[7]]
    converged(queue)


def check(f):
    """What every load run must show; lock errors (retried) are reported."""
    assert f.check == "ok", f.check
    assert f.doubles == 0, f.details()
    assert f.lost == 0, f.details()
    assert f.done == f.tasks == f.completed, f.details()
    assert f.expired == 0, f.details()
    assert f.converged, f.details()
    other = [m for m in f.errors + f.producer_errors if "database is locked" not in m]
    assert not other, f.details()


def run(cluster, report, label, where="replica", **kw):
    """load.run, once more on a new primary and replica if the first run's
    primary stopped granting its write lock to anyone (sqld 0.24.32 can: see
    docs/scaling.md, "Limits"); that is reported, and a second one fails."""
    try:
        f = load.run(cluster, label, through=getattr(cluster, where), **kw)
    except load.Wedged as e:
        if not e.server_stuck:
            raise
        report(f"{label}: WEDGED: the primary stopped granting its write lock; run again on "
               "new servers")
        cluster.restart()
        f = load.run(cluster, label + " (second run)", through=getattr(cluster, where), **kw)
    report(f)
    check(f)
    return f


# What each worker's stream sets first: the extension's fair wait for the
# write lock, on the replica's connection and on the primary's (in a
# forwarded transaction), instead of sqld's 100 ms busy timeout.
BUSY_MS = 30_000


def test_four_workers_through_the_replica_with_batch_verbs(cluster, report):
    """The documented form: BEGIN IMMEDIATE / verb / COMMIT, a fair wait on
    each stream; no lock errors."""
    f = run(cluster, report, "batch verbs through the replica (BEGIN IMMEDIATE, 50 per claim, "
            "task_busy_timeout)", batch=50, tasks=10_000,
            enqueue_batch=500, busy_timeout=BUSY_MS, queue="batch")
    assert not f.errors and not f.producer_errors, f.details()


def test_four_workers_through_the_replica_with_sqlds_busy_timeout(cluster, report):
    """The same without task_busy_timeout: sqld's connections wait 100 ms for
    a lock, and the workers retry the lock errors they see."""
    run(cluster, report, "batch verbs through the replica (BEGIN IMMEDIATE, 50 per claim, "
        "sqld's 100 ms wait)", batch=50, tasks=10_000,
        enqueue_batch=500, queue="batch-plain")


def test_one_task_per_transaction_through_the_replica(cluster, report):
    run(cluster, report, "one task per transaction through the replica (BEGIN IMMEDIATE, "
        "task_busy_timeout)", tasks=400, busy_timeout=BUSY_MS,
        queue="single")


@pytest.mark.parametrize("where", ["replica", "primary"])
def test_deferred_begin(cluster, report, where):
    """BEGIN (deferred), the verb, COMMIT: the verb takes the write lock
    first, so it waits like any write instead of failing on its snapshot."""
    run(cluster, report, f"one task per transaction through the {where} (deferred BEGIN, "
        "sqld's 100 ms wait)", where=where, form="deferred", tasks=400,
        queue=f"deferred-{where}")
