"""The Bash runtime: ``bash main.sh <arg1> <arg2> ...``, the result from its output.

The script runs as written (Windmill prepends ``set -e``; here a script that wants it says
so). Its result is ``./result.json`` when it writes one, otherwise the last line it printed,
as a string: Windmill's rule, kept even when that line is JSON, so that a script's result
type does not change with what it happens to print. Use ``result.json`` for structured data.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any, Final

from gristmill import (
    RESULT_FILE,
    JobContext,
    JobErrorName,
    JobOutcome,
    Limits,
    ProcessExit,
    Recipe,
    ScriptError,
    Signature,
    Toolchain,
    error_result,
    toolchain_mounts,
)

from gristmill_bash.signature import ArgLine, arg_lines, parse, signature_from_lines
from gristmill_bash.syntax import check_syntax

__all__ = ["BashRuntime"]

TEMPLATE = """\
# Lines name="$1", name="${2:-default}" become the script's form and API arguments.
name="$1"
greeting="${2:-Hello}"

echo "$greeting, $name!"
# The last line printed is the result; write ./result.json for a JSON result instead.
"""

SCRIPT_FILE: Final = "main.sh"
# Windmill's limit for Bash jobs (its nsjail recipe's rlimit_as): the address space of each
# process. A script that starts a JVM or Bun (which reserve far more than they use) needs
# more; GRISTMILL_JOB_MAX_MEMORY_MB can only lower it.
MEMORY_MB: Final = 4096
# Lines of output quoted in the error of a failed script.
_TAIL_LINES: Final = 20


class BashRuntime:
    name = "bash"
    display_name = "Bash"
    aliases: tuple[str, ...] = ()  # `sh` is not Bash
    file_extensions = (".sh",)
    #: Arguments are positional words on the command line, and Linux refuses a word over
    #: 128 KiB (MAX_ARG_STRLEN) with E2BIG. The core refuses larger arguments (measured as
    #: compact JSON) at submission; half of the kernel's limit, because a word that is JSON
    #: text (json.dumps, with its ", " separators) can be up to twice its compact size.
    max_args_bytes = 64 * 1024

    def __init__(self, bash: str | None = None) -> None:
        # BASH_PATH is Windmill's variable for the same purpose.
        self.bash = bash or os.environ.get("BASH_PATH") or _find_bash()

    def parse_signature(self, source: str) -> Signature:
        parsed = parse(source)
        check_syntax(parsed, self.bash if self.toolchain().available else None)
        lines = arg_lines(source, parsed)
        signature = signature_from_lines(lines)
        _check_unique_names(signature, lines)
        return signature

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        install = (
            "install Bash (apt-get install bash, apk add bash, brew install bash) or set "
            "BASH_PATH to its path"
        )
        if not self.bash:
            return Toolchain(False, message=f"bash was not found on PATH; {install}")
        try:
            done = subprocess.run(
                [self.bash, "-c", 'printf %s "$BASH_VERSION"'],
                capture_output=True,
                text=True,
                env={"LC_ALL": "C"},
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Toolchain(False, message=f"cannot run bash at {self.bash!r} ({exc}); {install}")
        if done.returncode != 0 or not done.stdout:
            return Toolchain(
                False,
                message=f"{self.bash} is not a working Bash ({done.stderr.strip()}); {install}",
            )
        return Toolchain(True, version=done.stdout.strip())

    def prepare(self, ctx: JobContext) -> Recipe:
        (ctx.job_dir / SCRIPT_FILE).write_text(ctx.code, encoding="utf-8")
        # The script's own lines say which argument is $1, $2...: the stored schema may be
        # older than the code, the code is what runs.
        signature = signature_from_lines(arg_lines(ctx.code))
        positional = [_as_word(arg.name, ctx.args.get(arg.name)) for arg in signature.args]
        return Recipe(
            argv=[self.bash or "bash", SCRIPT_FILE, *positional],
            env=dict(ctx.env),
            cwd=ctx.job_dir,
            # Nothing when bash is a system one (/usr/bin/bash); its directory otherwise
            # (BASH_PATH=/opt/bash5/bin/bash). The tools a script calls are the system's.
            mounts=toolchain_mounts(self.bash),
            limits=Limits(memory_mb=MEMORY_MB),
        )

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        try:
            written = _read_result_file(ctx)
        except (OSError, UnicodeDecodeError) as exc:
            return JobOutcome(
                False, error_result(JobErrorName.RESULT, f"{RESULT_FILE} could not be read: {exc}")
            )
        if exit.returncode != 0:
            if written is not None and _is_error_object(written):
                return JobOutcome(False, written)
            return JobOutcome(False, error_result(JobErrorName.EXECUTION, _failure_message(exit)))
        if written is None:
            return JobOutcome(True, json.dumps(exit.last_line.strip(), ensure_ascii=False))
        try:
            json.loads(written)
        except ValueError as exc:
            return JobOutcome(
                False,
                error_result(
                    JobErrorName.RESULT,
                    f"{RESULT_FILE} is not valid JSON ({exc}); write JSON into it, e.g. "
                    f"echo '{{\"count\": 3}}' > {RESULT_FILE}, or remove it to return the "
                    "last line printed",
                ),
            )
        return JobOutcome(True, written)


def _find_bash() -> str | None:
    found = shutil.which("bash")
    return os.path.abspath(found) if found else None


def _check_unique_names(signature: Signature, lines: list[ArgLine]) -> None:
    seen: dict[str, int] = {}
    for position, arg in enumerate(signature.args, start=1):
        if arg.name in seen:
            line = next(x.line for x in reversed(lines) if x.index == position)
            raise ScriptError(
                f'"{arg.name}" is both ${seen[arg.name]} and ${position}; give each '
                "argument its own name",
                line=line,
                column=1,
            )
        seen[arg.name] = position


def _as_word(name: str, value: Any) -> str:
    """One positional argument: strings as they are, other JSON values as JSON text.

    A missing or null argument is an empty string, so ``${n:-default}`` applies.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if "\x00" in text:
        raise ValueError(
            f"argument {name!r} contains a NUL character, which a command-line argument "
            "cannot carry"
        )
    return text


def _read_result_file(ctx: JobContext) -> str | None:
    """The text of ``result.json``; None when the script wrote none (or left it empty)."""
    try:
        data = (ctx.job_dir / RESULT_FILE).read_bytes()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8")
    return text if text.strip() else None


def _is_error_object(text: str) -> bool:
    try:
        parsed: Mapping[str, Any] = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


def _failure_message(exit: ProcessExit) -> str:
    if exit.returncode < 0:
        how = f"killed by signal {-exit.returncode}"
    else:
        how = f"exit code {exit.returncode}"
    lines = exit.output_tail.strip().splitlines()[-_TAIL_LINES:]
    if not lines:
        return f"{how}; the script printed nothing"
    return f"{how}; last output:\n" + "\n".join(lines)
