"""The application shell: login, the workspace switcher, the home page's scripts list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Server


def test_login_page_refuses_a_wrong_password(page: Page, server: Server) -> None:
    page.goto("/w/main")
    # Not logged in: sent to the login page, which remembers where to go back.
    expect(page).to_have_url(f"{server.url}/login?next=%2Fw%2Fmain")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid login")


def test_home_lists_scripts_with_search_and_folder_filter(
    admin_page: Page, server: Server, shot: Callable[[Page, str], Path]
) -> None:
    r = server.api.post("/w/main/folders/create", json={"name": "shellfolder"})
    assert r.status_code in (201, 400), r.text
    mine = server.unique("home_listed")
    for path in (mine, "f/shellfolder/in_folder"):
        r = server.api.post(
            "/w/main/scripts/create",
            json={
                "path": path,
                "language": "python3",
                "summary": f"summary of {path.rsplit('/', 1)[-1]}",
                "content": "def main(x: int = 1):\n    return x\n",
            },
        )
        assert r.status_code == 201 or "Path conflict" in r.text, r.text
    admin_page.goto("/w/main")
    rows = admin_page.locator("table.list tbody tr")
    expect(rows.filter(has_text=mine)).to_have_count(1)
    admin_page.get_by_label("Search").fill("home_listed")
    expect(rows.filter(has_text=mine)).to_have_count(1)
    expect(rows.filter(has_text="f/shellfolder/in_folder")).to_have_count(0)
    admin_page.get_by_label("Search").fill("")
    admin_page.get_by_label("Folder").select_option("shellfolder")
    expect(rows.filter(has_text="f/shellfolder/in_folder")).to_have_count(1)
    expect(rows.filter(has_text=mine)).to_have_count(0)
    # The filters live in the URL, so a filtered list can be shared.
    expect(admin_page).to_have_url(f"{server.url}/w/main?folder=shellfolder")
    admin_page.get_by_label("Folder").select_option("")
    shot(admin_page, "home")


def test_workspace_switcher_moves_to_another_workspace(admin_page: Page, server: Server) -> None:
    r = server.api.post("/workspaces/create", json={"id": "second", "name": "Second"})
    assert r.status_code in (201, 400), r.text
    admin_page.reload()
    admin_page.get_by_label("Workspace").select_option("second")
    expect(admin_page).to_have_url(f"{server.url}/w/second")
    expect(admin_page.get_by_text("No scripts yet.")).to_be_visible()
    # The last workspace used is the one the root URL opens.
    admin_page.goto("/")
    expect(admin_page).to_have_url(f"{server.url}/w/second")


def test_logout_ends_the_session(admin_page: Page, server: Server) -> None:
    admin_page.get_by_role("button", name="Log out").click()
    expect(admin_page).to_have_url(f"{server.url}/login")
    admin_page.goto("/w/main")
    expect(admin_page).to_have_url(f"{server.url}/login?next=%2Fw%2Fmain")
