"""Pure logic of users, tokens and workspaces: password hashes (argon2id, legacy scrypt),
scope strings, workspace ids, roles, and the settings that govern them."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from gristmill.auth.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from gristmill.auth.permissions import Role
from gristmill.auth.tokens import check_scopes
from gristmill.config import ConfigError, Settings
from gristmill.errors import BadInput
from gristmill.workspace.members import role_of
from gristmill.workspace.workspaces import check_new_workspace_id


def _legacy_scrypt(password: str) -> str:
    """A hash as Gristmill stored them before argon2."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def test_new_hashes_are_argon2id_and_current() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$argon2id$v=19$")
    assert needs_rehash(stored) is False
    assert verify_password("s3cret", stored) is True


def test_legacy_scrypt_hash_still_verifies_and_needs_rehash() -> None:
    stored = _legacy_scrypt("old password")
    assert verify_password("old password", stored) is True
    assert verify_password("old passwore", stored) is False
    assert needs_rehash(stored) is True


def test_weaker_argon2_parameters_need_rehash() -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("x")
    assert verify_password("x", weak) is True
    assert needs_rehash(weak) is True


def test_the_dummy_hash_matches_no_password() -> None:
    """Unknown accounts are checked against it: it must never let anyone in, even with the
    stored value missing."""
    assert dummy_hash() == dummy_hash()
    assert verify_password("", None) is False
    assert verify_password("anything", None) is False


@pytest.mark.parametrize(
    "scope", ["jobs:run", "scripts:read:f/team/*", "variables:write", "*:*", "users:read:u/a/b"]
)
def test_valid_scopes(scope: str) -> None:
    assert check_scopes([scope]) == [scope]


@pytest.mark.parametrize(
    "scope", ["", "jobs", "jobs:", ":read", "Jobs:run", "jobs:run:a b", "jobs:run\x00", "a:b:c:\n"]
)
def test_invalid_scopes(scope: str) -> None:
    with pytest.raises(BadInput, match="invalid scope"):
        check_scopes([scope])


def test_too_many_scopes() -> None:
    with pytest.raises(BadInput, match="at most"):
        check_scopes(["jobs:run"] * 101)


@pytest.mark.parametrize("workspace_id", ["team", "team-data", "a_b-c", "X1", "a" * 50])
def test_valid_new_workspace_ids(workspace_id: str) -> None:
    assert check_new_workspace_id(workspace_id) == workspace_id


@pytest.mark.parametrize(
    "workspace_id", ["", "-a", "a-", "a--b", "a b", "é", "a/b", "a" * 51, "a\x00"]
)
def test_invalid_new_workspace_ids(workspace_id: str) -> None:
    with pytest.raises(BadInput, match="invalid workspace id"):
        check_new_workspace_id(workspace_id)


def test_windmill_flags_map_to_one_role() -> None:
    assert role_of(True, False) is Role.ADMIN
    assert role_of(True, True) is Role.ADMIN
    assert role_of(False, True) is Role.OPERATOR
    assert role_of(False, False) is Role.DEVELOPER


def test_login_and_workspace_settings() -> None:
    default = Settings.from_env({})
    assert default.login_max_failures == 10
    assert default.login_max_failures_per_address == 50
    assert default.login_window_s == 300
    assert default.create_workspace_require_superadmin is True
    custom = Settings.from_env(
        {
            "GRISTMILL_LOGIN_MAX_FAILURES": "3",
            "GRISTMILL_LOGIN_MAX_FAILURES_PER_ADDRESS": "7",
            "GRISTMILL_LOGIN_WINDOW_S": "60",
            "CREATE_WORKSPACE_REQUIRE_SUPERADMIN": "false",
        }
    )
    assert (custom.login_max_failures, custom.login_max_failures_per_address) == (3, 7)
    assert custom.login_window_s == 60
    assert custom.create_workspace_require_superadmin is False
    with pytest.raises(ConfigError, match="GRISTMILL_LOGIN_MAX_FAILURES"):
        Settings.from_env({"GRISTMILL_LOGIN_MAX_FAILURES": "0"})
