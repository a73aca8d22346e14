"""Serving and rebuilding the web UI: what `gristmill up` decides and what browsers get."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from gristmill.api.webui import install_webui
from gristmill.server import webui
from gristmill.server.webui import WebUIError, prepare_webui, source_digest, webui_is_current


def _frontend(tmp_path: Path) -> Path:
    frontend = tmp_path / "frontend"
    (frontend / "src").mkdir(parents=True)
    (frontend / "package.json").write_text('{"name": "x"}')
    (frontend / "package-lock.json").write_text("{}")
    (frontend / "src" / "main.ts").write_text("console.log(1)")
    return frontend


def _stamp(frontend: Path) -> None:
    dist = frontend / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "index.html").write_text("<html></html>")
    (dist / webui.STAMP).write_text(source_digest(frontend))


def test_a_build_is_current_until_a_source_changes(tmp_path: Path) -> None:
    frontend = _frontend(tmp_path)
    assert not webui_is_current(frontend)  # never built
    _stamp(frontend)
    assert webui_is_current(frontend)
    (frontend / "src" / "main.ts").write_text("console.log(2)")
    assert not webui_is_current(frontend)
    _stamp(frontend)
    (frontend / "src" / "new.svelte").write_text("<p></p>")
    assert not webui_is_current(frontend)
    _stamp(frontend)
    # What the build writes or installs is not an input.
    (frontend / "dist" / "extra.js").write_text("x")
    (frontend / "node_modules").mkdir()
    (frontend / "node_modules" / "dep.js").write_text("x")
    assert webui_is_current(frontend)
    (frontend / "dist" / "index.html").unlink()
    assert not webui_is_current(frontend)


def test_a_stale_build_without_npm_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frontend = _frontend(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(WebUIError, match=r"npm is not on PATH: install Node\.js 20"):
        webui.build_webui(frontend)
    # A current build needs no npm at all.
    _stamp(frontend)
    assert webui.build_webui(frontend) == frontend / "dist"


def test_a_failing_build_shows_its_last_lines(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.fail("npm is part of the machine the tests run on (README)")
    frontend = _frontend(tmp_path)
    (frontend / "package.json").write_text(
        '{"name": "x", "scripts": {"build": "echo the compiler says no && exit 3"}}'
    )
    (frontend / "node_modules").mkdir()
    (frontend / "node_modules" / webui.DEPS_STAMP).write_text(webui._lock_digest(frontend))
    lines: list[str] = []
    with pytest.raises(WebUIError, match=r"(?s)exited with \d+.*the compiler says no"):
        webui.build_webui(frontend, echo=lines.append)
    assert any("the compiler says no" in line for line in lines)  # shown while it ran
    assert not webui_is_current(frontend)


def test_the_setting_names_a_directory_or_turns_the_ui_off(tmp_path: Path) -> None:
    assert prepare_webui("off") is None
    with pytest.raises(WebUIError, match=r"no index\.html there"):
        prepare_webui(str(tmp_path))
    (tmp_path / "index.html").write_text("<html></html>")
    assert prepare_webui(str(tmp_path)) == tmp_path.resolve()


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>the app</html>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (dist / "robots.txt").write_text("User-agent: *")
    (tmp_path / "secret.txt").write_text("outside dist")
    app = FastAPI()

    @app.get("/api/version")
    async def version() -> str:
        return "v"

    install_webui(app, dist)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


async def test_hashed_assets_are_cached_for_good(client: httpx.AsyncClient) -> None:
    r = await client.get("/assets/index-abc123.js")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in r.headers["content-type"]
    assert (await client.get("/assets/missing.js")).status_code == 404


async def test_pages_get_index_html_revalidated_and_not_framed(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/login", "/w/main/scripts/get/u/admin/x", "/w/main/run/123"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.text == "<html>the app</html>"
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-frame-options"] == "DENY"
        policy = r.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert policy.endswith("frame-ancestors 'none'")
    # An app page may be embedded in another site.
    r = await client.get("/a/main/u/admin/x")
    assert r.text == "<html>the app</html>"
    assert "x-frame-options" not in r.headers
    assert "frame-ancestors" not in r.headers["content-security-policy"]
    assert "script-src 'self';" in r.headers["content-security-policy"]
    assert (await client.head("/w/main")).status_code == 200


async def test_api_paths_and_files_outside_dist_are_not_the_ui(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/version")).json() == "v"
    r = await client.get("/api/no/such/route")
    assert r.status_code == 404
    assert "the app" not in r.text
    assert (await client.get("/robots.txt")).text == "User-agent: *"
    for path in ("/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"):
        assert "outside dist" not in (await client.get(path)).text
