"""The live version of recently run paths, sparing a query per run."""

from __future__ import annotations

from typing import Any

__all__ = ["ScriptCache"]


class ScriptCache:
    """Never trusted blindly: a job built from a cached version is inserted only if that
    version is still the live one (checked by the insert itself), else the path is read
    again. Another process saving a new version is thus seen at the next run.
    """

    def __init__(self, size: int = 1000) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._size = size

    def get(self, workspace: str, path: str) -> dict[str, Any] | None:
        return self._rows.get((workspace, path))

    def put(self, workspace: str, path: str, row: dict[str, Any]) -> None:
        if len(self._rows) >= self._size:
            self._rows.clear()
        self._rows[(workspace, path)] = row

    def drop(self, workspace: str, path: str) -> None:
        self._rows.pop((workspace, path), None)
