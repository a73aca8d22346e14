import collections
import os
from typing import Any

import pytest
from _pytest.nodeid import NodeId

pytest_plugins = ["gristmill.testing.pytest_plugin"]

# The example Perl plugin (tests/fixtures/gristmill-perl) offers its runtime only where this
# is set: to the test session and every process it starts, not to `gristmill up` run by hand
# (see docs/plugins.md). The e2e tests' processes get a clean environment without it.
os.environ["GRISTMILL_EXAMPLE_PERL"] = "1"


# The suite runs on two pytest-xdist workers (`-n 2 --dist loadfile` in pyproject.toml). A
# work unit is a whole test file: a module's platform (`module_platform`, an e2e
# `launcher`) starts once, on the worker that runs the module. Files that share something
# bigger than a module are one unit, run by one worker (see `_Scheduler`):
#: tests/browser: one served platform and one build of the UI for the whole directory.
_BROWSER = "tests/browser/"
#: The tests that make hosts out of network namespaces (gristmill.testing.hosts): heavy,
#: timing-sensitive (hosts killed and cut off), and never two sets of hosts at once.
_HOSTS = {
    "tests/e2e/test_chaos_small.py",
    "tests/e2e/test_hosts.py",
    "tests/e2e/test_multihost.py",
}


def _work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith(_BROWSER) or path in _HOSTS:
        # One unit, run by one worker: with the two started together on the two workers,
        # two runs in four had a browser test see the UI's stylesheet fail to load (cause
        # not found; the host tests cut and kill hosts meanwhile). Together they still take
        # less than half of the suite's time.
        return "browser+hosts"
    return path


def _cost(item: pytest.Item) -> int:
    """The longest units first, the many short ones last, where they even out the two
    workers' ends: hosts and browser, then the e2e files, integration, the rest."""
    unit = _work_unit(item.nodeid)
    if unit == "browser+hosts":
        return 0
    for rank, prefix in enumerate(("tests/e2e/", "tests/integration/", "tests/test_"), 1):
        if unit.startswith(prefix):
            return rank
    return 4


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _Scheduler(LoadScopeScheduling):
        """``--dist loadfile``, with the units of :func:`_work_unit`, in collection order
        (which :func:`pytest_collection_modifyitems` makes longest first)."""

        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False
    return _Scheduler(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen = collections.Counter(item.nodeid for item in items)
    for item in items:
        if seen[item.nodeid] > 1 and item.parent is not None:
            # pytest 9.2 builds a test's id from its parametrization, and schemathesis
            # names each operation of test_api_fuzz.py in the test's name only: every one
            # had the function's id, and xdist, which hands tests out by id, ran one.
            item._id = NodeId.parse(f"{item.parent.nodeid}::{item.name}")  # type: ignore[attr-defined]
    ids = [item.nodeid for item in items]
    assert len(set(ids)) == len(ids), "two tests with one id: pytest-xdist would run one"
    if hasattr(config, "workerinput"):  # an xdist worker: both order their lists alike
        items.sort(key=_cost)
