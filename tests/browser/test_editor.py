"""The script editor: code, the live form, a parse error at its line, a test run, saving with
the lock status, a second version, the history's diff; operators read only; a third-party
runtime highlighted by its file extension."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Server

V1 = """\
def main(name: str = "world"):
    print(f"hello {name}")
    return {"greeting": f"Hello, {name}!"}
"""

BROKEN = """\
def main(name: str = "world", count: int = 2):
    print(name)
    x = = 1
    return x
"""

RUNS = """\
def main(name: str = "world", count: int = 2):
    for i in range(count):
        print(f"line {i} for {name}")
    return {"greeting": f"Hello, {name}!", "count": count}
"""


def set_code(page: Page, code: str) -> None:
    """Replace the editor's text, as a paste would (no auto-indent or bracket closing)."""
    page.get_by_test_id("code-editor").locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(code)


def test_write_run_save_and_compare_versions(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    name = f"editor_{uuid.uuid4().hex[:8]}"
    path = f"u/admin/{name}"
    page.goto("/w/main/scripts/new")

    # A new script starts with the runtime's template, highlighted as Python.
    editor = page.get_by_test_id("code-editor")
    expect(editor).to_have_attribute("data-language", "Python")
    expect(editor).to_contain_text("def main(")
    form = page.get_by_test_id("schema-form")
    expect(form.get_by_label("times", exact=True)).to_be_visible()

    page.get_by_label("Script name").fill(name)
    set_code(page, V1)
    expect(form.get_by_label("name", exact=True)).to_be_visible()
    expect(form.get_by_label("times", exact=True)).to_have_count(0)

    # Typing a parameter adds its field, with nothing saved.
    page.keyboard.press("ControlOrMeta+Home")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.type(", count: int = 2")
    expect(editor).to_contain_text('def main(name: str = "world", count: int = 2):')
    expect(form.get_by_label("count", exact=True)).to_be_visible()
    expect(page).to_have_url(f"{server.url}/w/main/scripts/new")

    # A syntax error: said with its line, marked in the editor; the last good form stays.
    set_code(page, BROKEN)
    expect(page.get_by_test_id("parse-error")).to_contain_text("Line 3")
    expect(page.get_by_test_id("parse-error")).to_contain_text("invalid syntax")
    expect(editor.locator(".cm-lint-marker-error")).to_have_count(1)
    expect(editor.locator(".cm-lintRange-error")).to_contain_text("= 1")
    expect(form.get_by_label("count", exact=True)).to_be_visible()

    # Fixed, then run unsaved (Ctrl+Enter in the editor): logs and result beside the code.
    set_code(page, RUNS)
    expect(page.get_by_test_id("parse-error")).to_have_count(0)
    form.get_by_label("name", exact=True).fill("Ada")
    editor.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+Enter")
    output = page.get_by_test_id("job-output")
    expect(output.get_by_test_id("job-logs")).to_contain_text("line 0 for Ada")
    expect(output.get_by_test_id("job-logs")).to_contain_text("line 1 for Ada")
    expect(output.get_by_test_id("job-result")).to_contain_text("Hello, Ada!")
    # Run left the text alone (Ctrl+Enter is not a new line here).
    expect(editor.locator(".cm-line")).to_have_count(RUNS.count("\n") + 1)
    shot(page, "editor")

    # Ctrl+S saves: the URL becomes the script's edit URL and the lock status shows.
    page.keyboard.press("ControlOrMeta+s")
    expect(page).to_have_url(f"{server.url}/w/main/scripts/edit/{path}")
    expect(page.get_by_test_id("deploy-status")).to_contain_text("Deployed", timeout=60_000)
    expect(page.get_by_test_id("unsaved")).to_have_count(0)
    # The test run stays on screen across the save.
    expect(page.get_by_test_id("job-result")).to_contain_text("Hello, Ada!")
    first = server.api.get(f"/w/main/scripts/get/p/{path}").json()
    assert first["content"] == RUNS

    # A second version, with a message.
    set_code(page, RUNS.replace('f"Hello, {name}!"', 'f"Hi, {name}!"'))
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    page.get_by_label("Deployment message").fill("say hi")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("unsaved")).to_have_count(0)
    expect(page.get_by_test_id("deploy-status")).to_contain_text("Deployed", timeout=60_000)
    history = server.api.get(f"/w/main/scripts/history/p/{path}").json()
    assert [h["deployment_msg"] for h in history] == ["say hi", None]
    assert history[1]["script_hash"] == first["hash"]

    # History: both versions, with author and message; ticking both shows their diff.
    page.get_by_test_id("history-tab").click()
    rows = page.get_by_test_id("history-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("say hi")
    expect(rows.first).to_contain_text("admin")
    rows.nth(0).get_by_test_id("history-select").check()
    rows.nth(1).get_by_test_id("history-select").check()
    diff = page.get_by_test_id("diff-view")
    expect(diff.locator(".cm-changedLine").filter(has_text="Hi, {name}!")).to_have_count(1)
    expect(diff.locator(".cm-changedLine").filter(has_text="Hello, {name}!")).to_have_count(1)
    shot(page, "editor-history")

    # One version against the editor's text (the newer version's): the same change.
    rows.nth(0).get_by_test_id("history-select").uncheck()
    expect(page.get_by_test_id("diff-title")).to_contain_text("the editor's text")
    expect(diff.locator(".cm-changedLine").filter(has_text="Hi, {name}!")).to_have_count(1)


def test_a_path_the_server_would_refuse_is_refused_before_saving(admin_page: Page) -> None:
    page = admin_page
    page.goto("/w/main/scripts/new")
    page.get_by_label("Script name").fill("has space")
    expect(page.get_by_test_id("path-error")).to_contain_text("not a valid path")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-error")).to_contain_text("not a valid path")
    expect(page).to_have_url(re.compile(r"/scripts/new$"))


def test_operator_sees_a_read_only_editor(
    page: Page, server: Server, login: Callable[[Page, str, str], None]
) -> None:
    # A folder every member reads, so that the operator sees the script.
    r = server.api.post(
        "/w/main/folders/create", json={"name": "editorshared", "extra_perms": {"g/all": False}}
    )
    assert r.status_code in (201, 400), r.text
    path = f"f/editorshared/ro_{uuid.uuid4().hex[:8]}"
    r = server.api.post(
        "/w/main/scripts/create",
        json={
            "path": path,
            "language": "python3",
            "content": "def main(x: int = 1):\n    return x\n",
        },
    )
    assert r.status_code == 201, r.text
    email, password = server.member("operator")
    login(page, email, password)
    page.goto(f"/w/main/scripts/edit/{path}")
    expect(page.get_by_test_id("readonly-notice")).to_be_visible()
    editor = page.get_by_test_id("code-editor")
    expect(editor).to_contain_text("def main(x: int = 1):")
    expect(editor).to_have_attribute("data-readonly", "true")
    expect(editor.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(page.get_by_test_id("save")).to_have_count(0)
    expect(page.get_by_test_id("run-preview")).to_have_count(0)
    page.goto("/w/main/scripts/new")
    expect(page.get_by_test_id("readonly-notice")).to_contain_text("cannot write scripts")
    expect(page.get_by_test_id("save")).to_have_count(0)


def test_third_party_runtime_is_highlighted_by_its_extension(admin_page: Page) -> None:
    # Perl comes from the gristmill-perl fixture plugin (".pl"); the UI knows nothing of it.
    page = admin_page
    page.goto("/w/main/scripts/new")
    page.get_by_test_id("language").select_option("perl")
    editor = page.get_by_test_id("code-editor")
    expect(editor).to_contain_text("sub main")
    expect(editor).to_have_attribute("data-language", "Perl")
    # Highlighted: the text is split into styled tokens, which plain text is not.
    expect(editor.locator(".cm-line span[class]").first).to_be_visible()
