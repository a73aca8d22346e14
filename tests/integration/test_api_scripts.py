"""Scripts through the REST API, against a real Postgres."""

from __future__ import annotations

import re

import httpx
import pytest


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): they all save at u/admin/hello, and one lists a workspace's scripts.
@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


HELLO = '''\
def main(name: str, times: int = 1):
    """Say hello.

    Args:
        name (str): who to greet
    """
    return ", ".join([f"hello {name}"] * times)
'''


async def create(api: httpx.AsyncClient, workspace: str, **body: object) -> httpx.Response:
    payload = {"path": "u/admin/hello", "content": HELLO, "language": "python3", **body}
    return await api.post(f"/w/{workspace}/scripts/create", json=payload)


async def test_create_infers_the_schema_and_returns_a_hash(
    api: httpx.AsyncClient, workspace: str
) -> None:
    r = await create(api, workspace)
    assert r.status_code == 201, r.text
    assert re.fullmatch(r"[0-9a-f]{16}", r.text)
    script = (await api.get(f"/w/{workspace}/scripts/get/p/u/admin/hello")).json()
    assert script["hash"] == r.text
    assert script["language"] == "python3"
    schema = script["schema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert list(schema["properties"]) == ["name", "times"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["name"]["description"] == "who to greet"
    assert schema["properties"]["times"] == {"type": "integer", "description": "", "default": 1}


async def test_a_schema_sent_by_the_client_is_kept(api: httpx.AsyncClient, workspace: str) -> None:
    """Windmill's clients compute the schema themselves."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"name": {"type": "string", "description": "custom"}},
        "required": ["name"],
    }
    assert (await create(api, workspace, schema=schema)).status_code == 201
    stored = (await api.get(f"/w/{workspace}/scripts/get/p/u/admin/hello")).json()["schema"]
    assert stored == schema


async def test_the_language_alias_is_stored_as_the_runtime_name(
    api: httpx.AsyncClient, workspace: str
) -> None:
    assert (await create(api, workspace, language="python")).status_code == 201
    assert (await api.get(f"/w/{workspace}/scripts/get/p/u/admin/hello")).json()[
        "language"
    ] == "python3"


async def test_versions_need_the_parent_hash_and_form_a_history(
    api: httpx.AsyncClient, workspace: str
) -> None:
    first = (await create(api, workspace)).text
    conflict = await create(api, workspace, content=HELLO + "\n# v2\n")
    assert conflict.status_code == 400
    assert f"Path conflict for u/admin/hello with non-archived hash {first}" in conflict.text
    second = await create(api, workspace, content=HELLO + "\n# v2\n", parent_hash=first)
    assert second.status_code == 201, second.text
    history = (await api.get(f"/w/{workspace}/scripts/history/p/u/admin/hello")).json()
    assert [h["script_hash"] for h in history] == [second.text, first]
    old = (await api.get(f"/w/{workspace}/scripts/get/h/{first}")).json()
    assert old["archived"] is True
    new = (await api.get(f"/w/{workspace}/scripts/get/p/u/admin/hello")).json()
    assert new["hash"] == second.text and new["parent_hashes"] == [first]
    stale = await create(api, workspace, content=HELLO + "\n# v3\n", parent_hash=first)
    assert stale.status_code == 400 and "Path conflict" in stale.text


async def test_unknown_parent_hash_is_refused(api: httpx.AsyncClient, workspace: str) -> None:
    r = await create(api, workspace, parent_hash="0123456789abcdef")
    assert r.status_code == 400
    assert "parent hash 0123456789abcdef does not exist" in r.text


async def test_raw_exists_and_list(api: httpx.AsyncClient, workspace: str) -> None:
    hash_ = (await create(api, workspace)).text
    assert (await api.get(f"/w/{workspace}/scripts/raw/p/u/admin/hello.py")).text == HELLO
    assert (await api.get(f"/w/{workspace}/scripts/raw/h/{hash_}")).text == HELLO
    assert (await api.get(f"/w/{workspace}/scripts/exists/p/u/admin/hello")).json() is True
    assert (await api.get(f"/w/{workspace}/scripts/exists/p/u/admin/nope")).json() is False
    # A script in a folder needs the folder (as in Windmill).
    assert (
        await api.post(f"/w/{workspace}/folders/create", json={"name": "team"})
    ).status_code == 201
    await create(api, workspace, path="f/team/other")
    listed = (await api.get(f"/w/{workspace}/scripts/list")).json()
    assert {s["path"] for s in listed} == {"u/admin/hello", "f/team/other"}
    only = (await api.get(f"/w/{workspace}/scripts/list", params={"path_start": "f/"})).json()
    assert [s["path"] for s in only] == ["f/team/other"]


async def test_syntax_error_is_refused_with_its_position(
    api: httpx.AsyncClient, workspace: str
) -> None:
    r = await create(api, workspace, content="def main(x: int):\n    return x +\n")
    assert r.status_code == 400
    assert r.text.startswith("Bad request: ")
    assert "line 2" in r.text
    assert (await api.get(f"/w/{workspace}/scripts/exists/p/u/admin/hello")).json() is False


async def test_a_script_without_main_is_refused(api: httpx.AsyncClient, workspace: str) -> None:
    r = await create(api, workspace, content="x = 1\n")
    assert r.status_code == 400
    assert "main" in r.text


async def test_unknown_language_lists_the_available_ones(
    api: httpx.AsyncClient, workspace: str
) -> None:
    r = await create(api, workspace, language="cobol")
    assert r.status_code == 400
    assert "unknown language 'cobol'" in r.text and "python3" in r.text


async def test_invalid_path_is_refused(api: httpx.AsyncClient, workspace: str) -> None:
    r = await create(api, workspace, path="hello")
    assert r.status_code == 400
    assert "u/<user>/<name>" in r.text


async def test_non_json_body_is_a_clear_400(api: httpx.AsyncClient, workspace: str) -> None:
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.text


async def test_missing_field_names_it(api: httpx.AsyncClient, workspace: str) -> None:
    r = await api.post(
        f"/w/{workspace}/scripts/create", json={"path": "u/admin/x", "language": "python3"}
    )
    assert r.status_code == 400
    assert "content" in r.text


async def test_unknown_script_and_workspace_are_404(api: httpx.AsyncClient, workspace: str) -> None:
    r = await api.get(f"/w/{workspace}/scripts/get/p/u/admin/nope")
    assert r.status_code == 404 and r.text == "Not found: Script not found at name u/admin/nope"
    r = await api.get("/w/other/scripts/list")
    assert r.status_code == 404 and "workspace 'other' does not exist" in r.text
    r = await api.get(f"/w/{workspace}/scripts/get/h/zz")
    assert r.status_code == 400 and "not a script hash" in r.text


async def test_the_schema_keeps_the_signature_order(api: httpx.AsyncClient, workspace: str) -> None:
    """Stored as json, not jsonb (which would sort the properties by name)."""
    code = "def main(zeta: int, alpha: str, mid: float = 1.0):\n    return 1\n"
    await create(api, workspace, content=code)
    schema = (await api.get(f"/w/{workspace}/scripts/get/p/u/admin/hello")).json()["schema"]
    assert list(schema["properties"]) == ["zeta", "alpha", "mid"]
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/preview",
        json={"content": code, "language": "python3", "args": {"zeta": 1, "alpha": "a"}},
    )
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{r.headers['x-job-id']}")).json()
    assert job["type"] == "CompletedJob"


# -- the editor's live parse ---------------------------------------------------------------------


async def test_parse_schema_reads_the_parameters_without_saving(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/scripts/parse_schema",
        json={"language": "python", "content": "def main(name: str, times: int = 2):\n  pass\n"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["language"] == "python3"  # the alias resolved
    assert body["error"] is None
    assert body["schema"]["required"] == ["name"]
    times = body["schema"]["properties"]["times"]
    assert (times["type"], times["default"]) == ("integer", 2)


async def test_parse_schema_answers_a_syntax_error_with_its_line(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/scripts/parse_schema",
        json={"language": "python3", "content": "import os\n\ndef main(x: int:\n    pass\n"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schema"] is None
    assert body["error"]["line"] == 3
    assert body["error"]["message"]


async def test_parse_schema_refuses_what_cannot_be_parsed(api: httpx.AsyncClient) -> None:
    r = await api.post("/scripts/parse_schema", json={"language": "cobol", "content": ""})
    assert r.status_code == 400
    assert "cobol" in r.text
    r = await api.post(
        "/scripts/parse_schema", json={"language": "python3", "content": "def main(\x00): pass"}
    )
    assert r.status_code == 400
    assert "content" in r.text
    r = await api.post(
        "/scripts/parse_schema",
        json={"language": "python3", "content": "#" * (1024 * 1024 + 1)},
    )
    assert r.status_code == 413
    assert "GRISTMILL_MAX_SCRIPT_SIZE_KB" in r.text
