"""Every module type and control feature of a flow, run through the API (issue 12, "Done
when"): real Postgres, real workers, real python3, bash and bun steps. One platform for the
module (flows are independent: each names its own paths), so the whole file stays fast.

Also the checks a save makes against its workspace (the scripts and sub-flows a flow names,
cycles of sub-flows) and the run-time refusals that name the step at fault.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gristmill.errors import BadInput
from gristmill.flows import store
from gristmill.flows.engine import FlowEngine
from gristmill.server.platform import Platform

pytestmark = pytest.mark.timeout(120)

ADD_ONE = "def main(x: int):\n    return x + 1\n"
FAIL = "def main():\n    raise ValueError('boom')\n"
INVERSE = "def main(x: int):\n    return 10 / x\n"


def js(expr: str) -> dict[str, Any]:
    return {"type": "javascript", "expr": expr}


def static(value: Any) -> dict[str, Any]:
    return {"type": "static", "value": value}


def raw(
    id: str, content: str, language: str = "python3", **inputs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id,
        "value": {
            "type": "rawscript",
            "language": language,
            "content": content,
            "input_transforms": inputs,
        },
    }


# -- one platform for the module ---------------------------------------------------------------


# One platform for the module's tests (each keeps to its own paths and jobs).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


# -- helpers -------------------------------------------------------------------------------------


async def run(
    api: httpx.AsyncClient,
    modules: list[dict[str, Any]],
    args: dict[str, Any] | None = None,
    **value: Any,
) -> tuple[httpx.Response, dict[str, Any]]:
    """Run the flow and wait: its result response and its job (with flow_status)."""
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow",
        json={"value": {"modules": modules, **value}, "args": args or {}},
    )
    assert r.status_code in (200, 422), r.text
    job = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()
    return r, job


def modules_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in job["flow_status"]["modules"]}


async def children(api: httpx.AsyncClient, flow_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/w/main/jobs/list?parent_job={flow_id}&per_page=100")
    assert r.status_code == 200, r.text
    return r.json()


async def steps_by_id(api: httpx.AsyncClient, flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The jobs of the flow's top-level steps in full (jobs_u/get), by step id (the
    flow_status names each step's job)."""
    steps: dict[str, dict[str, Any]] = {}
    for module in flow["flow_status"]["modules"]:
        if module.get("job"):
            r = await api.get(f"/w/main/jobs_u/get/{module['job']}")
            assert r.status_code == 200, r.text
            steps[module["id"]] = r.json()
    return steps


async def wait_until(check: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


# -- module types --------------------------------------------------------------------------------

BASH_DOUBLE = 'n="$1"\necho "$((n * 2))"\n'
# An npm package imported without a lock: the step resolves and installs it as a preview of
# a script does (the lock made on the fly), then runs.
BUN_WITH_DEPENDENCY = """\
import isNumber from "is-number@7.0.0";

export function main(n: string) {
  return { n: Number(n) + 1, isNumber: isNumber(n) };
}
"""
PYTHON_WITH_DEPENDENCY = """\
import yaml


def main(n: dict):
    return yaml.safe_dump(n).strip()
"""


async def test_rawscripts_in_python_bash_and_bun_with_dependencies(
    api: httpx.AsyncClient,
) -> None:
    r, job = await run(
        api,
        [
            raw("a", ADD_ONE, x=js("flow_input.n")),
            # Bash takes its arguments as text.
            raw("b", BASH_DOUBLE, "bash", n=js("String(results.a)")),
            raw("c", BUN_WITH_DEPENDENCY, "bun", n=js("results.b")),
            raw("d", PYTHON_WITH_DEPENDENCY, n=js("results.c")),
        ],
        {"n": 4},
    )
    assert r.status_code == 200, (r.text, job["flow_status"])
    # 4 + 1 = 5; bash doubles it as text ("10"); bun adds one; python dumps it as YAML.
    assert r.json() == "isNumber: true\nn: 11"
    steps = await steps_by_id(api, job)
    assert {k: steps[k]["language"] for k in "abcd"} == {
        "a": "python3",
        "b": "bash",
        "c": "bun",
        "d": "python3",
    }

    # The lock a saved script gets (its dependency job), carried by the step as
    # `wmill flow generate-locks` writes it: the step runs against exactly that lock.
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/bun_dep", "content": BUN_WITH_DEPENDENCY, "language": "bun"},
    )
    assert r.status_code == 201, r.text

    async def locked() -> dict[str, Any] | None:
        status = (await api.get(f"/w/main/scripts/deployment_status/h/{r.text}")).json()
        return status if status["status"] != "locking" else None

    status = await wait_until(locked, timeout=60)
    assert status["lock"], status
    step = raw("c", BUN_WITH_DEPENDENCY, "bun", n=static("41"))
    step["value"]["lock"] = status["lock"]
    r, _ = await run(api, [step])
    assert r.status_code == 200, r.text
    assert r.json() == {"n": 42, "isNumber": True}


async def test_saved_script_by_path_and_by_hash(api: httpx.AsyncClient) -> None:
    path = "u/admin/versioned"
    first = await api.post(
        "/w/main/scripts/create",
        json={
            "path": path,
            "content": "def main(x: int):\n    return ['v1', x]\n",
            "language": "python3",
        },
    )
    assert first.status_code == 201, first.text
    second = await api.post(
        "/w/main/scripts/create",
        json={
            "path": path,
            "content": "def main(x: int):\n    return ['v2', x]\n",
            "language": "python3",
            "parent_hash": first.text,
        },
    )
    assert second.status_code == 201, second.text
    by_path = {
        "id": "latest",
        "value": {"type": "script", "path": path, "input_transforms": {"x": static(1)}},
    }
    by_hash = {
        "id": "pinned",
        "value": {
            "type": "script",
            "path": path,
            "hash": first.text,
            "input_transforms": {"x": js("results.latest[1] + 1")},
        },
    }
    r, job = await run(api, [by_path, by_hash])
    assert r.status_code == 200, r.text
    assert job["flow_status"]["modules"][0]["type"] == "Success"
    assert r.json() == ["v1", 2]
    steps = await steps_by_id(api, job)
    assert steps["latest"]["script_hash"] == second.text
    assert steps["pinned"]["script_hash"] == first.text


async def test_identity_and_whileloop_until_stop_after_if(api: httpx.AsyncClient) -> None:
    loop = {
        "id": "loop",
        "value": {
            "type": "whileloopflow",
            "modules": [raw("count", ADD_ONE, x=js("flow_input.iter.index"))],
        },
        # Evaluated after each iteration, with that iteration's result.
        "stop_after_if": {"expr": "result >= 3"},
    }
    r, job = await run(api, [loop, {"id": "same", "value": {"type": "identity"}}])
    assert r.status_code == 200, r.text
    assert r.json() == [1, 2, 3]
    modules = modules_of(job)
    assert len(modules["loop"]["flow_jobs"]) == 3
    assert modules["same"]["type"] == "Success"
    # The identity step runs no job: three iterations are the only children.
    assert len(await children(api, job["id"])) == 3


async def test_branchall_in_sequence_with_skip_failure(api: httpx.AsyncClient) -> None:
    branches = {
        "id": "all",
        "value": {
            "type": "branchall",
            "branches": [
                {"modules": [raw("bad", FAIL)], "skip_failure": True},
                {"modules": [raw("good", ADD_ONE, x=static(1))], "skip_failure": False},
            ],
        },
    }
    r, _ = await run(api, [branches])
    assert r.status_code == 200, r.text
    failed, good = r.json()
    assert failed["error"]["message"] == "boom" and good == 2
    # A branch without skip_failure fails the flow.
    branches["value"]["branches"][0]["skip_failure"] = False
    r, job = await run(api, [branches])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"] == "boom"
    assert job["success"] is False


async def test_forloop_skip_failures_keeps_going(api: httpx.AsyncClient) -> None:
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": static([1, 0, 2]),
            "skip_failures": True,
            "modules": [raw("inverse", INVERSE, x=js("flow_input.iter.value"))],
        },
    }
    r, _ = await run(api, [loop])
    assert r.status_code == 200, r.text
    first, failed, last = r.json()
    assert first == 10 and last == 5
    assert failed["error"]["name"] == "ZeroDivisionError"


async def test_retries_constant_then_exponential_and_retry_if(api: httpx.AsyncClient) -> None:
    retried = {
        **raw("a", FAIL),
        "retry": {
            "constant": {"attempts": 1, "seconds": 0},
            "exponential": {"attempts": 1, "multiplier": 1, "seconds": 1},
            "retry_if": {"expr": "error.name == 'ValueError'"},
        },
    }
    started = time.monotonic()
    r, job = await run(api, [retried])
    assert r.status_code == 422, r.text
    assert time.monotonic() - started >= 1  # the exponential attempt waited 1 * 1 ** 1 s
    assert len(modules_of(job)["a"]["failed_retries"]) == 2
    assert len(await children(api, job["id"])) == 3
    # retry_if false: no retry at all.
    retried["retry"]["retry_if"] = {"expr": "error.name == 'KeyError'"}
    r, job = await run(api, [retried])
    assert r.status_code == 422, r.text
    assert modules_of(job)["a"]["failed_retries"] == []
    assert len(await children(api, job["id"])) == 1


async def test_failure_module_recovers_the_flow(api: httpx.AsyncClient) -> None:
    recover = raw(
        "failure",
        "def main(message: str):\n    return {'recover': True, 'handled': message}\n",
        message=js("error.message"),
    )
    r, job = await run(api, [raw("a", FAIL)], failure_module=recover)
    assert r.status_code == 200, r.text
    assert r.json() == {"recover": True, "handled": "boom"}
    assert job["success"] is True
    assert job["flow_status"]["failure_module"]["type"] == "Success"


async def test_continue_on_error_passes_the_error_on(api: httpx.AsyncClient) -> None:
    r, job = await run(
        api,
        [
            {**raw("a", FAIL), "continue_on_error": True},
            raw(
                "b",
                "def main(e: dict):\n    return 'saw ' + e['error']['message']\n",
                e=js("previous_result"),
            ),
        ],
    )
    assert r.status_code == 200, r.text
    assert r.json() == "saw boom"
    modules = modules_of(job)
    assert modules["a"]["type"] == "Failure" and modules["b"]["type"] == "Success"


async def test_stop_after_if_and_stop_after_all_iters_if(api: httpx.AsyncClient) -> None:
    r, job = await run(
        api,
        [
            {**raw("a", ADD_ONE, x=static(1)), "stop_after_if": {"expr": "result == 2"}},
            raw("never", FAIL),
        ],
    )
    assert r.status_code == 200 and r.json() == 2, r.text
    assert len(await children(api, job["id"])) == 1
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": static([1, 2]),
            "skip_failures": False,
            "modules": [raw("each", ADD_ONE, x=js("flow_input.iter.value"))],
        },
        "stop_after_all_iters_if": {"expr": "result.length == 2", "skip_if_stopped": True},
    }
    r, job = await run(api, [loop, raw("never", FAIL)])
    assert r.status_code == 200 and r.json() == [2, 3], r.text
    assert len(await children(api, job["id"])) == 2


async def test_skip_if_and_sleep(api: httpx.AsyncClient) -> None:
    r, job = await run(
        api,
        [
            {**raw("a", ADD_ONE, x=static(1)), "sleep": static(1)},
            {**raw("skipped", FAIL), "skip_if": {"expr": "results.a == 2"}},
            raw("b", ADD_ONE, x=js("results.a")),
        ],
    )
    assert r.status_code == 200 and r.json() == 3, r.text
    assert modules_of(job)["skipped"]["skipped"] is True
    steps = await steps_by_id(api, job)
    assert set(steps) == {"a", "b"}
    a_done = dt.datetime.fromisoformat(steps["a"]["started_at"]) + dt.timedelta(
        milliseconds=steps["a"]["duration_ms"]
    )
    # The step after a sleep is scheduled 1 s after the sleeping step ended.
    b_started = dt.datetime.fromisoformat(steps["b"]["started_at"])
    assert (b_started - a_done).total_seconds() >= 0.9


REFERENCES = "`${variable('u/admin/greeting')} ${resource('u/admin/conf').name}`"


async def _references_saved(api: httpx.AsyncClient) -> None:
    if (await api.get("/w/main/variables/exists/u/admin/greeting")).json():
        return
    r = await api.post(
        "/w/main/variables/create",
        json={"path": "u/admin/greeting", "value": "hello", "is_secret": True, "description": ""},
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/resources/create",
        json={"path": "u/admin/conf", "value": {"name": "flows"}, "resource_type": "any"},
    )
    assert r.status_code == 201, r.text


async def test_resource_and_variable_in_transforms(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    """A real secret variable and a real resource, read as the flow's user when its
    expressions are evaluated (by an engine given the platform's secrets, as the API's and
    the workers' engines are once platform.py passes them: see the test below)."""
    await _references_saved(api)
    engine = FlowEngine(
        pool=platform.db,
        registry=platform.require_registry(),
        secrets=platform.require_secrets(),
        superadmin_secret_set=True,
    )
    access = await _admin_access(platform)
    value = {"modules": [raw("a", "def main(text: str):\n    return text\n", text=js(REFERENCES))]}
    flow_id = await engine.run_preview("main", access.actor, value, {})

    async def done() -> dict[str, Any] | None:
        job = (await api.get(f"/w/main/jobs_u/get/{flow_id}")).json()
        return job if job["type"] == "CompletedJob" else None

    job = await wait_until(done)
    assert job["success"] is True, job["result"]
    assert job["result"] == "hello flows"
    # A path that does not exist is named.
    value = {"modules": [raw("a", ADD_ONE, x=js("variable('u/admin/none')"))]}
    flow_id = await engine.run_preview("main", access.actor, value, {})
    job = await wait_until(done)
    assert job["success"] is False
    assert "variable 'u/admin/none' not found" in job["result"]["error"]["message"]


async def test_resource_and_variable_through_the_api(api: httpx.AsyncClient) -> None:
    await _references_saved(api)
    r, _ = await run(
        api,
        [
            raw("a", ADD_ONE, x=static(1)),
            raw("b", "def main(text: str):\n    return text\n", text=js(REFERENCES)),
        ],
    )
    assert r.status_code == 200, r.text
    assert r.json() == "hello flows"


async def test_expression_error_names_the_step_and_expression(api: httpx.AsyncClient) -> None:
    r, job = await run(
        api,
        [raw("a", ADD_ONE, x=static(1)), raw("b", ADD_ONE, x=js("results.a.nope.deeper"))],
    )
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert 'step "b"' in message and "results.a.nope.deeper" in message, message
    assert modules_of(job)["b"]["type"] == "Failure"


async def test_iterator_not_a_list_fails_the_step_naming_it(api: httpx.AsyncClient) -> None:
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": js("flow_input.n"),
            "modules": [raw("each", ADD_ONE, x=js("flow_input.iter.value"))],
        },
    }
    r, _ = await run(api, [loop], {"n": 5})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert message.startswith('step "loop" iterator: ') and "must evaluate to a list" in message


# -- checks at save time -------------------------------------------------------------------------


def flow_step(id: str, path: str) -> dict[str, Any]:
    return {"id": id, "value": {"type": "flow", "path": path, "input_transforms": {}}}


async def save(
    api: httpx.AsyncClient, path: str, modules: list[dict[str, Any]], *, update: bool = False
) -> httpx.Response:
    url = f"/w/main/flows/update/{path}" if update else "/w/main/flows/create"
    return await api.post(url, json={"path": path, "value": {"modules": modules}})


async def test_save_refuses_missing_scripts_and_flows(api: httpx.AsyncClient) -> None:
    missing_script = {
        "id": "s",
        "value": {"type": "script", "path": "u/admin/nowhere", "input_transforms": {}},
    }
    r = await save(api, "u/admin/c1", [missing_script])
    assert r.status_code == 400
    assert 'module "s" (script) path: no script at "u/admin/nowhere"' in r.text
    bad_hash = {
        "id": "h",
        "value": {
            "type": "script",
            "path": "u/admin/nowhere",
            "hash": "0123456789abcdef",
            "input_transforms": {},
        },
    }
    r = await save(api, "u/admin/c1", [bad_hash])
    assert r.status_code == 400
    assert 'module "h" (script) hash: no version 0123456789abcdef' in r.text
    r = await save(api, "u/admin/c1", [{**bad_hash, "value": {**bad_hash["value"], "hash": "x"}}])
    assert r.status_code == 400 and 'module "h" (script) hash' in r.text
    # Every problem at once, in module order, each with its module and field.
    r = await save(api, "u/admin/c1", [flow_step("f", "u/admin/no_flow"), missing_script])
    assert r.status_code == 400
    assert 'module "f" (flow) path: no flow at "u/admin/no_flow"' in r.text
    assert 'module "s" (script) path' in r.text
    assert (await api.get("/w/main/flows/exists/u/admin/c1")).json() is False

    # Once they exist, the same flow saves.
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/nowhere", "content": ADD_ONE, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    assert (await save(api, "u/admin/no_flow", [])).status_code == 201
    r = await save(api, "u/admin/c1", [flow_step("f", "u/admin/no_flow"), missing_script])
    assert r.status_code == 201, r.text


async def test_save_refuses_cycles_of_sub_flows(api: httpx.AsyncClient) -> None:
    r = await save(api, "u/admin/self", [flow_step("me", "u/admin/self")])
    assert r.status_code == 400 and "runs itself as a sub-flow" in r.text
    assert (await save(api, "u/admin/cy_a", [])).status_code == 201
    assert (await save(api, "u/admin/cy_b", [flow_step("to_a", "u/admin/cy_a")])).status_code == 201
    assert (await save(api, "u/admin/cy_c", [flow_step("to_b", "u/admin/cy_b")])).status_code == 201
    # a -> c -> b -> a, the sub-flow nested in a loop.
    nested = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": static([1]),
            "modules": [flow_step("to_c", "u/admin/cy_c")],
        },
    }
    r = await save(api, "u/admin/cy_a", [nested], update=True)
    assert r.status_code == 400, r.text
    assert (
        'module "to_c" (flow) path: sub-flows form a cycle: '
        "u/admin/cy_a -> u/admin/cy_c -> u/admin/cy_b -> u/admin/cy_a"
    ) in r.text
    # Not a cycle: two paths to the same flow.
    r = await save(
        api, "u/admin/cy_d", [flow_step("one", "u/admin/cy_b"), flow_step("two", "u/admin/cy_c")]
    )
    assert r.status_code == 201, r.text


async def test_a_sync_push_may_name_a_sub_flow_it_pushes_later(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    """`wmill sync push` (X-Windmill-Deploy-Origin: sync) pushes every script before any flow,
    but the flows in path order: a sub-flow not saved yet is let through then; a missing
    script and a cycle are still refused."""
    access = await _admin_access(platform)
    later = store.FlowDraft(
        path="u/admin/sync_a", value={"modules": [flow_step("s", "u/admin/sync_z")]}
    )
    await store.create_flow(platform.db, access, later, sync=True)
    script = {"id": "s", "value": {"type": "script", "path": "u/admin/sync_none"}}
    with pytest.raises(BadInput, match='no script at "u/admin/sync_none"'):
        await store.create_flow(
            platform.db,
            access,
            store.FlowDraft(path="u/admin/sync_b", value={"modules": [script]}),
            sync=True,
        )
    back = store.FlowDraft(
        path="u/admin/sync_z", value={"modules": [flow_step("s", "u/admin/sync_a")]}
    )
    with pytest.raises(BadInput, match="sub-flows form a cycle"):
        await store.create_flow(platform.db, access, back, sync=True)
    # Outside a sync, the missing sub-flow is refused.
    r = await save(api, "u/admin/sync_c", [flow_step("s", "u/admin/sync_y")])
    assert r.status_code == 400 and 'no flow at "u/admin/sync_y"' in r.text


async def test_save_refuses_what_the_pure_checks_find_and_unknown_languages(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    r = await save(api, "u/admin/dup", [raw("a", ADD_ONE), raw("a", ADD_ONE)])
    assert r.status_code == 400 and 'module "a" (rawscript) id: duplicate' in r.text
    r = await save(api, "u/admin/dup", [raw("a", ADD_ONE, x=js("results.(a"))])
    assert r.status_code == 400 and 'module "a" (rawscript) input_transforms.x' in r.text
    # The installed languages (the API's registry) refuse a language no worker runs.
    access = await _admin_access(platform)
    draft = store.FlowDraft(path="u/admin/cobol", value={"modules": [raw("a", "x", "cobol")]})
    with pytest.raises(BadInput, match=r'module "a" \(rawscript\) language: "cobol" is not'):
        await store.create_flow(
            platform.db, access, draft, languages=platform.require_registry().names()
        )


async def _admin_access(platform: Platform) -> Any:
    from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor
    from gristmill.auth.permissions import load_access

    # As the API's callers in this file: the SUPERADMIN_SECRET.
    actor = Actor(SUPERADMIN_SECRET_EMAIL, "superadmin_secret", super_admin=True)
    async with platform.db.connection() as conn:
        return await load_access(conn, actor, "main")


# -- recovery ------------------------------------------------------------------------------------


async def test_a_step_failed_as_a_zombie_advances_its_flow(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    """RESTART_ZOMBIE_JOBS=false: the monitor fails a step whose worker stopped answering,
    outside any worker; the flow sweep then advances its flow (here to its failure module).
    The restart case, with real processes killed: tests/e2e/test_flow_recovery.py."""
    from gristmill.db.queries import Q

    value = {
        "modules": [raw("slow", "import time\n\ndef main():\n    time.sleep(1.5)\n")],
        "failure_module": raw(
            "failure", "def main(name: str):\n    return name\n", name=js("error.name")
        ),
    }
    r = await api.post("/w/main/jobs/run/preview_flow", json={"value": value, "args": {}})
    assert r.status_code == 201, r.text
    flow_id = r.text

    async def running_step() -> str | None:
        running = [c for c in await children(api, flow_id) if c.get("running")]
        return running[0]["id"] if running else None

    step_id = await wait_until(running_step)
    async with platform.db.connection() as conn, conn.transaction():
        # Its heartbeat long gone, in the same transaction as the monitor's query (the live
        # worker's next heartbeat cannot slip in between).
        await conn.execute(
            "UPDATE job_queue SET ping = now() - interval '1 hour' WHERE id = %s", (step_id,)
        )
        # 1 s, not more: a ping counts as no older than the server's start (the session's
        # Postgres may have run for less than a minute).
        failed = await (await conn.execute(Q["fail_zombies"], {"timeout_s": 1})).fetchall()
    assert [str(row[0]) for row in failed] == [step_id]
    # The monitor's own sweep (every 15 s here) may come first: either advances it once.
    assert await platform.flows.sweep() <= 1

    async def flow_done() -> dict[str, Any] | None:
        job = (await api.get(f"/w/main/jobs_u/get/{flow_id}")).json()
        return job if job["type"] == "CompletedJob" else None

    job = await wait_until(flow_done)
    assert job["success"] is False and job["result"] == "ZombieJob"
    assert job["flow_status"]["modules"][0]["type"] == "Failure"
    # The old worker's late completion of the step changes nothing.
    await asyncio.sleep(1.7)
    step = (await api.get(f"/w/main/jobs_u/get/{step_id}")).json()
    assert step["success"] is False and step["result"]["error"]["name"] == "ZombieJob"
    again = (await api.get(f"/w/main/jobs_u/get/{flow_id}")).json()
    assert again["result"] == "ZombieJob"
