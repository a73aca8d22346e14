"""Secrets at rest and log masking, without a database: AES-GCM sealing, the instance key's
sources, the masking of split output."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from gristmill.config import ConfigError, Settings, parse_instance_key
from gristmill.worker.logs import MASK, SecretMask
from gristmill.workspace.secrets import (
    INSTANCE_KEY_FILE,
    Secrets,
    load_instance_key,
    open_value,
    seal_value,
)

KEY = bytes(range(32))


def test_sealed_value_opens_only_with_its_key_and_workspace() -> None:
    sealed = seal_value(KEY, "main", b"hunter2")
    assert "hunter2" not in sealed
    raw = base64.b64decode(sealed)
    # 12-byte nonce, 7 bytes of ciphertext, 16-byte tag.
    assert len(raw) == 12 + 7 + 16
    assert open_value(KEY, "main", sealed) == b"hunter2"
    with pytest.raises(InvalidTag):
        open_value(KEY, "other", sealed)
    with pytest.raises(InvalidTag):
        open_value(os.urandom(32), "main", sealed)
    tampered = base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()
    with pytest.raises(InvalidTag):
        open_value(KEY, "main", tampered)
    for garbage in ("", "not base64 !", base64.b64encode(b"short").decode()):
        with pytest.raises(InvalidTag):
            open_value(KEY, "main", garbage)


def test_each_seal_uses_a_fresh_nonce() -> None:
    a, b = seal_value(KEY, "main", b"same"), seal_value(KEY, "main", b"same")
    assert a != b and base64.b64decode(a)[:12] != base64.b64decode(b)[:12]


def test_instance_key_from_hex_or_base64() -> None:
    assert parse_instance_key("") is None
    assert parse_instance_key(KEY.hex()) == KEY
    assert parse_instance_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_instance_key(base64.urlsafe_b64encode(KEY).decode()) == KEY
    for bad in ("abc", KEY.hex()[:-2], base64.b64encode(KEY[:16]).decode(), "é" * 44):
        with pytest.raises(ConfigError, match="GRISTMILL_INSTANCE_KEY"):
            parse_instance_key(bad)
    env = {"GRISTMILL_INSTANCE_KEY": KEY.hex()}
    assert Settings.from_env(env).instance_key == KEY
    with pytest.raises(ConfigError, match="GRISTMILL_INSTANCE_KEY"):
        Settings.from_env({"GRISTMILL_INSTANCE_KEY": "too-short"})
    # Settings are logged at times: the key is not part of their text.
    assert "instance_key" not in repr(Settings(instance_key=KEY))


def test_instance_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = load_instance_key(settings)
    path = tmp_path / "data" / INSTANCE_KEY_FILE
    assert len(key) == 32 and path.read_text().strip() == key.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_instance_key(settings) == key
    # The setting wins over the file.
    assert load_instance_key(Settings(data_dir=tmp_path / "data", instance_key=KEY)) == KEY
    path.write_text("garbage\n")
    with pytest.raises(ConfigError, match="GRISTMILL_INSTANCE_KEY"):
        load_instance_key(settings)


def test_secrets_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError):
        Secrets(b"short")


def _mask(*values: str) -> SecretMask:
    mask = SecretMask(Secrets(KEY), uuid.uuid4(), "main")
    mask.learn(values)
    return mask


def test_mask_replaces_values_longest_first_and_skips_short_ones() -> None:
    mask = _mask("s3cr3t-value", "s3cr3t", "abc")
    assert mask.mask("x s3cr3t-value y s3cr3t abc") == f"x {MASK} y {MASK} abc"


def test_a_value_split_between_two_writes_is_still_masked() -> None:
    mask = _mask("topsecret")
    stored, keep = mask.split("log line top", final=False)
    # The tail that could begin the secret waits for the next write.
    assert "top" not in stored and stored + keep == "log line top"
    stored2, keep2 = mask.split(keep + "secret and more", final=False)
    stored3, _ = mask.split(keep2, final=True)
    assert stored + stored2 + stored3 == f"log line {MASK} and more"
    # A whole value straddling the cut is kept whole, then masked.
    s, k = mask.split("abc topsecret", final=False)
    assert s + mask.mask(k) == f"abc {MASK}" and "topsecret" not in s
    # Without secrets nothing is held back.
    assert _mask().split("anything", final=False) == ("anything", "")
