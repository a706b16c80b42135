"""Times a schema migration on a database of N tasks:
`python bench/migration.py [N] [--from 7]` (default 1,000,000, from version
2), with the extension in $TASK_EXT (default dist/task0).

From version 2 (to the current one; 2 to 3 rebuilds task_store): the
version 2 storage is made with plain SQL (the DDL of src/storage/001 and
002). From version 7 (7 to 8 moves a parent's count of unfinished children
to task_parent_store): the current storage is made by task_init() and put
back to version 7's shape (the undo of src/storage/008) before the rows go
in. Either way the rows are a mix of statuses like a queue that has run for
a while: 80% completed, 10% failed or cancelled, 8% queued, 2% running; 5%
of the tasks are children of a few thousand parents. Prints the sizes and
the time task_init() took.
"""

import os
import random
import sys
import tempfile
import time

import apsw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.environ.get("TASK_EXT") or os.path.join(REPO, "dist", "task0")


def storage_v2():
    d = os.path.join(REPO, "src", "storage")
    return open(os.path.join(d, "001_initial.sql")).read() + open(
        os.path.join(d, "002_completed_leave_status_indexes.sql")
    ).read()


# Version 8's storage back to version 7's: the count of finished children
# on the parents' rows, no task_parent_store.
UNDO_V8 = """
ALTER TABLE task_store RENAME COLUMN retired_children_done TO children_done;
DROP TABLE task_parent_store;
UPDATE task_meta SET value = 7 WHERE key = 'schema_version';
"""

# Version 7 counts children and their finished ones on the parents' rows.
COUNT_V7 = """
UPDATE task_store
   SET children = (SELECT count(*) FROM task_store AS c WHERE c.parent_id = task_store.id),
       children_done = (SELECT count(*) FROM task_store AS c WHERE c.parent_id = task_store.id
                          AND c.status IN ('completed', 'failed', 'cancelled'))
 WHERE id IN (SELECT parent_id FROM task_store WHERE parent_id IS NOT NULL);
"""


def main():
    args = sys.argv[1:]
    start = 2
    if "--from" in args:
        i = args.index("--from")
        start = int(args[i + 1])
        del args[i:i + 2]
    if start not in (2, 7):
        sys.exit("migration.py: --from takes 2 or 7")
    n = int(args[0]) if args else 1_000_000
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"v{start}.db")
        db = apsw.Connection(path)
        db.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
        if start == 2:
            db.execute(storage_v2())
            db.execute("CREATE TABLE main.task_meta (key TEXT PRIMARY KEY, value);"
                       "INSERT INTO task_meta VALUES ('schema_version', 2)")
        else:
            db.enable_load_extension(True)
            db.load_extension(EXT)
            db.execute("SELECT task_init()")
            db.execute(UNDO_V8)
        task_id = lambda i: f"{i:08x}-0000-7000-8000-{i:012x}"
        parents = [task_id(i) for i in range(n // 400)]

        def rows():
            for i in range(n):
                r = rng.random()
                status = ("completed" if r < 0.8 else "failed" if r < 0.85 else "cancelled" if r < 0.9
                          else "queued" if r < 0.98 else "running")
                done = status in ("completed", "failed", "cancelled")
                parent = rng.choice(parents) if rng.random() < 0.05 and i >= len(parents) else None
                yield (task_id(i), f"q{i % 4}", "job", status, 3,
                       1 if status != "queued" else 0, parent, "w" if status == "running" else None,
                       10**9 if status == "running" else None, 1000 + i, 1000 + i, 2000 + i,
                       2000 + i if status != "queued" else None, 3000 + i if done else None,
                       '{"n":%d}' % i, '{"ok":true}' if status == "completed" else None)

        t = time.perf_counter()
        with db:
            db.executemany(
                "INSERT INTO task_store (id, queue, type, status, max_attempts, attempts, parent_id, worker,"
                " lease_until, run_at, created_at, updated_at, started_at, completed_at, details, result)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
            if start == 7:
                db.execute(COUNT_V7)
        made = time.perf_counter() - t
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(path)
        db.close()

        db = apsw.Connection(path)
        db.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
        db.enable_load_extension(True)
        db.load_extension(EXT)
        t = time.perf_counter()
        version = db.execute("SELECT task_init()").fetchall()[0][0]
        took = time.perf_counter() - t
        check_t = time.perf_counter()
        check = db.execute("SELECT task_check()").fetchall()[0][0]
        checked = time.perf_counter() - check_t
        count = db.execute("SELECT count(*) FROM task_store").fetchall()[0][0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = os.path.getsize(path)
        db.close()
        load = os.getloadavg()[0]
        print(f"tasks {count:,}; version {start} file {size / 2**20:.0f} MiB (made in {made:.1f} s); "
              f"task_init() -> {version} in {took:.1f} s; file after {after / 2**20:.0f} MiB; "
              f"task_check() {check[:80]!r} in {checked:.1f} s; 1-minute load {load:.2f}")


if __name__ == "__main__":
    main()
