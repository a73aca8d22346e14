"""Which paths the sandbox's user cannot walk to, and how they are opened for it."""

from __future__ import annotations

from pathlib import Path

from gristmill.sandbox.hostpaths import Opening, opening_for


def test_the_opening_covers_each_blocking_directory_once(reachable_tmp_path: Path) -> None:
    base = reachable_tmp_path
    one = base / "one"
    (one / "a" / "b").mkdir(parents=True)
    (one / "a" / "c").mkdir(parents=True)
    (one / "a" / "b" / "inner").mkdir()
    one.chmod(0o700)
    two = base / "open" / "two"
    (two / "tool").mkdir(parents=True)
    two.chmod(0o700)
    (base / "visible").mkdir()
    sources = [
        str(one / "a" / "b" / "inner"),  # inside another source: bound with it
        str(one / "a" / "b"),
        str(one / "a" / "c"),
        str(two / "tool"),
        str(base / "visible"),
    ]
    assert opening_for(sources, 65533, 65533) == Opening(
        covers=(str(one), str(two)),
        dirs=(str(one / "a"),),
        binds=(str(one / "a" / "b"), str(one / "a" / "c"), str(two / "tool")),
    )
    # Root walks everywhere; so does the owner of the directories.
    assert opening_for(sources, 0, 0) is None
    assert opening_for([str(base / "visible")], 65533, 65533) is None
