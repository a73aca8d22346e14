"""A sync folder on disk: read into ``{relative path: bytes}``, and brought to a new set of
files (a pull) by writing what changed and removing the files of items that are gone."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gristmill.errors import BadInput
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
    own = [f"{item.path}{suffix}"]
    if item.kind == "resource":  # a file resource's content file
        own += [n for n in files if n.startswith(f"{item.path}.resource.file.")]
    return sorted(own)


@dataclass
class Changes:
    """What a pull did to the folder, by relative path."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def plan_pull(
    local: Mapping[str, bytes], remote: Mapping[str, bytes], config: SyncConfig | None = None
) -> Changes:
    """The writes and removals that make the folder's item files the remote's: files of items
    the remote no longer has, and stale files of items it has (a flow's renamed inline
    script), are removed; files of no item (a README, wmill.yaml) and of items ``config``
    does not sync are left alone. ``remote`` is expected already selected by ``config``."""
    changes = Changes()
    for name, data in sorted(remote.items()):
        if name not in local:
            changes.added.append(name)
        elif local[name] != data:
            changes.changed.append(name)
    for item in fmt.from_folder(local, strict=False):
        if config is not None and not config.keeps(item):
            continue  # an item this folder does not sync is not the pull's to remove
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


# --- wmill.yaml: what a repository syncs ------------------------------------------------------

#: What ``wmill init`` writes into wmill.yaml (windmill-cli 1.819.0's DEFAULT_SYNC_OPTIONS),
#: the defaults of a repository that has one. A folder without wmill.yaml syncs everything.
WMILL_DEFAULTS: dict[str, Any] = {
    "includes": ["f/**"],
    "excludes": [],
    "skipVariables": False,
    "skipResources": False,
    "skipResourceTypes": False,
    "skipSecrets": True,
    "skipScripts": False,
    "skipFlows": False,
    "skipFolders": False,
    "includeSchedules": False,
    "includeTriggers": False,
}


def _glob(pattern: str) -> re.Pattern[str]:
    """A minimatch pattern as the CLI uses them: ``**`` any folders, ``*`` and ``?`` within
    one path segment."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class SyncConfig:
    """Which items a folder syncs: its wmill.yaml's ``includes``/``excludes`` and ``skip*``/
    ``include*`` options, read the way the Windmill CLI reads them, so that both CLIs sync
    the same items of a repository."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    skip_variables: bool = False
    skip_secrets: bool = False
    skip_resources: bool = False
    skip_resource_types: bool = False
    skip_scripts: bool = False
    skip_flows: bool = False
    skip_folders: bool = False
    include_schedules: bool = True
    include_triggers: bool = True

    @classmethod
    def read(cls, directory: Path) -> SyncConfig:
        """The folder's wmill.yaml over the CLI's defaults; everything without one."""
        path = directory / "wmill.yaml"
        if not path.is_file():
            return cls()
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise BadInput(f"{path}: not readable YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise BadInput(f"{path}: must be a mapping")
        conf = {**WMILL_DEFAULTS, **loaded}

        def patterns(key: str) -> tuple[str, ...]:
            value = conf.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BadInput(f"{path}: {key} must be a list of patterns")
            return tuple(value)

        return cls(
            includes=patterns("includes"),
            excludes=patterns("excludes"),
            skip_variables=bool(conf["skipVariables"]),
            skip_secrets=bool(conf["skipSecrets"]),
            skip_resources=bool(conf["skipResources"]),
            skip_resource_types=bool(conf["skipResourceTypes"]),
            skip_scripts=bool(conf["skipScripts"]),
            skip_flows=bool(conf["skipFlows"]),
            skip_folders=bool(conf["skipFolders"]),
            include_schedules=bool(conf["includeSchedules"]),
            include_triggers=bool(conf["includeTriggers"]),
        )

    def keeps(self, item: fmt.Item) -> bool:
        skipped = {
            "variable": self.skip_variables
            or (self.skip_secrets and bool(item.record.get("is_secret"))),
            "resource": self.skip_resources,
            "resource_type": self.skip_resource_types,
            "script": self.skip_scripts,
            "flow": self.skip_flows,
            "folder": self.skip_folders,
            "schedule": not self.include_schedules,
        }.get(item.kind, item.kind.endswith("_trigger") and not self.include_triggers)
        if skipped:
            return False
        if item.kind == "resource_type":
            return True  # at the root, never matched against the patterns (as the CLI)
        name = main_file(item)
        if self.includes and not any(_glob(p).match(name) for p in self.includes):
            return False
        return not any(_glob(p).match(name) for p in self.excludes)

    def select(self, files: Mapping[str, bytes]) -> dict[str, bytes]:
        """The files of the items this folder syncs (and of no other)."""
        kept: dict[str, bytes] = {}
        for item in fmt.from_folder(files, strict=False):
            if self.keeps(item):
                for name in item_files_on_disk(item, files):
                    kept[name] = files[name]
        return kept


def main_file(item: fmt.Item) -> str:
    """The file that names an item (what the patterns of wmill.yaml are matched against)."""
    if item.kind == "script":
        return f"{item.path}.script.yaml"
    if item.kind == "flow":
        return f"{item.path}.flow/flow.yaml"
    if item.kind == "folder":
        return f"f/{item.path}/folder.meta.yaml"
    return item.path + fmt.SUFFIXES[item.kind].removesuffix(".json") + ".yaml"
