"""The SQL functions: every verb's happy path, the queue's rules, and every bad
input.

A failing call is checked twice: its message names the function and the
problem, and the storage is exactly as it was before (`fails` compares
snapshots of task_store). Time is always supplied with {"now": ms}; nothing
here sleeps.
"""

import json
import re
import uuid

import apsw
import pytest

from conftest import (
    ID1,
    ID2,
    ID3,
    REPO,
    UNKNOWN,
    claim,
    connect,
    enqueue,
    fails,
    one,
    opts,
    rows,
    snapshot,
    task,
    vm_steps,
)

MAX_TIME = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_LEASE = 366 * 24 * 3_600_000
MAX_BATCH = 10_000


def not_an_object(kind):
    """The message for options that are valid JSON but not an object."""
    return f"options must be a JSON object, got {kind}"


def out_of_range(option, shown):
    """The message for an option beyond the 64-bit integer range."""
    return f'option "{option}" is out of range for a 64-bit integer, got {shown}'


def claim_batch(db, worker="w1", limit=100, **options):
    """The claimed tasks, as a list of dicts."""
    return json.loads(one(db, "SELECT task_claim_batch(?, ?, ?)", worker, limit, opts(**options)))


NOT_INITIALIZED = (
    "the task storage does not exist in this database; run SELECT task_init() first"
)


@pytest.fixture
def queued(db):
    """ID1, queued since t=1000."""
    enqueue(db, "job", '{"n": 1}', id=ID1, now=1000)
    return ID1


@pytest.fixture
def running(db, queued):
    """ID1, claimed by w1 at t=2000 with a 10 s lease (attempt 1)."""
    assert claim(db, "w1", now=2000, lease=10_000)["attempt"] == 1
    return ID1


def expire_and_reclaim(db, task_id, worker="w2", now=20_000):
    """Lets `task_id`'s lease run out and has `worker` claim it again."""
    got = claim(db, worker, now=now)
    assert got["id"] == task_id
    return got["attempt"]


# ---- version, debug, init -------------------------------------------------


def test_version_is_the_crate_version(raw_db):
    cargo = (REPO / "Cargo.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    assert one(raw_db, "SELECT task_version()") == f"v{version}"


def test_debug_reports_version_host_schema_and_build(db, raw_db):
    lines = one(db, "SELECT task_debug()").split("\n")
    sqlite_version = one(db, "SELECT sqlite_version()")
    assert lines[0] == "sqlite-task " + one(db, "SELECT task_version()")
    assert lines[1] == f"sqlite {sqlite_version} (floor 3.35.4)"
    assert lines[2] == "schema 9 (this build: 9)"
    assert lines[3] in ("build release", "build debug")
    assert len(lines) == 4
    raw = one(raw_db, "SELECT task_debug()").split("\n")
    assert raw[2] == "schema none: run SELECT task_init()"


def test_init_creates_the_storage_and_is_idempotent(raw_db):
    assert one(raw_db, "SELECT task_init()") == 9
    names = [r[0] for r in rows(raw_db, "SELECT name FROM sqlite_master ORDER BY name")]
    assert names == [
        "sqlite_autoindex_task_meta_1",
        "task_deps",
        "task_deps_task",
        "task_event_store",
        "task_events",
        "task_meta",
        "task_parent_store",
        "task_queue_store",
        "task_queues",
        "task_rate_store",
        "task_rate_store_queue",
        "task_schedule_due",
        "task_schedule_runs",
        "task_schedule_store",
        "task_schedules",
        "task_store",
        "task_store_busy",
        "task_store_id",
        "task_store_parent",
        "task_store_parked",
        "task_store_ready",
        "task_store_running",
        "task_store_unique",
    ]
    assert rows(raw_db, "SELECT key, value FROM task_meta") == [("schema_version", 9)]
    enqueue(raw_db, "job", id=ID1)
    before = snapshot(raw_db)
    assert one(raw_db, "SELECT task_init()") == 9
    assert snapshot(raw_db) == before


def test_the_storage_checks_status(db):
    # status is CHECKed (docs/storage.md), so the status indexes and the
    # completed tasks' table scan hold every row; a direct write cannot add
    # an eighth status.
    enqueue(db, "job", id=ID1, now=0)
    before = snapshot(db)
    # The CHECK is named (docs/storage.md), and the violation says so.
    with pytest.raises(apsw.ConstraintError) as err:
        db.execute("UPDATE task_store SET status = 'done' WHERE id = ?", (ID1,))
    assert str(err.value) == "CHECK constraint failed: task_status"
    with pytest.raises(apsw.ConstraintError) as err:
        db.execute(
            "INSERT INTO task_store(id, queue, type, status, max_attempts, run_at, created_at, updated_at)"
            " VALUES (?, 'default', 'job', 'Queued', 3, 0, 0, 0)",
            (ID2,),
        )
    assert str(err.value) == "CHECK constraint failed: task_status"
    assert snapshot(db) == before
    indexed = rows(db, "SELECT name FROM pragma_index_info('task_store_parked') ORDER BY seqno")
    assert [r[0] for r in indexed] == ["status", "type", "queue", "completed_at"]
    # A query of one's own reads it by repeating its condition (docs/storage.md).
    own = ("SELECT id FROM task_store WHERE NOT (status = 'running' OR status = 'queued' OR status = 'completed')"
           " AND status = 'failed'")
    plan = " ".join(r[3] for r in rows(db, "EXPLAIN QUERY PLAN " + own))
    assert "INDEX task_store_parked (status=?)" in plan, plan


def test_init_inside_a_transaction_rolls_back_with_it(raw_db):
    raw_db.execute("BEGIN")
    assert one(raw_db, "SELECT task_init()") == 9
    raw_db.execute("ROLLBACK")
    assert one(raw_db, "SELECT count(*) FROM sqlite_master") == 0


def test_init_is_refused_in_triggers_and_views(raw_db):
    raw_db.execute("CREATE TABLE t(x)")
    raw_db.execute("CREATE TRIGGER t_init AFTER INSERT ON t BEGIN SELECT task_init(); END")
    raw_db.execute("CREATE VIEW v AS SELECT task_init() AS v")
    fails(raw_db, "INSERT INTO t VALUES (1)", match="unsafe use of task_init()")
    fails(raw_db, "SELECT * FROM v", match="unsafe use of task_init()")


# The storage as schema version 1 created it (frozen here: a migration must
# keep working on databases written by that release).
SCHEMA_V1 = """
CREATE TABLE task_store (
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL, queue TEXT NOT NULL, type TEXT NOT NULL,
  status TEXT NOT NULL CONSTRAINT task_status CHECK (status = 'queued' OR status = 'running'
    OR status = 'completed' OR status = 'failed' OR status = 'cancelled'),
  priority INTEGER NOT NULL DEFAULT 0, progress NUMERIC NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, parent_id TEXT,
  worker TEXT, lease_until INTEGER, lease_ms INTEGER, run_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, started_at INTEGER,
  completed_at INTEGER, details TEXT, result TEXT, error TEXT);
CREATE UNIQUE INDEX task_store_id ON task_store(id);
CREATE INDEX task_store_ready ON task_store(queue, priority DESC, run_at) WHERE status = 'queued';
CREATE INDEX task_store_running ON task_store(lease_until) WHERE status = 'running';
CREATE INDEX task_store_finished ON task_store(status, type, queue, completed_at)
  WHERE status = 'completed' OR status = 'failed' OR status = 'cancelled';
CREATE INDEX task_store_parent ON task_store(parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE task_meta (key TEXT PRIMARY KEY, value);
INSERT INTO task_meta VALUES ('schema_version', 1);
INSERT INTO task_store(id, queue, type, status, max_attempts, attempts, worker, lease_until,
                       lease_ms, run_at, created_at, updated_at, started_at, completed_at, error)
VALUES ('0193a000-0000-7000-8000-000000000001', 'default', 'job', 'queued', 3, 0, NULL, NULL,
        NULL, 1000, 1000, 1000, NULL, NULL, NULL),
       ('0193a000-0000-7000-8000-000000000002', 'default', 'job', 'running', 3, 1, 'w1', 12000,
        10000, 1000, 1000, 2000, 2000, NULL, NULL),
       ('0193a000-0000-7000-8000-000000000003', 'default', 'job', 'completed', 3, 1, 'w1', NULL,
        10000, 1000, 1000, 3000, 2000, 3000, NULL),
       ('0193a000-0000-7000-8000-000000000004', 'other', 'job', 'failed', 1, 1, 'w1', NULL,
        10000, 1000, 1000, 3000, 2000, 3000, 'boom');
"""


def test_a_version_1_storage_is_migrated_by_task_init(tmp_path):
    path = tmp_path / "v1.db"
    plain = connect(path, load=False)
    plain.execute(SCHEMA_V1)
    cols = ", ".join(r[1] for r in rows(plain, "PRAGMA table_info(task_store)"))
    before = rows(plain, f"SELECT {cols} FROM task_store ORDER BY seq")
    plain.close()
    db = connect(path)
    # Until task_init() runs, every verb says what to do.
    older = "the task storage is at schema version 1, this extension needs 9; run SELECT task_init() to migrate it"
    assert fails(db, "SELECT task_claim('w2', ?)", opts(now=5000), match=older) == "task_claim: " + older
    assert one(db, "SELECT task_init()") == 9
    assert rows(db, "SELECT value FROM task_meta WHERE key = 'schema_version'") == [(9,)]
    assert rows(db, f"SELECT {cols} FROM task_store ORDER BY seq") == before
    partial = [r[0] for r in rows(db, "SELECT name FROM pragma_index_list('task_store') WHERE partial ORDER BY name")]
    assert partial == [
        "task_store_busy", "task_store_parent", "task_store_parked", "task_store_ready", "task_store_running",
        "task_store_unique",
    ]
    assert one(db, "SELECT task_check()") == "ok"
    # The migrated storage answers every status, and the queue goes on.
    got = rows(db, "SELECT status, substr(id, 36) FROM tasks ORDER BY status")
    assert got == [("completed", "3"), ("failed", "4"), ("queued", "1"), ("running", "2")]
    assert rows(db, "SELECT substr(id, 36) FROM tasks WHERE status = 'failed' AND queue = 'other'") == [("4",)]
    assert claim(db, "w2", now=5000)["id"] == ID1
    assert one(db, "SELECT task_complete(?, NULL, ?)", ID1, opts(now=6000)) == "completed"
    assert one(db, "SELECT count(*) FROM tasks WHERE status = 'completed'") == 2
    assert one(db, "SELECT task_init()") == 9


# The storage as schema version 2 created it (frozen), with a family made
# when parent_id had no consequence, and a user's trigger and view on it.
SCHEMA_V2 = (
    SCHEMA_V1.replace("INSERT INTO task_meta VALUES ('schema_version', 1);", "INSERT INTO task_meta VALUES ('schema_version', 2);")
    .replace(
        """CREATE INDEX task_store_finished ON task_store(status, type, queue, completed_at)
  WHERE status = 'completed' OR status = 'failed' OR status = 'cancelled';""",
        """CREATE INDEX task_store_failed ON task_store(status, type, queue, completed_at)
  WHERE status = 'failed' OR status = 'cancelled';""",
    )
    + """
INSERT INTO task_store(id, queue, type, status, max_attempts, run_at, created_at, updated_at, parent_id,
                       completed_at, progress)
VALUES ('0193a000-0000-7000-8000-000000000011', 'default', 'child', 'queued', 3, 1000, 1000, 1000,
        '0193a000-0000-7000-8000-000000000003', NULL, 30),
       ('0193a000-0000-7000-8000-000000000012', 'default', 'child', 'completed', 3, 1000, 1000, 1000,
        '0193a000-0000-7000-8000-000000000003', 3000, 100);
CREATE TABLE audit (id TEXT, status TEXT);
CREATE TRIGGER task_audit AFTER UPDATE OF status ON task_store
  BEGIN INSERT INTO audit VALUES (NEW.id, NEW.status); END;
CREATE VIEW open_tasks AS SELECT id, status FROM task_store WHERE status = 'queued' OR status = 'running';
"""
)


def test_a_version_2_storage_is_rebuilt_by_task_init_keeping_rows_triggers_and_views(tmp_path):
    path = tmp_path / "v2.db"
    plain = connect(path, load=False)
    plain.execute(SCHEMA_V2)
    cols = ", ".join(r[1] for r in rows(plain, "PRAGMA table_info(task_store)"))
    before = rows(plain, f"SELECT {cols} FROM task_store ORDER BY seq")
    plain.close()
    db = connect(path)
    older = "the task storage is at schema version 2, this extension needs 9; run SELECT task_init() to migrate it"
    assert fails(db, "SELECT task_claim('w2', ?)", opts(now=5000), match=older) == "task_claim: " + older
    assert one(db, "SELECT task_init()") == 9
    # Every row, rowid and id kept; the new columns at their defaults, but
    # for the children the version 2 family already had.
    assert rows(db, f"SELECT {cols} FROM task_store ORDER BY seq") == before
    assert rows(db, "SELECT substr(id, 35), children, children_done FROM tasks WHERE children > 0") == [
        ("03", 2, 1),
    ]
    # The unfinished child with progress is in the rollup's index.
    assert rows(db, "SELECT substr(id, 35) FROM task_store WHERE flags & 16") == [("11",)]
    names = [r[0] for r in rows(db, "SELECT name FROM pragma_index_list('task_store') ORDER BY name")]
    assert names == [
        "task_store_busy", "task_store_id", "task_store_parent", "task_store_parked", "task_store_ready",
        "task_store_running", "task_store_unique",
    ]
    # The user's trigger and view are there and work on the new table.
    assert rows(db, "SELECT type, name FROM sqlite_master WHERE name IN ('task_audit', 'open_tasks') ORDER BY name") == [
        ("view", "open_tasks"), ("trigger", "task_audit"),
    ]
    assert claim(db, "w2", now=5000)["id"] == ID1
    assert rows(db, "SELECT * FROM audit") == [(ID1, "running")]
    assert one(db, "SELECT count(*) FROM open_tasks") == 3
    assert one(db, "SELECT task_check()") == "ok"
    assert one(db, "SELECT task_init()") == 9


def test_a_storage_from_a_newer_release_is_refused(db, tmp_path):
    db.execute("UPDATE task_meta SET value = 10 WHERE key = 'schema_version'")
    newer = "the task storage is at schema version 10, newer than this extension (version 9); load a newer sqlite-task"
    other = connect(tmp_path / "task.db")
    try:
        msg = fails(other, "SELECT task_init()", match=newer)
        assert msg == "task_init: " + newer
        msg = fails(other, "SELECT task_enqueue('job')", match=newer)
        assert msg == "task_enqueue: " + newer
    finally:
        other.close()


VERB_CALLS = [
    ("task_check", "SELECT task_check()"),
    ("task_enqueue", "SELECT task_enqueue('job')"),
    ("task_claim", "SELECT task_claim('w1')"),
    ("task_claim_batch", "SELECT task_claim_batch('w1', 10)"),
    ("task_progress", f"SELECT task_progress('{ID1}', 5)"),
    ("task_heartbeat", f"SELECT task_heartbeat('{ID1}')"),
    ("task_complete", f"SELECT task_complete('{ID1}')"),
    ("task_complete_next", f"SELECT task_complete_next('{ID1}', NULL, 'w1')"),
    ("task_complete_batch", f"SELECT task_complete_batch('[{{\"id\": \"{ID1}\"}}]')"),
    ("task_fail", f"SELECT task_fail('{ID1}', 'boom')"),
    ("task_fail_batch", f"SELECT task_fail_batch('[{{\"id\": \"{ID1}\", \"error\": \"e\"}}]')"),
    ("task_cancel", f"SELECT task_cancel('{ID1}')"),
    ("task_retry", f"SELECT task_retry('{ID1}')"),
    ("tasks", "SELECT * FROM tasks"),
    ("tasks", "INSERT INTO tasks(type) VALUES ('job')"),
]


@pytest.mark.parametrize("name, sql", VERB_CALLS)
def test_verbs_before_init_say_to_run_task_init(raw_db, name, sql):
    msg = fails(raw_db, sql, match=NOT_INITIALIZED)
    assert msg == f"{name}: {NOT_INITIALIZED}"
    assert one(raw_db, "SELECT count(*) FROM sqlite_master") == 0


# ---- arity ----------------------------------------------------------------

ARITIES = {
    "task_version": [0],
    "task_debug": [0],
    "task_init": [0, 1],
    "task_check": [0],
    "task_enqueue": [1, 2, 3],
    "task_claim": [1, 2],
    "task_claim_batch": [2, 3],
    "task_progress": [2, 3],
    "task_heartbeat": [1, 2],
    "task_complete": [1, 2, 3],
    "task_complete_next": [3, 4],
    "task_complete_batch": [1, 2],
    "task_fail_batch": [1, 2],
    "task_fail": [2, 3],
    "task_cancel": [1, 2],
    "task_retry": [1, 2],
    "task_schedule": [3, 4, 5],
    "task_schedule_pause": [1, 2],
    "task_schedule_resume": [1, 2],
    "task_unschedule": [1],
    "task_tick": [0, 1],
    "task_prune": [1],
    "task_stats": [0, 1],
    "task_wait": [1, 2],
}
WRONG_ARITIES = [
    (name, n) for name, ok in ARITIES.items() for n in range(5) if n not in ok
]


@pytest.mark.parametrize("name, n", WRONG_ARITIES)
def test_wrong_number_of_arguments_is_refused_by_sqlite(db, queued, name, n):
    args = ", ".join(["'x'"] * n)
    msg = fails(db, f"SELECT {name}({args})", match="wrong number of arguments")
    assert msg == f"wrong number of arguments to function {name}()"


# ---- task_enqueue ---------------------------------------------------------


def test_enqueue_defaults(db):
    task_id = enqueue(db, "email", '{"to": "ann"}', now=1000)
    assert uuid.UUID(task_id).version == 7
    assert str(uuid.UUID(task_id)) == task_id
    assert task(db, task_id) == {
        "id": task_id,
        "queue": "default",
        "type": "email",
        "status": "queued",
        "priority": 0,
        "progress": 0,
        "details": '{"to": "ann"}',
        "result": None,
        "error": None,
        "attempts": 0,
        "max_attempts": 3,
        "parent_id": None,
        "worker": None,
        "lease_until": None,
        "run_at": 1000,
        "created_at": 1000,
        "updated_at": 1000,
        "started_at": None,
        "completed_at": None,
        "unique_key": None,
        "depends_on": None,
        "children": 0,
        "children_done": 0,
    }


def test_enqueue_without_options_or_details(db):
    task_id = one(db, "SELECT task_enqueue('job')")
    row = task(db, task_id)
    assert row["details"] is None and row["status"] == "queued"
    assert one(db, "SELECT task_enqueue('job', NULL, NULL)") != task_id
    assert one(db, "SELECT task_enqueue('job', NULL, '{}')") != task_id


def test_generated_ids_are_v7_on_the_supplied_clock(db):
    a = enqueue(db, now=1_700_000_000_123)
    b = enqueue(db, now=1_700_000_000_124)
    assert a < b
    assert int(a.replace("-", "")[:12], 16) == 1_700_000_000_123


def test_enqueue_with_every_option(db, queued):
    task_id = enqueue(
        db,
        "thumb",
        '["a", 1]',
        id=ID2,
        queue="images",
        priority=-7,
        run_at=5000,
        max_attempts=9,
        parent_id=ID1,
        now=1500,
    )
    assert task_id == ID2
    row = task(db, ID2)
    assert (row["queue"], row["type"], row["priority"], row["run_at"]) == ("images", "thumb", -7, 5000)
    assert (row["max_attempts"], row["parent_id"], row["details"]) == (9, ID1, '["a", 1]')
    assert (row["created_at"], row["updated_at"]) == (1500, 1500)


def test_enqueue_delay_counts_from_now(db):
    task_id = enqueue(db, delay=2500, now=1000)
    assert task(db, task_id)["run_at"] == 3500


@pytest.mark.parametrize(
    "given",
    [
        ID1.upper(),
        ID1.replace("-", ""),
        "{" + ID1 + "}",
    ],
)
def test_ids_are_canonicalised(db, given):
    assert enqueue(db, id=given) == ID1
    assert one(db, "SELECT task_cancel(?)", given.upper()) == "cancelled"


@pytest.mark.parametrize(
    "options",
    [
        {"priority": -2147483648},
        {"priority": 2147483647},
        {"max_attempts": 1},
        {"max_attempts": 1000},
        {"delay": 0, "now": 0},
        {"run_at": 0},
        {"run_at": MAX_TIME},
        {"now": MAX_TIME},
        {"queue": None, "priority": None, "id": None},
    ],
)
def test_enqueue_accepts_the_boundaries(db, options):
    task_id = enqueue(db, **options)
    assert task(db, task_id)["status"] == "queued"


@pytest.mark.parametrize("details", ['"text"', "1", "null", "[]", ' {"a": [1, {"b": null}]} '])
def test_any_json_value_is_valid_details(db, details):
    assert task(db, enqueue(db, "job", details))["details"] == details


def test_values_are_bound_never_spliced(db):
    evil = "a'); DROP TABLE task_store; --"
    task_id = enqueue(db, evil, json.dumps({"q": evil}), queue=evil)
    got = claim(db, queue=evil)
    assert (got["id"], got["type"], got["queue"], got["details"]) == (task_id, evil, evil, {"q": evil})


ENQUEUE_BAD = [
    # type
    (("", None, None), "type must not be empty"),
    ((1, None, None), "type must be text, got an integer"),
    ((1.5, None, None), "type must be text, got a real"),
    ((b"job", None, None), "type must be text, got a blob"),
    ((None, None, None), "type must be text, got NULL"),
    # details
    (("job", 5, None), "details must be text or NULL, got an integer"),
    (("job", b"{}", None), "details must be text or NULL, got a blob"),
    (("job", '{"a":', None), "details is not valid JSON: EOF while parsing a value at line 1 column 5"),
    (("job", "NaN", None), "details is not valid JSON: expected value at line 1 column 1"),
    (("job", "{} {}", None), "details is not valid JSON: trailing characters at line 1 column 4"),
    (("job", "", None), "details is not valid JSON: EOF while parsing a value at line 1 column 0"),
    # options: shape
    (("job", None, 5), "options must be text or NULL, got an integer"),
    (("job", None, b"{}"), "options must be text or NULL, got a blob"),
    (("job", None, "{"), "options are not valid JSON: EOF while parsing an object at line 1 column 1"),
    (("job", None, "[]"), not_an_object("an array")),
    (("job", None, "null"), not_an_object("null")),
    (("job", None, '"queue"'), not_an_object("a string")),
    (("job", None, "5"), not_an_object("a number")),
    (("job", None, "true"), not_an_object("a boolean")),
    (
        ("job", None, '{"prority": 1}'),
        'unknown option "prority" (expected one of: queue, priority, run_at, delay, max_attempts, parent_id, id, now, depends_on, unique_key, on_conflict, unique_scope, on_child_failure, wait_for_children)',
    ),
    (
        ("job", None, '{"lease": 1, "queue": "q"}'),
        'unknown option "lease" (expected one of: queue, priority, run_at, delay, max_attempts, parent_id, id, now, depends_on, unique_key, on_conflict, unique_scope, on_child_failure, wait_for_children)',
    ),
    # options: types and ranges
    (("job", None, '{"priority": "5"}'), 'option "priority" must be a whole number, got a string'),
    (("job", None, '{"priority": true}'), 'option "priority" must be a whole number, got a boolean'),
    # A fraction is refused; a whole number written as a real is accepted
    # (test_whole_numbers_written_as_reals_are_accepted).
    (("job", None, '{"priority": 1.5}'), 'option "priority" must be a whole number, got 1.5'),
    (("job", None, '{"priority": -0.5}'), 'option "priority" must be a whole number, got -0.5'),
    (("job", None, '{"priority": 2.25e1}'), 'option "priority" must be a whole number, got 22.5'),
    (("job", None, '{"priority": 1e-300}'), 'option "priority" must be a whole number, got 1e-300'),
    # Beyond 64 bits (more in test_any_number_beyond_64_bits_is_out_of_range).
    (("job", None, '{"priority": 9223372036854775808}'), out_of_range("priority", "9223372036854775808")),
    (("job", None, '{"priority": 18446744073709551615}'), out_of_range("priority", "18446744073709551615")),
    # Within 64 bits but beyond the option's own range.
    (("job", None, '{"priority": -9223372036854775808}'), "priority must be between -2147483648 and 2147483647, got -9223372036854775808"),
    (("job", None, '{"priority": 2147483648.0}'), "priority must be between -2147483648 and 2147483647, got 2147483648"),
    (("job", None, '{"priority": 2147483648}'), "priority must be between -2147483648 and 2147483647, got 2147483648"),
    (("job", None, '{"priority": -2147483649}'), "priority must be between -2147483648 and 2147483647, got -2147483649"),
    (("job", None, '{"max_attempts": 0}'), "max_attempts must be between 1 and 1000, got 0"),
    (("job", None, '{"max_attempts": 1001}'), "max_attempts must be between 1 and 1000, got 1001"),
    (("job", None, '{"max_attempts": "3"}'), 'option "max_attempts" must be a whole number, got a string'),
    (("job", None, '{"delay": -1, "now": 1000}'), f"delay must be between 0 and {MAX_TIME - 1000}, got -1"),
    (
        ("job", None, f'{{"delay": {MAX_TIME}, "now": 1000}}'),
        f"delay must be between 0 and {MAX_TIME - 1000}, got {MAX_TIME}",
    ),
    (("job", None, '{"run_at": 5000, "delay": 10}'), "give run_at or delay, not both"),
    (("job", None, '{"run_at": -1}'), f"run_at must be between 0 and {MAX_TIME}, got -1"),
    (("job", None, f'{{"run_at": {MAX_TIME + 1}}}'), f"run_at must be between 0 and {MAX_TIME}, got {MAX_TIME + 1}"),
    (("job", None, '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
    (("job", None, '{"now": "soon"}'), 'option "now" must be a whole number, got a string'),
    (("job", None, '{"queue": ""}'), 'option "queue" must not be empty'),
    (("job", None, '{"queue": 5}'), 'option "queue" must be a string, got a number'),
    (("job", None, '{"queue": ["a"]}'), 'option "queue" must be a string, got an array'),
    # ids
    (("job", None, '{"id": "not-a-uuid"}'), "id must be a UUID, got 'not-a-uuid'"),
    (("job", None, '{"id": "0193a000-0000-7000-8000-00000000000g"}'), "id must be a UUID, got '0193a000-0000-7000-8000-00000000000g'"),
    (("job", None, '{"id": 5}'), 'option "id" must be a string, got a number'),
    (("job", None, '{"id": {}}'), 'option "id" must be a string, got an object'),
    (("job", None, '{"parent_id": "p1"}'), "parent_id must be a UUID, got 'p1'"),
    (("job", None, '{"parent_id": ""}'), 'option "parent_id" must not be empty'),
    (("job", None, '{"parent_id": "0193a000"}'), "parent_id must be a UUID, got '0193a000'"),
    (("job", None, f'{{"parent_id": "{UNKNOWN}"}}'), f"parent task {UNKNOWN} not found"),
]


@pytest.mark.parametrize("args, problem", ENQUEUE_BAD)
def test_enqueue_bad_input(db, queued, args, problem):
    msg = fails(db, "SELECT task_enqueue(?, ?, ?)", *args, match=problem)
    assert msg == f"task_enqueue: {problem}"


def test_enqueue_duplicate_id(db, queued):
    for given in (ID1, ID1.upper()):
        msg = fails(
            db,
            "SELECT task_enqueue('job', NULL, ?)",
            opts(id=given),
            match="already exists",
            exc=apsw.ConstraintError,
        )
        assert msg == f"task_enqueue: task {ID1} already exists"


@pytest.mark.parametrize("option", ["id", "parent_id"])
def test_long_values_are_cut_in_messages(db, option):
    msg = fails(db, "SELECT task_enqueue('job', NULL, ?)", opts(**{option: "x" * 500}), match="must be a UUID")
    assert msg == f"task_enqueue: {option} must be a UUID, got '{'x' * 60}…'"


@pytest.mark.parametrize(
    "number",
    [
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "100000000000000000000000",
        "-100000000000000000000000",
        "1e300",
        "-1e300",
        "1.5e19",
    ],
)
def test_any_number_beyond_64_bits_is_out_of_range(db, number):
    # Integers of either sign past 64 bits and huge reals get one message.
    # The number is shown as parsed: exactly up to 2^64 - 1, as a (rounded)
    # real beyond, e.g. 18446744073709551616 shows as 1.8446744073709552e+19.
    msg = fails(db, "SELECT task_enqueue('job', NULL, ?)", f'{{"priority": {number}}}', match="out of range")
    prefix = "task_enqueue: " + out_of_range("priority", "")
    assert msg.startswith(prefix), msg
    assert float(msg[len(prefix):]) == float(number), msg


@pytest.mark.parametrize(
    "sql, name, option",
    [
        ("SELECT task_enqueue('job', NULL, ?)", "task_enqueue", "run_at"),
        ("SELECT task_claim('w1', ?)", "task_claim", "lease"),
        ("SELECT task_claim_batch('w1', 5, ?)", "task_claim_batch", "now"),
        (f"SELECT task_progress('{ID1}', 5, ?)", "task_progress", "attempt"),
        (f"SELECT task_fail('{ID1}', 'e', ?)", "task_fail", "delay"),
        (f"SELECT task_cancel('{ID1}', ?)", "task_cancel", "now"),
    ],
)
def test_every_verb_refuses_numbers_beyond_64_bits(db, running, sql, name, option):
    msg = fails(db, sql, f'{{"{option}": -18446744073709551616}}', match="out of range")
    prefix = f"{name}: " + out_of_range(option, "")
    assert msg.startswith(prefix), msg
    assert float(msg[len(prefix):]) == -18446744073709551616, msg


WHOLE_REALS = [("2.0", 2), ("-3.0", -3), ("-0.0", 0), ("1e3", 1000), ("1E3", 1000), ("2.5e1", 25), ("0.1e1", 1)]


@pytest.mark.parametrize("written, value", WHOLE_REALS)
def test_whole_numbers_written_as_reals_are_accepted(db, written, value):
    # docs/concepts.md, "Rules every function follows": whole numbers may be
    # written as reals.
    task_id = one(db, "SELECT task_enqueue('job', NULL, ?)", f'{{"priority": {written}, "now": 0}}')
    assert task(db, task_id)["priority"] == value
    assert one(db, "SELECT typeof(priority) FROM tasks WHERE id = ?", task_id) == "integer"


def test_every_integer_option_takes_a_whole_real(db):
    # enqueue: run_at, max_attempts, now; and delay
    task_id = one(db, "SELECT task_enqueue('job', NULL, ?)", '{"run_at": 2e3, "max_attempts": 5.0, "now": 1e3}')
    row = task(db, task_id)
    assert (row["run_at"], row["max_attempts"], row["created_at"]) == (2000, 5, 1000)
    other = one(db, "SELECT task_enqueue('job', NULL, ?)", '{"delay": 1.5e3, "now": 1000.0}')
    assert task(db, other)["run_at"] == 2500
    # claim: lease, now; progress/heartbeat: attempt, lease, now
    got = json.loads(one(db, "SELECT task_claim('w1', ?)", '{"lease": 3e4, "now": 2e3}'))
    assert (got["id"], got["lease_until"]) == (task_id, 32_000)
    assert one(db, "SELECT task_progress(?, 10, ?)", task_id, '{"attempt": 1.0, "lease": 1e4, "now": 3e3}') == "running"
    assert task(db, task_id)["lease_until"] == 13_000
    assert one(db, "SELECT task_heartbeat(?, ?)", task_id, '{"attempt": 1.0, "now": 5.5e3}') == "running"
    assert task(db, task_id)["lease_until"] == 15_500
    # fail: attempt, delay, now; claim_batch; complete: attempt, now;
    # cancel and retry: now
    assert one(db, "SELECT task_fail(?, 'e', ?)", task_id, '{"attempt": 1.0, "delay": 5e2, "now": 5e3}') == "queued"
    assert task(db, task_id)["run_at"] == 5500
    batch = json.loads(one(db, "SELECT task_claim_batch('w1', 10, ?)", '{"lease": 1e3, "now": 6e3}'))
    # claim order: other's run_at (2500) comes before task_id's (5500)
    assert [(t["id"], t["attempt"], t["lease_until"]) for t in batch] == [(other, 1, 7000), (task_id, 2, 7000)]
    assert one(db, "SELECT task_complete(?, NULL, ?)", task_id, '{"attempt": 2.0, "now": 7e3}') == "completed"
    assert task(db, task_id)["completed_at"] == 7000
    assert one(db, "SELECT task_cancel(?, ?)", other, '{"now": 8e3}') == "cancelled"
    assert one(db, "SELECT task_retry(?, ?)", other, '{"now": 9e3}') == "queued"
    assert task(db, other)["run_at"] == 9000


@pytest.mark.parametrize("written", ["1e18", "4611686018427387904.0", "-9007199254740992.0"])
def test_a_whole_real_beyond_2_53_must_be_written_as_an_integer(db, written):
    # Past 2^53 a JSON real may already have been rounded when parsed, so the
    # extension asks for the integer rather than guess.
    msg = fails(db, "SELECT task_enqueue('job', NULL, ?)", f'{{"now": {written}}}', match="now")
    assert msg.startswith('task_enqueue: option "now" must be written as an integer'), msg


# ---- task_claim -----------------------------------------------------------


def test_claim_returns_the_task_and_records_the_lease(db):
    enqueue(db, "email", '{"to": "ann"}', id=ID1, queue="mail", priority=3, max_attempts=5, now=1000)
    enqueue(db, "child", id=ID2, parent_id=ID1, now=1000)
    got = claim(db, "w1", now=2000, lease=30_000)
    assert got == {
        "id": ID1,
        "type": "email",
        "queue": "mail",
        "details": {"to": "ann"},
        "attempt": 1,
        "max_attempts": 5,
        "priority": 3,
        "parent_id": None,
        "run_at": 1000,
        "lease_until": 32_000,
        "created_at": 1000,
    }
    row = task(db, ID1)
    assert (row["status"], row["worker"], row["attempts"]) == ("running", "w1", 1)
    assert (row["started_at"], row["updated_at"], row["lease_until"]) == (2000, 2000, 32_000)
    child = claim(db, "w1", now=2000)
    assert child["parent_id"] == ID1 and child["details"] is None


def test_claim_key_order_is_stable(db, queued):
    text = one(db, "SELECT task_claim('w1', '{\"now\": 2000}')")
    assert list(json.loads(text)) == [
        "id", "type", "queue", "details", "attempt", "max_attempts", "priority",
        "parent_id", "run_at", "lease_until", "created_at",
    ]


def test_claim_default_lease_is_five_minutes(db, queued):
    assert claim(db, now=2000)["lease_until"] == 2000 + 300_000


@pytest.mark.parametrize("lease", [1, MAX_LEASE])
def test_claim_lease_boundaries(db, queued, lease):
    assert claim(db, now=2000, lease=lease)["lease_until"] == 2000 + lease


def test_claim_returns_null_when_nothing_is_ready(db):
    assert one(db, "SELECT task_claim('w1')") is None
    enqueue(db, run_at=5000, now=1000)
    assert claim(db, now=4999) is None
    assert claim(db, now=5000) is not None
    assert claim(db, now=6000) is None


def test_delay_is_respected(db):
    task_id = enqueue(db, delay=500, now=1000)
    assert claim(db, now=1499) is None
    assert task(db, task_id)["status"] == "queued"
    assert claim(db, now=1500)["id"] == task_id


# name, priority, run_at: claimed by priority, then run_at, then enqueue order.
ORDER_TASKS = [
    ("low-early", 0, 100),
    ("high-late", 5, 300),
    ("high-mid", 5, 200),
    ("low-early-2", 0, 100),
    ("negative", -1, 0),
    ("low-early-3", 0, 100),
    ("high-mid-2", 5, 200),
]
ORDER_EXPECTED = ["high-mid", "high-mid-2", "high-late", "low-early", "low-early-2", "low-early-3", "negative"]


@pytest.mark.parametrize("layout", ["one queue", "a queue each", "array filter", "string filter"])
def test_claim_order(db, layout):
    for i, (name, priority, run_at) in enumerate(ORDER_TASKS):
        queue = f"q{i}" if layout == "a queue each" else "q"
        enqueue(db, name, queue=queue, priority=priority, run_at=run_at, now=0)
    claim_opts = {"now": 1000}
    if layout == "array filter":
        claim_opts["queue"] = ["q", "unused"]
    elif layout == "string filter":
        claim_opts["queue"] = "q"
    order = [claim(db, **claim_opts)["type"] for _ in ORDER_TASKS]
    assert order == ORDER_EXPECTED
    assert claim(db, **claim_opts) is None


def test_fifo_for_many_equal_tasks(db):
    ids = [enqueue(db, "job", now=1000, priority=1) for i in range(50)]
    assert [claim(db, now=2000)["id"] for _ in ids] == ids


def test_claim_queue_filter(db):
    a = enqueue(db, "a", queue="alpha", now=0)
    b = enqueue(db, "b", queue="beta", now=0)
    c = enqueue(db, "c", queue="gamma", now=0)
    assert claim(db, queue="nope", now=10) is None
    assert claim(db, queue="beta", now=10)["id"] == b
    assert claim(db, queue="beta", now=10) is None
    assert claim(db, queue=["nope", "gamma"], now=10)["id"] == c
    assert claim(db, queue=["gamma", "beta"], now=10) is None
    assert task(db, a)["status"] == "queued"
    assert claim(db, now=10)["id"] == a


CLAIM_BAD = [
    (("", None), "worker must not be empty"),
    ((5, None), "worker must be text, got an integer"),
    ((b"w", None), "worker must be text, got a blob"),
    ((None, None), "worker must be text, got NULL"),
    (("w1", 5), "options must be text or NULL, got an integer"),
    (("w1", '{"now": '), "options are not valid JSON: EOF while parsing a value at line 1 column 8"),
    (("w1", "[]"), not_an_object("an array")),
    (("w1", '"w1"'), not_an_object("a string")),
    (("w1", '{"priority": 1}'), 'unknown option "priority" (expected one of: queue, lease, now, wait)'),
    (("w1", '{"queue": ""}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"queue": []}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"queue": [1]}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"queue": ["a", ""]}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"queue": 5}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"queue": {"a": 1}}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", '{"lease": 0}'), f"lease must be between 1 and {MAX_LEASE}, got 0"),
    (("w1", '{"lease": -5}'), f"lease must be between 1 and {MAX_LEASE}, got -5"),
    (("w1", f'{{"lease": {MAX_LEASE + 1}}}'), f"lease must be between 1 and {MAX_LEASE}, got {MAX_LEASE + 1}"),
    (("w1", '{"lease": "1m"}'), 'option "lease" must be a whole number, got a string'),
    (("w1", '{"lease": 1.5}'), 'option "lease" must be a whole number, got 1.5'),
    (("w1", '{"lease": 9223372036854775808}'), out_of_range("lease", "9223372036854775808")),
    (("w1", '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
]


@pytest.mark.parametrize("args, problem", CLAIM_BAD)
def test_claim_bad_input(db, queued, args, problem):
    msg = fails(db, "SELECT task_claim(?, ?)", *args, match=problem)
    assert msg == f"task_claim: {problem}"


# ---- leases, attempts and fencing -----------------------------------------


def test_expired_lease_is_reclaimed_as_a_new_attempt(db, running):
    assert claim(db, "w2", now=11_999) is None  # lease_until is 12000
    got = claim(db, "w2", now=12_000, lease=5000)
    assert (got["id"], got["attempt"], got["lease_until"]) == (ID1, 2, 17_000)
    row = task(db, ID1)
    assert (row["status"], row["worker"], row["attempts"], row["started_at"]) == ("running", "w2", 2, 12_000)
    assert row["error"] == "lease expired on attempt 1 (worker w1)"
    assert row["progress"] == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT task_progress(?1, 50, ?2)",
        "SELECT task_heartbeat(?1, ?2)",
        "SELECT task_complete(?1, NULL, ?2)",
        "SELECT task_fail(?1, 'late', ?2)",
    ],
)
def test_the_old_worker_is_fenced_off(db, running, sql):
    expire_and_reclaim(db, ID1, "w2", now=20_000)
    stale = f"attempt 1 of task {ID1} is stale: the task is on attempt 2 (running, held by worker 'w2')"
    msg = fails(db, sql, ID1, opts(attempt=1, now=21_000), match=stale)
    assert msg.endswith(": " + stale) and msg.startswith("task_")
    # The new holder is unaffected.
    assert one(db, "SELECT task_progress(?, 10, ?)", ID1, opts(attempt=2, now=21_000)) == "running"


def test_stale_attempt_on_a_finished_task_names_its_status(db, running):
    one(db, "SELECT task_complete(?)", ID1)
    msg = fails(db, "SELECT task_complete(?1, NULL, ?2)", ID1, opts(attempt=3), match="stale")
    assert msg == f"task_complete: attempt 3 of task {ID1} is stale: the task is on attempt 1 (completed)"


def test_lease_expiry_on_the_last_attempt_fails_the_task(db):
    enqueue(db, "job", id=ID1, max_attempts=2, now=0)
    claim(db, "w1", now=0, lease=1000)
    expire_and_reclaim(db, ID1, "w2", now=1000)  # attempt 2, lease until 301000
    other = enqueue(db, "other", queue="elsewhere", now=0)
    # The claim that finds the expired last attempt marks it failed and goes on
    # to the next ready task; a claim limited to another queue reaps it too.
    got = claim(db, "w3", now=301_000, queue="elsewhere")
    assert got["id"] == other
    row = task(db, ID1)
    assert (row["status"], row["attempts"], row["lease_until"]) == ("failed", 2, None)
    assert row["error"] == "lease expired on attempt 2 (worker w2)"
    assert (row["completed_at"], row["worker"]) == (301_000, "w2")
    assert claim(db, "w3", now=400_000) is None


def test_expired_single_attempt_task_is_failed_not_handed_out(db):
    enqueue(db, "job", id=ID1, max_attempts=1, now=0)
    claim(db, "w1", now=0, lease=100)
    assert claim(db, "w2", now=100) is None
    row = task(db, ID1)
    assert row["status"] == "failed"
    assert row["error"] == "lease expired on attempt 1 (worker w1)"


def test_expired_but_not_reclaimed_task_can_still_be_completed(db, running):
    late = opts(attempt=1, now=50_000)
    assert one(db, "SELECT task_heartbeat(?, ?)", ID1, late) == "running"
    assert one(db, "SELECT task_complete(?, '1', ?)", ID1, late) == "completed"
    assert task(db, ID1)["status"] == "completed"


# ---- claim order, expired leases, idle claims -----------------------------
# docs/concepts.md, "How a task moves", and task_claim in
# docs/reference/workers.md: a running task whose lease has expired is
# claimed before any queued task (then priority, run_at, enqueue order). A
# claim restricted to some queues reclaims only their expired tasks, but
# marks `failed` an expired task with no attempts left in any queue. When
# nothing is ready, a claim only reads.


def expire(db, kind, queue="q", max_attempts=3):
    """A task of `queue`, claimed by w0 at t=0 with a lease that ran out at t=100."""
    task_id = enqueue(db, kind, queue=queue, max_attempts=max_attempts, now=0)
    assert claim(db, "w0", queue=queue, now=0, lease=100)["id"] == task_id
    return task_id


@pytest.mark.parametrize("layout", ["one queue", "every queue", "array filter"])
def test_an_expired_lease_is_claimed_before_any_queued_task(db, layout):
    abandoned = expire(db, "abandoned", queue="q")
    ready_queue = "q" if layout == "one queue" else "other"
    for name, priority in [("high", 9), ("low", -5), ("high-2", 9)]:
        enqueue(db, name, queue=ready_queue, priority=priority, now=0)
    claim_opts = {"now": 1000}
    if layout == "one queue":
        claim_opts["queue"] = "q"
    elif layout == "array filter":
        claim_opts["queue"] = [ready_queue, "q"]
    got = claim(db, "w1", **claim_opts)
    assert (got["id"], got["type"], got["attempt"]) == (abandoned, "abandoned", 2)
    assert [claim(db, "w1", **claim_opts)["type"] for _ in range(3)] == ["high", "high-2", "low"]
    assert claim(db, "w1", **claim_opts) is None


@pytest.mark.parametrize("queue", ["a", ["a", "c"]])
def test_a_claim_for_some_queues_reclaims_only_their_expired_tasks(db, queue):
    other = expire(db, "b-task", queue="b")
    before = snapshot(db)
    assert claim(db, "w1", queue=queue, now=1000) is None
    assert snapshot(db) == before  # b's task is left to b's workers
    mine = enqueue(db, "a-task", queue="a", now=0)
    assert claim(db, "w1", queue=queue, now=1000)["id"] == mine
    row = task(db, other)
    assert (row["status"], row["worker"], row["attempts"], row["error"]) == ("running", "w0", 1, None)
    got = claim(db, "w2", queue="b", now=1000)
    assert (got["id"], got["attempt"]) == (other, 2)


@pytest.mark.parametrize("queue", [None, "a", ["a", "c"]])
@pytest.mark.parametrize("verb", ["task_claim", "task_claim_batch"])
def test_an_expired_task_with_no_attempts_left_is_failed_by_a_claim_on_any_queue(db, verb, queue):
    dead = expire(db, "dead", queue="b", max_attempts=1)
    claim_opts = {"now": 1000} if queue is None else {"now": 1000, "queue": queue}
    if verb == "task_claim":
        assert claim(db, "w1", **claim_opts) is None
    else:
        assert claim_batch(db, "w1", 10, **claim_opts) == []
    row = task(db, dead)
    assert (row["status"], row["error"], row["attempts"]) == ("failed", "lease expired on attempt 1 (worker w0)", 1)
    assert (row["completed_at"], row["lease_until"], row["worker"]) == (1000, None, "w0")


@pytest.fixture
def other(db, tmp_path):
    """A second connection on db's file (db has no busy timeout: a write
    while `other` holds the write lock fails at once with SQLITE_BUSY)."""
    conn = connect(tmp_path / "task.db")
    yield conn
    conn.close()


IDLE_CLAIMS = [
    ("SELECT task_claim('w1', ?)", {}, None),
    ("SELECT task_claim('w1', ?)", {"queue": "default"}, None),
    ("SELECT task_claim('w1', ?)", {"queue": ["default", "x"]}, None),
    ("SELECT task_claim_batch('w1', 10, ?)", {}, "[]"),
    ("SELECT task_claim_batch('w1', 10, ?)", {"queue": "default"}, "[]"),
    ("SELECT task_claim_batch('w1', 10, ?)", {"queue": ["default", "x"]}, "[]"),
]


@pytest.mark.parametrize("sql, claim_opts, nothing", IDLE_CLAIMS)
def test_an_idle_claim_takes_no_write_lock(db, other, sql, claim_opts, nothing):
    # Queued but not due, and running under a live lease: nothing is ready.
    # (Set up on the other connection: see the xfail below for why a claim
    # that found work on db's connection would spoil this.)
    enqueue(other, "later", run_at=10**6, now=0)
    enqueue(other, "busy", now=0)
    assert claim(other, "w0", now=0, lease=10**6)["type"] == "busy"
    other.execute("BEGIN IMMEDIATE")
    for _ in range(2):
        assert one(db, sql, opts(now=1000, **claim_opts)) == nothing
    other.execute("ROLLBACK")


@pytest.mark.parametrize("claim_opts", [{}, {"queue": "default"}])
def test_after_finding_work_only_the_next_claim_goes_straight_to_the_write(db, other, claim_opts):
    # docs/reference/workers.md, task_claim: a connection whose previous
    # claim found work goes straight to the write once. Without a busy
    # timeout that one claim may meet the lock; the ones after it only read
    # again.
    enqueue(db, "job", now=0)
    assert claim(db, "w1", now=1000, **claim_opts) is not None
    other.execute("BEGIN IMMEDIATE")
    try:
        assert claim(db, "w1", now=1000, **claim_opts) is None
    except apsw.BusyError:
        pass
    assert claim(db, "w1", now=1000, **claim_opts) is None
    assert claim(db, "w1", now=1000, **claim_opts) is None
    other.execute("ROLLBACK")


# ---- task_claim_batch -----------------------------------------------------


def test_claim_batch_returns_what_task_claim_returns(db):
    enqueue(db, "email", '{"to": "ann"}', id=ID1, queue="mail", priority=3, max_attempts=5, now=1000)
    enqueue(db, "child", id=ID2, queue="mail", parent_id=ID1, now=1000)
    text = one(db, "SELECT task_claim_batch('w1', 10, ?)", opts(now=2000, lease=30_000))
    got = json.loads(text)
    assert got == [
        {
            "id": ID1, "type": "email", "queue": "mail", "details": {"to": "ann"}, "attempt": 1,
            "max_attempts": 5, "priority": 3, "parent_id": None, "run_at": 1000,
            "lease_until": 32_000, "created_at": 1000,
        },
        {
            "id": ID2, "type": "child", "queue": "mail", "details": None, "attempt": 1,
            "max_attempts": 3, "priority": 0, "parent_id": ID1, "run_at": 1000,
            "lease_until": 32_000, "created_at": 1000,
        },
    ]
    assert [list(t) for t in got] == [list(claim_key_order())] * 2
    for task_id in (ID1, ID2):
        row = task(db, task_id)
        assert (row["status"], row["worker"], row["attempts"]) == ("running", "w1", 1)
        assert (row["started_at"], row["updated_at"], row["lease_until"]) == (2000, 2000, 32_000)
    assert one(db, "SELECT task_claim_batch('w1', 10, ?)", opts(now=2000)) == "[]"


def claim_key_order():
    return [
        "id", "type", "queue", "details", "attempt", "max_attempts", "priority",
        "parent_id", "run_at", "lease_until", "created_at",
    ]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, MAX_BATCH])
@pytest.mark.parametrize("queue", [None, "q", ["unused", "q"]])
def test_claim_batch_takes_tasks_in_claim_order_up_to_the_limit(db, limit, queue):
    for name, priority, run_at in ORDER_TASKS + [("not yet", 9, 5000)]:
        enqueue(db, name, queue="q", priority=priority, run_at=run_at, now=0)
    claim_opts = {"now": 1000} if queue is None else {"now": 1000, "queue": queue}
    got = []
    while batch := claim_batch(db, "w1", limit, **claim_opts):
        assert len(batch) == min(limit, len(ORDER_TASKS) - len(got))
        got += batch
    assert [t["type"] for t in got] == ORDER_EXPECTED
    assert {(t["attempt"], t["lease_until"]) for t in got} == {(1, 301_000)}
    assert [t["type"] for t in claim_batch(db, "w1", limit, now=5000)] == ["not yet"]


def test_a_batch_claims_what_as_many_single_claims_would(db, tmp_path):
    twin = connect(tmp_path / "twin.db")
    try:
        assert one(twin, "SELECT task_init()") == 9
        for conn in (db, twin):
            for i, (name, priority, run_at) in enumerate(ORDER_TASKS):
                enqueue(conn, name, queue="q", priority=priority, run_at=run_at, id=f"0193a000-0000-7000-8000-{i:012d}", now=0)
        batch = claim_batch(db, "w1", 5, now=1000)
        singles = [claim(twin, "w1", now=1000) for _ in range(5)]
        assert batch == singles
        # The same rows and events; a batch's events are one transaction's,
        # in the order the UPDATE met the rows, so compared without seq.
        def same(conn):
            *tasks, (_, events) = snapshot(conn)
            return tasks, sorted(e[1:] for e in events)
        assert same(db) == same(twin)
    finally:
        twin.close()


@pytest.mark.parametrize("queue", [None, ["A", "B", "C"]])
def test_a_batch_comes_from_one_queue_the_one_whose_next_task_comes_first(db, queue):
    for name, q, priority in [("a1", "A", 1), ("b1", "B", 3), ("a2", "A", 1), ("b2", "B", 0), ("c1", "C", 2)]:
        enqueue(db, name, queue=q, priority=priority, now=0)
    claim_opts = {"now": 1000} if queue is None else {"now": 1000, "queue": queue}
    batches = []
    while batch := claim_batch(db, "w1", 10, **claim_opts):
        batches.append([(t["queue"], t["type"]) for t in batch])
    assert batches == [
        [("B", "b1"), ("B", "b2")],  # B's head has priority 3
        [("C", "c1")],
        [("A", "a1"), ("A", "a2")],
    ]


def test_a_batch_for_a_queue_takes_its_expired_tasks_first(db):
    # Selection: with room for two, the expired task and the best queued one.
    abandoned = expire(db, "abandoned", queue="q")
    for name, priority in [("high", 9), ("low", -5), ("high-2", 9)]:
        enqueue(db, name, queue="q", priority=priority, now=0)
    got = claim_batch(db, "w1", 2, queue="q", now=1000)
    assert sorted((t["type"], t["attempt"]) for t in got) == [("abandoned", 2), ("high", 1)]
    row = task(db, abandoned)
    assert (row["worker"], row["attempts"], row["error"]) == ("w1", 2, "lease expired on attempt 1 (worker w0)")




@pytest.mark.parametrize("queue", [None, "q", ["q"]])
def test_a_batch_lists_expired_tasks_first(db, queue):
    expire(db, "abandoned", queue="q")
    for name, priority in [("high", 9), ("low", -5), ("high-2", 9)]:
        enqueue(db, name, queue="q", priority=priority, now=0)
    claim_opts = {"now": 1000} if queue is None else {"now": 1000, "queue": queue}
    got = claim_batch(db, "w1", 10, **claim_opts)
    assert [t["type"] for t in got] == ["abandoned", "high", "high-2", "low"]


def test_an_array_filtered_batch_starts_with_the_queue_of_an_expired_task(db):
    expire(db, "b-expired", queue="B")
    enqueue(db, "a1", queue="A", priority=5, now=0)
    enqueue(db, "b1", queue="B", now=0)
    got = claim_batch(db, "w1", 10, queue=["A", "B"], now=1000)
    assert [(t["queue"], t["type"]) for t in got] == [("B", "b-expired"), ("B", "b1")]
    assert [(t["queue"], t["type"]) for t in claim_batch(db, "w1", 10, queue=["A", "B"], now=1000)] == [("A", "a1")]


def test_a_batch_over_every_queue_starts_with_the_queue_of_an_expired_task(db):
    expire(db, "b-expired", queue="B")
    enqueue(db, "a1", queue="A", priority=5, now=0)
    enqueue(db, "a2", queue="A", priority=5, now=0)
    enqueue(db, "b1", queue="B", now=0)
    got = claim_batch(db, "w1", 10, now=1000)
    assert [(t["queue"], t["type"]) for t in got] == [("B", "b-expired"), ("B", "b1")]  # actually A, A, B


CLAIM_BATCH_BAD = [
    (("w1", 0, None), f"limit must be between 1 and {MAX_BATCH}, got 0"),
    (("w1", -1, None), f"limit must be between 1 and {MAX_BATCH}, got -1"),
    (("w1", MAX_BATCH + 1, None), f"limit must be between 1 and {MAX_BATCH}, got {MAX_BATCH + 1}"),
    (("w1", 2**63 - 1, None), f"limit must be between 1 and {MAX_BATCH}, got {2**63 - 1}"),
    (("w1", "3", None), "limit must be an integer, got text"),
    (("w1", 2.0, None), "limit must be an integer, got a real"),
    (("w1", None, None), "limit must be an integer, got NULL"),
    (("w1", b"\x01", None), "limit must be an integer, got a blob"),
    (("", 1, None), "worker must not be empty"),
    ((None, 1, None), "worker must be text, got NULL"),
    ((7, 1, None), "worker must be text, got an integer"),
    (("w1", 1, 5), "options must be text or NULL, got an integer"),
    (("w1", 1, "[]"), not_an_object("an array")),
    (("w1", 1, '{"now": '), "options are not valid JSON: EOF while parsing a value at line 1 column 8"),
    (("w1", 1, '{"limit": 1}'), 'unknown option "limit" (expected one of: queue, lease, now, wait)'),
    (("w1", 1, '{"queue": []}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", 1, '{"queue": ["a", 1]}'), 'option "queue" must be a queue name or a non-empty array of queue names'),
    (("w1", 1, '{"lease": 0}'), f"lease must be between 1 and {MAX_LEASE}, got 0"),
    (("w1", 1, '{"lease": 1.5}'), 'option "lease" must be a whole number, got 1.5'),
    (("w1", 1, '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
]


@pytest.mark.parametrize("args, problem", CLAIM_BATCH_BAD)
def test_claim_batch_bad_input(db, queued, args, problem):
    msg = fails(db, "SELECT task_claim_batch(?, ?, ?)", *args, match=problem)
    assert msg == f"task_claim_batch: {problem}"


# ---- task_progress and task_heartbeat -------------------------------------


def test_progress_records_and_renews_by_the_claims_lease(db, running):
    assert one(db, "SELECT task_progress(?, 40, ?)", ID1, opts(attempt=1, now=5000)) == "running"
    row = task(db, ID1)
    assert (row["progress"], row["lease_until"], row["updated_at"]) == (40, 15_000, 5000)
    assert one(db, "SELECT typeof(progress) FROM tasks WHERE id = ?", ID1) == "integer"
    # A quarter of the lease after the last renewal, the next report renews it.
    assert one(db, "SELECT task_progress(?, 12.5, ?)", ID1, opts(now=7500)) == "running"
    row = task(db, ID1)
    assert (row["progress"], row["lease_until"]) == (12.5, 17_500)


@pytest.mark.parametrize("percent", [0, 100, 0.0, 100.0, 99.99])
def test_progress_boundaries(db, running, percent):
    assert one(db, "SELECT task_progress(?, ?)", ID1, percent) == "running"
    assert task(db, ID1)["progress"] == percent


def test_heartbeat_renews_by_the_claims_lease_and_keeps_progress(db, running):
    one(db, "SELECT task_progress(?, 30, ?)", ID1, opts(now=3000))
    assert one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(attempt=1, now=7000)) == "running"
    row = task(db, ID1)
    assert (row["progress"], row["lease_until"], row["updated_at"]) == (30, 17_000, 7000)


def test_progress_lease_option_sets_the_new_lease_length(db, running):
    assert one(db, "SELECT task_progress(?, 10, ?)", ID1, opts(lease=60_000, now=3000)) == "running"
    assert task(db, ID1)["lease_until"] == 63_000
    # Later renewals use the new length (and its quarter: 15 s).
    one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(now=17_999))
    assert task(db, ID1)["lease_until"] == 63_000
    one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(now=18_000))
    assert task(db, ID1)["lease_until"] == 78_000
    one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(lease=1, now=19_000))
    assert task(db, ID1)["lease_until"] == 19_001


def test_nan_arrives_as_null_and_is_refused(db, running):
    nan = float("nan")
    assert one(db, "SELECT typeof(?)", nan) == "null"
    msg = fails(db, "SELECT task_progress(?, ?)", ID1, nan, match="got NULL")
    assert msg == "task_progress: progress must be a number between 0 and 100, got NULL"


PROGRESS_BAD = [
    (-1, "progress must be between 0 and 100, got -1"),
    (-0.5, "progress must be between 0 and 100, got -0.5"),
    (100.5, "progress must be between 0 and 100, got 100.5"),
    (140, "progress must be between 0 and 100, got 140"),
    (10**6, "progress must be between 0 and 100, got 1000000"),
    (float("inf"), "progress must be between 0 and 100, got inf"),
    (float("-inf"), "progress must be between 0 and 100, got -inf"),
    (None, "progress must be a number between 0 and 100, got NULL"),
    ("50", "progress must be a number between 0 and 100, got text"),
    (b"5", "progress must be a number between 0 and 100, got a blob"),
]


@pytest.mark.parametrize("percent, problem", PROGRESS_BAD)
def test_progress_bad_percent(db, running, percent, problem):
    msg = fails(db, "SELECT task_progress(?, ?)", ID1, percent, match=problem)
    assert msg == f"task_progress: {problem}"


def test_progress_overflowing_literal_is_infinite_and_refused(db, running):
    msg = fails(db, "SELECT task_progress(?, 1e999)", ID1, match="got inf")
    assert msg == "task_progress: progress must be between 0 and 100, got inf"


WORKER_OPTIONS_BAD = [
    ('{"attempt": 0}', "attempt must be between 1 and 1000, got 0"),
    ('{"attempt": 1001}', "attempt must be between 1 and 1000, got 1001"),
    ('{"attempt": "1"}', 'option "attempt" must be a whole number, got a string'),
    ('{"lease": 0}', f"lease must be between 1 and {MAX_LEASE}, got 0"),
    (f'{{"lease": {MAX_LEASE + 1}}}', f"lease must be between 1 and {MAX_LEASE}, got {MAX_LEASE + 1}"),
    ('{"now": -1}', f"now must be between 0 and {MAX_TIME}, got -1"),
    ("{", "options are not valid JSON: EOF while parsing an object at line 1 column 1"),
    ("[1]", not_an_object("an array")),
    ("30", not_an_object("a number")),
    (7, "options must be text or NULL, got an integer"),
]


@pytest.mark.parametrize("options, problem", WORKER_OPTIONS_BAD)
@pytest.mark.parametrize(
    "name, sql",
    [
        ("task_progress", "SELECT task_progress(?1, 50, ?2)"),
        ("task_heartbeat", "SELECT task_heartbeat(?1, ?2)"),
    ],
)
def test_progress_and_heartbeat_bad_options(db, running, name, sql, options, problem):
    msg = fails(db, sql, ID1, options, match=problem)
    assert msg == f"{name}: {problem}"


@pytest.mark.parametrize(
    "name, sql, expected",
    [
        ("task_progress", "SELECT task_progress(?1, 50, ?2)", "attempt, lease, now, writeback"),
        ("task_heartbeat", "SELECT task_heartbeat(?1, ?2)", "attempt, lease, now"),
    ],
)
def test_progress_and_heartbeat_unknown_option(db, running, name, sql, expected):
    msg = fails(db, sql, ID1, '{"retry": false}', match="unknown option")
    assert msg == f'{name}: unknown option "retry" (expected one of: {expected})'


# ---- ids and states, for every verb that takes an id ----------------------

ID_VERBS = [
    ("task_progress", "SELECT task_progress(?, 50)"),
    ("task_heartbeat", "SELECT task_heartbeat(?)"),
    ("task_complete", "SELECT task_complete(?)"),
    ("task_fail", "SELECT task_fail(?, 'boom')"),
    ("task_cancel", "SELECT task_cancel(?)"),
    ("task_retry", "SELECT task_retry(?)"),
]
BAD_IDS = [
    (5, "id must be text, got an integer"),
    (2.5, "id must be text, got a real"),
    (ID1.encode(), "id must be text, got a blob"),
    (None, "id must be text, got NULL"),
    ("", "id must be a UUID, got ''"),
    ("task-1", "id must be a UUID, got 'task-1'"),
    (ID1 + "0", f"id must be a UUID, got '{ID1}0'"),
    (UNKNOWN, f"task {UNKNOWN} not found"),
]


@pytest.mark.parametrize("bad_id, problem", BAD_IDS)
@pytest.mark.parametrize("name, sql", ID_VERBS)
def test_bad_and_unknown_ids(db, running, name, sql, bad_id, problem):
    msg = fails(db, sql, bad_id, match=problem)
    assert msg == f"{name}: {problem}"


@pytest.mark.parametrize(
    "name, sql",
    [
        ("task_progress", "SELECT task_progress(?, 50)"),
        ("task_heartbeat", "SELECT task_heartbeat(?)"),
        ("task_complete", "SELECT task_complete(?, '{}')"),
        ("task_fail", "SELECT task_fail(?, 'boom')"),
    ],
)
@pytest.mark.parametrize("state", ["queued", "completed", "failed"])
def test_worker_calls_need_a_running_task(db, queued, name, sql, state):
    if state != "queued":
        claim(db, now=2000)
        if state == "completed":
            one(db, "SELECT task_complete(?)", ID1)
        else:
            one(db, "SELECT task_fail(?, 'x', '{\"retry\": false}')", ID1)
    msg = fails(db, sql, ID1, match="not running")
    assert msg == f"{name}: task {ID1} is {state}, not running"


# ---- task_complete --------------------------------------------------------


def test_complete_stores_the_result(db, running):
    one(db, "SELECT task_progress(?, 30)", ID1)
    assert one(db, "SELECT task_complete(?, ?, ?)", ID1, '{"out": [1]}', opts(attempt=1, now=9000)) == "completed"
    row = task(db, ID1)
    assert (row["status"], row["result"], row["progress"]) == ("completed", '{"out": [1]}', 100)
    assert (row["completed_at"], row["updated_at"], row["lease_until"], row["worker"]) == (9000, 9000, None, "w1")


def test_complete_without_result(db, running):
    assert one(db, "SELECT task_complete(?)", ID1) == "completed"
    assert task(db, ID1)["result"] is None
    enqueue(db, id=ID2)
    claim(db)
    assert one(db, "SELECT task_complete(?, NULL, NULL)", ID2) == "completed"


COMPLETE_BAD = [
    (('{"a":', None), "result is not valid JSON: EOF while parsing a value at line 1 column 5"),
    (("done", None), "result is not valid JSON: expected value at line 1 column 1"),
    ((5, None), "result must be text or NULL, got an integer"),
    ((b"{}", None), "result must be text or NULL, got a blob"),
    ((None, '{"lease": 5}'), 'unknown option "lease" (expected one of: attempt, now)'),
    ((None, '{"attempt": 0}'), "attempt must be between 1 and 1000, got 0"),
    ((None, '{"attempt": 2}'), f"attempt 2 of task {ID1} is stale: the task is on attempt 1 (running, held by worker 'w1')"),
    ((None, '{"now": 1000.5}'), 'option "now" must be a whole number, got 1000.5'),
    ((None, '{"attempt": 1.25}'), 'option "attempt" must be a whole number, got 1.25'),
    ((None, '{"now": 18446744073709551615}'), out_of_range("now", "18446744073709551615")),
    ((None, "[]"), "options must be a JSON object, got an array"),
    ((None, "{,}"), "options are not valid JSON: key must be a string at line 1 column 2"),
]


@pytest.mark.parametrize("args, problem", COMPLETE_BAD)
def test_complete_bad_input(db, running, args, problem):
    msg = fails(db, "SELECT task_complete(?, ?, ?)", ID1, *args, match=problem)
    assert msg == f"task_complete: {problem}"


@pytest.mark.parametrize("state", ["queued", "completed", "cancelled", "failed"])
def test_complete_refuses_a_task_that_is_not_running(db, queued, state):
    if state in ("completed", "failed"):
        claim(db)
    if state == "completed":
        one(db, "SELECT task_complete(?)", ID1)
    elif state == "failed":
        one(db, "SELECT task_fail(?, 'x', '{\"retry\": false}')", ID1)
    elif state == "cancelled":
        one(db, "SELECT task_cancel(?)", ID1)
    msg = fails(db, "SELECT task_complete(?, '{}')", ID1, match="not running")
    assert msg == f"task_complete: task {ID1} is {state}, not running"


# A child's report also notes its parent's row (for write-back), read by
# the parent's id: reports are shown for tasks without a parent.
FOUND_BY_ROW = [
    (kind, verb, result)
    for kind in ("plain", "child", "dependency")
    for verb, result in (
        ("SELECT task_complete(?)", "completed"),
        ("SELECT task_fail(?, 'again')", "queued"),
        ("SELECT task_progress(?, 50)", "running"),
        ("SELECT task_heartbeat(?)", "running"),
    )
    if kind != "child" or "task_progress" not in verb and "task_heartbeat" not in verb
]


@pytest.mark.parametrize("kind, verb, result", FOUND_BY_ROW)
def test_a_task_this_connection_claimed_is_found_through_its_row(db, tmp_path, kind, verb, result):
    # Its claim noted the task's rowid (and, for a child, the first completion
    # the parent's): its completion, failure or report here seeks those, not
    # the id index. Shown with the index dropped (no claim reads it): that
    # takes as many VM instructions beside 3,000 other running tasks as beside
    # 30, while a task another connection claimed is found by its id, here by
    # a scan of the running tasks.
    other = connect(tmp_path / "task.db")
    steps = {}
    try:
        for n in (30, 3_000):
            db.execute("DELETE FROM task_store")
            db.execute("DELETE FROM task_deps")
            with db:
                parent = enqueue(db, "parent", queue="parents", now=0) if kind == "child" else None
                for _ in range(n + 2):
                    t = enqueue(db, queue="q", parent_id=parent, now=0)
                    if kind == "dependency":
                        enqueue(db, "after", queue="after", depends_on=[t], now=0)
            if parent:
                one(db, "SELECT task_complete(?)", claim(db, queue="q", now=10)["id"])
            db.execute("DROP INDEX task_store_id")
            mine = claim(db, queue="q", now=10)["id"]
            theirs = claim_batch(other, limit=n, queue="q", now=10)[0]["id"]
            steps[n] = [vm_steps(db, verb, t) for t in (mine, theirs)]
            db.execute("CREATE UNIQUE INDEX task_store_id ON task_store(id)")
    finally:
        other.close()
    (mine_30, theirs_30), (mine_3000, theirs_3000) = steps[30], steps[3_000]
    assert mine_30[0] == mine_3000[0] == theirs_30[0] == theirs_3000[0] == result
    assert mine_3000[1] <= mine_30[1] + 1, steps
    assert theirs_3000[1] > theirs_30[1] + 50, steps


@pytest.mark.parametrize("verb, second", [
    ("task_complete", "NULL"), ("task_fail", "'x'"), ("task_progress", "50"), ("task_heartbeat", "NULL"),
])
def test_a_completion_here_checks_the_id_of_the_row_its_claim_noted(db, verb, second):
    # The rowid is a hint: the task deleted by hand and its rowid taken by a
    # new task, the completion (failure, report) of the old id finds nothing
    # and leaves the new task running as it was.
    enqueue(db, id=ID1, now=0)
    assert claim(db, now=10)["id"] == ID1
    seq = one(db, "SELECT seq FROM task_store WHERE id = ?", ID1)
    db.execute("DELETE FROM task_store WHERE id = ?", (ID1,))
    enqueue(db, id=ID2, now=20)
    assert one(db, "SELECT seq FROM task_store WHERE id = ?", ID2) == seq
    assert claim(db, now=30)["id"] == ID2
    before = task(db, ID2)
    msg = fails(db, f"SELECT {verb}(?, {second})", ID1, match="not found")
    assert msg == f"{verb}: task {ID1} not found"
    assert task(db, ID2) == before
    assert one(db, "SELECT task_complete(?)", ID2) == "completed"


# ---- task_fail ------------------------------------------------------------


def test_fail_with_attempts_left_requeues_after_a_backoff(db, running):
    one(db, "SELECT task_progress(?, 50)", ID1)
    assert one(db, "SELECT task_fail(?, 'timeout', ?)", ID1, opts(attempt=1, now=5000)) == "queued"
    row = task(db, ID1)
    assert (row["status"], row["error"], row["attempts"]) == ("queued", "timeout", 1)
    assert (row["worker"], row["lease_until"], row["completed_at"], row["updated_at"]) == (None, None, None, 5000)
    assert 5500 <= row["run_at"] <= 6000
    assert claim(db, now=row["run_at"] - 1) is None
    assert claim(db, now=row["run_at"])["attempt"] == 2


def test_backoff_doubles_per_attempt_with_jitter_and_a_one_hour_cap(db):
    enqueue(db, "job", id=ID1, max_attempts=20, now=0)
    now = 0
    for attempt in range(1, 17):
        got = claim(db, "w1", now=now)
        assert got["attempt"] == attempt
        now += 10
        assert one(db, "SELECT task_fail(?, 'again', ?)", ID1, opts(attempt=attempt, now=now)) == "queued"
        backoff = min(1000 * 2 ** (attempt - 1), 3_600_000)
        delay = task(db, ID1)["run_at"] - now
        assert backoff // 2 <= delay <= backoff, (attempt, delay)
        now += delay


def test_backoff_jitter_varies(db):
    delays = []
    for i in range(40):
        task_id = enqueue(db, "job", now=0)
        assert claim(db, now=0)["id"] == task_id
        one(db, "SELECT task_fail(?, 'x', ?)", task_id, opts(now=100))
        delays.append(task(db, task_id)["run_at"] - 100)
    assert all(500 <= d <= 1000 for d in delays), delays
    assert len(set(delays)) > 10, delays


def test_fail_on_the_last_attempt_fails_the_task(db):
    enqueue(db, id=ID1, max_attempts=1, now=0)
    claim(db, now=0)
    assert one(db, "SELECT task_fail(?, 'bad input', ?)", ID1, opts(now=100)) == "failed"
    row = task(db, ID1)
    assert (row["status"], row["error"], row["completed_at"], row["worker"]) == ("failed", "bad input", 100, "w1")
    assert (row["run_at"], row["lease_until"]) == (0, None)


def test_fail_without_retry_fails_for_good(db, running):
    assert one(db, "SELECT task_fail(?, 'fatal', ?)", ID1, opts(retry=False, now=3000)) == "failed"
    row = task(db, ID1)
    assert (row["status"], row["attempts"], row["max_attempts"], row["completed_at"]) == ("failed", 1, 3, 3000)
    assert claim(db, now=10**9) is None


def test_fail_with_retry_true_is_the_default(db, running):
    assert one(db, "SELECT task_fail(?, 'x', ?)", ID1, opts(retry=True, now=3000)) == "queued"


@pytest.mark.parametrize("delay", [0, 1, 123_456, MAX_TIME - 3000])
def test_fail_with_a_fixed_delay(db, running, delay):
    assert one(db, "SELECT task_fail(?, 'busy', ?)", ID1, opts(delay=delay, now=3000)) == "queued"
    assert task(db, ID1)["run_at"] == 3000 + delay


FAIL_BAD = [
    ((None, None), "error must be text, got NULL"),
    ((5, None), "error must be text, got an integer"),
    ((b"e", None), "error must be text, got a blob"),
    (("e", '{"retry": "no"}'), 'option "retry" must be true or false, got a string'),
    (("e", '{"retry": 0}'), 'option "retry" must be true or false, got a number'),
    (("e", '{"delay": -1, "now": 3000}'), f"delay must be between 0 and {MAX_TIME - 3000}, got -1"),
    (("e", '{"delay": "1s"}'), 'option "delay" must be a whole number, got a string'),
    (("e", '{"lease": 5}'), 'unknown option "lease" (expected one of: attempt, now, retry, delay)'),
    (("e", '{"attempt": 0}'), "attempt must be between 1 and 1000, got 0"),
    (("e", '{"attempt": 4}'), f"attempt 4 of task {ID1} is stale: the task is on attempt 1 (running, held by worker 'w1')"),
    (("e", '{"now": -1}'), f"now must be between 0 and {MAX_TIME}, got -1"),
    (("e", "nope"), "options are not valid JSON: expected ident at line 1 column 2"),
]


@pytest.mark.parametrize("args, problem", FAIL_BAD)
def test_fail_bad_input(db, running, args, problem):
    msg = fails(db, "SELECT task_fail(?, ?, ?)", ID1, *args, match=problem)
    assert msg == f"task_fail: {problem}"


def test_fail_accepts_an_empty_error(db, running):
    assert one(db, "SELECT task_fail(?, '')", ID1) == "queued"
    assert task(db, ID1)["error"] == ""


# ---- task_cancel ----------------------------------------------------------


def test_cancel_a_queued_task(db, queued):
    assert one(db, "SELECT task_cancel(?, ?)", ID1, opts(now=3000)) == "cancelled"
    row = task(db, ID1)
    assert (row["status"], row["completed_at"], row["updated_at"]) == ("cancelled", 3000, 3000)
    assert row["worker"] is None  # no worker ever held it
    assert claim(db, now=4000) is None


def test_cancel_a_running_task_stops_its_worker(db, running):
    one(db, "SELECT task_progress(?, 20)", ID1)
    assert one(db, "SELECT task_cancel(?, ?)", ID1, opts(now=3000)) == "cancelled"
    row = task(db, ID1)
    assert (row["status"], row["lease_until"], row["completed_at"], row["progress"]) == ("cancelled", None, 3000, 20)
    assert row["worker"] == "w1"  # a finished task shows the worker that last held it
    before = snapshot(db)
    assert one(db, "SELECT task_progress(?, 60, ?)", ID1, opts(attempt=1, now=4000)) == "cancelled"
    assert one(db, "SELECT task_heartbeat(?, ?)", ID1, opts(attempt=1, now=4000)) == "cancelled"
    assert one(db, "SELECT task_progress(?, 70)", ID1) == "cancelled"
    assert snapshot(db) == before
    msg = fails(db, "SELECT task_complete(?, '{}', ?)", ID1, opts(attempt=1), match="not running")
    assert msg == f"task_complete: task {ID1} is cancelled, not running"
    msg = fails(db, "SELECT task_fail(?, 'x', ?)", ID1, opts(attempt=1), match="not running")
    assert msg == f"task_fail: task {ID1} is cancelled, not running"
    # Even a cancelled task's lease does not come back to the queue.
    assert claim(db, now=10**9) is None


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_cancel_refuses_a_finished_task(db, running, state):
    if state == "completed":
        one(db, "SELECT task_complete(?)", ID1)
    elif state == "failed":
        one(db, "SELECT task_fail(?, 'x', '{\"retry\": false}')", ID1)
    else:
        one(db, "SELECT task_cancel(?)", ID1)
    msg = fails(db, "SELECT task_cancel(?)", ID1, match="already")
    assert msg == (
        f"task_cancel: task {ID1} is already {state}; only queued, running, blocked or waiting tasks can be"
        " cancelled"
    )


@pytest.mark.parametrize(
    "name, sql",
    [("task_cancel", "SELECT task_cancel(?1, ?2)"), ("task_retry", "SELECT task_retry(?1, ?2)")],
)
@pytest.mark.parametrize(
    "options, problem",
    [
        ('{"attempt": 1}', 'unknown option "attempt" (expected one of: now)'),
        ('{"now": -5}', f"now must be between 0 and {MAX_TIME}, got -5"),
        ('{"now": 1.25}', 'option "now" must be a whole number, got 1.25'),
        ('{"now": 9223372036854775808}', out_of_range("now", "9223372036854775808")),
        ("[]", not_an_object("an array")),
        ('{"now": 1}{}', "options are not valid JSON: trailing characters at line 1 column 11"),
        (3, "options must be text or NULL, got an integer"),
    ],
)
def test_cancel_and_retry_bad_options(db, queued, name, sql, options, problem):
    if name == "task_retry":
        one(db, "SELECT task_cancel(?)", ID1)
    msg = fails(db, sql, ID1, options, match=problem)
    assert msg == f"{name}: {problem}"


# ---- task_retry -----------------------------------------------------------


def test_retry_a_failed_task_with_a_fresh_budget(db):
    enqueue(db, id=ID1, max_attempts=1, now=0)
    claim(db, now=0)
    one(db, "SELECT task_progress(?, 50)", ID1)
    assert one(db, "SELECT task_fail(?, 'broken', ?)", ID1, opts(now=100)) == "failed"
    assert one(db, "SELECT task_retry(?, ?)", ID1, opts(now=5000)) == "queued"
    row = task(db, ID1)
    assert (row["status"], row["attempts"], row["progress"], row["run_at"]) == ("queued", 0, 0, 5000)
    assert (row["worker"], row["lease_until"], row["started_at"], row["completed_at"]) == (None, None, None, None)
    assert (row["error"], row["updated_at"]) == ("broken", 5000)
    assert claim(db, now=5000)["attempt"] == 1


def test_retry_a_cancelled_task(db, running):
    one(db, "SELECT task_cancel(?)", ID1)
    assert one(db, "SELECT task_retry(?, ?)", ID1, opts(now=7000)) == "queued"
    assert claim(db, "w9", now=7000)["attempt"] == 1


@pytest.mark.parametrize("state", ["queued", "running", "completed"])
def test_retry_refuses_a_task_that_did_not_fail(db, queued, state):
    if state != "queued":
        claim(db)
    if state == "completed":
        one(db, "SELECT task_complete(?)", ID1)
    msg = fails(db, "SELECT task_retry(?)", ID1, match="only failed or cancelled")
    assert msg == f"task_retry: task {ID1} is {state}; only failed or cancelled tasks can be retried"


# ---- a whole life ---------------------------------------------------------


def test_a_task_through_its_life_with_a_child(db):
    parent = enqueue(db, "report", '{"m": 10}', id=ID1, now=0)
    child = enqueue(db, "chart", None, id=ID2, parent_id=parent, priority=1, now=0)
    assert claim(db, "w1", now=10)["id"] == child
    assert one(db, "SELECT task_complete(?, '\"png\"', ?)", child, opts(now=20)) == "completed"
    got = claim(db, "w1", now=30)
    assert got["id"] == parent and got["details"] == {"m": 10}
    assert one(db, "SELECT task_progress(?, 50, ?)", parent, opts(attempt=1, now=40)) == "running"
    assert one(db, "SELECT task_complete(?, '{\"ok\":1}', ?)", parent, opts(attempt=1, now=50)) == "completed"
    assert rows(db, "SELECT id, status, result FROM tasks ORDER BY rowid") == [
        (ID1, "completed", '{"ok":1}'),
        (ID2, "completed", '"png"'),
    ]
    # A finished task takes no more children (it could not be unfinished
    # again).
    fails(db, "SELECT task_enqueue('x', NULL, ?)", opts(id=ID3, parent_id=parent), match="children can only")


# ---- task_complete_batch and task_fail_batch -------------------------------


@pytest.fixture
def two_running(db):
    """ID1 and ID2 queued at t=1000 and claimed by w1 at t=2000 (attempt 1)."""
    for task_id in (ID1, ID2):
        enqueue(db, "job", id=task_id, now=1000)
    assert [t["id"] for t in claim_batch(db, "w1", 2, now=2000)] == [ID1, ID2]
    return ID1, ID2


def test_complete_batch_completes_every_item_with_its_result(db, two_running):
    items = [
        {"id": ID1, "result": {"rows": [1, 2]}, "attempt": 1},
        {"id": ID2.upper(), "result": None},
    ]
    assert one(db, "SELECT task_complete_batch(?, ?)", json.dumps(items), opts(now=3000)) == 2
    first, second = task(db, ID1), task(db, ID2)
    assert (first["status"], json.loads(first["result"]), first["completed_at"]) == ("completed", {"rows": [1, 2]}, 3000)
    assert (second["status"], second["result"]) == ("completed", None)


def test_fail_batch_reports_each_items_new_status(db, two_running):
    items = [{"id": ID1, "error": "boom"}, {"id": ID2, "error": "bang", "attempt": 1}]
    got = json.loads(one(db, "SELECT task_fail_batch(?, ?)", json.dumps(items), opts(now=3000, retry=False)))
    assert got == [{"id": ID1, "status": "failed"}, {"id": ID2, "status": "failed"}]
    assert [task(db, i)["error"] for i in (ID1, ID2)] == ["boom", "bang"]


BATCH_ITEMS_BAD = [
    ("[", "items are not valid JSON: EOF while parsing a list at line 1 column 1"),
    ('[1] x', "items are not valid JSON: trailing characters at line 1 column 5"),
    ('{"id": "x"}', "items must be a JSON array of objects"),
    ('"x"', "items must be a JSON array of objects"),
    ("null", "items must be a JSON array of objects"),
    ("[1]", "item 0: must be an object"),
    (f'[{{"id": "{ID1}"}}, []]', "item 1: must be an object"),
    ("[{}]", 'item 0: "id" must be a task id string'),
    ('[{"id": 5}]', 'item 0: "id" must be a task id string'),
    ('[{"id": null}]', 'item 0: "id" must be a task id string'),
    ('[{"id": "nope"}]', "item 0: id must be a UUID, got 'nope'"),
    (f'[{{"id": "{ID1}", "zz": 1, "extra": 2}}]', 'item 0: unknown key "extra" (expected one of: id, attempt, {key})'),
    (f'[{{"id": "{ID1}", "attempt": 1.5}}]', 'item 0: "attempt" must be a whole number'),
    (f'[{{"id": "{ID1}", "attempt": "1"}}]', 'item 0: "attempt" must be a whole number'),
    (f'[{{"id": "{ID1}", "attempt": 1e30}}]', 'item 0: "attempt" must be a whole number'),
    (f'[{{"id": "{ID1}", "attempt": 18446744073709551615}}]', 'item 0: "attempt" must be a whole number'),
    (f'[{{"id": "{ID1}", "attempt": 2}}]', "item 0: attempt 2 of task {ID1} is stale: the task is on attempt 1 (running, held by worker 'w1')"),
    (f'[{{"id": "{ID1}"}}, {{"id": "{UNKNOWN}"}}]', f"item 1: task {UNKNOWN} not found"),
    (f'[{{"id": "{ID1}"}}, {{"id": "{ID1}"}}]', "item 1: task {ID1} is completed, not running"),
]


@pytest.mark.parametrize("items, problem", BATCH_ITEMS_BAD)
@pytest.mark.parametrize("verb, key", [("task_complete_batch", "result"), ("task_fail_batch", "error")])
def test_batch_items_bad_input(db, two_running, verb, key, items, problem):
    if verb == "task_fail_batch":
        # Every item of a failure needs an error text.
        items = items.replace('{"id"', '{"error": "e", "id"')
        if problem.endswith("is completed, not running"):
            problem = problem.replace("completed", "queued")
    problem = problem.format(key=key, ID1=ID1)
    msg = fails(db, f"SELECT {verb}(?, ?)", items, opts(now=3000), match=problem)
    assert msg == f"{verb}: {problem}"


@pytest.mark.parametrize(
    "verb, item, problem",
    [
        ("task_complete_batch", '{"id": "%s", "error": "e"}', 'unknown key "error" (expected one of: id, attempt, result)'),
        ("task_complete_batch", '{"id": "%s", "result": [1,}', "items are not valid JSON"),
        ("task_complete_batch", '{"id": "%s", "result": "\\ud800"}', "not valid JSON"),
        ("task_fail_batch", '{"id": "%s"}', '"error" must be text'),
        ("task_fail_batch", '{"id": "%s", "error": 5}', '"error" must be text'),
        ("task_fail_batch", '{"id": "%s", "error": "e", "result": 1}', 'unknown key "result" (expected one of: id, attempt, error)'),
    ],
)
def test_batch_items_bad_fields(db, two_running, verb, item, problem):
    msg = fails(db, f"SELECT {verb}(?)", "[" + item % ID1 + "]", match=problem)
    assert problem in msg


def test_batch_items_over_the_limit(db, two_running):
    items = json.dumps([{"id": ID1}] * (MAX_BATCH + 1))
    for verb in ("task_complete_batch", "task_fail_batch"):
        msg = fails(db, f"SELECT {verb}(?)", items, match="at most")
        assert msg == f"{verb}: at most {MAX_BATCH} items per call, got {MAX_BATCH + 1}"


def test_batch_results_nest_as_deep_as_single_results(db, two_running):
    # The same depth rule as task_complete: up to 500 levels, and a deeper
    # (or absurdly deep) result is refused by name, without exhausting the stack.
    deep = "[" * 300 + "]" * 300
    items = f'[{{"id": "{ID1}", "result": {deep}}}]'
    assert one(db, "SELECT task_complete_batch(?)", items) == 1
    assert task(db, ID1)["result"] == deep
    for depth in (501, 100_000):
        items = f'[{{"id": "{ID2}", "result": {"[" * depth + "]" * depth}}}]'
        msg = fails(db, "SELECT task_complete_batch(?)", items, match="nested")
        assert msg == f"task_complete_batch: item 0: result is not valid JSON: nested {depth} deep, more than the 500 allowed"
        items = f'[{{"id": "{ID2}", "attempt": {"[" * depth + "]" * depth}}}]'
        fails(db, "SELECT task_complete_batch(?)", items, match='"attempt" must be a whole number')


# ---- task_check -------------------------------------------------------------


def check_id(n):
    return f"0193a000-0000-7000-8000-0000000001{n:02x}"


def bypass(db, sql, *args):
    """A write that goes around the extension, and around the CHECK on status."""
    db.execute("PRAGMA ignore_check_constraints = ON")
    try:
        rows(db, sql, *args)
    finally:
        db.execute("PRAGMA ignore_check_constraints = OFF")


def test_check_names_every_broken_invariant_and_changes_nothing(db):
    # One task per broken invariant, made with writes that bypass the
    # functions (the functions never produce these states).
    breaks = [
        "lease_until = 5",
        "status = 'running', worker = NULL, lease_until = NULL, started_at = NULL",
        "status = 'completed', completed_at = NULL",
        "status = 'done'",
        "attempts = 5",
        "max_attempts = 0",
        "progress = 150",
        "progress = 'x'",
        "details = '{bad'",
        "result = '['",
        "id = 'not-a-uuid'",
        "parent_id = '" + UNKNOWN + "'",
    ]
    for n, change in enumerate(breaks):
        enqueue(db, "job", id=check_id(n), now=1000)
        bypass(db, f"UPDATE task_store SET {change} WHERE id = ?", check_id(n))
    before = snapshot(db)
    lines = one(db, "SELECT task_check()").split("\n")
    assert snapshot(db) == before
    t = [f"task {check_id(n)}" for n in range(len(breaks))]
    assert lines == [
        f"{t[0]}: queued but holds a lease",
        f"{t[1]}: running without a worker",
        f"{t[1]}: running without a lease",
        f"{t[1]}: running without started_at",
        f"{t[2]}: completed without completed_at",
        f"{t[3]}: invalid status 'done'",
        f"{t[4]}: attempts is 5, outside 0 … max_attempts (3)",
        f"{t[5]}: max_attempts is 0, below 1",
        f"{t[6]}: progress 150 is not a number from 0 to 100",
        f"{t[7]}: progress x is not a number from 0 to 100",
        f"{t[8]}: details is not valid JSON",
        f"{t[9]}: result is not valid JSON",
        "task 'not-a-uuid': id is not a UUID",
        f"{t[11]}: parent {UNKNOWN} does not exist",
    ]


def test_check_lists_at_most_100_problems_then_counts(db):
    for n in range(103):
        enqueue(db, "job", id=check_id(n), now=1000)
    bypass(db, "UPDATE task_store SET max_attempts = 0")
    lines = one(db, "SELECT task_check()").split("\n")
    assert len(lines) == 101
    assert lines[0] == f"task {check_id(0)}: max_attempts is 0, below 1"
    assert lines[-1] == "… and 3 more"


def test_check_is_ok_for_every_state_the_functions_make(db, running):
    # running: ID1; queued: its child; completed, failed and cancelled: one each.
    enqueue(db, "child", id=ID2, parent_id=running, queue="kids", now=2000)
    for n, verb in enumerate(["task_complete(?, NULL, ?)", "task_fail(?, 'x', ?)"]):
        enqueue(db, "job", id=check_id(n), now=2000, max_attempts=1)
        assert claim(db, "w2", queue="default", now=3000)["id"] == check_id(n)
        one(db, f"SELECT {verb}", check_id(n), opts(now=4000))
    enqueue(db, "job", id=ID3, now=2000)
    one(db, "SELECT task_cancel(?)", ID3)
    statuses = [r[0] for r in rows(db, "SELECT status FROM tasks ORDER BY status")]
    assert statuses == ["cancelled", "completed", "failed", "queued", "running"]
    assert one(db, "SELECT task_check()") == "ok"
