"""Forms generated from a script's schema (components/SchemaForm.svelte): the script page's
run form and the shareable app page (``/a/<workspace>/<path>``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from .conftest import PHONE, Server

# Every kind of parameter the Python parser writes a schema for: a string, a resource of a
# type (a class the script does not define as a model names a resource type, Windmill's
# rule), an int and a float with defaults, a bool, a list of strings, a dict, a datetime,
# bytes, a Literal (an enum) and a dataclass (nested fields).
KINDS = '''
import datetime as dt
from dataclasses import dataclass
from typing import Literal, TypedDict


class postgresql(TypedDict):
    host: str
    dbname: str


@dataclass
class Point:
    x: int
    y: int = 0


def main(
    name: str,
    db: postgresql,
    count: int = 3,
    ratio: float = 0.5,
    flag: bool = False,
    tags: list[str] = ["a"],
    options: dict = {"k": 1},
    when: dt.datetime = None,
    blob: bytes = None,
    color: Literal["red", "green", "blue"] = "green",
    point: Point = None,
):
    """Exercise every kind of field.

    Args:
        name: Who to greet.
        count: How many times.
    """
    return {"name": name, "count": count, "host": db["host"]}
'''

HELLO = '''
def main(name: str = "world", shout: bool = False):
    """Greets someone.

    Args:
        name: Who to greet.
    """
    print("greeting", name)
    if name == "boom":
        raise ValueError("no boom today")
    text = f"Hello, {name}!"
    return text.upper() if shout else text
'''


def _create_script(server: Server, path: str, content: str, summary: str, **extra: Any) -> None:
    r = server.api.post(
        "/w/main/scripts/create",
        json={"path": path, "language": "python3", "summary": summary, "content": content, **extra},
    )
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def kinds(server: Server) -> tuple[str, str]:
    """A script taking every kind of parameter, and a postgresql resource (paths)."""
    resource = f"u/admin/pg_{uuid.uuid4().hex[:8]}"
    r = server.api.post(
        "/w/main/resources/create",
        json={
            "path": resource,
            "resource_type": "postgresql",
            "value": {"host": "db.example", "dbname": "app"},
        },
    )
    assert r.status_code == 201, r.text
    path = server.unique("kinds")
    _create_script(
        server, path, KINDS, "Every kind", description="A script taking every kind of field."
    )
    return path, resource


def _field(page: Page, name: str) -> Locator:
    return page.get_by_test_id(f"field-{name}")


def _jobs_of(server: Server, path: str) -> list[dict[str, Any]]:
    r = server.api.get("/w/main/jobs/list", params={"script_path_exact": path})
    assert r.status_code == 200, r.text
    return r.json()


def test_run_form_shows_each_kind_with_defaults_and_required_marks(
    admin_page: Page, server: Server, kinds: tuple[str, str], shot: Callable[[Page, str], Path]
) -> None:
    path, resource = kinds
    page = admin_page
    page.goto(f"/w/main/scripts/get/{path}")
    expect(page.get_by_test_id("script-title")).to_have_text("Every kind")
    expect(page.get_by_test_id("script-path")).to_have_text(path)
    expect(page.get_by_test_id("script-language")).to_have_text("python3")
    expect(page.get_by_test_id("script-description")).to_have_text(
        "A script taking every kind of field."
    )
    expect(page.get_by_test_id("edit-link")).to_have_attribute(
        "href", f"/w/main/scripts/edit/{path}"
    )
    expect(page.get_by_test_id("app-link")).to_have_attribute("href", f"/a/main/{path}")
    expect(page.get_by_test_id("runs-link")).to_have_attribute(
        "href", re.compile(r"/w/main/runs\?path=" + re.escape(path.replace("/", "%2F")))
    )

    kinds_shown = {
        "name": "string",
        "db": "resource",
        "count": "integer",
        "ratio": "number",
        "flag": "boolean",
        "tags": "array",
        "options": "json",
        "when": "date-time",
        "blob": "bytes",
        "color": "enum",
        "point": "object",
    }
    for name, kind in kinds_shown.items():
        expect(_field(page, name)).to_have_attribute("data-kind", kind)
    # Required parameters (no default) are marked, the others are not.
    for name in kinds_shown:
        expect(_field(page, name).locator(".field-head .req")).to_have_count(
            1 if name in ("name", "db") else 0
        )
    # The docstring's descriptions show beside their fields.
    expect(_field(page, "name").locator(".field-desc")).to_have_text("Who to greet.")
    # Defaults are filled in.
    expect(_field(page, "count").locator("input")).to_have_value("3")
    expect(_field(page, "ratio").locator("input")).to_have_value("0.5")
    expect(_field(page, "flag").get_by_role("checkbox")).not_to_be_checked()
    expect(_field(page, "tags[0]").locator("input")).to_have_value("a")
    expect(_field(page, "options").locator("textarea")).to_have_value(re.compile(r'"k": 1'))
    expect(_field(page, "color").locator("select option:checked")).to_have_text("green")
    # Native pickers for dates, a file input for bytes, nested fields for a dataclass.
    expect(_field(page, "when").locator("input")).to_have_attribute("type", "datetime-local")
    expect(_field(page, "blob").locator("input")).to_have_attribute("type", "file")
    expect(_field(page, "point.x").locator("input")).to_have_attribute("type", "number")
    expect(_field(page, "point.y")).to_be_visible()
    # The resource picker lists the resources of the parameter's type.
    expect(_field(page, "db").locator("option", has_text=resource)).to_be_attached()
    shot(page, "run-form")


def test_run_form_validates_then_runs_with_typed_arguments(
    admin_page: Page, server: Server, kinds: tuple[str, str]
) -> None:
    path, resource = kinds
    page = admin_page
    page.goto(f"/w/main/scripts/get/{path}")
    before = len(_jobs_of(server, path))

    # Nothing filled in: the required fields say so, and nothing runs.
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("error-name")).to_have_text("required")
    expect(page.get_by_test_id("error-db")).to_have_text("required")
    expect(page.get_by_test_id("form-invalid")).to_be_visible()

    _field(page, "name").locator("input").fill("Ann")
    _field(page, "db").locator("select").select_option(resource)
    expect(page.get_by_test_id("error-name")).to_have_count(0)
    # A bad integer blocks the run, with its message beside the field.
    _field(page, "count").locator("input").fill("2.5")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("error-count")).to_have_text("must be an integer")
    # JSON that does not parse is an error too.
    _field(page, "options").locator("textarea").fill('{"k": ')
    expect(page.get_by_test_id("error-options")).to_contain_text("invalid JSON")
    page.get_by_test_id("run").click()
    expect(page).to_have_url(re.compile(r"/scripts/get/"))
    assert len(_jobs_of(server, path)) == before

    _field(page, "count").locator("input").fill("7")
    _field(page, "options").locator("textarea").fill('{"k": [1, 2]}')
    expect(page.get_by_test_id("error-count")).to_have_count(0)
    expect(page.get_by_test_id("error-options")).to_have_count(0)
    _field(page, "flag").get_by_role("checkbox").check()
    page.get_by_test_id("add-tags").click()
    _field(page, "tags[1]").locator("input").fill("b")
    _field(page, "when").locator("input").fill("2024-03-01T10:20:30")
    _field(page, "blob").locator("input").set_input_files(
        files=[{"name": "x.bin", "mimeType": "application/octet-stream", "buffer": b"\x00hi\xff"}]
    )
    expect(_field(page, "blob")).to_contain_text("4 bytes")
    _field(page, "color").locator("select").select_option("blue")
    _field(page, "point.x").locator("input").fill("4")
    # The picker's local time, as the ISO string (UTC) the page sends.
    when = page.evaluate("new Date('2024-03-01T10:20:30').toISOString().replace('.000Z', 'Z')")

    page.keyboard.press("Control+Enter")  # runs, as the Run button does
    expect(page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    r = server.api.get(f"/w/main/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    assert r.json()["args"] == {
        "name": "Ann",
        "db": f"$res:{resource}",
        "count": 7,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a", "b"],
        "options": {"k": [1, 2]},
        "when": when,
        "blob": base64.b64encode(b"\x00hi\xff").decode(),
        "color": "blue",
        "point": {"x": 4},
    }
    dt.datetime.fromisoformat(when)  # what the server's check reads


def test_run_form_shows_the_servers_refusal(admin_page: Page, server: Server) -> None:
    path = server.unique("stale_form")
    _create_script(server, path, "def main(x: int = 1):\n    return x\n", "Stale")
    page = admin_page
    page.goto(f"/w/main/scripts/get/{path}")
    expect(_field(page, "x").locator("input")).to_have_value("1")
    # The script changes under the open form: the server now wants a string and says so.
    _create_script(
        server,
        path,
        "def main(x: str):\n    return x\n",
        "Stale",
        parent_hash=server.api.get(f"/w/main/scripts/get/p/{path}").json()["hash"],
    )
    page.get_by_test_id("run").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("argument 'x'")
    expect(alert).to_contain_text("expected a string")
    expect(page).to_have_url(re.compile(r"/scripts/get/"))


def test_run_form_prefills_args_from_the_url(admin_page: Page, server: Server) -> None:
    path = server.unique("prefill")
    _create_script(server, path, HELLO, "Prefill")
    args = json.dumps({"name": "Zoë", "shout": True}).encode()
    encoded = base64.urlsafe_b64encode(args).decode().rstrip("=")
    admin_page.goto(f"/w/main/scripts/get/{path}?args={encoded}")
    expect(_field(admin_page, "name").locator("input")).to_have_value("Zoë")
    expect(_field(admin_page, "shout").get_by_role("checkbox")).to_be_checked()


def _share_with_everyone(server: Server, path: str) -> None:
    r = server.api.post(f"/w/main/acls/add/script/{path}", json={"owner": "g/all"})
    assert r.status_code == 200, r.text


def test_app_page_runs_for_an_operator_on_a_phone(
    page: Page,
    server: Server,
    login: Callable[[Page, str, str], None],
    shot: Callable[[Page, str], Path],
) -> None:
    path = server.unique("app_hello")
    _create_script(server, path, HELLO, "Say hello", description="Greets whoever you name.")
    _share_with_everyone(server, path)
    email, password = server.member("operator")
    login(page, email, password)

    # The script page: an operator runs, and is offered no Edit link.
    page.goto(f"/w/main/scripts/get/{path}")
    expect(page.get_by_test_id("run")).to_be_visible()
    expect(page.get_by_test_id("edit-link")).to_have_count(0)

    page.set_viewport_size(ViewportSize(width=PHONE["width"], height=PHONE["height"]))
    page.goto(f"/a/main/{path}")
    expect(page.get_by_test_id("app-title")).to_have_text("Say hello")
    expect(page.get_by_text("Greets whoever you name.")).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_count(0)  # no workspace header
    _field(page, "name").locator("input").fill("Operator")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("app-status")).to_contain_text("success")
    expect(page.get_by_test_id("app-result-value")).to_have_text("Hello, Operator!")
    page.get_by_text("Logs").click()
    expect(page.get_by_test_id("app-logs")).to_contain_text("greeting Operator")
    # Nothing is wider than the phone's screen.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    shot(page, "app-page")

    # A failing run shows its error where the result goes.
    _field(page, "name").locator("input").fill("boom")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("app-status")).to_contain_text("failure")
    expect(page.get_by_test_id("app-error")).to_contain_text("no boom today")
    expect(page.get_by_test_id("app-result-value")).to_have_count(0)


def test_app_page_asks_to_log_in_and_embeds_with_a_token(page: Page, server: Server) -> None:
    path = server.unique("app_embed")
    _create_script(server, path, HELLO, "Embedded hello", description="Shown only unembedded.")
    page.goto(f"/a/main/{path}?embed=1")
    link = page.get_by_test_id("login-link")
    expect(link).to_have_attribute(
        "href", "/login?next=" + quote(f"/a/main/{path}?embed=1", safe="")
    )

    # A token limited to this workspace, to reading this script and running it.
    expiration = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    r = server.api.post(
        "/users/tokens/create",
        json={
            "label": "embed",
            "expiration": expiration.isoformat(),
            "workspace_id": "main",
            "scopes": [f"scripts:read:{path}", f"jobs:run:{path}", "jobs:read"],
        },
    )
    assert r.status_code == 201, r.text
    page.goto(f"/a/main/{path}?embed=1#token={r.text}")
    page.reload()  # the token is read when the app starts
    expect(page.get_by_test_id("run-form")).to_be_visible()
    # Embedded: the form and the result only.
    expect(page.get_by_test_id("app-title")).to_have_count(0)
    expect(page.get_by_text("Shown only unembedded.")).to_have_count(0)
    _field(page, "name").locator("input").fill("iframe")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("app-result-value")).to_have_text("Hello, iframe!")


def test_secret_parameters_are_password_fields_and_bounds_are_checked(
    admin_page: Page, server: Server
) -> None:
    """A schema edited by hand (Windmill's schema editor writes these keys): a string marked
    `password: true` is typed unseen; `minimum`/`maximum` bound a number."""
    path = server.unique("secret_arg")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "password": True, "description": "The key"},
            "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
        },
        "required": ["api_key"],
    }
    _create_script(
        server,
        path,
        "def main(api_key: str, n: int = 2):\n    return len(api_key) * n\n",
        "Secret",
        schema=schema,
    )
    page = admin_page
    page.goto(f"/w/main/scripts/get/{path}")
    key = _field(page, "api_key").locator("input")
    expect(key).to_have_attribute("type", "password")
    key.fill("s3cret")
    _field(page, "n").locator("input").fill("9")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("error-n")).to_have_text("must be at most 5")
    _field(page, "n").locator("input").fill("0")
    expect(page.get_by_test_id("error-n")).to_have_text("must be at least 1")
    _field(page, "n").locator("input").fill("3")
    page.get_by_test_id("run").click()
    expect(page).to_have_url(re.compile(r"/w/main/run/[0-9a-f-]{36}$"))
    job = server.api.get(f"/w/main/jobs_u/get/{page.url.rsplit('/', 1)[1]}").json()
    assert job["args"] == {"api_key": "s3cret", "n": 3}
