"""The Postgres trigger's routes besides its CRUD ones (Windmill's): test a database
connection, check that a database can feed a trigger (``wal_level = logical``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.triggers import postgres

__all__ = ["router"]

router = APIRouter(
    prefix="/w/{workspace}/postgres_triggers",
    tags=["postgres_triggers"],
    route_class=AuthenticatedRoute,
)


class TestPostgres(BaseModel):
    postgres_resource_path: str = Field(description="A postgresql resource.")


@router.post("/test", response_class=PlainTextResponse, name="test_postgres_connection")
async def test_postgres_connection(
    body: TestPostgres, access: AccessDep, platform: PlatformDep
) -> str:
    """Connect to the resource's database (400 saying why it cannot)."""
    await postgres.check_connection(platform.triggers, access, body.postgres_resource_path)
    return "connected"


@router.get("/is_valid_postgres_configuration/{path:path}", name="is_valid_postgres_configuration")
async def is_valid_postgres_configuration(
    path: str, access: AccessDep, platform: PlatformDep
) -> bool:
    """Whether the database of the resource at ``path`` has ``wal_level = logical``."""
    return await postgres.is_logical(platform.triggers, access, path)
