"""What a recipe may ask of the sandbox: mounts, limits, network, and the checks on them.

These types are data, shared by every backend: a runtime declares what its step needs
(its toolchain read-only, its cache writable in a lock phase, ...), the core adds what every
job gets, and a backend (bubblewrap, nsjail, none) renders both. Nothing here knows a
language or touches the file system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

from gristmill.errors import GristmillError

__all__ = [
    "PROTECTED_TARGETS",
    "SYSTEM_DIRS",
    "Limits",
    "Mount",
    "RecipeError",
    "is_under",
]

#: Host directories every sandboxed step sees read-only (those that exist). A runtime never
#: needs to declare them, and may never mount one of them (or a parent of one) writable.
SYSTEM_DIRS: tuple[str, ...] = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
)

#: Mount targets that belong to the sandbox itself: a recipe mount at one of these (or, for
#: the pseudo file systems, inside one) would hide the job's own /proc, /dev or private /tmp,
#: or the whole tree. A mount inside /tmp is fine: it is placed over the private tmpfs.
PROTECTED_TARGETS: tuple[str, ...] = ("/", "/tmp", "/proc", "/dev", "/sys")
_PSEUDO_FILESYSTEMS: tuple[str, ...] = ("/proc", "/dev", "/sys")


class RecipeError(GristmillError, ValueError):
    """A recipe the core refuses to run: the message says which field and why."""


def _clean(path: object, what: str) -> str:
    text = os.fspath(path)  # type: ignore[arg-type]
    if not isinstance(text, str):
        raise RecipeError(f"{what} must be a text path; got {path!r}")
    if not text.startswith("/"):
        raise RecipeError(f"{what} must be an absolute path; got {text!r}")
    if "\x00" in text:
        raise RecipeError(f"{what} contains a NUL character: {text!r}")
    parts = PurePosixPath(text).parts
    if ".." in parts:
        # The sandbox compares paths as text: a `..` would let a mount escape that check.
        raise RecipeError(f"{what} must not contain '..'; got {text!r}")
    return str(PurePosixPath(text))


def is_under(path: str, parent: str) -> bool:
    """Whether ``path`` is ``parent`` or inside it (both normalised absolute paths)."""
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox, read-only unless ``writable``.

    ``target`` is where it appears inside (default: the same path as on the host, so that
    the paths a runtime writes into files and environment variables stay true). An
    ``optional`` mount whose source does not exist is skipped; any other must exist.
    """

    source: str
    target: str | None = None
    writable: bool = False
    optional: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", _clean(self.source, "a mount's source"))
        if self.target is not None:
            object.__setattr__(self, "target", _clean(self.target, "a mount's target"))

    @property
    def destination(self) -> str:
        return self.target if self.target is not None else self.source

    def validate(self) -> None:
        dest = self.destination
        for protected in PROTECTED_TARGETS:
            if dest == protected or (
                protected in _PSEUDO_FILESYSTEMS and is_under(dest, protected)
            ):
                raise RecipeError(
                    f"a mount cannot target {dest}: {protected} belongs to the sandbox "
                    "(its own /proc, /dev and private /tmp)"
                )
        if is_under(dest, "/etc"):
            raise RecipeError(
                f"a mount cannot target {dest}: the sandbox's /etc is its own copy of the few "
                "files programs need (gristmill.sandbox.layout.ETC_ENTRIES); point the tool "
                "at a configuration file elsewhere"
            )
        if self.writable:
            for system in SYSTEM_DIRS:
                if is_under(system, self.source) or is_under(self.source, system):
                    raise RecipeError(
                        f"{self.source} cannot be mounted writable: it is (or holds) the "
                        f"system directory {system}, which every job shares read-only"
                    )


@dataclass(frozen=True)
class Limits:
    """Resource limits of one step. ``None`` means no limit of that kind.

    The wall time is not here: it is the job's timeout, shared by all its steps.

    - ``memory_mb``: the address space of each process (``RLIMIT_AS``). Off by default:
      Go, Bun, Deno and the JVM reserve far more address space than they use and fail
      under it, so a runtime opts in with a value suited to its language (Windmill uses
      4096 for Python and Bash).
    - ``processes``: processes and threads of the job (``RLIMIT_NPROC``, counted per
      sandbox: bubblewrap gives each job its own user namespace). Contains fork bombs.
    - ``open_files``: open descriptors per process (``RLIMIT_NOFILE``).
    - ``file_size_mb``: the largest file a process may write (``RLIMIT_FSIZE``). Large
      enough for any wheel or toolchain archive a lock or install step downloads.
    - ``tmp_mb``: the size of the job's private ``/tmp`` (a tmpfs: its content is memory).
    """

    memory_mb: int | None = None
    processes: int | None = 1024
    open_files: int | None = 10240
    file_size_mb: int | None = 4096
    tmp_mb: int | None = 512

    def validate(self) -> None:
        for name in ("memory_mb", "processes", "open_files", "file_size_mb", "tmp_mb"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise RecipeError(
                    f"limits.{name} must be a positive whole number or None; got {value!r}"
                )
