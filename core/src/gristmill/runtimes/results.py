"""The default result protocol: what a job's process leaves in ``result.json``, read back as
the job's outcome, and Windmill's error shape."""

from __future__ import annotations

import json

from gristmill.errors import JobErrorName
from gristmill.runtimes.contract import RESULT_FILE, JobContext, JobOutcome, ProcessExit

__all__ = ["error_result", "read_result_file", "read_result_text"]


def error_result(name: str, message: str, stack: str = "") -> str:
    """The JSON text of a failed job's result, Windmill's error shape."""
    return json.dumps({"error": {"name": name, "message": message, "stack": stack}})


def read_result_file(ctx: JobContext, exit: ProcessExit) -> JobOutcome:
    """The default result protocol: the process writes ``result.json`` into its directory.

    A zero exit code means success (no file means a ``null`` result); otherwise the file holds
    the error object, or, when the process died before writing one, the error says how it
    ended and shows the end of its output.
    """
    path = ctx.job_dir / RESULT_FILE
    unreadable: OSError | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except OSError as exc:  # a directory, a file the job made unreadable...
        text, unreadable = None, exc
    if unreadable is not None and exit.returncode == 0:
        return JobOutcome(
            False,
            error_result(
                JobErrorName.RESULT,
                f"the job ended well but its {RESULT_FILE} cannot be read: "
                f"{unreadable.strerror or unreadable}",
            ),
        )
    return read_result_text(text, exit)


def read_result_text(text: str | None, exit: ProcessExit) -> JobOutcome:
    """The outcome from the text the process left as its result (``None``: nothing), by the
    rules of :func:`read_result_file` (a warm run sends the text rather than writing it)."""
    if exit.returncode == 0:
        return JobOutcome(True, text if text and text.strip() else "null")
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return JobOutcome(False, text)
    if exit.returncode < 0:
        how = f"the process was killed by signal {-exit.returncode}"
    else:
        how = f"the process exited with code {exit.returncode}"
    tail = exit.output_tail.strip()
    message = how + (f"; last output:\n{tail}" if tail else " and printed nothing")
    return JobOutcome(False, error_result(JobErrorName.EXECUTION, message))
