"""Windmill's two sync formats, as pure functions.

*Archive entries* are what the workspace tarball holds (the server's side): one JSON file per
item, e.g. ``f/team/hello.script.json`` next to the code ``f/team/hello.py``,
``f/team/flow.flow.json`` holding the whole flow. *Folder files* are what ``wmill sync pull``
writes from that tarball (windmill-cli 1.819.0, read from its bundle): the same JSON as YAML,
a script's lock in ``<name>.script.lock`` referenced as ``!inline <file>``, a flow as a
``<name>.flow/`` folder of ``flow.yaml`` and one file per inline script. Both CLIs write and
read the folder format, so a repository works with either.

Items come in as the API returns them (Windmill's field names); the metadata Windmill leaves
out of an export (who edited, when, the workspace, the path, which is the file's name) is
dropped here the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import yaml

from gristmill.errors import BadInput

INLINE = "!inline "

#: A script's code file extension in the tarball, by language, with the CLI's
#: ``default_ts=bun`` (a Bun script is plain ``.ts``, a Deno one ``.deno.ts``).
SCRIPT_EXTENSIONS: dict[str, str] = {
    "python3": "py",
    "bun": "ts",
    "bunnative": "ts",
    "deno": "deno.ts",
    "nativets": "fetch.ts",
    "go": "go",
    "bash": "sh",
    "powershell": "ps1",
    "postgresql": "pg.sql",
    "mysql": "my.sql",
    "bigquery": "bq.sql",
    "snowflake": "sf.sql",
    "mssql": "ms.sql",
    "duckdb": "duckdb.sql",
    "oracledb": "odb.sql",
    "graphql": "gql",
    "php": "php",
    "rust": "rs",
    "ansible": "playbook.yml",
    "csharp": "cs",
    "nu": "nu",
    "java": "java",
    "ruby": "rb",
    "rlang": "r",
}

#: An inline flow script's extension (the CLI's ``LANGUAGE_EXTENSIONS``; Bun is ``ts``).
INLINE_EXTENSIONS: dict[str, str] = {
    **SCRIPT_EXTENSIONS,
    "bun": "ts",
    "nativets": "native.ts",
}

# Reading a folder back: the longest known extension wins (``x.deno.ts`` before ``x.ts``).
_LANGUAGE_OF_EXTENSION: dict[str, str] = {
    **{ext: lang for lang, ext in SCRIPT_EXTENSIONS.items() if lang != "bunnative"},
    "ts": "bun",
    "native.ts": "nativets",
    "bun.ts": "bun",
}
_EXTENSIONS_LONGEST_FIRST = sorted(_LANGUAGE_OF_EXTENSION, key=len, reverse=True)

# Metadata an export leaves out (Windmill's ``to_string_without_metadata``).
_METADATA = frozenset(
    {
        "workspace_id",
        "path",
        "name",
        "versions",
        "id",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "edited_at",
        "edited_by",
        "permissioned_as",
        "archived",
        "error",
        "last_server_ping",
        "server_id",
    }
)

ItemKind = Literal[
    "script",
    "flow",
    "variable",
    "resource",
    "resource_type",
    "folder",
    "schedule",
    "http_trigger",
    "postgres_trigger",
]

#: The archive suffix of each kind stored as one JSON file (scripts have two files).
SUFFIXES: dict[ItemKind, str] = {
    "script": ".script.json",
    "flow": ".flow.json",
    "variable": ".variable.json",
    "resource": ".resource.json",
    "resource_type": ".resource-type.json",
    "folder": "/folder.meta.json",
    "schedule": ".schedule.json",
    "http_trigger": ".http_trigger.json",
    "postgres_trigger": ".postgres_trigger.json",
}

# A schedule's firing state (its ticker's, and the handlers' count of failures) is no part of
# its definition; who saved it is the pushing user on the other side.
_SCHEDULE_STATE = (
    "email",
    "next_tick",
    "last_tick",
    "failure_count",
    "last_error",
    "skipped_ticks",
    "last_skip_at",
    "last_skip_reason",
)

# The fields of a script's metadata file, in Windmill's order; the first five always.
_SCRIPT_ALWAYS = ("summary", "description", "schema", "lock", "kind")
_SCRIPT_OPTIONAL = (
    "envs",
    "cache_ttl",
    "dedicated_worker",
    "ws_error_handler_muted",
    "priority",
    "tag",
    "timeout",
    "delete_after_secs",
    "restart_unless_cancelled",
    "visible_to_runner_only",
    "codebase",
    "has_preprocessor",
    "on_behalf_of_email",
    "concurrent_limit",
    "concurrency_time_window_s",
    "concurrency_key",
    "labels",
)
_FLOW_FIELDS = (
    "summary",
    "description",
    "value",
    "schema",
    "tag",
    "ws_error_handler_muted",
    "priority",
    "dedicated_worker",
    "timeout",
    "visible_to_runner_only",
    "on_behalf_of_email",
    "labels",
)


# --- one item -> its archive entries (JSON) -------------------------------------------------


def strip_metadata(
    item: Mapping[str, Any],
    *,
    extra_perms: Literal["drop", "keep", "nonempty"] = "drop",
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The item without the fields an export leaves out (and those named in ``drop``);
    ``extra_perms`` dropped, kept, or kept only when it grants something (Windmill's three
    behaviours)."""
    out = {k: v for k, v in item.items() if k not in _METADATA and k not in drop}
    perms = out.get("extra_perms")
    if "extra_perms" in out and (
        extra_perms == "drop" or (extra_perms == "nonempty" and not perms)
    ):
        del out["extra_perms"]
    return out


def script_extension(language: str) -> str:
    """The code file's extension; a language Windmill does not know (a Gristmill plugin's)
    keeps its own name as extension."""
    return SCRIPT_EXTENSIONS.get(language, language)


def script_record(script: Mapping[str, Any]) -> dict[str, Any]:
    """A script's ``.script.json``: its deployed metadata, without code or path."""
    record: dict[str, Any] = {k: script.get(k) for k in _SCRIPT_ALWAYS}
    record["summary"] = record["summary"] or ""
    record["description"] = record["description"] or ""
    record["kind"] = record["kind"] or "script"
    for key in _SCRIPT_OPTIONAL:
        value = script.get(key)
        # Windmill skips a muted flag that is off, and every absent option.
        if value is None or (key == "ws_error_handler_muted" and not value):
            continue
        record[key] = value
    if script.get("extra_perms"):
        record["extra_perms"] = script["extra_perms"]
    return record


def flow_record(flow: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's ``.flow.json``: summary, description, value, schema and the options set (a
    flag that is off is left out, as Windmill leaves out an absent option)."""
    record = {k: flow[k] for k in _FLOW_FIELDS if flow.get(k) not in (None, False)}
    record.setdefault("summary", "")
    record.setdefault("description", "")
    record.setdefault("value", {"modules": []})
    if flow.get("extra_perms"):
        record["extra_perms"] = flow["extra_perms"]
    return record


def json_text(data: Any) -> str:
    """JSON as the archive holds it (indented, as Windmill's ``to_string_pretty``); times
    (a schedule's ``paused_until``) as ISO 8601 text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def script_entries(script: Mapping[str, Any]) -> dict[str, str]:
    """A script's two archive entries: its code and its ``.script.json``."""
    path = str(script["path"])
    ext = script_extension(str(script["language"]))
    return {
        f"{path}.{ext}": str(script.get("content") or ""),
        f"{path}.script.json": json_text(script_record(script)),
    }


def item_entries(kind: ItemKind, item: Mapping[str, Any]) -> dict[str, str]:
    """One item's archive entries, for any kind."""
    if kind == "script":
        return script_entries(item)
    if kind == "flow":
        return {f"{item['path']}.flow.json": json_text(flow_record(item))}
    if kind == "folder":
        return {
            f"f/{item['name']}/folder.meta.json": json_text(
                strip_metadata(item, extra_perms="keep")
            )
        }
    if kind == "resource_type":
        return {f"{item['name']}.resource-type.json": json_text(strip_metadata(item))}
    if kind in ("http_trigger", "postgres_trigger"):
        return trigger_entries(kind.removesuffix("_trigger"), item)
    # Who a schedule runs as is the pushing user's on the other side, and its ticker's state
    # (next tick, skipped ticks) is no part of its definition.
    record = strip_metadata(item, drop=_SCHEDULE_STATE if kind == "schedule" else ())
    return {f"{item['path']}{SUFFIXES[kind]}": json_text(record)}


def trigger_entries(kind_name: str, item: Mapping[str, Any]) -> dict[str, str]:
    """A trigger of any kind as ``<path>.<kind>_trigger.json``: its definition and ``mode``;
    who saved it (it runs as the pushing user on the other side) and the derived
    ``enabled`` left out."""
    record = strip_metadata(item, drop=("email", "enabled", "error_at"))
    return {f"{item['path']}.{kind_name}_trigger.json": json_text(record)}


# --- archive entries -> folder files (what `wmill sync pull` writes) ------------------------


def _priority(key: str) -> str:
    # The CLI's key order (prioritizeName): these first, ``lock`` last; the rest by name.
    order = {
        "version": "aaa",
        "id": "aa",
        "type": "ab",
        "summary": "ad",
        "name": "ae",
        "display_name": "af",
        "description": "ag",
        "value": "ah",
        "content": "ai",
        "modules": "aj",
        "failure_module": "ak",
        "input_transforms": "al",
        "lock": "az",
        "locks": "azz",
    }
    return order.get(key, key).lower()


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data, key=lambda k: _priority(str(k)))}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


class _Dumper(yaml.SafeDumper):
    """The CLI's layout: lists indented under their key; multi-line text (code, locks) as
    literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if "\n" in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", text)


_Dumper.add_representer(str, _represent_str)


def to_yaml(data: Any) -> str:
    """YAML in the CLI's key order."""
    return yaml.dump(
        _sorted(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )


def _sanitize(name: str) -> str:
    # The CLI's sanitizeForFilesystem: spaces to underscores, unsafe characters removed.
    name = name.replace(" ", "_")
    name = re.sub(r'[/\\:*?"<>|\x00-\x1f\x7f]', "", name)
    name = re.sub(r"_+", "_", name)
    name = re.sub(r"^[._]+|[._]+$", "", name).lower()
    return f"_{name}" if re.fullmatch(r"con|prn|aux|nul|com[0-9]|lpt[0-9]", name) else name


@dataclass
class _Assigner:
    """Inline script file names as the CLI's path assigner gives them: the step's summary (or
    id), else ``inline_script_0``, numbered on a clash; one assigner per flow."""

    seen: set[str] = field(default_factory=set)
    counter: int = 0

    def base(self, label: str) -> str:
        name = _sanitize(label) if label else ""
        original = name
        if not name:
            original, name = "inline_script", "inline_script_0"
        while name.lower() in self.seen:
            self.counter += 1
            name = f"{original}_{self.counter}"
        self.seen.add(name.lower())
        return f"{name}.inline_script."


def _module_lists(value: Mapping[str, Any]) -> Iterator[list[Any]]:
    for key in ("modules", "default"):
        if isinstance(value.get(key), list):
            yield value[key]
    for branch in value.get("branches") or []:
        if isinstance(branch, dict) and isinstance(branch.get("modules"), list):
            yield branch["modules"]


def _extract(modules: list[Any], assigner: _Assigner, files: dict[str, str]) -> None:
    """Inline scripts of ``modules`` (depth first, the CLI's order) moved into ``files``."""
    for module in modules:
        if not isinstance(module, dict) or not isinstance(module.get("value"), dict):
            continue
        inner = module["value"]
        kind = inner.get("type")
        if kind == "rawscript":
            label = module.get("summary")
            base = assigner.base(str(module.get("id") or "") if label is None else str(label))
            language = str(inner.get("language") or "")
            name = base + INLINE_EXTENSIONS.get(language, "no_ext")
            files[name] = str(inner.get("content") or "")
            inner["content"] = INLINE + name
            lock = inner.get("lock")
            if isinstance(lock, str) and lock:
                files[base + "lock"] = lock
                inner["lock"] = INLINE + base + "lock"
        elif kind in ("forloopflow", "whileloopflow", "branchall", "branchone"):
            for nested in _module_lists(inner):
                _extract(nested, assigner, files)


def flow_folder(record: Mapping[str, Any]) -> dict[str, str]:
    """A flow's ``.flow.json`` record as its folder: ``flow.yaml`` and the inline files."""
    flow = json.loads(json.dumps(record))  # a deep copy the extraction may rewrite
    files: dict[str, str] = {}
    value = flow.get("value")
    if isinstance(value, dict):
        assigner = _Assigner()
        _extract(value.get("modules") or [], assigner, files)
        for single in ("failure_module", "preprocessor_module"):
            if isinstance(value.get(single), dict):
                _extract([value[single]], assigner, files)
    files["flow.yaml"] = to_yaml(flow)
    return files


def to_folder(
    entries: Mapping[str, str], file_extensions: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """Archive entries as the folder files ``wmill sync pull`` writes from them.

    A resource whose type stores a file (a resource type's ``format_extension``: from
    ``file_extensions``, else from the types among the entries) keeps its ``content`` in
    ``<path>.resource.file.<ext>``, as the CLI writes it.
    """
    extensions = dict(file_extensions or {})
    for name, text in entries.items():
        if name.endswith(".resource-type.json"):
            ext = json.loads(text).get("format_extension")
            if isinstance(ext, str) and ext:
                extensions.setdefault(name.removesuffix(".resource-type.json"), ext)
    out: dict[str, bytes] = {}
    for name, text in entries.items():
        if name.endswith(".flow.json"):
            base = name.removesuffix(".flow.json") + ".flow"
            for inner, content in flow_folder(json.loads(text)).items():
                out[f"{base}/{inner}"] = content.encode()
        elif name.endswith(".script.json"):
            meta = json.loads(text)
            lock = meta.get("lock")
            stem = name.removesuffix(".json")
            if isinstance(lock, str) and lock:
                meta["lock"] = f"{INLINE}{stem}.lock"
                out[f"{stem}.lock"] = lock.encode()
            elif lock != "":
                meta.pop("lock", None)
            meta.pop("modules", None)
            out[f"{stem}.yaml"] = to_yaml(meta).encode()
        elif name.endswith(".resource.json"):
            record = json.loads(text)
            ext = extensions.get(str(record.get("resource_type")))
            value = record.get("value")
            if ext and isinstance(value, dict) and isinstance(value.get("content"), str):
                file = f"{name.removesuffix('.resource.json')}.resource.file.{ext}"
                out[file] = value["content"].encode()
                record["value"] = {**value, "content": INLINE + file}
            out[name.removesuffix(".json") + ".yaml"] = to_yaml(record).encode()
        elif name.endswith(".json"):
            out[name.removesuffix(".json") + ".yaml"] = to_yaml(json.loads(text)).encode()
        else:
            out[name] = text.encode()
    return out


def item_files(kind: ItemKind, item: Mapping[str, Any]) -> dict[str, bytes]:
    """One stored item as its files in the folder format, {relative path: bytes}."""
    return to_folder(item_entries(kind, item))


def script_files(script: Mapping[str, Any]) -> dict[str, bytes]:
    """A script (as ``GET /scripts/get/p/{path}`` answers) as its folder files: the code,
    ``<name>.script.yaml`` and, when it has a lock, ``<name>.script.lock``."""
    return item_files("script", script)


def flow_files(flow: Mapping[str, Any]) -> dict[str, bytes]:
    """A flow (as ``GET /flows/get/{path}`` answers) as ``<name>.flow/flow.yaml`` and its
    inline script and lock files."""
    return item_files("flow", flow)


def schedule_files(schedule: Mapping[str, Any]) -> dict[str, bytes]:
    """A schedule as ``<name>.schedule.yaml``."""
    return item_files("schedule", schedule)


# --- folder files -> items (what `wmill sync push` reads) -----------------------------------


@dataclass
class Item:
    """One item read from a folder: its kind, path (a folder's or resource type's name) and
    the record as the archive holds it; a script's code and language besides."""

    kind: ItemKind
    path: str
    record: dict[str, Any]
    content: str | None = None
    language: str | None = None


def _load_yaml(name: str, data: bytes) -> Any:
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise BadInput(f"{name}: not valid YAML: {error}") from None


def _inline(files: Mapping[str, bytes], ref: Any, base: str, label: str) -> Any:
    """The text an ``!inline <file>`` string refers to (relative to ``base``), else ``ref``."""
    if not (isinstance(ref, str) and ref.startswith(INLINE)):
        return ref
    target = ref[len(INLINE) :].strip()
    for candidate in (f"{base}/{target}" if base else target, target):
        if candidate in files:
            return files[candidate].decode("utf-8")
    raise BadInput(f"{label}: the file {target!r} it refers to (!inline) is missing")


def _resolve_flow(value: Any, files: Mapping[str, bytes], base: str, label: str) -> None:
    if not isinstance(value, dict):
        return
    modules: list[Any] = [m for group in _module_lists(value) for m in group]
    modules += [value[k] for k in ("failure_module", "preprocessor_module") if k in value]
    for module in modules:
        if not isinstance(module, dict) or not isinstance(module.get("value"), dict):
            continue
        inner = module["value"]
        if inner.get("type") == "rawscript":
            for key in ("content", "lock"):
                if key in inner:
                    inner[key] = _inline(
                        files, inner[key], base, f"{label} step {module.get('id')}"
                    )
        else:
            _resolve_flow(inner, files, base, label)


def _script_code(files: Mapping[str, bytes], stem: str) -> tuple[str, str] | None:
    """The code file next to ``<stem>.script.yaml`` and its language."""
    for ext in _EXTENSIONS_LONGEST_FIRST:
        if f"{stem}.{ext}" in files:
            return f"{stem}.{ext}", _LANGUAGE_OF_EXTENSION[ext]
    # A Gristmill plugin's language is written with its own name as extension.
    for name in files:
        rest = name[len(stem) + 1 :] if name.startswith(stem + ".") else ""
        if rest and "." not in rest and "/" not in rest and rest not in ("lock", "yaml", "json"):
            return name, rest
    return None


def from_folder(files: Mapping[str, bytes], *, strict: bool = True) -> list[Item]:
    """The items of a folder in the sync format ({relative path: bytes}, ``/`` separators).

    Files of no item kind (``wmill.yaml``, a README, code without metadata) are ignored, as
    the CLI ignores them; an item file that cannot be read is a :class:`BadInput` naming it
    (skipped instead when not ``strict``).
    """
    items: list[Item] = []
    for name in sorted(files):
        try:
            item = _read_item(name, files)
        except BadInput:
            if strict:
                raise
            continue
        if item is not None:
            items.append(item)
    return items


def _read_item(name: str, files: Mapping[str, bytes]) -> Item | None:
    if name.endswith(".script.yaml"):
        stem = name.removesuffix(".script.yaml")
        code = _script_code(files, stem)
        if code is None:
            raise BadInput(f"{name}: no code file {stem}.<ext> next to it")
        meta = _load_yaml(name, files[name])
        if not isinstance(meta, dict):
            raise BadInput(f"{name}: a script's metadata must be a mapping")
        meta["lock"] = _inline(files, meta.get("lock"), "", name)
        code_name, language = code
        content = files[code_name].decode("utf-8")
        return Item("script", stem, meta, content=content, language=language)
    if name.endswith(".flow/flow.yaml"):
        base = name.removesuffix("/flow.yaml")
        record = _load_yaml(name, files[name])
        if not isinstance(record, dict):
            raise BadInput(f"{name}: a flow must be a mapping")
        _resolve_flow(record.get("value"), files, base, name)
        return Item("flow", base.removesuffix(".flow"), record)
    if name.endswith("/folder.meta.yaml") and name.startswith("f/"):
        record = _load_yaml(name, files[name])
        folder = name.removesuffix("/folder.meta.yaml").removeprefix("f/")
        return Item("folder", folder, record if isinstance(record, dict) else {})
    for kind, suffix in SUFFIXES.items():
        yaml_suffix = suffix.removesuffix(".json") + ".yaml"
        if kind in ("script", "flow", "folder") or not name.endswith(yaml_suffix):
            continue
        record = _load_yaml(name, files[name])
        if not isinstance(record, dict):
            raise BadInput(f"{name}: must be a mapping")
        value = record.get("value")
        if kind == "resource" and isinstance(value, dict) and "content" in value:
            # A file resource's content, kept in its own file (the path is from the root).
            record["value"] = {**value, "content": _inline(files, value["content"], "", name)}
        return Item(kind, name.removesuffix(yaml_suffix), record)
    return None
