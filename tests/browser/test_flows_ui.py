"""Flows in the web UI: build a flow in the editor (inline steps, an input picked from an
earlier step's result), test-run it and watch the graph, the YAML view in sync both ways,
save; run a saved flow from its page and its app page; restart from a step; approve a
suspended step from the run page and from the signed approval page.

Routes other branches add (``jobs/run/f``, ``jobs/restart/f``, the suspend routes) are used
as Windmill names them; the tests that need them are marked in the report of the UI branch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

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

    # A test run: the graph's steps turn to success, the flow's result is 2 * 21.
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
