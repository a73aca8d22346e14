"""Script version hashes, as Windmill writes them: a signed 64-bit integer in the database,
16 hexadecimal digits (its 8 big-endian bytes) everywhere else."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from gristmill.errors import BadInput

__all__ = ["digest_version", "format_hash", "parse_hash"]

_HASH = re.compile(r"[0-9a-fA-F]{16}")


def format_hash(value: int) -> str:
    """A script hash as Windmill writes it: the 8 big-endian bytes of an i64, in hex."""
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


def parse_hash(text: str) -> int:
    """Inverse of :func:`format_hash`; raises :class:`BadInput` naming the text."""
    if not _HASH.fullmatch(text):
        raise BadInput(f"'{text}' is not a script hash (16 hexadecimal digits)")
    return int.from_bytes(bytes.fromhex(text), "big", signed=True)


def digest_version(material: list[Any]) -> int:
    """A version's hash: 64 bits of a digest of everything that defines it."""
    encoded = json.dumps(material, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest()[:8], "big", signed=True)
