"""``gristmill dev``: watch a synced folder and run each script or flow saved there as a
preview on a running Gristmill, printing its logs as they come and then its result.

The folder is Windmill's format (``wmill sync pull``, ``gristmill sync pull``): a script is
``f/…/name.py`` with ``name.script.yaml`` (its metadata) and maybe ``name.script.lock``; a flow
is a ``name.flow`` (or ``name__flow``) folder holding ``flow.yaml`` and its ``!inline`` files.
Everything goes through the public API, as ``gristmill flow`` does (same ``--url``, ``--token``,
``--workspace``): scripts through ``jobs/run/preview``, flows through ``jobs/run/preview_flow``.

Why polling mtimes rather than inotify (``watchfiles``): a synced folder holds a few hundred
files; stat-ing them a few times a second costs nothing measurable, works the same on every OS
and network filesystem, and needs no dependency. Editors write a file several times in a row
(a temporary file, a rename, a chmod): changes are gathered until the folder has been quiet for
``--debounce`` seconds, then each changed item runs once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gristmill.errors import BadInput
from gristmill.flows.model import FLOW_FILES
from gristmill.server.flow_cli import (  # pyright: ignore[reportPrivateUsage]
    _client,
    _expect,
    _report,
    _wait,
)

__all__ = ["dev", "item_of"]

# Folders never looked into: version control, dependency trees, caches.
_SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache"}
_FLOW_SUFFIXES = (".flow", "__flow")
# The metadata files next to a script; the script itself is the sibling with the same stem.
_SCRIPT_META = (".script.yaml", ".script.json", ".script.lock")
_NOT_CODE = (".yaml", ".yml", ".json", ".lock", ".md")


@dataclass(frozen=True)
class Item:
    """What a changed file belongs to: a script file, or a flow folder."""

    kind: str  # "script" or "flow"
    path: Path  # the script's file, or the flow's folder


def _flow_folder(file: Path, root: Path) -> Path | None:
    for parent in [file, *file.parents]:
        if parent == root or root not in parent.parents:
            return None
        if parent.is_dir() and parent.name.endswith(_FLOW_SUFFIXES):
            return parent
    return None


def _script_of_meta(meta: Path) -> Path | None:
    stem = next(meta.name[: -len(s)] for s in _SCRIPT_META if meta.name.endswith(s))
    for sibling in sorted(meta.parent.glob(f"{stem}.*")):
        # Other kinds at the same path (`hello.schedule.yaml`) are metadata, never the code.
        if sibling.is_file() and not sibling.name.endswith(_NOT_CODE):
            return sibling
    return None


def item_of(file: Path, root: Path) -> Item | None:
    """The script or flow a changed ``file`` under ``root`` belongs to (``None``: neither,
    e.g. a resource's or a folder's metadata file)."""
    flow_dir = _flow_folder(file, root)
    if flow_dir is not None:
        return Item("flow", flow_dir)
    name = file.name
    if name.endswith(_SCRIPT_META):
        script = _script_of_meta(file)
        return Item("script", script) if script is not None else None
    # Other metadata files of the format (resources, variables, schedules, folders, routes,
    # wmill.yaml) are not runnable.
    if name.endswith(_NOT_CODE) or name.startswith("."):
        return None
    return Item("script", file)


def _snapshot(root: Path) -> dict[Path, float]:
    """Every file's mtime (and size, folded in) under ``root``."""
    found: dict[Path, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith(".")]
        for filename in filenames:
            path = Path(dirpath) / filename
            try:
                stat = path.stat()
            except OSError:  # removed between the listing and the stat
                continue
            found[path] = stat.st_mtime_ns + stat.st_size / 1e6
    return found


def _changes(before: dict[Path, float], after: dict[Path, float]) -> set[Path]:
    return {p for p, m in after.items() if before.get(p) != m}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = (
            json.loads(path.read_text())
            if path.suffix == ".json"
            else yaml.safe_load(path.read_text())
        )
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot be read ({exc})") from None
    return data if isinstance(data, dict) else {}


def _defaults(schema: Any) -> dict[str, Any]:
    """The defaults a schema gives its arguments: what a run with no args of its own gets."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, dict) and "default" in spec
    }


def _script_meta(script: Path) -> dict[str, Any]:
    stem = script.name.split(".", 1)[0]
    for suffix in (".script.yaml", ".script.json"):
        meta = script.parent / f"{stem}{suffix}"
        if meta.is_file():
            return _read_yaml(meta)
    return {}


def _remote_path(file: Path, root: Path) -> str:
    """The item's path in the workspace (``f/folder/name``), from its place in the tree."""
    relative = file.relative_to(root).as_posix()
    for suffix in _FLOW_SUFFIXES:
        if relative.endswith(suffix):
            return relative[: -len(suffix)]
    return relative.split(".", 1)[0]


class _Runner:
    def __init__(self, client: Any, workspace: str, args: dict[str, Any] | None, timeout: float):
        self.client = client
        self.workspace = workspace
        self.args = args
        self.timeout = timeout
        self._extensions: dict[str, str] | None = None

    def _language(self, script: Path, meta: dict[str, Any]) -> str:
        language = meta.get("language")
        if isinstance(language, str) and language:
            return language
        if self._extensions is None:
            runtimes = _expect(self.client.get("/runtimes"))
            self._extensions = {}
            for runtime in runtimes:
                for ext in runtime["file_extensions"]:
                    self._extensions.setdefault(ext, runtime["name"])
        # The longest known suffix wins: `.bun.ts` before `.ts`.
        name = script.name.lower()
        matches = [e for e in self._extensions if name.endswith(e)]
        if not matches:
            raise BadInput(
                f"no runtime on the server handles {script.name} (no language in its "
                ".script.yaml either)"
            )
        return self._extensions[max(matches, key=len)]

    def run(self, item: Item, root: Path) -> bool:
        """Run one item; ``False`` when it could not start or failed."""
        path = _remote_path(item.path, root)
        if item.kind == "flow":
            return self._run_flow(item.path, path)
        return self._run_script(item.path, path)

    def _run_script(self, script: Path, path: str) -> bool:
        meta = _script_meta(script)
        language = self._language(script, meta)
        stem = script.name.split(".", 1)[0]
        lock_file = script.parent / f"{stem}.script.lock"
        body: dict[str, Any] = {
            "content": script.read_text(encoding="utf-8"),
            "language": language,
            "args": self.args if self.args is not None else _defaults(meta.get("schema")),
            "path": path,
        }
        if lock_file.is_file():
            body["lock"] = lock_file.read_text(encoding="utf-8")
        _say(f"running script {path} ({language})")
        job_id = str(_expect(self.client.post(f"/w/{self.workspace}/jobs/run/preview", json=body)))
        return self._follow(job_id)

    def _run_flow(self, folder: Path, path: str) -> bool:
        from gristmill.flows.model import flow_to_dict, load_flow_dir

        data = flow_to_dict(load_flow_dir(folder))
        args = self.args if self.args is not None else _defaults(data.get("schema"))
        body = {"value": data["value"], "args": args, "path": path}
        _say(f"running flow {path}")
        job_id = str(
            _expect(self.client.post(f"/w/{self.workspace}/jobs/run/preview_flow", json=body))
        )
        try:
            _report(
                self.client,
                self.workspace,
                _wait(self.client, self.workspace, job_id, self.timeout),
            )
        except SystemExit:  # _report's way of saying the flow failed
            return False
        return True

    def _follow(self, job_id: str) -> bool:
        from gristmill.server.cli import follow_logs  # cli imports this module

        follow_logs(
            self.client,
            self.workspace,
            job_id,
            lambda text: click.echo(text, nl=False),
            timeout=self.timeout,
        )
        outcome = _expect(
            self.client.get(f"/w/{self.workspace}/jobs_u/completed/get_result_maybe/{job_id}")
        )
        ok = bool(outcome["success"])
        _say(f"{'success' if ok else 'FAILURE'} (job {job_id})")
        click.echo(json.dumps(outcome["result"], indent=2, ensure_ascii=False))
        return ok


def _say(text: str) -> None:
    click.echo(f"[dev] {text}")


def _quiet_changes(
    root: Path, seen: dict[Path, float], poll: float, debounce: float
) -> Iterator[tuple[set[Path], dict[Path, float]]]:
    """Each batch of changed files, once the folder has been quiet for ``debounce`` s."""
    pending: set[Path] = set()
    quiet_since = time.monotonic()
    while True:
        time.sleep(poll)
        now = _snapshot(root)
        changed = _changes(seen, now)
        seen = now
        if changed:
            pending |= changed
            quiet_since = time.monotonic()
        elif pending and time.monotonic() - quiet_since >= debounce:
            yield pending, seen
            pending = set()


@click.command("dev")
@click.argument(
    "directory",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--args",
    "args_json",
    help="Args of every run, a JSON object (default: each script's or flow's schema defaults).",
)
@click.option("--url", help="Server URL (default: $BASE_URL or http://localhost:$PORT).")
@click.option("--token", help="API token (default: $GRISTMILL_TOKEN, or the local admin's).")
@click.option("--workspace", "-w", default="main", show_default=True)
@click.option(
    "--debounce",
    default=0.3,
    show_default=True,
    help="Seconds of quiet after a change before running.",
)
@click.option("--poll", default=0.2, show_default=True, help="Seconds between two looks.")
@click.option(
    "--timeout", default=600.0, show_default=True, help="Seconds to wait for one run to end."
)
def dev(
    directory: Path,
    args_json: str | None,
    url: str | None,
    token: str | None,
    workspace: str,
    debounce: float,
    poll: float,
    timeout: float,
) -> None:
    """Watch DIRECTORY (a synced folder; default: here) and, each time a script or a flow in
    it is saved, run it on a running Gristmill as a preview (nothing is deployed), printing its
    logs as they come and its result. A refused run (a syntax error...) prints the server's
    message and watching goes on. Stop with Ctrl-C."""
    args: dict[str, Any] | None = None
    if args_json is not None:
        try:
            args = json.loads(args_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON ({exc})", param_hint="--args") from None
        if not isinstance(args, dict):
            raise click.BadParameter("the args must be a JSON object", param_hint="--args")
    root = directory.resolve()
    with _client(url, token) as client:
        runner = _Runner(client, workspace, args, timeout)
        # The first look before saying so: a file saved right after the message is a change.
        first = _snapshot(root)
        _say(f"watching {root} (workspace {workspace}); save a script or a flow to run it")
        try:
            for changed, _ in _quiet_changes(root, first, poll, debounce):
                items = {i for f in sorted(changed) if (i := item_of(f, root)) is not None}
                for item in sorted(items, key=lambda i: str(i.path)):
                    if not item.path.exists():
                        continue  # saved then removed (an editor's temporary file)
                    if item.kind == "flow" and not any(
                        (item.path / name).is_file() for name in FLOW_FILES
                    ):
                        continue  # a flow folder being written: its flow.yaml comes last

                    try:
                        runner.run(item, root)
                    except (BadInput, click.ClickException) as exc:
                        message = (
                            exc.format_message()
                            if isinstance(exc, click.ClickException)
                            else str(exc)
                        )
                        _say(f"{item.path.relative_to(root)}: {message}")
                _say("watching")
        except KeyboardInterrupt:
            _say("stopped")
