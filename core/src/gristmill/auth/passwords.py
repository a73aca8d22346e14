"""Password hashes: argon2id (argon2-cffi), verifying the scrypt hashes of earlier versions.

Hashing is deliberately slow (tens of milliseconds, 64 MiB): the ``*_async`` functions run
it in a thread, so that logins never stall the event loop serving other requests (argon2's
C code releases the GIL). An unknown account is checked against :func:`dummy_hash`, so that
it costs the same time as a known one and timing does not tell which emails exist.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "dummy_hash",
    "hash_password",
    "hash_password_async",
    "needs_rehash",
    "verify_password",
    "verify_password_async",
]

#: argon2-cffi's defaults are RFC 9106's second recommended choice (argon2id, t=3, 64 MiB).
_HASHER = PasswordHasher()
_SCRYPT_PREFIX = "scrypt$"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (``$argon2id$v=19$...``)."""
    return _HASHER.hash(password)


@cache
def dummy_hash() -> str:
    """A hash of a random password, made with the current parameters, for unknown accounts."""
    return hash_password(secrets.token_urlsafe(24))


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; a damaged (or missing) stored value matches
    nothing, after spending the time of a real check."""
    if stored and stored.startswith(_SCRYPT_PREFIX):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored or dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError):
        return False
    except InvalidHashError:
        # Not a hash we know: spend the time anyway (no shortcut for damaged rows).
        with contextlib.suppress(VerificationError):
            _HASHER.verify(dummy_hash(), password)
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced by a fresh hash: an scrypt hash of an earlier
    version, or argon2 with weaker parameters than today's."""
    if stored.startswith(_SCRYPT_PREFIX):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 3:
        return False
    try:
        salt, expected = base64.b64decode(parts[1]), base64.b64decode(parts[2])
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(digest, expected)


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` in a thread."""
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, stored: str | None) -> bool:
    """:func:`verify_password` in a thread (``None``: an unknown account, checked against
    :func:`dummy_hash` so it takes as long)."""
    return await asyncio.to_thread(verify_password, password, stored)
