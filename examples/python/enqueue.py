#!/usr/bin/env python3
"""Enqueues tasks into a sqlite-task queue, all in one transaction.

    python examples/python/enqueue.py DB TYPE [DETAILS ...] [--queue Q] [--priority N]
                                      [--max-attempts N] [--delay-ms MS]

One task per DETAILS (a JSON text; `-` reads one JSON text per line from
stdin), or one task without details when none is given. It prints each new
task's id. The tasks are enqueued in one BEGIN IMMEDIATE transaction: all of
them or, on any error, none; that is also how an application enqueues a task
together with the row it is about, so that one exists if and only if the
other does (the transactional outbox).

Needs `pip install sqlite-task apsw` (in this checkout: `make python`, then
`pip install dist/wheels/sqlite_task-*.whl apsw`). sqlean.py or pysqlite3
work the same way: connect with `sqlean.connect(path, isolation_level=None)`
and load with `sqlite_task.load(db)`.
"""

import argparse
import json
import sys

import apsw
import sqlite_task


def enqueue(db, kind, details, options):
    """Enqueues one task per entry of `details` (JSON texts or None) in one
    transaction; returns their ids."""
    db.execute("BEGIN IMMEDIATE")
    try:
        ids = [db.execute("SELECT task_enqueue(?, ?, ?)", (kind, d, json.dumps(options))).fetchall()[0][0]
               for d in details]
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ids


def main():
    p = argparse.ArgumentParser(description="Enqueue tasks into a sqlite-task queue, in one transaction.")
    p.add_argument("db", help="the database file (created if missing)")
    p.add_argument("type", help="the tasks' type, which picks the worker's function")
    p.add_argument("details", nargs="*", metavar="DETAILS",
                   help="one task per JSON text; - reads one JSON text per line from stdin")
    p.add_argument("--queue", help="the queue (default: 'default')")
    p.add_argument("--priority", type=int, help="higher runs first (default 0)")
    p.add_argument("--max-attempts", type=int, metavar="N", help="attempts before it fails for good (default 3)")
    p.add_argument("--delay-ms", type=int, metavar="MS", help="run no sooner than MS from now")
    args = p.parse_args()

    details = []
    for d in args.details or [None]:
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()] if d == "-" else [d]
        for text in lines:
            if text is not None:
                try:
                    json.loads(text)
                except ValueError as e:
                    p.error(f"DETAILS must be JSON: {text!r}: {e}")
            details.append(text)
    options = {k: v for k, v in [("queue", args.queue), ("priority", args.priority),
                                 ("max_attempts", args.max_attempts), ("delay", args.delay_ms)]
               if v is not None}

    try:
        db = apsw.Connection(args.db)
        db.setbusytimeout(30_000)
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        sqlite_task.load(db)
        db.execute("SELECT task_init()").fetchall()
        for task_id in enqueue(db, args.type, details, options):
            print(task_id)
        db.close()
    except apsw.Error as e:
        sys.exit(f"enqueue.py: {e}")


if __name__ == "__main__":
    main()
