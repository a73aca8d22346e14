"""A toolchain under a private directory (mode 0700, like /root), run by a root worker's
sandbox: real bwrap, real setpriv, as the product runs them.

The sandbox's user (uid 65533 outside) cannot walk through the private directory; the
worker stages the declared toolchain only (docs/security.md, "Who a sandbox is
outside"). The job must run the toolchain, and see nothing else of the private directory,
and hold no descriptor of the worker's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from gristmill.config import Settings
from gristmill.runtimes import Mount, Recipe
from gristmill.sandbox import RunPolicy, SandboxError, select_backend
from gristmill.worker.processes import run_recipe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only a root worker starts its sandboxes as another user (run as root, as in CI)",
)

SCRIPT = """\
echo "tool ran as $(id -u)"
echo "private: $(ls -A "$PRIVATE" | tr '\\n' ' ')"
cat "$PRIVATE/secret.txt" 2>&1 || true
ls "$PRIVATE/other" 2>&1 || true
touch "$TOOLCHAIN/written" 2>&1 || true
"$TOOLCHAIN/bin/env" echo "copied binary ran"
cat "$PRIVATE/settings/tool.cfg"
ls -A "$PRIVATE/settings"
"""


async def run(recipe: Recipe, policy: RunPolicy) -> tuple[int, str]:
    chunks: list[str] = []
    result = await run_recipe(
        recipe, timeout_s=60, on_output=chunks.append, cancel=asyncio.Event(), policy=policy
    )
    return result.returncode, "".join(chunks)


@pytest.fixture
def private(reachable_tmp_path: Path) -> Path:
    """``private/`` (0700) holding a toolchain (a script and a copied ELF binary), a secret
    file and another directory."""
    private = reachable_tmp_path / "private"
    bin_dir = private / "toolchain" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tool").write_text("#!/bin/sh\n" + SCRIPT)
    (bin_dir / "tool").chmod(0o755)
    shutil.copy2("/usr/bin/env", bin_dir / "env")
    (private / "secret.txt").write_text("the secret\n")
    # A single file mounted on its own (as a virtualenv's pyvenv.cfg is), next to another.
    (private / "settings").mkdir()
    (private / "settings" / "tool.cfg").write_text("setting = 1\n")
    (private / "settings" / "other.cfg").write_text("hidden = 1\n")
    (private / "other").mkdir()
    (private / "other" / "file").write_text("x")
    for path in (private / "toolchain", bin_dir):
        path.chmod(0o755)
    private.chmod(0o700)
    return private


async def test_a_toolchain_under_a_private_directory_runs_and_nothing_else_is_seen(
    reachable_tmp_path: Path, private: Path
) -> None:
    settings = Settings(data_dir=reachable_tmp_path / "data", sandbox="bwrap")
    policy = RunPolicy(backend=select_backend(settings))
    job_dir = reachable_tmp_path / "data" / "jobs" / "j1"
    job_dir.mkdir(parents=True)
    toolchain = private / "toolchain"
    recipe = Recipe(
        [str(toolchain / "bin" / "tool")],
        {"PATH": "/usr/bin:/bin", "PRIVATE": str(private), "TOOLCHAIN": str(toolchain)},
        job_dir,
        mounts=[Mount(str(toolchain)), Mount(str(private / "settings" / "tool.cfg"))],
    )
    code, output = await run(recipe, policy)
    assert code == 0, output
    lines = output.splitlines()
    assert "tool ran as 65534" in lines
    assert "copied binary ran" in lines
    # Of the private directory, only the mounted subtree exists inside.
    assert "private: settings toolchain " in lines
    assert "setting = 1" in lines and "tool.cfg" in lines
    assert "hidden = 1" not in output and "other.cfg" not in output
    assert "No such file or directory" in output.split("the secret")[0]
    assert "the secret" not in output
    assert f"ls: cannot access '{private}/other': No such file or directory" in lines
    # Read-only.
    assert f"touch: cannot touch '{toolchain}/written': Read-only file system" in lines
    assert not (toolchain / "written").exists()
    # The program the sandbox starts holds its standard streams only: no descriptor of the
    # worker's (nor of the opening) reaches it. `ls` lists its own, plus the one it reads
    # the listing through.
    listing = Recipe(
        ["/bin/ls", "-l", "/proc/self/fd"], {"PATH": "/usr/bin:/bin"}, job_dir, mounts=recipe.mounts
    )
    code, output = await run(listing, policy)
    assert code == 0, output
    fds = {line.split()[-3]: line.split()[-1] for line in output.splitlines() if " -> " in line}
    assert {fd for fd, target in fds.items() if not target.endswith("/fd")} == {"0", "1", "2"}
    assert len(fds) == 4, output


async def test_a_writable_directory_under_a_private_one_is_still_refused(
    reachable_tmp_path: Path, private: Path
) -> None:
    settings = Settings(data_dir=reachable_tmp_path / "data", sandbox="bwrap")
    policy = RunPolicy(backend=select_backend(settings))
    job_dir = reachable_tmp_path / "data" / "jobs" / "j2"
    job_dir.mkdir(parents=True)
    recipe = Recipe(
        ["/bin/true"],
        {"PATH": "/usr/bin:/bin"},
        job_dir,
        phase="lock",
        mounts=[Mount(str(private / "other"), writable=True)],
    )
    with pytest.raises(SandboxError) as info:
        await run(recipe, policy)
    assert f"the writable mount {private / 'other'} is not reachable" in str(info.value)
