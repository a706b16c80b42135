#!/usr/bin/env python3
"""Prints each change to a sqlite-task queue as it is committed, from a cursor.

    python examples/python/watch.py DB [--after SEQ] [--queue Q] [--timeout-ms MS] [--json]

The loop a UI follows to show the queue live: read the events after the
cursor, hand each one on, move the cursor, then sleep in task_wait until a
later event is committed, by any connection or process. Nothing here polls:
an idle watcher sleeps in the kernel. In an Electron app the main process
(or a utility process) runs this loop and forwards each event to the
renderer, `webContents.send('task-event', event)`, instead of printing it;
examples/node/watch.js is that loop with better-sqlite3.

The extension is loaded from $TASK_EXT (a path without the suffix), else
from this checkout's dist/task0.
"""

import argparse
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import apsw

EXT = os.environ.get("TASK_EXT") or str(Path(__file__).resolve().parents[2] / "dist" / "task0")

COLUMNS = ["seq", "task_id", "queue", "type", "kind", "status", "at", "attempt", "worker",
           "error", "progress"]
EVENTS = f"""
SELECT {", ".join(COLUMNS)} FROM task_events
 WHERE seq > :after AND (:queue IS NULL OR queue = :queue)
 ORDER BY seq"""
# The cursor moves to the log's newest event, shown or not: past the other
# queues' events, and past those of deleted tasks, which task_events leaves
# out but after_seq counts (a cursor behind them would never wait).
NEWEST = "SELECT coalesce(max(seq), 0) FROM task_event_store"


def watch(db, after=0, queue=None, timeout_ms=60_000, on_event=print):
    """Calls on_event(event) for each event after `after` (of `queue`, or
    every queue), in seq order, as they are committed; never returns."""
    cursor = after
    while True:
        with db:  # one snapshot, so that the events and the newest seq agree
            events = db.execute(EVENTS, {"after": cursor, "queue": queue}).fetchall()
            newest = db.execute(NEWEST).fetchall()[0][0]
        # Outside the snapshot: a slow on_event keeps no checkpoint waiting.
        for row in events:
            on_event(dict(zip(COLUMNS, row)))
        cursor = max(cursor, newest)
        # Returns at once if an event after the cursor was committed since
        # the read above; else sleeps until one is, or until the timeout.
        db.execute("SELECT task_wait(?, ?)", (timeout_ms, json.dumps({"after_seq": cursor}))).fetchall()


def line(e):
    """`seq=12 14:03:05.123 claimed   default/resize <id> status=running attempt=1 worker=w1`"""
    at = f"{datetime.fromtimestamp(e['at'] // 1000):%H:%M:%S}.{e['at'] % 1000:03}"
    extra = "".join(f" {k}={json.dumps(e[k], ensure_ascii=False) if k == 'error' else e[k]}"
                    for k in ("attempt", "worker", "progress", "error") if e[k] is not None)
    return f"seq={e['seq']} {at} {e['kind']:<9} {e['queue']}/{e['type']} {e['task_id']} status={e['status']}{extra}"


def main():
    p = argparse.ArgumentParser(description="Print each change to a sqlite-task queue as it is committed.")
    p.add_argument("db", help="the database file")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="print the events after this seq (default 0: all)")
    p.add_argument("--queue", metavar="Q", help="only this queue's events")
    p.add_argument("--timeout-ms", type=int, default=60_000, metavar="MS", help="task_wait's timeout (default 60000)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args()
    # Ctrl-C ends the process at once, as SIGTERM does (and as they end
    # `tail -f`). (A signal also ends task_wait early, so a KeyboardInterrupt
    # would come at once too; but a watcher only reads, and each line is
    # flushed: there is nothing to clean up, and no traceback to print.)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def show(e):
        print(json.dumps(e, ensure_ascii=False, separators=(",", ":")) if args.json else line(e), flush=True)

    try:
        db = apsw.Connection(args.db)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.enable_load_extension(True)
        db.load_extension(EXT)
        db.execute("SELECT task_init()").fetchall()
        watch(db, args.after, args.queue, args.timeout_ms, show)
    except apsw.Error as e:
        sys.exit(f"watch.py: {e}")


if __name__ == "__main__":
    main()
