"""Workflows (docs/reference/workflows.md): parents and children, their
rollup and task_tree, dependencies, unique keys; each rule, and each bad
input with its message and an unchanged storage (`fails`). Time is supplied
with {"now": ms}; nothing here sleeps. Several processes at once:
test_workflow_processes.py.
"""

import json

import apsw
import pytest

from conftest import ID1, ID2, ID3, UNKNOWN, claim, connect, enqueue, fails, one, opts, rows, task


def tid(n):
    return f"0193b000-0000-7000-8000-{n:012x}"


P, C1, C2, C3, G = tid(1), tid(2), tid(3), tid(4), tid(5)


def status(db, task_id):
    return task(db, task_id)["status"]


def complete(db, task_id, now, result=None):
    return one(db, "SELECT task_complete(?, ?, ?)", task_id, result, opts(now=now))


def claim_id(db, queue, now, worker="w"):
    got = claim(db, worker, queue=queue, now=now)
    return None if got is None else got["id"]


@pytest.fixture
def family(db):
    """P claimed (own work running), with children C1, C2, C3 in queue 'kids'."""
    enqueue(db, "parent", id=P, queue="parents", now=0)
    assert claim_id(db, "parents", 0) == P
    for c in (C1, C2, C3):
        enqueue(db, "child", id=c, queue="kids", parent_id=P, now=10)
    return db


# ---- parents and children ---------------------------------------------------


def test_a_parent_completes_with_its_last_child(family):
    db = family
    assert (task(db, P)["children"], task(db, P)["children_done"]) == (3, 0)
    assert complete(db, P, 20) == "waiting"
    row = task(db, P)
    assert (row["status"], row["completed_at"], row["lease_until"]) == ("waiting", None, None)
    for n, c in enumerate((C1, C2, C3)):
        assert claim_id(db, "kids", 30 + n) == c
        assert complete(db, c, 40 + n) == "completed"
        assert status(db, P) == ("waiting" if n < 2 else "completed")
    row = task(db, P)
    assert (row["completed_at"], row["progress"], row["children_done"]) == (42, 100, 3)
    assert one(db, "SELECT task_check()") == "ok"


@pytest.mark.parametrize("after_claim", ["nothing", "a child", "a dependent", "another connection"])
def test_a_child_claimed_as_a_leaf_completes_as_what_it_is_by_then(family, tmp_path, after_claim):
    # A child with no children or dependents of its own, claimed by this
    # connection, completes by a statement of its own. One that gained a
    # child or a dependent after its claim, or that another connection
    # completes, takes the workflow path: the same end, and what follows.
    db = family
    complete(db, P, 20)
    assert claim_id(db, "kids", 21) == C1
    for c in (C2, C3):
        assert claim_id(db, "kids", 22) == c
        complete(db, c, 23)
    if after_claim == "a child":
        enqueue(db, "grandchild", id=G, queue="grand", parent_id=C1, now=24)
    if after_claim == "a dependent":
        enqueue(db, "after", id=G, queue="after", depends_on=[C1], now=24)
    completer = db if after_claim != "another connection" else connect(tmp_path / "task.db")
    try:
        got = complete(completer, C1, 25)
    finally:
        if completer is not db:
            completer.close()
    if after_claim == "a child":
        assert (got, status(db, C1), status(db, P)) == ("waiting", "waiting", "waiting")
        complete(db, claim_id(db, "grand", 26), 27)
        assert (status(db, C1), status(db, P)) == ("completed", "completed")
    else:
        assert (got, status(db, C1), status(db, P)) == ("completed", "completed", "completed")
    row = task(db, P)
    assert (row["children_done"], row["progress"]) == (3, 100)
    if after_claim == "a dependent":
        assert status(db, G) == "queued"
    c1 = one(db, "SELECT json_object('flags', flags, 'progress', progress, 'lease_until', lease_until)"
                 " FROM task_store WHERE id = ?", C1)
    assert json.loads(c1) == {"flags": 8, "progress": 100, "lease_until": None}
    events = rows(db, "SELECT kind, status FROM task_events WHERE task_id = ? AND kind = 'completed'", C1)
    assert events == [("completed", "completed")]
    assert one(db, "SELECT task_check()") == "ok"


def test_a_child_s_completion_tells_its_parent_by_id_when_the_parent_s_row_moved(db):
    # A connection remembers the row of a parent it told; the parent deleted
    # by hand and its rowid given to another task, the next child's
    # completion tells nobody (that task is not its parent).
    enqueue(db, "parent", id=P, queue="parents", now=0)
    for c in (C1, C2):
        enqueue(db, "child", id=c, queue="kids", parent_id=P, now=0)
    enqueue(db, "other", id=G, queue="others", now=0)
    assert claim_id(db, "kids", 10) == C1
    assert complete(db, C1, 20) == "completed"
    assert task(db, P)["children_done"] == 1
    seq = one(db, "SELECT seq FROM task_store WHERE id = ?", P)
    db.execute("DELETE FROM task_store WHERE id = ?", (P,))
    db.execute("UPDATE task_store SET seq = ? WHERE id = ?", (seq, G))
    before = task(db, G)
    assert claim_id(db, "kids", 30) == C2
    assert complete(db, C2, 40) == "completed"
    assert task(db, G) == before


def test_a_child_s_end_counts_down_its_parent_s_unfinished_children_and_leaves_the_parent_s_row(db):
    # Storage version 8: the count is a row of task_parent_store, so a child
    # that is not the last changes nothing on its parent's own row.
    enqueue(db, "parent", id=P, queue="parents", wait_for_children=True, on_child_failure="continue", now=0)
    for c in (C1, C2, C3):
        enqueue(db, "child", id=c, queue="kids", parent_id=P, now=1)
    count = "SELECT unfinished FROM task_parent_store WHERE id = ?"
    assert one(db, count, P) == 3
    parent_row = rows(db, "SELECT * FROM task_store WHERE id = ?", P)
    assert complete(db, claim_id(db, "kids", 2), 3) == "completed"
    assert one(db, "SELECT task_fail(?, 'disk', ?)", claim_id(db, "kids", 4), opts(retry=False, now=5)) == "failed"
    assert rows(db, "SELECT * FROM task_store WHERE id = ?", P) == parent_row
    assert one(db, count, P) == 1
    assert (task(db, P)["children_done"], task(db, P)["updated_at"]) == (2, 1)
    assert complete(db, claim_id(db, "kids", 6), 7) == "completed"
    assert one(db, count, P) == 0
    assert (status(db, P), task(db, P)["updated_at"]) == ("completed", 7)
    assert one(db, "SELECT task_check()") == "ok"


def test_a_count_left_by_a_parent_deleted_by_hand_does_not_count_for_the_task_that_takes_its_row(db):
    # A parent and its child deleted from task_store by hand leave their
    # count behind; the next task to take that rowid starts its own count.
    enqueue(db, "parent", id=P, queue="parents", wait_for_children=True, now=0)
    for c in (C1, C2):
        enqueue(db, "child", id=c, queue="kids", parent_id=P, now=0)
    seq = one(db, "SELECT seq FROM task_store WHERE id = ?", P)
    db.execute("DELETE FROM task_store")
    assert one(db, "SELECT task_check()") == f"task {P}: counted in task_parent_store, but does not exist"
    enqueue(db, "parent", id=G, queue="parents", wait_for_children=True, now=1)
    assert one(db, "SELECT seq FROM task_store WHERE id = ?", G) == seq
    enqueue(db, "child", id=C3, queue="kids", parent_id=G, now=1)
    assert rows(db, "SELECT seq, id, unfinished FROM task_parent_store") == [(seq, G, 1)]
    assert complete(db, claim_id(db, "kids", 2), 3) == "completed"
    assert status(db, G) == "completed"
    assert one(db, "SELECT task_check()") == "ok"


def test_a_parent_whose_children_were_deleted_goes_without_leaving_its_count(db):
    # Deleting its last child leaves a parent with no children, and its
    # count goes with them: the parent is then deleted as a plain task.
    enqueue(db, "parent", id=P, queue="parents", now=0)
    enqueue(db, "child", id=C1, queue="kids", parent_id=P, now=0)
    assert complete(db, claim_id(db, "kids", 1), 2) == "completed"
    assert complete(db, claim_id(db, "parents", 3), 4) == "completed"
    db.execute("DELETE FROM tasks WHERE id = ?", (C1,))
    assert (task(db, P)["children"], rows(db, "SELECT * FROM task_parent_store")) == (0, [])
    db.execute("DELETE FROM tasks WHERE id = ?", (P,))
    assert one(db, "SELECT count(*) FROM task_store") == 0
    assert one(db, "SELECT task_check()") == "ok"


def test_a_failed_child_fails_its_parent_even_when_the_parent_s_count_was_deleted_by_hand(db):
    enqueue(db, "parent", id=P, queue="parents", now=0)
    enqueue(db, "child", id=C1, queue="kids", parent_id=P, now=0)
    db.execute("DELETE FROM task_parent_store")
    assert one(db, "SELECT task_fail(?, 'disk', ?)", claim_id(db, "kids", 1), opts(retry=False, now=2)) == "failed"
    assert (status(db, P), task(db, P)["error"]) == ("failed", f"child task {C1} failed")


def test_a_parent_whose_children_finished_first_completes_with_its_own_work(db):
    enqueue(db, "parent", id=P, queue="parents", now=0)
    enqueue(db, "child", id=C1, queue="kids", parent_id=P, now=0)
    assert complete(db, claim_id(db, "kids", 1), 2) == "completed"
    assert status(db, P) == "queued"
    assert claim_id(db, "parents", 3) == P
    assert complete(db, P, 4) == "completed"


def test_a_parent_without_work_of_its_own_completes_with_its_last_child(db):
    enqueue(db, "batch", id=P, queue="batches", wait_for_children=True, now=0)
    assert status(db, P) == "waiting"
    for c in (C1, C2):
        enqueue(db, "child", id=c, queue="kids", parent_id=P, now=1)
    assert claim_id(db, "batches", 2) is None
    complete(db, claim_id(db, "kids", 3), 4)
    assert status(db, P) == "waiting"
    complete(db, claim_id(db, "kids", 5), 6)
    assert (status(db, P), task(db, P)["completed_at"]) == ("completed", 6)
    db.execute("INSERT INTO tasks(id, type, wait_for_children, now) VALUES (?, 'batch', 1, 7)", (ID1,))
    assert status(db, ID1) == "waiting"
    problem = ("task_enqueue: a task that only waits for its children has no work to wait for dependencies with;"
               " give depends_on to its children")
    msg = fails(db, "SELECT task_enqueue('b', NULL, ?)", opts(wait_for_children=True, depends_on=[P]),
                match="only waits")
    assert msg == problem


def test_a_group_without_children_yet_is_ok_and_can_be_cancelled(db):
    # A task that only waits for its children is waiting before it has any:
    # a state the functions make (task_check agrees), and one it can be
    # cancelled from, as any waiting task.
    enqueue(db, "batch", id=P, wait_for_children=True, now=0)
    assert one(db, "SELECT task_check()") == "ok"
    assert one(db, "SELECT task_cancel(?, ?)", P, opts(now=1)) == "cancelled"
    assert (status(db, P), task(db, P)["completed_at"]) == ("cancelled", 1)
    assert one(db, "SELECT task_check()") == "ok"


def test_a_parent_is_not_completed_while_a_child_is_unfinished(family):
    db = family
    complete(db, P, 20)
    for c in (C1, C2):
        complete(db, claim_id(db, "kids", 30), 31)
    enqueue(db, "late", id=G, queue="kids", parent_id=P, now=32)
    complete(db, claim_id(db, "kids", 33), 34)
    assert status(db, P) == "waiting"
    complete(db, claim_id(db, "kids", 35), 36)
    assert status(db, P) == "completed"


def test_the_rollup_is_the_mean_of_the_children_a_finished_one_counting_100(family):
    db = family
    progress = lambda: one(db, "SELECT progress FROM tasks WHERE id = ?", P)
    assert progress() == 0
    assert claim_id(db, "kids", 20) == C1
    one(db, "SELECT task_progress(?, 30, ?)", C1, opts(now=21))
    assert progress() == 10
    assert claim_id(db, "kids", 22) == C2
    one(db, "SELECT task_progress(?, 60, ?)", C2, opts(now=23))
    assert progress() == 30
    complete(db, C1, 24)
    assert progress() == pytest.approx(160 / 3)
    # The parent's own progress report does not show while it has children.
    one(db, "SELECT task_progress(?, 5, ?)", P, opts(now=25))
    assert progress() == pytest.approx(160 / 3)
    assert one(db, "SELECT progress FROM task_store WHERE id = ?", P) == 5


def test_grandchildren_roll_up_through_their_parents(family):
    db = family
    enqueue(db, "grandchild", id=G, queue="grand", parent_id=C1, now=11)
    enqueue(db, "grandchild", id=tid(6), queue="grand", parent_id=C1, now=11)
    assert claim_id(db, "grand", 20) == G
    one(db, "SELECT task_progress(?, 80, ?)", G, opts(now=21))
    # C1 = (80 + 0) / 2 = 40; P = (40 + 0 + 0) / 3.
    assert one(db, "SELECT progress FROM tasks WHERE id = ?", C1) == 40
    assert one(db, "SELECT progress FROM tasks WHERE id = ?", P) == pytest.approx(40 / 3)
    complete(db, G, 22)
    assert one(db, "SELECT progress FROM tasks WHERE id = ?", P) == pytest.approx(50 / 3)


def test_the_rollup_shows_progress_held_by_write_back(family, tmp_path):
    db = family
    assert claim_id(db, "kids", 20) == C1
    wb = opts(now=21, writeback=10_000)
    one(db, "SELECT task_progress(?, 30, ?)", C1, wb)
    one(db, "SELECT task_progress(?, 90, ?)", C1, opts(now=22, writeback=10_000))
    assert one(db, "SELECT progress FROM task_store WHERE id = ?", C1) == 30
    # Every connection of this process sees the held 90 in the rollup:
    # (90 + 0 + 0) / 3, not the stored (30 + 0 + 0) / 3.
    assert one(db, "SELECT progress FROM tasks WHERE id = ?", P) == 30
    other = connect(tmp_path / "task.db")
    try:
        assert one(other, "SELECT progress FROM tasks WHERE id = ?", P) == 30
    finally:
        other.close()
    # Written through by the next report after the interval.
    one(db, "SELECT task_progress(?, 60, ?)", C1, opts(now=20_000, writeback=10_000))
    assert one(db, "SELECT progress FROM tasks WHERE id = ?", P) == 20


def test_a_child_that_fails_for_good_fails_its_parent_and_cancels_its_siblings(family):
    db = family
    assert claim_id(db, "kids", 20) == C1
    assert claim_id(db, "kids", 20) == C2
    assert one(db, "SELECT task_fail(?, 'disk', ?)", C1, opts(retry=False, now=21)) == "failed"
    assert (status(db, P), task(db, P)["error"]) == ("failed", f"child task {C1} failed")
    for c in (C2, C3):
        assert (status(db, c), task(db, c)["error"]) == ("cancelled", f"parent task {P} failed")
    # The running sibling's worker learns it at its next report.
    assert one(db, "SELECT task_progress(?, 10, ?)", C2, opts(now=22)) == "cancelled"
    assert one(db, "SELECT task_check()") == "ok"


def test_a_child_failing_with_attempts_left_changes_nothing_upstream(family):
    db = family
    assert claim_id(db, "kids", 20) == C1
    assert one(db, "SELECT task_fail(?, 'flaky', ?)", C1, opts(now=21)) == "queued"
    assert status(db, P) == "running"
    assert task(db, P)["children_done"] == 0


def test_a_cancelled_child_fails_its_parent(family):
    one(family, "SELECT task_cancel(?, ?)", C2, opts(now=20))
    assert task(family, P)["error"] == f"child task {C2} was cancelled"


def test_on_child_failure_continue_counts_a_failed_child_as_finished(db):
    enqueue(db, "parent", id=P, queue="parents", on_child_failure="continue", now=0)
    assert claim_id(db, "parents", 0) == P
    enqueue(db, "child", id=C1, queue="kids", parent_id=P, max_attempts=1, now=1)
    enqueue(db, "child", id=C2, queue="kids", parent_id=P, now=1)
    complete(db, P, 2)
    one(db, "SELECT task_fail(?, 'x', ?)", claim_id(db, "kids", 3), opts(now=4))
    assert (status(db, P), one(db, "SELECT progress FROM tasks WHERE id = ?", P)) == ("waiting", 50)
    one(db, "SELECT task_cancel(?, ?)", C2, opts(now=5))
    assert status(db, P) == "completed"


def test_cancelling_a_parent_cancels_its_unfinished_descendants(family):
    db = family
    enqueue(db, "grandchild", id=G, queue="grand", parent_id=C1, now=11)
    complete(db, claim_id(db, "kids", 20), 21)  # C1 waits for G
    assert status(db, C1) == "waiting"
    assert claim_id(db, "kids", 22) == C2
    one(db, "SELECT task_cancel(?, ?)", P, opts(now=23))
    got = {t: (status(db, t), task(db, t)["error"]) for t in (P, C1, C2, C3, G)}
    assert got == {
        P: ("cancelled", None),
        C1: ("cancelled", f"parent task {P} was cancelled"),
        C2: ("cancelled", f"parent task {P} was cancelled"),
        C3: ("cancelled", f"parent task {P} was cancelled"),
        G: ("cancelled", f"parent task {C1} was cancelled"),
    }
    assert one(db, "SELECT task_check()") == "ok"


def test_retrying_a_failed_parent_retries_its_failed_and_cancelled_children(family):
    db = family
    complete(db, P, 20)
    complete(db, claim_id(db, "kids", 21), 22)  # C1 completed
    one(db, "SELECT task_fail(?, 'x', ?)", claim_id(db, "kids", 23), opts(retry=False, now=24))  # C2
    assert (status(db, P), status(db, C3)) == ("failed", "cancelled")
    fails(db, "SELECT task_retry(?)", C3, match=f"belongs to task {P}, which is failed")
    # Its own work was done: it waits for the retried children again, and
    # the retry says so.
    assert one(db, "SELECT task_retry(?, ?)", P, opts(now=30)) == "waiting"
    got = {t: (status(db, t), task(db, t)["attempts"]) for t in (P, C1, C2, C3)}
    assert got == {P: ("waiting", 0), C1: ("completed", 1), C2: ("queued", 0), C3: ("queued", 0)}
    assert task(db, P)["children_done"] == 1
    for _ in range(2):
        complete(db, claim_id(db, "kids", 31), 32)
    assert status(db, P) == "completed"
    assert one(db, "SELECT task_check()") == "ok"


def test_a_lease_that_expires_on_a_child_s_last_attempt_fails_the_parent(db):
    enqueue(db, "parent", id=P, queue="parents", now=0)
    enqueue(db, "child", id=C1, queue="kids", parent_id=P, max_attempts=1, now=0)
    claim(db, "w1", queue="kids", lease=100, now=0)
    # Any claim that reads reaps it, with what follows, in one transaction.
    assert claim(db, "w2", queue="other", now=1000) is None
    assert (status(db, C1), task(db, C1)["error"]) == ("failed", "lease expired on attempt 1 (worker w1)")
    assert status(db, P) == "failed"


def test_task_tree_lists_a_tree_in_order_with_depth_and_rollup(family):
    db = family
    enqueue(db, "grandchild", id=G, queue="grand", parent_id=C1, now=11)
    assert claim_id(db, "grand", 20) == G
    one(db, "SELECT task_progress(?, 50, ?)", G, opts(now=21))
    got = rows(db, "SELECT id, parent_id, depth, status, progress, children, children_done FROM task_tree(?)", P)
    assert got == [
        (P, None, 0, "running", pytest.approx(50 / 3), 3, 0),
        (C1, P, 1, "queued", 50, 1, 0),
        (G, C1, 2, "running", 50, 0, 0),
        (C2, P, 1, "queued", 0, 0, 0),
        (C3, P, 1, "queued", 0, 0, 0),
    ]
    assert rows(db, "SELECT id, depth FROM task_tree(?)", C1) == [(C1, 0), (G, 1)]
    assert rows(db, "SELECT * FROM task_tree(?)", UNKNOWN) == []
    assert one(db, "SELECT count(*) FROM task_tree WHERE root = ?", P) == 5


@pytest.mark.parametrize(
    "sql, args, problem",
    [
        ("SELECT * FROM task_tree", (), "task_tree: give the id of the root task: SELECT * FROM task_tree('…')"),
        ("SELECT * FROM task_tree(?)", ("nope",), "task_tree: root must be a UUID, got 'nope'"),
        ("SELECT * FROM task_tree(?)", (5,), "task_tree: root must be text, got an integer"),
        ("DELETE FROM task_tree WHERE root = ?", (P,), "task_tree: task_tree is read-only; change tasks through the tasks table"),
    ],
)
def test_task_tree_bad_input(family, sql, args, problem):
    assert fails(family, sql, *args, match=problem) == problem


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"parent_id": UNKNOWN}, f"task_enqueue: parent task {UNKNOWN} not found"),
        ({"parent_id": "nope"}, "task_enqueue: parent_id must be a UUID, got 'nope'"),
        ({"on_child_failure": "ignore"}, "task_enqueue: on_child_failure must be 'fail' or 'continue', got 'ignore'"),
        ({"on_child_failure": 1}, 'task_enqueue: option "on_child_failure" must be a string, got a number'),
    ],
)
def test_children_bad_input(family, options, problem):
    assert fails(family, "SELECT task_enqueue('x', NULL, ?)", opts(**options), match=problem) == problem


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
def test_a_finished_task_takes_no_children(db, end):
    enqueue(db, "parent", id=P, max_attempts=1, now=0)
    if end == "cancelled":
        one(db, "SELECT task_cancel(?)", P)
    else:
        claim(db, now=0)
        if end == "completed":
            complete(db, P, 1)
        else:
            one(db, "SELECT task_fail(?, 'x')", P)
    problem = f"task_enqueue: parent task {P} is {end}; children can only be added to a task that has not finished"
    assert fails(db, "SELECT task_enqueue('x', NULL, ?)", opts(parent_id=P), match="children can only") == problem


def test_deleting_a_finished_child_uncounts_it(family):
    db = family
    complete(db, claim_id(db, "kids", 20), 21)
    db.execute("DELETE FROM tasks WHERE id = ?", (C1,))
    assert (task(db, P)["children"], task(db, P)["children_done"]) == (2, 0)
    assert one(db, "SELECT task_check()") == "ok"


def test_check_names_every_broken_workflow_counter_and_changes_nothing(db):
    # Counters written around the functions, one broken invariant each.
    for t in (P, C1, C2, C3, G):
        enqueue(db, "t", id=t, now=0)
    enqueue(db, "child", id=ID1, parent_id=P, now=0)
    enqueue(db, "child", id=ID2, parent_id=C1, now=0)
    enqueue(db, "dependent", id=ID3, depends_on=[C2, C3], now=0)
    db.execute("UPDATE task_store SET children = 5 WHERE id = ?", (P,))
    db.execute("UPDATE task_store SET status = 'waiting' WHERE id = ?", (C1,))
    db.execute("UPDATE task_store SET status = 'completed', completed_at = 1 WHERE id = ?", (ID2,))
    db.execute("UPDATE task_parent_store SET unfinished = 0 WHERE id = ?", (C1,))
    db.execute("UPDATE task_store SET waiting_for = 1 WHERE id = ?", (ID3,))
    db.execute("UPDATE task_store SET dependents = 3 WHERE id = ?", (G,))
    db.execute("INSERT INTO task_deps(dep, task) VALUES (999, (SELECT seq FROM task_store WHERE id = ?))", (G,))
    db.execute("INSERT INTO task_parent_store(seq, id, unfinished) VALUES (999, ?, 1)", (UNKNOWN,))
    seq_g = one(db, "SELECT seq FROM task_store WHERE id = ?", G)
    before = (rows(db, "SELECT * FROM task_store ORDER BY seq") + rows(db, "SELECT * FROM task_deps")
              + rows(db, "SELECT * FROM task_parent_store"))
    assert one(db, "SELECT task_check()").split("\n") == [
        f"task {P}: counts 5 children (1 unfinished), has 1 (1 unfinished)",
        f"task {C1}: waiting, but no child of it is unfinished",
        f"task {UNKNOWN}: counted in task_parent_store, but does not exist",
        f"task {G}: counts 3 dependents, has 0",
        f"task {ID3}: blocked waiting for 1 dependencies, 2 have not completed",
        f"dependency of task rowid {seq_g} on task rowid 999: one of them does not exist",
    ]
    assert (rows(db, "SELECT * FROM task_store ORDER BY seq") + rows(db, "SELECT * FROM task_deps")
            + rows(db, "SELECT * FROM task_parent_store")) == before
    for t in (C2, C3):
        db.execute("UPDATE task_store SET status = 'completed', completed_at = 1 WHERE id = ?", (t,))
    assert f"task {ID3}: blocked, but every dependency of it has completed" in one(db, "SELECT task_check()")


def test_check_names_workflow_flags_that_disagree_with_the_rows(db):
    # The flags bits the two workflow indexes are partial on (docs/storage.md):
    # 16, a child its parent's rollup reads; 32, a task holding its unique key.
    enqueue(db, "parent", id=P, now=0)
    enqueue(db, "child", id=C1, parent_id=P, now=0)
    enqueue(db, "keyed", id=C2, unique_key="k", now=0)
    enqueue(db, "plain", id=C3, now=0)
    enqueue(db, "done", id=G, unique_key="g", now=0)
    assert one(db, "SELECT task_check()") == "ok"
    db.execute("UPDATE task_store SET progress = 40 WHERE id = ?", (C1,))
    db.execute("UPDATE task_store SET flags = flags & ~32 WHERE id = ?", (C2,))
    db.execute("UPDATE task_store SET flags = flags | 32 WHERE id = ?", (C3,))
    db.execute("UPDATE task_store SET status = 'completed', completed_at = 1 WHERE id = ?", (G,))
    before = rows(db, "SELECT * FROM task_store ORDER BY seq")
    assert one(db, "SELECT task_check()").split("\n") == [
        f"task {C1}: a child with progress or children of its own, but not read by its parent's rollup"
        " (flags 16 unset)",
        f"task {C2}: queued with unique key 'k', but not holding it (flags 32 unset)",
        f"task {C3}: holding a unique key it does not have (flags 32)",
        f"task {G}: completed, but holding its unique key 'g' (flags 32)",
    ]
    assert rows(db, "SELECT * FROM task_store ORDER BY seq") == before


def test_a_child_s_progress_puts_it_in_its_parent_s_rollup_index(family):
    # Its first report sets flags 16; finishing clears it; a plain task's
    # progress never writes flags (so its statements skip the index).
    db = family
    bit = lambda t: one(db, "SELECT flags & 16 FROM task_store WHERE id = ?", t)
    assert claim_id(db, "kids", 20) == C1
    assert bit(C1) == 0
    one(db, "SELECT task_progress(?, 0, ?)", C1, opts(now=21))
    assert bit(C1) == 0
    one(db, "SELECT task_progress(?, 30, ?)", C1, opts(now=22))
    assert bit(C1) == 16
    assert rows(db, "SELECT id FROM task_store INDEXED BY task_store_busy WHERE flags & 16") == [(C1,)]
    assert task(db, P)["progress"] == pytest.approx(10)
    one(db, "SELECT task_progress(?, 60, ?)", C1, opts(now=23))
    assert task(db, P)["progress"] == pytest.approx(20)
    complete(db, C1, 24)
    assert bit(C1) == 0
    assert task(db, P)["progress"] == pytest.approx(100 / 3)
    assert one(db, "SELECT task_check()") == "ok"


# ---- dependencies -------------------------------------------------------------


def test_a_task_waits_for_all_its_dependencies(db):
    enqueue(db, "a", id=ID1, queue="a", now=0)
    enqueue(db, "b", id=ID2, queue="a", now=0)
    enqueue(db, "c", id=ID3, queue="c", depends_on=[ID1, ID2, ID1], now=0)
    row = task(db, ID3)
    assert (row["status"], json.loads(row["depends_on"])) == ("blocked", [ID1, ID2])
    assert claim_id(db, "c", 1) is None
    complete(db, claim_id(db, "a", 1), 2)
    assert status(db, ID3) == "blocked"
    complete(db, claim_id(db, "a", 3), 4)
    # Released by the same statement: queued, with its own run_at.
    row = task(db, ID3)
    assert (row["status"], row["run_at"]) == ("queued", 0)
    assert claim_id(db, "c", 5) == ID3
    assert one(db, "SELECT task_check()") == "ok"


@pytest.mark.parametrize("width", [1, 8, 9, 20])
def test_a_fan_out_and_fan_in_release_each_dependent_once_by_its_last_dependency(db, width):
    # A root, `width` tasks that depend on it, and a join that depends on
    # them all and on the root: the root's completion releases the middle
    # and counts the join down; each middle task counts the join down, the
    # last releases it. Up to 8 dependents are counted down one by one, more
    # in one statement: both ways, and a completion that does both at once.
    root = enqueue(db, "root", queue="r", now=0)
    mids = [enqueue(db, "mid", queue="m", depends_on=[root], now=0) for _ in range(width)]
    join = enqueue(db, "join", queue="j", depends_on=[*mids, root], now=0)
    waiting = lambda: one(db, "SELECT waiting_for FROM task_store WHERE id = ?", join)
    assert waiting() == width + 1
    complete(db, claim_id(db, "r", 1), 2)
    assert {status(db, m) for m in mids} == {"queued"}
    assert (status(db, join), waiting()) == ("blocked", width)
    for i in range(width):
        assert status(db, join) == "blocked", f"released after {i} of {width}"
        complete(db, claim_id(db, "m", 3 + i), 3 + i)
        assert waiting() == width - 1 - i
    assert status(db, join) == "queued"
    released = rows(db, "SELECT task_id, count(*) FROM task_events WHERE kind = 'released' GROUP BY task_id")
    assert sorted(released) == sorted((t, 1) for t in [*mids, join])
    assert claim_id(db, "j", 100) == join
    assert one(db, "SELECT task_check()") == "ok"


def test_a_dependency_completed_before_counts_as_done(db):
    enqueue(db, "a", id=ID1, now=0)
    complete(db, claim_id(db, "default", 0), 1)
    enqueue(db, "b", id=ID2, depends_on=[ID1], now=2)
    assert status(db, ID2) == "queued"


def test_a_failed_dependency_cancels_its_dependents_in_turn(db):
    enqueue(db, "a", id=ID1, queue="a", max_attempts=1, now=0)
    enqueue(db, "b", id=ID2, queue="b", depends_on=[ID1], now=0)
    enqueue(db, "c", id=ID3, queue="c", depends_on=[ID2], now=0)
    one(db, "SELECT task_fail(?, 'x', ?)", claim_id(db, "a", 1), opts(now=2))
    assert (status(db, ID2), task(db, ID2)["error"]) == ("cancelled", f"dependency task {ID1} failed")
    assert (status(db, ID3), task(db, ID3)["error"]) == ("cancelled", f"dependency task {ID2} was cancelled")
    # Retried, a dependent waits again for what has not completed, and the
    # retry returns the status it is in.
    assert one(db, "SELECT task_retry(?, ?)", ID3, opts(now=3)) == "blocked"
    assert status(db, ID3) == "blocked"
    assert one(db, "SELECT task_retry(?, ?)", ID1, opts(now=4)) == "queued"
    assert one(db, "SELECT task_retry(?, ?)", ID2, opts(now=4)) == "blocked"
    assert status(db, ID2) == "blocked"
    for q in ("a", "b", "c"):
        complete(db, claim_id(db, q, 5), 6)
    assert [status(db, t) for t in (ID1, ID2, ID3)] == ["completed"] * 3
    assert one(db, "SELECT task_check()") == "ok"


def test_deleting_a_failed_dependency_releases_its_blocked_dependents(db):
    enqueue(db, "a", id=ID1, queue="a", max_attempts=1, now=0)
    enqueue(db, "a", id=ID2, queue="a", now=0)
    enqueue(db, "c", id=ID3, queue="c", depends_on=[ID1, ID2], now=0)
    one(db, "SELECT task_fail(?, 'x', ?)", claim_id(db, "a", 1), opts(now=2))
    one(db, "SELECT task_retry(?, ?)", ID3, opts(now=3))
    assert (status(db, ID3), task(db, ID3)["updated_at"]) == ("blocked", 3)
    # The failed dependency goes: the dependent waits only for ID2 now, and
    # is released when it completes. DELETE takes no clock: updated_at stays.
    db.execute("DELETE FROM tasks WHERE id = ?", (ID1,))
    row = task(db, ID3)
    assert (row["status"], json.loads(row["depends_on"]), row["updated_at"]) == ("blocked", [ID2], 3)
    assert one(db, "SELECT task_check()") == "ok"
    complete(db, claim_id(db, "a", 4), 5)
    assert status(db, ID3) == "queued"
    # With its last unfinished dependency deleted, a dependent is released
    # by the DELETE itself.
    enqueue(db, "a", id=G, queue="a", max_attempts=1, now=6)
    enqueue(db, "c", id=C1, queue="c", depends_on=[G, ID2], now=6)
    one(db, "SELECT task_fail(?, 'x', ?)", claim_id(db, "a", 7), opts(now=8))
    one(db, "SELECT task_retry(?, ?)", C1, opts(now=9))
    assert status(db, C1) == "blocked"
    db.execute("DELETE FROM tasks WHERE id = ?", (G,))
    assert (status(db, C1), task(db, C1)["depends_on"]) == ("queued", json.dumps([ID2]).replace(" ", ""))
    assert one(db, "SELECT task_check()") == "ok"


def test_a_blocked_task_can_be_rescheduled_and_cancelled(db):
    enqueue(db, "a", id=ID1, queue="a", now=0)
    enqueue(db, "b", id=ID2, queue="b", depends_on=[ID1], now=0)
    db.execute("UPDATE tasks SET priority = 7 WHERE id = ?", (ID2,))
    assert task(db, ID2)["priority"] == 7
    assert one(db, "SELECT task_cancel(?)", ID2) == "cancelled"
    complete(db, claim_id(db, "a", 1), 2)
    assert status(db, ID2) == "cancelled"
    assert one(db, "SELECT task_check()") == "ok"


def test_dependencies_through_insert_into_tasks(db):
    enqueue(db, "a", id=ID1, now=0)
    db.execute("INSERT INTO tasks(id, type, depends_on, now) VALUES (?, 'b', json_array(?), 1)", (ID2, ID1))
    assert (status(db, ID2), task(db, ID2)["depends_on"]) == ("blocked", f'["{ID1}"]')
    problem = "tasks: column depends_on must be a JSON array of task ids"
    assert fails(db, "INSERT INTO tasks(type, depends_on) VALUES ('b', '{}')", match=problem) == problem


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"depends_on": [UNKNOWN]}, f"dependency task {UNKNOWN} not found"),
        ({"depends_on": ["nope"]}, "depends_on must be a UUID, got 'nope'"),
        ({"depends_on": ID1}, 'option "depends_on" must be an array of task ids, got a string'),
        ({"depends_on": [1]}, 'option "depends_on" must be an array of task ids'),
        ({"depends_on": {"a": ID1}}, 'option "depends_on" must be an array of task ids, got an object'),
        ({"id": ID3, "depends_on": [ID3]}, f"task {ID3} cannot depend on itself"),
        ({"depends_on": [ID2]}, f"dependency task {ID2} is failed; retry it first"),
    ],
)
def test_dependencies_bad_input(db, options, problem):
    enqueue(db, "a", id=ID1, now=0)
    enqueue(db, "x", id=ID2, max_attempts=1, queue="x", now=0)
    one(db, "SELECT task_fail(?, 'x')", claim_id(db, "x", 0))
    msg = fails(db, "SELECT task_enqueue('b', NULL, ?)", opts(**options), match=problem)
    assert msg == "task_enqueue: " + problem


def test_no_cycle_through_a_parent(family):
    db = family
    # A new child of P would be waited for by P: it may not wait for P, nor
    # for a task that waits for P (G depends on P).
    enqueue(db, "d", id=G, queue="d", depends_on=[P], now=11)
    for dep in (P, G):
        msg = fails(db, "SELECT task_enqueue('e', NULL, ?)", opts(parent_id=P, depends_on=[dep]),
                    match="cannot be a dependency")
        assert msg == (
            f"task_enqueue: task {dep} cannot be a dependency of a child of task {P}: it waits for "
            f"task {P}, which would wait for this child"
        )


# ---- unique tasks -------------------------------------------------------------


def test_a_unique_key_is_held_by_one_task_per_queue(db):
    first = enqueue(db, "sync", '{"v": 1}', queue="q", unique_key="k", now=0)
    assert enqueue(db, "sync", '{"v": 2}', queue="q", unique_key="k", now=1) == first
    other_queue = enqueue(db, "sync", None, queue="r", unique_key="k", now=1)
    assert other_queue != first
    assert rows(db, "SELECT queue, details, unique_key FROM tasks ORDER BY rowid") == [
        ("q", '{"v": 1}', "k"), ("r", None, "k"),
    ]


@pytest.mark.parametrize("end, held_after", [("completed", False), ("failed", False), ("cancelled", False)])
def test_a_key_is_released_when_its_task_finishes(db, end, held_after):
    first = enqueue(db, "sync", queue="q", unique_key="k", max_attempts=1, now=0)
    if end == "cancelled":
        one(db, "SELECT task_cancel(?)", first)
    else:
        claim_id(db, "q", 1)
        if end == "completed":
            complete(db, first, 2)
        else:
            one(db, "SELECT task_fail(?, 'x')", first)
    assert (enqueue(db, "sync", queue="q", unique_key="k", now=3) == first) == held_after


def test_unique_scope_completed_runs_once_ever(db):
    first = enqueue(db, "migrate", queue="q", unique_key="m1", unique_scope="completed", max_attempts=1, now=0)
    complete(db, claim_id(db, "q", 1), 2)
    assert enqueue(db, "migrate", queue="q", unique_key="m1", unique_scope="completed", now=3) == first
    # A failed run does not hold it.
    second = enqueue(db, "migrate", queue="q", unique_key="m2", unique_scope="completed", max_attempts=1, now=4)
    one(db, "SELECT task_fail(?, 'x')", claim_id(db, "q", 5))
    assert enqueue(db, "migrate", queue="q", unique_key="m2", unique_scope="completed", now=6) != second


def test_on_conflict_replace_updates_a_queued_holder_only(db):
    first = enqueue(db, "sync", '{"v": 1}', queue="q", unique_key="k", now=0)
    assert enqueue(db, "sync", '{"v": 2}', queue="q", unique_key="k", on_conflict="replace", run_at=500, now=1) == first
    assert (task(db, first)["details"], task(db, first)["run_at"]) == ('{"v": 2}', 500)
    claim_id(db, "q", 600)
    assert enqueue(db, "sync", '{"v": 3}', queue="q", unique_key="k", on_conflict="replace", now=700) == first
    assert task(db, first)["details"] == '{"v": 2}'


def test_on_conflict_error_names_the_holder(db):
    first = enqueue(db, "sync", queue="q", unique_key="k", now=0)
    problem = f"task_enqueue: unique key 'k' of queue 'q' is taken by task {first} (queued)"
    msg = fails(db, "SELECT task_enqueue('sync', NULL, ?)", opts(queue="q", unique_key="k", on_conflict="error"),
                match="is taken", exc=apsw.ConstraintError)
    assert msg == problem


def test_a_retry_that_would_take_a_held_key_is_refused(db):
    first = enqueue(db, "sync", queue="q", unique_key="k", now=0)
    one(db, "SELECT task_cancel(?)", first)
    second = enqueue(db, "sync", queue="q", unique_key="k", now=1)
    msg = fails(db, "SELECT task_retry(?)", first, match="cannot run again", exc=apsw.ConstraintError)
    assert msg == (
        f"task_retry: task {first} cannot run again: its unique key 'k' of queue 'q' is taken by task "
        f"{second} (queued)"
    )


@pytest.mark.parametrize("on_conflict", ["keep", "replace"])
def test_a_holder_enqueued_again_with_its_own_id_gains_no_links(family, on_conflict):
    # Enqueueing the holder again, by its own id, as a child or a dependent:
    # it returns the holder and creates nothing, links included.
    db = family
    enqueue(db, "h", id=ID1, queue="q", unique_key="k", now=0)
    enqueue(db, "d", id=ID2, queue="q", now=0)
    before = rows(db, "SELECT id, children, dependents FROM task_store ORDER BY seq")
    again = enqueue(db, "h", id=ID1, queue="q", unique_key="k", on_conflict=on_conflict, parent_id=P,
                    depends_on=[ID2], now=1)
    assert again == ID1
    assert rows(db, "SELECT id, children, dependents FROM task_store ORDER BY seq") == before
    assert (task(db, ID1)["parent_id"], task(db, ID1)["depends_on"]) == (None, None)
    assert one(db, "SELECT count(*) FROM task_deps") == 0
    assert one(db, "SELECT task_check()") == "ok"


def test_unique_keys_through_insert_into_tasks(db):
    db.execute("INSERT INTO tasks(type, queue, unique_key, now) VALUES ('sync', 'q', 'k', 0)")
    holder = one(db, "SELECT seq FROM task_store")
    db.execute("INSERT INTO tasks(type, queue, unique_key, now) VALUES ('sync', 'q', 'k', 1)")
    assert one(db, "SELECT count(*) FROM tasks") == 1
    # SQLite counts the row handed to the table either way
    # (docs/reference/tasks-table.md): the INSERT that kept the holder
    # reports one change and the holder's rowid.
    assert one(db, "SELECT changes()") == 1
    assert db.last_insert_rowid() == holder
    problem = "tasks: unique key 'k' of queue 'q' is taken by task"
    fails(db, "INSERT INTO tasks(type, queue, unique_key, on_conflict) VALUES ('sync', 'q', 'k', 'error')",
          match=problem, exc=apsw.ConstraintError)


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"unique_key": 5}, 'option "unique_key" must be a string, got a number'),
        ({"unique_key": ""}, 'option "unique_key" must not be empty'),
        ({"unique_key": "k", "on_conflict": "merge"}, "on_conflict must be 'keep', 'replace' or 'error', got 'merge'"),
        ({"unique_key": "k", "unique_scope": "ever"}, "unique_scope must be 'active' or 'completed', got 'ever'"),
        ({"on_conflict": "keep"}, "on_conflict and unique_scope apply to a task with a unique_key"),
        ({"unique_scope": "active"}, "on_conflict and unique_scope apply to a task with a unique_key"),
    ],
)
def test_unique_bad_input(db, options, problem):
    enqueue(db, "sync", queue="q", unique_key="k", now=0)
    msg = fails(db, "SELECT task_enqueue('sync', NULL, ?)", opts(queue="q", **options), match=problem)
    assert msg == "task_enqueue: " + problem
