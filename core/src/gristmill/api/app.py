"""The FastAPI application: Windmill's REST paths under ``/api``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from gristmill import __version__
from gristmill.api.errors import install_error_handlers
from gristmill.api.limits import BodySizeLimit
from gristmill.api.openapi import ERROR_RESPONSES, PUBLIC_ERROR_RESPONSES, install_openapi
from gristmill.api.routes import (
    acls,
    audit,
    auth,
    flow_tools,
    flows,
    folders,
    git_sync,
    groups,
    health,
    http_routes,
    job_metrics,
    jobs,
    meta,
    postgres_triggers,
    resources,
    schedules,
    scripts,
    sync,
    triggers,
    users,
    variables,
    workers,
    workspaces,
)
from gristmill.api.webui import install_webui
from gristmill.server.platform import Platform
from gristmill.triggers.http import HttpRouteKind
from gristmill.triggers.kinds import TriggerKind
from gristmill.triggers.postgres import PostgresKind

__all__ = ["create_app", "openapi_document"]


def create_app(platform: Platform) -> FastAPI:
    """An application serving ``platform`` (which the caller starts and stops)."""
    app = FastAPI(
        title="Gristmill",
        version=__version__,
        description="Scripts become web forms, APIs, jobs and flows. Paths follow Windmill's API.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        generate_unique_id_function=lambda route: (
            f"{route.tags[0]}-{route.name}" if route.tags else route.name
        ),
    )
    app.state.platform = platform
    install_error_handlers(app)
    limit_mb = platform.settings.max_body_size_mb
    app.add_middleware(
        BodySizeLimit,
        max_bytes=limit_mb * 1024 * 1024,
        setting=f"GRISTMILL_MAX_BODY_SIZE_MB={limit_mb}",
    )
    for router in (meta.public_router, health.router, auth.public_router, jobs.public_router):
        app.include_router(router, prefix="/api", responses=PUBLIC_ERROR_RESPONSES)
    for router in (
        meta.router,
        workers.router,
        auth.router,
        scripts.router,
        flows.router,
        *flow_tools.routers,
        jobs.router,
        jobs.unauthed_router,
        users.router,
        workspaces.router,
        groups.router,
        folders.router,
        acls.router,
        variables.router,
        resources.router,
        audit.router,
        job_metrics.router,
        schedules.router,
        schedules.global_router,
        sync.router,
        git_sync.router,
    ):
        app.include_router(router, prefix="/api", responses=ERROR_RESPONSES)
    for kind in platform.trigger_kinds or ():
        app.include_router(triggers.trigger_router(kind), prefix="/api", responses=ERROR_RESPONSES)
        for router in _kind_routers(kind):
            app.include_router(router, prefix="/api", responses=ERROR_RESPONSES)
    platform.plugins.hook.register_routes(app=app)
    install_openapi(app)
    if platform.settings.webui_dist is not None:
        # Last: its catch-all route must not shadow any API route.
        install_webui(app, platform.settings.webui_dist)
    return app


def _kind_routers(kind: TriggerKind) -> Sequence[APIRouter]:
    """A trigger kind's own routes besides its CRUD ones: a plugin's from its ``routes()``;
    the core's kinds' are in ``api/routes`` (the domain never imports the API)."""
    if isinstance(kind, HttpRouteKind):
        return http_routes.http_routers(kind)
    if isinstance(kind, PostgresKind):
        return (postgres_triggers.router,)
    return kind.routes()


def openapi_document(*, load_plugins: bool = False) -> dict[str, Any]:
    """The OpenAPI document, built without a database or a server.

    Without plugins (the default) it is the core's own: what `gristmill openapi` prints, what
    the web UI's client is generated from, and what the tests hold the routes to.
    """
    from gristmill.config import Settings
    from gristmill.plugins import build_plugin_manager

    platform = Platform(
        settings=Settings(),
        conninfo="",
        job_token_secret=b"",
        plugins=build_plugin_manager(load_entrypoints=load_plugins),
    )
    return create_app(platform).openapi()
