"""Reliability harness: many worker processes and a producer on one WAL
database, with and without SIGKILLs, then a verdict (check.py) printed as
figures. Exit status 0 only if every run holds.

  python tests/stress/run.py --quick   # make test-stress-quick: N=2 and 4, one crash round
  python tests/stress/run.py --full    # make stress: N=2,4,8 x NORMAL/FULL, 50k tasks, crash rounds
  options: --seed N (the same random choices again; timing still differs),
           --only SUBSTRING (run matching scenarios),
           --keep (keep the temporary directory with the database and logs)
  one custom run: --workers N [--tasks T --sync FULL --lock block --busy-timeout MS
                  --kills K --producer-kills P]

A share of the work is workflows (actors.py): families whose workers enqueue
children, dependency chains and diamonds, unique keys enqueued again and
again; check.py holds them to docs/reference/workflows.md, and the runner
scans the table once a second for two unfinished holders of one unique key.

Every connection is set up as docs/concurrency.md advises (WAL, busy_timeout 30000).
apsw's SQLite can also wait for locks in the kernel (SETLK_TIMEOUT); most
hosts cannot, so runs use SQLite's sleeping busy handler unless a scenario
says "blocking" (see shared.connect).

Each run gets a fresh database in a temporary directory (removed at the end)
and its own copy of the extension, so a rebuild during the run cannot swap the
library under the workers. The runner never sleeps for a verdict: it waits
for the queue to drain, with a deadline per run; a worker whose loop counter
stops moving for HANG_S seconds, no task finishing for STUCK_S seconds, a run
past its deadline, or a process that exits on its own with an error is a
failure, and every child is killed.

Crash rounds: at evenly spaced points of progress the runner waits until
some worker is inside a chosen call (claim, progress, complete, ...) and
SIGKILLs it, then starts a replacement under a new name; the producer is
SIGKILLed while a batch transaction is open (tasks enqueued, no COMMIT yet)
and restarted. The phase a process died in is read from its board slot,
which a dead process can no longer change. The kills are paced by the work,
not by the clock: the producer may enqueue only a few hundred tasks past the
next worker kill mark, and not the last task while any kill is to come (a
budget on the board, raised as the kills happen), so the queue cannot drain
before every planned kill, however slow the host, and there is work in
flight for the victims to die in.
"""

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import apsw  # noqa: E402
import check  # noqa: E402
import shared as S  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
ACTORS = os.path.join(HERE, "actors.py")
HANG_S = 45          # > the longest a healthy worker can sit in one call (the 30 s busy timeout)
STUCK_S = 60         # no task became terminal for this long: the queue is stuck
EXIT_WAIT_S = 20     # for workers to notice the stop flag and exit
KILL_LEAD = 500      # tasks the producer may enqueue past the next worker kill mark (or the
                     # marks' spacing, if wider)


@dataclass
class Scenario:
    name: str
    workers: int
    sync: str
    tasks: int
    worker_kills: int = 0
    producer_kills: int = 0
    lock: str = "sleep"
    busy_timeout: int = S.BUSY_TIMEOUT_MS
    lease: int = 300
    stall_ms: int = 400
    stall_frac: float = 0.0015
    reap_frac: float = 0.0005
    high_water: int = 2000
    batch_min: int = 20
    batch_max: int = 150
    timeout: float = 600
    # Negative control: workers drop the fencing token after a stall; the
    # run passes only if the checker reports it.
    unfenced: bool = False
    # Workflows (actors.py): the share of batch slots that start a family or
    # a dependency group, and unique enqueues per batch (at most) from a pool
    # of keys.
    family_frac: float = 0.03
    dep_frac: float = 0.03
    unique_max: int = 6
    unique_keys: int = 12

    @property
    def crash(self):
        return bool(self.worker_kills or self.producer_kills)


def quick(name, workers, sync, tasks, **kw):
    return Scenario(name, workers, sync, tasks,
                    **{"high_water": 500, "stall_frac": 0.004, "reap_frac": 0.0015,
                       "timeout": 90, **kw})


def crash_round(name, workers, sync, tasks, kills, pkills, timeout):
    return Scenario(name, workers, sync, tasks, worker_kills=kills, producer_kills=pkills,
                    batch_min=100, batch_max=300, high_water=1000, timeout=timeout,
                    stall_frac=0.003, reap_frac=0.001)


PROFILES = {
    "quick": [
        quick("N=2 NORMAL", 2, "NORMAL", 3000),
        quick("N=4 FULL", 4, "FULL", 3000),
        crash_round("crash N=4 NORMAL", 4, "NORMAL", 3000, 8, 1, timeout=90),
        quick("control: unfenced workers", 2, "NORMAL", 1000, stall_frac=0.03, unfenced=True),
    ],
    "full": [
        Scenario(f"N={n} {sync}", n, sync, 50_000)
        for sync in ("NORMAL", "FULL") for n in (2, 4, 8)
    ] + [
        Scenario("N=8 FULL blocking", 8, "FULL", 50_000, lock="block"),
        crash_round("crash N=4 NORMAL", 4, "NORMAL", 10_000, 30, 3, timeout=300),
        crash_round("crash N=8 FULL", 8, "FULL", 10_000, 30, 3, timeout=300),
    ],
}

# Calls a crash round aims its kills at, in turn: claim, progress, complete,
# fail, a family's children being enqueued.
KILL_TARGETS = [
    {S.CLAIM, S.CLAIM_TXN, S.CLAIM_BATCH},
    {S.PROGRESS, S.HEARTBEAT},
    {S.COMPLETE, S.COMPLETE_NEXT},
    {S.FAIL},
    {S.CHILDREN},
]
# Two unfinished tasks of one queue holding one unique key (docs/reference/
# workflows.md: a 'completed' scope key is held by its completed task too).
# NOT INDEXED: the table itself, not the unique index that should prevent it.
UNIQUE_CLASH_SQL = """SELECT queue, unique_key, group_concat(id || ' ' || status, ', ')
  FROM task_store NOT INDEXED
 WHERE unique_key IS NOT NULL AND status NOT IN ('failed', 'cancelled')
   AND (status != 'completed' OR flags & 4)
 GROUP BY queue, unique_key HAVING count(*) > 1"""


def find_extension():
    ext = os.environ.get("TASK_EXT") or os.path.join(REPO, "dist", "task0")
    for candidate in (ext, ext + ".so", ext + ".dylib"):
        if os.path.isfile(candidate):
            return candidate
    sys.exit(f"extension not found at {ext}: run `make loadable` (or set TASK_EXT)")


class Run:
    """One scenario: its processes, its crash schedule, its verdict."""

    def __init__(self, sc, ext, root, seed):
        self.sc = sc
        self.ext = ext
        self.dir = os.path.join(root, sc.name.replace(" ", "_").replace("=", ""))
        os.makedirs(self.dir)
        self.db_path = os.path.join(self.dir, "queue.db")
        self.board_path = os.path.join(self.dir, "board")
        self.board = S.Board(self.board_path, create=True)
        self.rng = random.Random(seed)
        self.seed = seed
        self.workers = {}        # name -> (Popen, slot)
        self.dead = []           # (name, Popen) that exited
        self.killed = {}         # name -> phase name at death
        self.producers = []      # Popen per producer life
        self.producer_kills = []  # (phase, batch, enqueued)
        self.problems = []       # harness-level failures (hangs, crashes, timeouts)
        self.next_slot = 0
        self.deadline = time.time() + sc.timeout
        self.wal_max = 0
        self.unique_clashes = []  # what the live poll of unique keys found
        self.resumed_at = None    # when the paused queue was resumed (ms, before the call)

    # Processes.
    def common_args(self, log):
        return ["--db", self.db_path, "--ext", self.ext, "--sync", self.sc.sync,
                "--lock", self.sc.lock, "--busy-timeout", str(self.sc.busy_timeout),
                "--board", self.board_path, "--log", log, "--parent", str(os.getpid()),
                "--deadline", str(self.deadline + 5)]

    def spawn(self, role, name, extra):
        log = os.path.join(self.dir, f"{name}.log")
        seed = str(self.rng.randrange(2**31))
        cmd = [sys.executable, ACTORS, role, *self.common_args(log), "--seed", seed, *extra]
        with open(os.path.join(self.dir, f"{name}.err"), "wb") as err:
            return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)

    def spawn_worker(self):
        slot = self.next_slot
        self.next_slot += 1
        if slot >= S.MAX_SLOTS:
            raise RuntimeError("out of board slots")
        name = f"w{slot + 1}"
        extra = ["--name", name, "--slot", str(slot), "--lease", str(self.sc.lease),
                 "--stall-ms", str(self.sc.stall_ms)]
        if self.sc.unfenced:
            extra.append("--unfenced")
        p = self.spawn("worker", name, extra)
        self.workers[name] = (p, slot)

    def spawn_producer(self, min_batch=1):
        sc = self.sc
        name = f"producer{len(self.producers) + 1}"
        extra = ["--target", str(sc.tasks), "--min-batch", str(min_batch),
                 "--batch-min", str(sc.batch_min), "--batch-max", str(sc.batch_max),
                 "--high-water", str(sc.high_water), "--stall-frac", str(sc.stall_frac),
                 "--reap-frac", str(sc.reap_frac), "--family-frac", str(sc.family_frac),
                 "--dep-frac", str(sc.dep_frac), "--unique-max", str(sc.unique_max),
                 "--unique-keys", str(sc.unique_keys)]
        if sc.crash:
            extra.append("--crash")
        self.producers.append(self.spawn("producer", name, extra))

    def err_tail(self, name):
        try:
            with open(os.path.join(self.dir, f"{name}.err"), "rb") as f:
                return f.read().decode(errors="replace").strip().splitlines()[-3:]
        except OSError:
            return []

    def kill_all(self):
        for p in [p for p, _ in self.workers.values()] + self.producers:
            if p.poll() is None:
                p.kill()
        for p in [p for p, _ in self.workers.values()] + self.producers:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    # Crashes.
    def kill_worker(self, phases):
        """SIGKILLs a worker inside one of `phases` (waiting up to 2 s for one
        to be), else a random one; starts a replacement."""
        live = [(n, p, s) for n, (p, s) in self.workers.items() if p.poll() is None]
        if not live:
            return
        victim = None
        until = time.monotonic() + 2.0
        while victim is None and time.monotonic() < until:
            for n, p, s in live:
                if self.board.phase(s) in phases:
                    victim = (n, p, s)
                    break
            else:
                # Sleep, not spin, as in kill_producer: a spinning runner is
                # the one descheduled when another process wakes, and if that
                # falls between seeing the phase and the SIGKILL, the victim
                # dies after its call ("between calls").
                time.sleep(0.0001)
        if victim is None:
            victim = self.rng.choice(live)
        name, p, slot = victim
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        self.killed[name] = S.PHASE_NAMES.get(self.board.phase(slot), "?")
        del self.workers[name]
        self.dead.append((name, p))
        self.spawn_worker()

    def kill_producer(self, budget):
        """SIGKILLs the producer with a batch transaction open, then starts
        a new one that goes on after that batch, under `budget` (the plan's,
        once this kill is done)."""
        p = self.producers[-1]
        until = time.monotonic() + 5.0
        try:
            while time.monotonic() < until and p.poll() is None:
                phase, batch, n, _ = self.board.producer()
                if phase == S.P_OPEN and n >= 1:
                    break
                if phase == S.P_WAIT:
                    # Held back by its budget, it would open no batch to be
                    # killed in: let one batch more through (again, if this
                    # loop missed that one). The batch dies with its
                    # transaction, so the plan hardly moves; but never up to
                    # the target, or the producer could finish first. If
                    # every batch up to there was missed (rare), it dies
                    # between batches, as when the 5 s run out.
                    have = self.board.producer_enqueued()
                    lift = min(have + self.sc.batch_max, self.sc.tasks - 1)
                    if lift <= have:
                        break
                    self.board.set_budget(max(self.board.budget(), lift))
                # Sleep, not spin: on a busy host a spinning runner is the
                # one descheduled when the producer wakes to its batch, and
                # a batch (a millisecond or two) can then begin and end
                # unseen; a runner that sleeps is let back in sooner.
                time.sleep(0.0001)
            if p.poll() is not None:
                return False
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        finally:
            # Before the next producer starts: it must not inherit the lift.
            self.board.set_budget(budget)
        phase, batch, n, _ = self.board.producer()
        kind = {S.P_OPEN: "open", S.P_COMMIT: "commit"}.get(phase, "between")
        self.producer_kills.append((kind, batch, n))
        self.board.set_producer(S.P_IDLE)
        self.spawn_producer(min_batch=batch + 1)
        return True

    def budget(self, kills_done, pkills_done):
        """How many tasks the producer may have enqueued in all while worker
        kill `kills_done` and producer kill `pkills_done` are the next to come.

        The producer reaches this (it cuts its last batch to fit), so the
        terminal count can always reach the next worker kill mark; and while
        any kill is to come it stays below the target, so the producer cannot
        finish, nor the queue drain, first: the plan cannot fall short on a
        slow host. The lead past the mark keeps tasks queued and running when
        the count gets there (the runner sees it only every poll, a few
        hundred tasks later on a fast host), so the victim is found inside a
        call on a task rather than polling an empty queue."""
        sc = self.sc
        if kills_done >= len(self.kill_marks) and pkills_done >= sc.producer_kills:
            return sc.tasks
        if kills_done >= len(self.kill_marks):
            return sc.tasks - 1
        spacing = 0.9 / (sc.worker_kills + 1) * sc.tasks
        mark = math.ceil(self.kill_marks[kills_done] * sc.tasks)
        return min(sc.tasks - 1, mark + math.ceil(max(spacing, KILL_LEAD)))

    # The run.
    def execute(self):
        sc = self.sc
        db = S.connect(self.db_path, self.ext, sc.sync)
        db.execute("SELECT task_init()").fetchall()
        for queue, limit in S.LIMITS.items():
            db.execute("SELECT task_queue(?, json_object('concurrency', ?))", (queue, limit)).fetchall()
        db.execute("SELECT task_queue(?, '{\"paused\": true}')", (S.PAUSED,)).fetchall()
        for queue, rate in S.RATES.items():
            db.execute("SELECT task_queue(?, json_object('rate', json(?)))",
                       (queue, json.dumps(rate))).fetchall()
        started = time.monotonic()
        self.kill_marks = kill_marks = [(i + 1) / (sc.worker_kills + 1) * 0.9
                                        for i in range(sc.worker_kills)]
        pkill_marks = [(i + 1) / (sc.producer_kills + 1) for i in range(sc.producer_kills)]
        self.board.set_budget(self.budget(0, 0))
        for _ in range(sc.workers):
            self.spawn_worker()
        self.spawn_producer()
        ticks = {}
        kills_done = 0
        polls = 0
        last_poll = 0.0
        done = 0
        moved = (0, started)  # (terminal count, when it last grew)
        try:
            while True:
                now = time.monotonic()
                if time.time() > self.deadline:
                    self.problems.append(f"timeout: the queue did not drain in {sc.timeout:.0f} s "
                                         f"({done} of {sc.tasks} tasks terminal)")
                    break
                # Hangs and unexpected exits.
                for name, (p, slot) in list(self.workers.items()):
                    if p.poll() is not None:
                        self.problems.append(f"{name} exited by itself with {p.returncode}: "
                                             f"{self.err_tail(name)}")
                        del self.workers[name]
                        self.dead.append((name, p))
                        continue
                    t = self.board.ticks(slot)
                    if ticks.get(name, (None,))[0] != t:
                        ticks[name] = (t, now)
                    elif now - ticks[name][1] > HANG_S:
                        self.problems.append(f"{name} hung: no progress for {HANG_S} s in "
                                             f"{S.PHASE_NAMES.get(self.board.phase(slot))}")
                        p.kill()
                prod = self.producers[-1]
                if prod.poll() not in (None, 0):
                    self.problems.append(f"producer exited with {prod.returncode}: "
                                         f"{self.err_tail(f'producer{len(self.producers)}')}")
                    break
                if self.problems:
                    break
                if now - last_poll >= 0.2:
                    last_poll = now
                    # Partial-index counts and the last rowid: cheap
                    # enough to run five times a second beside the workers.
                    total, open_ = db.execute(
                        "SELECT ifnull(max(seq), 0),"
                        " (SELECT count(*) FROM task_store WHERE status = 'queued')"
                        " + (SELECT count(*) FROM task_store WHERE status = 'running')"
                        " + (SELECT count(*) FROM task_store"
                        "    WHERE status = 'blocked' OR status = 'waiting')"
                        " FROM task_store").fetchall()[0]
                    polls += 1
                    if polls % 5 == 0 and len(self.unique_clashes) < 10:
                        # A table scan: once a second, not at every poll.
                        for queue, key, held in db.execute(UNIQUE_CLASH_SQL):
                            self.unique_clashes.append(f"key '{key}' of queue '{queue}' held by "
                                                       f"{held}")
                    done = total - open_
                    if done != moved[0]:
                        moved = (done, now)
                    elif now - moved[1] > STUCK_S:
                        self.problems.append(f"stuck: no task finished for {STUCK_S} s "
                                             f"({done} of {total} terminal)")
                        break
                    try:
                        self.wal_max = max(self.wal_max, os.path.getsize(self.db_path + "-wal"))
                    except OSError:
                        pass
                    if prod.poll() == 0 and open_ == 0:
                        break
                    # Crash schedule, by progress: share of the target terminal
                    # (workers) or enqueued (producer).
                    if self.resumed_at is None and done >= S.RESUME_AT * sc.tasks:
                        # Taken before the call: any claim of the paused
                        # queue's tasks must have a clock at or after it.
                        t0 = S.now_ms()
                        db.execute("SELECT task_queue(?, '{\"paused\": false}')",
                                   (S.PAUSED,)).fetchall()
                        self.resumed_at = t0
                    if kills_done < len(kill_marks) and done >= kill_marks[kills_done] * sc.tasks:
                        # The next mark's budget at once, not after the kill:
                        # the workers keep getting tasks while a victim in
                        # the target phase is sought.
                        self.board.set_budget(self.budget(kills_done + 1, len(self.producer_kills)))
                        self.kill_worker(KILL_TARGETS[kills_done % len(KILL_TARGETS)])
                        kills_done += 1
                    if (len(self.producer_kills) < len(pkill_marks) and prod.poll() is None
                            and total >= pkill_marks[len(self.producer_kills)] * sc.tasks):
                        if not self.kill_producer(self.budget(kills_done,
                                                              len(self.producer_kills) + 1)):
                            pkill_marks.pop()
                time.sleep(0.01)
            # Drained: let the workers see it and exit. (After a failure,
            # the finally below kills them instead.)
            self.board.set_stop()
            until = time.monotonic() + EXIT_WAIT_S
            for name, (p, _) in self.workers.items():
                if self.problems:
                    break
                try:
                    p.wait(timeout=max(0.1, until - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.problems.append(f"{name} did not exit within {EXIT_WAIT_S} s of the stop")
                    continue
                if p.returncode != 0:
                    self.problems.append(f"{name} exited with {p.returncode}: "
                                         f"{self.err_tail(name)}")
        finally:
            self.kill_all()
            db.close()
        self.wall = time.monotonic() - started
        if len(self.producer_kills) < sc.producer_kills and not self.problems:
            self.problems.append(f"only {len(self.producer_kills)} of {sc.producer_kills} "
                                 f"producer kills happened")
        if len(self.killed) < sc.worker_kills and not self.problems:
            self.problems.append(f"only {len(self.killed)} of {sc.worker_kills} worker kills "
                                 f"happened")
        return self.verdict()

    def verdict(self):
        db = S.connect(self.db_path, self.ext, self.sc.sync)
        integrity = "\n".join(r[0] for r in db.execute("PRAGMA integrity_check").fetchall())
        task_check = db.execute("SELECT task_check()").fetchall()[0][0]
        cols = ("id", "type", "status", "attempts", "max_attempts", "worker", "error", "details",
                "queue", "parent_id", "unique_key", "children", "flags", "completed_at",
                "progress")
        tasks = [dict(zip(cols, row)) for row in
                 db.execute(f"SELECT {', '.join(cols)} FROM task_store ORDER BY seq")]
        # Dependencies and finished children as the tasks table shows them
        # (a parent's unfinished children are counted in task_parent_store).
        deps = dict(db.execute("SELECT id, depends_on FROM tasks WHERE depends_on IS NOT NULL"))
        done = dict(db.execute("SELECT id, children_done FROM tasks WHERE children > 0"))
        for t in tasks:
            t["depends_on"] = deps.get(t["id"])
            t["children_done"] = done.get(t["id"], 0)
        events = db.execute("SELECT seq, task_id, kind, status, attempt, worker, at"
                            " FROM task_events ORDER BY seq").fetchall()
        db.close()
        logs = {}
        for name in [n for n, _ in self.dead] + list(self.workers):
            logs[name], _ = S.read_log(os.path.join(self.dir, f"{name}.log"))
        prod = []
        for i in range(len(self.producers)):
            recs, _ = S.read_log(os.path.join(self.dir, f"producer{i + 1}.log"))
            prod.extend(recs)
        report = check.analyse(logs, prod, tasks, killed=self.killed,
                               producer_kills=self.producer_kills, target=self.sc.tasks,
                               integrity=integrity, task_check=task_check,
                               unique_snapshots=self.unique_clashes, events=events,
                               resumed_at=self.resumed_at)
        for p in self.problems:
            report.bad("harness", p)
        f = report.figures
        f["wall_s"] = self.wall
        f["integrity"] = integrity
        f["task_check"] = task_check
        f["wal_max_mb"] = self.wal_max / 1e6
        f["kills"] = dict(self.killed)
        f["producer_kills"] = list(self.producer_kills)
        return report


def passed(sc, rep):
    """A run passes when it holds; the negative control passes when the
    checker catches the fencing it was made to break (and nothing else went
    wrong with the run itself)."""
    if sc.unfenced:
        caught = {"double-claim", "exactly-once", "fence-breach"} & set(rep.violations)
        return bool(caught) and "harness" not in rep.violations
    return rep.ok


def verdict(sc, rep):
    return "PASS" if passed(sc, rep) else "FAIL"


# --- Output ---------------------------------------------------------------

LOCK_NAMES = {"sleep": "busy handler (sleep and retry)", "block": "blocking locks (SETLK_TIMEOUT)"}


def ms(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def print_run(i, total, sc, rep):
    f = rep.figures
    lat = f["latency"]

    def latency(name):
        v = lat.get(name)
        return f"p50 {ms(v['p50'])} / p99 {ms(v['p99'])} / max {ms(v['max'])} ms" if v else "-"

    rate = f["tasks"] / f["wall_s"] if f["wall_s"] else 0
    rows = [
        ("setup", f"{sc.workers} worker processes + 1 producer, synchronous={sc.sync}, "
                  f"lock wait: {LOCK_NAMES[sc.lock]}, busy_timeout {sc.busy_timeout} ms, "
                  f"lease {sc.lease} ms"),
        ("wall time", f"{f['wall_s']:.1f} s ({rate:.0f} tasks/s end to end, with stalls and "
                      f"retry backoffs; {f['steady_rate']:.0f} tasks/s while busy)"),
        ("tasks terminal", f"{f['tasks'] - f['non_terminal']} of {f['tasks']} "
                           f"(completed {f['completed']}, failed {f['failed']}, "
                           f"of which {f['failed_expired']} after an expired lease; "
                           f"cancelled {f['cancelled']})"),
        ("workflows", f"{f['families']} families ({f['families_completed']} completed, "
                      f"{f['families_failed']} failed, {f['children']} children); "
                      f"{f['dependents']} dependents ({f['dependents_cancelled']} cancelled by "
                      f"a failed dependency); {f['unique_enqueues']} unique enqueues made "
                      f"{f['unique_tasks']} tasks"),
        ("workflow checks", f"{f['families_pinned']} parents seen completing in their last "
                            f"descendant's transaction, {f['dependent_claims_seen']} dependents' "
                            f"dependencies read in their claim's transaction; violations: "
                            + ", ".join(f"{k} {v}" for k, v in f["workflow_violations"].items())),
        ("claims", f"{f['claims']} ({f['reclaims']} after an expired lease, {f['stalls']} "
                   f"deliberate stalls)"),
        ("limited queues", "; ".join(
            f"{q}: at most {most} surely running, limit {limit} ({n} attempts checked)"
            for q, (most, limit, n) in f["limits"].items()) or "none"),
        ("rate-limited queues", "; ".join(
            f"{q}: at most {most} claims in a window, limit {limit} ({n} claims checked)"
            for q, (most, limit, n) in f["rates"].items()) or "none"),
        ("fenced holders", f"{f['overlaps_fenced']} still working when re-claimed; "
                           f"{f['fenced_stale']} completions refused as stale"),
        ("double claims", str(f["double_claims"])),
        ("fence breaches", str(f["fence_breaches"])),
        ("SQLITE_BUSY to caller", str(f["busy"])),
        ("claims per worker", f"min {f['per_worker_min']} / max {f['per_worker_max']} "
                              f"(mean {f['per_worker_mean']:.0f}, {len(f['per_worker'])} workers)"),
        ("task_claim latency", latency("claim")),
        ("task_complete latency", latency("complete")),
        ("task_progress latency", latency("progress")),
        ("producer batch commit", latency("batch")),
        ("calls over 1 s", str(f["slow_calls"])),
        ("longest call", "{:.0f} ms, {} in {}; the others finished {} write calls meanwhile"
                         .format(*f["longest_call"]) if f["longest_call"] else "-"),
        ("first-claim wait p50", f"priority>0 {f['wait_first_claim_ms'].get('high', 0):.0f} ms, "
                                 f"others {f['wait_first_claim_ms'].get('normal', 0):.0f} ms"),
        ("WAL file max", f"{f['wal_max_mb']:.1f} MB"),
        ("batches", f"{f['batches']} present, {f['batches_partial']} partial"),
        ("integrity_check", f["integrity"]),
        ("task_check()", f["task_check"]),
    ]
    if sc.crash:
        phases = {}
        for ph in f["kills"].values():
            phases[ph] = phases.get(ph, 0) + 1
        rows.insert(3, ("workers SIGKILLed", f"{len(f['kills'])}: " + ", ".join(
            f"{n} in {ph}" for ph, n in sorted(phases.items(), key=lambda x: -x[1]))))
        rows.insert(4, ("producer SIGKILLed", "; ".join(
            f"batch {b}: " + (f"transaction open with {n} tasks enqueued" if k == "open"
                              else "inside COMMIT" if k == "commit" else "between batches")
            for k, b, n in f["producer_kills"]) or "0"))
        rows.insert(5, ("unlogged by the killed", f"{f['unlogged_claims']} claims, "
                                                  f"{f['unlogged_completes']} completions"))
    print(f"\n== run {i}/{total}: {sc.name} — {sc.tasks} tasks ==")
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if sc.unfenced:
        print(f"  {'verdict':<{w}}  {verdict(sc, rep)} (a negative control: the injected fault "
              f"{'was caught' if passed(sc, rep) else 'went unnoticed'})")
        for line in rep.violation_lines():
            print(f"    caught: {line}")
        return
    print(f"  {'verdict':<{w}}  {verdict(sc, rep)}")
    for line in rep.violation_lines():
        print(f"    ! {line}")


def print_matrix(results):
    head = ("run", "tasks", "wall s", "tasks/s", "completed", "failed", "reclaimed",
            "stale-refused", "double", "busy", "claims/worker", "claim p99/max ms", ">1 s",
            "WAL MB", "checks", "verdict")
    lines = []
    for sc, rep in results:
        f = rep.figures
        c = f["latency"].get("claim", {"p99": 0, "max": 0})
        lines.append((sc.name, str(f["tasks"]), f"{f['wall_s']:.1f}", f"{f['steady_rate']:.0f}",
                      str(f["completed"]), str(f["failed"]), str(f["reclaims"]),
                      str(f["fenced_stale"]), str(f["double_claims"]), str(f["busy"]),
                      f"{f['per_worker_min']}-{f['per_worker_max']}",
                      f"{ms(c['p99'])}/{ms(c['max'])}", str(f["slow_calls"]),
                      f"{f['wal_max_mb']:.0f}",
                      "ok" if f["integrity"] == "ok" and f["task_check"] == "ok" else "BAD",
                      verdict(sc, rep)))
    widths = [max(len(r[i]) for r in lines + [head]) for i in range(len(head))]
    print("\n== summary == (tasks/s: while the queue was busy; >1 s: calls that waited over "
          "a second; WAL MB: largest -wal file; checks: integrity_check and task_check())")
    for r in [head] + lines:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the short version (default)")
    mode.add_argument("--full", action="store_true", help="the long version")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--only", default=None, help="run scenarios whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    custom = ap.add_argument_group("one custom run instead of a profile")
    custom.add_argument("--workers", type=int)
    custom.add_argument("--tasks", type=int, default=10_000)
    custom.add_argument("--sync", default="NORMAL", choices=("OFF", "NORMAL", "FULL", "EXTRA"))
    custom.add_argument("--lock", default="sleep", choices=("sleep", "block"))
    custom.add_argument("--busy-timeout", type=int, default=S.BUSY_TIMEOUT_MS)
    custom.add_argument("--kills", type=int, default=0, help="workers to SIGKILL")
    custom.add_argument("--producer-kills", type=int, default=0)
    a = ap.parse_args()
    profile = "full" if a.full else "quick"
    seed = a.seed if a.seed is not None else random.randrange(1_000_000)
    scenarios = [s for s in PROFILES[profile] if not a.only or a.only in s.name]
    if a.workers:
        profile = "custom"
        name = f"N={a.workers} {a.sync}" + (" blocking" if a.lock == "block" else "")
        if a.kills or a.producer_kills:
            scenarios = [crash_round("crash " + name, a.workers, a.sync, a.tasks, a.kills,
                                     a.producer_kills, timeout=600)]
        else:
            scenarios = [Scenario(name, a.workers, a.sync, a.tasks)]
        scenarios[0].lock = a.lock
        scenarios[0].busy_timeout = a.busy_timeout

    # SIGTERM unwinds like Ctrl-C: children killed, temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cases, problems = check.selftest()
    if problems:
        print("checker self-test FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"checker self-test: ok ({cases} injected violations detected); profile {profile}, "
          f"seed {seed}, {os.cpu_count()} CPUs, SQLite {apsw.sqlite_lib_version()} (apsw)")

    ext_src = find_extension()
    root = tempfile.mkdtemp(prefix="sqlite-task-stress-")
    ext = os.path.join(root, "task0" + os.path.splitext(ext_src)[1])
    shutil.copy2(ext_src, ext)
    results = []
    started = time.monotonic()
    try:
        for i, sc in enumerate(scenarios, 1):
            # By the scenario's place in its profile, so that --seed with
            # --only replays the same run.
            run_seed = seed * 100 + (PROFILES[profile].index(sc) if profile in PROFILES else 0)
            run = Run(sc, ext, root, run_seed)
            rep = run.execute()
            results.append((sc, rep))
            print_run(i, len(scenarios), sc, rep)
            sys.stdout.flush()
            run.board.close()
    finally:
        if a.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_matrix(results)
    failed = [sc.name for sc, rep in results if not passed(sc, rep)]
    print(f"\n{len(results) - len(failed)} of {len(results)} runs passed in "
          f"{time.monotonic() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if failed:
        print(f"to look closer: {sys.argv[0]} --{profile} --seed {seed} --only '{failed[0]}' --keep"
              if profile in PROFILES else f"seed {seed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
