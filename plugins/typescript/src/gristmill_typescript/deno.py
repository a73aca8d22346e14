"""The Deno runtime (``deno``): TypeScript run by Deno with explicit permissions."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gristmill import JobContext, Toolchain

from gristmill_typescript.runtime import TypeScriptRuntime
from gristmill_typescript.toolchains import Executable, find_executable, probe_version

__all__ = ["DenoRuntime"]


def _deno_from_pypi() -> str | None:
    """The binary of the ``deno`` PyPI package (the ``deno`` extra of this plugin)."""
    with contextlib.suppress(Exception):  # not installed, or no binary for this platform
        import deno  # pyright: ignore[reportMissingImports]

        return str(deno.find_deno_bin())
    return None


def find_deno() -> Executable:
    return find_executable(
        "deno", "DENO_PATH", "install it with `pip install deno`", fallbacks=(_deno_from_pypi,)
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

    def _command(self, ctx: JobContext, cache_dir: Path) -> list[str]:
        deno_dir = cache_dir / "deno"
        return [
            self.deno,
            "run",
            "--no-prompt",
            # The job is its own project: no deno.json, lock file or node_modules of a
            # directory above it applies, and none is written.
            "--no-config",
            "--no-lock",
            "--node-modules-dir=none",
            # What the wrapper needs (args.json in, result.json out), what Windmill allows
            # (environment, network), and reading the npm packages it downloads (some read
            # their own files).
            f"--allow-read={ctx.job_dir},{deno_dir}",
            f"--allow-write={ctx.job_dir}",
            "--allow-env",
            "--allow-net",
        ]

    def _env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        return {
            **ctx.env,
            # Downloaded modules and compiled code are shared by all jobs.
            "DENO_DIR": str(cache_dir / "deno"),
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PACKAGE_JSON": "1",
            # Trust the machine's certificate authorities as well as Deno's own list, like Bun
            # and curl do: a registry behind a company proxy works.
            "DENO_TLS_CA_STORE": "system,mozilla",
            "NO_COLOR": "1",
        }
