"""The shared input checks, as every entry point (not only the API) gets them."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.db.queries import like_prefix
from gristmill.errors import BadInput
from gristmill.queue.rows import JobQuery
from gristmill.queue.submit import Preview, RunOptions, check_args, scheduled_in
from gristmill.scripts.paths import check_path
from gristmill.scripts.versions import ScriptQuery, VersionDraft
from gristmill.validation import InputLimits, TooLarge, check_json

LIMITS = InputLimits(max_script_bytes=1024, max_args_bytes=1024)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_checked_without_recursion() -> None:
    check_json("args", {"x": nested(63)})
    with pytest.raises(BadInput, match=r"args\.x\[0\].* nested more than 64 levels"):
        check_json("args", {"x": nested(64)})
    # Far beyond Python's recursion limit: refused, not a RecursionError.
    with pytest.raises(BadInput, match="64 levels"):
        check_json("args", nested(100_000))


def test_nul_anywhere_in_json() -> None:
    with pytest.raises(BadInput, match=r"args\.a\[1\] contains a NUL"):
        check_json("args", {"a": ["ok", "b\x00"]})
    with pytest.raises(BadInput, match=r"a key of args\.a contains a NUL"):
        check_json("args", {"a": {"k\x00": 1}})


def test_arguments_size_and_runtime_limit() -> None:
    with pytest.raises(TooLarge, match="GRISTMILL_MAX_ARGS_SIZE_MB"):
        check_args(None, {"x": "a" * 2000}, LIMITS)
    with pytest.raises(TooLarge, match="bash jobs"):
        check_args(None, {"x": "a" * 200}, LIMITS, runtime_limit=100, language="bash")
    assert check_args(None, {"x": "a"}, LIMITS) == {"x": "a"}


@pytest.mark.parametrize("path", ["u/admin/héllo", "u/admin/x\n", "u/a", "f/a/b c", "u/a/\x00"])
def test_paths_are_ascii_and_whole(path: str) -> None:
    with pytest.raises(BadInput, match="path"):
        check_path(path)


def test_run_options_and_schedules() -> None:
    with pytest.raises(BadInput, match="timeout must be between 1 and 2147483647"):
        RunOptions(timeout=10**12)
    with pytest.raises(BadInput, match="tag contains a NUL"):
        RunOptions(tag="a\x00")
    with pytest.raises(BadInput, match="scheduled_in_secs must be between 0 and 2147483647"):
        scheduled_in(10**12)
    with pytest.raises(TooLarge, match="GRISTMILL_MAX_SCRIPT_SIZE_KB=1"):
        Preview("#" * 2000, "python3", {}).check(LIMITS)


def test_versions_and_lists() -> None:
    draft = VersionDraft(path="u/admin/a", content="x", language="python3", priority=100000)
    with pytest.raises(BadInput, match="priority must be between -32768 and 32767"):
        draft.check(LIMITS)
    with pytest.raises(BadInput, match="page must be between 1 and 2147483647"):
        ScriptQuery(page=10**20)
    with pytest.raises(BadInput, match="created_by contains a NUL"):
        JobQuery(created_by="\x00")


def test_like_prefix_escapes_wildcards() -> None:
    assert like_prefix("u/a_b%c\\") == "u/a\\_b\\%c\\\\%"
