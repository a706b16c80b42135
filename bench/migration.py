"""Times the schema migration from version 2 to 3 (a rebuild of task_store)
on a database of N tasks: `python bench/migration.py [N]` (default
1,000,000), with the extension in $TASK_EXT (default dist/task0). The
version 2 storage is made with plain SQL (the DDL of src/storage/001 and
002), a mix of statuses like a queue that has run for a while: 80% completed,
10% failed or cancelled, 8% queued, 2% running; 5% of the tasks are children
of a few thousand parents. Prints the sizes and the time task_init() took.
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


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v2.db")
        db = apsw.Connection(path)
        db.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
        db.execute(storage_v2())
        db.execute("CREATE TABLE main.task_meta (key TEXT PRIMARY KEY, value);"
                   "INSERT INTO task_meta VALUES ('schema_version', 2)")
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
        print(f"tasks {count:,}; version 2 file {size / 2**20:.0f} MiB (made in {made:.1f} s); "
              f"task_init() -> {version} in {took:.1f} s; file after {after / 2**20:.0f} MiB; "
              f"task_check() {check[:80]!r} in {checked:.1f} s; 1-minute load {load:.2f}")


if __name__ == "__main__":
    main()
