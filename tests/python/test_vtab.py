"""The `tasks` virtual table: what it shows, which filters reach the storage,
and its writes (INSERT enqueues, UPDATE reschedules/cancels/retries, DELETE
purges finished trees). Every refused write must leave the storage as it was.
"""

import uuid
from collections import Counter

import apsw
import pytest

from conftest import COLUMNS, ID1, ID2, UNKNOWN, claim, enqueue, fails, one, opts, rows, snapshot, task

MAX_TIME = 253_402_300_799_999
# SQLite 3.38 lets a virtual table tell an IN list from an equality; the
# extension then leaves `status IN (...)` to SQLite (docs/reference/
# tasks-table.md). The sqlite3 shell of the other suite is 3.40.1, apsw newer.
SQLITE = tuple(int(part) for part in apsw.sqlitelibversion().split(".")[:2])
HAS_VTAB_IN = SQLITE >= (3, 38)
needs_vtab_in = pytest.mark.skipif(not HAS_VTAB_IN, reason="SQLite < 3.38 scans status IN once per value (docs)")
ONLY = "only queue, priority, run_at and max_attempts of a queued task, or status"

# A small tree and some loose tasks, in every status:
#   P  report   reports  completed
#   ├─ C1 thumb images   queued
#   │  └─ G resize images failed
#   └─ C2 thumb images   running (w1)
#   X  email    default  cancelled
#   Y  email    default  queued
P = "0193a000-0000-7000-8000-00000000000a"
C1 = "0193a000-0000-7000-8000-00000000000b"
C2 = "0193a000-0000-7000-8000-00000000000c"
G = "0193a000-0000-7000-8000-00000000000d"
X = "0193a000-0000-7000-8000-00000000000e"
Y = "0193a000-0000-7000-8000-00000000000f"


@pytest.fixture
def tree(db):
    # P's own work is done and it waits for its children; C1 goes on when
    # its child G fails (on_child_failure: continue).
    enqueue(db, "report", '{"m": 1}', id=P, queue="reports", priority=9, now=100)
    assert claim(db, "w0", now=100)["id"] == P
    enqueue(db, "thumb", None, id=C1, queue="images", parent_id=P, run_at=10_000,
            on_child_failure="continue", now=200)
    enqueue(db, "thumb", None, id=C2, queue="images", parent_id=P, priority=1, now=200)
    assert one(db, "SELECT task_complete(?, '{\"ok\": true}', ?)", P, opts(now=250)) == "waiting"
    enqueue(db, "resize", None, id=G, queue="images", parent_id=C1, priority=2, max_attempts=1, now=300)
    assert claim(db, "w1", now=400, queue="images")["id"] == G
    one(db, "SELECT task_fail(?, 'no disk', ?)", G, opts(now=450))
    assert claim(db, "w1", now=500, queue="images")["id"] == C2
    enqueue(db, "email", '{"to": "x"}', id=X, now=600)
    one(db, "SELECT task_cancel(?, ?)", X, opts(now=650))
    enqueue(db, "email", '{"to": "y"}', id=Y, now=700)
    statuses = dict(rows(db, "SELECT id, status FROM tasks"))
    assert statuses == {P: "waiting", C1: "queued", G: "failed", C2: "running", X: "cancelled", Y: "queued"}
    return db


def ids(db, sql, *args):
    return sorted(r[0] for r in rows(db, sql, *args))


# ---- reading --------------------------------------------------------------


def test_columns(db):
    info = rows(db, "SELECT name, type, hidden FROM pragma_table_xinfo('tasks') ORDER BY cid")
    assert [name for name, _, hidden in info if not hidden] == COLUMNS
    assert [(name, type_) for name, type_, hidden in info if hidden] == [
        ("delay", "INTEGER"), ("now", "INTEGER"), ("on_conflict", "TEXT"), ("unique_scope", "TEXT"),
        ("on_child_failure", "TEXT"), ("wait_for_children", "INTEGER"),
    ]
    assert [r[1] for r in rows(db, "SELECT * FROM pragma_table_info('tasks')")] == COLUMNS


def test_select_star_shows_the_visible_columns(tree):
    cur = tree.execute("SELECT * FROM tasks")
    assert [d[0] for d in cur.getdescription()] == COLUMNS
    cur.fetchall()


def test_tasks_mirrors_the_storage(tree):
    # Every column reads as stored, but for a parent's progress (the rollup
    # of its children's), depends_on (read from task_deps) and children_done
    # (its children less the unfinished ones task_parent_store counts).
    stored = [c for c in COLUMNS if c not in ("progress", "depends_on", "children_done")]
    cols = ", ".join(stored)
    assert rows(tree, f"SELECT rowid, {cols} FROM tasks ORDER BY rowid") == rows(
        tree, f"SELECT seq, {cols} FROM task_store ORDER BY seq"
    )
    assert rows(tree, "SELECT id, children_done FROM tasks ORDER BY rowid") == rows(tree, """
        SELECT p.id, (SELECT count(*) FROM task_store AS c WHERE c.parent_id = p.id
                         AND c.status IN ('completed', 'failed', 'cancelled'))
          FROM task_store AS p ORDER BY p.seq""")
    assert rows(tree, "SELECT id, children_done FROM tasks WHERE children_done > 0") == [(C1, 1)]  # its failed child
    assert rows(tree, "SELECT id, progress FROM tasks WHERE children = 0 ORDER BY rowid") == rows(
        tree, "SELECT id, progress FROM task_store WHERE children = 0 ORDER BY seq"
    )
    # C1's only child failed (it counts as 100); P has C1 (100) and C2 (0).
    assert rows(tree, "SELECT id, progress FROM tasks WHERE children > 0 ORDER BY rowid") == [
        (P, 50), (C1, 100),
    ]
    assert rows(tree, "SELECT DISTINCT depends_on FROM tasks") == [(None,)]
    hidden = "delay, now, on_conflict, unique_scope, on_child_failure, wait_for_children"
    assert rows(tree, f"SELECT DISTINCT {hidden} FROM tasks") == [(None,) * 6]


FILTER_VALUES = [
    ("id", P), ("id", G), ("id", UNKNOWN), ("id", "not an id"), ("id", 5),
    ("status", "queued"), ("status", "running"), ("status", "completed"), ("status", "failed"),
    ("status", "cancelled"), ("status", "waiting"), ("status", "blocked"), ("status", "nope"),
    ("queue", "images"), ("queue", "default"), ("queue", "reports"), ("queue", "none"),
    ("type", "thumb"), ("type", "email"), ("type", "resize"), ("type", "x"),
    ("parent_id", P), ("parent_id", C1), ("parent_id", G),
]


@pytest.mark.parametrize("column, value", FILTER_VALUES)
def test_equality_filters(tree, column, value):
    got = ids(tree, f"SELECT id FROM tasks WHERE {column} = ?", value)
    assert got == ids(tree, f"SELECT id FROM task_store WHERE {column} = ?", value)


@pytest.mark.parametrize(
    "where, args, expected",
    [
        ("status = ? AND queue = ?", ("queued", "images"), [C1]),
        ("type = ? AND parent_id = ?", ("thumb", P), [C1, C2]),
        ("id = ? AND status = ?", (P, "queued"), []),
        ("id = ? AND status = ?", (P, "waiting"), [P]),
        ("queue = ? AND type = ? AND status = ? AND parent_id = ?", ("images", "thumb", "running", P), [C2]),
        ("parent_id IS NULL", (), [P, X, Y]),
        ("status IN (?, ?)", ("failed", "cancelled"), [G, X]),
        ("id IN (?, ?, ?)", (P, Y, UNKNOWN), [P, Y]),
        ("priority > ?", (0,), [P, C2, G]),
        ("worker = ?", ("w1",), [C2, G]),
        ("type LIKE ?", ("th%",), [C1, C2]),
        ("status = ? OR queue = ?", ("queued", "reports"), [P, C1, Y]),
        ("lease_until IS NOT NULL", (), [C2]),
        ("rowid = ?", (1,), [P]),
    ],
)
def test_combined_and_other_filters(tree, where, args, expected):
    assert ids(tree, f"SELECT id FROM tasks WHERE {where}", *args) == sorted(expected)


def test_self_join_finds_children(tree):
    got = rows(
        tree,
        "SELECT c.id FROM tasks p JOIN tasks c ON c.parent_id = p.id WHERE p.id = ? ORDER BY c.id",
        P,
    )
    assert got == [(C1,), (C2,)]


@pytest.mark.parametrize(
    "where, idx",
    [
        ("id = ?", 1),
        ("queue = ?", 2),
        ("type = ?", 4),
        ("status = ?", 8),
        ("parent_id = ?", 16),
        ("status = ? AND queue = ?", 10),
        ("id = ? AND status = ?", 9),
        ("queue = ? AND type = ? AND status = ? AND parent_id = ?", 30),
        ("priority = ?", 0),
        ("id > ?", 0),
        ("1", 0),
        # IN lists: queue, type, id and parent_id are handed to the storage
        # one value at a time; status IN is left to SQLite (3.38+), and a
        # one-value list is an equality.
        ("queue IN ('a', 'b')", 2),
        ("type IN ('a', 'b')", 4),
        ("id IN ('a', 'b')", 1),
        ("parent_id IN ('a', 'b')", 16),
        ("status IN ('queued', 'running')", 0 if HAS_VTAB_IN else 8),
        ("status IN ('queued', 'running') AND queue = ?", 2 if HAS_VTAB_IN else 10),
        ("status IN ('queued')", 8),
    ],
)
def test_explain_query_plan_shows_the_index(db, where, idx):
    n = where.count("?")
    plan = rows(db, f"EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE {where}", *(["x"] * n))
    # The detail may go on with the idxStr; idxNum is the filter mask.
    assert len(plan) == 1
    assert plan[0][3].startswith(f"SCAN tasks VIRTUAL TABLE INDEX {idx}:"), plan


def test_explain_query_plan_for_a_join(db):
    plan = [r[3] for r in rows(
        db,
        "EXPLAIN QUERY PLAN SELECT c.id FROM tasks p JOIN tasks c ON c.parent_id = p.id WHERE p.id = ?",
        "x",
    )]
    assert len(plan) == 2
    assert plan[0].startswith("SCAN p VIRTUAL TABLE INDEX 1:"), plan
    assert plan[1].startswith("SCAN c VIRTUAL TABLE INDEX 16:"), plan


# idxStr tails. Values are bound as +?N. Every filter but a lookup by id
# ends with the rowid bound `seq <= +?K` (K the last parameter: the highest
# rowid when the cursor's first scan began). Status, queue and type filters
# collect the matching rowids first, one branch per status index, and one
# for completed tasks (in no status index: the table).
PARKED = "NOT (status = 'running' OR status = 'queued' OR status = 'completed')"
# What the storage query reads: the columns, NULL for depends_on (read from
# task_deps by the cursor), then the rowid and the flags.
# What the storage query reads for each column: depends_on is the cursor's,
# children_done the parent's children less its unfinished ones.
CHILDREN_DONE = (
    "children - (CASE WHEN task_store.children > 0 THEN coalesce((SELECT o.unfinished FROM main.task_parent_store AS o "
    "WHERE o.seq = task_store.seq AND o.id = task_store.id), 0) ELSE 0 END)"
)
STORAGE_COLUMNS = ", ".join(
    {"depends_on": "NULL", "children_done": CHILDREN_DONE}.get(c, c) for c in COLUMNS
) + ", seq, flags"


@pytest.mark.parametrize(
    "where, tail",
    [
        ("1", " WHERE seq <= +?1"),
        ("priority > ?", " WHERE seq <= +?1"),
        ("id = ?", " WHERE id = +?1"),
        ("parent_id = ?", " WHERE parent_id = +?1 AND seq <= +?2"),
        ("id = ? AND status = ?", " WHERE id = +?1 AND status = +?2"),
        ("id = ? AND parent_id = ?", " WHERE id = +?1 AND parent_id = +?2"),
        ("parent_id = ? AND queue = ?", " WHERE queue = +?1 AND parent_id = +?2 AND seq <= +?3"),
        (
            "status = ?",
            " WHERE seq IN (SELECT seq FROM main.task_store WHERE status = 'queued' AND +?1 = 'queued'"
            " UNION ALL SELECT seq FROM main.task_store WHERE status = 'running' AND +?1 = 'running'"
            f" UNION ALL SELECT seq FROM main.task_store WHERE {PARKED} AND status = +?1"
            " UNION ALL SELECT seq FROM main.task_store WHERE status = 'completed' AND +?1 = 'completed')"
            " AND seq <= +?2",
        ),
        (
            "type = ? AND queue = ?",
            " WHERE seq IN (SELECT seq FROM main.task_store WHERE status = 'queued' AND queue = +?1 AND type = +?2"
            " UNION ALL SELECT seq FROM main.task_store WHERE status = 'running' AND queue = +?1 AND type = +?2"
            f" UNION ALL SELECT seq FROM main.task_store WHERE {PARKED} AND queue = +?1 AND type = +?2"
            " UNION ALL SELECT seq FROM main.task_store WHERE status = 'completed' AND queue = +?1 AND type = +?2)"
            " AND seq <= +?3",
        ),
    ],
)
def test_explain_query_plan_shows_the_storage_query(db, where, tail):
    plan = rows(db, f"EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE {where}", *(["x"] * where.count("?")))
    detail = plan[0][3]
    select, _, rest = detail.partition(":")[2].partition(" FROM main.task_store")
    assert select == "SELECT " + STORAGE_COLUMNS
    assert rest == tail


@pytest.mark.parametrize(
    "where, index",
    [
        ("id = ?", "task_store_id"),
        ("parent_id = ?", "task_store_parent"),
        ("queue = ?", "task_store_ready"),
        ("queue = ?", "task_store_running"),
        ("queue = ?", "task_store_parked"),
        ("type = ?", "task_store_parked"),
        ("status = ?", "task_store_parked"),
    ],
)
def test_the_storage_query_uses_the_storage_indexes(db, where, index):
    detail = rows(db, f"EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE {where}", "x")[0][3]
    storage_sql = detail.split(":", 1)[1]
    # The filter's value, then (except for an id lookup) the rowid bound.
    params = ["x"] if where == "id = ?" else ["x", 10**9]
    assert storage_sql.endswith(f"+?{len(params)}"), storage_sql
    steps = [r[3] for r in rows(db, f"EXPLAIN QUERY PLAN {storage_sql}", *params)]
    assert any(f"USING INDEX {index}" in s or f"USING COVERING INDEX {index}" in s for s in steps), steps
    # Only the completed tasks' branch reads the whole table: they are in no
    # status index (docs/storage.md).
    scans = [s for s in steps if s.startswith("SCAN") and "INDEX" not in s]
    assert len(scans) == (0 if where in ("id = ?", "parent_id = ?") else 1), steps


# docs/reference/tasks-table.md: a scan reads the tasks that existed when it
# started, each once, so a statement that changes tasks while it reads them
# visits each task once (no row twice when its status moves it to another
# index, and no row it added itself). The docs promise no row order
# without ORDER BY, so these compare what was visited, not in which order.
SCAN_WHERE = [
    "type = 'k'", "queue = 'q'", "status = 'queued'", "queue = 'q' AND type = 'k'", "1",
    "parent_id IS NULL", "status <> 'x'",
]


@pytest.mark.parametrize("where", SCAN_WHERE)
def test_cancelling_during_a_scan_visits_each_task_once(db, where):
    made = [enqueue(db, "k", queue="q", now=0) for _ in range(3)]
    # A second visit would fail the statement: the task is already cancelled.
    got = rows(db, f"SELECT id, task_cancel(id) FROM tasks WHERE {where}")
    assert sorted(got) == sorted((i, "cancelled") for i in made)
    assert rows(db, "SELECT status FROM tasks") == [("cancelled",)] * 3


@pytest.mark.parametrize("where", SCAN_WHERE + ["status IN ('queued', 'running')"])
def test_claiming_during_a_scan_visits_each_task_once(db, where):
    if "status IN" in where and not HAS_VTAB_IN:
        pytest.skip("SQLite < 3.38 scans status IN once per value (docs)")
    made = [enqueue(db, "k", queue="q", now=0) for _ in range(3)]
    # Each visit claims the next task (in claim order, whatever the row): a
    # row visited again would claim nothing more (NULL). LIMIT: a scan that
    # visited rows again forever would otherwise never end.
    got = rows(db, f"SELECT json_extract(task_claim('w', '{{\"now\": 1}}'), '$.id') FROM tasks WHERE {where} LIMIT 10")
    assert [r[0] for r in got] == made
    assert rows(db, "SELECT status, attempts FROM tasks") == [("running", 1)] * 3


@pytest.mark.parametrize("where", SCAN_WHERE)
def test_enqueueing_during_a_scan_does_not_visit_the_new_tasks(db, where):
    for _ in range(3):
        enqueue(db, "k", queue="q", now=0)
    # LIMIT: a scan that saw its own new rows would otherwise never end.
    added = rows(db, f"SELECT task_enqueue(type, NULL, json_object('queue', queue)) FROM tasks WHERE {where} LIMIT 10")
    assert len(added) == 3
    assert one(db, "SELECT count(*) FROM tasks WHERE type = 'k' AND queue = 'q'") == 6


# IN lists: queue, type, id and parent_id are handed to the storage one
# value at a time (one scan per value, under one rowid bound fixed at the
# first); those columns never change while a SELECT runs, so each task is
# visited once. status IN is left to SQLite on 3.38+, so a task whose status
# a call changes to a later value of the list is not visited again.


@needs_vtab_in
@pytest.mark.parametrize(
    "where, matched",
    [
        ("status IN ('queued', 'running')", [0, 1, 2]),
        ("status IN ('running', 'queued', 'cancelled')", [0, 1, 2]),
        ("status IN ('queued', 'cancelled') AND queue = 'q'", [1, 2]),
        ("status IN ('queued', 'running', 'cancelled') AND type IN ('k', 'x')", [0, 1, 2]),
    ],
)
def test_cancelling_during_a_status_in_list_scan_visits_each_task_once(db, where, matched):
    made = [enqueue(db, "k", queue="q", now=0) for _ in range(3)]
    one(db, "SELECT task_claim('w', '{\"now\": 0}')")  # made[0] is running
    # Cancelling moves a task to 'cancelled', a later value of some lists: a
    # second visit would fail the statement (already cancelled).
    got = rows(db, f"SELECT id, task_cancel(id) FROM tasks WHERE {where}")
    assert sorted(got) == sorted((made[i], "cancelled") for i in matched)


@needs_vtab_in
def test_retrying_during_a_status_in_list_scan_visits_each_task_once(db):
    # SQLite reads an IN list's values in sorted order: scanned per value,
    # 'cancelled' would come before 'queued', and the tasks retried while
    # reading 'cancelled' would be read again (and refused: already queued).
    made = [enqueue(db, "k", now=0) for _ in range(3)]
    for task_id in made:
        one(db, "SELECT task_cancel(?)", task_id)
    got = rows(db, "SELECT id, task_retry(id) FROM tasks WHERE status IN ('queued', 'cancelled')")
    assert sorted(got) == sorted((i, "queued") for i in made)


@pytest.mark.parametrize(
    "where",
    [
        "queue IN ('q1', 'q2')",
        "type IN ('k1', 'k2')",
        "queue IN ('q1', 'q2') AND type IN ('k1', 'k2')",
        "queue IN ('q1', 'q2') AND status = 'queued'",
        "queue IN ('q1', 'q2', 'q1')",
    ],
)
def test_cancelling_and_enqueueing_during_an_in_list_scan_visit_each_task_once(db, where):
    made = [enqueue(db, f"k{n}", queue=f"q{n}", now=0) for n in (1, 2, 1, 2)]
    # Every visit enqueues a task matching the list; none of them is visited.
    added = rows(
        db,
        f"SELECT id, task_cancel(id), task_enqueue(type, NULL, json_object('queue', queue)) FROM tasks WHERE {where} LIMIT 20",
    )
    assert Counter(r[0] for r in added) == Counter(made)
    assert one(db, "SELECT count(*) FROM tasks") == 8
    assert rows(db, "SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status") == [("cancelled", 4), ("queued", 4)]


def test_enqueueing_during_a_parent_id_in_list_scan_does_not_visit_the_new_tasks(db):
    enqueue(db, "root", id=ID1, now=0)
    enqueue(db, "root", id=ID2, now=0)
    made = [enqueue(db, "k", parent_id=p, now=0) for p in (ID1, ID2, ID1)]
    added = rows(
        db,
        "SELECT id, task_enqueue('k', NULL, json_object('parent_id', parent_id)) FROM tasks"
        " WHERE parent_id IN (?, ?) LIMIT 20",
        ID2,
        ID1,
    )
    assert sorted(r[0] for r in added) == sorted(made)
    assert one(db, "SELECT count(*) FROM tasks WHERE parent_id IS NOT NULL") == 6


def test_cancelling_during_an_id_in_list_scan_visits_each_task_once(db):
    made = [enqueue(db, "k", now=0) for _ in range(3)]
    got = rows(db, "SELECT id, task_cancel(id) FROM tasks WHERE id IN (?, ?, ?, ?)", made[2], made[0], made[1], made[2])
    assert sorted(got) == sorted((i, "cancelled") for i in made)


@pytest.mark.parametrize(
    "where",
    ["queue IN ('q1', 'q2')", "type IN ('k1', 'k2')", "id IN (SELECT id FROM task_store)", "parent_id IS NULL"],
)
def test_an_in_list_scan_returns_each_matching_task_once(db, where):
    made = [enqueue(db, f"k{n}", queue=f"q{n}", now=0) for n in (1, 2, 1, 2)]
    assert Counter(r[0] for r in rows(db, f"SELECT id FROM tasks WHERE {where}")) == Counter(made)
    # In enqueue order when asked for (docs/reference/tasks-table.md: rowid
    # is the enqueue order).
    assert [r[0] for r in rows(db, f"SELECT id FROM tasks WHERE {where} ORDER BY rowid")] == made


def test_insert_select_from_tasks_copies_each_task_once(db):
    for _ in range(3):
        enqueue(db, "k", queue="q", now=0)
    db.execute("INSERT INTO tasks(type, queue) SELECT type, queue FROM tasks WHERE queue = 'q'")
    assert one(db, "SELECT count(*) FROM tasks") == 6


@pytest.mark.parametrize(
    "where",
    [
        "1", "queue = 'q'", "type = 'k'", "queue = 'q' AND type = 'k'", "status <> 'x'", f"parent_id = '{ID1}'",
        "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
    ],
)
def test_each_task_once_whatever_its_status_and_order_by_rowid(db, where):
    # Children of ID1 in queue q, type k, in five statuses interleaved, so
    # that reading the status indexes one after the other would reorder them
    # (ID1 goes on when one of them fails or is cancelled).
    enqueue(db, "root", id=ID1, on_child_failure="continue", now=0)
    made = [enqueue(db, "k", queue="q", parent_id=ID1, priority=p, now=0) for p in (5, 0, 4, 0, 0, 3)]
    one(db, "SELECT task_cancel(?)", made[1])
    assert claim(db, now=0)["id"] == made[0]  # highest priority first
    assert claim(db, now=0)["id"] == made[2]
    one(db, "SELECT task_complete(?)", made[2])
    assert claim(db, now=0)["id"] == made[5]
    one(db, "SELECT task_fail(?, 'x', '{\"retry\": false}')", made[5])
    statuses = [task(db, i)["status"] for i in made]
    assert statuses == ["running", "cancelled", "completed", "queued", "queued", "failed"]
    # Without ORDER BY: each once, in no promised order.
    got = [r[0] for r in rows(db, f"SELECT id FROM tasks WHERE {where}") if r[0] != ID1]
    assert Counter(got) == Counter(made)
    # ORDER BY rowid is the enqueue order.
    got = [r[0] for r in rows(db, f"SELECT id FROM tasks WHERE {where} ORDER BY rowid") if r[0] != ID1]
    assert got == made


# ---- INSERT ---------------------------------------------------------------


def test_insert_with_defaults(db):
    db.execute("INSERT INTO tasks(type, now) VALUES ('job', 1000)")
    seq = db.last_insert_rowid()
    (task_id,) = rows(db, "SELECT id FROM task_store WHERE seq = ?", seq)[0]
    assert uuid.UUID(task_id).version == 7
    row = task(db, task_id)
    assert (row["queue"], row["type"], row["status"], row["priority"]) == ("default", "job", "queued", 0)
    assert (row["max_attempts"], row["attempts"], row["details"], row["parent_id"]) == (3, 0, None, None)
    assert (row["run_at"], row["created_at"], row["updated_at"]) == (1000, 1000, 1000)
    assert one(db, "SELECT rowid FROM tasks WHERE id = ?", task_id) == seq


def test_insert_with_every_settable_column(db):
    enqueue(db, id=ID1)
    db.execute(
        "INSERT INTO tasks(id, queue, type, status, priority, details, max_attempts, parent_id, run_at, now)"
        " VALUES (?, 'q', 'job', 'queued', -3, '{\"a\": 1}', 7, ?, 5000, 1000)",
        (ID2.upper(), ID1),
    )
    row = task(db, ID2)
    assert (row["queue"], row["type"], row["status"], row["priority"], row["details"]) == (
        "q", "job", "queued", -3, '{"a": 1}',
    )
    assert (row["max_attempts"], row["parent_id"], row["run_at"], row["created_at"]) == (7, ID1, 5000, 1000)


def test_insert_hidden_delay_and_now(db):
    db.execute("INSERT INTO tasks(id, type, delay, now) VALUES (?, 'job', 500, 1000)", (ID1,))
    row = task(db, ID1)
    assert (row["run_at"], row["created_at"]) == (1500, 1000)
    assert claim(db, now=1499) is None
    assert claim(db, now=1500)["id"] == ID1


def test_insert_many_rows_and_from_a_select(db):
    db.execute("INSERT INTO tasks(type, queue) VALUES ('a', 'q1'), ('b', 'q2')")
    db.execute("CREATE TABLE files(path TEXT)")
    db.execute("INSERT INTO files VALUES ('x.png'), ('y.png')")
    db.execute("INSERT INTO tasks(type, details) SELECT 'resize', json_object('path', path) FROM files")
    assert rows(db, "SELECT type, queue, details FROM tasks ORDER BY rowid") == [
        ("a", "q1", None),
        ("b", "q2", None),
        ("resize", "default", '{"path":"x.png"}'),
        ("resize", "default", '{"path":"y.png"}'),
    ]


MANAGED = [
    "progress", "result", "error", "attempts", "worker", "lease_until",
    "created_at", "updated_at", "started_at", "completed_at",
]


@pytest.mark.parametrize("column", MANAGED)
def test_insert_refuses_managed_columns(db, column):
    msg = fails(db, f"INSERT INTO tasks(type, {column}) VALUES ('job', 1)", match="cannot be set")
    assert msg == f"tasks: column {column} cannot be set on INSERT; the queue manages it"


INSERT_BAD = [
    ("(type, status) VALUES ('job', 'running')", "a new task's status is 'queued', got 'running'"),
    ("(type, status) VALUES ('job', 'cancelled')", "a new task's status is 'queued', got 'cancelled'"),
    ("(type, status) VALUES ('job', 1)", "column status must be text, got an integer"),
    ("(rowid, type) VALUES (7, 'job')", "rowid cannot be set; it is assigned on INSERT"),
    ("(queue) VALUES ('q')", "type must be given and not empty"),
    ("(type) VALUES ('')", "type must be given and not empty"),
    ("(type) VALUES (5)", "column type must be text, got an integer"),
    ("(type, priority) VALUES ('job', '5')", "column priority must be an integer, got text"),
    ("(type, priority) VALUES ('job', 1.5)", "column priority must be an integer, got a real"),
    ("(type, priority) VALUES ('job', 2147483648)", "priority must be between -2147483648 and 2147483647, got 2147483648"),
    ("(type, max_attempts) VALUES ('job', 0)", "max_attempts must be between 1 and 1000, got 0"),
    ("(type, max_attempts) VALUES ('job', 1001)", "max_attempts must be between 1 and 1000, got 1001"),
    ("(type, run_at, delay) VALUES ('job', 5, 5)", "give run_at or delay, not both"),
    ("(type, delay, now) VALUES ('job', -1, 1000)", f"delay must be between 0 and {MAX_TIME - 1000}, got -1"),
    ("(type, run_at) VALUES ('job', -1)", f"run_at must be between 0 and {MAX_TIME}, got -1"),
    ("(type, now) VALUES ('job', -1)", f"now must be between 0 and {MAX_TIME}, got -1"),
    ("(type, queue) VALUES ('job', '')", "queue must not be empty"),
    ("(type, details) VALUES ('job', '{')", "details is not valid JSON: EOF while parsing an object at line 1 column 1"),
    ("(type, details) VALUES ('job', x'7b7d')", "column details must be text, got a blob"),
    ("(type, id) VALUES ('job', 'abc')", "id must be a UUID, got 'abc'"),
    ("(type, parent_id) VALUES ('job', 'abc')", "parent_id must be a UUID, got 'abc'"),
    (f"(type, parent_id) VALUES ('job', '{UNKNOWN}')", f"parent task {UNKNOWN} not found"),
    ("(type) VALUES ('a'), ('')", "type must be given and not empty"),
]


@pytest.mark.parametrize("tail, problem", INSERT_BAD)
def test_insert_bad_input(db, tail, problem):
    enqueue(db, id=ID1)
    msg = fails(db, f"INSERT INTO tasks{tail}", match=problem)
    assert msg == f"tasks: {problem}"


def test_insert_duplicate_id(db):
    enqueue(db, id=ID1)
    msg = fails(
        db, "INSERT INTO tasks(id, type) VALUES (?, 'job')", ID1.upper(),
        match="already exists", exc=apsw.ConstraintError,
    )
    assert msg == f"tasks: task {ID1} already exists"


# ---- UPDATE ---------------------------------------------------------------


def test_update_reschedules_a_queued_task(tree):
    tree.execute(
        "UPDATE tasks SET priority = 4, run_at = 20000, queue = 'fast', max_attempts = 8, now = 5000 WHERE id = ?",
        (C1,),
    )
    row = task(tree, C1)
    assert (row["priority"], row["run_at"], row["queue"], row["max_attempts"]) == (4, 20000, "fast", 8)
    assert (row["status"], row["updated_at"]) == ("queued", 5000)
    assert claim(tree, now=19_999, queue="fast") is None
    assert claim(tree, now=20_000, queue="fast")["id"] == C1


@pytest.mark.parametrize(
    "assignment, column, value",
    [("priority = -2", "priority", -2), ("run_at = 0", "run_at", 0), ("queue = 'x'", "queue", "x"),
     ("max_attempts = 1000", "max_attempts", 1000)],
)
def test_update_one_column(tree, assignment, column, value):
    tree.execute(f"UPDATE tasks SET {assignment} WHERE id = ?", (Y,))
    assert task(tree, Y)[column] == value


def test_update_many_queued_tasks(tree):
    tree.execute("UPDATE tasks SET priority = priority + 100 WHERE status = 'queued'")
    assert rows(tree, "SELECT id, priority FROM tasks WHERE priority >= 100 ORDER BY id") == [(C1, 100), (Y, 100)]


def test_update_status_of_many_rows_by_type(tree):
    tree.execute("UPDATE tasks SET status = 'cancelled', now = 9000 WHERE type = 'thumb'")
    assert rows(tree, "SELECT id, status, completed_at FROM tasks WHERE type = 'thumb' ORDER BY id") == [
        (C1, "cancelled", 9000),
        (C2, "cancelled", 9000),
    ]
    tree.execute("DELETE FROM tasks WHERE queue = 'images' AND parent_id IS NOT NULL")
    assert ids(tree, "SELECT id FROM tasks") == [P, X, Y]


def test_update_without_a_change_is_a_no_op(tree):
    before = snapshot(tree)
    tree.execute("UPDATE tasks SET priority = priority, queue = queue")
    tree.execute("UPDATE tasks SET status = status")
    assert snapshot(tree) == before


@pytest.mark.parametrize("target", [C1, C2])
def test_update_status_cancelled_cancels(tree, target):
    tree.execute("UPDATE tasks SET status = 'cancelled', now = 7000 WHERE id = ?", (target,))
    row = task(tree, target)
    assert (row["status"], row["completed_at"], row["lease_until"]) == ("cancelled", 7000, None)


@pytest.mark.parametrize("target", [G, X])
def test_update_status_queued_retries(tree, target):
    tree.execute("UPDATE tasks SET status = 'queued', now = 8000 WHERE id = ?", (target,))
    row = task(tree, target)
    assert (row["status"], row["attempts"], row["run_at"], row["completed_at"]) == ("queued", 0, 8000, None)


UPDATE_BAD = [
    (C2, "priority = 5", f"task {C2} is running; only queued or blocked tasks can be changed"),
    (P, "queue = 'x'", f"task {P} is waiting; only queued or blocked tasks can be changed"),
    (G, "run_at = 5", f"task {G} is failed; only queued or blocked tasks can be changed"),
    (C1, "worker = 'me'", f"column worker cannot be changed; {ONLY}"),
    (C1, "progress = 50", f"column progress cannot be changed; {ONLY}"),
    (C1, "details = '{}'", f"column details cannot be changed; {ONLY}"),
    (C1, "type = 'other'", f"column type cannot be changed; {ONLY}"),
    (C1, f"id = '{UNKNOWN}'", f"column id cannot be changed; {ONLY}"),
    (C1, "parent_id = NULL", f"column parent_id cannot be changed; {ONLY}"),
    (C1, "error = 'x'", f"column error cannot be changed; {ONLY}"),
    (C1, "attempts = 2", f"column attempts cannot be changed; {ONLY}"),
    (C1, "created_at = 0", f"column created_at cannot be changed; {ONLY}"),
    (C2, "lease_until = 0", f"column lease_until cannot be changed; {ONLY}"),
    (C1, "priority = 5, worker = 'me'", f"column worker cannot be changed; {ONLY}"),
    (C1, "status = 'cancelled', priority = 5", "change status in an UPDATE of its own (other columns changed too)"),
    (G, "status = 'queued', queue = 'x'", "change status in an UPDATE of its own (other columns changed too)"),
    (C1, "status = 'running'", "status can only be set to 'cancelled' or to 'queued' (retry), got 'running'"),
    (C2, "status = 'completed'", "status can only be set to 'cancelled' or to 'queued' (retry), got 'completed'"),
    (C1, "status = NULL", "status can only be set to 'cancelled' or to 'queued' (retry), got NULL"),
    (G, "status = 'cancelled'", f"task {G} is already failed; only queued, running, blocked or waiting tasks can be cancelled"),
    (C2, "status = 'queued'", f"task {C2} is running; only failed or cancelled tasks can be retried"),
    (P, "status = 'queued'", f"task {P} is waiting; only failed or cancelled tasks can be retried"),
    (C1, "rowid = 999", "rowid cannot be changed"),
    (C1, "priority = NULL", "priority cannot be NULL"),
    (C1, "run_at = NULL", "run_at cannot be NULL"),
    (C1, "queue = NULL", "queue cannot be NULL"),
    (C1, "max_attempts = NULL", "max_attempts cannot be NULL"),
    (C1, "queue = ''", "queue must not be empty"),
    (C1, "priority = '7'", "column priority must be an integer, got text"),
    (C1, "priority = 2147483648", "priority must be between -2147483648 and 2147483647, got 2147483648"),
    (C1, "run_at = -1", f"run_at must be between 0 and {MAX_TIME}, got -1"),
    (C1, "max_attempts = 0", "max_attempts must be between 1 and 1000, got 0"),
    (C1, "max_attempts = 1001", "max_attempts must be between 1 and 1000, got 1001"),
    (C1, "priority = 3, now = -1", f"now must be between 0 and {MAX_TIME}, got -1"),
]


@pytest.mark.parametrize("target, assignment, problem", UPDATE_BAD)
def test_update_refusals(tree, target, assignment, problem):
    msg = fails(tree, f"UPDATE tasks SET {assignment} WHERE id = ?", target, match=problem)
    assert msg == f"tasks: {problem}"


def test_update_max_attempts_must_exceed_attempts_made(db):
    enqueue(db, id=ID1, now=0)
    claim(db, now=0)
    one(db, "SELECT task_fail(?, 'x', '{\"delay\": 0, \"now\": 0}')", ID1)
    msg = fails(db, "UPDATE tasks SET max_attempts = 1 WHERE id = ?", ID1, match="greater than")
    assert msg == f"tasks: max_attempts must be greater than the attempts task {ID1} has already made (1)"
    db.execute("UPDATE tasks SET max_attempts = 2 WHERE id = ?", (ID1,))
    assert claim(db, now=0)["attempt"] == 2


def test_an_update_refused_on_one_row_changes_no_row(tree):
    # C1 and Y are queued, C2 is running: the whole statement is refused.
    fails(tree, "UPDATE tasks SET priority = 50 WHERE queue IN ('images', 'default')", match="only queued")
    # P (waiting) is cancelled with its children, then G (failed) refuses:
    # nothing of it stays, the cancellations that followed P's neither.
    fails(tree, "UPDATE tasks SET status = 'cancelled'", match="already failed")


# ---- DELETE ---------------------------------------------------------------


def finish_all(db):
    """Cancels what is still queued or running in the tree."""
    db.execute("UPDATE tasks SET status = 'cancelled' WHERE status IN ('queued', 'running')")


def test_delete_takes_the_descendants(tree):
    finish_all(tree)
    tree.execute("DELETE FROM tasks WHERE id = ?", (P,))
    assert ids(tree, "SELECT id FROM tasks") == [X, Y]


def test_delete_by_status_with_descendants_in_other_statuses(tree):
    # Cancelling C1 fails P (and cancels C2): P goes with its cancelled
    # children and its failed grandchild.
    tree.execute("UPDATE tasks SET status = 'cancelled' WHERE id = ?", (C1,))
    assert one(tree, "SELECT status FROM tasks WHERE id = ?", P) == "failed"
    tree.execute("DELETE FROM tasks WHERE status = 'failed'")
    assert ids(tree, "SELECT id FROM tasks") == [X, Y]


def test_delete_a_finished_leaf_keeps_its_parent(tree):
    tree.execute("DELETE FROM tasks WHERE id = ?", (G,))
    assert ids(tree, "SELECT id FROM tasks") == sorted([P, C1, C2, X, Y])
    tree.execute("DELETE FROM tasks WHERE status = 'cancelled'")
    assert ids(tree, "SELECT id FROM tasks") == sorted([P, C1, C2, Y])


def test_delete_nothing(tree):
    before = snapshot(tree)
    tree.execute("DELETE FROM tasks WHERE id = ?", (UNKNOWN,))
    assert snapshot(tree) == before


@pytest.mark.parametrize(
    "where, problem",
    [
        (f"id = '{C1}'", f"task {C1} is queued; cancel it or let it finish before deleting it"),
        (f"id = '{C2}'", f"task {C2} is running; cancel it or let it finish before deleting it"),
        (f"id = '{Y}'", f"task {Y} is queued; cancel it or let it finish before deleting it"),
        (f"id = '{C1}' OR id = '{X}'", f"task {C1} is queued; cancel it or let it finish before deleting it"),
    ],
)
def test_delete_refusals(tree, where, problem):
    msg = fails(tree, f"DELETE FROM tasks WHERE {where}", match=problem)
    assert msg == f"tasks: {problem}"


def finished_before_its_children(db):
    """P completed while its children run, as storage version 2 allowed
    (parent_id had no consequence then): written around the functions."""
    db.execute("UPDATE task_store SET status = 'completed', completed_at = 250 WHERE id = ?", (P,))


def test_delete_refused_for_an_unfinished_task(tree):
    msg = fails(tree, "DELETE FROM tasks WHERE id = ?", P, match="cancel it")
    assert msg == f"tasks: task {P} is waiting; cancel it or let it finish before deleting it"


@pytest.mark.parametrize("where", [f"id = '{P}'", "1", "status = 'completed'"])
def test_delete_refused_for_an_unfinished_descendant(tree, where):
    finished_before_its_children(tree)
    # P's children C1 (queued) and C2 (running) both block; either may be named.
    msg = fails(tree, f"DELETE FROM tasks WHERE {where}", match="a descendant of the task being deleted")
    assert msg in [
        f"tasks: task {C1}, a descendant of the task being deleted, is queued; cancel it or let it finish first",
        f"tasks: task {C2}, a descendant of the task being deleted, is running; cancel it or let it finish first",
    ]


def test_delete_refused_for_a_running_grandchild(tree):
    # Only storage written around the functions can hold this: finished
    # children and a parent with a grandchild still running.
    finished_before_its_children(tree)
    tree.execute("UPDATE task_store SET status = 'cancelled', lease_until = NULL, completed_at = 900"
                 " WHERE id IN (?, ?)", (C1, C2))
    tree.execute("UPDATE task_store SET status = 'running', worker = 'w5', lease_until = 10000,"
                 " started_at = 1000, completed_at = NULL, attempts = 1 WHERE id = ?", (G,))
    msg = fails(tree, "DELETE FROM tasks WHERE id = ?", P, match="descendant")
    assert msg == f"tasks: task {G}, a descendant of the task being deleted, is running; cancel it or let it finish first"
    one(tree, "SELECT task_complete(?)", G)
    tree.execute("DELETE FROM tasks WHERE id = ?", (P,))
    assert ids(tree, "SELECT id FROM tasks") == [X, Y]
