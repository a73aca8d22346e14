"""A workspace's items as Windmill's workspace tarball (``GET .../workspaces/tarball``).

Each item is read through the caller's :class:`Access` (what they cannot read is not in the
archive, as Windmill's export runs under the caller's row-level security), shaped with
Windmill's field names and turned into archive entries by :mod:`gristmill.sync.format`.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool

from gristmill.auth.permissions import Access
from gristmill.db.queries import Q
from gristmill.errors import BadInput
from gristmill.flows import store as flow_store
from gristmill.scripts import versions
from gristmill.sync import format as fmt
from gristmill.triggers import schedules
from gristmill.triggers import store as trigger_store
from gristmill.triggers.kinds import TriggerKind, TriggerRow, TriggerServices
from gristmill.workspace import folders, resource_types, resources, variables

#: Enough for any real workspace in one page; lists are paged to this size.
_PAGE = 1000


@dataclass(frozen=True)
class ArchiveOptions:
    """What to put in the archive (the query parameters ``wmill sync pull`` sends)."""

    archive_type: Literal["zip", "tar"] = "tar"
    #: Secrets decrypted (an audited read); otherwise their ciphertext, which only this
    #: workspace can open (Windmill's default too).
    plain_secrets: bool = False
    skip_variables: bool = False
    skip_secrets: bool = False
    skip_resources: bool = False
    skip_resource_types: bool = False
    include_schedules: bool = False
    include_triggers: bool = False


def trigger_item(row: TriggerRow) -> dict[str, Any]:
    """A trigger with Windmill's fields: its kind's own, flat, beside the common ones."""
    common = dataclasses.asdict(row)
    for derived in ("kind", "config", "error_at"):
        del common[derived]
    return {**row.config, **common}


async def _all(fetch: Any) -> list[Any]:
    out: list[Any] = []
    page = 1
    while True:
        batch = await fetch(page)
        out.extend(batch)
        if len(batch) < _PAGE:
            return out
        page += 1


async def workspace_entries(
    services: TriggerServices,
    kinds: Sequence[TriggerKind],
    access: Access,
    options: ArchiveOptions,
) -> dict[str, str]:
    """Every item of the workspace the caller may read, as archive entries."""
    pool = services.pool
    ws = access.workspace_id
    entries: dict[str, str] = {}

    def add(kind: fmt.ItemKind, item: Mapping[str, Any]) -> None:
        entries.update(fmt.item_entries(kind, item))

    for folder in await folders.list_folders(pool, access):
        add("folder", dataclasses.asdict(folder))
    for path in await versions.list_paths(pool, ws, access):
        add("script", await versions.fetch_live(pool, ws, path, access))
    for path in await flow_store.list_paths(pool, access):
        add("flow", dataclasses.asdict(await flow_store.get_flow(pool, access, path)))
    if not options.skip_resources:
        listed = await _all(
            lambda page: resources.list_resources(pool, access, page=page, per_page=_PAGE)
        )
        for row in listed:
            # Values Windmill keeps out of exports: a script's state and cached results.
            if row.resource_type not in ("state", "cache"):
                add("resource", dataclasses.asdict(row))
    if not options.skip_resource_types:
        for rtype in await resource_types.list_types(pool, ws):
            # The built-in types exist on every instance: only the workspace's own travel.
            if rtype.name not in resource_types.builtin_types():
                add("resource_type", dataclasses.asdict(rtype))
    if not options.skip_variables:
        ciphertexts = await _secret_ciphertexts(pool, access)
        for variable in await _all(
            lambda page: variables.list_variables(pool, access, page=page, per_page=_PAGE)
        ):
            if variable.is_secret and options.skip_secrets:
                continue
            item = dataclasses.asdict(variable)
            if variable.is_secret:
                if options.plain_secrets:
                    shown = await variables.get_variable(
                        pool, services.secrets, access, variable.path, decrypt_secret=True
                    )
                    item["value"] = shown.value
                else:
                    item["value"] = ciphertexts.get(variable.path)
            add("variable", item)
    if options.include_schedules:
        query = schedules.ScheduleQuery(per_page=_PAGE)
        for schedule in await _all(
            lambda page: schedules.list_schedules(
                pool, access, dataclasses.replace(query, page=page)
            )
        ):
            add("schedule", schedule)
    if options.include_triggers:
        for kind in kinds:
            for row in await _all(
                lambda page, kind=kind: trigger_store.list_triggers(
                    services, access, kind, page=page, per_page=_PAGE
                )
            ):
                entries.update(fmt.trigger_entries(kind.name, trigger_item(row)))
    return entries


async def _secret_ciphertexts(pool: AsyncConnectionPool, access: Access) -> dict[str, str]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["sync_secret_ciphertexts"],
                {"workspace_id": access.workspace_id, **access.sql_params()},
            )
        ).fetchall()
    return {path: value for path, value in rows}


def write_archive(entries: Mapping[str, str], archive_type: Literal["zip", "tar"]) -> bytes:
    """The entries as a zip (deflated) or tar archive, in path order, with fixed times so
    that one workspace gives the same bytes twice."""
    buffer = io.BytesIO()
    if archive_type == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, entries[name].encode())
    else:
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name in sorted(entries):
                data = entries[name].encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_archive(data: bytes) -> dict[str, str]:
    """The text files of a zip or tar archive (either, by its first bytes), by path."""
    out: dict[str, str] = {}
    try:
        if data[:2] == b"PK":  # a zip, empty or not
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        out[_safe(info.filename)] = archive.read(info).decode("utf-8")
            return out
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive.getmembers():
                if member.isfile():
                    file = archive.extractfile(member)
                    assert file is not None  # a regular file always has content
                    out[_safe(member.name)] = file.read().decode("utf-8")
    except (zipfile.BadZipFile, tarfile.TarError, UnicodeDecodeError, EOFError) as error:
        raise BadInput(f"not a workspace archive (zip or tar of text files): {error}") from None
    return out


def _safe(name: str) -> str:
    """An archive member's path, refused when it would leave the folder it is read into."""
    parts = name.replace("\\", "/").removeprefix("./").split("/")
    if not name or name.startswith("/") or ".." in parts:
        raise BadInput(f"archive member {name!r} is not a relative path inside the archive")
    return "/".join(p for p in parts if p)
