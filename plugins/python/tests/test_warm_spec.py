"""The Python runtime's warm mode, as pure logic: what a warm parent is told to load."""

from __future__ import annotations

import uuid
from pathlib import Path

from gristmill import JobContext, Limits
from gristmill_python.runtime import MEMORY_LIMIT_MB, WARM_PRELOAD, PythonRuntime


def context(tmp_path: Path, deps: Path | None = None) -> JobContext:
    return JobContext(
        id=uuid.uuid4(),
        workspace_id="main",
        language="python3",
        code="from datetime import datetime\ndef main(when: datetime, n: int = 3):\n    return n\n",
        args={"when": "2024-01-02T03:04:05Z"},
        job_dir=tmp_path / "job",
        schema={
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": "integer", "default": 3},
            }
        },
        env={"PATH": "/usr/bin:/bin", "WM_JOB_ID": "x"},
        deps_dir=deps,
    )


def test_the_parent_preloads_the_wrapper_and_every_installed_package(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    for package in ("requests", "yaml", "_cffi_backend_dir", "bin"):
        (deps / package).mkdir(parents=True)
    (deps / "requests" / "__init__.py").write_text("")
    (deps / "yaml" / "__init__.py").write_text("")
    (deps / "six.py").write_text("")
    (deps / "_private.py").write_text("")
    (deps / "requests-2.32.3.dist-info").mkdir()
    (deps / "distutils-precedence.pth").write_text("")
    runtime = PythonRuntime()
    spec = runtime.warm_spec(context(tmp_path, deps))
    assert spec is not None
    assert list(spec.preload) == [*WARM_PRELOAD, "requests", "six", "yaml"]
    assert spec.deps_dir == str(deps)
    assert any(m.source == str(deps) and not m.writable for m in spec.mounts)
    assert spec.entry == runtime.wrapper and spec.function == "warm_run"
    assert spec.limits == Limits(memory_mb=MEMORY_LIMIT_MB)
    # The parent's environment is not the job's: job variables go to each child.
    assert "WM_JOB_ID" not in spec.env


def test_the_payload_carries_the_code_the_arguments_and_their_conversions(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    payload = PythonRuntime().warm_payload(ctx)
    assert payload == {
        "code": ctx.code,
        "args": {"when": "2024-01-02T03:04:05Z"},
        "spec": {"when": ["datetime", False], "n": [None, True]},
    }
    spec = PythonRuntime().warm_spec(ctx)
    assert spec is not None and spec.deps_dir is None
    assert list(spec.preload) == list(WARM_PRELOAD)
