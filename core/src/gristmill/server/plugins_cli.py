"""``gristmill plugins``, ``gristmill install`` and ``gristmill uninstall``: the plugins of
the environment Gristmill runs in.

Installing goes into that environment (the interpreter running ``gristmill``, whatever
``pip`` or ``python`` the shell would find), as ``llm install`` and ``datasette install`` do:
with uv when it is there (``uv pip install --python <this interpreter>``), else with this
interpreter's pip. Plugins are read when a process starts, so a worker started after an
install offers the new runtimes with no other step.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

__all__ = [
    "Installer",
    "add_plugin_commands",
    "find_installer",
    "install",
    "install_arguments",
    "plugins",
    "uninstall",
]


@dataclass(frozen=True)
class Installer:
    """How packages get into this environment: the command prefix up to ``install`` /
    ``uninstall``, and the options that go after it."""

    name: str
    argv: tuple[str, ...]
    target: tuple[str, ...]

    def command(self, action: str, *args: str) -> list[str]:
        return [*self.argv, action, *self.target, *args]


def find_installer() -> Installer:
    """uv when it can be found (this environment's `uv` package, else `uv` on PATH), else
    this interpreter's pip.

    uv is how the README installs Gristmill, but it is not a dependency: an environment made
    by `uv venv` or `uv sync` has no pip, one made by `python -m venv` has pip and maybe no uv.
    """
    uv = _uv_binary()
    if uv is not None:
        # --python: the environment of the interpreter running gristmill, not whatever
        # VIRTUAL_ENV or the current directory's project would make uv choose.
        return Installer("uv", (uv, "pip"), ("--python", sys.executable))
    if importlib.util.find_spec("pip") is not None:
        return Installer("pip", (sys.executable, "-m", "pip"), ())
    raise click.ClickException(
        f"neither uv nor pip can install into Gristmill's environment ({sys.prefix}): "
        "install uv (https://docs.astral.sh/uv/, then this command uses it), or give this "
        f"environment pip with `{sys.executable} -m ensurepip`"
    )


def _uv_binary() -> str | None:
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]  # the `uv` PyPI package

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")


def _uv_project_note() -> str | None:
    """A warning when this environment is a uv project's: `uv sync` removes what its lockfile
    does not list, so a plugin installed here lasts only until the next sync."""
    project = Path(sys.prefix).parent
    if Path(sys.prefix).name != ".venv" or not (project / "uv.lock").is_file():
        return None
    return (
        f"note: this is the environment of the uv project in {project}: `uv run` keeps the "
        "plugin, but `uv sync` removes packages the project does not list. To keep it, add it "
        "to the project (`uv add NAME`, or `uv add --dev --editable PATH`), or sync with "
        "`uv sync --inexact`."
    )


def _entry_points() -> dict[str, str]:
    """The installed plugins: entry-point name -> "distribution version"."""
    found = {}
    for entry in importlib.metadata.entry_points(group="gristmill"):
        dist = entry.dist
        found[entry.name] = f"{dist.name} {dist.version}" if dist else entry.value
    return found


def _run(installer: Installer, action: str, args: list[str]) -> None:
    argv = installer.command(action, *args)
    click.echo(f"{installer.name}: {' '.join(argv)}", err=True)
    try:
        done = subprocess.run(argv, check=False)
    except OSError as exc:
        raise click.ClickException(f"could not run {installer.name}: {exc}") from None
    if done.returncode != 0:
        raise click.ClickException(f"{installer.name} {action} failed (exit {done.returncode})")


#: A requirement given by name (``gristmill-ruby``, ``gristmill-ruby[x]>=1``), not a path,
#: URL or wheel file: the name is what ``uv pip install --upgrade-package`` takes.
_REQUIREMENT_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([<>=!~;].*)?")


def install_arguments(
    installer: str, packages: Sequence[str], editables: Sequence[str], *, upgrade: bool
) -> list[str]:
    """The arguments after ``install`` for ``installer`` ("uv" or "pip")."""
    args: list[str] = []
    if installer == "uv":
        # A plugin's own [tool.uv.sources] (a path to a Gristmill checkout, for its tests) must
        # not replace the Gristmill it is installed into; pip never reads that table.
        args.append("--no-sources")
        if upgrade:
            # uv's --upgrade would move every package of the environment (the core's FastAPI,
            # psycopg, ...) to its newest version; pip's moves the named ones and only what
            # they need. A path is rebuilt by uv at each install anyway.
            for package in packages:
                match = _REQUIREMENT_NAME.fullmatch(package)
                if match and not Path(package).exists():
                    args += ["--upgrade-package", match.group(1)]
    elif upgrade:
        args.append("--upgrade")
    args += packages
    for path in editables:
        args += ["--editable", path]
    return args


@click.command()
@click.argument("packages", nargs=-1)
@click.option(
    "-e",
    "--editable",
    "editables",
    multiple=True,
    metavar="PATH",
    help="Install the project at PATH in editable mode (for developing a plugin: its source "
    "changes apply at the next start). Repeatable.",
)
@click.option(
    "-U",
    "--upgrade",
    is_flag=True,
    help="Upgrade the named packages (and what they need, only) to their newest versions.",
)
def install(packages: tuple[str, ...], editables: tuple[str, ...], upgrade: bool) -> None:
    """Install plugins (PACKAGES: names from the package index, or local paths such as
    ./gristmill-ruby) into Gristmill's own environment.

    Uses uv when it is available, else pip. Restart Gristmill (`gristmill up`, or each
    worker) for the new plugins to load.
    """
    if not packages and not editables:
        raise click.UsageError("name at least one package, or -e PATH")
    installer = find_installer()
    before = _entry_points()
    args = install_arguments(installer.name, packages, editables, upgrade=upgrade)
    _run(installer, "install", args)
    after = _entry_points()
    added = {name: dist for name, dist in after.items() if before.get(name) != dist}
    for name, dist in sorted(added.items()):
        click.echo(f"plugin {name} ({dist}) installed")
    if not added:
        click.echo(
            "no new plugin: what was named was installed already, or is not a Gristmill plugin "
            "(no entry point in the group `gristmill`; `gristmill plugins` lists what loads)"
        )
    click.echo("Plugins load when Gristmill starts: restart `gristmill up` or the workers.")
    if note := _uv_project_note():
        click.echo(note, err=True)


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins (distribution names, e.g. gristmill-ruby) from Gristmill's own
    environment."""
    if any(name.lower() == "gristmill" for name in packages):
        raise click.UsageError(
            "gristmill cannot uninstall itself; name plugin distributions (see `gristmill plugins`)"
        )
    installer = find_installer()
    if not yes:
        click.confirm(f"Uninstall {', '.join(packages)} from {sys.prefix}?", abort=True)
    # pip asks again on its own unless told not to; uv never asks.
    _run(installer, "uninstall", [*(["--yes"] if installer.name == "pip" else []), *packages])
    click.echo("Restart Gristmill (`gristmill up`, or the workers) for this to take effect.")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--all",
    "include_core",
    is_flag=True,
    help="Include the core's own hook implementations (registered as a plugin).",
)
def plugins(as_json: bool, include_core: bool) -> None:
    """List installed plugins (name, version, hooks, runtimes), the runtimes they provide,
    and plugins that failed to load.

    GRISTMILL_LOAD_PLUGINS and GRISTMILL_DISABLE_PLUGINS choose what loads, as for
    `gristmill up`.
    """
    from gristmill.plugins import inspect_plugins, list_plugins, load_runtimes

    pm, broken = inspect_plugins()
    try:
        registry = load_runtimes(pm)
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    infos = list_plugins(pm, registry, include_core=include_core)
    runtimes: list[dict[str, Any]] = []
    for runtime in registry:
        toolchain = runtime.toolchain()
        runtimes.append(
            {
                "name": runtime.name,
                "plugin": registry.source(runtime.name),
                "available": toolchain.available,
                "version": toolchain.version,
                "message": toolchain.message,
            }
        )
    if as_json:
        document = {
            "plugins": [asdict(info) for info in infos],
            "runtimes": runtimes,
            "broken": [{**asdict(b), "remedy": b.remedy()} for b in broken],
        }
        click.echo(json.dumps(document, indent=2))
        return
    installed = [info for info in infos if not info.builtin]
    if not installed and not broken:
        click.echo(
            "No plugins installed: no language can run (gristmill install gristmill-python)."
        )
    if infos:
        click.echo("Plugins:")
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not packaged)"
        if info.builtin:
            dist += " (built in)"
        line = f"  {info.name}  {dist}  hooks: {', '.join(info.hooks) or '(none)'}"
        if info.runtimes:
            line += f"  runtimes: {', '.join(info.runtimes)}"
        click.echo(line)
    if runtimes:
        click.echo("Runtimes:")
    for rt in runtimes:
        state = f"ready ({rt['version']})" if rt["available"] else f"unavailable: {rt['message']}"
        click.echo(f"  {rt['name']}  from {rt['plugin']}  {state}")
    if broken:
        click.echo("Broken plugins (not loaded):")
    for b in broken:
        dist = f"{b.distribution} {b.version}" if b.distribution else "(not packaged)"
        click.echo(f"  {b.name}  {dist}  {b.error}")
        click.echo(f"    {b.remedy()}")


def add_plugin_commands(cli: click.Group) -> None:
    """Add this module's commands to the `gristmill` group."""
    for command in (plugins, install, uninstall):
        cli.add_command(command)
