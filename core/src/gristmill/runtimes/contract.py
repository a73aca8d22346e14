"""The runtime contract: what a language plugin supplies.

A runtime is one object per language, added through the ``register_runtimes`` hook (see
:mod:`gristmill.runtimes.registry`). The core dispatches to it by language name; it never
imports a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from gristmill.errors import GristmillError, JobErrorName
from gristmill.runtimes.signature import Signature
from gristmill.sandbox.spec import Limits, Mount, RecipeError

__all__ = [
    "ARGS_FILE",
    "PLUGIN_API_VERSION",
    "RESULT_FILE",
    "DependencyLocking",
    "JobContext",
    "JobOutcome",
    "Limits",
    "Mount",
    "ProcessExit",
    "Recipe",
    "RecipeError",
    "ResourceReferences",
    "Runtime",
    "ScriptError",
    "Toolchain",
    "WarmSpec",
    "WarmStart",
]

#: Bumped when the contract below changes incompatibly; plugins may check it at registration.
PLUGIN_API_VERSION = 1

ARGS_FILE = "args.json"
RESULT_FILE = "result.json"


class ScriptError(GristmillError, ValueError):
    """A script the runtime cannot accept (syntax error, no ``main``, ...).

    ``line`` and ``column`` are 1-based positions in the source when known.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        self.message = message
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        super().__init__(where + message)


@dataclass(frozen=True)
class Toolchain:
    """Whether the tools a runtime needs are on this machine."""

    available: bool
    version: str | None = None
    #: When unavailable: what is missing and how to install it.
    message: str = ""


@dataclass(frozen=True)
class JobContext:
    """Everything a runtime may use to prepare and run one job."""

    id: UUID
    workspace_id: str
    language: str
    code: str
    args: Mapping[str, Any]
    job_dir: Path
    #: The stored JSON schema of the script, used for typed argument conversions.
    schema: Mapping[str, Any] | None = None
    script_path: str | None = None
    script_hash: str | None = None
    #: Environment for the job's process: the job variables (``WM_*``) and what plugins added.
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 900.0
    #: A directory that outlives jobs, this runtime's own (compiled programs, downloads).
    #: Jobs run side by side: write into it atomically (a temporary name, then a rename).
    cache_dir: Path | None = None
    #: The lock the job runs against (see :class:`DependencyLocking`); ``None`` when the
    #: script needs nothing beyond its language's standard library.
    lock: str | None = None
    #: Where that lock is installed (read-only, shared by every job of the same lock).
    deps_dir: Path | None = None
    #: The values of the resources the script names (see :class:`ResourceReferences`), by
    #: path, read with the permissions of the job's user, references expanded.
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """How to start one process of a job: the command, its complete environment and directory,
    and what the sandbox must let it see and use.

    The environment is complete: nothing of the worker's own environment is inherited.
    A job may take several steps (say ``build`` then ``run``): a step other than the last
    that exits non-zero fails the job with ``failure_name`` and the step's output.

    Inside the sandbox a step sees the system directories (``/usr``, ``/bin``, ``/lib*``,
    the parts of ``/etc`` programs need) read-only, a private ``/tmp``, its own ``/proc`` and
    a minimal ``/dev``, its working directory ``cwd`` (the job directory) read-write, and
    ``mounts``: nothing else of the host. A runtime declares there its toolchain when it
    lives outside the system directories (an interpreter's prefix, GOROOT, the bun binary's
    directory) and its caches, read-only in a run step, ``writable`` in the lock or install
    step that fills them. ``network`` ``None`` follows the worker's policy
    (``GRISTMILL_JOB_NETWORK``); ``True`` asks for it (a lock or install step fetching
    packages keeps it even where the worker's jobs have none); ``False`` cuts it.
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    phase: str = "run"
    failure_name: str = JobErrorName.EXECUTION
    mounts: Sequence[Mount] = ()
    limits: Limits = field(default_factory=Limits)
    network: bool | None = None

    def validate(self) -> None:
        """Raise :class:`RecipeError` saying which field is wrong and why."""
        argv = list(self.argv) if not isinstance(self.argv, str) else None
        if not argv:
            raise RecipeError("argv must be a non-empty list of strings (the command first)")
        for index, arg in enumerate(argv):
            if not isinstance(arg, str) or "\x00" in arg:
                raise RecipeError(f"argv[{index}] must be a string without NUL; got {arg!r}")
        if not argv[0]:
            raise RecipeError("argv[0] (the program) is empty")
        if not Path(self.cwd).is_absolute():
            raise RecipeError(f"cwd must be an absolute path; got {str(self.cwd)!r}")
        for key, value in self.env.items():
            if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
                raise RecipeError(f"env has an invalid variable name: {key!r}")
            if not isinstance(value, str) or "\x00" in value:
                raise RecipeError(f"env[{key!r}] must be a string without NUL; got {value!r}")
        if not self.phase:
            raise RecipeError("phase must name the step (run, build, lock, install...)")
        if not isinstance(self.limits, Limits):
            raise RecipeError(f"limits must be a gristmill.Limits; got {self.limits!r}")
        self.limits.validate()
        if self.network is not None and not isinstance(self.network, bool):
            raise RecipeError(f"network must be True, False or None; got {self.network!r}")
        # The working directory is mounted read-write: the same rules as a writable mount.
        Mount(str(self.cwd), writable=True).validate()
        for mount in self.mounts:
            if not isinstance(mount, Mount):
                raise RecipeError(f"mounts must hold gristmill.Mount objects; got {mount!r}")
            mount.validate()


@dataclass(frozen=True)
class ProcessExit:
    """How a job's process ended."""

    returncode: int
    #: Last non-empty line the process printed (a result for shell-like runtimes).
    last_line: str = ""
    #: The end of what the process printed, for error messages.
    output_tail: str = ""


@dataclass(frozen=True)
class JobOutcome:
    """The result of a job: ``result_json`` is JSON text, an error object when not success."""

    success: bool
    result_json: str


@runtime_checkable
class Runtime(Protocol):
    """One language. See docs/plugins.md for a walk-through of each member."""

    # Read-only members: a plain class attribute (``name = "python3"``) provides each.

    @property
    def name(self) -> str:
        """Stable id stored with scripts and jobs; Windmill's language name (``python3``)."""
        ...

    @property
    def display_name(self) -> str:
        """Label for people."""
        ...

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names accepted in requests (``python``); scripts always store ``name``."""
        ...

    @property
    def file_extensions(self) -> tuple[str, ...]:
        """File extensions, for the CLI and the editor (``.py``)."""
        ...

    def parse_signature(self, source: str) -> Signature:
        """Parse the parameters of ``main``; raise :class:`ScriptError` on bad source."""
        ...

    def template(self) -> str:
        """A starter script."""
        ...

    def toolchain(self) -> Toolchain:
        """Report whether this machine can run the language's jobs (may be cached)."""
        ...

    def prepare(self, ctx: JobContext) -> Recipe | Sequence[Recipe]:
        """Write the job's files into ``ctx.job_dir`` and return how to run them: one recipe,
        or several run in order (a compile step before the run, say).

        The directory already holds ``args.json`` (the job's arguments as JSON).
        """
        ...

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        """Turn what the process left behind into the job's outcome."""
        ...


@runtime_checkable
class ResourceReferences(Protocol):
    """Optional: a runtime whose scripts name resources in their code (a SQL script's
    ``-- database f/team/pg`` line) implements this method.

    Before the job runs, the worker reads each resource it returns with the permissions of
    the job's user (expanding ``$var:``/``$res:`` references in it) and hands the values to
    :meth:`Runtime.prepare` in ``ctx.resources`` (by path). A resource that is missing or
    not visible to that user fails the job with ``ResourceError`` before ``prepare``.
    (Resources passed as arguments, ``"$res:<path>"``, need nothing: the worker replaces
    them in ``ctx.args`` for every runtime.)
    """

    def resource_paths(self, source: str) -> Sequence[str]:
        """The resource paths the script's code names (none: an empty sequence)."""
        ...


@runtime_checkable
class DependencyLocking(Protocol):
    """Optional: a runtime whose scripts import packages implements these four methods too.

    The core calls them in three phases. ``lock`` when a version is saved (a dependency job)
    or, for a preview, just before its run: :meth:`lock_inputs` says what the script needs,
    :meth:`prepare_lock` returns the resolver's recipes and :meth:`read_lock` the text stored
    on the version. ``install`` once per lock and worker host: :meth:`prepare_install` fills
    an empty directory the core then renames into its content-addressed cache. ``run``: the
    runtime's :meth:`Runtime.prepare` finds the lock in ``ctx.lock`` and its installed
    directory in ``ctx.deps_dir``.
    """

    def lock_inputs(self, source: str) -> str | None:
        """What the script asks for (a requirements list, a ``package.json``, ``go.mod``
        lines...), as text: deterministic, for it keys the resolution cache. ``None`` when
        the script needs nothing beyond the standard library. Raise :class:`ScriptError`
        for a malformed requirement annotation."""
        ...

    def prepare_lock(self, ctx: JobContext, inputs: str) -> Recipe | Sequence[Recipe]:
        """Write the resolver's input files into ``ctx.job_dir``; the recipes resolve them.

        A recipe that fails fails the lock with its output (the resolver's message)."""
        ...

    def read_lock(self, ctx: JobContext) -> str:
        """After the lock recipes succeeded: the lock text to store on the version."""
        ...

    def prepare_install(
        self, ctx: JobContext, lock: str, target: Path
    ) -> Recipe | Sequence[Recipe]:
        """Recipes that install exactly ``lock`` into ``target`` (an empty directory).

        The core runs them under a file lock and renames ``target`` into the cache only when
        all succeed: a half-installed directory is never used."""
        ...


@dataclass(frozen=True)
class WarmSpec:
    """How to keep processes warm for one environment (a runtime and a lock); see
    :class:`WarmStart`.

    The core starts, in the worker's sandbox and as its unprivileged user, a *parent*:
    ``argv`` (a Python interpreter and its flags) running the core's fork server, with
    ``env``, seeing the system directories and ``mounts`` read-only. The parent adds
    ``deps_dir`` to its import path, imports ``entry`` (a Python file) and each module of
    ``preload`` (a module that fails to import is skipped), and then forks one child per job,
    each in fresh namespaces with ``limits`` applied. In a child the core calls
    ``entry``'s ``function(payload, write_result)``: ``payload`` is what
    :meth:`WarmStart.warm_payload` returned, ``write_result(text)`` sends the job's result
    (the text a cold run writes to ``result.json``). The job's working directory is a new
    tmpfs, empty; its environment is the job's (``JobContext.env``).

    A runtime that cannot fork safely (Bun, Deno) sets ``exec_argv`` instead of ``entry``:
    each child, once isolated, executes that program at once (with ``env``), before its job
    arrives; the program reads the job from descriptor 3 (a 4-byte big-endian length, then
    ``{"env": {...}, "payload": {...}}`` as JSON), runs it with the job's ``env`` as its
    environment, writes its result to descriptor 3 and closes it. Its working directory is
    the job's (a new tmpfs, empty). ``argv`` may then be empty: the parent is only a
    launcher, and the core runs it with the worker's own Python.
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    mounts: Sequence[Mount] = ()
    entry: str | None = None
    function: str = "warm_run"
    preload: Sequence[str] = ()
    deps_dir: str | None = None
    exec_argv: Sequence[str] = ()
    limits: Limits = field(default_factory=Limits)


@runtime_checkable
class WarmStart(Protocol):
    """Optional: a runtime whose jobs can run in warm processes implements these two methods.

    Warm mode is the default where the worker's sandbox supports it (bwrap, or none); the
    core falls back to :meth:`Runtime.prepare` (a cold start) whenever ``warm_spec`` returns
    ``None``, the job needs more than a warm child offers (a flow's shared directory), or
    the environment's parent cannot start.
    """

    def warm_spec(self, ctx: JobContext) -> WarmSpec | None:
        """How to keep this job's environment warm (the same for every job of the same
        environment: the core keys parents by it), or ``None`` to run it cold."""
        ...

    def warm_payload(self, ctx: JobContext) -> Mapping[str, Any]:
        """What the child needs of this job (its code, its arguments...), as JSON values."""
        ...
