"""The UI talks to the server only through the client generated from the OpenAPI document,
and that client is the one the server's document generates today."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from gristmill.api.app import openapi_document
from gristmill.server.webui import find_frontend

FRONTEND = find_frontend() or Path("frontend")
SRC = FRONTEND / "src"
CLIENT = SRC / "api" / "client.ts"
#: `api.GET("/api/...", ...)` and the other verbs of the generated client.
CALL = re.compile(r"\bapi\.(GET|POST|PUT|PATCH|DELETE)\(\s*\"([^\"]+)\"")
#: Ways to reach the network other than the generated client.
RAW_NETWORK = re.compile(r"\b(fetch\(|new EventSource\b|new XMLHttpRequest\b|new WebSocket\b)")


def _document() -> dict[str, object]:
    return openapi_document()


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.suffix in {".ts", ".svelte"} and p.is_file())


def test_the_committed_document_is_the_servers() -> None:
    committed = json.loads((SRC / "api" / "openapi.json").read_text())
    assert committed == _document(), (
        "frontend/src/api/openapi.json is stale: run `uv run gristmill openapi > "
        "frontend/src/api/openapi.json && (cd frontend && npm run gen-client)`"
    )


def test_the_generated_client_matches_the_document(webui_dist: Path, tmp_path: Path) -> None:
    out = tmp_path / "schema.d.ts"
    subprocess.run(
        ["npx", "openapi-typescript", "src/api/openapi.json", "-o", str(out)],
        cwd=FRONTEND,
        check=True,
        capture_output=True,
    )
    assert out.read_text() == (SRC / "api" / "schema.d.ts").read_text(), (
        "frontend/src/api/schema.d.ts is stale: run `npm run gen-client` in frontend/"
    )


def test_every_call_names_an_operation_of_the_document() -> None:
    paths = _document()["paths"]
    assert isinstance(paths, dict)
    calls = 0
    for source in _sources():
        for verb, path in CALL.findall(source.read_text()):
            calls += 1
            where = f"{source.relative_to(FRONTEND)}: {verb} {path}"
            assert path in paths, f"{where} is not in the OpenAPI document"
            assert verb.lower() in paths[path], f"{where}: the document has no {verb} there"
    assert calls >= 10  # the scan found the calls (the pattern still matches the code)


def test_nothing_reaches_the_network_around_the_client() -> None:
    for source in _sources():
        if source == CLIENT:
            continue
        found = RAW_NETWORK.findall(source.read_text())
        assert not found, f"{source.relative_to(FRONTEND)} calls {found}: use `api` instead"


@pytest.mark.timeout(300)
def test_the_ui_type_checks_against_the_client(webui_dist: Path) -> None:
    # A path, parameter or field the document does not declare is a type error here.
    check = subprocess.run(
        ["npm", "run", "check"], cwd=FRONTEND, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert "0 errors and 0 warnings" in check.stdout
