"""The Deno runtime (``deno``): TypeScript run by Deno with explicit permissions, its
``npm:``, ``jsr:`` and URL imports locked in a ``deno.lock``."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gristmill import JobContext, JobErrorName, Mount, Recipe, ScriptError, Toolchain

from gristmill_typescript.dependencies import (
    deno_entrypoint_from_lock,
    deno_inputs,
    network_env,
    network_mounts,
)
from gristmill_typescript.runtime import LIMITS, TypeScriptRuntime
from gristmill_typescript.toolchains import Executable, find_executable, probe_version

__all__ = ["DenoRuntime"]

LOCK_FILE = "deno.lock"
# The lock phase's and the install's entrypoint: a module that only imports what is locked.
DEPS_FILE = "deps.ts"


def _deno_from_pypi() -> str | None:
    """The binary of the ``deno`` PyPI package (the ``deno`` extra of this plugin)."""
    with contextlib.suppress(Exception):  # not installed, or no binary for this platform
        import deno  # pyright: ignore[reportMissingImports]

        return str(deno.find_deno_bin())
    return None


def find_deno() -> Executable:
    return find_executable(
        "deno",
        "DENO_PATH",
        "install it with `uv sync` (in a checkout of Gristmill) or "
        "`pip install 'gristmill-typescript[deno]'`",
        fallbacks=(_deno_from_pypi,),
    )


def _parse_version(output: str) -> str:
    # "deno 2.1.4 (stable, release, x86_64-unknown-linux-gnu)\nv8 ...\ntypescript ..."
    first = output.splitlines()[0] if output else ""
    parts = first.split()
    return parts[1] if len(parts) > 1 and parts[0] == "deno" else first


class DenoRuntime(TypeScriptRuntime):
    name = "deno"
    display_name = "TypeScript (Deno)"
    aliases = ()

    def __init__(self, deno: str | None = None) -> None:
        super().__init__()
        self.executable = Executable(deno) if deno else find_deno()
        self.deno = self.executable.path or "deno"

    def _probe_toolchain(self) -> Toolchain:
        return probe_version(self.executable, _parse_version)

    def _command(self, ctx: JobContext, cache_dir: Path, job_dir: str) -> list[str]:
        deno_dir = _deno_dir(cache_dir)
        return [
            self.deno,
            "run",
            "--no-prompt",
            # The job is its own project: no deno.json, lock file or node_modules of a
            # directory above it applies, and none is written.
            "--no-config",
            *self._lock_flags(ctx),
            "--node-modules-dir=none",
            # What the wrapper needs (args.json in, result.json out), what Windmill allows
            # (environment, network), and reading the npm packages it downloads (some read
            # their own files).
            f"--allow-read={job_dir},{deno_dir}",
            f"--allow-write={job_dir}",
            "--allow-env",
            "--allow-net",
            # A run step writes nothing into DENO_DIR (read-only in the sandbox), not even
            # V8's code cache (see _env for the other one).
            "--no-code-cache",
        ]

    def _lock_flags(self, ctx: JobContext) -> list[str]:
        if ctx.deps_dir is None:
            return ["--no-lock"]
        # Exactly the lock: an import it does not pin fails the job rather than resolving
        # anew. A module missing from the cache is downloaded and checked against the lock
        # outside the sandbox; inside, DENO_DIR is read-only and the job fails, naming it.
        return [f"--lock={ctx.deps_dir / LOCK_FILE}", "--frozen"]

    def _run_mounts(self, ctx: JobContext, cache_dir: Path) -> list[Mount]:
        # DENO_DIR read-only: it holds what the lock pinned (the install step fetched it), and
        # a job must not change what the next jobs load. Deno keeps its own caches there too
        # (emitted JavaScript, code cache, CommonJS analysis): in a run step it works without
        # writing them. The environment holds the lock file the job runs against.
        mounts = [Mount(str(_made(_deno_dir(cache_dir))))]
        if ctx.deps_dir is not None:
            mounts.append(Mount(str(ctx.deps_dir)))
        return mounts

    def _runtime_env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        return {
            **self._deno_env(cache_dir),
            # A run step does not write DENO_DIR (read-only in the sandbox: a cache jobs write
            # is one a job could poison for the next ones). Deno would still try to keep the
            # JavaScript it emits for main.ts there, and retry the failed write for 165 ms
            # (measured); both of its caches hold one entry per job directory anyway, never
            # hit again, so unsandboxed they only grew. Transpiling a script costs a few ms.
            "DENO_EMIT_CACHE_MODE": "disable",
        }

    def _deno_env(self, cache_dir: Path) -> dict[str, str]:
        return {
            # Downloaded modules and compiled code are shared by all jobs.
            "DENO_DIR": str(_deno_dir(cache_dir)),
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PACKAGE_JSON": "1",
            # Trust the machine's certificate authorities as well as Deno's own list, like Bun
            # and curl do: a registry behind a company proxy works.
            "DENO_TLS_CA_STORE": "system,mozilla",
            "NO_COLOR": "1",
        }

    # -- dependencies (gristmill.DependencyLocking) --------------------------------------------

    def lock_inputs(self, source: str) -> str | None:
        return deno_inputs(source)

    def prepare_lock(self, ctx: JobContext, inputs: str) -> Recipe:
        (ctx.job_dir / DEPS_FILE).write_text(inputs, encoding="utf-8")
        return self._install_recipe(ctx, ctx.job_dir, frozen=False, phase="lock")

    def read_lock(self, ctx: JobContext) -> str:
        return (ctx.job_dir / LOCK_FILE).read_text(encoding="utf-8")

    def prepare_install(self, ctx: JobContext, lock: str, target: Path) -> Recipe:
        # The packages go to the shared DENO_DIR, where Deno keeps them by name and version
        # (and checks them against the lock's hashes); the environment holds the lock the
        # jobs run with. Fetching them now makes a bad lock an install error, and the first
        # job as fast as the next ones.
        try:
            entrypoint = deno_entrypoint_from_lock(lock)
        except ValueError as exc:
            raise ScriptError(str(exc)) from exc
        (target / LOCK_FILE).write_text(lock, encoding="utf-8")
        (target / DEPS_FILE).write_text(entrypoint, encoding="utf-8")
        return self._install_recipe(ctx, target, frozen=True, phase="install")

    def _install_recipe(self, ctx: JobContext, where: Path, *, frozen: bool, phase: str) -> Recipe:
        cache_dir = ctx.cache_dir or ctx.job_dir / ".cache"
        argv = [
            self.deno,
            "install",
            "--quiet",
            f"--lock={where / LOCK_FILE}",
            *(["--frozen"] if frozen else []),
            "--no-config",
            "--node-modules-dir=none",
            # Last, as separate words: ``--entrypoint=FILE`` installs nothing (Deno 2.9).
            "--entrypoint",
            str(where / DEPS_FILE),
        ]
        # The worker's registry, proxy and certificate settings; a job_env hook's (in ctx.env)
        # win over them.
        env = {**network_env(), **ctx.env, **self._deno_env(cache_dir)}
        return Recipe(
            argv=argv,
            env=env,
            # The lock directory, or the install target: writable, as the step's cwd.
            cwd=where,
            phase=phase,
            failure_name=JobErrorName.LOCK if phase == "lock" else "InstallError",
            # The steps that fill DENO_DIR are the only ones that may write it.
            mounts=[
                *self.toolchain_mounts(),
                Mount(str(_made(_deno_dir(cache_dir))), writable=True),
                *network_mounts(env),
            ],
            limits=LIMITS,
            network=True,
        )


def _deno_dir(cache_dir: Path) -> Path:
    return cache_dir / "deno"


def _made(path: Path) -> Path:
    """``path``, created when missing: a mount's source must exist."""
    path.mkdir(parents=True, exist_ok=True)
    return path
