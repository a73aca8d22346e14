"""What the issue asks of the UI as a whole: a first load without the editor, language packs
fetched on demand, the bundle's size reported by the build, run pages usable on a phone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from gristmill.server.webui import find_frontend
from playwright.sync_api import Page, expect

from .conftest import PHONE, Server

LOGS_THEN_TABLE = """\
def main(n: int = 3):
    for i in range(n):
        print(f"row {i} computed")
    return [{"name": f"item {i}", "size": i * 10} for i in range(n)]
"""


def _entry_chunks(dist: Path) -> list[Path]:
    """The JavaScript a first visit downloads: the entry and what index.html preloads."""
    index = (dist / "index.html").read_text()
    names = re.findall(r'(?:src|href)="/assets/([^"]+\.js)"', index)
    assert names, index
    return [dist / "assets" / name for name in names]


def test_the_first_load_has_no_editor_and_language_packs_load_on_demand(
    webui_dist: Path,
) -> None:
    first = "".join(p.read_text() for p in _entry_chunks(webui_dist))
    # CodeMirror's DOM class names: present only in the editor's chunks.
    assert "cm-content" not in first
    assets = {p.name for p in (webui_dist / "assets").iterdir()}
    editor = [n for n in assets if n.startswith("ScriptEditor-") and n.endswith(".js")]
    assert editor, sorted(assets)
    # Each language pack is a chunk of its own, imported by no page statically.
    for language in ("python", "javascript", "shell", "sql", "perl"):
        packs = [n for n in assets if n.startswith(f"{language}-") and n.endswith(".js")]
        assert packs, f"no chunk for {language}: {sorted(assets)}"
        static_import = re.compile(rf'from"\./{re.escape(packs[0])}"')
        for name in editor:
            assert not static_import.search((webui_dist / "assets" / name).read_text())


def test_the_build_reports_the_bundle_size(webui_dist: Path, tmp_path: Path) -> None:
    frontend = find_frontend()
    assert frontend is not None
    built = subprocess.run(
        ["npx", "vite", "build", "--outDir", str(tmp_path / "out"), "--emptyOutDir"],
        cwd=frontend,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    report = re.search(
        r"bundle: first load ([\d.]+) kB \(([\d.]+) kB gzip\); all chunks ([\d.]+) kB", built.stdout
    )
    assert report, built.stdout[-3000:]
    first, first_gzip, total = (float(x) for x in report.groups())
    assert 0 < first_gzip < first < total


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


def test_a_job_page_works_on_a_phone(admin_page: Page, server: Server) -> None:
    path = server.unique("phone_job")
    r = server.api.post(
        "/w/main/scripts/create",
        json={"path": path, "language": "python3", "content": LOGS_THEN_TABLE},
    )
    assert r.status_code == 201, r.text
    run = server.api.post(f"/w/main/jobs/run/p/{path}", json={"n": 3})
    assert run.status_code == 201, run.text
    admin_page.set_viewport_size(PHONE)
    admin_page.goto(f"/w/main/run/{run.text}")
    expect(admin_page.get_by_text("row 2 computed")).to_be_visible()
    table = admin_page.locator("table").filter(has_text="item 2")
    expect(table).to_be_visible()
    _no_sideways_scroll(admin_page)
    # The header's links fold into a menu.
    runs_link = admin_page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs")
    expect(runs_link).to_be_hidden()
    admin_page.get_by_role("button", name="Menu").click()
    expect(runs_link).to_be_visible()


def test_an_app_page_shows_a_table_result_on_a_phone(admin_page: Page, server: Server) -> None:
    path = server.unique("phone_app")
    r = server.api.post(
        "/w/main/scripts/create",
        json={
            "path": path,
            "language": "python3",
            "summary": "Sizes",
            "content": LOGS_THEN_TABLE,
        },
    )
    assert r.status_code == 201, r.text
    admin_page.set_viewport_size(PHONE)
    admin_page.goto(f"/a/main/{path}")
    expect(admin_page.get_by_test_id("app-title")).to_have_text("Sizes")
    admin_page.keyboard.press("Control+Enter")  # runs, as the Run button does
    table = admin_page.get_by_test_id("app-result").locator("table")
    expect(table.get_by_role("columnheader", name="size")).to_be_visible()
    expect(table.get_by_role("cell", name="item 2")).to_be_visible()
    _no_sideways_scroll(admin_page)
