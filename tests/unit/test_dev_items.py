"""`gristmill dev`: which script or flow a saved file of a synced folder belongs to."""

from __future__ import annotations

from pathlib import Path

from gristmill.server.dev_cli import Item, item_of


def test_a_saved_file_names_its_script_or_flow(tmp_path: Path) -> None:
    folder = tmp_path / "f" / "demo"
    (folder / "sum.flow").mkdir(parents=True)
    (folder / "other__flow").mkdir()
    names = ("hello.py", "hello.script.yaml", "hello.script.lock", "db.resource.yaml")
    for name in (*names, "job.schedule.yaml", "job.ts", "job.script.yaml"):
        (folder / name).write_text("")
    hello = Item("script", folder / "hello.py")
    assert item_of(folder / "hello.py", tmp_path) == hello
    assert item_of(folder / "hello.script.yaml", tmp_path) == hello
    assert item_of(folder / "hello.script.lock", tmp_path) == hello
    assert item_of(folder / "sum.flow" / "a.inline_script.py", tmp_path) == Item(
        "flow", folder / "sum.flow"
    )
    assert item_of(folder / "other__flow" / "flow.yaml", tmp_path) == Item(
        "flow", folder / "other__flow"
    )
    assert item_of(folder / "db.resource.yaml", tmp_path) is None
    # A schedule at the script's path is not the script's code.
    assert item_of(folder / "job.script.yaml", tmp_path) == Item("script", folder / "job.ts")
    assert item_of(folder / "job.schedule.yaml", tmp_path) is None
    assert item_of(folder / "orphan.script.yaml", tmp_path) is None
