"""Runs the examples of the docs' reference pages and follows the docs' links,
so the documentation cannot drift from the code or point nowhere.

Examples (the pages in PAGES): in ```sql blocks, a statement may be followed
by expected-output lines:
  -- → value      one line per result row; columns joined with '|'; NULL as
                  `NULL`; a trailing `…` means "starts with"
  -- error: msg   the statement fails with exactly this message
A statement with neither must just succeed. All blocks of all pages run in
order, page after page, on one fresh database with the extension loaded (the
first example runs task_init()); later examples use the tasks earlier ones
made, so PAGES is also the order docs/README.md lists the pages in.

Storage: the ```sql block of docs/storage.md is the schema task_init()
creates, and its status CHECK is the one enforced.

Links: every relative link in README.md, BENCHMARKS.md and docs/ names a file,
and an `#anchor` into a markdown file names one of its headings (GitHub's
slugs); every docs page is linked from README.md and from docs/README.md.
"""

import re
from dataclasses import dataclass, field

import apsw
import pytest

from conftest import REPO, connect

# The reference pages whose examples run, in the order they run.
PAGES = (
    "docs/reference/setup.md",
    "docs/reference/enqueue.md",
    "docs/reference/workers.md",
    "docs/reference/admin.md",
    "docs/reference/tasks-table.md",
    "docs/reference/workflows.md",
    "docs/reference/queues.md",
    "docs/reference/operations.md",
    "docs/reference/events.md",
)
STORAGE = "docs/storage.md"
INDEX = "docs/README.md"
RESULT = "-- → "
ERROR = "-- error: "

# Examples that disagree with the extension: statement → reason.
# Each is an expected failure (strict), so fixing either side shows up here.
KNOWN_WRONG = {}

# Files that other changes are writing, which README.md links already: a link
# to one may point nowhere while it is missing. Each must still be missing, so
# that the entry is removed, and links to it checked, once the file lands.
NOT_YET_WRITTEN = {}

# Docs pages that README.md does not link yet, because the change that links
# them is another's (the README's Install section): page → that change. Each
# must still be unlinked, so that the entry is removed once the link lands.
NOT_YET_IN_README = {}


def read(path):
    return (REPO / path).read_text(encoding="utf-8")


@dataclass
class Example:
    sql: str
    page: str
    line: int
    expected: list = field(default_factory=list)
    error: str = None


def page_examples(page):
    """The examples of every ```sql block of one page, in order."""
    found = []
    in_sql = False
    buffer, start = "", 0
    for n, line in enumerate(read(page).splitlines(), 1):
        if not in_sql:
            in_sql = line.strip() == "```sql"
            continue
        if line.strip() == "```":
            assert not buffer.strip(), f"{page}:{start}: unterminated statement {buffer!r}"
            in_sql = False
            continue
        if not buffer.strip() and (line.startswith(RESULT.strip()) or line.startswith(ERROR)):
            assert found, f"{page}:{n}: expectation before any statement"
            if line.startswith(ERROR):
                found[-1].error = line[len(ERROR):]
            else:
                found[-1].expected.append(line[len(RESULT):] if line.startswith(RESULT) else "")
            continue
        if not buffer.strip():
            start = n
        buffer += line + "\n"
        if apsw.complete(buffer):
            found.append(Example(buffer.strip(), page, start))
            buffer = ""
    assert not in_sql, f"{page}: unterminated ```sql block"
    return found


EXAMPLES = [e for page in PAGES for e in page_examples(page)]


def render(row):
    return "|".join("NULL" if v is None else str(v) for v in row)


def matches(got, want):
    return got.startswith(want[:-1]) if want.endswith("…") else got == want


@pytest.fixture(scope="module")
def docs_db(tmp_path_factory):
    db = connect(tmp_path_factory.mktemp("docs") / "docs.db")
    yield db
    db.close()


def test_the_examples_were_found():
    assert {e.page for e in EXAMPLES} == set(PAGES), "every reference page contributes examples"
    assert len(EXAMPLES) >= 30
    assert EXAMPLES[0].sql == "SELECT task_init();"
    assert sum(1 for e in EXAMPLES if e.error) >= 5
    assert set(KNOWN_WRONG) <= {e.sql for e in EXAMPLES}, "a KNOWN_WRONG entry no longer matches an example"


def test_every_reference_page_is_run():
    on_disk = sorted(str(p.relative_to(REPO)) for p in (REPO / "docs" / "reference").glob("*.md"))
    assert on_disk == sorted(PAGES), "a page under docs/reference is missing from PAGES (its examples would not run)"


def test_the_index_lists_the_reference_pages_in_the_order_they_run():
    listed = [t for t in link_targets(INDEX) if t in PAGES]
    assert listed == list(PAGES)


def marks(example):
    if example.sql in KNOWN_WRONG:
        return [pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[example.sql])]
    return []


@pytest.mark.parametrize(
    "example",
    [pytest.param(e, id=f"{e.page}:{e.line}", marks=marks(e)) for e in EXAMPLES],
)
def test_docs_example(docs_db, example):
    if example.error is not None:
        with pytest.raises(apsw.Error) as err:
            docs_db.execute(example.sql).fetchall()
        assert str(err.value) == example.error
        return
    got = [render(r) for r in docs_db.execute(example.sql).fetchall()]
    if not example.expected:
        return
    assert len(got) == len(example.expected), (got, example.expected)
    for g, want in zip(got, example.expected):
        assert matches(g, want), (g, want)


def storage_block(text):
    """The first ```sql block of docs/storage.md, as a list of statements
    with comments removed and whitespace collapsed."""
    sql = text.split("```sql\n", 1)[1].split("```", 1)[0]
    return normalized(sql)


def normalized(sql):
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(s.split()) for s in without_comments.split(";") if s.strip()]


def test_the_storage_page_is_the_schema_task_init_creates(tmp_path):
    db = connect(tmp_path / "storage.db")
    try:
        db.execute("SELECT task_init()").fetchall()
        created = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    finally:
        db.close()
    documented = storage_block(read(STORAGE))
    # Nine tables, ten indexes and three views, as documented and as created,
    # statement for statement (comments and layout aside).
    assert len(documented) == 22, documented
    assert sorted(documented) == sorted(s for (sql,) in created for s in normalized(sql))


def test_the_documented_status_check_is_the_one_enforced(tmp_path):
    # The storage page names the CHECK on status; a direct write of a status
    # it does not list is refused with that name, and every status the page
    # lists is accepted.
    block = " ".join(storage_block(read(STORAGE)))
    name = re.search(r"\bstatus TEXT NOT NULL CONSTRAINT (\w+) CHECK \(", block).group(1)
    statuses = re.findall(r"status = '(\w+)'", block.split(f"CONSTRAINT {name} CHECK", 1)[1].split("),", 1)[0])
    assert statuses == ["queued", "running", "completed", "failed", "cancelled", "blocked", "waiting"]
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


# Links.

LINKED = ["README.md", "BENCHMARKS.md"] + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text, keep_code=False):
    """The lines of a markdown text outside fenced code blocks, as (line
    number, line) pairs; inline code spans blanked unless keep_code."""
    out, fence = [], None
    for n, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"\s*(```|~~~)", line)
        if marker and (fence is None or marker.group(1) == fence):
            fence = marker.group(1) if fence is None else None
            continue
        if fence is None:
            out.append((n, line if keep_code else re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)))
    return out


def links(path):
    """(line, target) of every relative link in a markdown file."""
    return [
        (n, m.group(1))
        for n, line in prose(read(path))
        for m in LINK.finditer(line)
        if not re.match(r"[a-z][a-z0-9+.-]*:", m.group(1))  # http:, mailto:, ...
    ]


def link_targets(path):
    """The files a markdown file links to, relative to the repo, in order."""
    base = (REPO / path).parent
    return [
        str((base / target.split("#", 1)[0]).resolve().relative_to(REPO))
        for _, target in links(path)
        if not target.startswith("#")
    ]


def slug(heading):
    """GitHub's anchor for a heading: its text (link text for links),
    lowercased, without punctuation, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    """The anchors of a markdown file's headings; a repeated one gets -1, -2, ..."""
    seen, out = {}, set()
    for _, line in prose(read(path), keep_code=True):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            out.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return out


def test_slugs_are_githubs():
    assert slug("Triggers, transactions and `trusted_schema`") == "triggers-transactions-and-trusted_schema"
    assert slug("task_claim(worker [, options])") == "task_claimworker--options"
    assert slug("Concurrency: the one trap") == "concurrency-the-one-trap"
    assert slug("The `tasks` table") == "the-tasks-table"


@pytest.mark.parametrize("path", LINKED)
def test_links_resolve(path):
    base = (REPO / path).parent
    broken = []
    for n, target in links(path):
        file, _, anchor = target.partition("#")
        resolved = (base / file).resolve() if file else REPO / path
        name = str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(resolved)
        if not resolved.exists():
            if name not in NOT_YET_WRITTEN:
                broken.append(f"{path}:{n}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(name):
            broken.append(f"{path}:{n}: {target}: no heading #{anchor} in {name}")
    assert not broken, "\n".join(broken)


def test_not_yet_written_files_are_still_missing():
    landed = sorted(p for p in NOT_YET_WRITTEN if (REPO / p).exists())
    assert not landed, f"{landed} exist now: remove them from NOT_YET_WRITTEN so that links to them are checked"


@pytest.mark.parametrize("index", ["README.md", INDEX])
def test_every_docs_page_is_linked(index):
    pages = {p for p in LINKED if p.startswith("docs/") and p != INDEX} | {
        p for p in NOT_YET_WRITTEN if p.startswith("docs/")
    }
    if index == "README.md":
        pages.add(INDEX)
        pages -= set(NOT_YET_IN_README)
    assert pages <= set(link_targets(index)), f"{index} does not link {sorted(pages - set(link_targets(index)))}"


def test_pages_not_yet_in_the_readme_are_still_unlinked():
    linked = sorted(p for p in NOT_YET_IN_README if p in link_targets("README.md"))
    assert not linked, f"README.md links {linked} now: remove them from NOT_YET_IN_README"
    assert all((REPO / p).exists() for p in NOT_YET_IN_README)
