"""A pytest plugin for `make mutation`: each mutant's tests start with the ones likeliest to fail on it.

mutmut runs a mutant against every test that reaches its function and stops at the first failure, in the
order it was handed the tests. Mutants of one function are run one after another, and a test that failed
on one of them usually fails on the next; a test that failed on other functions of the same module is the
next best guess (a few dozen tests kill nearly all of a module's mutants). So each failure is written down
(function, test), and a mutant's tests run in that order: the ones that failed on its function, the most
recent first; then the rest by how often they failed on its module per second they take (the order that
finds the first failure soonest). A survivor still runs every test; only the time to a kill changes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

# Set by mutation/run.py: where the children write down the tests that failed, one line each.
KILLERS_FILE = "PORTAL_LINKS_MUTATION_KILLERS"
PRIOR_FAILURES = 0.2


def _function_under_test() -> str | None:
    """`portal_links.http.x__body_text` while mutmut runs `portal_links.http.x__body_text__mutmut_7`."""
    function, marker, _ = os.environ.get("MUTANT_UNDER_TEST", "").rpartition("__mutmut_")
    return function if marker else None


def _failures() -> list[tuple[str, str]]:
    """(function, test) for each failure written down so far, oldest first."""
    path = os.environ.get(KILLERS_FILE)
    if not path or not Path(path).exists():
        return []
    lines = (line.split(" ", 1) for line in Path(path).read_text().splitlines())
    return [(function, test) for function, test in lines]


def _module_of(function: str) -> str:
    """The module of a function: `portal_links.http` of `portal_links.http.xǁHttpRequestǁheader`."""
    return function.rsplit(".", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    function = _function_under_test()
    if function is None:
        return
    failures = _failures()
    same_function = [test for name, test in failures if name == function]
    by_function = {test: index for index, test in enumerate(same_function, 1)}  # the latest, the highest
    by_module = Counter(test for name, test in failures if _module_of(name) == _module_of(function))
    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ directory, beside it
    durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"] if stats.exists() else {}

    def kills_per_second(test: str) -> float:
        # How often a test failed on the module, per second it takes; a test that never did has a small
        # prior, so a fast one still comes before a slow one that failed once.
        return (by_module[test] + PRIOR_FAILURES) / max(durations.get(test, 0.0), 0.001)

    items.sort(key=lambda item: (-by_function.get(item.nodeid, 0), -kills_per_second(item.nodeid)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    function, path = _function_under_test(), os.environ.get(KILLERS_FILE)
    if report.failed and function and path:
        with open(path, "a") as killers:  # one short line per write: appends from two children do not mix
            killers.write(f"{function} {report.nodeid}\n")
