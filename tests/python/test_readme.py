"""Runs the README's examples, so the reference cannot drift from the code.

Convention (README.md, sections "Function reference" and "The `tasks` table"):
in ```sql blocks, a statement may be followed by expected-output lines:
  -- → value      one line per result row; columns joined with '|'; NULL as
                  `NULL`; a trailing `…` means "starts with"
  -- error: msg   the statement fails with exactly this message
A statement with neither must just succeed. All blocks run in order on one
fresh database with the extension loaded (the first example runs task_init()).
"""

import re
from dataclasses import dataclass, field

import apsw
import pytest

from conftest import REPO, connect

SECTIONS = ("## Function reference", "## The `tasks` table")
RESULT = "-- → "
ERROR = "-- error: "

# README examples that disagree with the extension: statement → reason.
# Each is an expected failure (strict), so fixing either side shows up here.
KNOWN_WRONG = {}


@dataclass
class Example:
    sql: str
    section: str
    line: int
    expected: list = field(default_factory=list)
    error: str = None


def sections(text):
    """The text of each section in SECTIONS, up to the next '## ' heading."""
    parts = re.split(r"^(?=## )", text, flags=re.M)
    return [(p.splitlines()[0], p) for p in parts if p.splitlines()[0] in SECTIONS]


def examples(text):
    found = []
    offset = {title: text.index(body) for title, body in sections(text)}
    for title, body in sections(text):
        first_line = text[: offset[title]].count("\n") + 1
        in_sql = False
        buffer, start = "", 0
        for n, line in enumerate(body.splitlines(), first_line):
            if not in_sql:
                in_sql = line.strip() == "```sql"
                continue
            if line.strip() == "```":
                assert not buffer.strip(), f"README.md:{start}: unterminated statement {buffer!r}"
                in_sql = False
                continue
            if not buffer.strip() and (line.startswith(RESULT.strip()) or line.startswith(ERROR)):
                assert found, f"README.md:{n}: expectation before any statement"
                if line.startswith(ERROR):
                    found[-1].error = line[len(ERROR):]
                else:
                    found[-1].expected.append(line[len(RESULT):] if line.startswith(RESULT) else "")
                continue
            if not buffer.strip():
                start = n
            buffer += line + "\n"
            if apsw.complete(buffer):
                found.append(Example(buffer.strip(), title, start))
                buffer = ""
    return found


README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLES = examples(README)


def render(row):
    return "|".join("NULL" if v is None else str(v) for v in row)


def matches(got, want):
    return got.startswith(want[:-1]) if want.endswith("…") else got == want


@pytest.fixture(scope="module")
def readme_db(tmp_path_factory):
    db = connect(tmp_path_factory.mktemp("readme") / "readme.db")
    yield db
    db.close()


def test_the_examples_were_found():
    assert {e.section for e in EXAMPLES} == set(SECTIONS)
    assert len(EXAMPLES) >= 30
    assert EXAMPLES[0].sql == "SELECT task_init();"
    assert sum(1 for e in EXAMPLES if e.error) >= 5
    assert set(KNOWN_WRONG) <= {e.sql for e in EXAMPLES}, "a KNOWN_WRONG entry no longer matches an example"


def marks(example):
    if example.sql in KNOWN_WRONG:
        return [pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[example.sql])]
    return []


@pytest.mark.parametrize(
    "example",
    [pytest.param(e, id=f"README.md:{e.line}", marks=marks(e)) for e in EXAMPLES],
)
def test_readme_example(readme_db, example):
    if example.error is not None:
        with pytest.raises(apsw.Error) as err:
            readme_db.execute(example.sql).fetchall()
        assert str(err.value) == example.error
        return
    got = [render(r) for r in readme_db.execute(example.sql).fetchall()]
    if not example.expected:
        return
    assert len(got) == len(example.expected), (got, example.expected)
    for g, want in zip(got, example.expected):
        assert matches(g, want), (g, want)


def storage_block(text):
    """The ```sql block of the README's "## Storage" section, as a list of
    statements with comments removed and whitespace collapsed."""
    body = text.split("\n## Storage\n", 1)[1].split("\n## ", 1)[0]
    sql = body.split("```sql\n", 1)[1].split("```", 1)[0]
    return normalized(sql)


def normalized(sql):
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(s.split()) for s in without_comments.split(";") if s.strip()]


def test_the_storage_section_is_the_schema_task_init_creates(tmp_path):
    db = connect(tmp_path / "storage.db")
    try:
        db.execute("SELECT task_init()").fetchall()
        created = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    finally:
        db.close()
    documented = storage_block(README)
    # Two tables and five indexes, as documented and as created, statement
    # for statement (comments and layout aside).
    assert len(documented) == 7, documented
    assert sorted(documented) == sorted(s for (sql,) in created for s in normalized(sql))


def test_the_documented_status_check_is_the_one_enforced(tmp_path):
    # The Storage section names the CHECK on status; a direct write of a
    # status it does not list is refused with that name, and every status
    # the README lists is accepted.
    block = " ".join(storage_block(README))
    name = re.search(r"\bstatus TEXT NOT NULL CONSTRAINT (\w+) CHECK \(", block).group(1)
    statuses = re.findall(r"status = '(\w+)'", block.split(f"CONSTRAINT {name} CHECK", 1)[1].split("),", 1)[0])
    assert statuses == ["queued", "running", "completed", "failed", "cancelled"]
    db = connect(tmp_path / "check.db")
    try:
        db.execute("SELECT task_init()").fetchall()
        insert = (
            "INSERT INTO task_store(id, queue, type, status, max_attempts, run_at, created_at, updated_at)"
            " VALUES (?, 'q', 't', ?, 3, 0, 0, 0)"
        )
        for n, status in enumerate(statuses):
            db.execute(insert, (f"id{n}", status))
        for status in ("done", "Queued", "queued "):
            with pytest.raises(apsw.ConstraintError) as err:
                db.execute(insert, ("bad", status))
            assert str(err.value) == f"CHECK constraint failed: {name}"
    finally:
        db.close()
