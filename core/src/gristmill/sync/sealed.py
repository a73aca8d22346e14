"""Secrets in a workspace export, sealed with a passphrase.

A workspace's own encryption (``gristmill.workspace.secrets``) is useless to another
instance, and a secret must never travel in clear: ``gristmill workspace export
--include-secrets`` seals each secret's value with a key derived from a passphrase the user
chooses (scrypt, a salt per value) and AES-256-GCM, the variable's path bound as associated
data so a value cannot be moved to another variable. ``import`` opens them with the same
passphrase and saves them as secrets of the target workspace (encrypted there with its key).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gristmill.errors import BadInput

#: What a sealed value starts with (a version, should the scheme change).
PREFIX = "gristmill-sealed:v1:"

# scrypt's cost: about 50 ms and 16 MiB per value on a laptop, so a guessed passphrase costs
# as much; an export holds few secrets.
_N, _R, _P = 2**14, 8, 1
_SALT, _NONCE = 16, 12


def _key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32
    )


def seal(passphrase: str, path: str, value: str) -> str:
    """``value`` of the secret at ``path``, sealed: ``gristmill-sealed:v1:<base64>``."""
    if not passphrase:
        raise BadInput("an empty passphrase cannot protect secrets")
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    sealed = AESGCM(_key(passphrase, salt)).encrypt(nonce, value.encode("utf-8"), path.encode())
    return PREFIX + base64.b64encode(salt + nonce + sealed).decode("ascii")


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def open_sealed(passphrase: str, path: str, value: str) -> str:
    """The clear value of a sealed secret; :class:`BadInput` when the passphrase is wrong or
    the value was altered (or moved from another variable)."""
    try:
        raw = base64.b64decode(value.removeprefix(PREFIX), validate=True)
        salt, nonce, sealed = raw[:_SALT], raw[_SALT : _SALT + _NONCE], raw[_SALT + _NONCE :]
        clear = AESGCM(_key(passphrase, salt)).decrypt(nonce, sealed, path.encode())
        return clear.decode("utf-8")
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise BadInput(
            f"secret {path}: the passphrase is wrong, or the exported value was altered"
        ) from None
