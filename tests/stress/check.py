"""The verdict on a stress run: reads the workers' and the producer's logs and
the final database, and returns the figures and every violation found.

What counts as a violation (each has a category name in the summary):

  not-terminal     a task still queued or running (or cancelled: nothing cancels)
  double-claim     the same attempt claimed twice, or attempt B claimed while
                   the holder of an earlier attempt A still had a valid lease
                   (B's claim time, the extension's clock, before A's lease end:
                   its claim's lease_until or its last accepted renewal + lease)
                   or after A had completed or failed the task for good
  fence-breach     a refusal that does not fit (a 'stale' refusal while no later
                   attempt exists, a 'not running' one on a task that was not
                   reaped), or a call the fencing should have refused
  exactly-once     a task completed by two calls, a completion the database
                   does not show, or a completed task whose holder never logged it
  outcome          a task that ended other than its type says and no expired
                   lease explains (a 'doomed' task completed, an 'ok' task
                   failed without 'lease expired'), or failed before max_attempts
  attempts         the database counts fewer attempts than were claimed, or
                   more (claims nobody saw) without a killed worker to explain them
  run-at           a task claimed before its run_at
  batch            a batch partly present, a committed batch missing, a batch
                   killed inside its transaction present, a task without a batch
  busy             SQLITE_BUSY (apsw.BusyError) reached a caller
  error            any other unexpected error from a call
  starved          a worker that got less than a fifth of the mean share (runs
                   without kills)
  integrity        PRAGMA integrity_check or task_check() not 'ok'

Times: `claim_now` is exact (the extension's clock at the claim); other call
times are read just before the call, a lower bound of the extension's clock
for it. So an accepted renewal at t0 gives a lease until at least t0 + lease,
and a violation reported here is certain, never an artefact of clock reading.
"""

import bisect
import json
import statistics
from collections import Counter, defaultdict

OK_END = ("completed", "queued", "failed")
CALL_NAMES = {"next": "task_complete_next", "progress-wb": "task_progress",
              "batch": "an enqueue batch"}


class Attempt:
    """One claim of one task by one worker, and what its worker did with it."""

    __slots__ = ("task", "attempt", "worker", "now", "lease_until", "run_at", "priority",
                 "created_at", "method", "lat", "type", "max_attempts", "batch",
                 "renew_until", "last_t", "end", "refusals")

    def __init__(self, worker, rec):
        (_, self.task, self.attempt, self.now, self.lease_until, self.run_at, self.priority,
         self.created_at, self.method, self.lat, self.type, self.max_attempts, self.batch) = rec
        self.worker = worker
        self.renew_until = self.lease_until
        self.last_t = self.now
        self.end = None        # (op, t0, t1, outcome) of the accepted ending call
        self.refusals = []     # outcomes of refused calls

    @property
    def lease(self):
        return self.lease_until - self.now


class Report:
    def __init__(self):
        self.violations = defaultdict(list)
        self.figures = {}

    def bad(self, category, message):
        self.violations[category].append(message)

    @property
    def ok(self):
        return not self.violations

    def violation_lines(self, examples=3):
        out = []
        for cat in sorted(self.violations):
            msgs = self.violations[cat]
            out.append(f"{cat}: {len(msgs)}")
            out.extend(f"    {m}" for m in msgs[:examples])
        return out


def pct(values, q):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def lat_figures(values):
    return {"n": len(values), "p50": pct(values, 0.5), "p99": pct(values, 0.99),
            "max": max(values) if values else 0.0}


def analyse(worker_logs, producer_records, tasks, *, killed=(), producer_kills=(),
            target=None, integrity="ok", task_check="ok"):
    """The verdict on one run. worker_logs: {worker: [record]};
    producer_records: [record] of every producer life; tasks: [dict] rows of
    task_store (id, type, status, attempts, max_attempts, worker, error,
    details); killed: names of the workers that were SIGKILLed;
    producer_kills: [(phase, batch, enqueued in it)]."""
    a = Analysis(set(killed), list(producer_kills))
    for worker, records in worker_logs.items():
        a.replay_worker(worker, records)
    a.replay_producer(producer_records)
    a.check_tasks(tasks)
    a.check_batches(tasks, producer_records, target)
    a.check_fairness()
    for name, value in (("integrity_check", integrity), ("task_check()", task_check)):
        if value != "ok":
            a.r.bad("integrity", f"{name}: {value}")
    a.summarise(tasks)
    return a.r


class Analysis:
    def __init__(self, killed, producer_kills):
        self.r = Report()
        self.killed = killed
        self.producer_kills = producer_kills
        self.by_key = defaultdict(list)     # (task, attempt) -> [Attempt]
        self.per_worker = Counter()         # claims
        self.latencies = defaultdict(list)  # call -> [ms]
        self.calls = []                     # (t0, t_end, process, call) of every write call
        self.busy_calls = []                # (t0, t_end, process, call, message)
        self.finished_at = []               # t1 of every completion or final failure
        self.stalls = 0
        self.n = Counter()                  # counted events, for the figures

    # --- Logs -------------------------------------------------------------

    def replay_worker(self, worker, records):
        r = self.r
        mine = {}
        self.per_worker[worker] += 0
        for rec in records:
            kind = rec[0]
            if kind == "C":
                a = Attempt(worker, rec)
                mine[(a.task, a.attempt)] = a
                self.by_key[(a.task, a.attempt)].append(a)
                self.per_worker[worker] += 1
                if a.method != "next":  # claimed inside task_complete_next: timed there
                    self.call("claim", a.now, a.lat, worker)
                if a.now < a.run_at:
                    r.bad("run-at", f"{a.task} attempt {a.attempt} claimed at {a.now}, "
                                    f"run_at {a.run_at}")
            elif kind == "X":
                _, op, t0, cls, msg, lat = rec
                self.error(worker, op, t0, cls, msg, lat)
            elif kind in ("P", "E", "Z"):
                a = mine.get((rec[1], rec[2]))
                if a is None:
                    r.bad("error", f"{worker}: {kind} record for a task it never claimed: {rec}")
                elif kind == "Z":
                    a.last_t = max(a.last_t, rec[4])
                    self.stalls += 1
                elif kind == "P":
                    self.report(a, *rec[3:])
                else:
                    self.ending(a, *rec[3:])

    def report(self, a, op, t0, outcome, lat):
        """A task_progress or task_heartbeat call."""
        self.call("progress" if op == "progress-wb" else op, t0, lat, a.worker)
        a.last_t = max(a.last_t, t0 + lat)
        if outcome != "running":
            a.refusals.append((op, t0, outcome))
        elif op != "progress-wb":  # a write-back report may have been held: no renewal
            a.renew_until = max(a.renew_until, t0 + a.lease)

    def ending(self, a, op, t0, t1, outcome, lat):
        """A task_complete, task_complete_next or task_fail call."""
        self.call(op, t0, lat, a.worker)
        a.last_t = max(a.last_t, t1)
        if outcome not in OK_END:
            a.refusals.append((op, t0, outcome))
            return
        if outcome != "queued":
            self.finished_at.append(t1)
        if a.end is not None:
            self.r.bad("exactly-once", f"{a.task} attempt {a.attempt}: ended twice")
        a.end = (op, t0, t1, outcome)

    def replay_producer(self, records):
        for rec in records:
            if rec[0] == "B":
                self.call("batch", rec[4], rec[6], "producer")
            elif rec[0] == "X":
                self.error("producer", rec[1], rec[2], rec[3], rec[4], rec[5])

    def call(self, name, t0, lat, who):
        self.latencies[name].append(lat)
        self.calls.append((t0, t0 + lat, who, name))

    def error(self, who, op, t0, cls, msg, lat):
        if cls == "BusyError":
            self.busy_calls.append((t0, t0 + lat, who, op, msg))
        else:
            self.r.bad("error", f"{who} {op}: {cls}: {msg}")

    # --- Tasks ------------------------------------------------------------

    def check_tasks(self, tasks):
        for key, claims in self.by_key.items():
            if len(claims) > 1:
                self.r.bad("double-claim", f"{key[0]} attempt {key[1]} claimed by "
                                           f"{', '.join(c.worker for c in claims)}")
        per_task = defaultdict(list)
        for (task, _), claims in self.by_key.items():
            per_task[task].extend(claims)
        for t in tasks:
            claims = sorted(per_task.pop(t["id"], ()), key=lambda a: a.attempt)
            if t["status"] not in ("completed", "failed"):
                self.r.bad("not-terminal", f"{t['id']} ({t['type']}) is {t['status']} after "
                                           f"attempt {t['attempts']}")
            self.check_holders(t, claims)
            self.check_refusals(t, claims)
            self.check_attempts(t, claims)
            self.check_outcome(t, claims)
        for tid in sorted(per_task)[:10]:
            self.r.bad("error", f"claimed task {tid} is not in the database")

    def check_holders(self, t, claims):
        """Consecutive logged attempts: the later claim must come after the
        earlier holder ended the attempt, or after its lease ran out."""
        tid = t["id"]
        for A, B in zip(claims, claims[1:]):
            if A.attempt == B.attempt:
                continue  # reported as a duplicate
            if A.end and A.end[3] in ("completed", "failed"):
                self.r.bad("double-claim", f"{tid}: attempt {A.attempt} ({A.worker}) {A.end[3]} "
                                           f"it, and attempt {B.attempt} ({B.worker}) claimed it "
                                           f"too")
                continue
            if A.end:  # task_fail with a retry: the task was queued again
                if B.now < A.end[1]:
                    self.r.bad("double-claim", f"{tid}: attempt {B.attempt} claimed at {B.now}, "
                                               f"before attempt {A.attempt}'s task_fail at "
                                               f"{A.end[1]}")
                continue
            self.n["reclaims"] += 1
            valid_until = max(A.lease_until, A.renew_until)
            if B.now < valid_until:
                self.r.bad("double-claim", f"{tid}: attempt {B.attempt} claimed by {B.worker} at "
                                           f"{B.now} while attempt {A.attempt} ({A.worker}) held "
                                           f"a lease until {valid_until}")
                continue
            if B.now < A.last_t:
                self.n["overlaps"] += 1  # A still at work when B claimed: fenced, not double
            ends = [x for x in A.refusals if x[0] in ("complete", "fail", "next")]
            if any(x[2] == "stale" for x in ends):
                self.n["fenced_stale"] += 1
            elif not ends:
                self.n["fenced_silent"] += 1

    def check_refusals(self, t, claims):
        """Every refused call must be explained by the task's history."""
        for a in claims:
            for op, _, outcome in a.refusals:
                where = f"{t['id']}: {op} of attempt {a.attempt} refused"
                if outcome == "stale":
                    if t["attempts"] <= a.attempt:
                        self.r.bad("fence-breach", f"{where} as stale, but no later attempt exists")
                elif outcome == "not-running:failed":
                    reaped = (t["status"] == "failed" and t["attempts"] == a.attempt
                              and (t["error"] or "").startswith("lease expired"))
                    if not reaped:
                        self.r.bad("fence-breach", f"{where}: task failed, but it was not reaped "
                                                   f"on that attempt")
                elif outcome not in ("busy", "error"):  # those are reported from X records
                    self.r.bad("fence-breach", f"{where}: {outcome}")

    def check_attempts(self, t, claims):
        """The database counts every claim, and no claim nobody saw."""
        top = claims[-1].attempt if claims else 0
        if top > t["attempts"]:
            self.r.bad("attempts", f"{t['id']}: attempt {top} claimed, database says "
                                   f"{t['attempts']}")
        elif top < t["attempts"]:
            self.n["unlogged_claims"] += t["attempts"] - top
            if not self.killed:
                self.r.bad("attempts", f"{t['id']}: database says {t['attempts']} attempts, "
                                       f"workers logged {top}")

    def check_outcome(self, t, claims):
        """Completed exactly once, or failed after max_attempts, as the
        task's type says (or as an expired lease explains)."""
        tid, kind, st = t["id"], t["type"], t["status"]
        details = json.loads(t["details"]) if t["details"] else {}
        completes = [a for a in claims if a.end and a.end[3] == "completed"]
        if len(completes) > 1:
            self.r.bad("exactly-once", f"{tid}: completed by attempts "
                                       f"{[a.attempt for a in completes]}")
        if st == "completed":
            if completes:
                c = completes[-1]
                if c.attempt != t["attempts"] or c.worker != t["worker"]:
                    self.r.bad("exactly-once", f"{tid}: completed by attempt {c.attempt} "
                                               f"({c.worker}), database says attempt "
                                               f"{t['attempts']} ({t['worker']})")
            elif t["worker"] in self.killed:
                self.n["unlogged_completes"] += 1  # killed between the commit and its log line
            else:
                self.r.bad("exactly-once", f"{tid}: completed, but {t['worker']} never logged it")
            if kind == "doomed" or (kind == "flaky" and t["attempts"] <= details.get("f", 0)):
                self.r.bad("outcome", f"{tid}: a {kind} task completed on attempt {t['attempts']}")
        elif st == "failed":
            if completes:
                self.r.bad("exactly-once", f"{tid}: failed, but attempt "
                                           f"{completes[-1].attempt} completed it")
            if t["attempts"] != t["max_attempts"]:
                self.r.bad("outcome", f"{tid}: failed after {t['attempts']} of "
                                      f"{t['max_attempts']} attempts")
            err = t["error"] or ""
            if err.startswith("lease expired on attempt "):
                self.n["failed_expired"] += 1
                holder = [a for a in claims if a.attempt == t["attempts"]]
                if holder and holder[0].end:
                    self.r.bad("outcome", f"{tid}: reaped as expired, but attempt "
                                          f"{t['attempts']} ended it {holder[0].end[3]}")
            elif kind not in ("doomed", "flaky"):
                self.r.bad("outcome", f"{tid}: a {kind} task failed: {err}")

    # --- Batches ----------------------------------------------------------

    def check_batches(self, tasks, producer_records, target):
        """Each batch all or nothing; every committed one present; a batch
        killed with its transaction open absent."""
        r = self.r
        in_db = defaultdict(list)
        for t in tasks:
            d = json.loads(t["details"]) if t["details"] else {}
            if "b" not in d:
                r.bad("batch", f"{t['id']} has no batch marker")
                continue
            in_db[d["b"]].append((d.get("n"), d.get("i")))
        logged = {rec[1]: rec[2] for rec in producer_records if rec[0] == "B"}
        killed_open = {b for phase, b, _ in self.producer_kills if phase == "open"}
        killed_commit = {b for phase, b, _ in self.producer_kills if phase != "open"}
        for b, members in in_db.items():
            sizes = {n for n, _ in members}
            idx = sorted(i for _, i in members)
            if len(sizes) != 1 or idx != list(range(sizes.pop())):
                self.n["batches_partial"] += 1
                r.bad("batch", f"batch {b}: {len(members)} tasks present, indexes {idx[:5]}…")
            if b in killed_open:
                r.bad("batch", f"batch {b}: killed inside its transaction, yet {len(members)} "
                               f"of its tasks are present")
            if b not in logged and b not in killed_commit:
                r.bad("batch", f"batch {b}: present but the producer never committed it")
        for b, n in logged.items():
            if b not in in_db:
                r.bad("batch", f"batch {b}: committed ({n} tasks) but missing")
        if target is not None and len(tasks) != target:
            r.bad("batch", f"{len(tasks)} tasks in the database, {target} expected")
        self.n["batches"] = len(in_db)

    # --- Fairness and starvation -------------------------------------------

    def check_fairness(self):
        counts = list(self.per_worker.values())
        crash = self.killed or self.producer_kills
        if counts and not crash and min(counts) < 0.2 * statistics.mean(counts):
            self.r.bad("starved", f"claims per worker {dict(self.per_worker)}")
        self.calls.sort()
        self.starts = [c[0] for c in self.calls]
        for t0, t1, who, op, msg in self.busy_calls:
            self.r.bad("busy", f"{who} {op}: {msg} after {t1 - t0:.0f} ms, while the others "
                               f"finished {self.overtaken(t0, t1, who)} write calls")

    def overtaken(self, t0, t1, who):
        """Write calls the other processes started and finished while `who`
        waited from t0 to t1: many means the lock went round and round while
        this writer slept in its busy handler."""
        lo, hi = bisect.bisect_left(self.starts, t0), bisect.bisect_right(self.starts, t1)
        return sum(1 for c in self.calls[lo:hi] if c[2] != who and c[1] <= t1)

    # --- Figures ------------------------------------------------------------

    def summarise(self, tasks):
        status = Counter(t["status"] for t in tasks)
        counts = list(self.per_worker.values())
        longest = max(self.calls, key=lambda c: c[1] - c[0], default=None)
        first_waits = {"high": [], "normal": []}
        for (_, attempt), claims in self.by_key.items():
            for a in claims:
                if attempt == 1:
                    first_waits["high" if a.priority > 0 else "normal"].append(
                        a.now - max(a.run_at, a.created_at))
        # Throughput while the queue was busy: the middle 80% of the tasks
        # the workers finished, over the time that took (no start-up, no
        # tail of retry backoffs).
        done = sorted(self.finished_at)
        steady = 0.0
        if len(done) >= 10:
            lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
            if hi > lo:
                steady = (len(done) * 8 // 10) / ((hi - lo) / 1000)
        n = self.n
        self.r.figures = {
            "tasks": len(tasks),
            "completed": status["completed"],
            "failed": status["failed"],
            "failed_expired": n["failed_expired"],
            "non_terminal": len(tasks) - status["completed"] - status["failed"],
            "steady_rate": steady,
            "claims": sum(len(v) for v in self.by_key.values()),
            "reclaims": n["reclaims"],
            "overlaps_fenced": n["overlaps"],
            "fenced_stale": n["fenced_stale"],
            "fenced_silent": n["fenced_silent"],
            "stalls": self.stalls,
            "double_claims": len(self.r.violations.get("double-claim", ())),
            "fence_breaches": len(self.r.violations.get("fence-breach", ())),
            "busy": len(self.busy_calls),
            "unlogged_claims": n["unlogged_claims"],
            "unlogged_completes": n["unlogged_completes"],
            "batches": n["batches"],
            "batches_partial": n["batches_partial"],
            "per_worker": dict(self.per_worker),
            "per_worker_min": min(counts, default=0),
            "per_worker_max": max(counts, default=0),
            "per_worker_mean": statistics.mean(counts) if counts else 0,
            "latency": {k: lat_figures(v) for k, v in self.latencies.items()},
            "slow_calls": sum(1 for v in self.latencies.values() for x in v if x > 1000),
            "longest_call": (longest[1] - longest[0], longest[2], CALL_NAMES.get(
                longest[3], "task_" + longest[3]), self.overtaken(*longest[:3]))
            if longest else None,
            "wait_first_claim_ms": {k: pct(v, 0.5) for k, v in first_waits.items()},
        }


# --- Self-test: the checker must catch what it claims to catch. -------------

def _synthetic():
    """A small clean history: t1 completed at once, t2 failed and retried,
    t3 stalled, was fenced off and completed by the next attempt, t4 reaped."""
    L = 300
    ids = [f"0000000{i}-0000-7000-8000-000000000000" for i in range(1, 5)]
    t1, t2, t3, t4 = ids

    def claim(tid, att, now, kind, maxa=3, b=1, run_at=0, prio=0):
        return ["C", tid, att, now, now + L, run_at, prio, 0, "plain", 1.0, kind, maxa, b]

    w1 = [
        claim(t1, 1, 1000, "ok"), ["E", t1, 1, "complete", 1001, 1002, "completed", 1.0],
        claim(t3, 1, 1010, "stall"), ["Z", t3, 1, 1010, 1500],
        ["E", t3, 1, "complete", 1500, 1501, "stale", 1.0],
        claim(t4, 1, 1600, "reap", maxa=1), ["Z", t4, 1, 1600, 2000],
        ["E", t4, 1, "complete", 2000, 2001, "not-running:failed", 1.0],
    ]
    w2 = [
        claim(t2, 1, 1000, "flaky"), ["E", t2, 1, "fail", 1001, 1002, "queued", 1.0],
        claim(t3, 2, 1400, "stall"), ["P", t3, 2, "progress", 1401, "running", 1.0],
        ["E", t3, 2, "complete", 1402, 1403, "completed", 1.0],
        claim(t2, 2, 2500, "flaky"), ["E", t2, 2, "complete", 2501, 2502, "completed", 1.0],
    ]
    prod = [["B", 1, 4, "fn", 0, 1, 1.0]]

    def row(tid, kind, status, attempts, maxa, worker, error=None, f=None, i=0):
        d = {"b": 1, "n": 4, "i": i}
        if f:
            d["f"] = f
        return {"id": tid, "type": kind, "status": status, "attempts": attempts,
                "max_attempts": maxa, "worker": worker, "error": error,
                "details": json.dumps(d)}

    tasks = [
        row(t1, "ok", "completed", 1, 3, "w1", i=0),
        row(t2, "flaky", "completed", 2, 3, "w2", "planned failure 1", f=1, i=1),
        row(t3, "stall", "completed", 2, 3, "w2", "lease expired on attempt 1 (worker w1)", i=2),
        row(t4, "reap", "failed", 1, 1, "w1", "lease expired on attempt 1 (worker w1)", i=3),
    ]
    return {"w1": w1, "w2": w2}, prod, tasks


def selftest():
    """Runs the checker on a clean synthetic history (no violation allowed)
    and on one corrupted copy per rule (that rule must fire). Returns the
    number of corruptions tried and the list of failures (empty: the
    checker works)."""
    import copy
    failures = []
    logs, prod, tasks = _synthetic()
    clean = analyse(logs, prod, tasks, target=4)
    if not clean.ok:
        failures.append("clean history flagged: " + "; ".join(clean.violation_lines()))

    def mutate(expect, fn, **kw):
        lg, pr, ts = copy.deepcopy((logs, prod, tasks))
        fn(lg, pr, ts)
        rep = analyse(lg, pr, ts, target=kw.get("target", 4), **{k: v for k, v in kw.items()
                                                                 if k != "target"})
        if expect not in rep.violations:
            failures.append(f"{expect} not detected ({fn.__doc__})")

    def dup(lg, pr, ts):
        """the same attempt claimed by two workers"""
        lg["w2"].append(list(lg["w1"][0]))

    def early(lg, pr, ts):
        """attempt 2 claimed while attempt 1's lease was valid"""
        lg["w2"][2][3] = 1200
        lg["w2"][2][4] = 1500

    def renewed(lg, pr, ts):
        """attempt 2 claimed although attempt 1 had renewed its lease"""
        lg["w1"].insert(3, ["P", lg["w1"][2][1], 1, "heartbeat", 1250, "running", 1.0])

    def after_done(lg, pr, ts):
        """a task claimed again after it completed"""
        lg["w2"].append(["C", ts[0]["id"], 2, 5000, 5300, 0, 0, 0, "plain", 1.0, "ok", 3, 1])

    def false_stale(lg, pr, ts):
        """a stale refusal with no later attempt"""
        lg["w1"].append(["E", ts[0]["id"], 1, "fail", 1003, 1004, "stale", 1.0])

    def stuck(lg, pr, ts):
        """a task left running"""
        ts[3]["status"] = "running"

    def twice(lg, pr, ts):
        """a stalled worker's completion accepted although the task was claimed again"""
        lg["w1"][4][6] = "completed"

    def partial(lg, pr, ts):
        """a batch with a task missing"""
        del ts[3]

    def busy(lg, pr, ts):
        """SQLITE_BUSY reaching a worker"""
        lg["w1"].append(["X", "plain", 3000, "BusyError", "database is locked", 5000.0])

    def too_early(lg, pr, ts):
        """a claim before run_at"""
        lg["w1"][0][5] = 1500

    def doomed_done(lg, pr, ts):
        """a flaky task completed on an attempt that must fail"""
        ts[1]["attempts"] = 1
        lg["w2"][1][6] = "completed"
        del lg["w2"][5:7]

    def ghost(lg, pr, ts):
        """a claim the database does not count"""
        ts[0]["attempts"] = 2

    def bad_integrity(lg, pr, ts):
        """task_check() not ok"""

    cases = (
        ("double-claim", dup, {}), ("double-claim", early, {}), ("double-claim", renewed, {}),
        ("double-claim", after_done, {}), ("fence-breach", false_stale, {}),
        ("not-terminal", stuck, {}), ("double-claim", twice, {}), ("batch", partial, {"target": 3}),
        ("busy", busy, {}), ("run-at", too_early, {}), ("outcome", doomed_done, {}),
        ("attempts", ghost, {}), ("integrity", bad_integrity, {"task_check": "1 problem"}),
    )
    for expect, fn, kw in cases:
        mutate(expect, fn, **kw)
    return len(cases), failures


if __name__ == "__main__":
    n, problems = selftest()
    print("\n".join(problems) or f"checker self-test: ok ({n} injected violations detected)")
    raise SystemExit(1 if problems else 0)
