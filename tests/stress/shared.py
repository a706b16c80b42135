"""What the stress harness's processes share: how they open the database,
the status board they publish their state on, and the log format.

The board is a small memory-mapped file. Each worker owns a slot (its phase:
which call it is inside, and a counter it bumps every loop, so the runner can
tell a hung worker from a busy one); the producer owns one more (the batch it
has open and how many tasks that open transaction holds). The runner reads
the board to time its SIGKILLs, and a killed process's slot keeps the phase
it died in, which is how the summary can say "killed inside task_complete".
The runner in turn writes the producer's budget there: how many tasks it may
have enqueued in all, which is how a crash round's kill plan keeps pace with
the work instead of racing it.

Logs are JSON lines, one os.write each, so a SIGKILL loses at most the record
of the call in flight, never a record already written.
"""

import json
import mmap
import os
import struct
import time

import apsw

BUSY_TIMEOUT_MS = 30000  # docs/concurrency.md's advice (run.py --busy-timeout changes it)

# Queues with a concurrency limit (task_queue), set by the runner before the
# workers start; the producer sends some tasks there and the checker proves
# the limit held.
LIMITS = {"lim": 2}

# Queues with a rate limit (task_queue's rate), set by the runner: claims
# from every queue pass over them while the rate is spent, under load. The
# limit is low enough that bursts of the producer spend it (the summary's
# "at most n claims in a window" reaches the limit), and the checker proves
# that no window of the interval had more claims than the limit.
RATES = {"rated": {"limit": 5, "interval": 100}}

# A queue paused before the workers start and resumed by the runner once
# RESUME_AT of the target is terminal: no claim of its tasks may come
# before the resume (the checker holds the claims' clock to it).
PAUSED = "held"
RESUME_AT = 0.5

# Tenant queues: a share of the tasks is spread over this many queues, so
# the claims from every queue work from the heads they keep (many queues).
TENANTS = 300

# Phases a worker publishes before each call (and IDLE after it).
(IDLE, CLAIM, CLAIM_TXN, CLAIM_BATCH, PROGRESS, HEARTBEAT, COMPLETE, COMPLETE_NEXT, FAIL, STALL,
 POLL, CHILDREN) = range(12)
PHASE_NAMES = {
    IDLE: "between calls", CLAIM: "task_claim", CLAIM_TXN: "claim in BEGIN IMMEDIATE",
    CLAIM_BATCH: "task_claim_batch", PROGRESS: "task_progress", HEARTBEAT: "task_heartbeat",
    COMPLETE: "task_complete", COMPLETE_NEXT: "task_complete_next", FAIL: "task_fail",
    STALL: "stalled past lease", POLL: "idle poll", CHILDREN: "enqueueing children",
}
# Producer phases: between batches, a batch transaction open, inside COMMIT, done,
# and between batches held back by its budget.
P_IDLE, P_OPEN, P_COMMIT, P_DONE, P_WAIT = 20, 21, 22, 23, 24

BOARD_SIZE = 16384
_STOP = 0           # u8: workers exit when they next find nothing to claim
_BUDGET = 8         # i64: tasks the producer may have enqueued in all (written by the runner)
_PRODUCER = 64      # u8 phase; i64 open batch, tasks enqueued in it, batches committed,
                    # counter, tasks committed in all
_SLOTS = 256        # 32 bytes per worker slot: u8 phase, u64 counter
SLOT_SIZE = 32
MAX_SLOTS = (BOARD_SIZE - _SLOTS) // SLOT_SIZE


class Board:
    def __init__(self, path, create=False):
        if create:
            with open(path, "wb") as f:
                f.write(b"\0" * BOARD_SIZE)
        self._f = open(path, "r+b")
        self.mm = mmap.mmap(self._f.fileno(), BOARD_SIZE)

    def close(self):
        self.mm.close()
        self._f.close()

    # Control.
    def stop(self):
        return self.mm[_STOP] == 1

    def set_stop(self):
        self.mm[_STOP] = 1

    def set_budget(self, tasks):
        struct.pack_into("<q", self.mm, _BUDGET, tasks)

    def budget(self):
        return struct.unpack_from("<q", self.mm, _BUDGET)[0]

    # Worker slots.
    def set_phase(self, slot, phase):
        self.mm[_SLOTS + slot * SLOT_SIZE] = phase

    def phase(self, slot):
        return self.mm[_SLOTS + slot * SLOT_SIZE]

    def tick(self, slot):
        off = _SLOTS + slot * SLOT_SIZE + 8
        (n,) = struct.unpack_from("<Q", self.mm, off)
        struct.pack_into("<Q", self.mm, off, n + 1)

    def ticks(self, slot):
        return struct.unpack_from("<Q", self.mm, _SLOTS + slot * SLOT_SIZE + 8)[0]

    # Producer slot.
    def set_producer(self, phase, batch=None, in_batch=None, committed=None, enqueued=None):
        # The phase last: a reader that sees a new phase sees its numbers.
        if batch is not None:
            struct.pack_into("<q", self.mm, _PRODUCER + 8, batch)
        if in_batch is not None:
            struct.pack_into("<q", self.mm, _PRODUCER + 16, in_batch)
        if committed is not None:
            struct.pack_into("<q", self.mm, _PRODUCER + 24, committed)
        if enqueued is not None:
            struct.pack_into("<q", self.mm, _PRODUCER + 40, enqueued)
        self.mm[_PRODUCER] = phase

    def tick_producer(self):
        (n,) = struct.unpack_from("<Q", self.mm, _PRODUCER + 32)
        struct.pack_into("<Q", self.mm, _PRODUCER + 32, n + 1)

    def producer_ticks(self):
        return struct.unpack_from("<Q", self.mm, _PRODUCER + 32)[0]

    def producer(self):
        """(phase, open batch, tasks enqueued in it, batches committed)"""
        return (self.mm[_PRODUCER],) + struct.unpack_from("<qqq", self.mm, _PRODUCER + 8)

    def producer_enqueued(self):
        """Tasks in the database when the producer last went between batches
        (what its budget is measured against)."""
        return struct.unpack_from("<q", self.mm, _PRODUCER + 40)[0]


def connect(db_path, ext, sync, lock="sleep", busy_timeout=BUSY_TIMEOUT_MS, load=True):
    """A connection as docs/concurrency.md advises: WAL, a busy timeout, and the
    synchronous mode under test (a per-connection setting).

    `lock` is how a writer waits for the write lock. apsw's SQLite is built
    with SQLITE_ENABLE_SETLK_TIMEOUT, where the busy timeout also makes WAL
    locks block in the kernel ("block"). Most hosts (Debian's sqlite3,
    better-sqlite3, Python's sqlite3) are not: their busy handler sleeps and
    retries (1, 2, 5, ... 100 ms), which is not fair to a writer that has
    waited long. "sleep" turns the blocking locks off to run like them."""
    db = apsw.Connection(db_path)
    db.setbusytimeout(busy_timeout)
    if lock == "sleep":
        db.setlk_timeout(0, 0)
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    db.execute(f"PRAGMA synchronous = {sync}").fetchall()
    if load:
        db.enable_load_extension(True)
        db.load_extension(ext)
    return db


def now_ms():
    """The clock the extension reads (CLOCK_REALTIME), in whole ms."""
    return time.time_ns() // 1_000_000


class Log:
    """Append-only JSON-lines log; one write(2) per record."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, *record):
        os.write(self.fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self):
        os.close(self.fd)


def read_log(path):
    """The records of a log, and how many trailing lines were cut (a process
    killed mid-write leaves at most one)."""
    records, torn = [], 0
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    torn += 1
    except FileNotFoundError:
        pass
    return records, torn
