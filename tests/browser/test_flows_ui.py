"""Flows in the web UI: build a flow in the editor (inline steps, an input picked from an
earlier step's result), test-run it and watch the graph, the YAML view in sync both ways,
save; run a saved flow from its page and its app page; restart from a step; approve a
suspended step from the run page and from the signed approval page.

Routes other branches add (``jobs/run/f``, ``jobs/restart/f``, the suspend routes) are used
as Windmill names them; the tests that need them are marked in the report of the UI branch.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from .conftest import Server

FIRST = """\
def main(n: int = 21):
    print("first step")
    return n
"""

SECOND = """\
def main(x: int):
    print(f"doubling {x}")
    return x * 2
"""


def _set_code(page: Page, testid: str, code: str) -> None:
    page.get_by_test_id(testid).locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(code)


def _two_steps(content_a: str = FIRST, content_b: str = SECOND) -> dict[str, Any]:
    return {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": content_a,
                    "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}},
                },
            },
            {
                "id": "b",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": content_b,
                    "input_transforms": {"x": {"type": "javascript", "expr": "results.a"}},
                },
            },
        ]
    }


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "default": 21}}, "required": []}


def _save_flow(server: Server, name: str, value: dict[str, Any]) -> str:
    path = server.unique(name)
    r = server.api.post(
        "/w/main/flows/create",
        json={"path": path, "summary": f"flow {name}", "value": value, "schema": SCHEMA},
    )
    assert r.status_code == 201, r.text
    return path


def _wait_done(server: Server, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = server.api.get(f"/w/main/jobs_u/get/{job_id}", params={"no_logs": True}).json()
        if job["type"] == "CompletedJob":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_build_a_flow_test_run_it_edit_its_yaml_and_save(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    name = f"flow_{uuid.uuid4().hex[:8]}"
    page.get_by_test_id("new-flow").click()
    expect(page).to_have_url(f"{server.url}/w/main/flows/new")
    page.get_by_label("Flow name").fill(name)
    page.get_by_test_id("flow-summary").fill("Double a number")

    # The flow's input: n, an integer.
    page.get_by_test_id("tab-inputs").click()
    page.get_by_test_id("add-flow-input").click()
    page.get_by_test_id("flow-input-name-0").fill("n")
    page.get_by_test_id("flow-input-name-0").press("Tab")
    page.get_by_label("Type of n").select_option("integer")
    page.get_by_test_id("flow-input-default-n").fill("21")
    page.get_by_test_id("tab-steps").click()

    # Step a: inline python3, its input n from flow_input.n.
    page.get_by_test_id("add-step-flow").select_option("rawscript")
    expect(page.get_by_test_id("flow-step-a")).to_be_visible()
    expect(page.get_by_test_id("step-code")).to_contain_text("def main(")
    _set_code(page, "step-code", FIRST)
    page.get_by_test_id("input-source-n").select_option("flow_input.n")

    # Step b: its input x picks results.a (the transform the picker writes).
    page.get_by_test_id("add-step-flow").select_option("rawscript")
    expect(page.get_by_test_id("flow-step-b")).to_be_visible()
    _set_code(page, "step-code", SECOND)
    page.get_by_test_id("input-source-x").select_option(label="results.a")
    expect(page.get_by_test_id("input-value-x")).to_have_value("results.a")
    # Its options: two retries (Windmill's `retry.constant`).
    page.get_by_test_id("step-options").locator("summary").click()
    page.get_by_test_id("step-retries").fill("2")
    page.get_by_test_id("step-options").locator("summary").click()

    # A test run (the form has the default just given): the graph's steps turn to success,
    # the flow's result is 2 * 21.
    expect(page.get_by_test_id("flow-test-form").get_by_label("n", exact=True)).to_have_value("21")
    page.get_by_test_id("test-run").click()
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-a")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-b")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-result")).to_contain_text("42")
    # A step's job: its logs and result.
    run.get_by_test_id("flow-step-b").get_by_role("button").first.click()
    expect(run.get_by_test_id("step-detail")).to_contain_text("doubling 21")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "flow-editor")

    # The YAML view shows the steps; an edit there shows in the graph.
    page.get_by_test_id("tab-yaml").click()
    yaml_view = page.get_by_test_id("flow-yaml")
    expect(yaml_view).to_contain_text("id: a")
    expect(yaml_view).to_contain_text("expr: results.a")
    text = yaml_view.locator(".cm-content").inner_text()
    _set_code(page, "flow-yaml", text.replace("id: b", "id: double"))
    graph = page.get_by_test_id("flow-graph").first
    expect(graph.get_by_test_id("flow-step-double")).to_be_visible()
    expect(graph.get_by_test_id("flow-step-b")).to_have_count(0)

    # Save: the flow is stored as built (the picked input is Windmill's javascript transform).
    page.get_by_test_id("save").click()
    path = f"u/admin/{name}"
    expect(page).to_have_url(f"{server.url}/w/main/flows/edit/{path}")
    saved = server.api.get(f"/w/main/flows/get/{path}").json()
    modules = saved["value"]["modules"]
    assert [m["id"] for m in modules] == ["a", "double"]
    assert modules[1]["retry"] == {"constant": {"attempts": 2, "seconds": 0}}
    assert modules[1]["value"]["input_transforms"]["x"] == {
        "type": "javascript",
        "expr": "results.a",
    }
    assert saved["schema"]["properties"]["n"] == {"type": "integer", "default": 21}

    # Reorder and remove, then save a second version.
    expect(page.get_by_test_id("flow-step-double")).to_be_visible()
    page.get_by_test_id("flow-step-double").get_by_role("button").first.click()
    page.get_by_test_id("step-up").click()
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    page.get_by_test_id("step-remove").click()
    expect(page.get_by_test_id("flow-step-double")).to_have_count(0)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    saved = server.api.get(f"/w/main/flows/get/{path}").json()
    assert [m["id"] for m in saved["value"]["modules"]] == ["a"]

    # The home page lists it beside the scripts.
    page.goto("/w/main")
    expect(page.get_by_test_id("flow-list")).to_contain_text(path)


def _run_preview(server: Server, value: dict[str, Any], args: dict[str, Any]) -> str:
    r = server.api.post("/w/main/jobs/run/preview_flow", json={"value": value, "args": args})
    assert r.status_code == 201, r.text
    return r.text.strip()


def test_loops_and_branches_are_drawn_and_followed_live(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    value = {
        "modules": [
            {
                "id": "items",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "['1', '2', '3']"},
                    "modules": [
                        {
                            "id": "each",
                            "value": {
                                "type": "rawscript",
                                "language": "bash",
                                "content": 'x="$1"\necho "item $x"\n',
                                "input_transforms": {
                                    "x": {"type": "javascript", "expr": "flow_input.iter.value"}
                                },
                            },
                        }
                    ],
                },
            },
            {
                "id": "pick",
                "value": {
                    "type": "branchone",
                    "branches": [
                        {
                            "summary": "many",
                            "expr": "results.items.length > 2",
                            "modules": [{"id": "yes", "value": {"type": "identity"}}],
                        }
                    ],
                    "default": [{"id": "no", "value": {"type": "identity"}}],
                },
            },
        ]
    }
    path = _save_flow(server, "shapes", value)
    page.goto(f"/w/main/flows/edit/{path}")
    graph = page.get_by_test_id("flow-graph").first
    # The loop is a box around its body; the branches side by side, the default first.
    expect(graph.get_by_test_id("flow-step-items").get_by_test_id("flow-step-each")).to_be_visible()
    expect(graph.get_by_test_id("flow-step-pick").get_by_test_id("flow-step-yes")).to_be_visible()
    expect(graph.get_by_test_id("flow-step-pick").get_by_test_id("flow-step-no")).to_be_visible()

    page.get_by_test_id("test-run").click()
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-items")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-pick")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-status")).to_contain_text("success")
    # The loop's three jobs, each one's output on click.
    run.get_by_test_id("flow-step-items").get_by_role("button").first.click()
    detail = run.get_by_test_id("step-detail")
    expect(detail.get_by_test_id("inner-job-2")).to_be_visible()
    detail.get_by_test_id("inner-job-2").click()
    expect(detail.get_by_test_id("job-output")).to_contain_text("item 3")
    page.get_by_test_id("test-run").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 40)")
    shot(page, "flow-run")
    # A step inside the loop's body: coloured by its last iteration's job (the jobs name
    # their module, flow_step_id), its duration shown, its output on click.
    each = run.get_by_test_id("flow-step-each")
    expect(each).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-status-each")).to_have_text("success")
    expect(each).to_contain_text(re.compile(r"\d+(\.\d+)? ?(ms|s)"))
    each.get_by_role("button").first.click()
    expect(detail.locator("h3").first).to_contain_text("Step each")
    expect(detail.get_by_test_id("job-output")).to_contain_text("item 3")
    # The branch's identity steps ran no job: not coloured.
    expect(run.get_by_test_id("flow-step-yes")).to_have_attribute("data-status", "")


def _bash(step_id: str, content: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "bash",
            "content": content,
            "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.iter.value"}},
        },
    }


def test_steps_inside_loops_show_their_last_iterations_status(
    admin_page: Page, server: Server
) -> None:
    page = admin_page
    value = {
        "modules": [
            {
                # Sequential: its steps' jobs are the flow's own; the second step fails in the
                # last iteration only (skipped over: the flow goes on).
                "id": "seq",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "['1', '2']"},
                    "skip_failures": True,
                    "modules": [
                        _bash("first", 'x="$1"\necho "seq $x"\n'),
                        _bash("second", 'x="$1"\necho "check $x"\n[ "$x" != 2 ]\n'),
                    ],
                },
            },
            {
                # Parallel: each iteration a child flow; its body shows the latest one's jobs.
                "id": "par",
                "value": {
                    "type": "forloopflow",
                    "parallel": True,
                    "iterator": {"type": "javascript", "expr": "['1', '2', '3']"},
                    "modules": [_bash("inpar", 'x="$1"\necho "par $x"\n')],
                },
            },
        ]
    }
    flow_id = _run_preview(server, value, {})
    assert _wait_done(server, flow_id)["success"]
    page.goto(f"/w/main/run/{flow_id}")
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-seq")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-first")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-second")).to_have_attribute("data-status", "failure")
    expect(run.get_by_test_id("flow-step-inpar")).to_have_attribute("data-status", "success")
    detail = run.get_by_test_id("step-detail")
    run.get_by_test_id("flow-step-second").get_by_role("button").first.click()
    expect(detail.get_by_test_id("job-output")).to_contain_text("check 2")
    run.get_by_test_id("flow-step-inpar").get_by_role("button").first.click()
    expect(detail.get_by_test_id("job-output")).to_contain_text("par 3")


def test_run_a_saved_flow_from_its_page_and_its_app_page(admin_page: Page, server: Server) -> None:
    # Needs POST jobs/run/f/{path} (merged from the lead's branch).
    page = admin_page
    path = _save_flow(server, "page", _two_steps())
    page.goto(f"/w/main/flows/get/{path}")
    expect(page.get_by_test_id("flow-title")).to_contain_text("flow page")
    expect(page.get_by_test_id("flow-versions")).to_contain_text("admin")
    page.get_by_test_id("run-form").get_by_label("n", exact=True).fill("5")
    page.get_by_test_id("run").click()
    expect(page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-a")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-step-b")).to_have_attribute("data-status", "success")
    expect(run.get_by_test_id("flow-result")).to_contain_text("10")
    run.get_by_test_id("flow-step-a").get_by_role("button").first.click()
    expect(run.get_by_test_id("step-detail")).to_contain_text("first step")
    # Re-run: the same flow again, same arguments.
    first_run = page.url
    page.get_by_test_id("rerun").click()
    expect(page).not_to_have_url(first_run)
    expect(page.get_by_test_id("flow-run").get_by_test_id("flow-result")).to_contain_text("10")

    # The flow's app page: its form and its result only.
    page.goto(f"/a/main/{path}")
    expect(page.get_by_test_id("app-title")).to_have_text("flow page")
    page.get_by_label("n", exact=True).fill("4")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("app-result-value")).to_have_text("8")


def test_restart_a_finished_flow_from_a_step(admin_page: Page, server: Server) -> None:
    # Needs POST jobs/restart/f/{id}/from/{step_id} (merged from the restart branch).
    page = admin_page
    first = _run_preview(server, _two_steps(), {"n": 3})
    assert _wait_done(server, first)["result"] == 6
    page.goto(f"/w/main/run/{first}")
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-b")).to_have_attribute("data-status", "success")
    run.get_by_test_id("flow-step-b").get_by_role("button").first.click()
    run.get_by_test_id("restart").click()
    expect(page).not_to_have_url(re.compile(first))
    second = page.url.rsplit("/", 1)[1]
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-result")).to_contain_text("6")
    # Step a was not run again: the new flow ran one job of its own.
    children = server.api.get("/w/main/jobs/list", params={"parent_job": second}).json()
    assert len(children) == 1, children


SUSPEND_FIRST = """\
def main():
    return "ready"
"""

RESUMED = """\
def main(x):
    return x
"""


def _suspending() -> dict[str, Any]:
    value = _two_steps(SUSPEND_FIRST, RESUMED)
    value["modules"][0]["value"]["input_transforms"] = {}
    value["modules"][0]["suspend"] = {
        "required_events": 1,
        "timeout": 120,
        "resume_form": {"schema": {"type": "object", "properties": {"note": {"type": "string"}}}},
    }
    value["modules"][1]["value"]["input_transforms"] = {
        "x": {"type": "javascript", "expr": "resume"}
    }
    return value


def _wait_suspended(server: Server, job_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = server.api.get(f"/w/main/jobs_u/get/{job_id}", params={"no_logs": True}).json()
        modules = (job.get("flow_status") or {}).get("modules") or []
        if modules and modules[0]["type"] == "WaitingForEvents":
            return modules[0]["job"]
        time.sleep(0.2)
    raise AssertionError(f"flow {job_id} did not suspend")


def test_approve_a_suspended_step_from_the_run_page_and_the_approval_page(
    admin_page: Page, server: Server, browser: Browser
) -> None:
    # Needs the suspend routes (merged from the suspend branch; /work/briefs/contract-suspend.md).
    page = admin_page
    flow = _run_preview(server, _suspending(), {})
    _wait_suspended(server, flow)
    page.goto(f"/w/main/run/{flow}")
    run = page.get_by_test_id("flow-run")
    expect(run.get_by_test_id("flow-step-a")).to_have_attribute("data-status", "suspended")
    # The step's resume form: its values are the payload the next step sees as `resume`.
    run.get_by_test_id("resume-form").get_by_label("note", exact=True).fill("looks good")
    run.get_by_test_id("approve").click()
    expect(run.get_by_test_id("flow-step-b")).to_have_attribute("data-status", "success")
    done = _wait_done(server, flow)
    assert done["success"] and done["result"] == {"note": "looks good"}, done["result"]

    # The signed link's page, as an approver without an account would open it.
    flow = _run_preview(server, _suspending(), {})
    step_job = _wait_suspended(server, flow)
    urls = server.api.get(
        f"/w/main/jobs/resume_urls/{step_job}/7", params={"approver": "carol"}
    ).json()
    approval = urls["approvalPage"]
    # A browser with no session: the signed link is the permission.
    context = browser.new_context(base_url=server.url)
    errors: list[str] = []
    anonymous = context.new_page()
    anonymous.on("pageerror", lambda exc: errors.append(str(exc)))
    anonymous.goto(approval[approval.index("/approve/") :])
    expect(anonymous.get_by_test_id("approval-step")).to_have_text("a")
    expect(anonymous.get_by_test_id("approval-page")).to_contain_text("carol")
    anonymous.get_by_label("note", exact=True).fill("from carol")
    anonymous.get_by_test_id("approve").click()
    expect(anonymous.get_by_test_id("approval-done")).to_be_visible()
    context.close()
    assert not errors, errors
    done = _wait_done(server, flow)
    assert done["success"] and done["result"] == {"note": "from carol"}, done["result"]
