"""Script paths: ``u/<user>/<name>`` or ``f/<folder>/<name>`` (Windmill's rule)."""

from __future__ import annotations

import re

from gristmill.errors import BadInput

__all__ = ["PATH_PATTERN", "check_path"]

PATH_PATTERN = re.compile(r"^[ufg](/[\w-]+){2,}$")


def check_path(path: str) -> None:
    """Raise :class:`BadInput` unless ``path`` is a valid script path."""
    if not PATH_PATTERN.match(path):
        raise BadInput(
            f"invalid path '{path}': a path looks like u/<user>/<name> or f/<folder>/<name> "
            "(letters, digits, '_' and '-' between the slashes)"
        )
