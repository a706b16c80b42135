#!/usr/bin/env python3
"""A worker for a sqlite-task queue: claims tasks and runs them until stopped.

    python examples/python/worker.py DB [--queue Q ...] [--name NAME] [--lease-ms MS] [--wait-ms MS]

It runs two types of task, a starting point for your own:
  checksum  {"path": "...", "algorithm": "sha256"} → {"algorithm", "digest", "bytes"}:
            reads the file in 1 MiB chunks, reporting progress (a heartbeat
            instead where the size is unknown, as for a pipe)
  sleep     {"ms": 2000} → {"slept_ms": 2000}: pretends to work, reporting
            progress every 100 ms; handy to try Ctrl-C on
An exception fails the task with its text; the queue retries it while
attempts remain (task_fail's backoff), then it is failed for good.

Stopping: the first Ctrl-C or SIGTERM lets the task in hand finish (it is
completed or failed as usual), then the worker exits 0; an idle worker exits
at the end of its long poll (--wait-ms). A second one gives the task back to
the queue (task_fail with no delay: queued again for another worker, using up
an attempt) and exits 0.
A SIGKILL leaves the task running until its lease runs out (--lease-ms),
when the next claim takes it over.

When idle, the worker sleeps in a long poll (task_claim with "wait"): it
wakes as soon as another connection or process commits, so there is no poll
interval to tune and no CPU used while it waits.

Needs `pip install sqlite-task apsw` (in this checkout: `make python`, then
`pip install dist/wheels/sqlite_task-*.whl apsw`). The log goes to stderr.
"""

import argparse
import hashlib
import logging
import os
import sys
import time

import apsw
import sqlite_task

CHUNK = 1 << 20


def checksum(task):
    path, algorithm = task.details["path"], task.details.get("algorithm", "sha256")
    digest = hashlib.new(algorithm)
    size = os.stat(path).st_size  # 0 for a pipe: no percentage, heartbeats instead
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if size:
                # Write-back: a report a second at most reaches the database.
                task.progress(min(100, 100 * done / size), writeback_ms=1000)
            else:
                task.heartbeat()
    return {"algorithm": algorithm, "digest": digest.hexdigest(), "bytes": done}


def sleep(task):
    ms = int(task.details["ms"])
    started = time.monotonic()
    while (elapsed := (time.monotonic() - started) * 1000) < ms:
        task.progress(100 * elapsed / ms)
        time.sleep(min(0.1, (ms - elapsed) / 1000))
    return {"slept_ms": ms}


HANDLERS = {"checksum": checksum, "sleep": sleep}


def main():
    p = argparse.ArgumentParser(description="Run the tasks of a sqlite-task queue until stopped.")
    p.add_argument("db", help="the database file (created if missing)")
    p.add_argument("--queue", action="append", metavar="Q", help="claim from this queue (repeatable; default: all)")
    p.add_argument("--name", help="the worker's name in tasks.worker (default: host-pid)")
    p.add_argument("--lease-ms", type=int, default=60_000, metavar="MS",
                   help="the lease of each claim (default 60000); a task of a dead worker comes back after it")
    p.add_argument("--wait-ms", type=int, default=1_000, metavar="MS",
                   help="the long poll of one claim (default 1000): how soon an idle worker notices a stop")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    try:
        db = apsw.Connection(args.db)
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.execute("PRAGMA synchronous = NORMAL").fetchall()
        sqlite_task.load(db)
        # The fair wait for the write lock (docs/reference/workers.md).
        db.execute("SELECT task_busy_timeout(30000)").fetchall()
        db.execute("SELECT task_init()").fetchall()
        queue = args.queue[0] if args.queue and len(args.queue) == 1 else args.queue
        worker = sqlite_task.Worker(db, HANDLERS, name=args.name, queue=queue,
                                    lease_ms=args.lease_ms, wait_ms=args.wait_ms)
        worker.run()
        db.close()
    except apsw.Error as e:
        sys.exit(f"worker.py: {e}")


if __name__ == "__main__":
    main()
