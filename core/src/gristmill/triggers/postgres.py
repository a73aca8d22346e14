"""The Postgres trigger (Windmill's ``/postgres_triggers/``): a script or flow runs for each
row inserted, updated or deleted in tables of a user's database, read through logical
replication with Postgres's built-in ``pgoutput`` plugin.

At save, Gristmill checks the database (reachable, ``wal_level = logical``, the tracked tables
exist) and creates the publication (the tables and operations to track) and the persistent
replication slot when they are missing. The slot keeps every change until Gristmill says it
handled it, so changes made while no Gristmill runs are read at its next start.

Reading: psycopg speaks no replication protocol, so the listener polls the slot with SQL
(``pg_logical_slot_peek_binary_changes``: the changes stay in the slot), decodes the
messages (:mod:`gristmill.triggers.pgoutput`), starts one job per changed row and only then
advances the slot (``pg_replication_slot_advance``). Each job's id is derived from the
trigger, the transaction's commit LSN and the row's place in it: a change read twice (a crash
between the jobs' commit and the slot's advance) finds its job and starts nothing. Hence no
change lost and none run twice across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, LiteralString, cast

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field, field_validator, model_validator

from gristmill.db.queries import Q
from gristmill.errors import BadInput, GristmillError, NotFound
from gristmill.triggers.kinds import TriggerDraft, TriggerKind, TriggerRow, TriggerServices
from gristmill.triggers.pgoutput import Begin, Change, Commit, Decoder, format_lsn, parse_lsn
from gristmill.triggers.runs import owner_access
from gristmill.workspace.resources import get_value_interpolated

if TYPE_CHECKING:
    from gristmill.auth.permissions import Access

__all__ = [
    "PostgresKind",
    "PostgresTriggerConfig",
    "PublicationData",
    "check_connection",
    "is_logical",
]

log = logging.getLogger(__name__)

#: Publication and slot names: what a replication slot accepts (publications are held to
#: the same, so that they need no quoting in pgoutput's ``publication_names``).
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: The comment Gristmill puts on the publications it creates: deleting the trigger drops
#: those, and only those.
_MARK = "created by Gristmill for Postgres trigger"
#: Seconds to connect to the user's database before giving up.
CONNECT_TIMEOUT_S = 5
#: Job ids of changes: uuid5 in this namespace of the trigger, slot, commit LSN and index.
_JOB_NAMESPACE = uuid.UUID("6b1f3a52-43c4-4f4e-9c55-0d1f7e2c9a11")
_TRANSACTIONS = ("insert", "update", "delete")


class UserDatabaseError(GristmillError, RuntimeError):
    """The user's database could not be used (unreachable, misconfigured, slot gone)."""


# -- configuration (Windmill's fields) ---------------------------------------------------------


class TableToTrack(BaseModel):
    table_name: str = Field(min_length=1)
    where_clause: str | None = Field(
        default=None, description="A row filter (SQL), e.g. status = 'paid'."
    )
    columns_name: list[str] = Field(
        default_factory=list, description="Only these columns (all by default)."
    )

    @field_validator("where_clause")
    @classmethod
    def _one_expression(cls, value: str | None) -> str | None:
        # It goes into the publication's DDL as the user wrote it (their own database, their
        # own SQL, as in Windmill); a ';' could end that statement and start another.
        if value is not None and ";" in value:
            raise ValueError("where_clause is one SQL expression: it cannot contain ';'")
        return value or None


class Relations(BaseModel):
    schema_name: str = Field(min_length=1)
    table_to_track: list[TableToTrack] = Field(
        default_factory=list, description="The tables; empty: every table of the schema."
    )


class PublicationData(BaseModel):
    table_to_track: list[Relations] | None = Field(
        default=None, description="Tables by schema; empty or absent: every table."
    )
    transaction_to_track: list[str] = Field(
        description='Which changes: "Insert", "Update", "Delete" (any case).'
    )

    @field_validator("transaction_to_track")
    @classmethod
    def _known_transactions(cls, value: list[str]) -> list[str]:
        kinds = []
        for item in value:
            if item.lower() not in _TRANSACTIONS:
                raise ValueError(
                    f"transaction_to_track: {item!r} is not one of Insert, Update, Delete"
                )
            if item.lower() not in kinds:
                kinds.append(item.lower())
        if not kinds:
            raise ValueError("transaction_to_track: give at least one of Insert, Update, Delete")
        return kinds

    @field_validator("table_to_track")
    @classmethod
    def _schemas_once(cls, value: list[Relations] | None) -> list[Relations] | None:
        if value is not None:
            names = [r.schema_name for r in value]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"table_to_track: schema {twice[0]!r} is given more than once")
        return value

    @property
    def all_tables(self) -> bool:
        return not self.table_to_track


class PostgresTriggerConfig(BaseModel):
    """A Postgres trigger's own fields (Windmill's ``NewPostgresTrigger``)."""

    postgres_resource_path: str = Field(
        min_length=1, description="A postgresql resource: the database to listen to."
    )
    replication_slot_name: str | None = Field(
        default=None,
        description="The logical replication slot; made up (gristmill_trigger_...) if absent.",
    )
    publication_name: str | None = Field(
        default=None,
        description="The publication; made up (gristmill_trigger_...) if absent.",
    )
    publication: PublicationData | None = Field(
        default=None,
        description="What to track: the publication is created (or changed) to match it.",
    )

    @field_validator("replication_slot_name", "publication_name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(
                f"{value!r} is not usable: lowercase letters, digits and '_' "
                "(not first a digit), at most 63 characters"
            )
        return value

    @model_validator(mode="after")
    def _names(self) -> PostgresTriggerConfig:
        # As Windmill: a slot and a publication of one made-up name when none is given (a
        # publication only when Gristmill is to create it: `check` refuses neither).
        made_up = f"gristmill_trigger_{secrets.token_hex(6)}"
        if self.publication_name is None and self.publication is not None:
            self.publication_name = made_up
        if self.replication_slot_name is None:
            self.replication_slot_name = made_up
        return self

    @property
    def slot(self) -> str:
        assert self.replication_slot_name is not None  # set by the validator
        return self.replication_slot_name

    @property
    def pub(self) -> str:
        assert self.publication_name is not None  # set by the validator
        return self.publication_name


# -- the user's database -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where a ``postgresql`` resource points."""

    params: dict[str, Any]

    @property
    def where(self) -> str:
        p = self.params
        return f"{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"


async def _target(services: TriggerServices, access: Access, resource_path: str) -> _Target:
    try:
        value = await get_value_interpolated(services.pool, services.secrets, access, resource_path)
    except NotFound:
        raise BadInput(
            f"postgres_resource_path: no resource {resource_path!r} that "
            f"{access.username} can read in workspace '{access.workspace_id}'"
        ) from None
    missing = [
        k for k in ("host", "user", "dbname") if not (isinstance(value, dict) and value.get(k))
    ]
    if missing:
        raise BadInput(
            f"postgres_resource_path: resource {resource_path!r} is not a postgresql resource "
            f"(it has no {', '.join(missing)})"
        )
    assert isinstance(value, dict)
    params: dict[str, Any] = {
        "host": str(value["host"]),
        "port": int(value.get("port") or 5432),
        "user": str(value["user"]),
        "dbname": str(value["dbname"]),
    }
    if value.get("password"):
        params["password"] = str(value["password"])
    if value.get("sslmode"):
        params["sslmode"] = str(value["sslmode"])
    return _Target(params)


@contextlib.asynccontextmanager
async def _connect(target: _Target) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    try:
        conn = await psycopg.AsyncConnection.connect(
            **target.params,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="gristmill-postgres-trigger",
        )
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserDatabaseError(f"cannot connect to {target.where}: {reason}") from None
    try:
        yield conn
    finally:
        await conn.close()


async def _one(conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any]) -> Any:
    row = await (await conn.execute(cast(LiteralString, query), params)).fetchone()
    return row


async def _check_wal_level(conn: psycopg.AsyncConnection[Any], target: _Target) -> None:
    (level,) = await _one(conn, Q["pgtrig_wal_level"], {})
    if level != "logical":
        raise BadInput(
            f"postgres_resource_path: {target.where} has wal_level = {level}; a Postgres "
            "trigger needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical "
            "there (or set it in postgresql.conf) and restart that Postgres"
        )


async def _check_tables(
    conn: psycopg.AsyncConnection[Any], target: _Target, publication: PublicationData
) -> None:
    for relation in publication.table_to_track or ():
        schema = relation.schema_name
        if not relation.table_to_track:
            (exists,) = await _one(conn, Q["pgtrig_schema_exists"], {"schema": schema})
            if not exists:
                raise BadInput(
                    f"publication.table_to_track: no schema {schema!r} in {target.where}"
                )
        for table in relation.table_to_track:
            row = await _one(
                conn, Q["pgtrig_table_columns"], {"schema": schema, "table": table.table_name}
            )
            if row is None:
                raise BadInput(
                    f"publication.table_to_track: no table {schema}.{table.table_name} in "
                    f"{target.where} (create it first, or fix schema_name/table_name)"
                )
            unknown = [c for c in table.columns_name if c not in row[1]]
            if unknown:
                raise BadInput(
                    f"publication.table_to_track: table {schema}.{table.table_name} has no "
                    f"column {', '.join(map(repr, unknown))}"
                )


def _publication_objects(publication: PublicationData) -> sql.Composable:
    parts: list[sql.Composable] = []
    for relation in publication.table_to_track or ():
        schema = sql.Identifier(relation.schema_name)
        if not relation.table_to_track:
            parts.append(sql.SQL("TABLES IN SCHEMA {}").format(schema))
        for table in relation.table_to_track:
            item = sql.SQL("TABLE {}.{}").format(schema, sql.Identifier(table.table_name))
            if table.columns_name:
                columns = sql.SQL(", ").join(map(sql.Identifier, table.columns_name))
                item = sql.SQL("{} ({})").format(item, columns)
            if table.where_clause:
                # The user's own SQL on their own database (checked to be one expression).
                where = sql.SQL(cast(LiteralString, table.where_clause))
                item = sql.SQL("{} WHERE ({})").format(item, where)
            parts.append(item)
    return sql.SQL(", ").join(parts)


async def _ensure_publication(
    conn: psycopg.AsyncConnection[Any], target: _Target, config: PostgresTriggerConfig, label: str
) -> None:
    """Create the publication when missing; make an existing one track what ``publication``
    says (when given)."""
    name = sql.Identifier(config.pub)
    existing = await _one(conn, Q["pgtrig_publication"], {"publication": config.pub})
    spec = config.publication
    if existing is None and spec is None:
        raise BadInput(
            f"publication_name: no publication {config.pub!r} in {target.where}: give "
            "publication (the tables and changes to track) and Gristmill creates it"
        )
    if spec is None:
        return
    publish = sql.Literal(", ".join(spec.transaction_to_track))
    if existing is not None and bool(existing[0]) != spec.all_tables:
        tracks = "every table" if existing[0] else "some tables"
        raise BadInput(
            f"publication_name: publication {config.pub!r} exists in {target.where} and tracks "
            f"{tracks}; it cannot be changed to track "
            f"{'every table' if spec.all_tables else 'some tables'}: choose another "
            "publication_name (or drop that publication)"
        )
    try:
        async with conn.transaction():
            if existing is None:
                scope = (
                    sql.SQL("FOR ALL TABLES")
                    if spec.all_tables
                    else sql.SQL("FOR {}").format(_publication_objects(spec))
                )
                await conn.execute(
                    sql.SQL("CREATE PUBLICATION {} {} WITH (publish = {})").format(
                        name, scope, publish
                    )
                )
                await conn.execute(
                    sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(
                        name, sql.Literal(f"{_MARK} {label}")
                    )
                )
            else:
                if not spec.all_tables:
                    await conn.execute(
                        sql.SQL("ALTER PUBLICATION {} SET {}").format(
                            name, _publication_objects(spec)
                        )
                    )
                await conn.execute(
                    sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(name, publish)
                )
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise BadInput(
            f"publication: cannot set up publication {config.pub!r} in {target.where}: {reason}"
        ) from None


async def _ensure_slot(
    conn: psycopg.AsyncConnection[Any], target: _Target, config: PostgresTriggerConfig
) -> None:
    row = await _one(conn, Q["pgtrig_slot"], {"slot": config.slot})
    if row is None:
        try:
            await conn.execute(Q["pgtrig_create_slot"], {"slot": config.slot})
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise BadInput(
                f"replication_slot_name: cannot create replication slot {config.slot!r} in "
                f"{target.where}: {reason}"
            ) from None
        return
    plugin, slot_type, database, _pid = row
    if (plugin, slot_type, database) != ("pgoutput", "logical", target.params["dbname"]):
        raise BadInput(
            f"replication_slot_name: slot {config.slot!r} exists in {target.where} but is a "
            f"{slot_type} slot of plugin {plugin} on database {database}: choose another "
            "replication_slot_name"
        )


async def check_connection(services: TriggerServices, access: Access, resource_path: str) -> None:
    """Windmill's ``postgres_triggers/test``: the resource is readable and its database
    reachable (400 saying why otherwise)."""
    target = await _target(services, access, resource_path)
    try:
        async with _connect(target):
            pass
    except UserDatabaseError as exc:
        raise BadInput(f"postgres_resource_path: {exc}") from None


async def is_logical(services: TriggerServices, access: Access, resource_path: str) -> bool:
    """Windmill's ``is_valid_postgres_configuration``: whether the database's ``wal_level``
    is ``logical``."""
    target = await _target(services, access, resource_path)
    try:
        async with _connect(target) as conn:
            (level,) = await _one(conn, Q["pgtrig_wal_level"], {})
    except UserDatabaseError as exc:
        raise BadInput(f"postgres_resource_path: {exc}") from None
    return level == "logical"


# -- the kind ----------------------------------------------------------------------------------


class PostgresKind(TriggerKind):
    name = "postgres"
    title = "Postgres trigger"
    config_model = PostgresTriggerConfig
    listens = True

    #: Seconds between two reads of an idle slot.
    poll_s: ClassVar[float] = 0.5
    #: About how many messages one read takes (whole transactions: it may take more).
    batch: ClassVar[int] = 500

    async def check(self, services: TriggerServices, draft: TriggerDraft, access: Access) -> None:
        config = cast(PostgresTriggerConfig, draft.config)
        if config.publication_name is None:
            raise BadInput(
                "give publication (the tables and changes to track) or the publication_name "
                "of an existing publication"
            )
        target = await _target(services, access, config.postgres_resource_path)
        try:
            async with _connect(target) as conn:
                await _check_wal_level(conn, target)
                if config.publication is not None:
                    await _check_tables(conn, target, config.publication)
                label = f"{draft.workspace_id}/{draft.path}"
                # The publication before the slot: a slot decodes its changes with the
                # catalog as it was when they were made, and must see the publication then.
                await _ensure_publication(conn, target, config, label)
                await _ensure_slot(conn, target, config)
        except UserDatabaseError as exc:
            raise BadInput(f"postgres_resource_path: {exc}") from None

    async def listen(self, services: TriggerServices, trigger: TriggerRow) -> None:
        config = PostgresTriggerConfig.model_validate(trigger.config)
        access = await owner_access(services, trigger)
        target = await _target(services, access, config.postgres_resource_path)
        async with _connect(target) as conn:
            if await _one(conn, Q["pgtrig_slot"], {"slot": config.slot}) is None:
                raise UserDatabaseError(
                    f"replication slot {config.slot!r} does not exist in {target.where} "
                    "(dropped?): save the trigger again to create it (changes made "
                    "without it are not seen)"
                )
            reported = False
            while True:
                try:
                    more = await self._read(services, trigger, config, conn)
                except psycopg.OperationalError as exc:
                    reason = " ".join(str(exc).split())
                    raise UserDatabaseError(f"lost {target.where}: {reason}") from None
                except psycopg.Error as exc:
                    reason = " ".join(str(exc).split())
                    raise UserDatabaseError(
                        f"cannot read replication slot {config.slot!r} in {target.where}: {reason}"
                    ) from None
                if not reported:
                    # It works (again): clear what an earlier attempt recorded.
                    await services.report(trigger, None)
                    reported = True
                if not more:
                    await asyncio.sleep(self.poll_s)

    async def _read(
        self,
        services: TriggerServices,
        trigger: TriggerRow,
        config: PostgresTriggerConfig,
        conn: psycopg.AsyncConnection[Any],
    ) -> bool:
        """Handle what the slot holds now; ``True`` when there is more to read at once."""
        (upto,) = await _one(conn, Q["pgtrig_current_lsn"], {})
        rows = await (
            await conn.execute(
                Q["pgtrig_peek"],
                {
                    "slot": config.slot,
                    "upto_lsn": upto,
                    "upto_n": self.batch,
                    "publication": config.pub,
                },
            )
        ).fetchall()
        decoder = Decoder()
        pending: list[Change] = []
        commit_key = 0
        last_commit: int | None = None
        for lsn_text, data in rows:
            message = decoder.decode(bytes(data))
            if isinstance(message, Begin):
                pending, commit_key = [], message.final_lsn
            elif isinstance(message, Change):
                pending.append(message)
            elif isinstance(message, Commit):
                for index, change in enumerate(pending):
                    await self._start(services, trigger, config, commit_key, index, change)
                pending = []
                last_commit = parse_lsn(lsn_text)
        truncated = len(rows) >= self.batch
        # Every transaction committed before `upto` was read (unless the read was cut at
        # `batch`): the slot may move to `upto` even when nothing was published, so that it
        # does not hold the database's WAL back.
        advance_to = last_commit if truncated else parse_lsn(upto)
        if advance_to is not None:
            await self._advance(conn, config, advance_to)
        return truncated

    async def _advance(
        self, conn: psycopg.AsyncConnection[Any], config: PostgresTriggerConfig, lsn: int
    ) -> None:
        """Tell the slot that everything before ``lsn`` was handled (their jobs committed)."""
        await conn.execute(Q["pgtrig_advance"], {"slot": config.slot, "lsn": format_lsn(lsn)})

    async def _start(
        self,
        services: TriggerServices,
        trigger: TriggerRow,
        config: PostgresTriggerConfig,
        commit_lsn: int,
        index: int,
        change: Change,
    ) -> None:
        key = f"{trigger.workspace_id}/{trigger.path}/{config.slot}/{commit_lsn}/{index}"
        job_id = uuid.uuid5(_JOB_NAMESPACE, key)
        async with services.pool.connection() as conn:
            (exists,) = await _one(conn, Q["pgtrig_job_exists"], {"id": job_id})
        if exists:
            return  # read again after a restart: its job was started already
        args = {
            "transaction_type": change.transaction_type,
            "schema_name": change.relation.schema_name,
            "table_name": change.relation.table_name,
            "row": change.row,
        }
        try:
            await services.start(trigger, args, job_id=job_id)
        except BadInput as exc:
            # This change can never start (its row does not fit the script's parameters):
            # say so on the trigger and go on, rather than hold every later change back.
            message = (
                f"the change of {change.relation.schema_name}.{change.relation.table_name} "
                f"at LSN {format_lsn(commit_lsn)} started no job: {exc}"
            )
            log.warning("Postgres trigger %s: %s", trigger.path, message)
            await services.report(trigger, message)

    async def forget(self, services: TriggerServices, trigger: TriggerRow, access: Access) -> None:
        """Drop the trigger's replication slot (it would hold the database's WAL forever),
        and its publication if Gristmill created it."""
        config = PostgresTriggerConfig.model_validate(trigger.config)
        target = await _target(services, access, config.postgres_resource_path)
        async with _connect(target) as conn:
            deadline = time.monotonic() + 5
            while await _one(conn, Q["pgtrig_slot"], {"slot": config.slot}) is not None:
                try:
                    await conn.execute(Q["pgtrig_drop_slot"], {"slot": config.slot})
                except psycopg.errors.ObjectInUse:
                    # The listener is reading it right now; it stops within a poll.
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            existing = await _one(conn, Q["pgtrig_publication"], {"publication": config.pub})
            if existing is not None and (existing[1] or "").startswith(_MARK):
                await conn.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(config.pub))
                )
