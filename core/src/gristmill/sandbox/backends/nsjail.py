"""The ``nsjail`` backend: the recipe rendered as nsjail's configuration (protobuf text).

Used where an ``nsjail`` binary is installed (``GRISTMILL_SANDBOX=nsjail``, or chosen
automatically when bwrap cannot run). No package registry reachable here ships nsjail, so the
rendering is pinned by golden tests (tests/unit/sandbox/golden/*.cfg) rather than run; the
layout is the bwrap backend's, field for field, so that both give a job the same view:
Windmill's own nsjail recipes (``backend/windmill-worker/nsjail/*.config.proto``) are the
model, with the differences of :mod:`gristmill.sandbox.backends.bwrap` (a read-only root with only the
system directories and a few files of /etc, the job's uid mapped to an unprivileged user
outside, ``RLIMIT_NPROC`` per job, no capabilities).

nsjail runs as the worker (root or not) and maps uid 65534 inside to ``outside_uid``
(65533 by default for a root worker; the worker's own uid otherwise). The configuration
reaches nsjail through a memfd (``--config /proc/self/fd/N``): no file to clean up, and
nothing of it inside the job's directory.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gristmill.sandbox.base import Launch, Protected, SandboxError
from gristmill.sandbox.hostpaths import chown_tree, is_owned_by
from gristmill.sandbox.layout import (
    SANDBOX_GID,
    SANDBOX_OUTSIDE_GID,
    SANDBOX_OUTSIDE_UID,
    SANDBOX_UID,
    SystemLayout,
)
from gristmill.sandbox.spec import Limits

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
_NOT_FOUND = re.compile(r"execve\('(?P<path>[^']+)'\) failed", re.MULTILINE)


def find_nsjail(explicit: str = "") -> str | None:
    if explicit:
        return explicit
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
    if value is None:
        lines.append(f"rlimit_{name}_type: INF")
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
) -> str:
    """nsjail's configuration for one step. ``outside_uid`` ``None`` maps the job to
    nsjail's own user (a worker that is not root). Deterministic: the same inputs give the
    same text, byte for byte."""
    cwd = str(recipe.cwd)
    lines = [
        f"name: {_quote(name + ' ' + recipe.phase)}",
        "mode: ONCE",
        f"hostname: {_quote(_HOSTNAME)}",
        f"cwd: {_quote(cwd)}",
        # The executor enforces the job's timeout; nsjail's own is a backstop a little later.
        f"time_limit: {max(1, math.ceil(time_limit_s)) + 5}",
        "log_level: WARNING",
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
    lines += [
        # Wall time is the job's timeout, not CPU time.
        "rlimit_cpu_type: INF",
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
    tmp = [("dst", _quote("/tmp")), ("fstype", _quote("tmpfs")), ("rw", "true")]
    if limits.tmp_mb is not None:
        tmp.append(("options", _quote(f"size={limits.tmp_mb * 1024 * 1024}")))
    _mount(lines, tmp)
    _mount(lines, [("dst", _quote("/dev")), ("fstype", _quote("tmpfs")), ("rw", "true")])
    for device in _DEVICES:
        _mount(
            lines,
            [("src", _quote(device)), ("dst", _quote(device)), ("is_bind", "true"), ("rw", "true")],
        )
    _mount(lines, [("dst", _quote("/dev/shm")), ("fstype", _quote("tmpfs")), ("rw", "true")])
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
            ("src", _quote(mount.source)),
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


class NsjailBackend:
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
    ) -> None:
        self.nsjail = nsjail
        self.layout = layout
        self.protected = protected or Protected()
        self.outside = outside
        self.timeout_s = timeout_s

    def launch(self, recipe: Recipe, *, network: bool, limits: Limits) -> Launch:
        cwd = str(recipe.cwd)
        self.layout.refresh()
        for mount in recipe.mounts:
            self.protected.check(mount.source, recipe.phase, cwd)
            if not mount.optional and not os.path.exists(mount.source):
                raise SandboxError(
                    f"the {recipe.phase} step mounts {mount.source}, which does not exist on "
                    "this worker"
                )
        handover: list[str] = []
        if self.outside is not None:
            uid, gid = self.outside
            if not is_owned_by(cwd, uid):
                chown_tree(cwd, uid, gid)
            handover = [
                m.source for m in recipe.mounts if m.writable and not is_owned_by(m.source, uid)
            ]
        config = render(
            recipe,
            layout=self.layout,
            network=network,
            limits=limits,
            time_limit_s=self.timeout_s,
            outside_uid=self.outside[0] if self.outside else None,
            outside_gid=self.outside[1] if self.outside else None,
        )
        fd = os.memfd_create("gristmill-nsjail.cfg", 0)
        os.write(fd, config.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        argv = [self.nsjail, "--config", f"/proc/self/fd/{fd}"]
        return Launch(argv, {}, "/", pass_fds=(fd,), handover=handover)

    def handover(self, paths: Sequence[str]) -> None:
        if self.outside is None:
            return
        uid, gid = self.outside
        for path in paths:
            chown_tree(path, uid, gid)

    def exit_status(self, returncode: int) -> int:
        if 128 < returncode <= 128 + 64:
            return -(returncode - 128)
        return returncode

    def explain(self, recipe: Recipe, returncode: int, output_tail: str) -> str | None:
        missing = _NOT_FOUND.search(output_tail) if returncode else None
        if missing is None:
            return None
        return (
            f"{missing.group('path')} is not visible inside the sandbox: declare it (or its "
            f"directory) as a mount of the {recipe.phase} step"
        )
