"""The pure parts of the flow controls (gristmill.flows.engine): a step's timeout in
seconds and the cache keys of steps and flows."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.flows.engine import flow_digest, step_digest, timeout_seconds
from psycopg.types.json import Jsonb


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1, 1), (2.5, 3), (0.1, 1), (900, 900), (1e12, 2**31 - 1)],
)
def test_timeout_seconds(value: Any, seconds: int) -> None:
    assert timeout_seconds(value) == seconds


@pytest.mark.parametrize("value", [0, -1, None, "5", True, float("nan"), float("inf"), [1]])
def test_timeout_refused(value: Any) -> None:
    assert timeout_seconds(value) is None


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "preview",
        "language": "python3",
        "raw_code": "def main(x): return x",
        "raw_lock": None,
        "runnable_hash": None,
        "args": Jsonb({"x": 1, "y": [1, 2]}),
        "tag": "python3",  # not part of the key
    }
    return {**base, **changes}


def test_step_digest_is_what_runs_and_its_args() -> None:
    key = step_digest(fields())
    assert key == step_digest(fields(args={"y": [1, 2], "x": 1}))  # order, Jsonb or not
    assert key == step_digest(fields(tag="other"))
    for change in (
        {"args": Jsonb({"x": 2, "y": [1, 2]})},
        {"raw_code": "def main(x): return x + 1"},
        {"raw_lock": "requests==2"},
        {"language": "python3.12"},
        {"kind": "script", "raw_code": None, "runnable_hash": 42},
    ):
        assert step_digest(fields(**change)) != key, change
    assert step_digest(fields(kind="script", runnable_hash=1)) != step_digest(
        fields(kind="script", runnable_hash=2)
    )


def test_flow_digest() -> None:
    value = {"modules": [{"id": "a", "value": {"type": "identity"}}], "cache_ttl": 5}
    key = flow_digest(value, {"n": 1}, None)
    assert key == flow_digest(dict(reversed(value.items())), {"n": 1}, None)
    assert key != flow_digest(value, {"n": 2}, None)
    assert key != flow_digest(value, {"n": 1}, "f/x")
    assert key != flow_digest({**value, "cache_ttl": 6}, {"n": 1}, None)
