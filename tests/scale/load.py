"""One load run of the scale test, and what it found.

Producer processes enqueue through the primary while worker processes claim
and complete through the server given (the replica, or the primary itself);
once the producers are done the workers drain the queue and exit. Then the
primary's storage is checked: every task completed (nothing lost), exactly
one `claimed` event per task and no expiry (nothing claimed twice; the
workers' own lists say the same), `task_check()` ok, and the replica's rows
equal to the primary's within a few seconds (converged). The throughput is
the tasks completed over the time from the workers' start to the last
worker's exit; it is printed, never asserted.
"""

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hrana import query

HERE = Path(__file__).resolve().parent


@dataclass
class Figures:
    label: str
    tasks: int = 0
    completed: int = 0          # by the workers' count
    done: int = 0               # completed on the primary
    lost: int = 0
    doubles: int = 0
    expired: int = 0
    errors: Counter = field(default_factory=Counter)
    producer_errors: Counter = field(default_factory=Counter)
    ambiguous_commits: int = 0
    converged: bool = False
    check: str = ""
    seconds: float = 0.0
    per_worker: list = field(default_factory=list)

    @property
    def rate(self):
        return self.completed / self.seconds if self.seconds else 0.0

    def line(self):
        errors = sum(self.errors.values()) + sum(self.producer_errors.values())
        return (f"{self.label}: {self.completed}/{self.tasks} completed in {self.seconds:.1f} s "
                f"= {self.rate:,.0f} tasks/s; errors {errors}, double claims {self.doubles}, "
                f"lost {self.lost}, expired {self.expired}, converged {self.converged}, "
                + (f"commits that failed after the verb {self.ambiguous_commits}, "
                   if self.ambiguous_commits else "") +
                f"per worker {self.per_worker}")

    def details(self):
        out = [self.line()]
        for message, n in (self.errors + self.producer_errors).most_common():
            out.append(f"    {n} × {message}")
        return "\n".join(out)


def _addr(addr):
    return f"{addr[0]}:{addr[1]}"


class Wedged(AssertionError):
    """The run did not finish in time. `server_stuck` says whether the
    primary then also failed to start a plain `BEGIN IMMEDIATE` (no extension
    function involved) within 5 s: its write lock is stuck, not the queue."""

    def __init__(self, message, server_stuck):
        super().__init__(message)
        self.server_stuck = server_stuck


def run(cluster, label, *, through, form="immediate", batch=0, workers=4, producers=2,
        tasks=400, enqueue_batch=100, busy_timeout=0, queue=None, deadline=30):
    """Runs producers (through the primary) and `workers` worker processes
    (through `through`), checks the primary's storage and the replica, and
    returns the Figures."""
    queue = queue or label.replace(" ", "-")
    work = cluster.root / queue
    work.mkdir()
    stop = work / "stop"
    py = sys.executable
    share = [tasks // producers + (i < tasks % producers) for i in range(producers)]
    prods = [subprocess.Popen([py, str(HERE / "producer.py"), "--url", _addr(cluster.primary),
                               "--name", f"p{i}", "--queue", queue, "--count", str(n),
                               "--batch", str(enqueue_batch), "--out", str(work / f"p{i}.json")])
             for i, n in enumerate(share)]
    started = time.monotonic()
    procs = [subprocess.Popen([py, str(HERE / "worker.py"), "--url", _addr(through),
                               "--name", f"w{i}", "--queue", queue, "--form", form,
                               "--batch", str(batch), "--busy-timeout", str(busy_timeout),
                               "--stop", str(stop),
                               "--out", str(work / f"w{i}.json")])
             for i in range(workers)]
    try:
        for p in prods:
            p.wait(max(1, started + deadline - time.monotonic()))
        stop.touch()
        for p in procs:
            p.wait(max(1, started + deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stuck = not cluster.primary_takes_writes(5)
        raise Wedged(f"{label}: not done after {deadline} s; the primary "
                     + ("takes no write lock at all (a plain BEGIN IMMEDIATE waited 5 s)"
                        if stuck else "still takes writes")
                     + "; its log ends with:\n" + cluster.log("primary", 1500), stuck) from None
    finally:
        for p in prods + procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    seconds = time.monotonic() - started
    for p in prods + procs:
        assert p.returncode == 0, f"{p.args[1]} exited with {p.returncode}"

    f = Figures(label, seconds=seconds)
    claims = Counter()
    for i in range(producers):
        r = json.loads((work / f"p{i}.json").read_text())
        f.tasks += r["enqueued"]
        f.producer_errors.update(r["errors"])
    for i in range(workers):
        r = json.loads((work / f"w{i}.json").read_text())
        f.completed += r["completed"]
        f.errors.update(r["errors"])
        f.ambiguous_commits += r["ambiguous_commits"]
        f.per_worker.append(r["completed"])
        claims.update(task_id for task_id, _attempt in r["claimed"])

    p = cluster.primary
    stored, done = query(*p, "SELECT count(*), count(*) FILTER (WHERE status = 'completed') "
                             "FROM tasks WHERE queue = ?", queue)[0]
    # lost: enqueued but not completed (or stored other than as enqueued)
    f.done = done
    f.lost = (stored - done) + abs(f.tasks - stored)
    event_claims = query(*p, "SELECT task_id, count(*) FROM task_events "
                             "WHERE queue = ? AND kind = 'claimed' GROUP BY task_id", queue)
    # doubles: a task with more than one claimed event on the primary, or
    # handed to the workers more than once
    doubled = {t for t, n in event_claims if n > 1} | {t for t, n in claims.items() if n > 1}
    f.doubles = len(doubled)
    f.expired = query(*p, "SELECT count(*) FROM task_events WHERE queue = ? AND kind = 'expired'",
                      queue)[0][0]
    f.check = query(*p, "SELECT task_check()")[0][0]
    f.converged = cluster.wait_converged(10)
    return f
