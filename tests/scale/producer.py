"""One producer process of the scale test: enqueues `--count` tasks into one
queue through the primary, `--batch` per statement, and writes how many it
enqueued and the errors it met, by message, as JSON to `--out`. A refused
batch is sent again.

A batch is `INSERT INTO tasks(...) SELECT ... FROM generate_series(a, b)`: one
write statement, so one transaction, all or none. Not
`SELECT count(task_enqueue(...)) FROM generate_series(a, b)`: SQLite gives a
SELECT no statement transaction, so outside BEGIN ... COMMIT each call commits
on its own (docs/concepts.md), and a batch refused half-way and sent again
enqueues its first tasks twice.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hrana import HranaError, Stream  # noqa: E402

ENQUEUE_SQL = ("INSERT INTO tasks(type, details, queue)"
               " SELECT 'job', json_object('producer', ?, 'n', value), ?"
               " FROM generate_series(?, ?)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    host, port = args.url.rsplit(":", 1)
    errors = Counter()
    enqueued = 0
    started = time.monotonic()
    with Stream(host, int(port)) as s:
        while enqueued < args.count:
            n = min(args.batch, args.count - enqueued)
            try:
                s.execute(ENQUEUE_SQL, args.name, args.queue, enqueued + 1, enqueued + n)
                enqueued += n
            except HranaError as e:
                errors[e.message] += 1
                time.sleep(0.01)
    result = {"name": args.name, "enqueued": enqueued, "errors": dict(errors),
              "seconds": time.monotonic() - started}
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
