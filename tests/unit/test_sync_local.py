"""A sync folder on disk (what a pull writes and removes, wmill.yaml's choice of items), the
workspace archive (zip and tar, unsafe member paths) and secrets sealed with a passphrase."""

from __future__ import annotations

from pathlib import Path

import pytest
from gristmill.errors import BadInput
from gristmill.sync import format as fmt
from gristmill.sync import local, sealed
from gristmill.sync.archive import read_archive, write_archive

SCRIPT = {
    "path": "f/a/hello",
    "language": "python3",
    "content": "def main():\n    pass\n",
    "summary": "",
    "description": "",
    "schema": None,
    "lock": "x==1\n",
    "kind": "script",
}
STEP = {"id": "s", "value": {"type": "rawscript", "language": "bash", "content": "echo\n"}}
FLOW = {"path": "f/a/flow", "summary": "", "value": {"modules": [STEP]}}


def _files() -> dict[str, bytes]:
    files = {**fmt.script_files(SCRIPT), **fmt.flow_files(FLOW)}
    files.update(
        fmt.item_files("variable", {"path": "f/a/hello", "value": "v", "is_secret": False})
    )
    files.update(
        fmt.item_files("variable", {"path": "u/me/secret", "value": "c", "is_secret": True})
    )
    files.update(
        fmt.schedule_files(
            {"path": "f/a/nightly", "schedule": "0 0 * * * *", "script_path": "f/a/hello"}
        )
    )
    files.update(fmt.item_files("resource_type", {"name": "c_thing", "schema": {}}))
    return files


def test_a_pull_writes_changes_and_removes_only_the_files_of_items_gone() -> None:
    remote = _files()
    local_files = {**remote, "README.md": b"notes\n", "wmill.yaml": b"defaultTs: bun\n"}
    local_files["f/a/hello.py"] = b"edited locally\n"
    local_files.update(
        fmt.item_files("resource", {"path": "f/a/gone", "value": 1, "resource_type": "any"})
    )
    # The flow's step renamed remotely: its old inline file is stale.
    local_files["f/a/flow.flow/old.inline_script.sh"] = b"echo old\n"
    del remote["u/me/secret.variable.yaml"]
    changes = local.plan_pull(local_files, remote)
    assert changes.added == []
    assert changes.changed == ["f/a/hello.py"]
    assert changes.removed == [
        "f/a/flow.flow/old.inline_script.sh",
        "f/a/gone.resource.yaml",
        "u/me/secret.variable.yaml",
    ]


def test_removing_a_script_keeps_the_variable_at_its_path(tmp_path: Path) -> None:
    files = _files()
    [script] = [i for i in fmt.from_folder(files) if i.kind == "script"]
    assert local.item_files_on_disk(script, files) == [
        "f/a/hello.py",
        "f/a/hello.script.lock",
        "f/a/hello.script.yaml",
    ]
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    remote = {k: v for k, v in files.items() if not k.startswith("f/a/flow.flow/")}
    changes = local.plan_pull(local.read_folder(tmp_path), remote)
    local.apply_pull(tmp_path, remote, changes)
    assert not (tmp_path / "f/a/flow.flow").exists()  # the emptied flow folder too
    assert local.read_folder(tmp_path) == remote


def test_without_wmill_yaml_everything_syncs(tmp_path: Path) -> None:
    config = local.SyncConfig.read(tmp_path)
    assert config.select(_files()) == _files()


def test_wmill_yaml_chooses_items_as_the_cli_does(tmp_path: Path) -> None:
    # wmill init's defaults: f/** only, no secrets, no schedules or triggers.
    (tmp_path / "wmill.yaml").write_text("defaultTs: bun\n")
    kept = sorted(local.SyncConfig.read(tmp_path).select(_files()))
    assert "f/a/nightly.schedule.yaml" not in kept and "u/me/secret.variable.yaml" not in kept
    assert "c_thing.resource-type.yaml" in kept and "f/a/hello.py" in kept
    (tmp_path / "wmill.yaml").write_text(
        "includes: ['**']\nexcludes: ['f/a/*.flow/**']\nincludeSchedules: true\n"
        "skipSecrets: false\nskipVariables: true\n"
    )
    kept = sorted(local.SyncConfig.read(tmp_path).select(_files()))
    assert kept == [
        "c_thing.resource-type.yaml",
        "f/a/hello.py",
        "f/a/hello.script.lock",
        "f/a/hello.script.yaml",
        "f/a/nightly.schedule.yaml",
    ]


def test_a_bad_wmill_yaml_is_named(tmp_path: Path) -> None:
    (tmp_path / "wmill.yaml").write_text("includes: f/**\n")
    with pytest.raises(BadInput, match="includes must be a list"):
        local.SyncConfig.read(tmp_path)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archives_round_trip_and_are_stable(kind: str) -> None:
    entries = {"f/a/hello.py": "print(1)\n", "f/a/hello.script.json": "{}"}
    data = write_archive(entries, kind)  # type: ignore[arg-type]
    assert write_archive(entries, kind) == data  # type: ignore[arg-type]
    assert read_archive(data) == entries
    assert read_archive(write_archive({}, kind)) == {}  # type: ignore[arg-type]


def test_an_archive_member_outside_the_folder_is_refused() -> None:
    with pytest.raises(BadInput, match="not a relative path"):
        read_archive(write_archive({"../escape.py": "x"}, "tar"))
    with pytest.raises(BadInput, match="not a workspace archive"):
        read_archive(b"not an archive")


def test_a_sealed_secret_opens_only_with_its_passphrase_and_path() -> None:
    box = sealed.seal("correct horse", "u/me/secret", "s3cr3t")
    assert sealed.is_sealed(box) and "s3cr3t" not in box
    assert box != sealed.seal("correct horse", "u/me/secret", "s3cr3t")  # fresh salt, nonce
    assert sealed.open_sealed("correct horse", "u/me/secret", box) == "s3cr3t"
    with pytest.raises(BadInput, match="passphrase is wrong"):
        sealed.open_sealed("wrong", "u/me/secret", box)
    with pytest.raises(BadInput, match="passphrase is wrong"):
        sealed.open_sealed("correct horse", "u/me/other", box)
    with pytest.raises(BadInput, match="empty passphrase"):
        sealed.seal("", "u/me/secret", "x")
