"""Password hashes and signed job tokens (no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from uuid import uuid4

import pytest
from gristmill.auth.passwords import hash_password, verify_password
from gristmill.auth.tokens import hash_token, mint_job_token, new_api_token, read_job_token

SECRET = bytes.fromhex("11" * 32)


def test_password_right_and_wrong() -> None:
    """The right password verifies; a wrong one does not; hashes are salted."""
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password("correct horse", stored) is True
    assert verify_password("correct hors", stored) is False
    assert verify_password("", stored) is False
    assert hash_password("correct horse") != stored


def test_password_unicode() -> None:
    """Non-ASCII passwords work."""
    stored = hash_password("pässwörd✓")
    assert verify_password("pässwörd✓", stored) is True
    assert verify_password("passwort", stored) is False


@pytest.mark.parametrize("stored", [None, "", "plain-text", "bcrypt$abc$def", "scrypt$$"])
def test_password_against_unusable_stored_value(stored: str | None) -> None:
    """A missing or foreign stored value never verifies."""
    assert verify_password("anything", stored) is False


@pytest.mark.parametrize("stored", ["scrypt$abc", "scrypt$a$b", "scrypt$c2FsdA==$%%%"])
def test_password_against_garbage_scrypt_value(stored: str) -> None:
    """A corrupt scrypt value is a failed login (False), not an exception."""
    assert verify_password("anything", stored) is False


def test_hash_token_is_sha256_hex() -> None:
    """Tokens are stored as their SHA-256 hex digest."""
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_job_token_round_trip() -> None:
    """A minted job token reads back to its job's actor."""
    job_id = uuid4()
    token = mint_job_token(SECRET, job_id=job_id, email="bob@example.com", username="bob")
    assert token.startswith("jt.")
    actor = read_job_token(SECRET, token)
    assert actor is not None
    assert actor.job_id == job_id
    assert actor.email == "bob@example.com"
    assert actor.username == "bob"
    assert actor.super_admin is False
    assert actor.permissioned_as == "u/bob"


def _token() -> str:
    return mint_job_token(SECRET, job_id=uuid4(), email="bob@example.com", username="bob")


def test_job_token_tampered_payload() -> None:
    """Changing the payload (another user) breaks the signature."""
    token = _token()
    payload, signature = token[3:].rsplit(".", 1)
    job_id, _, _ = json.loads(base64.urlsafe_b64decode(payload))
    forged = base64.urlsafe_b64encode(
        json.dumps([job_id, "admin@example.com", "admin"], separators=(",", ":")).encode()
    ).decode()
    assert read_job_token(SECRET, f"jt.{forged}.{signature}") is None


def test_job_token_tampered_signature() -> None:
    """Changing one character of the signature makes the token invalid."""
    token = _token()
    last = "0" if token[-1] != "0" else "1"
    assert read_job_token(SECRET, token[:-1] + last) is None
    assert read_job_token(SECRET, token.rsplit(".", 1)[0] + ".") is None


def test_job_token_other_secret() -> None:
    """A token signed by another instance is not accepted."""
    assert read_job_token(bytes.fromhex("22" * 32), _token()) is None


@pytest.mark.parametrize("token", ["", "jt.", "jt..", "abc.def", "Bearer x", "jt.nodot"])
def test_non_job_tokens(token: str) -> None:
    """Anything that is not a job token reads as None."""
    assert read_job_token(SECRET, token) is None


def test_api_token_is_not_a_job_token() -> None:
    """An ordinary API token (no ``jt.`` prefix) is not a job token."""
    assert read_job_token(SECRET, new_api_token()) is None


def test_job_token_with_non_ascii_signature() -> None:
    """A token from a request may hold any character: non-ASCII reads as None, not a crash."""
    token = _token()
    assert read_job_token(SECRET, token[:-1] + "é") is None
    assert read_job_token(SECRET, "jt.é.é") is None


def test_well_signed_token_with_wrong_payload_shape() -> None:
    """A correctly signed payload that is not [job_id, email, username] reads as None."""
    for content in (b"[1,2]", b'["not-a-uuid","a","b"]', b"not json"):
        payload = base64.urlsafe_b64encode(content).decode()
        signature = hmac.new(SECRET, payload.encode(), hashlib.sha256).hexdigest()
        assert read_job_token(SECRET, f"jt.{payload}.{signature}") is None
