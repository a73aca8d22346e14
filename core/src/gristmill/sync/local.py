"""A sync folder on disk: read into ``{relative path: bytes}``, and brought to a new set of
files (a pull) by writing what changed and removing the files of items that are gone."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gristmill.sync import format as fmt

# Never walked: the CLIs' own state, version control, dependencies.
_SKIPPED_DIRS = ("node_modules",)


def read_folder(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but those in hidden folders or ``node_modules``."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in _SKIPPED_DIRS for part in rel.parts[:-1]):
            continue
        if path.is_file() and not rel.name.startswith("."):
            files[rel.as_posix()] = path.read_bytes()
    return files


def item_files_on_disk(item: fmt.Item, files: Mapping[str, bytes]) -> list[str]:
    """The files of ``files`` that belong to a local ``item`` (what removing it removes)."""
    if item.kind == "script":
        # The metadata, the lock and the code: ``<path>.<ext>`` files that are no other
        # kind's (a variable may share the script's path).
        others = tuple(s.removesuffix(".json") + ".yaml" for s in fmt.SUFFIXES.values())
        return sorted(
            name
            for name in files
            if name.startswith(item.path + ".")
            and "/" not in name[len(item.path) + 1 :]
            and (name.endswith((".script.yaml", ".script.lock")) or not name.endswith(others))
        )
    if item.kind == "flow":
        prefix = f"{item.path}.flow/"
        return sorted(name for name in files if name.startswith(prefix))
    if item.kind == "folder":
        return [f"f/{item.path}/folder.meta.yaml"]
    suffix = fmt.SUFFIXES[item.kind].removesuffix(".json") + ".yaml"
    return [f"{item.path}{suffix}"]


@dataclass
class Changes:
    """What a pull did to the folder, by relative path."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def plan_pull(local: Mapping[str, bytes], remote: Mapping[str, bytes]) -> Changes:
    """The writes and removals that make the folder's item files the remote's: files of items
    the remote no longer has, and stale files of items it has (a flow's renamed inline
    script), are removed; files of no item (a README, wmill.yaml) are left alone."""
    changes = Changes()
    for name, data in sorted(remote.items()):
        if name not in local:
            changes.added.append(name)
        elif local[name] != data:
            changes.changed.append(name)
    for item in fmt.from_folder(local, strict=False):
        for name in item_files_on_disk(item, local):
            if name not in remote:
                changes.removed.append(name)
    changes.removed.sort()
    return changes


def apply_pull(root: Path, remote: Mapping[str, bytes], changes: Changes) -> None:
    for name in (*changes.added, *changes.changed):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(remote[name])
    for name in changes.removed:
        target = root / name
        target.unlink(missing_ok=True)
        # A flow folder emptied of its files goes too.
        parent = target.parent
        if parent != root and parent.name.endswith(".flow") and not any(parent.iterdir()):
            shutil.rmtree(parent, ignore_errors=True)
