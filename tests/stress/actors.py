"""The processes of a stress run: `python actors.py worker ...` and
`python actors.py producer ...`. Each is a separate OS process with its own
apsw connection, as real users run the queue.

The producer enqueues in batches (BEGIN IMMEDIATE; task_enqueue ...; COMMIT,
some through INSERT INTO tasks, some single enqueues), marking every task's
details with its batch ({"b": batch, "n": size, "i": index}) so the runner
can prove each batch all-or-nothing after a SIGKILL. It keeps at most
`--high-water` tasks queued, so it enqueues while the workers work, and
enqueues no more tasks in all than the budget the runner sets on the board
(a crash round raises it as its kills happen; other runs set the target).

A worker dispatches on the task's type, which tells it how to behave:
  ok        complete at once
  progress  three task_progress/task_heartbeat reports, then complete
  flaky     task_fail on attempts 1..f (details.f), complete after
  doomed    task_fail on every attempt (ends failed after max_attempts)
  stall     on attempt 1, sleep past the lease, then try to complete (usually
            refused as stale: another worker has claimed it again)
  reap      max_attempts 1 and a stall: the next claim marks it failed
(With --unfenced, the negative control, a worker completes stalled tasks
without passing the attempt, so it overwrites the next holder's work: the
checker must catch that.)
It claims in the ways docs/concurrency.md allows (plain SELECT task_claim, inside
BEGIN IMMEDIATE, task_claim_batch, task_complete_next), from every queue,
one queue or a list, and logs every call it makes with the outcome.

Worker log records (JSON arrays):
  C id attempt claim_now lease_until run_at priority created_at method lat_ms type
    max_attempts batch                              a claim
  P id attempt op t0 outcome lat_ms                 progress, progress-wb (write-back), heartbeat
  E id attempt op t0 t1 outcome lat_ms              complete/fail
  Z id attempt t0 t1                                a deliberate stall
  X op t0 error_class message lat_ms                an error reaching the caller
  S polls claims seconds                            clean exit
Producer records: B batch size method t0 t1 lat_ms, X as above, S.
`claim_now` is the extension's own clock at the claim (lease_until - lease);
other t0 are read just before the call, so they bound the extension's clock
from below. Outcomes: the function's result, or `stale`, `not-running:<status>`,
`busy`, `error`.
"""

import argparse
import json
import os
import random
import re
import sys
import time

import apsw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shared as S  # noqa: E402

QUEUES = ("default", "bulk")
NOT_RUNNING = re.compile(r" is (\w+), not running")


def classify(err):
    """Outcome name for an exception a call raised."""
    if isinstance(err, apsw.BusyError):
        return "busy"
    msg = str(err)
    if " is stale" in msg:
        return "stale"
    m = NOT_RUNNING.search(msg)
    if m:
        return "not-running:" + m.group(1)
    return "error"


class Worker:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.db = S.connect(a.db, a.ext, a.sync, a.lock, a.busy_timeout)
        self.board = S.Board(a.board)
        self.log = S.Log(a.log)
        self.lease = a.lease
        self.polls = 0
        self.claims = 0

    # One SQL call, with its phase published and its errors classified.
    def call(self, phase, op, sql, params=()):
        self.board.set_phase(self.a.slot, phase)
        t0 = S.now_ms()
        p0 = time.perf_counter()
        try:
            rows = self.db.execute(sql, params).fetchall()
            value, err = rows[0][0], None
        except apsw.Error as e:
            value, err = None, e
        lat = (time.perf_counter() - p0) * 1000
        self.board.set_phase(self.a.slot, S.IDLE)
        if err is not None:
            outcome = classify(err)
            if outcome in ("busy", "error"):
                self.log.write("X", op, t0, type(err).__name__, str(err), round(lat, 3))
            return None, outcome, t0, lat
        return value, None, t0, lat

    def claim_opts(self):
        """Every queue mostly; sometimes one queue, sometimes a list."""
        o = {"lease": self.lease}
        r = self.rng.random()
        if r < 0.15:
            o["queue"] = self.rng.choice(QUEUES)
        elif r < 0.30:
            o["queue"] = list(QUEUES)
        return json.dumps(o)

    def log_claims(self, tasks, method, lat):
        for t in tasks:
            d = t["details"] or {}
            self.log.write("C", t["id"], t["attempt"], t["lease_until"] - self.lease,
                           t["lease_until"], t["run_at"], t["priority"], t["created_at"],
                           method, round(lat, 3), t["type"], t["max_attempts"], d.get("b"))
        self.claims += len(tasks)

    def claim(self):
        """Claims one or a few tasks, in one of the ways docs/concurrency.md allows;
        [] when none is ready."""
        r = self.rng.random()
        name = self.a.name
        if r < 0.15:
            method = "batch"
            value, _, _, lat = self.call(S.CLAIM_BATCH, method, "SELECT task_claim_batch(?, ?, ?)",
                                         (name, self.rng.randint(2, 4), self.claim_opts()))
            tasks = json.loads(value) if value else []
        elif r < 0.30:
            method = "txn"
            value, lat = self.claim_in_transaction()
            tasks = [json.loads(value)] if value else []
        else:
            method = "plain"
            value, _, _, lat = self.call(S.CLAIM, method, "SELECT task_claim(?, ?)",
                                         (name, self.claim_opts()))
            tasks = [json.loads(value)] if value else []
        if tasks:
            self.log_claims(tasks, method, lat)
        return tasks

    def claim_in_transaction(self):
        """BEGIN IMMEDIATE; SELECT task_claim(...); COMMIT. Returns the
        claim (or None) and the milliseconds it took."""
        self.board.set_phase(self.a.slot, S.CLAIM_TXN)
        t0 = S.now_ms()
        p0 = time.perf_counter()
        value = None
        step = "BEGIN IMMEDIATE"
        try:
            self.db.execute(step)
            step = "SELECT task_claim"
            value = self.db.execute("SELECT task_claim(?, ?)",
                                    (self.a.name, self.claim_opts())).fetchall()[0][0]
            step = "COMMIT"
            self.db.execute(step)
        except apsw.Error as e:
            value = None
            if not self.db.getautocommit():
                self.db.execute("ROLLBACK")
            self.log.write("X", f"txn ({step})", t0, type(e).__name__, str(e),
                           round((time.perf_counter() - p0) * 1000, 3))
        lat = (time.perf_counter() - p0) * 1000
        self.board.set_phase(self.a.slot, S.IDLE)
        return value, lat

    def end(self, t, op, sql, params, phase):
        """A completing call (complete, fail, complete_next), retried while
        it reports SQLITE_BUSY (which changes nothing). Returns its value,
        None when it was refused."""
        for _ in range(5):
            value, outcome, t0, lat = self.call(phase, op, sql, params)
            t1 = S.now_ms()
            if outcome != "busy":
                break
        refused = outcome is not None
        if not refused:
            outcome = "completed" if op == "next" else value
        self.log.write("E", t["id"], t["attempt"], op, t0, t1, outcome, round(lat, 3))
        return None if refused else value

    def report(self, t, percent):
        """One progress or heartbeat call; its outcome ('running' to go on)."""
        fence = {"attempt": t["attempt"]}
        if percent is None:
            op, phase = "heartbeat", S.HEARTBEAT
            value, outcome, t0, lat = self.call(
                phase, op, "SELECT task_heartbeat(?, ?)", (t["id"], json.dumps(fence)))
        else:
            op, phase = "progress", S.PROGRESS
            if self.rng.random() < 0.3:
                # Write-back: may only be held in this process, so it
                # renews nothing the checker can count on.
                op, fence = "progress-wb", dict(fence, writeback=100)
            value, outcome, t0, lat = self.call(
                phase, op, "SELECT task_progress(?, ?, ?)", (t["id"], percent, json.dumps(fence)))
        outcome = outcome or value
        self.log.write("P", t["id"], t["attempt"], op, t0, outcome, round(lat, 3))
        return outcome

    def stall(self, t):
        self.board.set_phase(self.a.slot, S.STALL)
        t0 = S.now_ms()
        time.sleep(self.a.stall_ms / 1000 * self.rng.uniform(1.0, 1.25))
        self.board.set_phase(self.a.slot, S.IDLE)
        self.log.write("Z", t["id"], t["attempt"], t0, S.now_ms())

    def work(self, t):
        """Does the task as its type says; returns a next task if the
        completion claimed one (task_complete_next), else None."""
        kind, attempt = t["type"], t["attempt"]
        details = t["details"] or {}
        fence = {"attempt": attempt}
        if (kind == "stall" and attempt == 1) or kind == "reap":
            self.stall(t)
            if self.a.unfenced:
                fence = {}  # the negative control: a worker that ignores fencing
            elif self.rng.random() < 0.5:
                self.report(t, None)  # usually fenced off, as the completion below
        elif kind == "stall" and self.a.unfenced:
            # The next holder works a while, within its lease, so that the
            # unfenced completion of the stalled holder lands on its watch.
            time.sleep(self.lease / 1000 * 0.6)
        elif kind == "progress":
            for percent in (30, 60, 90):
                if self.report(t, percent if self.rng.random() < 0.7 else None) != "running":
                    return None
                time.sleep(self.rng.uniform(0, 0.0005))
        if kind == "doomed" or (kind == "flaky" and attempt <= details.get("f", 0)):
            self.end(t, "fail", "SELECT task_fail(?, ?, ?)",
                     (t["id"], f"planned failure {attempt}", json.dumps(fence)), S.FAIL)
            return None
        result = json.dumps({"by": self.a.name})
        if self.rng.random() < 0.3 and not self.board.stop():
            opts = dict(fence, lease=self.lease)
            value = self.end(t, "next", "SELECT task_complete_next(?, ?, ?, ?)",
                             (t["id"], result, self.a.name, json.dumps(opts)), S.COMPLETE_NEXT)
            if value:
                nxt = json.loads(value)
                self.log_claims([nxt], "next", 0.0)
                return nxt
            return None
        self.end(t, "complete", "SELECT task_complete(?, ?, ?)",
                 (t["id"], result, json.dumps(fence)), S.COMPLETE)
        return None

    def run(self):
        start = time.monotonic()
        while True:
            self.board.tick(self.a.slot)
            if os.getppid() != self.a.parent:
                return 3  # the runner is gone: do not outlive it
            if time.time() > self.a.deadline:
                return 4
            tasks = self.claim()
            if not tasks:
                if self.board.stop():
                    break
                self.polls += 1
                self.board.set_phase(self.a.slot, S.POLL)
                time.sleep(self.rng.uniform(0.002, 0.010))
                self.board.set_phase(self.a.slot, S.IDLE)
                continue
            pending = list(tasks)
            while pending:
                self.board.tick(self.a.slot)
                nxt = self.work(pending.pop(0))
                if nxt:
                    pending.append(nxt)
        self.log.write("S", self.polls, self.claims, round(time.monotonic() - start, 3))
        self.db.close()
        return 0


KINDS = ("stall", "reap", "doomed", "flaky", "progress", "ok")


class Producer:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.db = S.connect(a.db, a.ext, a.sync, a.lock, a.busy_timeout)
        self.board = S.Board(a.board)
        self.log = S.Log(a.log)
        w = [a.stall_frac, a.reap_frac, 0.05, 0.12, 0.15]
        self.weights = w + [1 - sum(w)]

    def task(self, b, n, i):
        """(type, details, options) of one task of batch b."""
        kind = self.rng.choices(KINDS, self.weights)[0]
        details = {"b": b, "n": n, "i": i}
        opts = {}
        if kind == "flaky":
            details["f"] = self.rng.choice((1, 2))
            opts["max_attempts"] = details["f"] + self.rng.choice((1, 2))
        elif kind == "doomed":
            opts["max_attempts"] = self.rng.choice((1, 2))
        elif kind == "reap":
            opts["max_attempts"] = 1
        elif kind == "stall":
            opts["max_attempts"] = 3
        elif self.rng.random() < 0.2:
            opts["max_attempts"] = self.rng.randint(2, 5)
        if self.rng.random() < 0.2:
            opts["priority"] = self.rng.choice((-3, -1, 1, 2, 5, 9))
        if self.rng.random() < 0.1:
            delay = self.rng.randint(50, 1500)
            if self.rng.random() < 0.5:
                opts["delay"] = delay
            else:
                opts["run_at"] = S.now_ms() + delay
        if self.rng.random() < 0.2:
            opts["queue"] = "bulk"
        return kind, details, opts

    def queued(self):
        return self.db.execute(
            "SELECT count(*) FROM task_store WHERE status = 'queued'").fetchall()[0][0]

    def batch(self, b, n, method):
        """Enqueues one batch in one transaction (a single task: autocommit)."""
        tasks = [self.task(b, n, i) for i in range(n)]
        self.t0 = S.now_ms()
        self.p0 = p0 = time.perf_counter()
        if method == "single":
            kind, details, opts = tasks[0]
            self.step = "single task_enqueue"
            self.board.set_producer(S.P_COMMIT, batch=b, in_batch=0)
            self.db.execute("SELECT task_enqueue(?, ?, ?)",
                            (kind, json.dumps(details), json.dumps(opts))).fetchall()
        else:
            self.step = "BEGIN IMMEDIATE"
            self.db.execute("BEGIN IMMEDIATE")
            self.step = "enqueue in the transaction"
            self.board.set_producer(S.P_OPEN, batch=b, in_batch=0)
            for i, (kind, details, opts) in enumerate(tasks):
                if method == "fn":
                    self.db.execute("SELECT task_enqueue(?, ?, ?)",
                                    (kind, json.dumps(details), json.dumps(opts))).fetchall()
                else:
                    self.db.execute(
                        "INSERT INTO tasks(type, details, queue, priority, run_at, max_attempts,"
                        " delay) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (kind, json.dumps(details), opts.get("queue", "default"),
                         opts.get("priority", 0), opts.get("run_at"), opts.get("max_attempts"),
                         opts.get("delay")))
                self.board.set_producer(S.P_OPEN, in_batch=i + 1)
            self.board.set_producer(S.P_COMMIT)
            self.step = "COMMIT"
            self.db.execute("COMMIT")
        lat = (time.perf_counter() - p0) * 1000
        self.log.write("B", b, n, method, self.t0, S.now_ms(), round(lat, 3))

    def run(self):
        a = self.a
        start = time.monotonic()
        have, top = self.db.execute(
            "SELECT count(*), max(json_extract(details, '$.b')) FROM task_store").fetchall()[0]
        b = max(a.min_batch, (top or 0) + 1)
        committed = 0
        while have < a.target:
            if os.getppid() != a.parent:
                return 3
            if time.time() > a.deadline:
                return 4
            budget = self.board.budget()
            # Held back only here, between batches: a transaction kept open
            # while waiting would hold the write lock against every worker.
            if have >= budget:
                self.board.set_producer(S.P_WAIT, committed=committed, enqueued=have)
                self.board.tick_producer()
                time.sleep(0.005)
                continue
            self.board.set_producer(S.P_IDLE, committed=committed, enqueued=have)
            self.board.tick_producer()
            if self.queued() > a.high_water:
                time.sleep(0.005)
                continue
            r = self.rng.random()
            method = "single" if r < 0.1 else "vtab" if r < 0.25 and not a.crash else "fn"
            n = 1 if method == "single" else self.rng.randint(a.batch_min, a.batch_max)
            # Cut to the budget rather than wait for room for a whole batch:
            # the producer then reaches its budget exactly, and the runner
            # counts on that: the tasks its next kill mark needs will come.
            n = min(n, a.target - have, budget - have)
            try:
                self.batch(b, n, method)
            except apsw.Error as e:
                lat = (time.perf_counter() - self.p0) * 1000
                self.log.write("X", f"batch ({self.step})", self.t0, type(e).__name__, str(e),
                               round(lat, 3))
                if not self.db.getautocommit():
                    self.db.execute("ROLLBACK")
                continue  # retry the same batch number: nothing of it was kept
            have += n
            b += 1
            committed += 1
        self.board.set_producer(S.P_DONE, committed=committed)
        self.log.write("S", committed, have, round(time.monotonic() - start, 3))
        self.db.close()
        return 0


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("worker", "producer"))
    p.add_argument("--db", required=True)
    p.add_argument("--ext", required=True)
    p.add_argument("--sync", required=True)
    p.add_argument("--lock", choices=("sleep", "block"), default="sleep")
    p.add_argument("--busy-timeout", type=int, default=S.BUSY_TIMEOUT_MS)
    p.add_argument("--board", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--deadline", type=float, required=True)
    # worker
    p.add_argument("--name")
    p.add_argument("--slot", type=int)
    p.add_argument("--lease", type=int, default=300)
    p.add_argument("--stall-ms", type=int, default=400)
    p.add_argument("--unfenced", action="store_true",
                   help="negative control: complete stalled tasks without their attempt")
    # producer
    p.add_argument("--target", type=int)
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--batch-min", type=int, default=20)
    p.add_argument("--batch-max", type=int, default=150)
    p.add_argument("--high-water", type=int, default=2000)
    p.add_argument("--stall-frac", type=float, default=0.003)
    p.add_argument("--reap-frac", type=float, default=0.001)
    p.add_argument("--crash", action="store_true", help="only task_enqueue batches")
    a = p.parse_args(argv)
    actor = Worker(a) if a.role == "worker" else Producer(a)
    return actor.run()


if __name__ == "__main__":
    sys.exit(main())
