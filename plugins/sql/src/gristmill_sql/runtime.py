"""The PostgreSQL runtime: a script of SQL statements run by ``wrapper.py`` with psycopg.

The wrapper runs on the worker's own interpreter (the one running Gristmill, whose
site-packages hold psycopg), isolated from the worker's environment (``-I``).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from importlib import resources

from gristmill import (
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
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
_PROBE = "import psycopg; print(psycopg.__version__, psycopg.pq.__impl__, psycopg.pq.version())"


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

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        install = (
            "install psycopg 3 into it (pip install 'psycopg[binary]'), or set "
            "SQL_PYTHON_PATH to a Python interpreter that has it"
        )
        try:
            done = subprocess.run(
                [self.interpreter, "-I", "-B", "-c", _PROBE],
                capture_output=True,
                text=True,
                env={"LC_ALL": "C.UTF-8"},
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Toolchain(
                False,
                message=f"cannot run the Python interpreter {self.interpreter!r} ({exc}); "
                f"PostgreSQL jobs need Python 3 with psycopg 3: {install}",
            )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            return Toolchain(
                False,
                message=f"psycopg does not import in {self.interpreter} ({reason}); {install}",
            )
        version, impl, libpq = done.stdout.split()
        return Toolchain(True, version=f"psycopg {version} ({impl}, libpq {libpq})")

    def prepare(self, ctx: JobContext) -> Recipe:
        script = parse_script(ctx.code)
        plan = build_plan(script, timeout_s=ctx.timeout_s)
        (ctx.job_dir / PLAN_FILE).write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        return Recipe(
            argv=[self.interpreter, *INTERPRETER_FLAGS, self.wrapper],
            env=dict(ctx.env),
            cwd=ctx.job_dir,
        )

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)
