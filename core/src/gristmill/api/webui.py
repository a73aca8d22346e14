"""Serving the built web UI on the API's port: hashed assets cached for a year, every other
path that is not under ``/api`` answered with ``index.html`` (the UI routes in the browser).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

__all__ = ["install_webui"]

#: Vite names assets by their content's hash: a new build makes new names, so a browser may
#: keep them for good.
_IMMUTABLE = "public, max-age=31536000, immutable"
#: index.html names the current assets: always revalidated.
_REVALIDATE = "no-cache"
#: What the UI's pages may load: their own scripts only (no inline script, so an injected
#: one does not run), styles inline too (CodeMirror writes its own), images from results
#: (`data:`), and results' HTML only in sandboxed frames of their own (`srcdoc`).
_CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)
#: Only the shareable app pages (``/a/...``) may be shown in another site's frame; the rest
#: of the UI refuses to be framed (clickjacking).
_NO_FRAMING = "frame-ancestors 'none'"


def install_webui(app: FastAPI, dist: Path) -> None:
    """Serve ``dist`` (a Vite build) at ``/``, after every API route."""
    root = dist.resolve()
    assets = root / "assets"
    index = root / "index.html"

    def inside(base: Path, relative: str) -> Path | None:
        candidate = (base / relative).resolve()
        if not candidate.is_relative_to(base) or not candidate.is_file():
            return None
        return candidate

    @app.api_route("/assets/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def webui_asset(name: str) -> Response:
        found = inside(assets, name)
        if found is None:
            return PlainTextResponse(f"Not found: no asset {name}", status_code=404)
        return FileResponse(
            found,
            headers={"Cache-Control": _IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def webui_page(path: str, request: Request) -> Response:
        if path == "api" or path.startswith("api/"):
            # An API path no route matched: the API's own answer, not the UI.
            return PlainTextResponse(f"Not found: {request.url.path}", status_code=404)
        headers = {"Cache-Control": _REVALIDATE, "X-Content-Type-Options": "nosniff"}
        found = inside(root, path) if path and "/" not in path else None
        if found is not None and found.name != "index.html":
            return FileResponse(found, headers=headers)
        headers["Content-Security-Policy"] = _CONTENT_POLICY
        if not path.startswith("a/"):
            headers["Content-Security-Policy"] += f"; {_NO_FRAMING}"
            headers["X-Frame-Options"] = "DENY"
        return FileResponse(index, headers=headers, media_type="text/html")
