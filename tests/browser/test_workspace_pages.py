"""The workspace pages: variables (secrets never shown back), resources (a form from the
resource type's schema), resource types, folders, groups, tokens (shown once), the audit log,
and what an operator is not offered."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from .conftest import Server

Shot = Callable[[Page, str], Path]
Login = Callable[[Page, str, str], None]


def _hex() -> str:
    return uuid.uuid4().hex[:8]


def _row(page: Page, key: str) -> Locator:
    return page.locator(f'[data-testid="row"][data-key="{key}"]')


def _new_variable(page: Page, path: str, value: str, *, secret: bool) -> None:
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("variable-form")
    form.get_by_test_id("path").fill(path)
    if secret:
        form.get_by_test_id("is-secret").check()
    form.get_by_test_id("value").fill(value)
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)


def test_a_secret_variable_is_masked_in_the_list_and_the_edit_form(
    admin_page: Page, server: Server, shot: Shot
) -> None:
    page = admin_page
    secret_path, secret = server.unique("secret"), f"s3cr3t-{uuid.uuid4().hex}"
    plain_path, plain = server.unique("plain"), f"plain-value-{_hex()}"
    page.goto("/w/main/variables")

    _new_variable(page, secret_path, secret, secret=True)
    row = _row(page, secret_path)
    expect(row.get_by_test_id("value")).to_have_text("••••••")
    expect(row.get_by_test_id("secret-tag")).to_be_visible()
    assert secret not in page.content()

    _new_variable(page, plain_path, plain, secret=False)
    expect(_row(page, plain_path).get_by_test_id("value")).to_have_text(plain)

    # The edit form does not have the value either: an empty field saying it is kept.
    row.get_by_test_id("edit").click()
    form = page.get_by_test_id("variable-form")
    value = form.get_by_test_id("value")
    expect(value).to_have_value("")
    expect(value).to_have_attribute("placeholder", "•••••• (unchanged; type to replace)")
    assert secret not in page.content()
    # Saving another field leaves the secret as it was.
    form.get_by_test_id("description").fill("edited from the UI")
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)
    expect(row).to_contain_text("edited from the UI")
    r = server.api.get(f"/w/main/variables/get_value/{secret_path}")
    assert r.status_code == 200 and r.json() == secret, r.text
    assert secret not in page.content()
    shot(page, "variables")


def test_the_server_refusal_is_shown_in_the_form(admin_page: Page) -> None:
    page = admin_page
    page.goto("/w/main/variables")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("variable-form")
    form.get_by_test_id("path").fill("nowhere/bad path")
    form.get_by_test_id("value").fill("x")
    form.get_by_test_id("dialog-submit").click()
    expect(form.get_by_role("alert")).to_contain_text("invalid path")
    expect(form).to_be_visible()


def test_a_resource_is_made_through_the_form_of_its_types_schema(
    admin_page: Page, server: Server, shot: Shot
) -> None:
    page = admin_page
    type_name = f"svc_{_hex()}"
    page.goto("/w/main/resource_types")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("resource-type-form")
    form.get_by_test_id("name").fill(type_name)
    form.get_by_test_id("description").fill("A service with a key")
    schema = form.get_by_test_id("schema")
    schema.fill("{not json")
    expect(form.get_by_test_id("schema-problem")).to_contain_text("Not valid JSON")
    schema.fill(
        '{"type": "object", "required": ["endpoint"], "properties": {'
        '"endpoint": {"type": "string", "description": "Base URL"},'
        '"apikey": {"type": "string", "password": true}}}'
    )
    expect(form.get_by_test_id("schema-problem")).to_have_count(0)
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)
    expect(_row(page, type_name)).to_contain_text("endpoint")
    # Built-in types are read-only: no Edit on them.
    expect(_row(page, "postgresql").get_by_test_id("builtin")).to_be_visible()
    expect(_row(page, "postgresql").get_by_test_id("edit")).to_have_count(0)

    path = server.unique("svc")
    page.goto("/w/main/resources")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("resource-form")
    form.get_by_test_id("path").fill(path)
    form.get_by_test_id("resource-type").select_option(type_name)
    fields = form.get_by_test_id("value-form")
    fields.get_by_label("endpoint").fill("https://svc.example")
    fields.get_by_label("apikey").fill("key-123")
    form.get_by_test_id("dialog-submit").click()
    expect(form).to_have_count(0)

    row = _row(page, path)
    expect(row).to_contain_text(type_name)
    r = server.api.get(f"/w/main/resources/get_value/{path}")
    assert r.json() == {"endpoint": "https://svc.example", "apikey": "key-123"}, r.text
    # The detail shows the value, the fields the type marks `password` masked.
    row.get_by_test_id("toggle-detail").click()
    value = page.locator(f'[data-testid="detail"][data-key="{path}"]').get_by_test_id(
        "resource-value"
    )
    expect(value).to_contain_text("https://svc.example")
    expect(value).not_to_contain_text("key-123")
    # The list filters by type.
    page.get_by_test_id("type-filter").select_option("postgresql")
    expect(row).to_have_count(0)
    page.get_by_test_id("type-filter").select_option(type_name)
    expect(row).to_have_count(1)
    shot(page, "resources")


def test_folders_and_groups_are_created_and_managed(admin_page: Page) -> None:
    page = admin_page
    folder, group = f"team_{_hex()}", f"devs_{_hex()}"

    page.goto("/w/main/folders")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("folder-form")
    form.get_by_test_id("name").fill(folder)
    form.get_by_test_id("summary").fill("the team's things")
    form.get_by_test_id("dialog-submit").click()
    row = _row(page, folder)
    expect(row).to_contain_text("the team's things")
    expect(row.get_by_test_id("extra-perms")).to_contain_text("u/admin: write")
    row.get_by_test_id("owners").click()
    dialog = page.get_by_test_id("owners-dialog")
    dialog.get_by_test_id("add-member-input").fill("g/all")
    dialog.get_by_test_id("add-member").click()
    expect(dialog.locator('[data-testid="member"][data-name="g/all"]')).to_be_visible()
    dialog.get_by_test_id("dialog-cancel").click()
    expect(row).to_contain_text("g/all")

    page.goto("/w/main/groups")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("group-form")
    form.get_by_test_id("name").fill(group)
    form.get_by_test_id("dialog-submit").click()
    row = _row(page, group)
    expect(row).to_be_visible()
    expect(_row(page, "all").get_by_test_id("members")).to_have_count(0)  # `all` never changes
    row.get_by_test_id("members").click()
    dialog = page.get_by_test_id("members-dialog")
    dialog.get_by_test_id("add-member-input").fill("admin")
    dialog.get_by_test_id("add-member").click()
    member = dialog.locator('[data-testid="member"][data-name="admin"]')
    expect(member).to_be_visible()
    expect(row.get_by_test_id("group-members")).to_contain_text("admin")
    member.get_by_test_id("remove-member").click()
    expect(member).to_have_count(0)
    dialog.get_by_test_id("dialog-cancel").click()

    row.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("dialog-submit").click()
    expect(row).to_have_count(0)


def test_a_new_token_is_shown_once(admin_page: Page, server: Server) -> None:
    page = admin_page
    label = f"ui-{_hex()}"
    page.goto("/w/main/tokens")
    page.get_by_test_id("new").click()
    form = page.get_by_test_id("token-form")
    form.get_by_test_id("label").fill(label)
    form.get_by_test_id("limit-workspace").check()
    form.get_by_test_id("dialog-submit").click()

    shown = page.get_by_test_id("token-created")
    field = shown.get_by_test_id("new-token")
    expect(field).not_to_have_value("")
    token = field.input_value()
    expect(shown.get_by_test_id("copy-token")).to_be_visible()
    r = httpx.get(f"{server.url}/api/users/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text

    shown.get_by_test_id("dialog-cancel").click()
    expect(shown).to_have_count(0)
    row = page.get_by_test_id("row").filter(has_text=label)
    expect(row).to_contain_text(token[:10])
    expect(row).to_contain_text("main")
    assert token not in page.content()

    # Revoked from the list, it stops working.
    row.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("dialog-submit").click()
    expect(row).to_have_count(0)
    r = httpx.get(f"{server.url}/api/users/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_an_operator_sees_the_lists_but_no_write_buttons(
    page: Page, server: Server, login: Login
) -> None:
    # Items an operator may read: in a folder every member reads.
    folder = f"shared_{_hex()}"
    r = server.api.post(
        "/w/main/folders/create", json={"name": folder, "extra_perms": {"g/all": False}}
    )
    assert r.status_code == 201, r.text
    variable = f"f/{folder}/greeting"
    r = server.api.post("/w/main/variables/create", json={"path": variable, "value": "hello"})
    assert r.status_code == 201, r.text
    resource = f"f/{folder}/any_thing"
    r = server.api.post(
        "/w/main/resources/create",
        json={"path": resource, "resource_type": "any", "value": {"a": 1}},
    )
    assert r.status_code == 201, r.text
    r = server.api.post("/w/main/groups/create", json={"name": f"ops_{_hex()}"})
    assert r.status_code == 201, r.text

    email, password = server.member("operator")
    login(page, email, password)
    listed = {
        "variables": variable,
        "resources": resource,
        "folders": folder,
        "groups": "all",
        "resource_types": "postgresql",
        "users": "admin",
    }
    for name, key in listed.items():
        page.goto(f"/w/main/{name}")
        expect(_row(page, key)).to_be_visible()
        for button in ("new", "edit", "delete", "owners", "members", "toggle-disabled"):
            expect(page.get_by_test_id(button)).to_have_count(0)
    # Roles are shown, not offered for change.
    expect(_row(page, "admin").get_by_test_id("role")).to_have_text("admin")

    page.goto("/w/main/audit")
    expect(page.get_by_test_id("admin-only")).to_be_visible()
    expect(page.get_by_test_id("audit")).to_have_count(0)


def test_the_audit_log_shows_a_variable_creation(
    admin_page: Page, server: Server, shot: Shot
) -> None:
    page = admin_page
    path = server.unique("audited")
    page.goto("/w/main/variables")
    _new_variable(page, path, "value", secret=False)

    page.goto("/w/main/audit")
    page.get_by_test_id("filter-operation").fill("variables.")
    page.get_by_test_id("filter-resource").fill(path)
    row = page.get_by_test_id("row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("operation")).to_have_text("variables.create")
    expect(row).to_contain_text("admin")
    # The filters are in the URL: a reload shows the same entry.
    expect(page).to_have_url(re.compile(r"/w/main/audit\?operation=variables\.&resource=u%2Fadmin"))
    page.reload()
    expect(page.get_by_test_id("row")).to_have_count(1)
    page.get_by_test_id("filter-operation").fill("")
    page.get_by_test_id("filter-resource").fill("")
    # Unfiltered: the other entries come back; one's parameters open below it.
    expect(page.get_by_test_id("row").nth(1)).to_be_visible()
    page.get_by_test_id("row").first.get_by_test_id("toggle-detail").click()
    expect(page.get_by_test_id("detail")).to_have_count(1)
    shot(page, "audit")
