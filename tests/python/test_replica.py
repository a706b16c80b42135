"""A write verb on a libSQL read replica's copy is refused. A replica runs
what reads as a SELECT on its own copy, so `SELECT task_claim(...)` would
claim there alone (docs/scaling.md); libSQL keeps `client_wal_index` beside a
replica's database (`<database>-client_wal_index` for an embedded replica),
and the extension refuses to write where it finds one. The real server is
tested by tests/scale; these pin the rule on a plain file: every verb that
writes is refused with SQLITE_READONLY and changes nothing, the reads work.
"""

import apsw
import pytest

from conftest import connect, fails, one

WRITES = [
    "SELECT task_enqueue('job')",
    "SELECT task_claim('w1')",
    "SELECT task_claim_batch('w1', 5)",
    "SELECT task_complete('00000000-0000-7000-8000-000000000000')",
    "SELECT task_cancel('00000000-0000-7000-8000-000000000000')",
    "SELECT task_queue('images', '{\"paused\": true}')",
    "SELECT task_schedule('nightly', '@daily', 'report')",
    "SELECT task_tick()",
    "SELECT task_prune('{\"older_than\": 0}')",
    "INSERT INTO tasks(type) VALUES ('job')",
    "DELETE FROM tasks",
]


@pytest.fixture(params=["server", "embedded"])
def replica(request, tmp_path):
    """A database with a queued task, then marked as a replica's copy the
    way a libSQL server (a file in its folder) or an embedded replica (a
    file beside it) marks one; a new connection opens it."""
    path = tmp_path / "data"
    db = connect(path)
    assert one(db, "SELECT task_init()") == 9
    one(db, "SELECT task_enqueue('job')")
    db.close()
    marker = tmp_path / "client_wal_index" if request.param == "server" \
        else tmp_path / "data-client_wal_index"
    marker.write_bytes(b"")
    return connect(path), marker


@pytest.mark.parametrize("sql", WRITES)
def test_every_write_on_a_replica_copy_is_refused_and_changes_nothing(replica, sql):
    db, marker = replica
    message = fails(db, sql, match="read replica", exc=apsw.ReadOnlyError)
    assert str(marker) in message and "BEGIN IMMEDIATE" in message


def test_reads_on_a_replica_copy_work(replica):
    db, _ = replica
    assert one(db, "SELECT count(*) FROM tasks WHERE status = 'queued'") == 1
    assert one(db, "SELECT count(*) FROM task_events") == 1
    assert '"queued":1' in one(db, "SELECT task_stats()")


def test_without_the_marker_the_same_file_takes_writes(replica):
    db, marker = replica
    db.close()
    marker.unlink()
    db = connect(marker.parent / "data")
    assert one(db, "SELECT task_claim('w1')") is not None
