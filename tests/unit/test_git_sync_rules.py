"""Git sync's pure rules: which files an item owns, which items a repository takes, the
commit message."""

from __future__ import annotations

from pathlib import Path

from gristmill.sync.git import Pending, commit_message, included, owned_files


def test_an_item_owns_only_its_own_files(tmp_path: Path) -> None:
    folder = tmp_path / "f" / "team"
    (folder / "etl.flow").mkdir(parents=True)
    names = [
        "etl.py",
        "etl.script.yaml",
        "etl.script.lock",
        "etl.schedule.yaml",
        "etl.resource.yaml",
        "etl2.py",
        "other.py",
    ]
    for name in names:
        (folder / name).write_text("")
    owned = {
        k: sorted(p.name for p in owned_files(tmp_path, k, "f/team/etl"))
        for k in ("script", "flow", "schedule")
    }
    assert owned == {
        "script": ["etl.py", "etl.script.lock", "etl.script.yaml"],
        "flow": ["etl.flow"],
        "schedule": ["etl.schedule.yaml"],
    }
    assert owned_files(tmp_path, "script", "f/none/x") == []


def test_a_repository_takes_folders_by_default_and_follows_its_filters() -> None:
    assert included({}, "script", "f/team/etl")
    assert not included({}, "script", "u/alice/draft")
    filters = {
        "settings": {
            "include_path": ["f/team/**"],
            "include_type": ["flow"],
            "exclude_path": ["f/team/tmp/**"],
        }
    }
    assert included(filters, "flow", "f/team/etl")
    assert not included(filters, "script", "f/team/etl")
    assert not included(filters, "flow", "f/other/etl")
    assert not included(filters, "flow", "f/team/tmp/x")


def test_the_message_names_the_change_the_item_and_the_author() -> None:
    event = Pending(1, "flow", "f/team/etl", None, "4", "flows.update", "alice", 0)
    assert commit_message(event) == "Update flow f/team/etl by alice"
    moved = Pending(2, "flow", "f/team/etl", "f/team/etl2", "5", "flows.update", "bob", 0)
    assert commit_message(moved) == "Update flow f/team/etl (moved to f/team/etl2) by bob"
    gone = Pending(3, "schedule", "f/team/daily", None, None, "schedule.delete", "bob", 0)
    assert commit_message(gone) == "Delete schedule f/team/daily by bob"
