"""Script paths: ``u/<user>/<name>`` or ``f/<folder>/<name>`` (Windmill's rule)."""

from __future__ import annotations

import re

from gristmill.errors import BadInput
from gristmill.validation import check_no_nul, short

__all__ = ["PATH_PATTERN", "check_path"]

# The database's CHECK is `^[ufg](/[\w-]+){2,}$`; Python's `\w` is Unicode and its `$`
# matches before a final newline, so the class is spelled out in ASCII and matched whole
# (fullmatch): a path Python accepts is one the database stores.
PATH_PATTERN = re.compile(r"[ufg](/[A-Za-z0-9_-]+){2,}", re.ASCII)


def check_path(path: str, *, field: str = "path") -> None:
    """Raise :class:`BadInput` unless ``path`` is a valid script path."""
    check_no_nul(field, path)
    if not PATH_PATTERN.fullmatch(path):
        raise BadInput(
            f"invalid {field} {short(path)!r}: a path looks like u/<user>/<name> or "
            "f/<folder>/<name> (ASCII letters, digits, '_' and '-' between the slashes)"
        )
