"""The worker loop over the SQL verbs of docs/reference/workers.md: claim with a
long poll, hand the task to a function, let it report progress and heartbeats
(with its attempt, the fencing token), complete the task with the function's
return value or fail it with the text of its exception, and stop on SIGINT or
SIGTERM without leaving the task running. The SQL stays the interface; this
is the loop every Python worker would otherwise write by hand.

    def resize(task):
        for n, path in enumerate(task.details["paths"]):
            ...
            task.progress(100 * (n + 1) / len(task.details["paths"]))
        return {"done": len(task.details["paths"])}

    Worker(db, {"resize": resize}, queue="images").run()

Stopping, decided here: the first SIGINT or SIGTERM stops the loop after the
task in hand. That task runs to its end and is completed or failed as usual;
a long poll in progress ends at once, its claim returning nothing; the
function can look at Task.stopping to end early. A second signal while the function runs raises Interrupted in
it, and the worker gives the task back: task_fail with delay 0 puts it back
in its queue at once, for this worker's successor or another worker. That
costs the task one of its attempts, as a lease that runs out would (on its
last attempt it fails, with the reason as its error). Finishing comes first
because most tasks are short, supervisors send SIGTERM with a grace period
(systemd 90 s, Kubernetes 30 s by default), and a task given back repeats
its work. Either way the task ends completed, queued or failed, never
running; only a SIGKILL or a crash leaves it running, until its lease runs
out and the next claim takes it over (tests/stress proves that part).

Transactions: a function may write on the worker's connection. What it
leaves uncommitted commits together with the completion, and is rolled back
when the task fails, is given back or turns out to be lost, so the task's
effects and its completion are one transaction (the write lock is then held
from the function's first write to the completion: keep such tasks short,
and start a transaction of your own with BEGIN IMMEDIATE).

Errors: what the queue refuses because the task is no longer this attempt's
(cancelled, claimed again after its lease ran out, deleted) is an outcome
('cancelled', 'lost'), logged, and the loop goes on; any other database
error (SQLITE_BUSY past the busy timeout, a closed connection, bad options)
propagates out of run(), since the loop cannot go on without its database.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Union

log = logging.getLogger("sqlite_task")

MAX_WAIT_MS = 3_600_000  # task_claim's own bound on `wait`

Handler = Callable[["Task"], Any]


class Fail(Exception):
    """Raise it in a task's function to fail the task with exactly this
    message: `retry=False` fails it for good whatever attempts remain,
    `delay_ms` retries it after that many ms instead of the backoff."""

    def __init__(self, message: str, *, retry: bool = True, delay_ms: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.delay_ms = delay_ms


class TaskLost(BaseException):
    """Raised by Task.progress and Task.heartbeat when the task is no longer
    this attempt's: it was cancelled (`cancelled` is True), or it was claimed
    again after its lease ran out, or deleted. The function should stop: the
    queue refuses its results now. A BaseException, as KeyboardInterrupt is,
    so that an `except Exception` in the function does not swallow it."""

    def __init__(self, message: str, *, cancelled: bool = False):
        super().__init__(message)
        self.cancelled = cancelled


class Interrupted(BaseException):
    """Raised inside the task's function by a second SIGINT or SIGTERM; the
    worker then gives the task back (see the module's docstring)."""


@dataclass
class Task:
    """A claimed task, as task_claim returns it, with the calls its function
    makes while it runs. `details` is the enqueued JSON, decoded."""

    id: str
    type: str
    queue: str
    details: Any
    attempt: int
    max_attempts: int
    priority: int
    parent_id: Optional[str]
    run_at: int
    lease_until: int
    created_at: int
    _worker: "Worker" = field(repr=False, compare=False)

    @property
    def stopping(self) -> bool:
        """True once the worker was asked to stop: it will claim no other task
        after this one; a long task may end early."""
        return self._worker.stopping

    def progress(self, percent: float, *, writeback_ms: Optional[int] = None) -> None:
        """task_progress(id, percent, {"attempt": …}): records progress (0 … 100)
        and renews the lease. `writeback_ms` holds reports in memory between
        writes (docs/reference/workers.md, write-back). Raises TaskLost if the
        task is no longer this attempt's."""
        self._report("task_progress", "SELECT task_progress(?, ?, ?)", self.id, percent,
                     self._worker._options(attempt=self.attempt, writeback=writeback_ms))

    def heartbeat(self, *, lease_ms: Optional[int] = None) -> None:
        """task_heartbeat(id, {"attempt": …}): renews the lease without
        changing the progress (`lease_ms` renews it at once, to that length).
        Raises TaskLost if the task is no longer this attempt's."""
        self._report("task_heartbeat", "SELECT task_heartbeat(?, ?)", self.id,
                     self._worker._options(attempt=self.attempt, lease=lease_ms))

    def _report(self, verb: str, sql: str, *args: Any) -> None:
        try:
            status = self._worker._value(sql, *args)
        except Exception as e:
            refusal = self._worker._refusal(self, verb, e)
            if refusal is None:
                raise
            raise TaskLost(refusal, cancelled=self._is_cancelled(refusal)) from e
        if status == "cancelled":
            raise TaskLost(f"{verb}: task {self.id} was cancelled", cancelled=True)

    def _is_cancelled(self, message: str) -> bool:
        return f"task {self.id} is cancelled, not running" in message


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed task. `status` is what the queue said:
    'completed' (or 'waiting', a parent whose children have not finished),
    'queued' (failed or given back, attempts left: it will run again),
    'failed' (for good), 'cancelled' or 'lost' (the task was no longer this
    attempt's; nothing was written). `result` is the function's return value;
    `error`, the text stored as the task's error, or the queue's refusal."""

    task: Task
    status: str
    result: Any = None
    error: Optional[str] = None


class Worker:
    """Claims tasks on `conn` (an apsw or sqlite3-compatible connection with
    the extension loaded and task_init() run) and runs them, one at a time.

    handler   a function of one Task, or a mapping from task type to such a
              function (a task of another type fails for good, naming it)
    name      the worker's name in tasks.worker; default host-pid
    queue     a queue name or a list of names; default every queue
    lease_ms  the lease of each claim; default the extension's (5 minutes).
              The function must call progress or heartbeat within it.
    wait_ms   the long poll of one claim (task_claim's `wait`): an idle
              worker sleeps in it until a task can be claimed, then claims
              again. A signal ends it at once; stop() from another thread
              takes effect at its end, so the default is a second, which
              costs an idle worker one read a second.
    now       a clock (ms since the epoch) passed as {"now": …} to every call:
              for tests and deterministic replays; default the system clock
    handle_signals  run() turns SIGINT and SIGTERM into a graceful stop
              (when called from the main thread), restoring the previous
              handlers when it returns
    """

    def __init__(self, conn: Any, handler: Union[Handler, Mapping[str, Handler]], *,
                 name: Optional[str] = None, queue: Union[str, Sequence[str], None] = None,
                 lease_ms: Optional[int] = None, wait_ms: int = 1_000,
                 now: Optional[Callable[[], int]] = None, handle_signals: bool = True):
        if not (callable(handler) or isinstance(handler, Mapping)):
            raise TypeError(f"Worker: handler must be a function of a Task or a mapping from task "
                            f"type to one, got {type(handler).__name__}")
        if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or not 0 <= wait_ms <= MAX_WAIT_MS:
            raise ValueError(f"Worker: wait_ms must be an integer from 0 to {MAX_WAIT_MS}, got {wait_ms!r}")
        self.conn = conn
        self.handler = handler
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.queue = queue if queue is None or isinstance(queue, str) else list(queue)
        self.lease_ms = lease_ms
        self.wait_ms = wait_ms
        self.handle_signals = handle_signals
        self.current: Optional[Task] = None  # the task in hand
        self._now = now
        self._stop: Optional[str] = None  # why the loop stops: a signal's name, or 'stop()'
        self._signals = 0
        self._give_back: Optional[str] = None  # the signal that asked to give the task back
        self._in_function = False

    # --- the loop -------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop is not None

    def stop(self) -> None:
        """Asks run() to return after the task in hand (from a task's function,
        another thread or a handler of your own)."""
        if self._stop is None:
            self._stop = "stop()"

    def run(self, *, max_tasks: Optional[int] = None, stop_when_idle: bool = False) -> int:
        """Claims and runs tasks until stopped (a signal, stop()), until
        `max_tasks` have run, or, with `stop_when_idle`, until a claim finds
        nothing within wait_ms. Returns the number of tasks it ran; the worker
        can run again after it returned."""
        if self.wait_ms == 0 and not stop_when_idle:
            raise ValueError("Worker.run: wait_ms=0 with nothing to stop an idle worker would claim "
                             "in a busy loop; give wait_ms (the long poll) or stop_when_idle=True")
        ran, why = 0, "max_tasks"
        try:
            with self._signal_handlers():
                log.info("worker %s: waiting for tasks on %s (long poll %d ms)", self.name,
                         "every queue" if self.queue is None else self.queue, self.wait_ms)
                while max_tasks is None or ran < max_tasks:
                    outcome = self.run_one()
                    if self._stop is not None:
                        why = self._stop
                        ran += outcome is not None
                        break
                    if outcome is None:
                        if stop_when_idle:
                            why = "idle"
                            break
                        continue
                    ran += 1
            log.info("worker %s: stopped (%s) after %d task%s", self.name, why, ran,
                     "" if ran == 1 else "s")
            return ran
        finally:
            self._stop, self._signals, self._give_back = None, 0, None

    def run_one(self) -> Optional[Outcome]:
        """One claim (with its long poll) and, if it got a task, its run.
        Returns the outcome, or None when no task came within wait_ms."""
        if self._stop is not None:  # a signal that came just before the claim
            return None
        text = self._value("SELECT task_claim(?, ?)", self.name,
                           self._options(queue=self.queue, lease=self.lease_ms, wait=self.wait_ms))
        if text is None:
            return None
        task = self._task(json.loads(text))
        self.current = task
        try:
            log.info("worker %s: claimed task %s (%s, attempt %d of %d)", self.name, task.id,
                     task.type, task.attempt, task.max_attempts)
            return self._run(task)
        finally:
            self.current = None

    # --- one task ---------------------------------------------------------------

    def _run(self, task: Task) -> Outcome:
        try:
            try:
                self._in_function = True
                if self._give_back is not None:  # asked before the function began
                    raise Interrupted(self._give_back)
                value = self._handler_for(task)(task)
            finally:
                self._in_function = False
            result = None if value is None else json.dumps(value)
        except Interrupted as e:
            return self._give_task_back(task, str(e))
        except TaskLost as e:
            self._end_transaction(commit=False)
            return self._lost(task, str(e), cancelled=e.cancelled)
        except Exception as e:
            return self._fail(task, e)
        except BaseException as e:  # KeyboardInterrupt, SystemExit: give back, then go on up
            self._give_task_back(task, type(e).__name__)
            raise
        return self._complete(task, value, result)

    def _handler_for(self, task: Task) -> Handler:
        if not isinstance(self.handler, Mapping):
            return self.handler
        fn = self.handler.get(task.type)
        if fn is None:
            raise Fail(f"worker {self.name} has no function for task type {task.type!r} "
                       f"(it runs {', '.join(map(repr, sorted(self.handler)))})", retry=False)
        return fn

    def _complete(self, task: Task, value: Any, result: Optional[str]) -> Outcome:
        status = self._finish(task, "task_complete", result, self._options(attempt=task.attempt))
        if isinstance(status, Outcome):
            return status
        self._end_transaction(commit=True)
        log.info("worker %s: task %s %s", self.name, task.id, status)
        return Outcome(task, status, result=value)

    def _fail(self, task: Task, exc: Exception) -> Outcome:
        self._end_transaction(commit=False)
        if isinstance(exc, Fail):
            error = exc.message
            options = self._options(attempt=task.attempt, retry=None if exc.retry else False,
                                    delay=exc.delay_ms)
        else:
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            options = self._options(attempt=task.attempt)
        status = self._finish(task, "task_fail", error, options)
        if isinstance(status, Outcome):
            return status
        log.warning("worker %s: task %s attempt %d of %d failed, %s: %s", self.name, task.id,
                    task.attempt, task.max_attempts,
                    "queued again" if status == "queued" else "for good", error,
                    exc_info=None if isinstance(exc, Fail) else exc)
        return Outcome(task, status, error=error)

    def _give_task_back(self, task: Task, why: str) -> Outcome:
        self._end_transaction(commit=False)
        error = f"interrupted: worker {self.name} stopped by {why} during attempt {task.attempt}"
        status = self._finish(task, "task_fail", error, self._options(attempt=task.attempt, delay=0))
        if isinstance(status, Outcome):
            return status
        log.info("worker %s: task %s given back (%s)", self.name, task.id,
                 "queued again" if status == "queued" else "failed: it was its last attempt")
        return Outcome(task, status, error=error)

    def _finish(self, task: Task, verb: str, *args: Any) -> Union[str, Outcome]:
        """`SELECT verb(id, *args)`: the status it returns; or, when the queue
        refuses it because the task is no longer this attempt's, the 'lost' or
        'cancelled' outcome. Either error rolls back what the function left
        open; any other goes on up."""
        try:
            return str(self._value(f"SELECT {verb}(?{', ?' * len(args)})", task.id, *args))
        except Exception as e:
            self._end_transaction(commit=False)
            refusal = self._refusal(task, verb, e)
            if refusal is None:
                raise
            return self._lost(task, refusal, cancelled=task._is_cancelled(refusal))

    def _lost(self, task: Task, refusal: str, *, cancelled: bool) -> Outcome:
        log.warning("worker %s: task %s %s: %s", self.name, task.id,
                    "was cancelled" if cancelled else "is no longer this worker's", refusal)
        return Outcome(task, "cancelled" if cancelled else "lost", error=refusal)

    # --- SQL ---------------------------------------------------------------------

    def _value(self, sql: str, *args: Any) -> Any:
        return self.conn.execute(sql, args).fetchall()[0][0]

    def _options(self, **options: Any) -> str:
        given: Dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        if self._now is not None:
            given["now"] = int(self._now())
        return json.dumps(given)

    def _refusal(self, task: Task, verb: str, err: Exception) -> Optional[str]:
        """The message, if `err` is the queue refusing `verb` because the task
        is no longer this attempt's (docs/concepts.md, fencing); else None."""
        message = str(err)
        if not message.startswith(verb + ": "):
            return None
        gone = (f"task {task.id} not found" in message
                or f"of task {task.id} is stale" in message
                or (f"task {task.id} is " in message and message.endswith(", not running")))
        return message if gone else None

    def _end_transaction(self, *, commit: bool) -> None:
        """Commits or rolls back what the function left open on the connection."""
        conn = self.conn
        open_ = getattr(conn, "in_transaction", None)
        if open_ is None:  # an apsw older than in_transaction
            open_ = not conn.getautocommit()
        if not open_:
            return
        if hasattr(conn, "commit"):  # sqlite3 and its kin
            conn.commit() if commit else conn.rollback()
        else:  # apsw
            conn.execute("COMMIT" if commit else "ROLLBACK")

    def _task(self, claimed: Dict[str, Any]) -> Task:
        return Task(id=claimed["id"], type=claimed["type"], queue=claimed["queue"],
                    details=claimed.get("details"), attempt=claimed["attempt"],
                    max_attempts=claimed["max_attempts"], priority=claimed["priority"],
                    parent_id=claimed.get("parent_id"), run_at=claimed["run_at"],
                    lease_until=claimed["lease_until"], created_at=claimed["created_at"],
                    _worker=self)

    # --- signals -------------------------------------------------------------------

    @contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        why = signal.Signals(signum).name
        self._signals += 1
        if self._signals == 1:
            if self._stop is None:
                self._stop = why
            task = self.current
            if task is None:
                log.info("worker %s: %s: stopping", self.name, why)
            else:
                log.info("worker %s: %s: stopping after task %s; a second SIGINT or SIGTERM "
                         "gives it back", self.name, why, task.id)
            return
        if self.current is not None and self._give_back is None:
            self._give_back = why
            log.info("worker %s: %s again: giving task %s back", self.name, why, self.current.id)
            if self._in_function:
                raise Interrupted(why)
