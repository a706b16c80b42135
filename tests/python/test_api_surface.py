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
    ("task_cancel", 1, 0),
    ("task_cancel", 2, 0),
    ("task_claim", 1, 0),
    ("task_claim", 2, 0),
    ("task_complete", 1, 0),
    ("task_complete", 2, 0),
    ("task_complete", 3, 0),
    ("task_debug", 0, INNOCUOUS),
    ("task_enqueue", 1, 0),
    ("task_enqueue", 2, 0),
    ("task_enqueue", 3, 0),
    ("task_fail", 2, 0),
    ("task_fail", 3, 0),
    ("task_heartbeat", 1, 0),
    ("task_heartbeat", 2, 0),
    ("task_init", 0, DIRECTONLY),
    ("task_progress", 2, 0),
    ("task_progress", 3, 0),
    ("task_retry", 1, 0),
    ("task_retry", 2, 0),
    ("task_version", 0, INNOCUOUS | DETERMINISTIC),
]

# Functions that write (or create the storage): never deterministic, never innocuous.
SIDE_EFFECTS = {
    "task_init", "task_enqueue", "task_claim", "task_progress", "task_heartbeat",
    "task_complete", "task_fail", "task_cancel", "task_retry",
}

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
        if name in SIDE_EFFECTS:
            assert not flags & DETERMINISTIC, name
            assert not flags & INNOCUOUS, name
    assert {flags for name, _, flags in functions(raw_db) if name == "task_init"} == {DIRECTONLY}
    # Only task_init is DIRECTONLY: triggers and views may call the others.
    assert [name for name, _, flags in functions(raw_db) if flags & DIRECTONLY] == ["task_init"]


def test_every_function_is_classified(raw_db):
    assert sorted({name for name, _, _ in EXPECTED_FUNCTIONS}) == sorted(SIDE_EFFECTS | {"task_version", "task_debug"})


def test_module_list(raw_db):
    assert rows(raw_db, "SELECT name FROM pragma_module_list WHERE name = 'tasks'") == [("tasks",)]
    assert rows(raw_db, "SELECT name FROM pragma_module_list WHERE name LIKE 'task%' ORDER BY name") == [("tasks",)]


def test_tasks_is_eponymous(raw_db):
    # It exists without CREATE VIRTUAL TABLE, and nothing is written to the schema.
    assert one(raw_db, "SELECT count(*) FROM pragma_table_info('tasks')") == 19
    assert one(raw_db, "SELECT count(*) FROM sqlite_master") == 0
    with pytest.raises(apsw.SQLError):
        raw_db.execute("CREATE VIRTUAL TABLE more_tasks USING tasks")
