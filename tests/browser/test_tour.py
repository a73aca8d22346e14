"""The README's tour (Quickstart to the TypeScript example), done in the browser only, as a
newcomer would: log in, write the Python ``hello`` script in the editor, test it, save it and
run it from its page; make the folder and the secret the TypeScript example reads; write that
example (Bun), wait for its dependency lock, and run it twice from its page: the first cow
says ``undefined``, the second the first run's time, and the result holds the secret.

Everything is found by what the page shows (labels, button and link names, headings); a
``data-testid`` only where nothing visible names the element (the run form, the result).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from .conftest import Server

# The README's scripts, verbatim.
HELLO = """\
def main(name: str = "world", times: int = 1):
    for _ in range(times):
        print(f"hello {name}")
    return {"greeted": name}
"""

EXAMPLE = """\
import * as wmill from "windmill-client";
import * as cowsay from "cowsay@1.5.0";

type Postgresql = { host: string; port: number; user: string; dbname: string; sslmode: string; password: string };

export async function main(a: number, b: "my" | "enum", c: Postgresql, d = "inferred type string from default arg", e = { nested: "object" }) {
  const email = process.env["WM_EMAIL"];
  let variable = await wmill.getVariable("f/company-folder/my_secret");
  const lastTimeRun = await wmill.getState();
  console.log(cowsay.say({ text: "hello " + email + " " + lastTimeRun }));
  await wmill.setState(Date.now());
  return { foo: d, variable };
}
"""

FOLDER = "company-folder"
SECRET_PATH = f"f/{FOLDER}/my_secret"
SECRET = "s3cr3t-value"
DEFAULT_D = "inferred type string from default arg"
# The first `bun install` of cowsay and windmill-client from the npm registry.
LOCK_TIMEOUT_MS = 120_000


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name if name != "Home" else "Scripts")


def write_code(page: Page, code: str) -> None:
    """Replace the editor's text as a paste would (no auto-indent or bracket closing)."""
    editor = page.get_by_role("textbox", name="Script code")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)
    expect(editor).to_contain_text(code.splitlines()[-1])


def new_script(page: Page, name: str, code: str, language: str | None = None) -> None:
    """Home → New script: name, language, code; the form follows main's parameters."""
    nav(page, "Home")
    page.get_by_role("link", name="New script").click()
    expect(page.get_by_role("heading", name="New script")).to_be_visible()
    page.get_by_label("Script name").fill(name)
    if language:
        page.get_by_label("Language").select_option(label=language)
    write_code(page, code)


def save(page: Page, path: str) -> None:
    """Save, then wait for the version's dependency lock."""
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(path)
    expect(page.get_by_text("Deployed")).to_be_visible(timeout=LOCK_TIMEOUT_MS)


def run_form(page: Page) -> Locator:
    return page.get_by_test_id("run-form")


def finished_job(page: Page, path: str) -> tuple[Locator, Locator]:
    """On the job page of a run of ``path``, once it succeeded: its logs and its result."""
    expect(page.get_by_role("heading", level=1)).to_contain_text("Run")
    expect(page.get_by_role("link", name=path, exact=True)).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_contain_text("success", timeout=60_000)
    return page.get_by_label("Logs", exact=True), page.get_by_test_id("job-result")


def test_the_readme_tour_in_the_browser(
    page: Page,
    server: Server,
    login: Callable[[Page, str, str], None],
    shot: Callable[[Page, str], Path],
) -> None:
    suffix = uuid.uuid4().hex[:8]

    # 1. Log in with the admin's email and printed password: the workspace's scripts.
    login(page, server.admin_email, server.admin_password)
    expect(page).to_have_url(f"{server.url}/w/main")
    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()

    # 2. hello.py: written in the editor, whose form follows main's parameters; a test run
    # (the README's `gristmill run hello.py --arg name=Ada --arg times=2`), then saved.
    hello = f"u/admin/hello_{suffix}"
    new_script(page, f"hello_{suffix}", HELLO)
    test_run = page.locator("section").filter(has=page.get_by_role("heading", name="Test run"))
    expect(test_run.get_by_label("name", exact=True)).to_have_value("world")
    expect(test_run.get_by_label("times", exact=True)).to_have_value("1")
    test_run.get_by_label("name", exact=True).fill("Ada")
    test_run.get_by_label("times", exact=True).fill("2")
    test_run.get_by_role("button", name="Run", exact=True).click()
    expect(test_run.get_by_label("Logs", exact=True)).to_have_text("hello Ada\nhello Ada\n")
    expect(test_run.get_by_test_id("job-result")).to_contain_text('"greeted": "Ada"')
    save(page, hello)

    # Its page: the form from its schema, with the defaults; run it with Ada, twice.
    page.get_by_role("link", name="Open its page").click()
    expect(page.get_by_role("heading", name=hello)).to_be_visible()
    form = run_form(page)
    expect(form.get_by_label("name", exact=True)).to_have_value("world")
    form.get_by_label("name", exact=True).fill("Ada")
    form.get_by_label("times", exact=True).fill("2")
    form.get_by_role("button", name="Run", exact=True).click()
    logs, result = finished_job(page, hello)
    expect(logs).to_have_text("hello Ada\nhello Ada\n")
    expect(result).to_contain_text('"greeted": "Ada"')

    # 3. The folder and the secret of the TypeScript example.
    nav(page, "Folders")
    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog", name="New folder")
    dialog.get_by_label(re.compile(r"^Name")).fill(FOLDER)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_have_count(0)
    folder_row = page.get_by_role("row").filter(has_text=f"f/{FOLDER}")
    expect(folder_row).to_contain_text("u/admin")  # its owner: whoever made it

    nav(page, "Variables")
    page.get_by_role("button", name="New variable").click()
    dialog = page.get_by_role("dialog", name="New variable")
    dialog.get_by_label("Path").fill(SECRET_PATH)
    dialog.get_by_label("Secret").check()
    dialog.get_by_label("Value").fill(SECRET)
    dialog.get_by_label("Description").fill("a secret")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_have_count(0)
    secret_row = page.get_by_role("row").filter(has_text=SECRET_PATH)
    expect(secret_row).to_contain_text("secret")
    expect(secret_row).to_contain_text("a secret")
    expect(secret_row).not_to_contain_text(SECRET)  # never shown back

    # 4. example.ts on Bun: its form (c is a postgresql resource), its lock (bun install).
    example = f"u/admin/example_{suffix}"
    new_script(page, f"example_{suffix}", EXAMPLE, language="TypeScript (Bun)")
    test_run = page.locator("section").filter(has=page.get_by_role("heading", name="Test run"))
    expect(test_run.get_by_label("d", exact=True)).to_have_value(DEFAULT_D)
    expect(test_run.get_by_label("nested", exact=True)).to_have_value("object")
    save(page, example)
    expect(page.get_by_text("Dependency lock")).to_be_visible()

    # The home page lists both scripts; the example's page is one click away.
    nav(page, "Home")
    expect(page.get_by_role("link", name=hello, exact=True)).to_be_visible()
    page.get_by_role("link", name=example, exact=True).click()
    expect(page.get_by_role("heading", name=example)).to_be_visible()

    # c is a postgresql resource: picked from a list, or given as JSON, as the README does.
    # With none in the workspace (other tests of the shared server may have made some), the
    # field says so and offers the JSON at once.
    listed = server.api.get("/w/main/resources/list", params={"resource_type": "postgresql"})
    assert listed.status_code == 200, listed.text
    none_yet = listed.json() == []

    def run_example(use_hint: bool) -> None:
        form = run_form(page)
        form.get_by_label("a", exact=True).fill("1")
        form.get_by_label("b", exact=True).select_option("my")
        c = form.get_by_label("c", exact=True)
        hint = form.get_by_text("No postgresql resource here yet")
        if none_yet:
            expect(hint).to_be_visible()
        else:
            expect(c.locator("option").first).to_have_text("— a postgresql resource —")
            expect(hint).to_have_count(0)
        if none_yet and use_hint:
            form.get_by_role("button", name="enter its value as JSON").click()
        else:
            c.select_option(label="Enter a value (JSON)…")
        expect(c).to_be_focused()
        expect(form.get_by_text("required", exact=True)).to_have_count(0)  # not yet: empty
        c.fill('{"host": "db"}')
        expect(form.get_by_label("d", exact=True)).to_have_value(DEFAULT_D)
        form.get_by_role("button", name="Run", exact=True).click()

    # First run: no state yet, the cow says "undefined".
    started = time.time() * 1000
    run_example(use_hint=True)
    logs, result = finished_job(page, example)
    finished = time.time() * 1000
    expect(logs).to_contain_text(f"< hello {server.admin_email} undefined >")
    expect(result).to_contain_text(f'"variable": "{SECRET}"')
    expect(result).to_contain_text(f'"foo": "{DEFAULT_D}"')
    expect(page.get_by_label("Job details")).to_contain_text('"host": "db"')

    # Second run, from the script's page again: the cow says when the first one ran.
    page.get_by_role("link", name=example, exact=True).click()
    expect(page.get_by_role("heading", name=example)).to_be_visible()
    run_example(use_hint=False)
    logs, result = finished_job(page, example)
    said = re.compile(rf"< hello {re.escape(server.admin_email)} (\d+) >")
    expect(logs).to_contain_text(said)
    found = said.search(logs.inner_text())
    assert found is not None
    assert started - 2_000 <= int(found.group(1)) <= finished + 2_000, found.group(0)
    expect(result).to_contain_text(f'"variable": "{SECRET}"')
    expect(result).to_contain_text(f'"foo": "{DEFAULT_D}"')
    shot(page, "tour-ts-run")
