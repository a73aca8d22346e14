"""What the Bun and Deno runtimes share: the parser, the template, the job wrapper and its
argument spec, and the result protocol. Each runtime adds its command and environment."""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path

from gristmill import (
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
    toolchain_mounts,
)

from gristmill_typescript.signature import ParsedMain, parse_main, parse_signature
from gristmill_typescript.toolchains import Executable

__all__ = ["LIMITS", "MAIN_FILE", "TEMPLATE", "TypeScriptRuntime", "argument_spec"]

MAIN_FILE = "main.ts"

#: The limits of every Bun and Deno step: the defaults (processes, open files, file size,
#: /tmp), without a memory limit, which would be an address-space limit (``RLIMIT_AS``). Deno
#: cannot run under one: V8 reserves its heap cage up front, and a hello world needs more than
#: 32 GB of address space (measured, Deno 2.9). Bun 1.4 can (it ran with 2 GB and failed an
#: allocation past it with ``RangeError: Out of memory``), but stays without one for now.
LIMITS = Limits(memory_mb=None)

TEMPLATE = """\
// `main`'s parameters become the script's form and its API arguments.
export async function main(name: string = "world", times: number = 1) {
  const greeting = `Hello, ${name}!`;
  for (let i = 0; i < times; i++) {
    console.log(greeting);
  }
  return greeting;
}
"""


class TypeScriptRuntime:
    """A TypeScript runtime; subclasses say how to start the job's process."""

    name: str
    display_name: str
    aliases: tuple[str, ...] = ()
    file_extensions = (".ts",)
    #: The runtime's binary (``bun`` or ``deno``), or why there is none.
    executable: Executable

    def __init__(self) -> None:
        self.wrapper = str(resources.files("gristmill_typescript").joinpath("wrapper.mjs"))

    def parse_signature(self, source: str) -> Signature:
        return parse_signature(source)

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        return self._probe_toolchain()

    def prepare(self, ctx: JobContext) -> Recipe:
        # Parsed again here rather than read from the stored schema: the wrapper needs what
        # only the source says (positions, ``bigint``, ``?`` versus ``| null``). A script is
        # checked when it is saved, so this does not fail for a stored script.
        parsed = parse_main(ctx.code)
        (ctx.job_dir / MAIN_FILE).write_text(self._script_for_job(ctx), encoding="utf-8")
        cache_dir = ctx.cache_dir or ctx.job_dir / ".cache"
        argv = [*self._command(ctx, cache_dir), self.wrapper, argument_spec(parsed)]
        return Recipe(
            argv=argv,
            env=self._env(ctx, cache_dir),
            cwd=ctx.job_dir,
            # What the sandbox shows the run step besides the job directory, all read-only:
            # the runtime's binary, the wrapper, the installed packages and caches.
            mounts=[
                *self.toolchain_mounts(),
                Mount(os.path.dirname(self.wrapper)),
                *self._run_mounts(ctx, cache_dir),
            ],
            limits=LIMITS,
        )

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)

    # -- what each runtime supplies -----------------------------------------------------------

    def toolchain_mounts(self) -> list[Mount]:
        """The read-only mounts that make the runtime's binary runnable in the sandbox: its
        directory, and the real binary's when it is a link (``node_modules/.bin/bun``)."""
        path = self.executable.path
        return toolchain_mounts(path) if path else []

    def _probe_toolchain(self) -> Toolchain:
        raise NotImplementedError

    def _run_mounts(self, ctx: JobContext, cache_dir: Path) -> list[Mount]:
        """The run step's mounts besides the binary's and the wrapper's (read-only)."""
        raise NotImplementedError

    def _command(self, ctx: JobContext, cache_dir: Path) -> list[str]:
        """The command before the wrapper's path; may write files into the job directory."""
        raise NotImplementedError

    def _env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        raise NotImplementedError

    def _script_for_job(self, ctx: JobContext) -> str:
        return ctx.code


def argument_spec(parsed: ParsedMain) -> str:
    """The wrapper's argument: main's parameters in order, as
    ``[[name, conversion, null_is_unset], ...]`` (see wrapper.mjs)."""
    return json.dumps(
        [[p.name, p.conversion, p.null_is_unset] for p in parsed.params],
        separators=(",", ":"),
        ensure_ascii=False,
    )
