"""Version and runtimes: what this server is and which languages it speaks."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gristmill import __version__
from gristmill.api.deps import AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.meta import ParsedSchema, ParseRequest, RuntimeInfo, SchemaError
from gristmill.scripts.versions import parse_schema

__all__ = ["public_router", "router"]

public_router = APIRouter(tags=["meta"])
router = APIRouter(tags=["meta"], route_class=AuthenticatedRoute)


@public_router.get("/version", response_class=PlainTextResponse)
async def get_version() -> str:
    """The server's version, as text (no token needed)."""
    return f"Gristmill v{__version__}"


@router.get("/runtimes")
async def list_runtimes(platform: PlatformDep) -> list[RuntimeInfo]:
    """The languages this server can parse, with their plugin and whether they can run here."""
    registry = platform.require_registry()
    out = []
    for runtime in registry:
        toolchain = runtime.toolchain()
        out.append(
            RuntimeInfo(
                name=runtime.name,
                display_name=runtime.display_name,
                aliases=list(runtime.aliases),
                file_extensions=list(runtime.file_extensions),
                plugin=registry.source(runtime.name),
                available=toolchain.available,
                toolchain_version=toolchain.version,
                toolchain_message=toolchain.message,
                template=runtime.template(),
            )
        )
    return out


@router.post("/scripts/parse_schema")
async def parse_script_schema(body: ParseRequest, platform: PlatformDep) -> ParsedSchema:
    """The schema a script would be saved with, or its error with the line: nothing is saved.

    Gristmill's own (Windmill's editor parses in the browser); the web UI calls it as the
    user types. An unknown language, NUL bytes or an oversized source answer 400/413.
    """
    registry = platform.require_registry()
    name, schema, error = parse_schema(registry, body.language, body.content, platform.input_limits)
    if error is None:
        return ParsedSchema(language=name, schema=schema)
    return ParsedSchema(
        language=name,
        error=SchemaError(message=error.message, line=error.line, column=error.column),
    )
