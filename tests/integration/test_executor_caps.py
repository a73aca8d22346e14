"""Log and result caps, which hold with every backend (here the default, none)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gristmill.runtimes import Recipe
from gristmill.sandbox import RunPolicy
from gristmill.testing.runner import run_job
from gristmill.worker.processes import run_recipe
from gristmill_bash.runtime import BashRuntime


async def test_a_log_over_the_cap_is_cut_with_a_marker_and_read_to_the_end(
    tmp_path: Path,
) -> None:
    chunks: list[str] = []
    script = "head -c 5000000 /dev/zero | tr '\\0' y; echo; echo last-line"
    result = await run_recipe(
        Recipe(["/bin/sh", "-c", script], {"PATH": os.environ["PATH"]}, tmp_path),
        timeout_s=60,
        on_output=chunks.append,
        cancel=asyncio.Event(),
        policy=RunPolicy(max_log_bytes=100_000),
    )
    log = "".join(chunks)
    assert result.returncode == 0 and result.last_line == "last-line"
    assert log.startswith("y" * 100_000 + "\n[gristmill] log truncated: this job printed more")
    assert len(log) < 100_200 and "last-line" not in log
    assert result.output_tail.endswith("last-line\n")


async def test_an_invalid_recipe_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import pytest
    from gristmill.runtimes import RecipeError

    with pytest.raises(RecipeError):
        await run_recipe(
            Recipe([], {}, tmp_path),
            timeout_s=5,
            on_output=lambda text: None,
            cancel=asyncio.Event(),
        )


def test_a_result_over_the_cap_is_refused(tmp_path: Path) -> None:
    """The default policy's cap (64 MB) applies where no worker set one: a job run with
    gristmill.testing gets it too."""
    code = "head -c 70000000 /dev/zero | tr '\\0' 1 > result.json\n"
    ran = run_job(BashRuntime(), code, {}, tmp_path)
    assert not ran.outcome.success
    error = ran.result["error"]
    assert error["name"] == "ResultTooLarge"
    assert "66.8 MB, over the limit of 64 MB (GRISTMILL_MAX_RESULT_SIZE_MB)" in error["message"]
