"""The root of Gristmill's own exceptions, and the names of job errors.

Every exception the core raises on purpose derives from :class:`GristmillError` (and, where
it always did, from the built-in it refines, so ``except ValueError`` keeps working). A
caller that wants "anything Gristmill refused" catches the root. Domain code raises the
request-level kinds below; the API turns each into its status code, so a route needs
no ``try``.

:class:`JobErrorName` holds the ``error.name`` values of a failed job's result (Windmill's
error shape ``{"error": {"name", "message", "stack"}}``) that the core and runtimes write:
constants, so that a runtime, a test or a client never misspells one.

This module imports nothing of Gristmill: every other module may import it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BadInput",
    "Conflict",
    "Forbidden",
    "GristmillError",
    "JobErrorName",
    "NotFound",
    "RepeatMismatch",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
]


class GristmillError(Exception):
    """Base of the exceptions Gristmill raises on purpose."""


class BadInput(GristmillError, ValueError):
    """A request the platform refuses as it is (the API answers 400 with the message)."""


class NotFound(GristmillError, LookupError):
    """What a request names does not exist (404)."""


class Unauthorized(GristmillError):
    """No valid credentials (401)."""


class Forbidden(GristmillError):
    """Authenticated, but not allowed to do this (403)."""


class Conflict(BadInput):
    """What a request would create already exists (400, as Windmill answers)."""


class RepeatMismatch(Conflict):
    """A run request names (by ``job_id`` or ``Idempotency-Key``) a job it does not match:
    another runnable, other arguments, another user (409, with what differs). A subclass of
    :class:`Conflict` so that callers that treat "already exists" as "queued before" (the
    schedule ticker) still do."""


class TooManyRequests(GristmillError):
    """Too many attempts; ``retry_after_s`` says when to try again (429)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(GristmillError):
    """The platform cannot take this now; retrying later may work (503 with Retry-After)."""


class JobErrorName(StrEnum):
    """The ``name`` of a failed job's error object."""

    #: The job's program failed (Windmill's name, kept for its clients).
    EXECUTION = "ExecutionErr"
    #: The runtime could not prepare the job's files or steps.
    PREPARE = "PrepareError"
    #: The job ended but its result could not be read.
    RESULT = "ResultError"
    #: The result is over ``GRISTMILL_MAX_RESULT_SIZE_MB``.
    RESULT_TOO_LARGE = "ResultTooLarge"
    #: Resolving the script's dependencies failed.
    LOCK = "LockError"
    #: Installing the locked dependencies failed.
    INSTALL = "InstallError"
    #: Compiling the script failed (compiled languages).
    COMPILATION = "CompilationError"
    #: No worker has the toolchain of the job's language.
    TOOLCHAIN_MISSING = "ToolchainMissing"
    #: The script version of the job no longer exists.
    SCRIPT_NOT_FOUND = "ScriptNotFound"
    #: No runtime of the job's language is installed on the worker.
    UNKNOWN_LANGUAGE = "UnknownLanguage"
    #: The job's outcome could not be stored.
    STORE = "StoreError"
    #: Someone canceled the job.
    CANCELED = "Canceled"
    #: The worker running the job stopped answering and the job was not restarted.
    ZOMBIE = "ZombieJob"
    #: A ``$res:``/``$var:`` reference of the job (its arguments, or a resource its script
    #: names) is missing or not visible to the job's user.
    RESOURCE = "ResourceError"
