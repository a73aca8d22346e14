"""What the Bun and Deno runtimes share: the parser, the template, the job wrapper and its
argument spec, and the result protocol. Each runtime adds its command and environment."""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from gristmill import (
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    WarmSpec,
    read_result_file,
    toolchain_mounts,
)

from gristmill_typescript.signature import ParsedMain, parse_main, parse_signature
from gristmill_typescript.toolchains import Executable

__all__ = ["LIMITS", "MAIN_FILE", "TEMPLATE", "WARM_FLAG", "TypeScriptRuntime", "argument_spec"]

MAIN_FILE = "main.ts"

#: The wrapper's argument in place of the argument spec when it is a warm process: it waits
#: for its job on descriptor 3 (see wrapper.mjs and ``warm_spec``).
WARM_FLAG = "--warm"

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
        for name, text in self._job_files(ctx).items():
            (ctx.job_dir / name).write_text(text, encoding="utf-8")
        for name, target in self._job_links(ctx).items():
            link = ctx.job_dir / name
            if link.is_symlink():  # the same job prepared again
                link.unlink()
            link.symlink_to(target, target_is_directory=True)
        cache_dir = ctx.cache_dir or ctx.job_dir / ".cache"
        argv = [
            *self._command(ctx, cache_dir, str(ctx.job_dir)),
            self.wrapper,
            argument_spec(parsed),
        ]
        return Recipe(
            argv=argv,
            env={**ctx.env, **self._runtime_env(ctx, cache_dir)},
            cwd=ctx.job_dir,
            mounts=self._mounts(ctx, cache_dir),
            limits=LIMITS,
        )

    def _mounts(self, ctx: JobContext, cache_dir: Path) -> list[Mount]:
        # What the sandbox shows the run step besides the job directory, all read-only: the
        # runtime's binary, the wrapper, the installed packages and caches.
        return [
            *self.toolchain_mounts(),
            Mount(os.path.dirname(self.wrapper)),
            *self._run_mounts(ctx, cache_dir),
        ]

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)

    # -- warm mode (gristmill.WarmStart) -----------------------------------------------------
    # Bun and Deno cannot be forked (their threads start with them), so the core's fork
    # server executes the runtime in each prepared child, before its job arrives: the child
    # pays the runtime's start-up and the wrapper's loading while it waits. The wrapper then
    # reads the job from descriptor 3, writes the files a cold run finds in its directory,
    # runs main as the cold wrapper does and sends the result back on descriptor 3.

    def warm_spec(self, ctx: JobContext) -> WarmSpec | None:
        if ctx.cache_dir is None:
            # The runtime's caches would be in the job's own directory: a parent kept for
            # one job would serve no other (the spec keys the parent).
            return None
        # Everything here is the same for every job of the environment (the runtime, its
        # lock, the worker's cache): the core keeps one parent per distinct spec. A script
        # with dependencies gets the parent of its lock (its installed directory mounted
        # read-only, as in a cold run); what varies per job is in warm_payload.
        cache_dir = ctx.cache_dir
        return WarmSpec(
            argv=(),
            env={
                "PATH": ctx.env.get("PATH", "/usr/bin:/bin"),
                # The job's own HOME is its /tmp too (the core sets it so in its env).
                "HOME": "/tmp",
                **self._runtime_env(ctx, cache_dir),
            },
            mounts=self._mounts(ctx, cache_dir),
            # The working directory the child starts in is its job's: "." names it.
            exec_argv=[*self._command(ctx, cache_dir, "."), self.wrapper, WARM_FLAG],
            limits=LIMITS,
        )

    def warm_payload(self, ctx: JobContext) -> dict[str, Any]:
        cache_dir = ctx.cache_dir or ctx.job_dir / ".cache"
        return {
            "spec": argument_spec(parse_main(ctx.code)),
            "args": dict(ctx.args),
            # What prepare writes into a cold job's directory, written by the wrapper into
            # the warm child's (its working directory, a fresh tmpfs).
            "files": self._job_files(ctx),
            "links": {name: str(target) for name, target in self._job_links(ctx).items()},
            # The runtime's variables over the job's, as in a cold run's environment.
            "env": self._runtime_env(ctx, cache_dir),
        }

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

    def _command(self, ctx: JobContext, cache_dir: Path, job_dir: str) -> list[str]:
        """The command before the wrapper's path, run in ``job_dir``. The same for every job
        of an environment given the same ``job_dir`` (a warm process is started with it
        before its job is known)."""
        raise NotImplementedError

    def _runtime_env(self, ctx: JobContext, cache_dir: Path) -> dict[str, str]:
        """The runtime's variables, set over the job's own (``ctx.env``)."""
        raise NotImplementedError

    def _job_files(self, ctx: JobContext) -> dict[str, str]:
        """The files of the job's directory besides ``args.json``, by name."""
        return {MAIN_FILE: self._script_for_job(ctx)}

    def _job_links(self, ctx: JobContext) -> dict[str, Path]:
        """Symbolic links of the job's directory to directories, by name."""
        return {}

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
