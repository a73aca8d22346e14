"""The process runner on its own: real processes, no database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gristmill.runtimes import Recipe
from gristmill.worker.processes import run_recipe


async def _run(tmp_path: Path, script: str) -> tuple[str, str]:
    chunks: list[str] = []
    result = await run_recipe(
        Recipe(["/bin/sh", "-c", script], {"PATH": os.environ["PATH"]}, tmp_path),
        timeout_s=30,
        on_output=chunks.append,
        cancel=asyncio.Event(),
    )
    return result.last_line, "".join(chunks)


async def test_the_last_line_is_kept_whole_however_long(tmp_path: Path) -> None:
    long = "x" * 20000
    last, output = await _run(tmp_path, f"echo first; printf '{long}\\n\\n  \\n'")
    assert last == long and output.startswith("first\n")


async def test_a_last_line_without_newline_counts(tmp_path: Path) -> None:
    last, _ = await _run(tmp_path, "echo a; printf 'b c'")
    assert last == "b c"
    last, _ = await _run(tmp_path, "true")
    assert last == ""
