"""nsjail's configuration, rendered from recipes, compared with reviewed golden files.

The backend also runs for real (tests/integration/test_nsjail.py, the hostile suite and the
conformance kit); these pin its rendering, so that every change to it is deliberate. Regenerate
with ``GRISTMILL_UPDATE_GOLDEN=1 uv run pytest tests/unit/sandbox/test_nsjail_golden.py``,
then read every changed file: a golden file is only as right as its review.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gristmill import Limits, Mount, Recipe
from gristmill.sandbox.backends.nsjail import render
from gristmill.sandbox.layout import HostEntry, SystemLayout

GOLDEN = Path(__file__).parent / "golden"

# A fixed layout: the same configuration on every machine.
LAYOUT = SystemLayout(
    (
        HostEntry("bind", "/usr", "/usr"),
        HostEntry("symlink", "usr/bin", "/bin"),
        HostEntry("symlink", "usr/lib", "/lib"),
        HostEntry("symlink", "usr/lib64", "/lib64"),
        HostEntry("bind", "/etc/hosts", "/etc/hosts"),
        HostEntry("bind", "/etc/resolv.conf", "/etc/resolv.conf"),
        HostEntry("bind", "/etc/ssl/certs", "/etc/ssl/certs"),
        HostEntry("bind", "/var/lib/gristmill/sandbox/etc/passwd", "/etc/passwd"),
        HostEntry("bind", "/var/lib/gristmill/sandbox/etc/group", "/etc/group"),
    )
)
JOB = Path("/var/lib/gristmill/jobs/0b7e6c1e-4f1a-4d36-9d53-2f6c4d1a7e10")
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": str(JOB),
    "LANG": "C.UTF-8",
    "WM_JOB_ID": "0b7e6c1e-4f1a-4d36-9d53-2f6c4d1a7e10",
    "WM_TOKEN": "jt.abc",
}

CASES: dict[str, tuple[Recipe, dict[str, object]]] = {
    # A Python-like run step: the interpreter's prefix and the locked dependencies read-only,
    # a memory limit, the network on (the worker's default).
    "python_run": (
        Recipe(
            ["/opt/python/3.11/bin/python3", "-I", "-S", "/opt/gristmill/wrapper.py"],
            ENV,
            JOB,
            mounts=[
                Mount("/opt/python/3.11"),
                Mount("/opt/gristmill"),
                Mount("/var/lib/gristmill/cache/envs/python3/3f2a", target="/deps"),
            ],
            limits=Limits(memory_mb=4096),
        ),
        {"network": True, "time_limit_s": 900},
    ),
    # A lock step: the resolver's cache writable, the network asked for, no memory limit,
    # an optional mount.
    "lock_with_cache": (
        Recipe(
            ["/opt/uv/bin/uv", "pip", "compile", "requirements.in", "-o", "requirements.txt"],
            {**ENV, "UV_CACHE_DIR": "/var/lib/gristmill/cache/python3/uv"},
            JOB / "lock",
            phase="lock",
            failure_name="LockError",
            mounts=[
                Mount("/opt/uv"),
                Mount("/var/lib/gristmill/cache/python3/uv", writable=True),
                Mount("/opt/uv/uv.toml", target="/uv.toml", optional=True),
            ],
            network=True,
        ),
        {"network": True, "time_limit_s": 120.5},
    ),
    # Network off, no limits at all, a worker that is not root (the job maps to its user),
    # and arguments that need escaping.
    "network_off": (
        Recipe(
            ["/usr/bin/bash", "main.sh", 'say "hi"\\', "naïve\ttab\nnewline"],
            {"PATH": "/usr/bin:/bin", "QUOTED": 'a"b'},
            JOB,
            limits=Limits(
                memory_mb=None, processes=None, open_files=None, file_size_mb=None, tmp_mb=None
            ),
        ),
        {"network": False, "time_limit_s": 30, "outside_uid": None, "outside_gid": None},
    ),
    # A root worker's step whose interpreter lives where the sandbox's user cannot go
    # (/root/.pyenv): nsjail mounts the worker's staged view of it, and logs to its own fd.
    "unreachable_toolchain": (
        Recipe(
            ["/root/.pyenv/versions/3.12.4/bin/python3", "-I", "-S", "-c", "pass"],
            {"PATH": "/usr/bin:/bin"},
            JOB,
            mounts=[Mount("/root/.pyenv/versions/3.12.4")],
        ),
        {
            "network": True,
            "time_limit_s": 60,
            "log_fd": 7,
            "staged": {
                "/root/.pyenv/versions/3.12.4": "/var/lib/gristmill/sandbox/reach/5f0c3e2a9b7d"
            },
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_configuration_matches_the_golden_file(case: str) -> None:
    recipe, options = CASES[case]
    recipe.validate()
    text = render(recipe, layout=LAYOUT, limits=recipe.limits, **options)  # type: ignore[arg-type]
    path = GOLDEN / f"{case}.cfg"
    if os.environ.get("GRISTMILL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with GRISTMILL_UPDATE_GOLDEN=1, then review it"
    assert text == path.read_text()


def test_rendering_is_deterministic() -> None:
    recipe, options = CASES["python_run"]
    first = render(recipe, layout=LAYOUT, limits=recipe.limits, **options)  # type: ignore[arg-type]
    again = render(recipe, layout=LAYOUT, limits=recipe.limits, **options)  # type: ignore[arg-type]
    assert first == again
