"""The verbs inside a deferred transaction (`BEGIN`, not `BEGIN IMMEDIATE`),
the form many drivers use by default (Python's sqlite3 module, libSQL's
streams). A verb reads before it writes (a claim's plan, a refusal's
reasons); in a deferred transaction that read starts a snapshot, and if
another process commits before the verb's write, SQLite cannot upgrade the
snapshot and fails at once with SQLITE_BUSY_SNAPSHOT, which no busy timeout
retries. So every verb that writes, called in a transaction that has not
touched the database yet, takes the write lock first (`Queue::ensure_writable`)
and then waits for it like any write (docs/concurrency.md).

The processes are test_workflow_processes.py's harness (its `main` and
`run_together`): each prints `ready`, starts on `go`, and reports a JSON
summary; an SQLITE_BUSY that reaches one fails the test.
"""

import json
import sys
from collections import Counter

import apsw

from conftest import EXT, one, rows
from test_workflow_processes import main, open_db, run_together

TASKS = 600
WORKERS = 4


def deferred_worker(db, name):
    """Claims and completes in deferred transactions until the queue is
    empty: BEGIN; task_claim; task_complete; the claim logged; COMMIT. The
    claim plans first (it reads which queues have work), so each transaction
    reads before it writes."""
    done = []
    while True:
        db.execute("BEGIN")
        try:
            text = one(db, "SELECT task_claim(?)", name)
            if text is None:
                db.execute("COMMIT")
                break
            t = json.loads(text)
            opts = json.dumps({"attempt": t["attempt"]})
            assert one(db, "SELECT task_complete(?, NULL, ?)", t["id"], opts) == "completed"
            db.execute("INSERT INTO log(kind, task, worker) VALUES ('complete', ?, ?)",
                       (t["id"], name))
            db.execute("COMMIT")
        except BaseException:
            if not db.getautocommit():
                db.execute("ROLLBACK")
            raise
        done.append(t["id"])
    return {"done": done}


ROLES = {"deferred": deferred_worker}


def test_four_processes_claiming_in_deferred_transactions_meet_no_busy_error(tmp_path):
    path = tmp_path / "q.db"
    db = open_db(path, EXT)
    assert one(db, "SELECT task_init()") == 9
    db.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, kind TEXT, task TEXT, worker TEXT)")
    # Two queues, so a claim from every queue plans (reads) before its UPDATE.
    db.execute("BEGIN IMMEDIATE")
    for i in range(TASKS):
        db.execute("SELECT task_enqueue('job', NULL, ?)", (json.dumps({"queue": f"q{i % 2}"}),))
    db.execute("COMMIT")
    results = run_together(path, [("deferred", f"w{i}") for i in range(WORKERS)],
                           script=__file__)

    busy = {name: r["busy"] for name, r in results.items() if "busy" in r}
    assert busy == {}
    done = Counter(t for r in results.values() for t in r["done"])
    assert len(done) == TASKS and set(done.values()) == {1}
    assert rows(db, "SELECT status, count(*) FROM tasks GROUP BY status") == [("completed", TASKS)]
    assert one(db, "SELECT count(DISTINCT task) FROM log") == TASKS


def test_a_verb_in_a_deferred_transaction_holds_the_write_lock_until_commit(tmp_path):
    path = tmp_path / "q.db"
    a, b = open_db(path, EXT), open_db(path, EXT)
    assert one(a, "SELECT task_init()") == 9
    b.setbusytimeout(0)
    for verb in ("SELECT task_claim('w1')", "SELECT task_enqueue('job')"):
        a.execute("BEGIN")
        a.execute(verb).fetchall()
        assert a.txn_state("main") == apsw.SQLITE_TXN_WRITE, verb
        try:
            b.execute("BEGIN IMMEDIATE")
            raise AssertionError(f"{verb}: another connection took the write lock")
        except apsw.BusyError:
            pass
        a.execute("ROLLBACK")
    # Reads keep to a read transaction: stats, and a wait's refusal.
    a.execute("BEGIN")
    a.execute("SELECT task_stats()").fetchall()
    assert a.txn_state("main") == apsw.SQLITE_TXN_READ
    a.execute("ROLLBACK")
    # Autocommit calls are unchanged: each is its own transaction.
    assert one(a, "SELECT task_claim('w1')") is None  # the enqueue above was rolled back
    assert a.getautocommit() and a.txn_state("main") == apsw.SQLITE_TXN_NONE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], roles=ROLES))
