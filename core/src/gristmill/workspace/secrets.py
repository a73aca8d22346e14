"""Secrets at rest: an instance key, a data key per workspace, AES-GCM everywhere.

* The **instance key** (32 bytes) never enters the database: it is ``GRISTMILL_INSTANCE_KEY``
  or the file ``<data_dir>/instance.key`` (created, mode 0600, at first use). Every process
  of an install (API and workers) must use the same one; processes on several hosts must
  share it through the environment variable.
* Each workspace has a **data key** (32 random bytes) created at first need and stored in
  ``workspace_key.wrapped_key``, encrypted by the instance key with the workspace id as
  associated data (a wrapped key copied to another workspace does not open).
* A secret value is stored as base64 of ``nonce (12 bytes) || AES-GCM(ciphertext || tag)``
  under its workspace's data key, again with the workspace id as associated data.

A wrong instance key cannot open the wrapped keys: :class:`Unavailable` names the setting
instead of failing with a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gristmill.config import INSTANCE_KEY_BYTES, ConfigError, Settings
from gristmill.db.queries import Q
from gristmill.errors import Unavailable

__all__ = [
    "INSTANCE_KEY_FILE",
    "Secrets",
    "WrongKey",
    "load_instance_key",
    "open_value",
    "seal_value",
]

#: The instance key's file in the data directory, when GRISTMILL_INSTANCE_KEY is not set.
INSTANCE_KEY_FILE = "instance.key"

_NONCE_BYTES = 12


class WrongKey(Unavailable):
    """Stored ciphertext that this instance key (or data key) cannot open."""


def seal_value(key: bytes, workspace_id: str, plaintext: bytes) -> str:
    """``plaintext`` encrypted under ``key`` for ``workspace_id``, as base64 text."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, workspace_id.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_value(key: bytes, workspace_id: str, stored: str) -> bytes:
    """The plaintext of :func:`seal_value`'s output; :class:`InvalidTag` when ``key`` (or the
    workspace) is not the one it was sealed with, or the text was altered."""
    try:
        raw = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidTag() from None
    if len(raw) < _NONCE_BYTES + 16:
        raise InvalidTag()
    return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], workspace_id.encode())


def load_instance_key(settings: Settings) -> bytes:
    """``GRISTMILL_INSTANCE_KEY`` when set; else the key file of the data directory, created
    with fresh random bytes (mode 0600) when it does not exist yet."""
    if settings.instance_key is not None:
        return settings.instance_key
    path = settings.data_dir / INSTANCE_KEY_FILE
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(INSTANCE_KEY_BYTES)
    tmp = path.with_name(f".{INSTANCE_KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    try:
        # A hard link fails if another process created the file meanwhile: both then use
        # the first one's key.
        os.link(tmp, path)
    except FileExistsError:
        return _read_key_file(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return key


def _read_key_file(path: Path) -> bytes:
    text = path.read_text("ascii", errors="replace")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != INSTANCE_KEY_BYTES:
        raise ConfigError(
            f"{path} does not hold an instance key ({INSTANCE_KEY_BYTES} bytes as hex); "
            "restore it from a backup, or set GRISTMILL_INSTANCE_KEY"
        )
    return key


class Secrets:
    """Encrypts and decrypts secret values with the workspaces' data keys (one per process;
    unwrapped data keys are kept in memory)."""

    def __init__(self, instance_key: bytes) -> None:
        if len(instance_key) != INSTANCE_KEY_BYTES:
            raise ConfigError(f"an instance key is {INSTANCE_KEY_BYTES} bytes")
        self._instance_key = instance_key
        #: Unwrapped data keys by (workspace, wrapped text): a workspace deleted and made
        #: again gets a new wrapped key, so a stale entry is never used.
        self._keys: dict[tuple[str, str], bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Secrets:
        return cls(load_instance_key(settings))

    async def workspace_key(self, conn: psycopg.AsyncConnection, workspace_id: str) -> bytes:
        """The data key of ``workspace_id``, created on first need. Two processes creating
        it at once both end up with the one that was stored first."""
        row = await (
            await conn.execute(Q["get_workspace_key"], {"workspace_id": workspace_id})
        ).fetchone()
        if row is None:
            candidate = seal_value(self._instance_key, workspace_id, os.urandom(INSTANCE_KEY_BYTES))
            await conn.execute(
                Q["insert_workspace_key"],
                {"workspace_id": workspace_id, "wrapped_key": candidate},
            )
            row = await (
                await conn.execute(Q["get_workspace_key"], {"workspace_id": workspace_id})
            ).fetchone()
            assert row is not None, "the workspace key was just stored"
        wrapped: str = row[0]
        cached = self._keys.get((workspace_id, wrapped))
        if cached is not None:
            return cached
        try:
            key = open_value(self._instance_key, workspace_id, wrapped)
        except InvalidTag:
            raise WrongKey(
                f"the secrets of workspace '{workspace_id}' cannot be decrypted: this "
                "process's instance key (GRISTMILL_INSTANCE_KEY, or instance.key in the data "
                "directory) is not the one they were stored with; give every process of the "
                "install the same key"
            ) from None
        self._keys[(workspace_id, wrapped)] = key
        return key

    async def encrypt(self, conn: psycopg.AsyncConnection, workspace_id: str, value: str) -> str:
        key = await self.workspace_key(conn, workspace_id)
        return seal_value(key, workspace_id, value.encode("utf-8"))

    async def decrypt(self, conn: psycopg.AsyncConnection, workspace_id: str, stored: str) -> str:
        key = await self.workspace_key(conn, workspace_id)
        try:
            return open_value(key, workspace_id, stored).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise WrongKey(
                f"a secret of workspace '{workspace_id}' does not decrypt with its workspace "
                "key (altered in the database, or encrypted elsewhere)"
            ) from None
