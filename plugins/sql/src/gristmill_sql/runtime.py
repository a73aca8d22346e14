"""The PostgreSQL runtime: a script of SQL statements run by ``wrapper.py`` with psycopg.

The wrapper runs on the worker's own interpreter (the one running Gristmill, whose
site-packages hold psycopg), isolated from the worker's environment (``-I``). In the sandbox
the step sees that interpreter and its standard library, the site-packages directories
psycopg and its dependencies are imported from, and the wrapper, all read-only; and the
network, to reach the job's database.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

from gristmill import (
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
    toolchain_mounts,
)

from gristmill_sql.plan import PLAN_FILE, build_plan
from gristmill_sql.signature import parse_script

__all__ = ["PostgresRuntime"]

TEMPLATE = """\
-- Declare the parameters: `-- $n name (type) = default`; each becomes a form field.
-- The connection to the database is the `database` argument.
-- $1 name (text) = 'world'
-- $2 times (int) = 1
SELECT 'Hello, ' || $1 || '!' AS greeting, $2 AS times;
"""

# -I: isolated (no user site, no PYTHON* variables, no script directory on sys.path), but
# with site-packages, where psycopg is; -B: no .pyc in the job directory; -u: unbuffered, so
# notices reach the logs as they come.
INTERPRETER_FLAGS = ("-I", "-B", "-u")

#: The address space of each process of a job (RLIMIT_AS): the wrapper holds a statement's
#: rows in memory; the limit keeps a huge result from taking the worker's memory with it.
MEMORY_LIMIT_MB = 4096

# What the toolchain report and the sandbox need: psycopg's version and implementation, the
# interpreter's installation prefix (its standard library), and the sys.path entries that
# psycopg, its libpq binding and their dependencies were imported from (site-packages).
_PROBE = """\
import json, os, sys
import psycopg
from psycopg import pq
roots = sorted({os.path.abspath(p) for p in sys.path if p}, key=len, reverse=True)
paths = set()
for module in list(sys.modules.values()):
    origin = getattr(module, "__file__", None)
    for root in roots if origin else ():
        if os.path.abspath(origin).startswith(root + os.sep):
            paths.add(root)
            break
print(json.dumps({
    "version": psycopg.__version__,
    "impl": pq.__impl__,
    "libpq": pq.version(),
    "prefix": sys.base_prefix,
    "paths": sorted(paths),
}))
"""


def _default_interpreter() -> str:
    # Absolute, but not resolved through symlinks: a venv's python is a symlink to the base
    # interpreter, and only the venv's path gives the venv's site-packages.
    return os.path.abspath(sys.executable)


class PostgresRuntime:
    name = "postgresql"
    display_name = "PostgreSQL"
    aliases = ("sql", "postgres")
    file_extensions = (".sql", ".pg.sql")

    def __init__(self, interpreter: str | None = None) -> None:
        self.interpreter = (
            interpreter or os.environ.get("SQL_PYTHON_PATH") or _default_interpreter()
        )
        self.wrapper = str(resources.files("gristmill_sql").joinpath("wrapper.py"))

    def parse_signature(self, source: str) -> Signature:
        return parse_script(source).signature()

    def resource_paths(self, source: str) -> Sequence[str]:
        """The resource of a `-- database <path>` line: the worker reads it for the job
        (the gristmill.ResourceReferences contract) and ``prepare`` finds it in
        ``ctx.resources``."""
        database = parse_script(source).database
        return [database] if database is not None else []

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        found = self._probe()
        if isinstance(found, str):
            return Toolchain(False, message=found)
        return Toolchain(
            True, version=f"psycopg {found['version']} ({found['impl']}, libpq {found['libpq']})"
        )

    @functools.cache  # noqa: B019 - one runtime object per process
    def _probe(self) -> dict[str, Any] | str:
        """What :data:`_PROBE` prints, or why psycopg cannot be used (with the fix)."""
        install = (
            "install psycopg 3 into it (pip install 'psycopg[binary]'), or set "
            "SQL_PYTHON_PATH to a Python interpreter that has it"
        )
        try:
            done = subprocess.run(
                [self.interpreter, *INTERPRETER_FLAGS[:2], "-c", _PROBE],
                capture_output=True,
                text=True,
                env={"LC_ALL": "C.UTF-8"},
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return (
                f"cannot run the Python interpreter {self.interpreter!r} ({exc}); "
                f"PostgreSQL jobs need Python 3 with psycopg 3: {install}"
            )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            return f"psycopg does not import in {self.interpreter} ({reason}); {install}"
        try:
            found = json.loads(done.stdout)
        except ValueError:
            return (
                f"{self.interpreter} printed no report of psycopg: {done.stdout[:200]!r}; {install}"
            )
        return found if isinstance(found, dict) else f"unexpected report {found!r}"

    @functools.cached_property
    def mounts(self) -> list[Mount]:
        """What a job sees, read-only: the interpreter (its binary, what a venv's link
        points to, its installation prefix), the site-packages directories psycopg and its
        dependencies come from, a venv's pyvenv.cfg (without it, site would not add the
        venv's site-packages), and the wrapper."""
        found = self._probe()
        prefixes: list[str] = []
        if not isinstance(found, str):
            # Without a report the job fails anyway, saying what the sandbox lacks (and
            # workers without the toolchain do not take PostgreSQL jobs).
            prefixes = [found["prefix"], *found["paths"]]
        mounts = toolchain_mounts(self.interpreter, self.wrapper, prefixes=prefixes)
        bin_dir = os.path.dirname(os.path.abspath(self.interpreter))
        for directory in (bin_dir, os.path.dirname(bin_dir)):
            config = os.path.join(directory, "pyvenv.cfg")
            if os.path.isfile(config):
                if not any(config.startswith(m.source.rstrip("/") + "/") for m in mounts):
                    mounts.append(Mount(config))
                break
        return mounts

    def prepare(self, ctx: JobContext) -> Recipe:
        script = parse_script(ctx.code)
        plan = build_plan(script, timeout_s=ctx.timeout_s)
        if script.database is not None:
            # The pinned connection, read by the worker with the job's permissions.
            plan["database"] = ctx.resources.get(script.database)
        (ctx.job_dir / PLAN_FILE).write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        return Recipe(
            argv=[self.interpreter, *INTERPRETER_FLAGS, self.wrapper],
            env=dict(ctx.env),
            cwd=ctx.job_dir,
            mounts=self.mounts,
            limits=Limits(memory_mb=MEMORY_LIMIT_MB),
            # The job's database is reached over the network: asked for, though a worker
            # group whose jobs have none (GRISTMILL_JOB_NETWORK=off) still cuts it.
            network=True,
        )

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)
