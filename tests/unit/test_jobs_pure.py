"""Script hashes as text, and the result of a canceled job."""

from __future__ import annotations

import json

import pytest
from gristmill.queue.cancel import canceled_error
from gristmill.scripts.hashes import format_hash, parse_hash

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


@pytest.mark.parametrize("value", [0, 1, 255, I64_MAX, -1, I64_MIN, -6066930334832433271])
def test_hash_round_trip(value: int) -> None:
    """format_hash writes 16 lowercase hex digits and parse_hash reads back the same i64."""
    text = format_hash(value)
    assert len(text) == 16
    assert text == text.lower()
    assert all(c in "0123456789abcdef" for c in text)
    assert parse_hash(text) == value


def test_hash_known_values() -> None:
    """Negative hashes are written as their two's complement bytes, as Windmill does."""
    assert format_hash(1) == "0000000000000001"
    assert format_hash(-1) == "ffffffffffffffff"
    assert format_hash(I64_MIN) == "8000000000000000"
    assert parse_hash("8000000000000000") == I64_MIN
    assert parse_hash("7fffffffffffffff") == I64_MAX


@pytest.mark.parametrize(
    "bad", ["", "xyz", "abc", "00000000000000", "000000000000000001", "zzzzzzzzzzzzzzzz"]
)
def test_parse_hash_rejects_bad_text(bad: str) -> None:
    """Anything but 16 hex digits raises ValueError quoting the text."""
    with pytest.raises(ValueError) as info:
        parse_hash(bad)
    assert f"'{bad}' is not a script hash (16 hexadecimal digits)" == str(info.value)


@pytest.mark.parametrize("bad", ["0000 0000 0000 0001", " 0000000000000001", "00000000 00000001"])
def test_parse_hash_rejects_whitespace(bad: str) -> None:
    """A hash is exactly 16 hex digits: text with spaces is not a hash."""
    with pytest.raises(ValueError, match="not a script hash"):
        parse_hash(bad)


def test_canceled_error_shape() -> None:
    """A canceled job's result is Windmill's Canceled error."""
    assert json.loads(canceled_error("alice@example.com", "too slow")) == {
        "error": {
            "name": "Canceled",
            "message": "Job canceled: too slow by alice@example.com",
            "reason": "too slow",
            "canceler": "alice@example.com",
        }
    }


def test_canceled_error_without_reason_or_user() -> None:
    """Missing reason and canceler get readable placeholders."""
    error = json.loads(canceled_error(None, None))["error"]
    assert error["name"] == "Canceled"
    assert error["reason"] == "no reason given"
    assert error["canceler"] == "unknown"
    assert error["message"] == "Job canceled: no reason given by unknown"
