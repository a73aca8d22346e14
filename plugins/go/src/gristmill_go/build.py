# The build step of a Go job, run in the job's module directory as
#   python -I -S build.py GO OUTPUT
# It compiles the module into a temporary file next to OUTPUT and renames it to OUTPUT, so that
# a job never sees a half-written program and concurrent builds of one script are safe (the
# last rename wins; both programs are the same). The job's run step starts OUTPUT.
# It imports only the standard library and nothing of Gristmill: it runs without site-packages.
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid

# Flags that do not change what the program does: paths in stacks are module paths
# (script/inner/main.go), no VCS stamping (a job directory is no repository), no symbol table
# or DWARF (a faster link; panics still show file and line).
BUILD_FLAGS = ("-trimpath", "-buildvcs=false", "-ldflags=-s -w")
SCRIPT_DIR = "inner/"
STALE_AFTER_S = 3600.0

_PACKAGE_HEADER = re.compile(r"^# \S+$")
# An import no module provides: without a lock (GOFLAGS=-mod=mod, GOPROXY=off), or with one
# (-mod=readonly) that does not hold the import's module.
_MODULE_LOOKUP = re.compile(r"cannot find module providing package ([^\s:]+)")
_NOT_IN_LOCK = re.compile(r"no required module provides package ([^\s:;]+)")
_LOCKED = "-mod=readonly"
# A module of the lock that is not in the installed module cache (a build never downloads).
_NOT_IN_CACHE = "module lookup disabled by GOPROXY=off"
_GO_GET = re.compile(r"^\s*(?:to add it:|go get \S+)\s*$")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: build.py GO OUTPUT", file=sys.stderr)
        return 2
    go, output = argv[1], argv[2]
    directory = os.path.dirname(output)
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory)
    temporary = os.path.join(directory, f".{os.path.basename(output)}.{uuid.uuid4().hex}.tmp")
    try:
        done = subprocess.run(
            [go, "build", *BUILD_FLAGS, "-o", temporary, "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        print(f"cannot run the Go compiler {go!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    report = explain(done.stdout)
    if report:
        sys.stderr.write(report)
    if done.returncode != 0:
        _remove(temporary)
        return done.returncode
    os.replace(temporary, output)
    return 0


def explain(output: str) -> str:
    """The compiler's output as the user reads it: their script is ``main.go``, the package
    headers (``# script/inner``) are noise, and an import of a module gets a hint."""
    lines = []
    missing: list[str] = []
    not_locked: list[str] = []
    uncached = False
    for line in output.splitlines():
        if _PACKAGE_HEADER.match(line) or _GO_GET.match(line):
            continue  # `go get` is not how a script gets a module: its lock is
        if line.startswith(SCRIPT_DIR):
            line = line[len(SCRIPT_DIR) :]
        line = line.replace("; to add it:", "")
        if (match := _MODULE_LOOKUP.search(line)) and _LOCKED not in line:
            missing.append(match.group(1))
        elif match := _MODULE_LOOKUP.search(line) or _NOT_IN_LOCK.search(line):
            not_locked.append(match.group(1))
        elif _NOT_IN_CACHE in line:
            uncached = True
        lines.append(line)
    if missing:
        lines.append(
            f"{', '.join(missing)} is not in Go's standard library, and this job was built "
            "without a lock (the go.mod and go.sum that `go mod tidy` makes of the script's "
            "imports and //require lines), so no module provides it"
        )
    if not_locked:
        lines.append(
            f"the script's lock has no module providing {', '.join(not_locked)}: lock the "
            "script again (save it) so that `go mod tidy` adds it"
        )
    elif uncached and not missing:
        lines.append(
            "a module of the script's lock is not in the lock's installed module cache "
            "(GOMODCACHE), and a build never downloads: was the job run with a lock but "
            "without its installed directory, or was that directory changed?"
        )
    return "".join(line + "\n" for line in lines)


def _remove_stale_temporaries(directory: str) -> None:
    # Left by builds that were killed (timeout, cancel) before their rename.
    now = time.time()
    try:
        entries = os.scandir(directory)
    except OSError:
        return
    with entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S:
                        os.unlink(entry.path)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
