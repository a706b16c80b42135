"""The verdict on a stress run: reads the workers' and the producer's logs and
the final database, and returns the figures and every violation found.

What counts as a violation (each has a category name in the summary):

  not-terminal     a task still queued, running, blocked or waiting, or cancelled
                   with no cascade to explain it (only workflows cancel: a failed
                   dependency or parent, named in the error)
  double-claim     the same attempt claimed twice, or attempt B claimed while
                   the holder of an earlier attempt A still had a valid lease
                   (B's claim time, the extension's clock, before A's lease end:
                   its claim's lease_until or its last accepted report + 3/4 of
                   the lease)
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
  rate             more claims of a rate-limited queue (S.RATES) in some window
                   of its interval than its limit: claims at a0 <= ... <= an with
                   an - a0 < interval and n + 1 > limit, by the claims' clock (the
                   event log's at, which is the claim's now; the workers' logged
                   claim_now when the log is not read); a claim counts at its
                   clock whichever process made it
  busy             SQLITE_BUSY (apsw.BusyError) reached a caller
  error            any other unexpected error from a call
  starved          a worker that got less than a fifth of the mean share (runs
                   without kills)
  integrity        PRAGMA integrity_check or task_check() not 'ok'
  events           the event log disagrees with the committed transitions: seq not
                   dense, a task whose events do not start with its enqueue, whose
                   last event's status is not its status, whose claims are not
                   attempts 1 … attempts once each, a logged claim or completion
                   with no event (or another worker's), an event that does not
                   follow from the one before (a claim of a task not queued, a
                   completion of one not running, …), an event of no task
  dependency       a dependent claimed before a dependency completed: its claim
                   ended (claim_now + its call's ms) before the dependency's
                   completed_at (the clock of the call that completed it, which
                   precedes that commit), or, for a claim inside BEGIN IMMEDIATE,
                   the dependencies' statuses read in the claim's transaction are
                   not all completed; a dependent run although a dependency never
                   completed; one cancelled for a dependency that did not fail
  family           a parent whose counters (children, children_done) disagree
                   with its children, a child enqueued twice, a completed family
                   missing children; a parent completed with a child unfinished
                   (or failed, when it does not tolerate failures), failed for a
                   child that did not fail or is not its own, or failed by a child
                   though it tolerates failures; a child cancelled for a parent
                   that did not fail. And from the children's end records, each
                   of which read its ancestors' statuses in its own transaction:
                   a parent completes in exactly one transaction, so at most one
                   record sees it newly completed (none when its own
                   task_complete said 'completed'), exactly one when its own said
                   'waiting' and every descendant's end was logged; no record
                   sees a parent completed that did not complete
  unique           two tasks of one queue and key held it at the same time: the
                   later one created (its batch committed: the producer's B t1)
                   before the earlier one let it go (its completed_at, for
                   unique_scope active; never, for 'completed'), or both unfinished
                   at the end; an enqueue that returned a task not holding its
                   key; two unfinished holders seen by the runner's live poll

Times: `claim_now` is exact (the extension's clock at the claim); other call
times are read just before the call, a lower bound of the extension's clock
for it. An accepted report at t0 renews the lease only once a quarter of it
has passed since the last renewal, so it leaves a lease until at least
t0 + lease - lease / 4 (`kept_lease`); and a violation reported here is
certain, never an artefact of clock reading.
"""

import bisect
import json
import math
import re
import statistics
from collections import Counter, defaultdict

import shared as S

OK_END = ("completed", "queued", "failed", "waiting")
FINISHED = ("completed", "failed", "cancelled")
CASCADE = re.compile(r"^(dependency|parent) task (\S+) (failed|was cancelled)$")
CHILD_FAILED = re.compile(r"^child task (\S+) (failed|was cancelled)$")
ENDED = {"failed": "failed", "was cancelled": "cancelled"}
MARGIN_MS = 2  # clock floors and the µs between reading t0 and starting a call
CALL_NAMES = {"next": "task_complete_next", "progress-wb": "task_progress",
              "batch": "an enqueue batch"}



def kept_lease(lease):
    """What an accepted progress report or heartbeat guarantees of the lease,
    in ms from the report: it renews the lease once a quarter of it has
    passed, so at least three quarters remain (the extension's integer
    arithmetic: lease - lease / 4)."""
    return lease - lease // 4

class Attempt:
    """One claim of one task by one worker, and what its worker did with it."""

    __slots__ = ("task", "attempt", "worker", "now", "lease_until", "run_at", "priority",
                 "created_at", "method", "lat", "type", "max_attempts", "batch", "seen",
                 "renew_until", "last_t", "end", "refusals", "ancestors", "made")

    def __init__(self, worker, rec):
        (_, self.task, self.attempt, self.now, self.lease_until, self.run_at, self.priority,
         self.created_at, self.method, self.lat, self.type, self.max_attempts,
         self.batch) = rec[:13]
        self.seen = rec[13] if len(rec) > 13 else None  # dependency statuses at the claim
        self.worker = worker
        self.renew_until = self.lease_until
        self.last_t = self.now
        self.end = None        # (op, t0, t1, outcome) of the accepted ending call
        self.refusals = []     # outcomes of refused calls
        self.ancestors = None  # [[id, status]] read in the accepted end's transaction
        self.made = []         # children it enqueued (indexes)

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


TASK_DEFAULTS = {"queue": "default", "parent_id": None, "depends_on": None, "unique_key": None,
                 "children": 0, "children_done": 0, "flags": 0, "completed_at": None,
                 "progress": 0}


def analyse(worker_logs, producer_records, tasks, *, killed=(), producer_kills=(),
            target=None, integrity="ok", task_check="ok", unique_snapshots=(), events=None,
            resumed_at=None):
    """The verdict on one run. worker_logs: {worker: [record]};
    producer_records: [record] of every producer life; tasks: [dict] rows of
    task_store (id, type, status, attempts, max_attempts, worker, error,
    details, and for workflows queue, parent_id, depends_on (a JSON array or
    None, the tasks table's column), unique_key, children, children_done,
    flags, completed_at, progress); killed: names of the workers
    that were SIGKILLed; producer_kills: [(phase, batch, enqueued in it)];
    unique_snapshots: what the runner's live poll found (two unfinished
    holders of one key); events: [(seq, task_id, kind, status, attempt,
    worker, at)] of the whole event log, or None to leave it unchecked;
    resumed_at: when the runner resumed the paused queue (S.PAUSED), ms of
    the claims' clock, taken before the call (None: never resumed)."""
    tasks = [dict(TASK_DEFAULTS, **t) for t in tasks]
    a = Analysis(set(killed), list(producer_kills))
    for worker, records in worker_logs.items():
        a.replay_worker(worker, records)
    a.replay_producer(producer_records)
    a.check_tasks(tasks)
    a.check_workflows(tasks, producer_records, unique_snapshots)
    a.check_batches(tasks, producer_records, target)
    a.check_limits(tasks)
    a.check_paused(tasks, resumed_at)
    a.check_rates(tasks, events)
    if events is not None:
        a.check_events(tasks, events)
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
        self.limit_figures = {}             # queue -> (most surely running, limit, attempts)
        self.rate_figures = {}              # queue -> (most claims in a window, limit, claims)

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
            elif kind in ("P", "E", "Z", "K"):
                a = mine.get((rec[1], rec[2]))
                if a is None:
                    r.bad("error", f"{worker}: {kind} record for a task it never claimed: {rec}")
                elif kind == "Z":
                    a.last_t = max(a.last_t, rec[4])
                    self.stalls += 1
                elif kind == "P":
                    self.report(a, *rec[3:])
                elif kind == "K":
                    self.children(a, *rec[3:])
                else:
                    self.ending(a, *rec[3:])

    def report(self, a, op, t0, outcome, lat):
        """A task_progress or task_heartbeat call."""
        self.call("progress" if op == "progress-wb" else op, t0, lat, a.worker)
        a.last_t = max(a.last_t, t0 + lat)
        if outcome != "running":
            a.refusals.append((op, t0, outcome))
        elif op != "progress-wb":  # a write-back report may have been held: no renewal
            a.renew_until = max(a.renew_until, t0 + kept_lease(a.lease))

    def children(self, a, t0, t1, outcome, made, lat):
        """A family's children enqueued, in a transaction that began with a
        heartbeat fenced by the attempt."""
        self.call("children", t0, lat, a.worker)
        a.last_t = max(a.last_t, t1)
        if outcome != "running":
            a.refusals.append(("children", t0, outcome))
        else:
            a.renew_until = max(a.renew_until, t0 + kept_lease(a.lease))
            a.made.extend(made)

    def ending(self, a, op, t0, t1, outcome, lat, ancestors=None):
        """A task_complete, task_complete_next or task_fail call."""
        self.call(op, t0, lat, a.worker)
        a.last_t = max(a.last_t, t1)
        if outcome not in OK_END:
            a.refusals.append((op, t0, outcome))
            return
        if outcome not in ("queued", "waiting"):
            self.finished_at.append(t1)
        if a.end is not None:
            self.r.bad("exactly-once", f"{a.task} attempt {a.attempt}: ended twice")
        a.end = (op, t0, t1, outcome)
        a.ancestors = ancestors

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
        self.by_id = {t["id"]: t for t in tasks}
        self.claims_of = {}
        for t in tasks:
            claims = sorted(per_task.pop(t["id"], ()), key=lambda a: a.attempt)
            self.claims_of[t["id"]] = claims
            if t["status"] == "cancelled":
                self.check_cancelled(t)
            elif t["status"] not in ("completed", "failed"):
                self.r.bad("not-terminal", f"{t['id']} ({t['type']}) is {t['status']} after "
                                           f"attempt {t['attempts']}")
            self.check_holders(t, claims)
            self.check_refusals(t, claims)
            self.check_attempts(t, claims)
            self.check_outcome(t, claims)
        for tid in sorted(per_task)[:10]:
            self.r.bad("error", f"claimed task {tid} is not in the database")

    # --- The event log --------------------------------------------------

    # The status a task must have before an event of each kind (None: any
    # unfinished one).
    EVENT_FROM = {"claimed": ("queued",), "progress": ("running",), "waiting": ("running",),
                  "completed": ("running", "waiting"), "expired": ("running",),
                  "released": ("blocked",), "failed": None, "cancelled": None,
                  "updated": ("queued", "blocked"), "retried": ("failed", "cancelled")}

    def check_events(self, tasks, events):
        """Every committed transition has exactly one event, and every event
        is a committed transition (as far as the logs and the final rows
        tell)."""
        bad = lambda msg: self.r.bad("events", msg)  # noqa: E731
        if [e[0] for e in events] != list(range(1, len(events) + 1)):
            bad(f"seq is not 1 … {len(events)} without gaps")
        of = defaultdict(list)
        for e in events:
            of[e[1]].append(e)
        for tid in sorted(set(of) - {t["id"] for t in tasks})[:10]:
            bad(f"events of {tid}, which is not in the database")
        self.n["events"] = len(events)
        for t in tasks:
            mine = of.get(t["id"], [])
            if not mine or mine[0][2] != "enqueued" or sum(e[2] == "enqueued" for e in mine) != 1:
                bad(f"{t['id']}: its events do not begin with its one enqueue: "
                    f"{[e[2] for e in mine[:3]]}")
                continue
            if mine[-1][3] != t["status"]:
                bad(f"{t['id']} is {t['status']}, its last event says {mine[-1][3]}")
            claims = [e[4] for e in mine if e[2] == "claimed"]
            if claims != list(range(1, t["attempts"] + 1)):
                bad(f"{t['id']}: claimed events of attempts {claims}, {t['attempts']} attempts")
            status = None
            for e in mine:
                allowed = self.EVENT_FROM.get(e[2], ())
                if status is not None and (
                        (allowed is None and status in ("completed", "failed", "cancelled"))
                        or (allowed is not None and status not in allowed)):
                    bad(f"{t['id']}: {e[2]} (seq {e[0]}) of a task that was {status}")
                    break
                status = e[3]
            by_attempt = {e[4]: e for e in mine if e[2] == "claimed"}
            for a in self.claims_of.get(t["id"], ()):
                e = by_attempt.get(a.attempt)
                if e is None or e[5] != a.worker:
                    bad(f"{t['id']} attempt {a.attempt}: claimed by {a.worker}, event {e}")
                if a.end and a.end[3] == "completed" and not any(
                        x[2] in ("completed", "waiting") and x[4] == a.attempt for x in mine):
                    bad(f"{t['id']} attempt {a.attempt}: completed, no event")

    def check_holders(self, t, claims):
        """Consecutive logged attempts: the later claim must come after the
        earlier holder ended the attempt, or after its lease ran out."""
        tid = t["id"]
        for A, B in zip(claims, claims[1:]):
            if A.attempt == B.attempt:
                continue  # reported as a duplicate
            if A.end and A.end[3] in ("completed", "failed", "waiting"):
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
                    # Reaped, or failed with a child while its worker still
                    # worked on it: either on this very attempt.
                    err = t["error"] or ""
                    failed = (t["status"] == "failed" and t["attempts"] == a.attempt
                              and (err.startswith("lease expired") or CHILD_FAILED.match(err)))
                    if not failed:
                        self.r.bad("fence-breach", f"{where}: task failed, but it was not reaped "
                                                   f"nor failed by a child on that attempt")
                elif outcome in ("not-running:cancelled", "cancelled"):
                    # Cancelled by a workflow (check_cancelled says whether
                    # rightly) while this attempt held it.
                    if t["status"] != "cancelled" or t["attempts"] != a.attempt:
                        self.r.bad("fence-breach", f"{where}: task cancelled, but it is "
                                                   f"{t['status']} on attempt {t['attempts']}")
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
        err = t["error"] or ""
        # A parent's own work is done when its task_complete says 'waiting';
        # it completes later, with its last child.
        completes = [a for a in claims if a.end and a.end[3] in ("completed", "waiting")]
        if len(completes) > 1:
            self.r.bad("exactly-once", f"{tid}: completed by attempts "
                                       f"{[a.attempt for a in completes]}")
        for a in completes:
            if a.end[3] == "waiting" and not t["children"]:
                self.r.bad("outcome", f"{tid}: task_complete said 'waiting', but it has no "
                                      f"children")
        completes_own = [a for a in completes if a.end[3] == "completed"]
        if st == "cancelled":
            if completes_own:
                self.r.bad("exactly-once", f"{tid}: cancelled, but attempt "
                                           f"{completes_own[-1].attempt} completed it")
            return
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
            if completes_own:
                self.r.bad("exactly-once", f"{tid}: failed, but attempt "
                                           f"{completes_own[-1].attempt} completed it")
            if CHILD_FAILED.match(err):
                return  # a parent failed with a child: check_families
            if t["attempts"] != t["max_attempts"]:
                self.r.bad("outcome", f"{tid}: failed after {t['attempts']} of "
                                      f"{t['max_attempts']} attempts")
            if err.startswith("lease expired on attempt "):
                self.n["failed_expired"] += 1
                holder = [a for a in claims if a.attempt == t["attempts"]]
                if holder and holder[0].end:
                    self.r.bad("outcome", f"{tid}: reaped as expired, but attempt "
                                          f"{t['attempts']} ended it {holder[0].end[3]}")
            elif kind not in ("doomed", "flaky"):
                self.r.bad("outcome", f"{tid}: a {kind} task failed: {err}")

    # --- Workflows ----------------------------------------------------------

    def check_cancelled(self, t):
        """Only a workflow cancels here: a dependency or the parent that
        failed (or was cancelled), named in the error."""
        m = CASCADE.match(t["error"] or "")
        if not m:
            self.r.bad("not-terminal", f"{t['id']} ({t['type']}) is cancelled: "
                                       f"{t['error'] or 'no error'}")
            return
        link, other, verb = m.groups()
        o = self.by_id.get(other)
        if link == "dependency":
            related = other in json.loads(t["depends_on"] or "[]")
            if not related or o is None or o["status"] != ENDED[verb]:
                self.r.bad("dependency", f"{t['id']} cancelled as '{t['error']}', but that task "
                                         f"is {o['status'] if o else 'missing'}"
                                         f"{'' if related else ' and not a dependency of it'}")
            elif t["attempts"]:
                self.r.bad("dependency", f"{t['id']} was claimed ({t['attempts']} attempts), "
                                         f"yet cancelled while blocked by {other}")
        elif t["parent_id"] != other or o is None or o["status"] != ENDED[verb]:
            self.r.bad("family", f"{t['id']} cancelled as '{t['error']}', but its parent is "
                                 f"{t['parent_id']} ({o['status'] if o else 'missing'})")

    def check_workflows(self, tasks, producer_records, unique_snapshots):
        kids = defaultdict(list)
        for t in tasks:
            if t["parent_id"] is not None:
                kids[t["parent_id"]].append(t)
        self.kids = kids
        # Each accepted end of a child read its ancestors' statuses in its own
        # transaction: parent id -> [(task, attempt, status seen)].
        self.sightings = defaultdict(list)
        for claims in self.claims_of.values():
            for a in claims:
                for aid, status in a.ancestors or ():
                    self.sightings[aid].append((a.task, a.attempt, status))
        for t in tasks:
            if t["depends_on"]:
                self.check_dependent(t)
            if kids.get(t["id"]) or t["children"] or t["type"] == "family":
                self.check_family(t)
        self.check_unique(tasks, producer_records, unique_snapshots)

    def check_dependent(self, t):
        tid = t["id"]
        deps = json.loads(t["depends_on"])
        self.n["dependents"] += 1
        self.n["dependents_cancelled"] += t["status"] == "cancelled"
        for a in self.claims_of[tid]:
            self.n["dependent_claims_seen"] += a.seen is not None
            if a.seen is not None and any(s != "completed" for s in a.seen):
                self.r.bad("dependency", f"{tid}: attempt {a.attempt} claimed in a transaction "
                                         f"that read its dependencies as {a.seen}")
            end = a.now + a.lat + MARGIN_MS  # the claim had committed by then
            for dep in deps:
                d = self.by_id.get(dep)
                if d is None or d["status"] != "completed":
                    self.r.bad("dependency", f"{tid}: attempt {a.attempt} claimed, but its "
                                             f"dependency {dep} is "
                                             f"{d['status'] if d else 'missing'}")
                elif end < d["completed_at"]:
                    self.r.bad("dependency", f"{tid}: attempt {a.attempt} claimed by {a.worker} "
                                             f"by {end:.0f}, its dependency {dep} completed at "
                                             f"{d['completed_at']}")
        if t["status"] == "completed":
            undone = [dep for dep in deps if self.by_id.get(dep, {}).get("status") != "completed"]
            if undone:
                self.r.bad("dependency", f"{tid}: completed, its dependencies {undone} not")

    def final_end_logged(self, t):
        """Whether every call that finished t or a descendant of t is in the
        logs: t's own task_complete (which may have said 'waiting': then a
        descendant's call completed it) or task_fail, not a reaping claim. A
        task failed by a child, or cancelled, needs none of its own: a
        descendant's call finished it, or one outside t's tree."""
        own = {"completed": ("completed", "waiting"), "failed": ("failed",)}.get(t["status"])
        if own and not (t["status"] == "failed" and CHILD_FAILED.match(t["error"] or "")):
            if not any(a.attempt == t["attempts"] and a.end and a.end[3] in own
                       for a in self.claims_of[t["id"]]):
                return False
        return all(self.final_end_logged(k) for k in self.kids.get(t["id"], ()))

    def check_family(self, p):
        pid, st = p["id"], p["status"]
        mine = self.kids.get(pid, [])
        tolerant = bool(p["flags"] & 2)
        bad = lambda msg: self.r.bad("family", f"parent {pid} ({st}): {msg}")  # noqa: E731
        self.n["families"] += 1
        self.n["families_" + st] += 1
        self.n["children"] += len(mine)
        done = [k for k in mine if k["status"] in FINISHED]
        if (p["children"], p["children_done"]) != (len(mine), len(done)):
            bad(f"children {p['children']}, children_done {p['children_done']}; its children "
                f"say {len(mine)} and {len(done)}")
        index = Counter(json.loads(k["details"]).get("c") for k in mine)
        twice = sorted(c for c, n in index.items() if n > 1)
        if twice:
            bad(f"children {twice} enqueued twice")
        if st == "completed":
            plan = len(json.loads(p["details"]).get("kids") or ()) if p["type"] == "family" else 0
            if plan and sorted(index) != list(range(plan)):
                bad(f"completed with children {sorted(index)} of the {plan} planned")
            if len(done) != len(mine):
                bad(f"completed with {len(mine) - len(done)} children unfinished")
            failed = [k["id"] for k in mine if k["status"] != "completed"]
            if failed and not tolerant:
                bad(f"completed, but children {failed[:3]} did not, and it does not tolerate "
                    f"failures")
            if p["progress"] != 100:
                bad(f"completed with progress {p['progress']}")
        m = CHILD_FAILED.match(p["error"] or "")
        if st == "failed" and m:
            child = self.by_id.get(m.group(1))
            if tolerant:
                bad(f"'{p['error']}', but it tolerates failures (on_child_failure continue)")
            elif child is None or child["parent_id"] != pid or \
                    child["status"] != ENDED[m.group(2)]:
                what = f"{child['status']}, child of {child['parent_id']}" if child else "missing"
                bad(f"'{p['error']}', but that task is {what}")
        # The transaction that completed (or failed) the parent, as the
        # children's end records saw it.
        seen = Counter(status for _, _, status in self.sightings.get(pid, ()))
        own = [a.end[3] for a in self.claims_of[pid] if a.end and
               a.end[3] in ("completed", "waiting")]
        if st != "completed" and seen["completed"]:
            bad(f"{seen['completed']} descendants' transactions saw it completed")
        elif st == "completed":
            if "completed" in own and seen["completed"]:
                bad("its own task_complete completed it, yet a descendant ended after that")
            elif seen["completed"] > 1:
                bad(f"{seen['completed']} descendants' transactions saw it completed: it "
                    f"completed before the last of them ended")
            elif own == ["waiting"] and all(self.final_end_logged(k) for k in mine):
                self.n["families_pinned"] += 1
                if not seen["completed"]:
                    bad("completed in none of its descendants' transactions, and not by its own "
                        "task_complete")
        if seen["failed"] > 1:
            bad(f"{seen['failed']} descendants' transactions saw it failed")

    def check_unique(self, tasks, producer_records, unique_snapshots):
        """At most one task of a queue holds a key at a time (docs: while it is
        queued, running, blocked or waiting; with unique_scope 'completed',
        also once completed)."""
        committed = {rec[1]: rec[5] for rec in producer_records if rec[0] == "B"}
        by_key = defaultdict(list)
        for t in tasks:
            if t["unique_key"] is not None:
                by_key[(t["queue"], t["unique_key"])].append(t)
        for (queue, key), holders in by_key.items():
            where = f"key '{key}' of queue '{queue}'"
            for i, a in enumerate(holders):
                done = a["status"] in ("failed", "cancelled") or (
                    a["status"] == "completed" and not a["flags"] & 4)
                released = a["completed_at"] if done else math.inf
                for b in holders[i + 1:]:
                    batch = json.loads(b["details"]).get("b")
                    created = committed.get(batch, math.inf)  # by then, b existed
                    if created < released:
                        self.r.bad("unique", f"{where}: {b['id']} existed by {created}, while "
                                             f"{a['id']} held the key until "
                                             f"{'the end' if released == math.inf else released}"
                                             f" ({a['status']})")
                    elif released == math.inf and (b["status"] not in FINISHED or (
                            b["status"] == "completed" and b["flags"] & 4)):
                        self.r.bad("unique", f"{where}: held by {a['id']} and {b['id']} at the "
                                             f"end")
        self.n["unique_tasks"] = sum(len(h) for h in by_key.values())
        for rec in producer_records:
            if rec[0] != "U":
                continue
            _, b, queue, key, _scope, _conflict, tid = rec
            self.n["unique_enqueues"] += 1
            t = self.by_id.get(tid)
            if t is None or (t["queue"], t["unique_key"]) != (queue, key):
                self.r.bad("unique", f"batch {b}: enqueueing key '{key}' of queue '{queue}' "
                                     f"returned {tid}, which does not hold it")
        for line in unique_snapshots:
            self.r.bad("unique", f"seen while the run went on: {line}")

    # --- Batches ----------------------------------------------------------

    def check_limits(self, tasks, limits=None):
        """No queue with a concurrency limit (S.LIMITS) ever had more of its
        tasks surely running at once than its limit. An attempt is surely
        running from its claim's commit (at the latest claim_now + the call's
        latency, plus 1 ms for the clock's rounding) until its accepted
        ending call began (its t0: the end committed after it). Attempts
        without an accepted end (killed, fenced off) are left out, so
        a violation reported here is certain."""
        for queue, limit in (S.LIMITS if limits is None else limits).items():
            events = []
            for t in tasks:
                if t["queue"] != queue:
                    continue
                for a in self.claims_of.get(t["id"], ()):
                    if a.end is None:
                        continue
                    start, end = a.now + a.lat + 1, a.end[1]
                    if end > start:
                        events += [(start, 1, a), (end, -1, a)]
            events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same time
            running, most, over = set(), 0, None
            for at, step, a in events:
                if step > 0:
                    running.add(a)
                else:
                    running.discard(a)
                most = max(most, len(running))
                if len(running) > limit and over is None:
                    over = (at, sorted(f"{x.task} ({x.worker})" for x in running))
            self.limit_figures[queue] = (most, limit, len(events) // 2)
            if over:
                self.r.bad("concurrency", f"queue {queue!r} (limit {limit}): {len(over[1])} tasks "
                                          f"surely running at {over[0]:.0f}: {', '.join(over[1])}")

    def check_paused(self, tasks, resumed_at, queue=S.PAUSED):
        """No task of the paused queue was claimed before the resume: no
        claim's call returned (claim_now + its call's ms) before the time
        taken just before the resume's call (less 1 ms for the clock's
        rounding). claim_now itself may be earlier: the call reads its
        clock before it waits for the write lock, and a claim that waited
        while the resume committed carries that earlier time."""
        early = []
        for t in tasks:
            if t["queue"] != queue:
                continue
            for a in self.claims_of.get(t["id"], ()):
                if resumed_at is None or a.now + a.lat < resumed_at - 1:
                    early.append(f"{a.task} attempt {a.attempt} ({a.worker}) at {a.now}")
        if early:
            when = "it was never resumed" if resumed_at is None else f"its resume at {resumed_at}"
            self.r.bad("pause", f"queue {queue!r} claimed before {when}: {', '.join(early[:5])}")

    def check_rates(self, tasks, events, rates=None):
        """No rate-limited queue had more claims than its limit in any window
        of its interval: (t - interval, t] for every claim time t, the window
        the extension counts. The claim times are the event log's (every
        committed claim, killed workers' too, at the claim's own clock), or
        without the log the workers' logged claim_now (a lower bound of the
        claims made)."""
        for queue, rate in (S.RATES if rates is None else rates).items():
            limit, interval = rate["limit"], rate["interval"]
            mine = {t["id"] for t in tasks if t["queue"] == queue}
            if events is not None:
                times = sorted(e[6] for e in events if e[2] == "claimed" and e[1] in mine)
            else:
                times = sorted(a.now for tid in mine for a in self.claims_of.get(tid, ()))
            most, over, first = 0, None, 0
            for last, at in enumerate(times):
                while times[first] <= at - interval:
                    first += 1
                n = last - first + 1
                most = max(most, n)
                if n > limit and over is None:
                    over = (times[first], at, n)
            self.rate_figures[queue] = (most, limit, len(times))
            if over:
                self.r.bad("rate", f"queue {queue!r} (limit {limit} per {interval} ms): {over[2]} "
                                   f"claims from {over[0]} to {over[1]}")

    def check_batches(self, tasks, producer_records, target):
        """Each batch all or nothing; every committed one present; a batch
        killed with its transaction open absent."""
        r = self.r
        in_db = defaultdict(list)
        logged = {rec[1]: rec[2] for rec in producer_records if rec[0] == "B"}
        killed_open = {b for phase, b, _ in self.producer_kills if phase == "open"}
        killed_commit = {b for phase, b, _ in self.producer_kills if phase != "open"}
        n_members = 0
        for t in tasks:
            d = json.loads(t["details"]) if t["details"] else {}
            if t["parent_id"] is not None and "c" in d:
                continue  # a child: its parent's worker made it
            if t["unique_key"] is not None and "u" in d:
                # Not counted in its batch (the enqueue may have created
                # nothing), but committed with it, as the last batch that
                # replaced its details was.
                if d["b"] in killed_open or (d["b"] not in logged and d["b"] not in killed_commit):
                    r.bad("batch", f"unique task {t['id']} of batch {d['b']}, which never "
                                   f"committed")
                continue
            if "b" not in d or "i" not in d:
                r.bad("batch", f"{t['id']} has no batch marker")
                continue
            n_members += 1
            in_db[d["b"]].append((d.get("n"), d.get("i")))
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
        if target is not None and n_members != target:
            r.bad("batch", f"{n_members} batch tasks in the database, {target} expected")
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
            "limits": dict(self.limit_figures),
            "rates": dict(self.rate_figures),
            "tasks": len(tasks),
            "completed": status["completed"],
            "failed": status["failed"],
            "cancelled": status["cancelled"],
            "failed_expired": n["failed_expired"],
            "non_terminal": len(tasks) - sum(status[s] for s in FINISHED),
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
            "families": n["families"],
            "families_completed": n["families_completed"],
            "families_failed": n["families_failed"],
            "children": n["children"],
            "dependents": n["dependents"],
            "dependents_cancelled": n["dependents_cancelled"],
            "dependent_claims_seen": n["dependent_claims_seen"],
            "families_pinned": n["families_pinned"],
            "unique_enqueues": n["unique_enqueues"],
            "unique_tasks": n["unique_tasks"],
            "workflow_violations": {c: len(self.r.violations.get(c, ()))
                                    for c in ("dependency", "family", "unique")},
        }


# --- Self-test: the checker must catch what it claims to catch. -------------

# The workflow tasks of the synthetic history, by name: families F (two
# children that complete), G (tolerates failures; G1 fails, G2 completes it)
# and H (H1 fails it, H2 is cancelled); X, then D that depends on it; Y fails,
# E, which depends on it, is cancelled; Z alone in batch 3; U1 then U2 hold
# the unique key 'acct-1' one after the other.
WF = {name: f"{n:08x}-0000-7000-8000-000000000000" for n, name in enumerate(
    "F F1 F2 G G1 G2 H H1 H2 X D Y E Z U1 U2".split(), 0x10)}
MEMBERS = 12  # batch 1: 4 tasks, batch 2: F G H X D Y E, batch 3: Z


def _synthetic():
    """A small clean history: t1 completed at once, t2 failed and retried,
    t3 stalled, was fenced off and completed by the next attempt, t4 reaped;
    then the workflows of WF."""
    L = 300
    ids = [f"0000000{i}-0000-7000-8000-000000000000" for i in range(1, 5)]
    t1, t2, t3, t4 = ids

    def claim(tid, att, now, kind, maxa=3, b=1, run_at=0, prio=0, method="plain", seen=None):
        return ["C", tid, att, now, now + L, run_at, prio, 0, method, 1.0, kind, maxa, b, seen]

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

    W = WF
    F, F1, F2, G, G1, G2, H, H1, H2 = (W[k] for k in "F F1 F2 G G1 G2 H H1 H2".split())
    X, D, Y, E, Z, U1, U2 = (W[k] for k in "X D Y E Z U1 U2".split())

    def end(tid, op, t0, outcome, ancestors=None):
        rec = ["E", tid, 1, op, t0, t0 + 1, outcome, 1.0]
        return rec + [ancestors] if ancestors else rec

    def kids(tid, t0, made):
        return ["K", tid, 1, t0, t0 + 1, "running", made, 1.0]

    w1 += [
        claim(F, 1, 3000, "family", b=2), kids(F, 3001, [0]), kids(F, 3003, [1]),
        end(F, "complete", 3005, "waiting"),
        claim(F2, 1, 3020, "ok", 1, None),
        end(F2, "complete", 3021, "completed", [[F, "completed"]]),
        claim(G2, 1, 3120, "ok", 1, None),
        end(G2, "complete", 3121, "completed", [[G, "completed"]]),
        claim(H, 1, 3200, "family", b=2), kids(H, 3201, [0, 1]),
        end(H, "complete", 3203, "waiting"),
        claim(X, 1, 3300, "ok", b=2), end(X, "complete", 3301, "completed"),
        claim(Y, 1, 3400, "doomed", 1, b=2), end(Y, "fail", 3401, "failed"),
        claim(Z, 1, 3620, "ok", b=3), end(Z, "complete", 3621, "completed"),
        claim(U2, 1, 3630, "ok", b=3), end(U2, "complete", 3631, "completed"),
    ]
    w2 += [
        claim(F1, 1, 3010, "ok", 1, None), end(F1, "complete", 3011, "completed", [[F, "waiting"]]),
        claim(G, 1, 3100, "family", b=2), kids(G, 3101, [0, 1]),
        end(G, "complete", 3103, "waiting"),
        claim(G1, 1, 3110, "doomed", 1, None), end(G1, "fail", 3111, "failed", [[G, "waiting"]]),
        claim(H1, 1, 3210, "doomed", 1, None), end(H1, "fail", 3211, "failed", [[H, "failed"]]),
        claim(D, 1, 3310, "ok", b=2, method="txn", seen=["completed"]),
        end(D, "complete", 3311, "completed"),
        claim(U1, 1, 3500, "ok", b=2), end(U1, "complete", 3501, "completed"),
    ]
    prod += [["B", 2, 7, "fn", 2900, 2950, 1.0], ["B", 3, 1, "fn", 3590, 3600, 1.0],
             ["U", 2, "default", "acct-1", "active", "keep", U1],
             ["U", 3, "default", "acct-1", "active", "keep", U2]]

    def wf(tid, kind, status, attempts, maxa, worker, details, done_at, error=None, **cols):
        return dict({"id": tid, "type": kind, "status": status, "attempts": attempts,
                     "max_attempts": maxa, "worker": worker, "error": error,
                     "details": json.dumps(details), "completed_at": done_at,
                     "progress": 100 if status == "completed" else 0}, **cols)

    plan = [{"k": "ok", "m": 1, "q": "default"}] * 2
    member = lambda b, n, i, **d: dict({"b": b, "n": n, "i": i}, **d)  # noqa: E731
    child = lambda c: {"c": c, "f": 0, "kids": None}  # noqa: E731
    failed = "planned failure 1"
    tasks += [
        wf(F, "family", "completed", 1, 3, "w1", member(2, 7, 0, kids=plan), 3021,
           children=2, children_done=2, flags=8),
        wf(F1, "ok", "completed", 1, 1, "w2", child(0), 3011, parent_id=F),
        wf(F2, "ok", "completed", 1, 1, "w1", child(1), 3021, parent_id=F),
        wf(G, "family", "completed", 1, 3, "w2", member(2, 7, 1, kids=plan), 3121,
           children=2, children_done=2, flags=2 | 8),
        wf(G1, "doomed", "failed", 1, 1, "w2", child(0), 3111, failed, parent_id=G),
        wf(G2, "ok", "completed", 1, 1, "w1", child(1), 3121, parent_id=G),
        wf(H, "family", "failed", 1, 3, "w1", member(2, 7, 2, kids=plan), 3211,
           f"child task {H1} failed", children=2, children_done=2, flags=8),
        wf(H1, "doomed", "failed", 1, 1, "w2", child(0), 3211, failed, parent_id=H),
        wf(H2, "ok", "cancelled", 0, 1, None, child(1), 3211, f"parent task {H} failed",
           parent_id=H),
        wf(X, "ok", "completed", 1, 3, "w1", member(2, 7, 3), 3301),
        wf(D, "ok", "completed", 1, 3, "w2", member(2, 7, 4, d=[X]), 3311,
           depends_on=json.dumps([X])),
        wf(Y, "doomed", "failed", 1, 1, "w1", member(2, 7, 5), 3401, failed),
        wf(E, "ok", "cancelled", 0, 3, None, member(2, 7, 6, d=[Y]), 3401,
           f"dependency task {Y} failed", depends_on=json.dumps([Y])),
        wf(Z, "ok", "completed", 1, 3, "w1", member(3, 1, 0), 3621),
        wf(U1, "ok", "completed", 1, 3, "w2", {"b": 2, "u": "acct-1"}, 3501, unique_key="acct-1"),
        wf(U2, "ok", "completed", 1, 3, "w1", {"b": 3, "u": "acct-1"}, 3631, unique_key="acct-1"),
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
    clean = analyse(logs, prod, tasks, target=MEMBERS)
    if not clean.ok:
        failures.append("clean history flagged: " + "; ".join(clean.violation_lines()))

    def mutate(expect, fn, **kw):
        lg, pr, ts = copy.deepcopy((logs, prod, tasks))
        fn(lg, pr, ts)
        rep = analyse(lg, pr, ts, target=kw.get("target", MEMBERS),
                      **{k: v for k, v in kw.items() if k != "target"})
        if expect not in rep.violations:
            failures.append(f"{expect} not detected ({fn.__doc__})")

    def dup(lg, pr, ts):
        """the same attempt claimed by two workers"""
        lg["w2"].append(list(lg["w1"][0]))

    def early(lg, pr, ts):
        """attempt 2 claimed while attempt 1's lease was valid"""
        lg["w2"][2][3] = 1200
        lg["w2"][2][4] = 1500

    def over_limit(lg, pr, ts):
        """more tasks of a limited queue running at once than its limit"""
        queue, limit = next(iter(S.LIMITS.items()))
        for i in range(limit + 1):
            tid = f"0000000{i}-0000-7000-8000-00000000000a"
            lg["w1"].append(["C", tid, 1, 3000 + i, 3300 + i, 0, 0, 0, "plain", 1.0, "ok", 3, 1])
            lg["w1"].append(["E", tid, 1, "complete", 3100, 3101, "completed", 1.0])
            ts.append({"id": tid, "type": "ok", "status": "completed", "attempts": 1,
                       "max_attempts": 3, "worker": "w1", "error": None, "queue": queue,
                       "details": json.dumps({"b": 1, "n": 4, "i": 0})})

    def claimed_paused(lg, pr, ts):
        """a task of the paused queue claimed before its resume"""
        tid = "0000000f-0000-7000-8000-00000000000a"
        lg["w1"].append(["C", tid, 1, 3000, 3300, 0, 0, 0, "plain", 1.0, "ok", 3, 1])
        lg["w1"].append(["E", tid, 1, "complete", 3100, 3101, "completed", 1.0])
        ts.append({"id": tid, "type": "ok", "status": "completed", "attempts": 1,
                   "max_attempts": 3, "worker": "w1", "error": None, "queue": S.PAUSED,
                   "details": json.dumps({"b": 1, "n": 4, "i": 0})})

    def over_rate(lg, pr, ts):
        """more claims of a rate-limited queue within its interval than its limit"""
        queue, rate = next(iter(S.RATES.items()))
        step = (rate["interval"] - 1) / rate["limit"]
        for i in range(rate["limit"] + 1):
            tid = f"0000{i:04d}-0000-7000-8000-00000000000c"
            now = 3000 + int(i * step)
            lg["w1"].append(["C", tid, 1, now, now + 300, 0, 0, 0, "plain", 1.0, "ok", 3, 1])
            lg["w1"].append(["E", tid, 1, "complete", now + 1, now + 2, "completed", 1.0])
            ts.append({"id": tid, "type": "ok", "status": "completed", "attempts": 1,
                       "max_attempts": 3, "worker": "w1", "error": None, "queue": queue,
                       "details": json.dumps({"b": 1, "n": 4, "i": 0})})

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

    def row(ts, name):
        return next(t for t in ts if t["id"] == WF[name])

    def record(lg, kind, name):
        return next(r for w in lg.values() for r in w if r[0] == kind and r[1] == WF[name])

    # Workflows.
    def dep_early(lg, pr, ts):
        """a dependent claimed before its dependency completed"""
        c = record(lg, "C", "D")
        c[3], c[4], c[13] = 3250, 3550, None

    def dep_seen(lg, pr, ts):
        """a claim whose transaction read a dependency as running"""
        record(lg, "C", "D")[13] = ["running"]

    def dep_ran(lg, pr, ts):
        """a dependent of a failed dependency claimed and completed"""
        row(ts, "E").update(status="completed", attempts=1, worker="w1", error=None)
        lg["w1"] += [["C", WF["E"], 1, 3410, 3710, 0, 0, 0, "plain", 1.0, "ok", 3, 2],
                     ["E", WF["E"], 1, "complete", 3411, 3412, "completed", 1.0]]

    def dep_wrong_cancel(lg, pr, ts):
        """a dependent cancelled for a task it does not depend on"""
        row(ts, "E")["error"] = f"dependency task {WF['X']} failed"

    def fam_early(lg, pr, ts):
        """two children's transactions saw their parent completed"""
        record(lg, "E", "F1")[8] = [[WF["F"], "completed"]]

    def fam_never(lg, pr, ts):
        """a parent completed in none of its children's transactions"""
        record(lg, "E", "F2")[8] = [[WF["F"], "waiting"]]

    def fam_intolerant(lg, pr, ts):
        """a parent completed although a child failed, without on_child_failure continue"""
        row(ts, "G")["flags"] = 8

    def fam_wrong_child(lg, pr, ts):
        """a parent failed for a task that is not its failed child"""
        row(ts, "H")["error"] = f"child task {WF['F1']} failed"

    def fam_twice(lg, pr, ts):
        """a child enqueued twice"""
        ts.append(dict(row(ts, "F2"), id="000000ff-0000-7000-8000-000000000000",
                       details=json.dumps({"c": 0})))
        row(ts, "F").update(children=3, children_done=3)

    def fam_counter(lg, pr, ts):
        """children_done that disagrees with the children"""
        row(ts, "F")["children_done"] = 1

    def fam_wrong_cancel(lg, pr, ts):
        """a child cancelled for a parent that is not its own"""
        row(ts, "H2")["error"] = f"parent task {WF['G']} failed"

    def uniq_overlap(lg, pr, ts):
        """a unique task created while the previous holder of its key still held it"""
        row(ts, "U1")["completed_at"] = 3650

    def uniq_both(lg, pr, ts):
        """two unfinished holders of one key"""
        row(ts, "U1").update(status="queued", completed_at=None)

    def uniq_once(lg, pr, ts):
        """a key with unique_scope 'completed' taken again after its task completed"""
        row(ts, "U1")["flags"] = row(ts, "U2")["flags"] = 4

    def uniq_returned(lg, pr, ts):
        """an enqueue of a unique key that returned a task not holding it"""
        pr[-1][-1] = WF["X"]

    def blocked_left(lg, pr, ts):
        """a dependent left blocked"""
        row(ts, "E").update(status="blocked", error=None)

    def live_unique(lg, pr, ts):
        """two unfinished holders of one key seen by the runner's live poll"""

    def cancel_unexplained(lg, pr, ts):
        """a task cancelled with no cascade to explain it"""
        row(ts, "Z").update(status="cancelled", error=None)

    cases = (
        ("double-claim", dup, {}), ("double-claim", early, {}), ("double-claim", renewed, {}),
        ("concurrency", over_limit, {}), ("pause", claimed_paused, {"resumed_at": 5000}),
        ("rate", over_rate, {}),
        ("double-claim", after_done, {}), ("fence-breach", false_stale, {}),
        ("not-terminal", stuck, {}), ("double-claim", twice, {}),
        ("batch", partial, {"target": MEMBERS - 1}),
        ("busy", busy, {}), ("run-at", too_early, {}), ("outcome", doomed_done, {}),
        ("attempts", ghost, {}), ("integrity", bad_integrity, {"task_check": "1 problem"}),
        ("dependency", dep_early, {}), ("dependency", dep_seen, {}), ("dependency", dep_ran, {}),
        ("dependency", dep_wrong_cancel, {}), ("family", fam_early, {}),
        ("family", fam_never, {}), ("family", fam_intolerant, {}),
        ("family", fam_wrong_child, {}), ("family", fam_twice, {}), ("family", fam_counter, {}),
        ("family", fam_wrong_cancel, {}), ("unique", uniq_overlap, {}), ("unique", uniq_both, {}),
        ("unique", uniq_once, {}), ("unique", uniq_returned, {}),
        ("unique", live_unique, {"unique_snapshots": ["key 'acct-1' of queue 'default': "
                                                        "2 unfinished holders"]}),
        ("not-terminal", blocked_left, {}), ("not-terminal", cancel_unexplained, {}),
    )
    for expect, fn, kw in cases:
        mutate(expect, fn, **kw)
    n, more = _events_self_test()
    n2, more2 = _rates_self_test()
    n3, more3 = _pause_self_test()
    return len(cases) + n + n2 + n3, failures + more + more2 + more3


def _pause_self_test():
    """The pause rule at its boundary, for a queue resumed at 5000: a claim
    whose call read its clock at 4990 and returned at 5010 may have waited
    for the lock while the resume committed (not flagged); one that returned
    at 4995 claimed while the queue was paused (flagged). Returns
    (corruptions tried, failures)."""
    tid = "00000001-0000-7000-8000-0000000000d1"
    tasks = [{"id": tid, "queue": S.PAUSED}]

    def run(now, lat):
        a = Analysis(set(), [])
        a.r = Report()
        a.claims_of = {tid: [Attempt("w1", ["C", tid, 1, now, now + 300, 0, 0, 0, "plain", lat,
                                            "ok", 3, 1])]}
        a.check_paused(tasks, 5000)
        return "pause" in a.r.violations

    failures = []
    if run(4990, 20.0):
        failures.append("a claim that returned after the resume flagged")
    if not run(4990, 5.0):
        failures.append("pause not detected (a claim returned 5 ms before the resume)")
    return 1, failures


def _rates_self_test():
    """The rate rule read from the event log: a limit of 3 per 100 ms, with
    claims of one worker that was killed (so its log has none of them).
    Three claims in (0, 100] and a fourth exactly 100 ms after the first are
    within the rate; a fourth 99 ms after it is not. Returns (corruptions
    tried, failures)."""
    rates = {"rated": {"limit": 3, "interval": 100}}
    tasks = [{"id": f"0000000{i}-0000-7000-8000-0000000000f0", "queue": "rated"}
             for i in range(4)]
    a = Analysis(set(), [])

    def run(times):
        a.r = Report()
        events = [(i + 1, t["id"], "claimed", "running", 1, "w1", at)
                  for i, (t, at) in enumerate(zip(tasks, times))]
        a.check_rates(tasks, events, rates)
        return "rate" in a.r.violations

    failures = []
    if run([1000, 1040, 1080, 1100]):
        failures.append("claims within the rate flagged")
    if not run([1000, 1040, 1080, 1099]):
        failures.append("rate not detected (4 claims within 100 ms, limit 3, from the event log)")
    return 1, failures


def _events_self_test():
    """The events rule on a one-task history (claimed by w1, completed),
    clean and corrupted. Returns (corruptions tried, failures)."""
    tid = "00000001-0000-7000-8000-0000000000e1"
    logs = {"w1": [["C", tid, 1, 1000, 1300, 0, 0, 0, "plain", 1.0, "ok", 3, 1],
                   ["E", tid, 1, "complete", 1100, 1101, "completed", 1.0]]}
    tasks = [{"id": tid, "type": "ok", "status": "completed", "attempts": 1, "max_attempts": 3,
              "worker": "w1", "error": None, "details": json.dumps({"b": 1, "n": 1, "i": 0})}]
    events = [(1, tid, "enqueued", "queued", 0, None, 900),
              (2, tid, "claimed", "running", 1, "w1", 1000),
              (3, tid, "completed", "completed", 1, "w1", 1100)]
    failures = []
    if "events" in analyse(logs, [], tasks, events=events).violations:
        failures.append("clean event log flagged")
    other = "00000002-0000-7000-8000-0000000000e2"
    cases = {
        "a claim with no event": events[:1] + [(2, tid, "completed", "completed", 1, "w1", 1100)],
        "a completion with no event": events[:2],
        "an event twice": events + [(4, tid, "completed", "completed", 1, "w1", 1101)],
        "another worker's claim": [events[0], (2, tid, "claimed", "running", 1, "w9", 1000),
                                   events[2]],
        "a gap in seq": [events[0], events[1], (4,) + events[2][1:]],
        "an event of no task": events + [(4, other, "enqueued", "queued", 0, None, 1200)],
        "no enqueue first": events[1:],
    }
    for what, log in cases.items():
        if "events" not in analyse(logs, [], tasks, events=log).violations:
            failures.append(f"events not detected ({what})")
    return len(cases), failures


if __name__ == "__main__":
    n, problems = selftest()
    print("\n".join(problems) or f"checker self-test: ok ({n} injected violations detected)")
    raise SystemExit(1 if problems else 0)
