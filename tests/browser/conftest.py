"""The web UI in a real browser: Debian's chromium driven by Playwright, against a real
Gristmill (API, workers, embedded-cluster database) serving the UI built from ``frontend/``.

The build is the product's own (:func:`gristmill.server.webui.build_webui`, what
``gristmill up`` runs). One server is shared by the browser tests: each test uses paths of
its own.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from gristmill.config import Settings
from gristmill.server.webui import build_webui, find_frontend
from gristmill.testing.pytest_plugin import PgCluster
from gristmill.testing.served import ServedPlatform
from playwright.sync_api import (
    Browser,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

CHROMIUM = Path(os.environ.get("GRISTMILL_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

expect.set_options(timeout=15_000)


def _need_chromium() -> None:
    if CHROMIUM.is_file():
        return
    reason = f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Server:
    """The served platform, its admin, and a client holding the admin's token."""

    url: str
    token: str
    admin_email: str
    admin_password: str
    api: httpx.Client
    _members: dict[str, tuple[str, str]] = field(default_factory=dict)

    def member(self, role: str) -> tuple[str, str]:
        """A user (email, password) with ``role`` (operator, developer, admin) in ``main``."""
        if role not in ("operator", "developer", "admin"):
            raise ValueError(f"unknown role {role}")
        if role in self._members:
            return self._members[role]
        suffix = uuid.uuid4().hex[:6]
        email, password = f"{role}-{suffix}@example.com", f"pw-{uuid.uuid4().hex}"
        r = self.api.post(
            "/users/create",
            json={"email": email, "password": password, "username": f"{role}{suffix}"},
        )
        assert r.status_code in (200, 201), r.text
        r = self.api.post(
            "/w/main/workspaces/add_user",
            json={
                "email": email,
                "username": f"{role}{suffix}",
                "is_admin": role == "admin",
                "operator": role == "operator",
            },
        )
        assert r.status_code in (200, 201), r.text
        self._members[role] = (email, password)
        return email, password

    def unique(self, name: str) -> str:
        """A script path of the admin's nobody else uses."""
        return f"u/admin/{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def webui_dist() -> Path:
    frontend = find_frontend()
    assert frontend is not None, "no frontend/ in this checkout"
    return build_webui(frontend)


@pytest.fixture(scope="session")
def server(pg_cluster: PgCluster, webui_dist: Path) -> Iterator[Server]:
    database = pg_cluster.create_database()
    data_dir = Path(tempfile.mkdtemp(prefix="gm-browser-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    settings = Settings(
        data_dir=data_dir,
        database_url=pg_cluster.conninfo(database),
        num_workers=2,
        heartbeat_s=0.5,
        log_flush_ms=50,
        database_connections=8,
        webui_dist=webui_dist,
    )
    served = ServedPlatform(settings)
    try:
        with served as url:
            admin = served.new_admin
            assert admin is not None
            login = httpx.post(
                f"{url}/api/auth/login", json={"email": admin.email, "password": admin.password}
            )
            assert login.status_code == 200, login.text
            expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            created = httpx.post(
                f"{url}/api/users/tokens/create",
                json={"label": "browser tests", "expiration": expiration.isoformat()},
                headers={"Authorization": f"Bearer {login.text}"},
            )
            assert created.status_code == 201, created.text
            token = created.text
            with httpx.Client(
                base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as api:
                yield Server(url, token, admin.email, admin.password, api)
    finally:
        pg_cluster.drop_database(database)
        shutil.rmtree(data_dir, ignore_errors=True)


# Module scope, not session: while Playwright's synchronous API is open, its event loop
# counts as running in the main thread, and the asyncio tests of other directories, run
# after these, could not start theirs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    _need_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh page (its own cookies), 1280x800, not logged in, with the server's base URL."""
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Something the content policy blocked is a bug too (a style, an image, a frame refused).
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    # Read before closing: closing aborts the loads still in flight (a route's chunk and its
    # CSS fetched ahead), and the app's loader reports each abort as an error of its own,
    # which is the test's doing, not the page's (seen on a loaded machine).
    seen = list(errors)
    context.close()
    # A script error in the page is a bug even when the test saw what it wanted.
    assert not seen, f"errors in the page: {seen}"


def _login(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("user-email")).to_contain_text(email)


@pytest.fixture
def login() -> Callable[[Page, str, str], None]:
    """``login(page, email, password)``: log in through the login page; returns once the
    app shows the user."""
    return _login


@pytest.fixture
def admin_page(page: Page, server: Server) -> Page:
    """``page``, logged in as the admin, on the home page of workspace ``main``."""
    _login(page, server.admin_email, server.admin_password)
    expect(page).to_have_url(f"{server.url}/w/main")
    return page


def _shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


@pytest.fixture
def shot() -> Callable[[Page, str], Path]:
    """``shot(page, name)``: save a screenshot as ``tests/browser/screenshots/<name>.png``
    (the artifacts docs/ui.md shows)."""
    return _shot
