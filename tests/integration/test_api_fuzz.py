"""Schemathesis against the real API: every operation of the OpenAPI document, fuzzed.

A platform (API and workers) runs on a fresh database behind a real HTTP server (uvicorn, in
a thread with its own event loop); schemathesis generates requests from the document this
app serves and runs all its checks on each answer: no server error, every status and body as
declared, invalid input refused, valid input accepted, the token enforced. Examples are few
per operation and derived deterministically (``derandomize``), so that CI sees the same run
every time; a failure prints the request that reproduces it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from gristmill.api.app import openapi_document
from gristmill.auth.tokens import hash_token
from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow


AUTH = {"Authorization": f"Bearer {SUPERADMIN_SECRET}"}
#: A real API token of `fuzzer`, an admin of workspace `main` (not a super admin): the
#: workspace operations are fuzzed through the token lookup and the membership a user's
#: request goes through, not the superadmin secret's shortcut.
WORKSPACE_ADMIN_TOKEN = "fuzz-workspace-admin-token-0123456789"

VALID_AUTH = {f"Bearer {WORKSPACE_ADMIN_TOKEN}", f"Bearer {SUPERADMIN_SECRET}"}


WORKSPACE_ADMIN_EMAIL = "fuzzer@example.com"
#: Operations after which the workspace admin may no longer be one (it left, or changed its
#: own membership): membership is restored after each, so what follows is still fuzzed as a
#: member.
SELF_REMOVING = re.compile(r"/workspaces/leave$|/users/(update|delete)/")


def _restore_workspace_admin(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            Q["add_member"],
            {
                "workspace_id": "main",
                "email": WORKSPACE_ADMIN_EMAIL,
                "role": "admin",
                "added_by": None,
            },
        )


def _add_workspace_admin(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        email = WORKSPACE_ADMIN_EMAIL
        conn.execute(
            Q["insert_user"],
            {"email": email, "username": "fuzzer", "password_hash": None, "super_admin": False},
        )
        conn.execute(
            Q["add_member"],
            {"workspace_id": "main", "email": email, "role": "admin", "added_by": None},
        )
        conn.execute(
            Q["insert_token"],
            {
                "token_hash": hash_token(WORKSPACE_ADMIN_TOKEN),
                "token_prefix": WORKSPACE_ADMIN_TOKEN[:10],
                "email": email,
                "label": "fuzz",
                "expiration": None,
                "scopes": None,
                "workspace_id": None,
            },
        )


@pytest.fixture(scope="module")
def fuzzed_database(pg_cluster: PgCluster) -> Iterator[str]:
    """The conninfo of a fresh database for the fuzzed platform."""
    database = pg_cluster.create_database()
    try:
        yield pg_cluster.conninfo(database)
    finally:
        pg_cluster.drop_database(database)


@pytest.fixture(scope="module")
def api_url(fuzzed_database: str, served_platform: Any) -> Iterator[str]:
    """The base URL of a started platform on a fresh database."""
    data_dir = Path(tempfile.mkdtemp(prefix="gm-fuzz-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    fuzzed = Settings(
        data_dir=data_dir,
        database_url=fuzzed_database,
        num_workers=1,
        superadmin_secret=SUPERADMIN_SECRET,
        heartbeat_s=0.5,
        log_flush_ms=50,
        database_connections=6,
        # A synchronous run of a job that no worker takes (a generated tag, or a time in the
        # future) can only time out: one second, not the default ten minutes.
        timeout_wait_result_s=1.0,
    )
    try:
        with served_platform(fuzzed) as url:
            _add_workspace_admin(fuzzed_database)
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


ECHO = "def main(x: int = 0, s: str = ''):\n    return {'x': x, 's': s}\n"
SHELL = 'name="$1"\necho "hello $name"\n'


#: Job ids the fixture gives the jobs it makes (``?job_id=``), so that generated requests can
#: name jobs that exist.
JOBS = ["f0a2c3d4-0000-4000-8000-000000000001", "f0a2c3d4-0000-4000-8000-000000000002"]
#: Stand-ins for the hashes of the scripts the fixture saves (known only once saved).
HASH_STAND_INS = ["hash-of-echo", "hash-of-shell"]


def _document() -> dict[str, Any]:
    """The document the app serves, built without a database (as tests/unit/test_openapi):
    schemathesis reads it when the tests are collected."""
    return openapi_document()


#: Operations that wait for a job, and so may answer Windmill's 500 "timeout after ...".
WAITING = "/jobs/run_wait_result/"

CONFIG = schemathesis.Config.from_dict(
    {
        # Things that exist on the fuzzed server: without them nearly every generated
        # workspace, path, hash and job id would be refused at the first lookup, and nothing
        # behind it would be fuzzed. Generated values still come through (a fifth of the
        # time or more), so bad workspaces, paths, hashes and ids stay fuzzed too.
        "dictionaries": {
            "workspaces": {"values": ["main", "main", "main", "ma\x00in"]},
            "paths": {
                "values": [
                    "u/admin/echo",
                    "f/fuzz/shell",
                    "u/admin/echo",
                    "f/fuzz/shell",
                    "u/admin/h\u00e9llo",
                    "u/admin/x\n",
                    "u/admin/a\x00b",
                ]
            },
            "hashes": {"values": HASH_STAND_INS},
            "jobs": {"values": JOBS},
            # Values that once reached a 500: text Postgres cannot store, LIKE wildcards,
            # paths Python's `\\w` and `$` accepted and the database refused, integers
            # beyond their columns. Mixed into generated text parameters and integers.
            "hostile-strings": {
                "values": ["\x00", "a\x00b", "%", "_", "\\", "u/admin/h\u00e9llo", "u/admin/x\n"]
            },
            "hostile-integers": {"values": [10**20, 10**12, 2**31, 100000, -5, 0, -(2**63)]},
        },
        "parameters": {
            "path.workspace": {"dictionary": "workspaces", "probability": 0.8},
            "path.path": {"dictionary": "paths", "probability": 0.6},
            "path.hash": {"dictionary": "hashes", "probability": 0.6},
            "path.id": {"dictionary": "jobs", "probability": 0.6},
            # Optional parameters have no plain `type` (anyOf string/null), which the
            # type-wide binding below does not reach: bound by name.
            **{
                f"query.{name}": {"dictionary": "hostile-strings", "probability": 0.3}
                for name in (
                    "created_by",
                    "path_start",
                    "path_exact",
                    "language",
                    "tag",
                    "script_path_exact",
                    "script_path_start",
                    "job_kinds",
                )
            },
        },
        "checks": {
            # All checks run; these are configured because the document cannot say
            # everything the API checks.
            "positive_data_acceptance": {
                # Input valid for the document can still be refused with 400: a run's
                # arguments are checked against the script's own schema (not the API's), a
                # path or a workspace id must have the database's shape, text must not hold
                # NUL, a job that has finished cannot be canceled. 413: a value can be valid
                # and too large.
                "expected-statuses": ["2xx", "400", "401", "404", "413"],
            },
            # Replaced by `no_server_error` below, which allows exactly one documented 500:
            # Windmill's answer to a synchronous run that outlives its wait.
            "not_a_server_error": {"enabled": False},
        },
        "operations": [
            {
                # A synchronous run may also answer Windmill's documented 500 when its job
                # outlives the wait (a generated tag no worker serves): `no_server_error`
                # checks that such a 500 is exactly that.
                "include-path-regex": WAITING,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "404", "413", "500"],
                    },
                },
            },
            {
                # A signed resume, cancel or get_flow link is its own credential (no token): a
                # generated signature is wrong, and a wrong one is refused with 403.
                "include-path-regex": "/jobs_u/(resume|cancel|get_flow)/",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "413"],
                    },
                },
            },
        ],
        "generation": {
            # Valid and invalid requests: invalid ones must be refused with a 4xx.
            "mode": "all",
            "dictionaries": {
                "string": {"dictionary": "hostile-strings", "probability": 0.2},
                "integer": {"dictionary": "hostile-integers", "probability": 0.2},
            },
        },
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


# The token goes through schemathesis' own auth (a provider of the schema): a negative case
# that drops it is then sent without it (and must get 401), and `ignored_auth` probes each
# operation without a token and with a wrong one. A token added to every request by the test
# itself would put it back, and the API would be blamed for accepting the "invalid" request.
@schema.auth(refresh_interval=None)
class _Tokens:
    """A workspace admin's real token for `/api/w/...` (every operation of a workspace, as
    a member); the superadmin secret for the instance's operations (some are super admins'
    only)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        if case.operation.path.startswith("/api/w/"):
            return WORKSPACE_ADMIN_TOKEN
        return SUPERADMIN_SECRET

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


ECHO = "def main(x: int = 0, s: str = ''):\n    return {'x': x, 's': s}\n"
SHELL = 'name="$1"\necho "hello $name"\n'


@pytest.fixture(scope="module")
def hashes(api_url: str) -> dict[str, str]:
    """Save the scripts and make the jobs the dictionaries name; the hash of each stand-in."""
    saved = {}
    with httpx.Client(base_url=f"{api_url}/api", headers=AUTH, timeout=60) as client:
        # f/ paths need their folder.
        r = client.post("/w/main/folders/create", json={"name": "fuzz"})
        assert r.status_code == 201, r.text
        for stand_in, path, content, language in [
            (HASH_STAND_INS[0], "u/admin/echo", ECHO, "python3"),
            (HASH_STAND_INS[1], "f/fuzz/shell", SHELL, "bash"),
        ]:
            r = client.post(
                "/w/main/scripts/create",
                json={"path": path, "content": content, "language": language},
            )
            assert r.status_code == 201, r.text
            saved[stand_in] = r.text
        r = client.post(
            f"/w/main/jobs/run_wait_result/p/u/admin/echo?job_id={JOBS[0]}", json={"x": 1}
        )
        assert r.status_code == 200, r.text
        r = client.post(
            f"/w/main/jobs/run/p/u/admin/echo?job_id={JOBS[1]}&scheduled_in_secs=86400",
            json={},
        )
        assert r.status_code == 201, r.text
    return saved


@schemathesis.check
def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx, except the documented timeout of a synchronous run (the job keeps going)."""
    if response.status_code < 500:
        return None
    text = response.content.decode("utf-8", "replace") if response.content else ""
    if (
        response.status_code == 500
        and WAITING in case.operation.path
        and text.startswith("timeout after")
    ):
        return None
    if response.status_code == 503 and text.startswith("Service unavailable"):
        return None
    raise AssertionError(f"server error {response.status_code}: {text[:500]}")


#: Examples per operation. Every operation of the document is fuzzed (no include filter: a
#: new route is fuzzed the day it exists). With the 131 operations of the workspace model
#: (loaded machine): 12 took 98 s, 8 takes 86 s; most of the time is schemathesis' coverage
#: and example phases, which do not depend on this. Keep the module under ~90 s as
#: operations are added (lower this rather than filter operations out).
MAX_EXAMPLES = 8


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api(
    case: schemathesis.Case, api_url: str, hashes: dict[str, str], fuzzed_database: str
) -> None:
    if case.path_parameters and case.path_parameters.get("hash") in hashes:
        case.path_parameters["hash"] = hashes[case.path_parameters["hash"]]
    try:
        response = case.call_and_validate(base_url=api_url)
    finally:
        if SELF_REMOVING.search(case.operation.path):
            _restore_workspace_admin(fuzzed_database)
    sent = response.request.headers.get("Authorization", "")
    # 401 is an accepted answer (a negative case drops the token), but never to the valid
    # tokens the auth above sends: that would mean the fuzzing stopped at the door.
    assert not (sent in VALID_AUTH and response.status_code == 401), (
        f"{case.operation.label} refused a valid token: {response.text[:300]}"
    )
