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

A share of each batch is workflows (docs/reference/workflows.md):
  families      a 'family' task: its worker enqueues the children listed in
                its details while it runs, then completes it (it waits for
                them); children of any kind but stall/reap, some doomed (so
                the family fails, or with on_child_failure continue does
                not), some families themselves (grandchildren)
  dependencies  chains, diamonds and fan-ins inside a batch (depends_on), a
                root sometimes also on a task of an earlier batch; members of
                any kind but stall/reap, so a doomed one cancels its dependents
  unique keys   besides its n tasks, a batch enqueues a few tasks with a
                unique_key from a small pool (on_conflict keep or replace,
                unique_scope active, or completed for the 'once-' keys), so
                the same keys come again and again while their holders run
Children carry {"c": index, ...} and no batch marker (their worker made
them); unique tasks {"b": batch, "u": key} (not counted in the batch: the
enqueue may return the holder); dependents {"d": [dependency ids]}.

A worker dispatches on the task's type, which tells it how to behave:
  ok        complete at once
  progress  three task_progress/task_heartbeat reports, then complete
  flaky     task_fail on attempts 1..f (details.f), complete after
  doomed    task_fail on every attempt (ends failed after max_attempts)
  stall     on attempt 1, sleep past the lease, then try to complete (usually
            refused as stale: another worker has claimed it again)
  reap      max_attempts 1 and a stall: the next claim marks it failed
  family    enqueue its missing children in two transactions (each first
            renews the lease with the attempt, so a worker that lost the
            task adds nothing), then complete ('waiting', or 'completed' if
            they all finished meanwhile)
(With --unfenced, the negative control, a worker completes stalled tasks
without passing the attempt, so it overwrites the next holder's work: the
checker must catch that.)
A child ends (complete or fail) inside BEGIN IMMEDIATE and reads the
statuses of its ancestors in that transaction, so its record tells whether
that very transaction completed or failed a parent. A dependent claimed
inside BEGIN IMMEDIATE has the statuses of its dependencies read in the
transaction of its claim.
It claims in the ways docs/concurrency.md allows (plain SELECT task_claim, inside
BEGIN IMMEDIATE, task_claim_batch, task_complete_next), from every queue,
one queue or a list, and logs every call it makes with the outcome.

Worker log records (JSON arrays):
  C id attempt claim_now lease_until run_at priority created_at method lat_ms type
    max_attempts batch [dep_statuses]               a claim (dep_statuses: see above,
                                                    or null)
  P id attempt op t0 outcome lat_ms                 progress, progress-wb (write-back), heartbeat
  E id attempt op t0 t1 outcome lat_ms [ancestors]  complete/fail (ancestors: [[id, status]]
                                                    read in its transaction, for a child)
  K id attempt t0 t1 outcome [indexes] lat_ms       a family's children enqueued (outcome of
                                                    the fenced heartbeat: running, or why not)
  Z id attempt t0 t1                                a deliberate stall
  X op t0 error_class message lat_ms                an error reaching the caller
  S polls claims seconds                            clean exit
Producer records: B batch size method t0 t1 lat_ms; U batch queue key scope on_conflict
id (a unique enqueue and the id it returned, written after its batch committed); X as
above; S.
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
import uuid

import apsw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shared as S  # noqa: E402

QUEUES = ("default", "bulk", *S.LIMITS, *S.RATES, S.PAUSED)
NOT_RUNNING = re.compile(r" is (\w+), not running")
# A task's ancestors and their statuses, nearest first.
ANCESTORS_SQL = """WITH RECURSIVE up(id, parent_id, status) AS (
  SELECT id, parent_id, status FROM task_store WHERE id = ?
  UNION ALL
  SELECT t.id, t.parent_id, t.status FROM task_store AS t JOIN up ON t.id = up.parent_id)
SELECT id, status FROM up"""


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

    def log_claims(self, tasks, method, lat, seen=None):
        for t in tasks:
            d = t["details"] or {}
            self.log.write("C", t["id"], t["attempt"], t["lease_until"] - self.lease,
                           t["lease_until"], t["run_at"], t["priority"], t["created_at"],
                           method, round(lat, 3), t["type"], t["max_attempts"], d.get("b"),
                           seen)
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
            value, lat, seen = self.claim_in_transaction()
            if value:
                self.log_claims([value], method, lat, seen)
            return [value] if value else []
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
        claimed task (or None), the milliseconds it took, and for a dependent
        the statuses of its dependencies read in the claim's transaction."""
        self.board.set_phase(self.a.slot, S.CLAIM_TXN)
        t0 = S.now_ms()
        p0 = time.perf_counter()
        value = seen = None
        step = "BEGIN IMMEDIATE"
        try:
            self.db.execute(step)
            step = "SELECT task_claim"
            value = self.db.execute("SELECT task_claim(?, ?)",
                                    (self.a.name, self.claim_opts())).fetchall()[0][0]
            if value:
                value = json.loads(value)
                deps = (value["details"] or {}).get("d")
                if deps:
                    step = "read the dependencies"
                    seen = [r[0] for r in self.db.execute(
                        "SELECT status FROM task_store WHERE id IN"
                        " (SELECT value FROM json_each(?))", (json.dumps(deps),))]
            step = "COMMIT"
            self.db.execute(step)
        except apsw.Error as e:
            value = seen = None
            if not self.db.getautocommit():
                self.db.execute("ROLLBACK")
            self.log.write("X", f"txn ({step})", t0, type(e).__name__, str(e),
                           round((time.perf_counter() - p0) * 1000, 3))
        lat = (time.perf_counter() - p0) * 1000
        self.board.set_phase(self.a.slot, S.IDLE)
        return value, lat, seen

    def end(self, t, op, sql, params, phase):
        """A completing call (complete, fail, complete_next), retried while
        it reports SQLITE_BUSY (which changes nothing). Returns its value,
        None when it was refused."""
        for _ in range(5):
            value, outcome, t0, lat = self.call(phase, op, sql, params)
            t1 = S.now_ms()
            if outcome != "busy":
                break
        self.last_lat = lat
        refused = outcome is not None
        if not refused:
            outcome = "completed" if op == "next" else value
        self.log.write("E", t["id"], t["attempt"], op, t0, t1, outcome, round(lat, 3))
        return None if refused else value

    def in_transaction(self, phase, op, body):
        """body() inside BEGIN IMMEDIATE ... COMMIT, retried while it reports
        SQLITE_BUSY (which changes nothing). Returns (body's value, refusal
        outcome or None, t0, t1, ms)."""
        for _ in range(5):
            self.board.set_phase(self.a.slot, phase)
            t0 = S.now_ms()
            p0 = time.perf_counter()
            value, outcome = None, None
            try:
                self.db.execute("BEGIN IMMEDIATE")
                value = body()
                self.db.execute("COMMIT")
            except apsw.Error as e:
                if not self.db.getautocommit():
                    self.db.execute("ROLLBACK")
                value, outcome = None, classify(e)
                if outcome in ("busy", "error"):
                    self.log.write("X", op, t0, type(e).__name__, str(e),
                                   round((time.perf_counter() - p0) * 1000, 3))
            lat = (time.perf_counter() - p0) * 1000
            t1 = S.now_ms()
            self.board.set_phase(self.a.slot, S.IDLE)
            if outcome != "busy":
                break
        return value, outcome, t0, t1, lat

    def end_child(self, t, op, sql, params, phase):
        """A child's task_complete or task_fail, with its ancestors' statuses
        read in the same transaction: the one that completes (or fails) a
        parent shows it. Returns the call's value, None when it was refused."""
        def body():
            value = self.db.execute(sql, params).fetchall()[0][0]
            return value, [list(r) for r in self.db.execute(ANCESTORS_SQL, (t["parent_id"],))]

        got, outcome, t0, t1, lat = self.in_transaction(phase, op, body)
        value, ancestors = got or (None, None)
        self.log.write("E", t["id"], t["attempt"], op, t0, t1, outcome or value, round(lat, 3),
                       ancestors)
        return value

    def add_children(self, t, part):
        """Enqueues the children `part` (indexes into details.kids) of the
        family t that are not there yet (a later attempt finishes what a
        killed worker began), in one transaction that first renews t's lease
        with its attempt: a worker that lost the task adds nothing. Returns
        whether the worker may go on with t."""
        kids = t["details"]["kids"]

        def body():
            beat = self.db.execute("SELECT task_heartbeat(?, ?)",
                                   (t["id"], json.dumps({"attempt": t["attempt"]}))).fetchall()
            if beat[0][0] != "running":
                return beat[0][0], []
            have = {r[0] for r in self.db.execute(
                "SELECT json_extract(details, '$.c') FROM task_store WHERE parent_id = ?",
                (t["id"],))}
            made = []
            for j in part:
                if j in have:
                    continue
                k = kids[j]
                details = {"c": j, "f": k.get("f", 0), "kids": k.get("kids")}
                opts = {"parent_id": t["id"], "queue": k["q"], "max_attempts": k["m"]}
                if k.get("tol"):
                    opts["on_child_failure"] = "continue"
                self.db.execute("SELECT task_enqueue(?, ?, ?)",
                                (k["k"], json.dumps(details), json.dumps(opts))).fetchall()
                made.append(j)
            return "running", made

        got, outcome, t0, t1, lat = self.in_transaction(S.CHILDREN, "children", body)
        beat, made = got or (outcome, [])
        self.log.write("K", t["id"], t["attempt"], t0, t1, beat, made, round(lat, 3))
        return beat == "running"

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
        child = t["parent_id"] is not None
        if kind == "family":
            n = len(details["kids"])
            for part in (range(0, (n + 1) // 2), range((n + 1) // 2, n)):
                if not self.add_children(t, part):
                    return None
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
            end = self.end_child if child else self.end
            end(t, "fail", "SELECT task_fail(?, ?, ?)",
                (t["id"], f"planned failure {attempt}", json.dumps(fence)), S.FAIL)
            return None
        result = json.dumps({"by": self.a.name})
        if child:
            self.end_child(t, "complete", "SELECT task_complete(?, ?, ?)",
                           (t["id"], result, json.dumps(fence)), S.COMPLETE)
            return None
        # A family's completion says 'waiting' or 'completed': task_complete.
        if self.rng.random() < 0.3 and not self.board.stop() and kind != "family":
            opts = dict(fence, lease=self.lease)
            value = self.end(t, "next", "SELECT task_complete_next(?, ?, ?, ?)",
                             (t["id"], result, self.a.name, json.dumps(opts)), S.COMPLETE_NEXT)
            if value:
                nxt = json.loads(value)
                # The call's time: the claim ended with it (check.py bounds
                # a claim's commit by claim_now + lat).
                self.log_claims([nxt], "next", self.last_lat)
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
# The members of dependency groups, and children: no stalls (a workflow task
# waits for them, which only slows the run down).
WF_KINDS, WF_WEIGHTS = ("ok", "progress", "flaky", "doomed"), (0.55, 0.2, 0.17, 0.08)
UNIQUE_HOLDER = ("SELECT id FROM task_store WHERE queue = ? AND unique_key = ? AND"
                 " (status = 'queued' OR status = 'running' OR status = 'blocked'"
                 " OR status = 'waiting' OR (status = 'completed' AND flags & 4))")


class Producer:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.db = S.connect(a.db, a.ext, a.sync, a.lock, a.busy_timeout)
        self.board = S.Board(a.board)
        self.log = S.Log(a.log)
        w = [a.stall_frac, a.reap_frac, 0.05, 0.12, 0.15]
        self.weights = w + [1 - sum(w)]
        self.recent = []  # ids of tasks of committed batches, for dependencies across batches

    def task(self, b, n, i, kind=None):
        """(type, details, options) of one task of batch b."""
        kind = kind or self.rng.choices(KINDS, self.weights)[0]
        details = {"b": b, "n": n, "i": i}
        opts = {}
        if kind == "flaky":
            details["f"] = self.rng.choice((1, 2))
            opts["max_attempts"] = details["f"] + self.rng.choice((1, 2))
        elif kind == "doomed":
            opts["max_attempts"] = self.rng.choice((1, 2))
        elif kind == "reap":
            opts["max_attempts"] = 1
        elif kind in ("stall", "family"):
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
        r = self.rng.random()
        if r < 0.2:
            opts["queue"] = "bulk"
        elif r < 0.3:
            opts["queue"] = self.rng.choice(list(S.LIMITS))  # a queue with a concurrency limit
        elif r < 0.35:
            opts["queue"] = self.rng.choice(list(S.RATES))  # a queue with a rate limit
        elif r < 0.5:
            opts["queue"] = f"t{self.rng.randrange(S.TENANTS):03d}"  # one of many queues
        elif r < 0.53:
            opts["queue"] = S.PAUSED  # paused until the runner resumes it
        if kind == "family":
            details["kids"] = self.children(1)
            if self.rng.random() < 0.4:
                opts["on_child_failure"] = "continue"
        return kind, details, opts

    def children(self, depth):
        """What a family's worker is to enqueue: one spec per child (kind
        k, max_attempts m, planned failures f, queue q; a family child also
        its own kids and tol, on_child_failure continue)."""
        kids = []
        for _ in range(self.rng.randint(2, 8 if depth == 1 else 4)):
            if depth == 1 and self.rng.random() < 0.08:
                kid = {"k": "family", "m": 3, "kids": self.children(2),
                       "tol": self.rng.random() < 0.4}
            else:
                kind = self.rng.choices(WF_KINDS, WF_WEIGHTS)[0]
                kid = {"k": kind, "m": self.rng.randint(1, 3)}
                if kind == "flaky":
                    kid["f"] = self.rng.choice((1, 2))
                    kid["m"] = kid["f"] + self.rng.choice((0, 1, 2))  # 0: fails for good
                elif kind == "doomed":
                    kid["m"] = self.rng.choice((1, 2))
            kid["q"] = "bulk" if self.rng.random() < 0.2 else "default"
            kids.append(kid)
        return kids

    def members(self, b, n, method):
        """The n tasks of batch b, as [type, details, options, deps] (deps:
        the indexes of the earlier members it depends on; a group's root may
        also name a task of an earlier batch in details["x"], which batch()
        turns into a dependency if that task has not failed)."""
        a = self.a
        out = []
        while len(out) < n:
            room, i = n - len(out), len(out)
            r = self.rng.random()
            if r < a.dep_frac and room >= 2:
                shape = self.rng.choice(("chain", "diamond", "fan-in"))
                size = min(room, self.rng.randint(3, 7))
                if shape == "chain" or size < 3:
                    deps = [[i + j - 1] if j else [] for j in range(size)]
                elif shape == "diamond":
                    deps = [[]] + [[i]] * (size - 2) + [list(range(i + 1, i + size - 1))]
                else:
                    deps = [[]] * (size - 1) + [list(range(i, i + size - 1))]
                for j, on in enumerate(deps):
                    kind, details, opts = self.task(
                        b, n, i + j, self.rng.choices(WF_KINDS, WF_WEIGHTS)[0])
                    if not on and self.recent and method != "single" and \
                            self.rng.random() < 0.3:
                        details["x"] = self.rng.choice(self.recent)
                    out.append([kind, details, opts, on])
            elif r < a.dep_frac + a.family_frac:
                out.append([*self.task(b, n, i, "family"), []])
            else:
                out.append([*self.task(b, n, i), []])
        return out

    def unique_tasks(self, b):
        """A few tasks with a unique key from the pool: [type, details, options]."""
        out = []
        for _ in range(self.rng.randint(0, self.a.unique_max)):
            if self.rng.random() < 0.15:
                key, scope = f"once-{self.rng.randrange(4 * self.a.unique_keys)}", "completed"
            else:
                key, scope = f"acct-{self.rng.randrange(self.a.unique_keys)}", "active"
            opts = {"queue": "bulk" if self.rng.random() < 0.2 else "default",
                    "unique_key": key, "unique_scope": scope,
                    "on_conflict": "replace" if self.rng.random() < 0.3 else "keep"}
            if self.rng.random() < 0.5:
                opts["delay"] = self.rng.randint(50, 500)  # held while queued: enqueued again
            kind = "progress" if self.rng.random() < 0.3 else "ok"
            out.append([kind, {"b": b, "u": key}, opts])
        return out

    def queued(self):
        return self.db.execute(
            "SELECT count(*) FROM task_store WHERE status = 'queued'").fetchall()[0][0]

    def enqueue(self, method, kind, details, opts):
        """One task_enqueue or INSERT INTO tasks; the id of the task (for a
        unique key: of its holder)."""
        if method != "vtab":
            return self.db.execute("SELECT task_enqueue(?, ?, ?)",
                                   (kind, json.dumps(details), json.dumps(opts))).fetchall()[0][0]
        tid = None if "unique_key" in opts else str(uuid.uuid4())
        self.db.execute(
            "INSERT INTO tasks(id, type, details, queue, priority, run_at, max_attempts, delay,"
            " depends_on, on_child_failure, unique_key, on_conflict, unique_scope)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (tid, kind, json.dumps(details), opts.get("queue", "default"),
             opts.get("priority", 0), opts.get("run_at"), opts.get("max_attempts"),
             opts.get("delay"), json.dumps(opts["depends_on"]) if "depends_on" in opts else None,
             opts.get("on_child_failure"), opts.get("unique_key"), opts.get("on_conflict"),
             opts.get("unique_scope")))
        if tid is None:
            tid = self.db.execute(UNIQUE_HOLDER,
                                  (opts["queue"], opts["unique_key"])).fetchall()[0][0]
        return tid

    def batch(self, b, n, method):
        """Enqueues one batch in one transaction (a single task: autocommit)."""
        members = self.members(b, n, method)
        self.t0 = S.now_ms()
        self.p0 = p0 = time.perf_counter()
        uniques = []  # (queue, key, scope, on_conflict, id)
        if method == "single":
            kind, details, opts, _ = members[0]
            self.step = "single task_enqueue"
            self.board.set_producer(S.P_COMMIT, batch=b, in_batch=0)
            ids = [self.enqueue("fn", kind, details, opts)]
        else:
            # The unique tasks go in among the members, anywhere.
            steps = [("m", m) for m in members]
            for u in self.unique_tasks(b):
                steps.insert(self.rng.randint(0, len(steps)), ("u", u))
            self.step = "BEGIN IMMEDIATE"
            self.db.execute("BEGIN IMMEDIATE")
            self.step = "enqueue in the transaction"
            self.board.set_producer(S.P_OPEN, batch=b, in_batch=0)
            ids = []
            for done, (what, (kind, details, opts, *deps)) in enumerate(steps, 1):
                if what == "u":
                    tid = self.enqueue(method, kind, details, opts)
                    uniques.append((opts["queue"], opts["unique_key"], opts["unique_scope"],
                                    opts["on_conflict"], tid))
                else:
                    on = [ids[j] for j in deps[0]]
                    x = details.pop("x", None)
                    # A task of an earlier batch: a dependency unless it has
                    # failed or been cancelled (read in this transaction).
                    if x and self.db.execute(
                            "SELECT status NOT IN ('failed', 'cancelled') FROM task_store"
                            " WHERE id = ?", (x,)).fetchall() == [(1,)]:
                        on.append(x)
                    if on:
                        details["d"] = on
                        opts = dict(opts, depends_on=on)
                    ids.append(self.enqueue(method, kind, details, opts))
                self.board.set_producer(S.P_OPEN, in_batch=done)
            self.board.set_producer(S.P_COMMIT)
            self.step = "COMMIT"
            self.db.execute("COMMIT")
        lat = (time.perf_counter() - p0) * 1000
        t1 = S.now_ms()
        self.log.write("B", b, n, method, self.t0, t1, round(lat, 3))
        for u in uniques:
            self.log.write("U", b, *u)
        self.recent = (self.recent + [tid for tid, m in zip(ids, members)
                                      if m[0] in ("ok", "progress")])[-200:]

    def run(self):
        a = self.a
        start = time.monotonic()
        # The batches' own tasks: not children (workers make them), nor
        # unique tasks (an enqueue may create none).
        have, top = self.db.execute(
            "SELECT count(*), max(json_extract(details, '$.b')) FROM task_store"
            " WHERE parent_id IS NULL AND unique_key IS NULL").fetchall()[0]
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
    p.add_argument("--family-frac", type=float, default=0.03)
    p.add_argument("--dep-frac", type=float, default=0.03)
    p.add_argument("--unique-max", type=int, default=6, help="unique enqueues per batch, at most")
    p.add_argument("--unique-keys", type=int, default=12, help="the pool of active unique keys")
    a = p.parse_args(argv)
    actor = Worker(a) if a.role == "worker" else Producer(a)
    return actor.run()


if __name__ == "__main__":
    sys.exit(main())
