"""Runs in the browser: the job page (live logs, status, result kinds, re-run, cancel) and the
runs list (filters in the URL, the durations chart)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from .conftest import Server

# A 1x1 red PNG.
TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def _create_script(server: Server, path: str, content: str) -> None:
    r = server.api.post(
        "/w/main/scripts/create",
        json={"path": path, "language": "python3", "summary": "", "content": content},
    )
    assert r.status_code == 201, r.text


def _run(server: Server, path: str, args: dict[str, Any]) -> str:
    r = server.api.post(f"/w/main/jobs/run/p/{path}", json=args)
    assert r.status_code == 201, r.text
    return r.text


def _preview(server: Server, code: str, args: dict[str, Any] | None = None) -> str:
    r = server.api.post(
        "/w/main/jobs/run/preview",
        json={"content": code, "language": "python3", "args": args or {}},
    )
    assert r.status_code == 201, r.text
    return r.text


def _returning(value: Any) -> str:
    """A script whose result is ``value``."""
    return f"import json\n\ndef main():\n    return json.loads({json.dumps(json.dumps(value))})\n"


def test_job_page_streams_logs_before_the_end_then_shows_the_result(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    path = server.unique("streams")
    _create_script(
        server,
        path,
        "import time\n\n"
        "def main(rows: int = 2):\n"
        '    print("first line", flush=True)\n'
        "    for i in range(5):\n"
        "        time.sleep(0.5)\n"
        '        print(f"tick {i}", flush=True)\n'
        '    print("last line", flush=True)\n'
        '    return [{"name": "alpha", "n": 1}, {"name": "beta", "extra": True}][:rows]\n',
    )
    job = _run(server, path, {"rows": 2})
    admin_page.goto(f"/w/main/run/{job}")
    logs = admin_page.get_by_test_id("job-logs")
    status = admin_page.get_by_test_id("job-status").locator("[data-status]")
    # The first line shows while the job still runs: the log is streamed, not read at the end.
    expect(logs).to_contain_text("first line")
    expect(status).to_have_attribute("data-status", "running")
    expect(logs).not_to_contain_text("last line")
    expect(admin_page.get_by_test_id("job-duration")).to_contain_text("running for")
    # Then the end: the status, the whole log, the result (a list of objects is a table whose
    # columns are the union of the rows' keys).
    expect(status).to_have_attribute("data-status", "success", timeout=30_000)
    expect(logs).to_contain_text("last line")
    table = admin_page.get_by_test_id("job-result").get_by_test_id("result-table")
    # (the stored JSON keeps no key order: the columns are compared as a set)
    expect(table.locator("th")).to_have_count(3)
    assert sorted(table.locator("th").all_inner_texts()) == ["extra", "n", "name"]
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("alpha")
    # The details: who, the script (a link to it), the arguments.
    expect(admin_page.get_by_test_id("job-created-by")).to_contain_text("admin")
    expect(admin_page.get_by_test_id("job-script-link")).to_have_attribute(
        "href", f"/w/main/scripts/get/{path}"
    )
    expect(admin_page.get_by_test_id("job-args")).to_contain_text('"rows": 2')
    # The raw JSON is a toggle away.
    admin_page.get_by_test_id("result-raw-toggle").click()
    raw = admin_page.get_by_test_id("result-raw")
    expect(raw).to_be_visible()
    assert json.loads(raw.inner_text())[1] == {"name": "beta", "extra": True}
    admin_page.get_by_test_id("result-raw-toggle").click()
    shot(admin_page, "job")


def test_result_kinds_render(admin_page: Page, server: Server) -> None:
    html = _preview(server, _returning({"html": "<b>hi</b><script>document.title='x'</script>"}))
    png = _preview(server, _returning({"png": TINY_PNG}))
    every = _preview(
        server,
        _returning(
            {
                "render_all": [
                    {"markdown": "# Title\n\nsome *text*"},
                    {
                        "file": {
                            "content": base64.b64encode(b"hello file").decode(),
                            "filename": "a.txt",
                        }
                    },
                    {"table-col": {"x": [1, 2, 3], "y": ["a", "b", "c"]}},
                    {"svg": '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'},
                ]
            }
        ),
    )
    failing = _preview(server, 'def main():\n    raise ValueError("it broke")\n')

    admin_page.goto(f"/w/main/run/{html}")
    frame = admin_page.get_by_test_id("result-html")
    # HTML runs in an iframe with an empty sandbox: shown, but no script of it runs.
    expect(frame).to_have_attribute("sandbox", "")
    expect(admin_page.frame_locator("[data-testid=result-html]").locator("b")).to_have_text("hi")

    admin_page.goto(f"/w/main/run/{png}")
    img = admin_page.get_by_test_id("result-image")
    expect(img).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(img).to_be_visible()
    assert img.evaluate("(i) => i.complete && i.naturalWidth") == 1

    admin_page.goto(f"/w/main/run/{every}")
    items = admin_page.get_by_test_id("result-item")
    expect(items).to_have_count(4)
    md = admin_page.frame_locator("[data-testid=result-markdown]")
    expect(md.locator("h1")).to_have_text("Title")
    expect(md.locator("em")).to_have_text("text")
    link = admin_page.get_by_test_id("result-file")
    expect(link).to_have_attribute("download", "a.txt")
    with admin_page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == b"hello file"
    expect(items.nth(2).locator("th")).to_have_text(["x", "y"])
    expect(items.nth(2).locator("tbody tr")).to_have_count(3)
    expect(items.nth(3).get_by_test_id("result-image")).to_have_attribute(
        "src", re.compile(r"^data:image/svg\+xml")
    )

    admin_page.goto(f"/w/main/run/{failing}")
    expect(admin_page.get_by_test_id("job-status").locator("[data-status]")).to_have_attribute(
        "data-status", "failure"
    )
    error = admin_page.get_by_test_id("result-error")
    expect(error).to_contain_text("ValueError")
    expect(error).to_contain_text("it broke")
    expect(error).to_contain_text("Traceback")


def test_rerun_starts_a_new_job_with_the_same_arguments(admin_page: Page, server: Server) -> None:
    path = server.unique("rerun")
    _create_script(server, path, "def main(x: int, label: str = 'é'):\n    return x + 1\n")
    first = _run(server, path, {"x": 41, "label": "ünïcode"})
    admin_page.goto(f"/w/main/run/{first}")
    expect(admin_page.get_by_test_id("job-result")).to_contain_text("42")
    # "Re-run with edits" opens the script's run form with these arguments (base64url JSON).
    edit = admin_page.get_by_test_id("rerun-edit").get_attribute("href") or ""
    assert edit.startswith(f"/w/main/scripts/get/{path}?args=")
    encoded = edit.split("args=", 1)[1]
    decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert json.loads(decoded) == {"x": 41, "label": "ünïcode"}

    admin_page.get_by_test_id("rerun").click()
    expect(admin_page).not_to_have_url(re.compile(f"/run/{first}$"))
    expect(admin_page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    second = admin_page.url.rsplit("/", 1)[1]
    expect(admin_page.get_by_test_id("job-result")).to_contain_text("42")
    job = server.api.get(f"/w/main/jobs_u/get/{second}").json()
    assert job["args"] == {"x": 41, "label": "ünïcode"}
    assert job["script_path"] == path

    # Re-run with edits: the script's run form, prefilled; an edited value runs.
    admin_page.get_by_test_id("rerun-edit").click()
    expect(admin_page).to_have_url(re.compile(f"/w/main/scripts/get/{path}\\?args="))
    x = admin_page.get_by_test_id("field-x").locator("input")
    expect(x).to_have_value("41")
    expect(admin_page.get_by_test_id("field-label").locator("input")).to_have_value("ünïcode")
    x.fill("99")
    admin_page.get_by_test_id("run").click()
    expect(admin_page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    expect(admin_page.get_by_test_id("job-result")).to_contain_text("100")

    # A preview is run again from its code.
    preview = _preview(server, "def main(n: int):\n    return n * 2\n", {"n": 21})
    admin_page.goto(f"/w/main/run/{preview}")
    expect(admin_page.get_by_test_id("job-result")).to_contain_text("42")
    expect(admin_page.get_by_test_id("rerun-edit")).to_have_count(0)
    admin_page.get_by_test_id("rerun").click()
    expect(admin_page).not_to_have_url(re.compile(f"/run/{preview}$"))
    expect(admin_page.get_by_test_id("job-result")).to_contain_text("42")
    again = server.api.get(f"/w/main/jobs_u/get/{admin_page.url.rsplit('/', 1)[1]}").json()
    assert again["job_kind"] == "preview" and again["args"] == {"n": 21}


def test_cancel_a_running_job(admin_page: Page, server: Server) -> None:
    job = _preview(
        server,
        'import time\n\ndef main():\n    print("started", flush=True)\n    time.sleep(120)\n',
    )
    admin_page.goto(f"/w/main/run/{job}")
    status = admin_page.get_by_test_id("job-status").locator("[data-status]")
    expect(admin_page.get_by_test_id("job-logs")).to_contain_text("started")
    expect(status).to_have_attribute("data-status", "running")
    admin_page.get_by_test_id("cancel").click()
    expect(status).to_have_attribute("data-status", "canceled")
    expect(admin_page.get_by_test_id("cancel")).to_have_count(0)
    assert server.api.get(f"/w/main/jobs_u/get/{job}").json()["status"] == "canceled"


def test_runs_list_filters_by_path_and_status_and_charts_durations(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    path = server.unique("listed")
    other = server.unique("not_listed")
    code = "def main(ok: bool = True):\n    if not ok:\n        raise RuntimeError('no')\n    return ok\n"
    _create_script(server, path, code)
    _create_script(server, other, code)
    for p, args in ((path, {"ok": True}), (path, {"ok": True}), (path, {"ok": False}), (other, {})):
        r = server.api.post(f"/w/main/jobs/run_wait_result/p/{p}", json=args)
        assert r.status_code in (200, 422), r.text

    admin_page.goto("/w/main/runs")
    rows = admin_page.get_by_test_id("run-row")
    expect(rows.filter(has_text=other)).to_have_count(1)
    admin_page.get_by_test_id("filter-path").fill(path)
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text=other)).to_have_count(0)
    chart = admin_page.get_by_test_id("runs-chart")
    expect(chart.get_by_test_id("chart-dot")).to_have_count(3)
    expect(chart.locator("[data-testid=chart-dot][data-status=failure]")).to_have_count(1)
    expect(admin_page).to_have_url(re.compile(r"path=" + re.escape(path.replace("/", "%2F"))))
    shot(admin_page, "runs")

    admin_page.get_by_test_id("filter-status").select_option("failure")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-status", "failure")
    expect(chart.get_by_test_id("chart-dot")).to_have_count(1)
    admin_page.get_by_test_id("filter-status").select_option("success")
    expect(rows).to_have_count(2)
    expect(admin_page).to_have_url(re.compile(r"status=success"))
    # The filters are in the URL: a reload (or a shared link) shows the same list.
    admin_page.reload()
    expect(admin_page.get_by_test_id("filter-path")).to_have_value(path)
    expect(rows).to_have_count(2)
    # Who started them, and when.
    admin_page.get_by_test_id("filter-who").fill("nobody-at-all")
    expect(admin_page.get_by_test_id("runs-empty")).to_be_visible()
    admin_page.get_by_test_id("filter-who").fill("admin")
    admin_page.get_by_test_id("filter-time").select_option("1h")
    expect(rows).to_have_count(2)
    # A row opens its job.
    rows.first.get_by_role("link").first.click()
    expect(admin_page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    expect(admin_page.get_by_test_id("job-script-link")).to_have_text(path)


def test_runs_list_refreshes_itself(admin_page: Page, server: Server) -> None:
    path = server.unique("refreshed")
    _create_script(server, path, "def main():\n    return 1\n")
    admin_page.goto(f"/w/main/runs?path={path}&match=exact")
    expect(admin_page.get_by_test_id("runs-empty")).to_be_visible()
    _run(server, path, {})
    # No reload: the list polls.
    expect(admin_page.get_by_test_id("run-row")).to_have_count(1)
    expect(admin_page.get_by_test_id("run-row").first).to_have_attribute("data-status", "success")


def test_operator_may_rerun_and_cancel_runs_of_saved_scripts(
    page: Page, server: Server, login: Callable[[Page, str, str], None]
) -> None:
    email, password = server.member("operator")
    login(page, email, password)
    # An operator sees the runs of scripts they may read: a folder everyone reads.
    r = server.api.post("/w/main/folders/create", json={"name": "runs_shared"})
    assert r.status_code in (201, 400), r.text
    r = server.api.post(
        "/w/main/acls/add/folder/runs_shared", json={"owner": "g/all", "write": False}
    )
    assert r.status_code == 200, r.text
    path = f"f/runs_shared/{server.unique('op').rsplit('/', 1)[1]}"
    _create_script(
        server,
        path,
        "import time\n\ndef main(x: int = 1, wait: float = 0):\n"
        '    print("waiting", flush=True)\n    time.sleep(wait)\n    return x\n',
    )
    job = _run(server, path, {"x": 5})
    page.goto(f"/w/main/run/{job}")
    expect(page.get_by_test_id("job-result")).to_contain_text("5")
    expect(page.get_by_test_id("rerun-edit")).to_be_visible()
    page.get_by_test_id("rerun").click()
    expect(page).not_to_have_url(re.compile(f"/run/{job}$"))
    expect(page.get_by_test_id("job-result")).to_contain_text("5")
    rerun = server.api.get(f"/w/main/jobs_u/get/{page.url.rsplit('/', 1)[1]}").json()
    assert rerun["created_by"].startswith("operator")
    # Their own long run, canceled from the page.
    token = httpx.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": password}
    ).text
    r = httpx.post(
        f"{server.url}/api/w/main/jobs/run/p/{path}",
        json={"wait": 120},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.text
    page.goto(f"/w/main/run/{r.text}")
    expect(page.get_by_test_id("job-logs")).to_contain_text("waiting")
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("job-status").locator("[data-status]")).to_have_attribute(
        "data-status", "canceled"
    )
