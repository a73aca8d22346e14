"""The concurrency key and limits of a flow run (gristmill.flows.engine), pure."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.flows.engine import concurrency_key, concurrency_settings
from gristmill.flows.model import parse_flow


def flow(**options: Any) -> Any:
    return parse_flow({"summary": "", "value": {"modules": [], **options}})


def test_key_template_fills_workspace_and_args() -> None:
    f = flow(concurrent_limit=1, concurrency_key="$workspace/flow/$args[x]-$args[n]-$args[gone]")
    key = concurrency_key(f, workspace_id="main", path=None, args={"x": "a", "n": {"k": 1}})
    assert key == 'main/flow/a-{"k":1}-'


def test_long_keys_are_digested() -> None:
    f = flow(concurrent_limit=1, concurrency_key="k/$args[x]")
    one = concurrency_key(f, workspace_id="w", path=None, args={"x": "a" * 10_000})
    two = concurrency_key(f, workspace_id="w", path=None, args={"x": "a" * 9_999 + "b"})
    assert len(one) == len(two) == 512 and one != two
    assert one == concurrency_key(f, workspace_id="w", path=None, args={"x": "a" * 10_000})


def test_default_key_is_the_path_or_the_flow_value() -> None:
    f = flow(concurrent_limit=1)
    assert concurrency_key(f, workspace_id="w", path="f/a/b", args={}) == "w/flow/f/a/b"
    same = concurrency_key(flow(concurrent_limit=1), workspace_id="w", path=None, args={})
    other = concurrency_key(flow(concurrent_limit=2), workspace_id="w", path=None, args={})
    assert same == concurrency_key(f, workspace_id="w", path=None, args={"x": 1})
    assert same != other and same.startswith("w/flow/preview-")


def test_settings() -> None:
    assert concurrency_settings(flow()) is None
    assert concurrency_settings(flow(concurrent_limit=3)) == (3, 0)
    assert concurrency_settings(flow(concurrent_limit=2.0, concurrency_time_window_s=5)) == (2, 5)
    for bad in (
        {"concurrent_limit": 0},
        {"concurrent_limit": -2},
        {"concurrent_limit": 1.5},
        {"concurrent_limit": 1e300},
    ):
        with pytest.raises(BadInput, match="concurrent_limit"):
            concurrency_settings(flow(**bad))
    with pytest.raises(BadInput, match="concurrency_time_window_s"):
        concurrency_settings(flow(concurrent_limit=1, concurrency_time_window_s=-1))
