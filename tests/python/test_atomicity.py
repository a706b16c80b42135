"""The verbs run inside the caller's transaction: a task is enqueued if and
only if the business change that enqueued it commits (the transactional
outbox), whether from a trigger, an explicit transaction or a savepoint.
Each call is one step: a SELECT making several calls is not one unit (as
docs/concepts.md documents), while INSERT INTO tasks ... SELECT is.
"""

import apsw
import pytest

from conftest import ID1, claim, connect, enqueue, fails, one, opts, rows, snapshot, task

OUTBOX = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL UNIQUE);
CREATE TRIGGER orders_ship AFTER INSERT ON orders BEGIN
  SELECT task_enqueue('ship', json_object('order', NEW.id, 'item', NEW.item));
END;
CREATE TRIGGER orders_unship AFTER DELETE ON orders BEGIN
  SELECT task_cancel(id) FROM tasks
   WHERE type = 'ship' AND status = 'queued' AND json_extract(details, '$.order') = OLD.id;
END;
"""


@pytest.fixture
def shop(db):
    db.execute(OUTBOX)
    return db


def shipments(db):
    return rows(db, "SELECT json_extract(details, '$.item'), status FROM tasks WHERE type = 'ship' ORDER BY rowid")


def counts(db):
    return one(db, "SELECT count(*) FROM orders"), one(db, "SELECT count(*) FROM task_store")


def test_trigger_enqueues_with_the_row(shop):
    shop.execute("INSERT INTO orders(item) VALUES ('book'), ('pen')")
    assert shipments(shop) == [("book", "queued"), ("pen", "queued")]
    got = claim(shop)
    assert got["details"] == {"order": 1, "item": "book"}


def test_trigger_rollback_removes_row_and_task(shop):
    shop.execute("BEGIN")
    shop.execute("INSERT INTO orders(item) VALUES ('book')")
    assert counts(shop) == (1, 1)
    shop.execute("ROLLBACK")
    assert counts(shop) == (0, 0)


def test_a_failing_trigger_statement_leaves_neither(shop):
    shop.execute("INSERT INTO orders(item) VALUES ('book')")
    before = snapshot(shop)
    # The second row violates UNIQUE after the first row's trigger enqueued.
    with pytest.raises(apsw.ConstraintError):
        shop.execute("INSERT INTO orders(item) VALUES ('pen'), ('book')")
    assert counts(shop) == (1, 1) and snapshot(shop) == before


def test_a_failing_enqueue_in_a_trigger_fails_the_insert(shop):
    shop.execute("CREATE TABLE notes (body TEXT)")
    shop.execute("CREATE TRIGGER notes_task AFTER INSERT ON notes BEGIN SELECT task_enqueue(NEW.body); END")
    shop.execute("BEGIN")
    msg = fails(shop, "INSERT INTO notes VALUES ('a'), ('')", match="type must not be empty")
    assert msg == "task_enqueue: type must not be empty"
    assert one(shop, "SELECT count(*) FROM notes") == 0
    shop.execute("COMMIT")
    assert one(shop, "SELECT count(*) FROM task_store") == 0


def test_trigger_cancels_with_the_delete_and_rollback_restores(shop):
    shop.execute("INSERT INTO orders(item) VALUES ('book'), ('pen')")
    shop.execute("BEGIN")
    shop.execute("DELETE FROM orders WHERE item = 'pen'")
    assert shipments(shop) == [("book", "queued"), ("pen", "cancelled")]
    shop.execute("ROLLBACK")
    assert shipments(shop) == [("book", "queued"), ("pen", "queued")]
    shop.execute("DELETE FROM orders WHERE item = 'pen'")
    assert shipments(shop) == [("book", "queued"), ("pen", "cancelled")]


def test_enqueue_in_the_callers_transaction(db):
    db.execute("CREATE TABLE biz (x)")
    db.execute("BEGIN")
    db.execute("INSERT INTO biz VALUES (1)")
    task_id = enqueue(db, "job", now=0)
    assert task(db, task_id)["status"] == "queued"
    db.execute("ROLLBACK")
    assert rows(db, "SELECT * FROM tasks") == [] and rows(db, "SELECT * FROM biz") == []
    db.execute("BEGIN")
    enqueue(db, "job", id=ID1, now=0)
    db.execute("COMMIT")
    assert task(db, ID1)["status"] == "queued"


def test_every_verb_rolls_back_with_the_transaction(db):
    enqueue(db, "job", id=ID1, now=0)
    before = snapshot(db)
    db.execute("BEGIN IMMEDIATE")
    claim(db, now=10)
    one(db, "SELECT task_progress(?, 50, ?)", ID1, opts(now=20))
    one(db, "SELECT task_fail(?, 'x', ?)", ID1, opts(delay=0, now=30))
    claim(db, now=40)
    one(db, "SELECT task_complete(?, '1', ?)", ID1, opts(now=50))
    db.execute("INSERT INTO tasks(type) VALUES ('other')")
    db.execute("DELETE FROM tasks WHERE id = ?", (ID1,))
    db.execute("ROLLBACK")
    assert snapshot(db) == before


def test_savepoint_rollback(db):
    kept = enqueue(db, "kept", now=0)
    db.execute("BEGIN")
    enqueue(db, "outer", now=0)
    db.execute("SAVEPOINT inner")
    enqueue(db, "inner", now=0)
    db.execute("INSERT INTO tasks(type) VALUES ('inner-vtab')")
    one(db, "SELECT task_cancel(?)", kept)
    db.execute("ROLLBACK TO inner")
    db.execute("RELEASE inner")
    db.execute("COMMIT")
    assert rows(db, "SELECT type, status FROM tasks ORDER BY rowid") == [("kept", "queued"), ("outer", "queued")]


def test_python_with_block_rolls_back_on_a_later_error(db):
    db.execute("CREATE TABLE biz (x UNIQUE)")
    db.execute("INSERT INTO biz VALUES (1)")
    with pytest.raises(apsw.ConstraintError):
        with db:  # apsw: a savepoint, rolled back when the block raises
            enqueue(db, "job", now=0)
            db.execute("INSERT INTO biz VALUES (1)")
    assert rows(db, "SELECT * FROM task_store") == []


def test_or_rollback_in_a_later_statement_rolls_back_the_enqueue(db):
    db.execute("CREATE TABLE biz (x UNIQUE)")
    db.execute("INSERT INTO biz VALUES (1)")
    db.execute("BEGIN")
    enqueue(db, "job", now=0)
    with pytest.raises(apsw.ConstraintError):
        db.execute("INSERT OR ROLLBACK INTO biz VALUES (1)")
    assert db.in_transaction is False
    assert rows(db, "SELECT * FROM task_store") == []


def test_raise_rollback_in_a_trigger_rolls_back_the_enqueue(db):
    db.execute("CREATE TABLE biz (x)")
    db.execute("CREATE TRIGGER biz_veto BEFORE INSERT ON biz WHEN NEW.x < 0 BEGIN SELECT RAISE(ROLLBACK, 'negative'); END")
    db.execute("BEGIN")
    enqueue(db, "job", now=0)
    db.execute("INSERT INTO biz VALUES (1)")
    with pytest.raises(apsw.ConstraintError, match="negative"):
        db.execute("INSERT INTO biz VALUES (-1)")
    assert db.in_transaction is False
    assert counts_of(db) == (0, 0)


def counts_of(db):
    return one(db, "SELECT count(*) FROM biz"), one(db, "SELECT count(*) FROM task_store")


def test_a_multi_row_insert_into_tasks_is_all_or_nothing(db):
    enqueue(db, "kept", now=0)
    before = snapshot(db)
    fails(db, "INSERT INTO tasks(type) VALUES ('a'), ('b'), ('')", match="type must be given")
    db.execute("BEGIN")
    fails(db, "INSERT INTO tasks(type) VALUES ('a'), ('b'), ('')", match="type must be given")
    db.execute("COMMIT")
    assert snapshot(db) == before


def test_a_trigger_on_the_storage_can_call_the_verbs(db):
    # Re-entrancy: task_complete's UPDATE fires a trigger that enqueues.
    db.execute(
        """CREATE TRIGGER follow_up AFTER UPDATE OF status ON task_store
           WHEN NEW.status = 'completed' AND NEW.type = 'report'
           BEGIN SELECT task_enqueue('mail', json_object('report', NEW.id), json_object('queue', 'mail')); END"""
    )
    db.execute(
        """CREATE TRIGGER veto BEFORE UPDATE OF status ON task_store
           WHEN NEW.status = 'cancelled' AND NEW.type = 'report'
           BEGIN SELECT RAISE(ABORT, 'reports cannot be cancelled'); END"""
    )
    enqueue(db, "report", id=ID1, now=0)
    claim(db, now=0)
    msg = fails(db, "SELECT task_cancel(?)", ID1, match="reports cannot", exc=apsw.ConstraintError)
    assert msg == "task_cancel: reports cannot be cancelled"
    assert one(db, "SELECT task_complete(?)", ID1) == "completed"
    assert rows(db, "SELECT type, status, json_extract(details, '$.report') FROM tasks ORDER BY rowid") == [
        ("report", "completed", None),
        ("mail", "queued", ID1),
    ]


def test_trusted_schema_off_refuses_the_trigger(shop):
    shop.execute("PRAGMA trusted_schema = OFF")
    msg = fails(shop, "INSERT INTO orders(item) VALUES ('book')", match="unsafe use")
    assert msg == "unsafe use of task_enqueue()"
    assert counts(shop) == (0, 0)


def test_trusted_schema_off_refuses_the_tasks_table_in_triggers_and_views(shop):
    # docs/concurrency.md: a trigger or view that uses the tasks table fails
    # with `unsafe use of virtual table "tasks"` (orders_unship reads it).
    shop.execute("INSERT INTO orders(item) VALUES ('book')")
    shop.execute("CREATE VIEW queued_ships AS SELECT id FROM tasks WHERE type = 'ship' AND status = 'queued'")
    shop.execute("CREATE TABLE notes (body TEXT)")
    shop.execute("CREATE TRIGGER notes_task AFTER INSERT ON notes BEGIN INSERT INTO tasks(type) VALUES (NEW.body); END")
    shop.execute("PRAGMA trusted_schema = OFF")
    for sql in ["DELETE FROM orders", "SELECT * FROM queued_ships", "INSERT INTO notes VALUES ('n')"]:
        msg = fails(shop, sql, match="unsafe use")
        assert msg == 'unsafe use of virtual table "tasks"', sql
    assert counts(shop) == (1, 1) and one(shop, "SELECT count(*) FROM notes") == 0
    # Top-level use is not affected, and trusted_schema = ON restores the rest.
    assert shipments(shop) == [("book", "queued")]
    shop.execute("PRAGMA trusted_schema = ON")
    assert len(rows(shop, "SELECT * FROM queued_ships")) == 1
    shop.execute("DELETE FROM orders")
    assert shipments(shop) == [("book", "cancelled")]


# docs/concepts.md, "Rules every function follows": each call is one
# transaction step, and a SELECT that makes several calls is not one unit:
# SQLite gives a SELECT no statement transaction, so the calls made before
# the failing one stand.
SEVERAL_CALLS = [
    ("SELECT task_enqueue('a'), task_enqueue('')", ["a"]),
    ("WITH v(t) AS (VALUES ('a'), ('b'), ('')) SELECT task_enqueue(t) FROM v", ["a", "b"]),
]


def types(db):
    return [r[0] for r in rows(db, "SELECT type FROM tasks ORDER BY rowid")]


@pytest.mark.parametrize("sql, kept", SEVERAL_CALLS)
def test_a_failing_select_with_several_calls_keeps_the_earlier_calls(db, tmp_path, sql, kept):
    with pytest.raises(apsw.SQLError) as err:
        db.execute(sql).fetchall()
    assert str(err.value) == "task_enqueue: type must not be empty"
    assert types(db) == kept
    # In autocommit mode they are committed: another connection sees them.
    assert db.in_transaction is False
    other = connect(tmp_path / "task.db")
    try:
        assert types(other) == kept
    finally:
        other.close()


@pytest.mark.parametrize("sql, kept", SEVERAL_CALLS)
def test_in_a_transaction_the_earlier_calls_stay_until_commit_or_rollback(db, sql, kept):
    db.execute("BEGIN")
    with pytest.raises(apsw.SQLError, match="type must not be empty"):
        db.execute(sql).fetchall()
    assert db.in_transaction  # the error does not end the transaction
    assert types(db) == kept
    db.execute("COMMIT")
    assert types(db) == kept


@pytest.mark.parametrize("sql, kept", SEVERAL_CALLS)
def test_all_or_nothing_by_rolling_back_on_error(db, sql, kept):
    # The docs' remedy: an explicit transaction, rolled back on error.
    enqueue(db, "before", now=0)
    before = snapshot(db)
    db.execute("BEGIN")
    with pytest.raises(apsw.SQLError, match="type must not be empty"):
        db.execute(sql).fetchall()
    db.execute("ROLLBACK")
    assert snapshot(db) == before


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in BEGIN"])
def test_insert_into_tasks_select_is_all_or_nothing(db, in_transaction):
    # The docs' other remedy: one write statement, undone as a whole.
    db.execute("CREATE TABLE jobs (kind TEXT, arg INTEGER)")
    db.execute("INSERT INTO jobs VALUES ('a', 1), ('b', 2), ('', 3), ('d', 4)")
    enqueue(db, "before", now=0)
    before = snapshot(db)
    if in_transaction:
        db.execute("BEGIN")
    msg = fails(
        db,
        "INSERT INTO tasks(type, details) SELECT kind, json_object('arg', arg) FROM jobs ORDER BY arg",
        match="type must be given and not empty",
    )
    assert msg == "tasks: type must be given and not empty"
    assert db.in_transaction is in_transaction
    if in_transaction:
        db.execute("COMMIT")
    assert snapshot(db) == before
    # The same statement without the bad row inserts every row.
    db.execute("DELETE FROM jobs WHERE kind = ''")
    db.execute("INSERT INTO tasks(type, details) SELECT kind, json_object('arg', arg) FROM jobs ORDER BY arg")
    assert types(db) == ["before", "a", "b", "d"]


@pytest.mark.parametrize(
    "name, sql",
    [
        ("task_enqueue", "SELECT task_enqueue('job')"),
        ("task_claim", "SELECT task_claim('w2')"),
        ("task_cancel", f"SELECT task_cancel('{ID1}')"),
    ],
)
def test_a_lock_error_keeps_its_code(db, tmp_path, name, sql):
    enqueue(db, "job", id=ID1, now=0)
    other = connect(tmp_path / "task.db")  # no busy timeout: fail at once
    try:
        db.execute("BEGIN IMMEDIATE")
        with pytest.raises(apsw.BusyError) as err:
            other.execute(sql).fetchall()
        assert str(err.value) == f"{name}: database is locked"
        assert err.value.extendedresult == apsw.SQLITE_BUSY
        db.execute("ROLLBACK")
        assert task(db, ID1)["status"] == "queued"
    finally:
        other.close()


def test_the_deferred_transaction_trap_reports_busy_snapshot(db, tmp_path):
    enqueue(db, "job", now=0)
    other = connect(tmp_path / "task.db")
    try:
        other.execute("BEGIN")
        assert one(other, "SELECT count(*) FROM tasks") == 1  # read snapshot starts
        enqueue(db, "job", now=0)  # another connection writes
        with pytest.raises(apsw.BusyError) as err:
            other.execute("SELECT task_claim('w1')").fetchall()
        assert str(err.value) == "task_claim: database is locked"
        assert err.value.extendedresult == apsw.SQLITE_BUSY_SNAPSHOT
        other.execute("ROLLBACK")
    finally:
        other.close()
