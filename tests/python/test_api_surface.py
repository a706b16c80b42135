"""The public surface, snapshotted: an accidental change to a function's name,
arity or flags, or to the module list, fails here and must be made on purpose.
"""

import apsw
import pytest

from conftest import one, rows

# SQLITE_* function flags as pragma_function_list reports them.
DETERMINISTIC = 0x800
DIRECTONLY = 0x80000
INNOCUOUS = 0x200000

EXPECTED_FUNCTIONS = [
    ("task__event", -1, DIRECTONLY),
    ("task__note", -1, DIRECTONLY),
    ("task_busy_timeout", 1, DIRECTONLY),
    ("task_cancel", 1, 0),
    ("task_cancel", 2, 0),
    ("task_check", 0, 0),
    ("task_claim", 1, 0),
    ("task_claim", 2, 0),
    ("task_claim_batch", 2, 0),
    ("task_claim_batch", 3, 0),
    ("task_complete", 1, 0),
    ("task_complete", 2, 0),
    ("task_complete", 3, 0),
    ("task_complete_batch", 1, 0),
    ("task_complete_batch", 2, 0),
    ("task_complete_next", 3, 0),
    ("task_complete_next", 4, 0),
    ("task_debug", 0, INNOCUOUS),
    ("task_enqueue", 1, 0),
    ("task_enqueue", 2, 0),
    ("task_enqueue", 3, 0),
    ("task_fail", 2, 0),
    ("task_fail", 3, 0),
    ("task_fail_batch", 1, 0),
    ("task_fail_batch", 2, 0),
    ("task_heartbeat", 1, 0),
    ("task_heartbeat", 2, 0),
    ("task_init", 0, DIRECTONLY),
    ("task_init", 1, DIRECTONLY),
    ("task_progress", 2, 0),
    ("task_progress", 3, 0),
    ("task_prune", 1, 0),
    ("task_queue", 1, 0),
    ("task_queue", 2, 0),
    ("task_retry", 1, 0),
    ("task_retry", 2, 0),
    ("task_schedule", 3, 0),
    ("task_schedule", 4, 0),
    ("task_schedule", 5, 0),
    ("task_schedule_pause", 1, 0),
    ("task_schedule_pause", 2, 0),
    ("task_schedule_resume", 1, 0),
    ("task_schedule_resume", 2, 0),
    ("task_stats", 0, 0),
    ("task_stats", 1, 0),
    ("task_tick", 0, 0),
    ("task_tick", 1, 0),
    ("task_unschedule", 1, 0),
    ("task_version", 0, INNOCUOUS | DETERMINISTIC),
    ("task_wait", 1, DIRECTONLY),
    ("task_wait", 2, DIRECTONLY),
]

# Functions that write (or create the storage): never deterministic, never innocuous.
SIDE_EFFECTS = {
    "task_init", "task_enqueue", "task_claim", "task_claim_batch", "task_progress",
    "task_heartbeat", "task_complete", "task_complete_next", "task_complete_batch",
    "task_fail", "task_fail_batch", "task_cancel", "task_retry", "task_busy_timeout", "task_queue",
    "task_schedule", "task_schedule_pause", "task_schedule_resume", "task_unschedule", "task_tick",
    "task_prune",
}

# Blocks its caller until another connection commits: never deterministic or
# innocuous, and DIRECTONLY (a trigger or view would wait inside a statement).
WAITS = {"task_wait"}

# Public and read-only, but reading the whole storage: not innocuous (a
# view over it is refused with trusted_schema = OFF), never deterministic.
READS = {"task_check", "task_stats"}

# Not part of the API (the docs do not list them): the extension's own
# statements call them. Never deterministic or innocuous, and DIRECTONLY so
# that no trigger or view can call them.
INTERNAL = {"task__note", "task__event"}

needs_flags = pytest.mark.skipif(
    tuple(int(part) for part in apsw.sqlitelibversion().split(".")[:2]) < (3, 30),
    reason="pragma_function_list has its flags column from SQLite 3.30",
)


def functions(db):
    return rows(
        db,
        "SELECT name, narg, flags FROM pragma_function_list WHERE name LIKE 'task%' ORDER BY name, narg",
    )


@needs_flags
def test_function_list(raw_db):
    assert functions(raw_db) == EXPECTED_FUNCTIONS


@needs_flags
def test_flags_match_what_each_function_does(raw_db):
    for name, _, flags in functions(raw_db):
        if name in SIDE_EFFECTS | READS | WAITS:
            assert not flags & DETERMINISTIC, name
            assert not flags & INNOCUOUS, name
    assert {flags for name, _, flags in functions(raw_db) if name == "task_init"} == {DIRECTONLY}
    internal = [(name, flags) for name, _, flags in functions(raw_db) if name in INTERNAL]
    assert sorted({name for name, _ in internal}) == sorted(INTERNAL)
    for name, flags in internal:
        assert flags & DIRECTONLY, name
        assert not flags & DETERMINISTIC, name
        assert not flags & INNOCUOUS, name

    # Of the public functions only task_init (schema changes),
    # task_busy_timeout (it changes the connection) and task_wait (it blocks)
    # are DIRECTONLY: triggers and views may call the others
    # (docs/concurrency.md, "Triggers, ...").
    public_direct_only = {name for name, _, flags in functions(raw_db) if flags & DIRECTONLY and name not in INTERNAL}
    assert public_direct_only == {"task_busy_timeout", "task_init", "task_wait"}


def test_every_function_is_classified(raw_db):
    assert sorted({name for name, _, _ in EXPECTED_FUNCTIONS}) == sorted(
        SIDE_EFFECTS | READS | WAITS | INTERNAL | {"task_version", "task_debug"}
    )
    assert not SIDE_EFFECTS & INTERNAL and not READS & (SIDE_EFFECTS | INTERNAL)


@pytest.mark.parametrize("name", sorted(INTERNAL))
def test_internal_functions_are_refused_in_triggers_and_views(db, name):
    # DIRECTONLY in effect: schema objects cannot reach the internal
    # functions, whatever trusted_schema says.
    db.execute("CREATE TABLE t(x)")
    db.execute(f"CREATE TRIGGER t_note AFTER INSERT ON t BEGIN SELECT {name}(NEW.x); END")
    db.execute(f"CREATE VIEW v AS SELECT {name}(1) AS v")
    before = rows(db, "SELECT * FROM task_store")
    for sql in ["INSERT INTO t VALUES (1)", "SELECT * FROM v"]:
        with pytest.raises(apsw.SQLError) as err:
            db.execute(sql).fetchall()
        assert str(err.value) == f"unsafe use of {name}()", sql
    assert one(db, "SELECT count(*) FROM t") == 0
    assert rows(db, "SELECT * FROM task_store") == before


def test_module_list(raw_db):
    assert rows(raw_db, "SELECT name FROM pragma_module_list WHERE name = 'tasks'") == [("tasks",)]
    assert rows(raw_db, "SELECT name FROM pragma_module_list WHERE name LIKE 'task%' ORDER BY name") == [
        ("task_tree",), ("tasks",),
    ]


def test_task_tree_is_an_eponymous_table_valued_function(raw_db):
    cols = rows(raw_db, "SELECT name, hidden FROM pragma_table_xinfo('task_tree') ORDER BY cid")
    assert cols == [
        ("id", 0), ("parent_id", 0), ("depth", 0), ("queue", 0), ("type", 0), ("status", 0), ("progress", 0),
        ("children", 0), ("children_done", 0), ("worker", 0), ("error", 0), ("root", 1),
    ]
    with pytest.raises(apsw.SQLError):
        raw_db.execute("CREATE VIRTUAL TABLE more_trees USING task_tree")


def test_tasks_is_eponymous(raw_db):
    # It exists without CREATE VIRTUAL TABLE, and nothing is written to the schema.
    assert one(raw_db, "SELECT count(*) FROM pragma_table_info('tasks')") == 23
    assert one(raw_db, "SELECT count(*) FROM sqlite_master") == 0
    with pytest.raises(apsw.SQLError):
        raw_db.execute("CREATE VIRTUAL TABLE more_tasks USING tasks")
