"""Webhooks end to end, through a real HTTP server on 127.0.0.1 (uvicorn, real Postgres and
workers): a webhook-scoped token runs its one script or flow (path, hash, sync, async,
``?token=``) and follows the job it started; the body raw, wrapped, as a form or text,
chosen headers and query parameters as arguments; a result that sets the answer's status,
content type and headers; the job records that a webhook started it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import served_settings

WS = "main"

#: Echoes what it was given, to see how the request became arguments.
ECHO = """\
def main(a: int = 0, name: str = "", body=None, raw_string: str = "", x_signature: str = "",
         q: str = ""):
    return {"a": a, "name": name, "body": body, "raw_string": raw_string,
            "x_signature": x_signature, "q": q}
"""
#: Returns what it is given as its result: a result that sets the HTTP answer.
ANSWER = "def main(out: dict):\n    return out\n"
ADD = "def main(x: int):\n    return x + 1\n"


@dataclass
class Served:
    url: str
    http: httpx.Client  # as the admin, with an API token in the Authorization header
    session: str  # the admin's login token (the web UI's cookie)

    def save(self, path: str, content: str) -> str:
        """Save a version and wait until it can run; its hash."""
        r = self.http.post(
            f"/w/{WS}/scripts/create",
            json={"path": path, "content": content, "language": "python3"},
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 120
        while True:
            status = self.http.get(f"/w/{WS}/scripts/deployment_status/h/{r.text}").json()
            if status["status"] != "locking":
                assert status["status"] == "deployed", status
                return r.text
            assert time.monotonic() < deadline, status
            time.sleep(0.05)

    def token(self, *scopes: str) -> str:
        r = self.http.post(
            "/users/tokens/create", json={"label": "webhook", "scopes": list(scopes)}
        )
        assert r.status_code == 201, r.text
        return r.text


@pytest.fixture(scope="module")
def served(pg_cluster: PgCluster, served_platform: Any) -> Iterator[Served]:
    with served_settings(pg_cluster, SUPERADMIN_SECRET, "gm-webhooks-") as settings:
        server = served_platform(settings)
        with server as url:
            admin = server.new_admin
            assert admin is not None
            login = httpx.post(
                f"{url}/api/auth/login", json={"email": admin.email, "password": admin.password}
            )
            assert login.status_code == 200, login.text
            session = login.text
            created = httpx.post(
                f"{url}/api/users/tokens/create",
                json={"label": "tests"},
                headers={"Authorization": f"Bearer {session}"},
            )
            assert created.status_code == 201, created.text
            with httpx.Client(
                base_url=f"{url}/api",
                headers={"Authorization": f"Bearer {created.text}"},
                timeout=60,
            ) as http:
                yield Served(url, http, session)


def unique(name: str) -> str:
    return f"u/admin/{name}_{uuid.uuid4().hex[:6]}"


def anonymous(served: Served) -> httpx.Client:
    """A client with no credentials of its own: each request brings its token."""
    return httpx.Client(base_url=f"{served.url}/api", timeout=60)


def wait_result(client: httpx.Client, job_id: str, token: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        r = client.get(
            f"/w/{WS}/jobs_u/completed/get_result_maybe/{job_id}", params={"token": token}
        )
        assert r.status_code == 200, r.text
        if r.json()["completed"]:
            return r.json()["result"]
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)


def flow(served: Served, path: str, content: str, **inputs: str) -> None:
    transforms = {k: {"type": "javascript", "expr": v} for k, v in inputs.items()}
    value = {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": content,
                    "input_transforms": transforms,
                },
            }
        ]
    }
    r = served.http.post(
        f"/w/{WS}/flows/create", json={"path": path, "summary": "", "value": value}
    )
    assert r.status_code == 201, r.text


# -- webhook-scoped tokens -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["jobs:run:scripts:{path}", "run:script/{path}"])
def test_a_script_token_runs_that_script_only(served: Served, form: str) -> None:
    path, other = unique("hook"), unique("other")
    hash_ = served.save(path, ADD)
    other_hash = served.save(other, ADD)
    token = served.token(form.format(path=path))
    with anonymous(served) as client:
        # Sync by path with ?token=, by hash, and with the token in the header.
        r = client.post(
            f"/w/{WS}/jobs/run_wait_result/p/{path}", params={"token": token}, json={"x": 1}
        )
        assert (r.status_code, r.json()) == (200, 2)
        r = client.post(f"/w/{WS}/jobs/run_wait_result/h/{hash_}?token={token}", json={"x": 2})
        assert (r.status_code, r.json()) == (200, 3)
        # Async: the job id, then its result with the same token.
        r = client.post(
            f"/w/{WS}/jobs/run/p/{path}",
            json={"x": 10},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        assert wait_result(client, r.text, token) == 11
        job = client.get(f"/w/{WS}/jobs_u/get/{r.text}", params={"token": token})
        assert job.status_code == 200 and job.json()["trigger_kind"] == "webhook"
        # Everything else: 403, naming what is missing.
        for method, url, body in [
            ("POST", f"/w/{WS}/jobs/run/p/{other}", {"x": 1}),
            ("POST", f"/w/{WS}/jobs/run_wait_result/h/{other_hash}", {"x": 1}),
            ("POST", f"/w/{WS}/jobs/run/f/{path}", {}),
            ("POST", f"/w/{WS}/jobs/run/preview", {"content": ADD, "language": "python3"}),
            ("GET", f"/w/{WS}/scripts/get/p/{path}", None),
            ("GET", f"/w/{WS}/jobs/list", None),
        ]:
            r = client.request(method, url, params={"token": token}, json=body)
            assert r.status_code == 403, (url, r.text)
            assert "do not allow" in r.text


def test_a_flow_token_runs_that_flow_only(served: Served) -> None:
    path = unique("flow")
    flow(served, path, "def main(x: int):\n    return x * 2\n", x="flow_input.x")
    script = unique("script")
    served.save(script, ADD)
    token = served.token(f"jobs:run:flows:{path}")
    with anonymous(served) as client:
        r = client.post(f"/w/{WS}/jobs/run_wait_result/f/{path}?token={token}", json={"x": 21})
        assert (r.status_code, r.json()) == (200, 42)
        r = client.post(f"/w/{WS}/jobs/run/f/{path}?token={token}", json={"x": 1})
        assert r.status_code == 201 and wait_result(client, r.text, token) == 2
        # The flow job records that a webhook started it.
        job = client.get(f"/w/{WS}/jobs_u/get/{r.text}?token={token}").json()
        assert (job["trigger_kind"], job["trigger"]) == ("webhook", None)
        r = client.post(f"/w/{WS}/jobs/run/p/{script}?token={token}", json={"x": 1})
        assert r.status_code == 403, r.text
    # Scopes of no known form are refused when the token is made.
    r = served.http.post("/users/tokens/create", json={"scopes": ["run:job/f/a"]})
    assert r.status_code == 400 and "invalid scope" in r.text


# -- the body ------------------------------------------------------------------------------


def test_the_request_becomes_arguments(served: Served) -> None:
    path = unique("echo")
    served.save(path, ECHO)
    url = f"/w/{WS}/jobs/run_wait_result/p/{path}"
    http = served.http
    signed = '{"a": 1,  "name": "Ada"}'
    r = http.post(
        url,
        params={"raw": "true", "include_header": "X-Signature", "include_query": "q", "q": "v"},
        content=signed,
        headers={"Content-Type": "application/json", "X-Signature": "sha256=abc"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "a": 1,
        "name": "Ada",
        "body": None,
        "raw_string": signed,
        "x_signature": "sha256=abc",
        "q": "v",
    }
    # A value that is not an object is wrapped; wrap_body wraps an object too.
    assert http.post(url, json=[1, 2]).json()["body"] == [1, 2]
    assert http.post(url, params={"wrap_body": "true"}, json={"k": 1}).json()["body"] == {"k": 1}
    # A form's fields are strings; text is raw_string.
    assert http.post(url, data={"name": "Bob"}).json()["name"] == "Bob"
    text = http.post(url, content="plain", headers={"Content-Type": "text/plain"})
    assert text.json()["raw_string"] == "plain"
    # Refused: a type the endpoints do not take, a body not matching the schema, a bad flag.
    octets = http.post(url, content=b"\x00", headers={"Content-Type": "application/octet-stream"})
    assert octets.status_code == 415 and "application/octet-stream" in octets.text
    assert http.post(url, json={"a": "x"}).status_code == 400
    assert http.post(url, params={"raw": "maybe"}, json={}).status_code == 400


# -- the answer ----------------------------------------------------------------------------


def test_a_result_sets_the_status_content_type_and_headers(served: Served) -> None:
    path = unique("answer")
    served.save(path, ANSWER)
    url = f"/w/{WS}/jobs/run_wait_result/p/{path}"
    out = {
        "windmill_status_code": 201,
        "windmill_content_type": "text/html",
        "windmill_headers": {"X-Hook": "yes"},
        "result": "<b>made</b>",
    }
    r = served.http.post(url, json={"out": out})
    assert r.status_code == 201, r.text
    assert r.text == "<b>made</b>" and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-hook"] == "yes" and r.headers["x-job-id"]
    r = served.http.post(url, json={"out": {"windmill_status_code": 401}})
    assert (r.status_code, r.content) == (401, b"")
    # A status no answer can have: the result as it is.
    bad = {"windmill_status_code": 42, "result": 1}
    r = served.http.post(url, json={"out": bad})
    assert (r.status_code, r.json()) == (200, bad)
    # Flows too.
    flow_path = unique("answer_flow")
    flow(served, flow_path, ANSWER, out="flow_input.out")
    r = served.http.post(
        f"/w/{WS}/jobs/run_wait_result/f/{flow_path}",
        json={"out": {"windmill_status_code": 202, "result": {"ok": True}}},
    )
    assert (r.status_code, r.json()) == (202, {"ok": True})


# -- what started a run --------------------------------------------------------------------


def test_a_job_records_that_a_webhook_started_it(served: Served) -> None:
    path = unique("trigger")
    served.save(path, ADD)
    by_token = served.http.post(f"/w/{WS}/jobs/run/p/{path}", json={"x": 1}).text
    with anonymous(served) as client:
        client.cookies.set("token", served.session)
        by_ui = client.post(f"/w/{WS}/jobs/run/p/{path}", json={"x": 1}).text
        preview = client.post(
            f"/w/{WS}/jobs/run/preview",
            json={"content": ADD, "language": "python3", "args": {"x": 1}},
            headers={"Authorization": f"Bearer {served.session}"},
        ).text
    kinds = {}
    for name, job_id in [("token", by_token), ("ui", by_ui), ("preview", preview)]:
        job = served.http.get(f"/w/{WS}/jobs_u/get/{job_id}").json()
        kinds[name] = (job["trigger_kind"], job["trigger"])
    assert kinds == {
        "token": ("webhook", None),
        "ui": (None, None),
        "preview": (None, None),
    }
