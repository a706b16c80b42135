"""sqlite-task for Python: the compiled extension, loaded into a connection.

    import apsw, sqlite_task
    db = apsw.Connection("app.db")
    sqlite_task.load(db)
    db.execute("SELECT task_init()")

The wheel carries the compiled extension (task0.so, .dylib on macOS) next to
this file; `loadable_path()` names it and `load(conn)` loads it into an apsw
connection or any sqlite3-compatible one (the standard library's sqlite3,
sqlean.py's `sqlean`, pysqlite3's `pysqlite3.dbapi2`). Everything else is
SQL: the task_* functions and the `tasks` table (docs/reference/). The
worker loop in `sqlite_task.worker` is sugar over that SQL.

Why duck typing rather than one branch per driver: every one of these
drivers spells it `enable_load_extension(True)` then `load_extension(path)`,
and each ends in sqlite3_load_extension, which finds the entry point
(sqlite3_task_init) from the file name. What differs is whether the
connection has the two methods at all: a standard library sqlite3 built
without --enable-loadable-sqlite-extensions (macOS's system Python, and
Pythons built from source with the default flags, as pyenv builds them) has
neither, and gets an error that says so and names the drivers that can.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .worker import Fail, Interrupted, Outcome, Task, TaskLost, Worker

__all__ = ["Fail", "Interrupted", "LoadError", "Outcome", "Task", "TaskLost", "Worker",
           "load", "loadable_path"]

if sys.platform == "darwin":
    _SUFFIX = ".dylib"
elif sys.platform == "win32":
    _SUFFIX = ".dll"
else:
    _SUFFIX = ".so"

ALTERNATIVES = ("apsw (pip install apsw), sqlean.py (pip install sqlean.py) "
                "or pysqlite3-binary (pip install pysqlite3-binary)")


class LoadError(RuntimeError):
    """The connection cannot load extensions (or the bundled file is missing)."""


def loadable_path() -> str:
    """The path of the bundled extension, with its suffix: task0.so (task0.dylib
    on macOS). Every SQLite loader accepts it as it is (SQLite adds a suffix
    only to a name that does not open), and it names a real file, so it can
    also be copied or handed to another host (`.load` in the sqlite3 shell)."""
    path = Path(__file__).resolve().with_name("task0" + _SUFFIX)
    if not path.is_file():
        raise LoadError(f"sqlite_task: the bundled extension {path} is missing: this copy of the "
                        "package was not installed from a wheel built with the extension "
                        "(`make python` builds one)")
    return str(path)


def load(conn: Any) -> None:
    """Loads sqlite-task into `conn`: an apsw.Connection, or a connection of
    sqlite3, sqlean or pysqlite3.dbapi2. Extension loading is turned on for
    this call only and off again after it, so that SQL cannot call
    load_extension() afterwards. Raises LoadError when the connection cannot
    load extensions; the driver's own error when SQLite refuses the file (a
    host older than SQLite 3.35.4, say)."""
    enable = getattr(conn, "enable_load_extension", None)
    load_extension = getattr(conn, "load_extension", None)
    if enable is None or load_extension is None:
        raise LoadError(_cannot_load(conn))
    path = loadable_path()
    enable(True)
    try:
        load_extension(path)
    finally:
        enable(False)


def _cannot_load(conn: Any) -> str:
    kind = type(conn)
    if kind.__module__ == "sqlite3":
        import sqlite3

        return (f"sqlite_task.load: this Python's sqlite3 module cannot load extensions: it was "
                f"built without them (sqlite3.Connection has no enable_load_extension; Python "
                f"{sys.version.split()[0]} at {sys.executable}, SQLite {sqlite3.sqlite_version}); "
                f"use {ALTERNATIVES}, or a Python whose sqlite3 can")
    return (f"sqlite_task.load: a {kind.__module__}.{kind.__qualname__} cannot load extensions "
            f"(it has no enable_load_extension and load_extension); pass an apsw.Connection, or a "
            f"connection of sqlite3 (where it can load extensions), sqlean (sqlean.py) or "
            f"pysqlite3.dbapi2 (pysqlite3-binary)")
