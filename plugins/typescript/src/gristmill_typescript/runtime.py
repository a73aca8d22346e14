"""What the Bun and Deno runtimes share: the parser, the template, the job wrapper and its
argument spec, and the result protocol. Each runtime adds its command and environment."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from gristmill import (
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
)

from gristmill_typescript.signature import ParsedMain, parse_main, parse_signature

__all__ = ["MAIN_FILE", "TEMPLATE", "TypeScriptRuntime", "argument_spec"]

MAIN_FILE = "main.ts"

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
        return Recipe(argv=argv, env=self._env(ctx, cache_dir), cwd=ctx.job_dir)

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)

    # -- what each runtime supplies -----------------------------------------------------------

    def _probe_toolchain(self) -> Toolchain:
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
