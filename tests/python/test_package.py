"""The Python package as a user gets it: the wheel `make python` builds
(python/build_wheel.py), installed by pip into a new virtual environment
(conftest's `wheel_venv`) beside apsw, sqlean.py and pysqlite3-binary.

The wheel: its files and RECORD, the extension byte for byte, a platform tag
that is the newest glibc symbol version the extension needs (readelf's
count, not the script's), the crate's version, a build that gives the same
bytes twice. Installed: `sqlite_task` imports from the environment, and
`load(conn)` works with each driver, proven by a task's life through plain
SQL and through the Worker (whose function writes on the connection: the
sqlite3-like drivers' implicit transactions commit with the completion);
extension loading is off again afterwards. The standard library's sqlite3:
where the interpreter's build can load extensions (Debian's python3) it
works like the others; where it cannot (pyenv's and macOS's builds) `load`
raises LoadError naming the drivers that can. Which one runs depends on
the Python that made the venv; both assert. The ```python blocks of
docs/python.md run in it too, and print what their comments say.
"""

import base64
import hashlib
import json
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import EXT, REPO, WHEELS, the_wheel

sys.path.insert(0, str(REPO / "python"))
import sqlite_task  # noqa: E402  (this checkout's source, which has no task0.so)

BUILD = REPO / "python" / "build_wheel.py"
GUIDE = REPO / "docs" / "python.md"
SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"
LOADABLE = Path(EXT + SUFFIX)
ALTERNATIVES = ("use apsw (pip install apsw), sqlean.py (pip install sqlean.py) or pysqlite3-binary "
                "(pip install pysqlite3-binary)")

# Run by the venv's python: DRIVER DB → one JSON line (or the LoadError).
LIFECYCLE = r'''
import importlib, json, sys
import sqlite_task

driver, path = sys.argv[1], sys.argv[2]
if driver == "apsw":
    import apsw
    db = apsw.Connection(path)
else:
    db = importlib.import_module(driver).connect(path)
db.execute("PRAGMA journal_mode = WAL").fetchall()
try:
    sqlite_task.load(db)
except sqlite_task.LoadError as e:
    print(json.dumps({"load_error": str(e), "is_runtime_error": isinstance(e, RuntimeError)}))
    sys.exit(0)

def one(sql, *args):
    return db.execute(sql, args).fetchall()[0][0]

out = {"version": one("SELECT task_version()"), "init": one("SELECT task_init()")}
tid = one("SELECT task_enqueue('resize', '{\"path\": \"a.png\"}', '{\"now\": 1000}')")
claimed = json.loads(one("SELECT task_claim('w1', '{\"now\": 2000}')"))
fence = json.dumps({"attempt": claimed["attempt"], "now": 3000})
out["claimed"] = [claimed["id"] == tid, claimed["details"], claimed["attempt"]]
out["progress"] = one("SELECT task_progress(?, 40, ?)", tid, fence)
out["complete"] = one("SELECT task_complete(?, '{\"out\": \"a.webp\"}', ?)", tid, fence)
out["row"] = list(db.execute("SELECT status, progress, result, worker, completed_at FROM tasks WHERE id = ?",
                             (tid,)).fetchall()[0])

db.execute("CREATE TABLE made (path TEXT)")
def resize(task):
    db.execute("INSERT INTO made VALUES (?)", (task.details["path"],))
    task.progress(50)
    return {"out": task.details["path"] + ".webp"}
second = one("SELECT task_enqueue('resize', '{\"path\": \"b.png\"}')")
outcome = sqlite_task.Worker(db, {"resize": resize}, name="w2", wait_ms=0).run_one()
out["worker"] = [outcome.task.id == second, outcome.status, outcome.result]
try:
    db.execute("SELECT load_extension('nothing')").fetchall()
    out["sql_load_extension"] = "allowed"
except Exception as e:
    out["sql_load_extension"] = str(e)
db.close()

# What another connection sees: the function's row and the completion, committed.
if driver == "apsw":
    db = apsw.Connection(path)
else:
    db = importlib.import_module(driver).connect(path)
out["committed"] = [list(r) for r in db.execute(
    "SELECT (SELECT group_concat(path) FROM made), status, result FROM task_store WHERE id = ?",
    (second,)).fetchall()]
print(json.dumps(out))
'''

WORKS = {
    "version": None,  # filled in: "v" + the wheel's version
    "init": 9,
    "claimed": [True, {"path": "a.png"}, 1],
    "progress": "running",
    "complete": "completed",
    "row": ["completed", 100, '{"out": "a.webp"}', "w1", 3000],
    "worker": [True, "completed", {"out": "b.png.webp"}],
    "sql_load_extension": "not authorized",
    "committed": [["b.png", "completed", '{"out": "b.png.webp"}']],
}


def wheel_version():
    return the_wheel().name.split("-")[1]


def run_lifecycle(venv, tmp_path, driver):
    done = venv.run("-c", LIFECYCLE, driver, tmp_path / "task.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the wheel ---------------------------------------------------------------------

def glibc_needed(path):
    """The newest GLIBC_x.y that readelf says the file needs."""
    out = subprocess.run(["readelf", "-V", str(path)], capture_output=True, text=True, check=True).stdout
    needs = out.split(".gnu.version_r", 1)[1]
    return max(tuple(map(int, v)) for v in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", needs))


def test_the_wheel_carries_the_package_and_the_extension():
    wheel = the_wheel()
    version = wheel_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    cargo = re.search(r'^\[package\]\nname = "sqlite-task"\nversion = "([^"]+)"',
                      (REPO / "Cargo.toml").read_text(), re.M).group(1)
    assert version == cargo
    info = f"sqlite_task-{version}.dist-info"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert sorted(names) == sorted([
            "sqlite_task/__init__.py", "sqlite_task/worker.py", "sqlite_task/py.typed",
            f"sqlite_task/task0{SUFFIX}", f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"])
        assert names[-1] == f"{info}/RECORD"
        for source in ("__init__.py", "worker.py", "py.typed"):
            assert z.read(f"sqlite_task/{source}") == (REPO / "python" / "sqlite_task" / source).read_bytes(), (
                f"{wheel.name} is older than python/sqlite_task/{source}: run `make python`")
        assert z.read(f"sqlite_task/task0{SUFFIX}") == LOADABLE.read_bytes(), f"{wheel.name} is older than {LOADABLE}"
        assert z.getinfo(f"sqlite_task/task0{SUFFIX}").external_attr >> 16 & 0o777 == 0o755
        # RECORD: every other file with its sha256 (urlsafe base64, unpadded) and size.
        record = [line.split(",") for line in z.read(f"{info}/RECORD").decode().splitlines()]
        assert [r[0] for r in record] == names
        for name, digest, size in record[:-1]:
            data = z.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        assert record[-1] == [f"{info}/RECORD", "", ""]
        tag = wheel.name[:-len(".whl")].split("-", 2)[2]
        wheel_file = z.read(f"{info}/WHEEL").decode()
        assert wheel_file.splitlines() == ["Wheel-Version: 1.0", "Generator: sqlite-task python/build_wheel.py",
                                           "Root-Is-Purelib: false", f"Tag: {tag}"]
        metadata = z.read(f"{info}/METADATA").decode()
        head = dict(line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines())
        assert (head["Metadata-Version"], head["Name"], head["Version"], head["Requires-Python"]) == (
            "2.1", "sqlite-task", version, ">=3.9")
        assert metadata.split("\n\n", 1)[1] == (REPO / "python" / "README.md").read_text()
    if sys.platform.startswith("linux"):
        major, minor = glibc_needed(LOADABLE)
        assert tag == f"py3-none-manylinux_{major}_{minor}_{platform.machine()}"


def test_the_build_gives_the_same_bytes_and_replaces_older_wheels(tmp_path):
    (tmp_path / "sqlite_task-0.0.1-py3-none-any.whl").write_bytes(b"an older build")
    again = tmp_path / "again"
    for out in (tmp_path, again):
        done = subprocess.run([sys.executable, str(BUILD), str(LOADABLE), str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{out / the_wheel().name}\n"
    assert [p.name for p in tmp_path.glob("*.whl")] == [the_wheel().name]
    assert (tmp_path / the_wheel().name).read_bytes() == (again / the_wheel().name).read_bytes() == the_wheel().read_bytes()


def test_the_build_refuses_a_missing_extension(tmp_path):
    done = subprocess.run([sys.executable, str(BUILD), str(tmp_path / "task0.so"), str(tmp_path)],
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (
        1, f"build_wheel.py: {tmp_path / 'task0.so'} does not exist: run `make loadable` first\n")
    assert not list(tmp_path.iterdir())


def test_the_source_tree_alone_has_no_extension_to_load():
    with pytest.raises(sqlite_task.LoadError) as err:
        sqlite_task.loadable_path()
    assert str(err.value) == (
        f"sqlite_task: the bundled extension {REPO / 'python' / 'sqlite_task' / ('task0' + SUFFIX)} is "
        "missing: this copy of the package was not installed from a wheel built with the extension "
        "(`make python` builds one)")


# --- installed -----------------------------------------------------------------------

def test_pip_installs_it_into_a_new_venv(wheel_venv, tmp_path):
    done = wheel_venv.run("-c", "import json, sqlite_task, os; p = sqlite_task.loadable_path(); "
                          "print(json.dumps([sqlite_task.__file__, p, os.path.isfile(p), "
                          "os.path.isfile(os.path.join(os.path.dirname(p), 'py.typed'))]))", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    module, path, is_file, typed = json.loads(done.stdout)
    site = wheel_venv.root / "lib"
    assert Path(module).is_relative_to(site) and Path(path).is_relative_to(site), (module, path)
    assert Path(path).name == "task0" + SUFFIX and is_file and typed
    assert Path(path).read_bytes() == LOADABLE.read_bytes()
    listed = wheel_venv.run("-m", "pip", "show", "sqlite-task", cwd=tmp_path).stdout
    assert f"Version: {wheel_version()}" in listed.splitlines()


@pytest.mark.parametrize("driver", ["apsw", "sqlean", "pysqlite3.dbapi2"])
def test_each_driver_loads_it_and_runs_a_task(wheel_venv, tmp_path, driver):
    assert run_lifecycle(wheel_venv, tmp_path, driver) == {**WORKS, "version": "v" + wheel_version()}


def test_the_standard_librarys_sqlite3_loads_it_or_says_why_not(wheel_venv, tmp_path):
    probe = wheel_venv.run("-c", "import sqlite3, sys; print(hasattr(sqlite3.Connection, 'enable_load_extension'), "
                           "sys.version.split()[0], sys.executable, sqlite3.sqlite_version)", cwd=tmp_path)
    can, version, executable, sqlite = probe.stdout.split()
    got = run_lifecycle(wheel_venv, tmp_path, "sqlite3")
    if can == "True":  # Debian's python3, say
        assert got == {**WORKS, "version": "v" + wheel_version()}
    else:  # pyenv's, macOS's: this machine's python3
        assert got == {"is_runtime_error": True, "load_error": (
            "sqlite_task.load: this Python's sqlite3 module cannot load extensions: it was built without "
            f"them (sqlite3.Connection has no enable_load_extension; Python {version} at {executable}, "
            f"SQLite {sqlite}); {ALTERNATIVES}, or a Python whose sqlite3 can")}


def test_load_says_what_it_takes_when_given_something_else(wheel_venv, tmp_path):
    done = wheel_venv.run("-c", "import sqlite_task\ntry:\n    sqlite_task.load(object())\n"
                          "except sqlite_task.LoadError as e:\n    print(e)", cwd=tmp_path)
    assert done.stdout == (
        "sqlite_task.load: a builtins.object cannot load extensions (it has no enable_load_extension and "
        "load_extension); pass an apsw.Connection, or a connection of sqlite3 (where it can load "
        "extensions), sqlean (sqlean.py) or pysqlite3.dbapi2 (pysqlite3-binary)\n")


# --- docs/python.md ---------------------------------------------------------------

def guide_blocks():
    """The ```python blocks of docs/python.md, in order."""
    blocks, current = [], None
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if current is None:
            if line.strip() == "```python":
                current = []
        elif line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    return blocks


def printed(block):
    """What the block's prints say they print: the comment after each
    `print(...)`; `...` in it stands for any text."""
    return [m.group(1) for m in re.finditer(r"print\(.*\)\s+# (.*)$", block, re.M)]


def says(line, comment):
    return re.fullmatch(".*".join(map(re.escape, comment.split("..."))), line) is not None


def test_the_python_guides_examples_run_and_print_what_they_say(wheel_venv, tmp_path):
    blocks = guide_blocks()
    assert len(blocks) == 5 and all(printed(b) for b in blocks)
    for n, block in enumerate(blocks, 1):
        done = wheel_venv.run("-c", block, cwd=tmp_path)  # one directory: app.db carries over
        assert done.returncode == 0, f"docs/python.md, python block {n}:\n{block}\n{done.stderr}"
        assert done.stdout, f"docs/python.md, python block {n} printed nothing"
        # In order; a print in a branch not taken prints nothing.
        comments = iter(printed(block))
        for line in done.stdout.splitlines():
            assert any(says(line, c) for c in comments), (
                f"docs/python.md, python block {n} printed {line!r}, not what its comments say: {printed(block)}")
