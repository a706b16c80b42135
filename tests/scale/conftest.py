"""Fixtures of the scale suite: a fresh libSQL server primary and read replica
per test (`cluster`, about 0.2 s to start), stopped after it, pass or fail;
and the figures each load run reports, printed at the end of the session
(throughput is reported, never asserted).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster  # noqa: E402

FIGURES = []


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def report():
    """Call with a load.Figures (or a line of text) to have it printed at the
    end of the session."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("sqlite-task on libSQL server: figures")
        for f in FIGURES:
            terminalreporter.write_line(f if isinstance(f, str) else f.details())
