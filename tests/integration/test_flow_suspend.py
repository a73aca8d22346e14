"""Suspend (approval) steps through the API: real Postgres, real workers, real Python steps,
one platform for the module behind a real HTTP server (steps reach it with Windmill's Python
client). A flow suspends after its step, waits for approvals sent to the signed links (or by
an owner), and fails on a disapproval or its timeout (the monitor's sweep, every second
here)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import served_settings

WS = "main"
PASSWORD = "correct horse battery"

STEP = "def main():\n    return {'asked': True}\n"
ECHO = (
    "def main(resume, resumes, approvers):\n"
    "    return {'resume': resume, 'resumes': resumes, 'approvers': approvers}\n"
)
# The suspending step as a user writes it: Windmill's Python client, in the job.
CLIENT_STEP = """\
# requirements:
# wmill==1.850.0

import os

import wmill


def main():
    return {"job": os.environ["WM_JOB_ID"], "urls": wmill.get_resume_urls("ann")}
"""


def js(expr: str) -> dict[str, Any]:
    return {"type": "javascript", "expr": expr}


def module(id_: str, content: str, suspend: dict[str, Any] | None = None, **inputs: Any) -> Any:
    m: dict[str, Any] = {
        "id": id_,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": content,
            "input_transforms": inputs,
        },
    }
    if suspend is not None:
        m["suspend"] = suspend
    return m


def approval_flow(suspend: dict[str, Any]) -> dict[str, Any]:
    """Step ``a`` suspends; step ``b`` returns what it sees after the suspend."""
    return {
        "modules": [
            module("a", STEP, suspend),
            module(
                "b",
                ECHO,
                resume=js("resume"),
                resumes=js("resumes"),
                approvers=js("approvers"),
            ),
        ]
    }


@dataclass
class Served:
    url: str
    http: httpx.Client  # the superadmin
    anonymous: httpx.Client
    users: dict[str, httpx.Client]

    def run(self, value: dict[str, Any], client: httpx.Client | None = None) -> str:
        r = (client or self.http).post(
            f"/w/{WS}/jobs/run/preview_flow", json={"value": value, "args": {}}
        )
        assert r.status_code == 201, r.text
        return r.text

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/w/{WS}/jobs_u/get/{job_id}", params={"no_logs": True})
        assert r.status_code == 200, r.text
        return r.json()

    def suspended(self, flow_id: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the flow waits for events; its first module's status."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(flow_id)
            first = job["flow_status"]["modules"][0]
            if first["type"] == "WaitingForEvents":
                assert job["type"] == "QueuedJob"
                return first
            assert job["type"] == "QueuedJob", job
            assert time.monotonic() < deadline, job["flow_status"]
            time.sleep(0.05)

    def completed(self, flow_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(flow_id)
            if job["type"] == "CompletedJob":
                return job
            assert time.monotonic() < deadline, job["flow_status"]
            time.sleep(0.05)

    def links(self, step_job: str, resume_id: int, approver: str | None = None) -> dict[str, str]:
        """The signed links, as ``wmill.get_resume_urls`` asks for them; paths under /api."""
        params = {"approver": approver} if approver else {}
        r = self.http.get(f"/w/{WS}/jobs/resume_urls/{step_job}/{resume_id}", params=params)
        assert r.status_code == 200, r.text
        urls = r.json()
        return {k: v.split("/api", 1)[1] for k, v in urls.items() if k != "approvalPage"}


def _login(url: str, email: str) -> str:
    r = httpx.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture(scope="module")
def served(pg_cluster: PgCluster, served_platform: Any) -> Iterator[Served]:
    # The monitor (zombies, stalled flows, suspended flows timing out) runs every
    # max(1, zombie_job_timeout_s / 4) seconds: every second here.
    with served_settings(
        pg_cluster, SUPERADMIN_SECRET, "gm-suspend-", zombie_job_timeout_s=4
    ) as settings:
        server = served_platform(settings)
        clients: list[httpx.Client] = []
        try:
            with server as url:

                def client(token: str | None) -> httpx.Client:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    c = httpx.Client(base_url=f"{url}/api", headers=headers, timeout=60)
                    clients.append(c)
                    return c

                admin = client(SUPERADMIN_SECRET)
                users: dict[str, httpx.Client] = {}
                for name in ("alice", "bob", "carol"):
                    email = f"{name}@example.com"
                    r = admin.post("/users/create", json={"email": email, "password": PASSWORD})
                    assert r.status_code == 201, r.text
                    r = admin.post(f"/w/{WS}/workspaces/add_user", json={"email": email})
                    assert r.status_code == 200, r.text
                    users[name] = client(_login(url, email))
                r = users["alice"].post(f"/w/{WS}/groups/create", json={"name": "approvers"})
                assert r.status_code in (200, 201), r.text
                for name in ("alice", "carol"):
                    r = users["alice"].post(
                        f"/w/{WS}/groups/adduser/approvers", json={"username": name}
                    )
                    assert r.status_code == 200, r.text
                yield Served(url, admin, client(None), users)
        finally:
            for c in clients:
                c.close()


def test_one_approval_resumes_and_the_next_step_sees_the_payload(served: Served) -> None:
    form = {"schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
    flow_id = served.run(approval_flow({"required_events": 1, "resume_form": form}))
    status = served.suspended(flow_id)
    assert status["count"] == 1 and status["job"]
    links = served.links(status["job"], 1, "ann")
    page = links["resume"].replace("/jobs_u/resume/", "/jobs_u/get_flow/")

    r = served.anonymous.get(page)  # the approval page: no account needed
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["job"]["id"] == flow_id and view["job"]["type"] == "QueuedJob"
    assert view["job"]["flow_status"]["modules"][0]["type"] == "WaitingForEvents"
    assert view["waiting"] is True and view["step_id"] == "a"
    assert view["required_events"] == 1 and view["resume_form"] == form
    assert view["approvers"] == [] and view["approvals"] == []
    assert view["suspend_until"] is not None

    r = served.anonymous.post(links["resume"], json={"ok": True})
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["success"] is True, job["result"]
    assert job["result"] == {
        "resume": {"ok": True},
        "resumes": [{"ok": True}],
        "approvers": ["ann"],
    }
    assert job["flow_status"]["modules"][0]["type"] == "Success"

    # The link worked once; the page now shows the approval, no longer waiting.
    r = served.anonymous.post(links["resume"], json={"ok": True})
    assert r.status_code == 400 and "not a suspended flow step" in r.text, r.text
    view = served.anonymous.get(page).json()
    assert view["waiting"] is False
    assert view["approvers"] == [{"resume_id": 1, "approver": "ann"}]
    assert [a["approved"] for a in view["approvals"]] == [True]


def test_two_approvals_by_two_approvers(served: Served) -> None:
    flow_id = served.run(approval_flow({"required_events": 2}))
    step = served.suspended(flow_id)["job"]
    assert served.suspended(flow_id)["count"] == 2
    payload = base64.urlsafe_b64encode(json.dumps({"n": 1}).encode()).decode().rstrip("=")
    r = served.anonymous.get(served.links(step, 1, "ann")["resume"] + f"&payload={payload}")
    assert r.status_code == 201, r.text
    assert served.suspended(flow_id)["type"] == "WaitingForEvents"  # one of two
    # The same approver again, with another link: refused.
    r = served.anonymous.post(served.links(step, 2, "ann")["resume"], json={"n": 9})
    assert r.status_code == 400 and "ann already approved" in r.text, r.text
    r = served.anonymous.post(served.links(step, 3, "bob")["resume"], json={"n": 2})
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["result"] == {
        "resume": {"n": 2},
        "resumes": [{"n": 1}, {"n": 2}],
        "approvers": ["ann", "bob"],
    }


def test_the_cancel_link_fails_the_flow(served: Served) -> None:
    flow_id = served.run(approval_flow({"required_events": 2}))
    step = served.suspended(flow_id)["job"]
    r = served.anonymous.post(served.links(step, 1, "ann")["resume"], json=None)
    assert r.status_code == 201, r.text
    r = served.anonymous.get(served.links(step, 2, "dan")["cancel"])
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["success"] is False
    assert job["result"] == {
        "error": {"name": "SuspendedDisapproved", "message": "Disapproved by dan"}
    }
    assert job["flow_status"]["modules"][0]["type"] == "Failure"


def test_a_bad_signature_is_refused(served: Served) -> None:
    flow_id = served.run(approval_flow({"required_events": 1}))
    step = served.suspended(flow_id)["job"]
    links = served.links(step, 5, "ann")
    for bad in (
        links["resume"].replace("approver=ann", "approver=eve"),
        links["resume"].replace("/5/", "/6/"),
        links["cancel"].replace("/5/", "/6/"),
        links["resume"].replace("/jobs_u/resume/", "/jobs_u/get_flow/").replace("/5/", "/6/"),
    ):
        r = served.anonymous.request("GET" if "get_flow" in bad else "POST", bad)
        assert r.status_code == 403, r.text
    r = served.anonymous.post(links["resume"][:-70] + "0" * 64 + "?approver=ann")
    assert r.status_code == 403, r.text
    # Still waiting: the owner (here the superadmin who started it) resumes without a link.
    r = served.http.post(f"/w/{WS}/jobs/flow/resume/{flow_id}", json={"by": "owner"})
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["result"]["resume"] == {"by": "owner"}
    r = served.http.post(f"/w/{WS}/jobs/flow/resume/{flow_id}", json={})
    assert r.status_code == 400 and "not in a suspended state" in r.text, r.text


def test_the_timeout_fails_the_flow_or_goes_on(served: Served) -> None:
    failing = served.run(approval_flow({"required_events": 1, "timeout": 1}))
    going_on = served.run(approval_flow({"timeout": 1, "continue_on_disapprove_timeout": True}))
    job = served.completed(failing)
    assert job["success"] is False
    assert job["result"] == {
        "error": {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}
    }
    job = served.completed(going_on)
    assert job["success"] is True
    assert job["result"]["resume"]["error"]["name"] == "SuspendedTimedOut"
    assert job["result"]["approvers"] == []


def test_groups_and_self_approval(served: Served) -> None:
    suspend = {
        "required_events": 1,
        "user_auth_required": True,
        "self_approval_disabled": True,
        "user_groups_required": {"type": "static", "value": ["approvers"]},
    }
    flow_id = served.run(approval_flow(suspend), served.users["alice"])
    step = served.suspended(flow_id)["job"]
    link = served.links(step, 1)["resume"]
    r = served.anonymous.post(link, json={})
    assert r.status_code == 403 and "Only logged in users" in r.text, r.text
    r = served.users["bob"].post(link, json={})  # not in the group
    assert r.status_code == 403 and "approvers" in r.text, r.text
    r = served.users["alice"].post(link, json={})  # in the group, but started the flow
    assert r.status_code == 403 and "Self-approval is disabled" in r.text, r.text
    r = served.users["carol"].post(link, json={"fine": True})
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["result"]["approvers"] == ["carol"]  # the logged-in user names the approver
    r = served.users["carol"].post(served.links(step, 2)["resume"], json={})
    assert r.status_code == 400, r.text


def test_a_step_using_windmills_client_gets_links_that_resume_it(served: Served) -> None:
    value = {
        "modules": [
            module("ask", CLIENT_STEP, {"required_events": 1}),
            module(
                "then", ECHO, resume=js("resume"), resumes=js("resumes"), approvers=js("approvers")
            ),
        ]
    }
    flow_id = served.run(value)
    status = served.suspended(flow_id, timeout=240)  # the first run installs wmill
    r = served.http.get(f"/w/{WS}/jobs_u/completed/get_result/{status['job']}")
    assert r.status_code == 200, r.text
    asked = r.json()
    assert asked["job"] == status["job"]  # WM_JOB_ID is the suspended step's job
    urls = asked["urls"]
    assert set(urls) == {"approvalPage", "resume", "cancel"}
    assert f"/approve/{WS}/{status['job']}/" in urls["approvalPage"]
    r = served.anonymous.post(urls["resume"].split("/api", 1)[1], json={"go": 1})
    assert r.status_code == 201, r.text
    job = served.completed(flow_id)
    assert job["result"] == {"resume": {"go": 1}, "resumes": [{"go": 1}], "approvers": ["ann"]}


def test_cancelling_a_suspended_flow_ends_it(served: Served) -> None:
    flow_id = served.run(approval_flow({"required_events": 1}))
    step = served.suspended(flow_id)["job"]
    r = served.http.post(f"/w/{WS}/jobs/queue/cancel/{flow_id}", json={"reason": "no"})
    assert r.status_code == 200, r.text
    job = served.completed(flow_id)
    assert job["canceled"] is True
    r = served.anonymous.post(served.links(step, 1)["resume"], json={})
    assert r.status_code == 400 and "has ended" in r.text, r.text
