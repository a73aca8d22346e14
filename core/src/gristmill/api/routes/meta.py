"""Version and runtimes: what this server is and which languages it speaks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from gristmill import __version__
from gristmill.api.deps import PlatformDep, current_actor

__all__ = ["public_router", "router"]

public_router = APIRouter(tags=["meta"])
router = APIRouter(tags=["meta"], dependencies=[Depends(current_actor)])


@public_router.get("/version", response_class=PlainTextResponse)
async def get_version() -> str:
    """The server's version, as text (no token needed)."""
    return f"Gristmill v{__version__}"


@router.get("/runtimes")
async def list_runtimes(platform: PlatformDep) -> list[dict[str, Any]]:
    """The languages this server can parse, with their plugin and whether they can run here."""
    registry = platform.require_registry()
    out = []
    for runtime in registry:
        toolchain = runtime.toolchain()
        out.append(
            {
                "name": runtime.name,
                "display_name": runtime.display_name,
                "aliases": list(runtime.aliases),
                "file_extensions": list(runtime.file_extensions),
                "plugin": registry.source(runtime.name),
                "available": toolchain.available,
                "toolchain_version": toolchain.version,
                "toolchain_message": toolchain.message,
                "template": runtime.template(),
            }
        )
    return out


@router.get("/workers/list")
async def list_workers(platform: PlatformDep) -> list[dict[str, Any]]:
    """Worker processes heard from recently: their tags, and the runtimes they cannot run."""
    assert platform.capabilities is not None
    workers = await platform.capabilities.live_workers(fresh=True)
    return [
        {
            "worker_instance": w["worker_instance"],
            "worker_group": w["worker_group"],
            "hostname": w["hostname"],
            "pid": w["pid"],
            "num_workers": w["num_workers"],
            "custom_tags": w["tags"],
            "unavailable_runtimes": w["unavailable"],
            "started_at": w["started_at"],
            "last_ping": w["ping_at"],
        }
        for w in workers
    ]
