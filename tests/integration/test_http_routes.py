"""HTTP routes (``/api/w/{ws}/http_triggers/...``, called at ``/api/r/...``) for real: real
Postgres and workers, requests over a real socket (uvicorn on 127.0.0.1) and through the
app; each authentication mode with good and bad credentials, sync and async, a result that
sets the answer, and a change made on one server seen by a second one on the same database
without a restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from gristmill.api.app import create_app
from gristmill.auth.tokens import create_api_token
from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.server.platform import Platform
from gristmill.testing.pytest_plugin import started_platform

WS = "main"

#: Tells what it was given: the body's fields and the request (wm_trigger).
ECHO = """\
def main(wm_trigger: dict, name: str = "", body=None, raw_string: str = ""):
    http = wm_trigger["http"]
    return {"params": http["params"], "method": http["method"], "query": http["query"],
            "name": name, "body": body, "raw_string": raw_string,
            "authorization": http["headers"].get("authorization")}
"""
#: Its argument is its result: a result that sets the HTTP answer.
ANSWER = "def main(out: dict):\n    return out\n"
#: A flow taking the request: its result is the path parameter and a body field.
FLOW = {
    "summary": "route",
    "value": {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(id: str, name: str):\n    return f'{id}:{name}'\n",
                    "input_transforms": {
                        "id": {
                            "type": "javascript",
                            "expr": "flow_input.wm_trigger.http.params.id",
                        },
                        "name": {"type": "javascript", "expr": "flow_input.name"},
                    },
                },
            }
        ]
    },
    "schema": {
        "type": "object",
        "properties": {"wm_trigger": {"type": "object"}, "name": {"type": "string"}},
        "required": ["name"],
    },
}
FAIL = "def main():\n    raise ValueError('no luck')\n"


def client(platform: Platform, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform)),
        base_url="http://gristmill.test/api",
        headers=headers,
        timeout=60,
    )


async def add_user(platform: Platform, name: str, role: str) -> str:
    """A member of ``main``; an API token of theirs."""
    email = f"{name}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            Q["insert_user"],
            {"email": email, "username": name, "password_hash": None, "super_admin": False},
        )
        await conn.execute(
            Q["add_member"], {"workspace_id": WS, "email": email, "role": role, "added_by": "t"}
        )
        return await create_api_token(conn, email=email, label="t", expiration=None, scopes=None)


class Env:
    def __init__(self, platform: Platform, alice: httpx.AsyncClient, alice_token: str) -> None:
        self.platform = platform
        self.alice = alice  # an admin of main: she saves the routes and owns them
        self.alice_token = alice_token
        self.bob_token = ""  # a developer, who cannot see alice's items
        self.url = ""  # the real server's /api

    async def script(self, name: str, content: str) -> str:
        path = f"u/alice/{name}_{uuid.uuid4().hex[:6]}"
        r = await self.alice.post(
            f"/w/{WS}/scripts/create",
            json={"path": path, "content": content, "language": "python3"},
        )
        assert r.status_code == 201, r.text
        return path

    async def resource(self, value: dict[str, Any]) -> str:
        path = f"u/alice/auth_{uuid.uuid4().hex[:6]}"
        r = await self.alice.post(
            f"/w/{WS}/resources/create",
            json={"path": path, "value": value, "resource_type": "any"},
        )
        assert r.status_code == 201, r.text
        return path

    async def route(self, script_path: str, route_path: str, **fields: Any) -> httpx.Response:
        body = {
            "path": f"u/alice/route_{uuid.uuid4().hex[:6]}",
            "script_path": script_path,
            "route_path": route_path,
            "http_method": "post",
            "is_flow": False,
            **fields,
        }
        return await self.alice.post(f"/w/{WS}/http_triggers/create", json=body)


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest_asyncio.fixture(scope="module")
async def env(platform: Platform) -> AsyncIterator[Env]:
    token = await add_user(platform, "alice", "admin")
    async with client(platform, token) as alice:
        e = Env(platform, alice, token)
        e.bob_token = await add_user(platform, "bob", "developer")
        # A real server on 127.0.0.1 in front of the same platform.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(create_app(platform), log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:  # uvicorn says it listens only by this flag
            assert not serving.done()
            await asyncio.sleep(0.01)
        e.url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        try:
            yield e
        finally:
            server.should_exit = True
            await serving
            sock.close()


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def served(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """The answer of a route, once the server's table has it (a change is seen within
    moments: the notification's trip)."""

    async def call() -> httpx.Response | None:
        r = await http.request(method, url, **kw)
        return None if r.status_code == 404 and "no HTTP route" in r.text else r

    return await until(call)


async def test_crud_and_bad_input(env: Env) -> None:
    api = env.alice
    script = await env.script("echo", ECHO)
    shape = f"crud{uuid.uuid4().hex[:6]}"
    r = await env.route(script, f"/{shape}/:id/", request_type="async")
    assert r.status_code == 201, r.text
    first = r.text
    got = (await api.get(f"/w/{WS}/http_triggers/get/{first}")).json()
    assert got["route_path"] == f"{shape}/:id"
    assert (got["request_type"], got["is_async"], got["http_method"]) == ("async", True, "post")
    assert got["authentication_method"] == "none" and got["enabled"] is True
    listed = (await api.get(f"/w/{WS}/http_triggers/list", params={"path": script})).json()
    assert [t["path"] for t in listed] == [first]

    # The same URLs and method: refused, naming the route they collide with.
    r = await env.route(script, f"{shape}/:other")
    assert r.status_code == 400 and first in r.text, r.text
    exists = await api.post(
        f"/w/{WS}/http_triggers/route_exists",
        json={"route_path": f"{shape}/:x", "http_method": "post"},
    )
    assert exists.json() is True
    for other in ({"http_method": "get"}, {"workspaced_route": True}, {"trigger_path": first}):
        r = await api.post(
            f"/w/{WS}/http_triggers/route_exists",
            json={"route_path": f"{shape}/:x", "http_method": "post", **other},
        )
        assert r.json() is False, other
    # Another method, or workspaced (/api/r/main/...): apart.
    assert (await env.route(script, f"{shape}/:id", http_method="get")).status_code == 201
    assert (await env.route(script, f"{shape}/:id", workspaced_route=True)).status_code == 201
    # A disabled one may share the route; enabling it is refused.
    r = await env.route(script, f"{shape}/:id", mode="disabled")
    assert r.status_code == 201, r.text
    r = await api.post(f"/w/{WS}/http_triggers/setenabled/{r.text}", json={"enabled": True})
    assert r.status_code == 400 and first in r.text, r.text
    # Updating a route keeps its own route (it does not collide with itself).
    r = await api.post(
        f"/w/{WS}/http_triggers/update/{first}",
        json={**got, "path": first, "route_path": f"{shape}/:renamed"},
    )
    assert r.status_code == 200, r.text

    bad: list[tuple[dict[str, Any], str]] = [
        ({"route_path": f"{shape}/{{id}}"}, ":name"),
        ({"route_path": "a b"}, "not a route"),
        ({"route_path": "a//b"}, "not a route"),
        ({"route_path": "x/:a/:a"}, "twice"),
        ({"route_path": "x", "http_method": "head"}, "http_method"),
        ({"route_path": "x", "authentication_method": "api_key"}, "authentication_resource_path"),
        (
            {
                "route_path": "x",
                "authentication_method": "api_key",
                "authentication_resource_path": "u/alice/nothing_here",
            },
            "no resource",
        ),
        ({"route_path": "x", "authentication_method": "custom_script"}, "not supported"),
        ({"route_path": "x", "request_type": "sync_sse"}, "sync_sse"),
        ({"route_path": "x", "is_static_website": True}, "static"),
    ]
    for fields, words in bad:
        r = await env.route(script, **fields)  # type: ignore[arg-type]
        assert r.status_code == 400 and words in r.text, (fields, r.text)
    lacking = await env.resource({"api_key_header": "X-Key"})
    r = await env.route(
        script,
        "x",
        authentication_method="api_key",
        authentication_resource_path=lacking,
    )
    assert r.status_code == 400 and "api_key_secret" in r.text, r.text
    r = await env.route("u/alice/no_such_script", "x")
    assert r.status_code == 400 and "script_path" in r.text, r.text


def _sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_each_authentication_mode_over_a_real_socket(env: Env) -> None:
    script = await env.script("echo", ECHO)
    base = f"auth{uuid.uuid4().hex[:6]}"
    key = await env.resource({"api_key_header": "X-Api-Key", "api_key_secret": "k-1"})
    basic = await env.resource({"username": "joe", "password": "pw:1"})
    signed = await env.resource(
        {
            "signature_providers": "Custom",
            "secret_key": "s3cret",
            "authentication_config": {
                "algorithm": "sha256",
                "encoding": "hex",
                "signature_header_name": "X-Signature",
                "signature_prefix": "sha256=",
            },
        }
    )
    github = await env.resource({"signature_providers": "Github", "secret_key": "gh"})
    modes: dict[str, dict[str, Any]] = {
        "none": {},
        "windmill": {},
        "api_key": {"authentication_resource_path": key},
        "basic_http": {"authentication_resource_path": basic},
        "signature": {"authentication_resource_path": signed},
        "github": {"authentication_resource_path": github},
    }
    for mode, fields in modes.items():
        method = "signature" if mode == "github" else mode
        r = await env.route(script, f"{base}/{mode}/:id", authentication_method=method, **fields)
        assert r.status_code == 201, (mode, r.text)

    body = b'{"name": "ann"}'
    json_type = {"content-type": "application/json"}
    basic_ok = "Basic " + base64.b64encode(b"joe:pw:1").decode()
    basic_bad = "Basic " + base64.b64encode(b"joe:nope").decode()
    cases: list[tuple[str, dict[str, str], int]] = [
        ("none", {}, 200),
        ("windmill", {}, 401),
        ("windmill", {"Authorization": "Bearer not-a-token"}, 401),
        ("windmill", {"Authorization": f"Bearer {env.bob_token}"}, 403),
        ("windmill", {"Authorization": f"Bearer {env.alice_token}"}, 200),
        ("api_key", {}, 401),
        ("api_key", {"X-Api-Key": "wrong"}, 403),
        ("api_key", {"X-Api-Key": "k-1"}, 200),
        ("basic_http", {}, 401),
        ("basic_http", {"Authorization": basic_bad}, 401),
        ("basic_http", {"Authorization": basic_ok}, 200),
        ("signature", {}, 401),
        ("signature", {"X-Signature": _sign("wrong", body)}, 401),
        ("signature", {"X-Signature": _sign("s3cret", body)}, 200),
        ("github", {"X-Hub-Signature-256": _sign("s3cret", body)}, 401),
        ("github", {"X-Hub-Signature-256": _sign("gh", body)}, 200),
    ]
    async with httpx.AsyncClient(base_url=env.url, timeout=60) as http:
        for mode, headers, status in cases:
            r = await served(
                http,
                "POST",
                f"/r/{base}/{mode}/42?x=1",
                content=body,
                headers={**json_type, **headers},
            )
            assert r.status_code == status, (mode, headers, r.status_code, r.text)
            if status == 200:
                out = r.json()
                assert out["params"] == {"id": "42"} and out["name"] == "ann", out
                assert out["method"] == "post" and out["query"] == {"x": "1"}, out
                assert r.headers["x-job-id"]
                # A caller's Gristmill token never reaches the script (it runs as the owner).
                expected = None if mode == "windmill" else headers.get("Authorization")
                assert out["authorization"] == expected, out
        r = await http.post(f"/r/{base}/basic_http/42", content=body, headers=json_type)
        assert r.headers["www-authenticate"].startswith("Basic"), r.headers
        # Callable from other sites' pages: a preflight, and the answer's origin header.
        r = await http.options(
            f"/r/{base}/none/1",
            headers={"Origin": "https://elsewhere.test", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 204 and "POST" in r.headers["access-control-allow-methods"]
        r = await http.post(f"/r/{base}/none/1", content=body, headers=json_type)
        assert r.headers["access-control-allow-origin"] == "*", r.headers
        # allowed_origins: only those pages may read the answer.
        r = await env.route(script, f"{base}/origins", allowed_origins=["https://OK.test"])
        assert r.status_code == 201, r.text
        for origin, expected in (("https://ok.test", "https://ok.test"), ("https://no.test", None)):
            r = await served(
                http, "POST", f"/r/{base}/origins", json={}, headers={"Origin": origin}
            )
            assert r.status_code == 200, r.text
            assert r.headers.get("access-control-allow-origin") == expected, (origin, r.headers)
            r = await http.options(
                f"/r/{base}/origins",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert r.headers.get("access-control-allow-origin") == expected, (origin, r.headers)

        # A secret its owner can no longer read: refused, saying so, recorded on the route.
        gone = await env.resource({"api_key_header": "X-Api-Key", "api_key_secret": "k-2"})
        r = await env.route(
            script,
            f"{base}/gone",
            authentication_method="api_key",
            authentication_resource_path=gone,
        )
        assert r.status_code == 201, r.text
        route = r.text
        assert (await env.alice.delete(f"/w/{WS}/resources/delete/{gone}")).status_code == 200
        r = await served(http, "POST", f"/r/{base}/gone", json={}, headers={"X-Api-Key": "k-2"})
        assert r.status_code == 403 and gone in r.text, r.text
        got = (await env.alice.get(f"/w/{WS}/http_triggers/get/{route}")).json()
        assert gone in got["error"], got


async def test_sync_async_answers_and_args(env: Env) -> None:
    echo = await env.script("echo", ECHO)
    answer = await env.script("answer", ANSWER)
    fail = await env.script("fail", FAIL)
    base = f"run{uuid.uuid4().hex[:6]}"
    for route, script, fields in (
        ("async/:id", echo, {"request_type": "async"}),
        ("answer", answer, {}),
        ("fail", fail, {}),
        ("wrapped/:id", echo, {"wrap_body": True, "raw_string": True}),
        ("items/:id", echo, {"is_async": False}),
        ("items/new", answer, {}),
        ("ws/:id", echo, {"workspaced_route": True}),
    ):
        r = await env.route(script, f"{base}/{route}", **fields)
        assert r.status_code == 201, (route, r.text)
    api = client(env.platform)
    async with api:
        r = await served(api, "POST", f"/r/{base}/async/7", json={"name": "x"})
        assert r.status_code == 201, r.text
        job = r.text

        async def done() -> Any:
            got = await env.alice.get(f"/w/{WS}/jobs_u/completed/get_result_maybe/{job}")
            return got.json() if got.json().get("completed") else None

        result = (await until(done))["result"]
        assert result["params"] == {"id": "7"} and result["name"] == "x", result
        info = (await env.alice.get(f"/w/{WS}/jobs_u/get/{job}")).json()
        assert info["trigger_kind"] == "http", info

        out = {
            "windmill_status_code": 202,
            "windmill_headers": {"X-Custom": "yes"},
            "result": {"ok": True},
        }
        r = await served(api, "POST", f"/r/{base}/answer", json={"out": out})
        assert (r.status_code, r.json(), r.headers["x-custom"]) == (202, {"ok": True}, "yes")
        # A literal segment wins over a parameter at the same place.
        r = await served(api, "POST", f"/r/{base}/items/new", json={"out": {"a": 1}})
        assert (r.status_code, r.json()) == (200, {"a": 1}), r.text
        r = await served(api, "POST", f"/r/{base}/fail", json={})
        assert r.status_code == 422 and "no luck" in r.text, r.text
        r = await served(api, "POST", f"/r/{base}/wrapped/1", json={"name": "w"})
        out = r.json()
        assert out["body"] == {"name": "w"} and out["name"] == "", out
        assert out["raw_string"] == '{"name":"w"}', out
        # Arguments the script does not take: 400, nothing queued.
        async with env.platform.db.connection() as conn:
            before = await (await conn.execute("SELECT count(*) FROM job")).fetchone()
        r = await served(api, "POST", f"/r/{base}/items/1", json={"nope": 1})
        assert r.status_code == 400 and "nope" in r.text, r.text
        async with env.platform.db.connection() as conn:
            after = await (await conn.execute("SELECT count(*) FROM job")).fetchone()
        assert before == after
        # A workspaced route lives under its workspace only.
        r = await served(api, "POST", f"/r/{WS}/{base}/ws/3", json={"name": "w"})
        assert r.status_code == 200 and r.json()["params"] == {"id": "3"}, r.text
        assert (await api.post(f"/r/{base}/ws/3", json={})).status_code == 404
        # A flow, given the request.
        flow = f"u/alice/flow_{uuid.uuid4().hex[:6]}"
        r = await env.alice.post(f"/w/{WS}/flows/create", json={"path": flow, **FLOW})
        assert r.status_code == 201, r.text
        r = await env.route(flow, f"{base}/flow/:id", is_flow=True)
        assert r.status_code == 201, r.text
        r = await served(api, "POST", f"/r/{base}/flow/9", json={"name": "f"})
        assert (r.status_code, r.json()) == (200, "9:f"), r.text
        # A runnable that is gone: 404, and the route says why.
        gone = await env.script("gone", ANSWER)
        r = await env.route(gone, f"{base}/gone")
        assert r.status_code == 201, r.text
        route = r.text
        r = await env.alice.post(f"/w/{WS}/scripts/archive/p/{gone}")
        assert r.status_code == 200, r.text
        r = await served(api, "POST", f"/r/{base}/gone", json={"out": {}})
        assert r.status_code == 404 and gone in r.text, r.text
        got = (await env.alice.get(f"/w/{WS}/http_triggers/get/{route}")).json()
        assert gone in got["error"], got
        r = await api.post(f"/r/{base}/nothing", json={})
        assert r.status_code == 404, r.text
        r = await api.get(f"/r/{base}/items/1")
        assert r.status_code == 405 and r.headers["allow"] == "POST", r.text


async def test_a_change_is_seen_by_a_second_server(env: Env, module_settings: Settings) -> None:
    script = await env.script("echo", ECHO)
    route = f"second{uuid.uuid4().hex[:6]}/:id"
    async with started_platform(module_settings) as other, client(other) as there:
        r = await env.route(script, route)
        assert r.status_code == 201, r.text
        path = r.text
        url = f"/r/{route.replace(':id', '5')}"
        r = await served(there, "POST", url, json={})
        assert r.status_code == 200 and r.json()["params"] == {"id": "5"}, r.text
        r = await env.alice.post(
            f"/w/{WS}/http_triggers/setenabled/{path}", json={"enabled": False}
        )
        assert r.status_code == 200, r.text

        async def gone() -> bool:
            return (await there.post(url, json={})).status_code == 404

        await until(gone)
    with contextlib.suppress(Exception):
        await env.alice.delete(f"/w/{WS}/http_triggers/delete/{path}")
