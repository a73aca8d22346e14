"""The sync formats as pure functions: one item as Windmill's tarball holds it and as
``wmill sync pull`` writes it (windmill-cli 1.819.0), and a folder read back into items."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from gristmill.errors import BadInput
from gristmill.sync import format as fmt

SCRIPT: dict[str, Any] = {
    "workspace_id": "demo",
    "hash": "0123abcd",
    "path": "f/team/hello",
    "summary": "Say hello",
    "description": "",
    "content": "def main(name: str = 'world'):\n    return f'hello {name}'\n",
    "language": "python3",
    "schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"name": {"type": "string", "default": "world"}},
        "required": [],
    },
    "lock": "requests==2.32.3\n",
    "kind": "script",
    "tag": None,
    "timeout": 30,
    "priority": None,
    "envs": None,
    "created_by": "alice",
    "created_at": "2026-12-05T10:00:00Z",
    "archived": False,
    "extra_perms": {},
}

FLOW: dict[str, Any] = {
    "workspace_id": "demo",
    "path": "u/alice/pipeline",
    "summary": "Pipeline",
    "description": "two steps and a loop",
    "edited_by": "alice",
    "edited_at": "2026-12-05T10:00:00Z",
    "archived": False,
    "extra_perms": {},
    "schema": {"type": "object", "properties": {}, "required": []},
    "value": {
        "modules": [
            {
                "id": "a",
                "summary": "Fetch data",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main():\n    return 1\n",
                    "lock": "# py: 3.12\n",
                    "input_transforms": {},
                },
            },
            {
                "id": "b",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "[1, 2]"},
                    "skip_failures": False,
                    "modules": [
                        {
                            "id": "c",
                            "value": {
                                "type": "rawscript",
                                "language": "bun",
                                "content": "export function main() { return 2 }\n",
                                "input_transforms": {},
                            },
                        },
                        {
                            "id": "d",
                            "summary": "",
                            "value": {
                                "type": "rawscript",
                                "language": "bash",
                                "content": "echo 3\n",
                                "input_transforms": {},
                            },
                        },
                    ],
                },
            },
            {
                "id": "e",
                "value": {"type": "script", "path": "f/team/hello", "input_transforms": {}},
            },
        ],
        "failure_module": {
            "id": "failure",
            "value": {
                "type": "rawscript",
                "language": "deno",
                "content": "export function main() {}\n",
            },
        },
    },
}

SCHEDULE: dict[str, Any] = {
    "workspace_id": "demo",
    "path": "f/team/nightly",
    "edited_by": "alice",
    "edited_at": "2026-12-05T10:00:00Z",
    "schedule": "0 0 3 * * *",
    "timezone": "Europe/Paris",
    "enabled": True,
    "script_path": "f/team/hello",
    "is_flow": False,
    "args": {"name": "night"},
    "email": "alice@example.com",
    "permissioned_as": "u/alice",
    "extra_perms": {},
    "summary": None,
    "next_tick": "2026-12-06T02:00:00Z",
    "skipped_ticks": 3,
}


def _yaml(files: dict[str, bytes], name: str) -> Any:
    return yaml.safe_load(files[name].decode())


def test_a_script_is_its_code_metadata_and_lock() -> None:
    files = fmt.script_files(SCRIPT)
    assert sorted(files) == [
        "f/team/hello.py",
        "f/team/hello.script.lock",
        "f/team/hello.script.yaml",
    ]
    assert files["f/team/hello.py"].decode() == SCRIPT["content"]
    assert files["f/team/hello.script.lock"].decode() == SCRIPT["lock"]
    meta = _yaml(files, "f/team/hello.script.yaml")
    assert meta == {
        "summary": "Say hello",
        "description": "",
        "schema": SCRIPT["schema"],
        "lock": "!inline f/team/hello.script.lock",
        "kind": "script",
        "timeout": 30,
    }
    # The CLI's key order (prioritizeName): summary, description, lock, then by name.
    assert list(meta) == ["summary", "description", "lock", "kind", "schema", "timeout"]


def test_a_script_without_lock_keeps_an_empty_one_and_drops_a_missing_one() -> None:
    empty = _yaml(fmt.script_files({**SCRIPT, "lock": ""}), "f/team/hello.script.yaml")
    assert empty["lock"] == ""
    files = fmt.script_files({**SCRIPT, "lock": None})
    assert "f/team/hello.script.lock" not in files
    assert "lock" not in _yaml(files, "f/team/hello.script.yaml")


@pytest.mark.parametrize(
    ("language", "name"),
    [
        ("bun", "x.ts"),
        ("deno", "x.deno.ts"),
        ("bash", "x.sh"),
        ("postgresql", "x.pg.sql"),
        ("go", "x.go"),
        ("nativets", "x.fetch.ts"),
        ("mylang", "x.mylang"),
    ],
)
def test_a_script_file_takes_the_extension_of_its_language(language: str, name: str) -> None:
    files = fmt.script_files({**SCRIPT, "path": "x", "language": language, "lock": None})
    assert name in files
    # Read back with the same language (a plugin's language by its extension).
    assert [i.language for i in fmt.from_folder(files)] == [language]


def test_the_archive_entries_are_windmills_json() -> None:
    entries = fmt.item_entries("script", SCRIPT)
    record = json.loads(entries["f/team/hello.script.json"])
    assert record["lock"] == SCRIPT["lock"] and "path" not in record and "hash" not in record
    assert "created_by" not in record and "extra_perms" not in record


def test_a_flow_is_a_folder_with_its_inline_scripts() -> None:
    files = fmt.flow_files(FLOW)
    base = "u/alice/pipeline.flow/"
    assert sorted(files) == sorted(
        base + n
        for n in (
            "flow.yaml",
            "fetch_data.inline_script.py",
            "fetch_data.inline_script.lock",
            "c.inline_script.ts",
            "inline_script_0.inline_script.sh",
            "failure.inline_script.deno.ts",
        )
    )
    flow = _yaml(files, base + "flow.yaml")
    assert flow["summary"] == "Pipeline" and "path" not in flow and "edited_by" not in flow
    first = flow["value"]["modules"][0]["value"]
    assert first["content"] == "!inline fetch_data.inline_script.py"
    assert first["lock"] == "!inline fetch_data.inline_script.lock"
    assert files[base + "c.inline_script.ts"].decode() == "export function main() { return 2 }\n"
    # The stored flow is left as it was.
    assert FLOW["value"]["modules"][0]["value"]["content"].startswith("def main")


def test_clashing_step_names_are_numbered() -> None:
    step = {
        "id": "s",
        "summary": "Same",
        "value": {"type": "rawscript", "language": "bash", "content": "echo\n"},
    }
    flow = {"path": "f/x/f", "summary": "", "value": {"modules": [step, {**step, "id": "t"}]}}
    names = sorted(n.rsplit("/", 1)[1] for n in fmt.flow_files(flow))
    assert names == ["flow.yaml", "same.inline_script.sh", "same_1.inline_script.sh"]


def test_a_schedule_is_one_yaml_file_without_who_edited_it() -> None:
    files = fmt.schedule_files(SCHEDULE)
    assert list(files) == ["f/team/nightly.schedule.yaml"]
    record = _yaml(files, "f/team/nightly.schedule.yaml")
    assert record["schedule"] == "0 0 3 * * *" and record["args"] == {"name": "night"}
    for gone in (
        "path",
        "edited_by",
        "email",
        "permissioned_as",
        "extra_perms",
        "workspace_id",
        "next_tick",
        "skipped_ticks",
    ):
        assert gone not in record


def test_other_kinds_take_windmills_file_names() -> None:
    folder = fmt.item_files("folder", {"name": "team", "owners": [], "extra_perms": {}})
    assert _yaml(folder, "f/team/folder.meta.yaml") == {"owners": [], "extra_perms": {}}
    rt = fmt.item_files("resource_type", {"name": "c_thing", "schema": {}, "description": ""})
    assert list(rt) == ["c_thing.resource-type.yaml"]
    route = fmt.item_files("http_trigger", {"path": "f/team/r", "route_path": "hello"})
    assert list(route) == ["f/team/r.http_trigger.yaml"]


def test_a_folder_reads_back_into_the_same_records() -> None:
    files: dict[str, bytes] = {}
    files.update(fmt.script_files(SCRIPT))
    files.update(fmt.flow_files(FLOW))
    files.update(fmt.schedule_files(SCHEDULE))
    files.update(
        fmt.item_files(
            "variable", {"path": "u/alice/v", "value": "x", "is_secret": False, "description": ""}
        )
    )
    files["wmill.yaml"] = b"defaultTs: bun\n"
    files["README.md"] = b"# notes\n"
    items = {(i.kind, i.path): i for i in fmt.from_folder(files)}
    assert sorted(items) == [
        ("flow", "u/alice/pipeline"),
        ("schedule", "f/team/nightly"),
        ("script", "f/team/hello"),
        ("variable", "u/alice/v"),
    ]
    script = items["script", "f/team/hello"]
    assert script.record == fmt.script_record(SCRIPT)
    assert (script.content, script.language) == (SCRIPT["content"], "python3")
    assert items["flow", "u/alice/pipeline"].record == fmt.flow_record(FLOW)
    assert items["schedule", "f/team/nightly"].record == json.loads(
        fmt.item_entries("schedule", SCHEDULE)["f/team/nightly.schedule.json"]
    )
    # Folder -> items -> folder is the identity.
    again: dict[str, bytes] = {}
    again.update(
        fmt.script_files(
            {
                **script.record,
                "path": script.path,
                "content": script.content,
                "language": script.language,
            }
        )
    )
    again.update(
        fmt.flow_files({**items["flow", "u/alice/pipeline"].record, "path": "u/alice/pipeline"})
    )
    for name, data in again.items():
        assert files[name] == data, name


def test_a_missing_inline_file_is_named() -> None:
    files = fmt.flow_files(FLOW)
    del files["u/alice/pipeline.flow/c.inline_script.ts"]
    with pytest.raises(BadInput, match=r"c\.inline_script\.ts"):
        fmt.from_folder(files)


def test_metadata_without_code_is_refused() -> None:
    files = fmt.script_files(SCRIPT)
    del files["f/team/hello.py"]
    with pytest.raises(BadInput, match="no code file"):
        fmt.from_folder(files)


def test_a_file_resource_keeps_its_content_in_a_file_of_its_type() -> None:
    entries = {
        **fmt.item_entries(
            "resource_type", {"name": "c_cert", "schema": {}, "format_extension": "pem"}
        ),
        **fmt.item_entries(
            "resource",
            {
                "path": "f/x/cert",
                "resource_type": "c_cert",
                "value": {"content": "-----BEGIN-----\n"},
            },
        ),
    }
    files = fmt.to_folder(entries)
    assert files["f/x/cert.resource.file.pem"] == b"-----BEGIN-----\n"
    assert _yaml(files, "f/x/cert.resource.yaml")["value"] == {
        "content": "!inline f/x/cert.resource.file.pem"
    }
    [resource] = [i for i in fmt.from_folder(files) if i.kind == "resource"]
    assert resource.record["value"] == {"content": "-----BEGIN-----\n"}
