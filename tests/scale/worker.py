"""One worker process of the scale test: claims and completes tasks of one
queue over Hrana until the queue is empty and the stop file exists, then
writes what it saw as JSON to `--out`.

Each claim and each completion is its own transaction, in the form given by
`--form`; every statement is its own HTTP request on one stream, carrying the
baton, so a replica sees the transaction open and forwards the rest to its
primary (docs/scaling.md):

  immediate   BEGIN IMMEDIATE / SELECT verb(...) / COMMIT  (the documented form)
  deferred    BEGIN / SELECT verb(...) / COMMIT
  pipelined   the three statements in one request

`--batch 0` calls task_claim and task_complete (one task per transaction);
`--batch N` calls task_claim_batch(worker, N) and task_complete_batch.
An error is counted by its message (task ids masked), the transaction rolled
back and the step tried again, so a refused completion does not leave its
tasks running until their lease runs out.
"""

import argparse
import json
import os
import re
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hrana import HranaError, Stream  # noqa: E402

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def mask(message):
    return UUID.sub("<id>", message)


class Worker:
    def __init__(self, args):
        self.args = args
        host, port = args.url.rsplit(":", 1)
        self.addr = (host, int(port))
        self.errors = Counter()
        self.stream = self.open()
        self.claimed = []        # [id, attempt] per claimed task, in order
        self.completed = 0
        self.transactions = 0
        self.ambiguous = 0       # a COMMIT that failed after the verb succeeded

    def open(self):
        """A new stream; with --busy-timeout, task_busy_timeout(ms) on the
        connection the stream reads from (the replica's own, or the
        primary's) and, in a transaction the replica forwards, on the
        primary's connection that its writes go to."""
        stream = Stream(*self.addr)
        ms = self.args.busy_timeout
        if ms:
            for attempt in range(50):
                try:
                    stream.execute("SELECT task_busy_timeout(?)", ms)
                    stream.execute("BEGIN")
                    stream.execute("SELECT task_busy_timeout(?)", ms)
                    stream.execute("COMMIT")
                    break
                except HranaError as e:
                    self.errors[f"setup: {mask(e.message)} ({e.code})"] += 1
                    stream.close()
                    stream = Stream(*self.addr)
                    time.sleep(0.01)
        return stream

    def reopen(self):
        try:
            self.stream.close()
        except Exception:
            pass
        self.stream = self.open()

    def transaction(self, sql, *args):
        """Runs one verb in a transaction of the chosen form; returns its
        value, or raises HranaError after rolling back."""
        form = self.args.form
        begin = "BEGIN IMMEDIATE" if form in ("immediate", "pipelined") else "BEGIN"
        step = begin
        try:
            if form == "pipelined":
                step = "pipelined"
                rows = self.stream.execute_many([(begin, ()), (sql, args), ("COMMIT", ())])[1]
            else:
                self.stream.execute(begin)
                step = "verb"
                rows = self.stream.execute(sql, *args)
                step = "COMMIT"
                self.stream.execute("COMMIT")
        except HranaError as e:
            self.errors[f"{step}: {mask(e.message)} ({e.code})"] += 1
            if step == "COMMIT":
                self.ambiguous += 1
            try:
                self.stream.execute("ROLLBACK")
            except Exception:
                self.reopen()
            raise
        except OSError as e:
            self.errors[f"{step}: {type(e).__name__}: {e}"] += 1
            self.reopen()
            raise HranaError(str(e)) from e
        self.transactions += 1
        return rows[0][0] if rows else None

    def retry(self, sql, *args):
        """The same transaction until it succeeds (with a short pause)."""
        for attempt in range(200):
            try:
                return self.transaction(sql, *args)
            except HranaError:
                time.sleep(min(0.002 * (attempt + 1), 0.05))
        raise SystemExit(f"{self.args.name}: {sql} failed 200 times")

    def claim(self):
        opts = json.dumps({"queue": self.args.queue})
        if self.args.batch == 0:
            value = self.retry("SELECT task_claim(?, ?)", self.args.name, opts)
            return [json.loads(value)] if value else []
        value = self.retry("SELECT task_claim_batch(?, ?, ?)", self.args.name,
                           self.args.batch, opts)
        return json.loads(value)

    def complete(self, tasks):
        if self.args.batch == 0:
            (task,) = tasks
            status = self.retry("SELECT task_complete(?, NULL, ?)", task["id"],
                                json.dumps({"attempt": task["attempt"]}))
            assert status == "completed", status
            return 1
        items = json.dumps([{"id": t["id"], "attempt": t["attempt"]} for t in tasks])
        return self.retry("SELECT task_complete_batch(?)", items)

    def run(self):
        started = time.monotonic()
        while True:
            tasks = self.claim()
            if not tasks:
                if os.path.exists(self.args.stop):
                    break
                time.sleep(0.005)
                continue
            self.claimed.extend([t["id"], t["attempt"]] for t in tasks)
            self.completed += self.complete(tasks)
        self.stream.close()
        return {
            "name": self.args.name,
            "claimed": self.claimed,
            "completed": self.completed,
            "transactions": self.transactions,
            "ambiguous_commits": self.ambiguous,
            "errors": dict(self.errors),
            "seconds": time.monotonic() - started,
        }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="host:port of the server to talk to")
    p.add_argument("--name", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--form", choices=["immediate", "deferred", "pipelined"], default="immediate")
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--busy-timeout", type=int, default=0,
                   help="call task_busy_timeout(ms) on each stream's connections (0: leave sqld's)")
    p.add_argument("--stop", required=True, help="exit at the first empty claim once this exists")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = Worker(args).run()
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
