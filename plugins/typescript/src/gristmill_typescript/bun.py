"""The Bun runtime (``bun``): TypeScript run by Bun, packages installed by Bun on import."""

from __future__ import annotations

from pathlib import Path

from gristmill import JobContext, Toolchain

from gristmill_typescript.imports import without_npm_prefixes
from gristmill_typescript.runtime import TypeScriptRuntime
from gristmill_typescript.toolchains import Executable, find_executable, probe_version

__all__ = ["BunRuntime"]

# Bun looks for the nearest package.json above the script: one in the job directory keeps a
# package.json of the worker's own directories from deciding the job's dependencies.
PACKAGE_JSON = '{"name": "gristmill-job", "private": true}\n'


def find_bun() -> Executable:
    return find_executable("bun", "BUN_PATH", "install it with `npm install -g bun`")


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

    def _command(self, ctx: JobContext, cache_dir: Path) -> list[str]:
        (ctx.job_dir / "package.json").write_text(PACKAGE_JSON, encoding="utf-8")
        return [self.bun]

    def _env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        return {
            **ctx.env,
            # Packages a script imports are installed once for all jobs, not in each job's
            # HOME (the job directory, deleted after the job).
            "BUN_INSTALL_CACHE_DIR": str(cache_dir / "install"),
            "BUN_RUNTIME_TRANSPILER_CACHE_PATH": str(cache_dir / "transpiler"),
            # No telemetry or crash reports from the workers; logs without color codes.
            "DO_NOT_TRACK": "1",
            "NO_COLOR": "1",
        }

    def _script_for_job(self, code: str) -> str:
        return without_npm_prefixes(code)
