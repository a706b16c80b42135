"""The b-trees each kind of transaction writes, counted from the WAL.

storage/mod.rs lays the storage out so that a plain task's claim and
completion write as few pages as they can: a completed task leaves every
status index, the workflow indexes are partial on `flags` bits a plain task
never sets, and no index is keyed on type or queue. These tests hold the
plain path to that, and say what each workflow feature adds, by counting
the WAL frames each transaction appends with bench/pages.py (a page per
frame, given to the b-tree that owns it). They assert the median
transaction's set of b-trees and its page count, which do not depend on
timing: the means move by a few hundredths when a page splits.
"""

import importlib.util

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("pages", REPO / "bench" / "pages.py")
pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pages)

TASKS, TRANSACTIONS = 1000, 100
WORKFLOW_INDEXES = {"task_store_busy", "task_store_unique", "task_store_parent", "task_store_parked"}


@pytest.fixture(scope="module")
def measured():
    cache = {}

    def get(workload):
        if workload not in cache:
            cache[workload] = pages.measure(workload, TASKS, TRANSACTIONS)
        return cache[workload]

    return get


def written(summary):
    """The b-trees the median transaction writes, and its pages."""
    trees = {b for b, v in summary["by_btree"].items() if v["median"] >= 1}
    return trees, summary["pages_median"]


CLAIM = {"task_store", "task_store_ready", "task_store_running"}
COMPLETE = {"task_store", "task_store_running"}
EVENTS = {"task_event_store"}


@pytest.mark.parametrize(
    "workload, kind, trees",
    [
        # One page each: the row, the ready index it leaves, the running
        # index it enters, the event log's last page.
        ("plain cycle", "claim", CLAIM | EVENTS),
        # A completed task is in no status index: the row and the running
        # index it leaves.
        ("plain cycle", "complete", COMPLETE | EVENTS),
        ("cycle, events off", "claim", CLAIM),
        ("cycle, events off", "complete", COMPLETE),
        # A child's completion counts its parent down: one page more, the
        # row of three columns in task_parent_store.
        ("child cycle", "claim", CLAIM | EVENTS),
        ("child cycle", "complete", COMPLETE | EVENTS | {"task_parent_store"}),
        # A limited queue's running tasks each hold a slot in the unique
        # index, taken by the claim and given back by the completion.
        ("limited cycle", "claim", CLAIM | EVENTS | {"task_store_unique"}),
        ("limited cycle", "complete", COMPLETE | EVENTS | {"task_store_unique"}),
        # A new task enters the id index and the ready index.
        ("enqueue", "enqueue", {"task_store", "task_store_id", "task_store_ready"} | EVENTS),
        (
            "unique enqueue",
            "enqueue",
            {"task_store", "task_store_id", "task_store_ready", "task_store_unique"} | EVENTS,
        ),
        # A progress report rewrites the row; its event is the second page.
        ("progress", "progress", {"task_store"} | EVENTS),
        ("progress, transitions", "progress", {"task_store"}),
    ],
)
def test_the_median_transaction_writes_one_page_of_each_of_these_b_trees(
    measured, workload, kind, trees
):
    summary = measured(workload)[kind]
    assert summary["transactions"] == TRANSACTIONS
    assert written(summary) == (trees, len(trees))


@pytest.mark.parametrize("workload", ["plain cycle", "cycle, events off", "enqueue", "progress"])
def test_a_plain_task_never_writes_a_workflow_index(measured, workload):
    for kind, summary in measured(workload).items():
        assert not WORKFLOW_INDEXES & set(summary["by_btree"]), (kind, summary["by_btree"])


def test_the_count_sees_raw_sql_write_its_index_twice_a_status_change(measured):
    # The counter itself, on a table it does not lay out: raw SQL's claim
    # moves the row's entry within jobs_claim (queue, status, ...), from
    # the queued part of the index to the running part: two pages.
    for kind in ("claim", "complete"):
        summary = measured("raw cycle")[kind]
        assert summary["by_btree"]["jobs_claim"]["median"] == 2
        assert summary["by_btree"]["jobs"]["median"] == 1
