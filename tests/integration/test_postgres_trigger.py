"""The Postgres trigger, for real: a user's Postgres with ``wal_level = logical`` (one more
embedded cluster), Gristmill's platform (API, listener, workers), rows written by the test.

One platform for the module, restarted once (the restart test) on the same database."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from gristmill.api.app import create_app
from gristmill.auth.tokens import create_api_token
from gristmill.config import Settings
from gristmill.db.embedded import EmbeddedPostgres
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import PgCluster, shared_runtimes
from gristmill.triggers.kinds import TriggerRow
from gristmill.triggers.postgres import PostgresKind, PostgresTriggerConfig
from psycopg.rows import dict_row

ON_ROW = (
    "def main(transaction_type: str, schema_name: str, table_name: str, row: dict):\n"
    "    return row\n"
)
TRIGGER = "u/admin/orders"
SLOT = "gm_orders"


@dataclass
class UserDatabase:
    server: EmbeddedPostgres

    @property
    def conninfo(self) -> str:
        return self.server.conninfo

    def execute(self, *statements: str) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def one(self, query: str, *params: Any) -> Any:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return conn.execute(query, params).fetchone()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def user_db() -> Iterator[UserDatabase]:
    """The user's database a trigger listens to: its own cluster, with logical decoding."""
    root = Path(tempfile.mkdtemp(prefix="gm-test-userpg-", dir="/var/tmp"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fsync=False, server_settings=["wal_level=logical"])
    server.start()
    db = UserDatabase(server)
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, note text, paid boolean, extra jsonb)",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    try:
        yield db
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class Gristmill:
    """A platform and a client on its API, that the restart test stops and starts again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform: Platform | None = None
        self.api: httpx.AsyncClient | None = None

    async def start(self) -> None:
        prepared = await asyncio.to_thread(prepare_database, self.settings.database_url)
        platform = Platform(
            settings=self.settings,
            conninfo=self.settings.database_url,
            job_token_secret=prepared.job_token_secret,
            **shared_runtimes(),
        )
        await platform.start()
        self.platform = platform
        # As the admin user (a trigger runs its jobs as the user who saved it: the
        # superadmin secret is no user).
        async with platform.db.connection() as conn:
            row = await (
                await conn.execute("SELECT email FROM app_user WHERE username = 'admin'")
            ).fetchone()
            assert row is not None
            token = await create_api_token(conn, email=row[0], label="test", expiration=None)
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform)),
            base_url="http://gristmill.test/api",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.aclose()
        if self.platform is not None:
            await self.platform.stop()
        self.platform = self.api = None

    async def jobs(self) -> list[dict[str, Any]]:
        """The args of the jobs the trigger started, oldest first."""
        assert self.platform is not None
        async with self.platform.db.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT args FROM job WHERE trigger_kind = 'postgres' AND trigger = %s "
                    "ORDER BY created_at, id",
                    (TRIGGER,),
                )
            ).fetchall()
        return [r[0] for r in rows]


@pytest_asyncio.fixture(scope="module")
async def gm(
    module_settings: Settings, user_db: UserDatabase, pg_cluster: PgCluster
) -> AsyncIterator[Gristmill]:
    gristmill = Gristmill(module_settings)
    await gristmill.start()
    api = gristmill.api
    assert api is not None
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/on_row", "content": ON_ROW, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    socket = str(user_db.server.socket_dir)
    resources = {
        "u/admin/shop": {"host": socket, "port": 5432, "user": "postgres", "dbname": "gristmill"},
        # Gristmill's own test cluster: wal_level replica.
        "u/admin/plain": {
            "host": str(pg_cluster.server.socket_dir),
            "port": 5432,
            "user": "postgres",
            "dbname": "postgres",
        },
        "u/admin/nowhere": {"host": "/nonexistent", "user": "postgres", "dbname": "x"},
    }
    for path, value in resources.items():
        r = await api.post(
            "/w/main/resources/create",
            json={"path": path, "value": value, "resource_type": "postgresql"},
        )
        assert r.status_code == 201, r.text
    try:
        yield gristmill
    finally:
        await gristmill.stop()


def new_trigger(**fields: Any) -> dict[str, Any]:
    return {
        "path": TRIGGER,
        "script_path": "u/admin/on_row",
        "is_flow": False,
        "enabled": True,
        "postgres_resource_path": "u/admin/shop",
        "replication_slot_name": SLOT,
        "publication_name": SLOT,
        "publication": {
            "table_to_track": [
                {"schema_name": "public", "table_to_track": [{"table_name": "orders"}]}
            ],
            "transaction_to_track": ["Insert", "Update", "Delete"],
        },
        **fields,
    }


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def refused(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 400, r.text
    for word in words:
        assert word in r.text, r.text


async def test_save_refuses_what_cannot_work(gm: Gristmill, user_db: UserDatabase) -> None:
    api = gm.api
    assert api is not None
    create = "/w/main/postgres_triggers/create"
    refused(
        await api.post(create, json=new_trigger(postgres_resource_path="u/admin/missing")),
        "postgres_resource_path",
        "no resource 'u/admin/missing'",
    )
    refused(
        await api.post(create, json=new_trigger(postgres_resource_path="u/admin/nowhere")),
        "cannot connect to postgres@/nonexistent:5432/x",
    )
    refused(
        await api.post(create, json=new_trigger(postgres_resource_path="u/admin/plain")),
        "wal_level = replica",
        "ALTER SYSTEM SET wal_level = logical",
    )
    missing_table = new_trigger()
    missing_table["publication"]["table_to_track"][0]["table_to_track"] = [{"table_name": "nope"}]
    refused(await api.post(create, json=missing_table), "no table public.nope")
    missing_column = new_trigger()
    missing_column["publication"]["table_to_track"][0]["table_to_track"] = [
        {"table_name": "orders", "columns_name": ["id", "nope"]}
    ]
    refused(await api.post(create, json=missing_column), "public.orders has no column 'nope'")
    two_statements = new_trigger()
    two_statements["publication"]["table_to_track"][0]["table_to_track"] = [
        {"table_name": "orders", "where_clause": "true; DROP TABLE orders"}
    ]
    refused(await api.post(create, json=two_statements), "cannot contain ';'")
    bad_kind = new_trigger()
    bad_kind["publication"]["transaction_to_track"] = ["Insert", "Truncate"]
    refused(await api.post(create, json=bad_kind), "'Truncate' is not one of")
    refused(
        await api.post(create, json=new_trigger(publication=None, publication_name=None)),
        "give publication",
    )
    refused(
        await api.post(create, json=new_trigger(replication_slot_name="Bad-Name")),
        "replication_slot_name",
    )
    # Nothing was written: no trigger, no slot.
    assert (await api.get(f"/w/main/postgres_triggers/exists/{TRIGGER}")).json() is False
    assert user_db.one("SELECT count(*) FROM pg_replication_slots")[0] == 0
    # Windmill's extra routes.
    valid = "/w/main/postgres_triggers/is_valid_postgres_configuration"
    assert (await api.get(f"{valid}/u/admin/shop")).json() is True
    assert (await api.get(f"{valid}/u/admin/plain")).json() is False
    test = "/w/main/postgres_triggers/test"
    r = await api.post(test, json={"postgres_resource_path": "u/admin/shop"})
    assert r.status_code == 200, r.text
    refused(
        await api.post(test, json={"postgres_resource_path": "u/admin/nowhere"}), "cannot connect"
    )


async def test_each_row_changed_starts_one_job_with_the_row(
    gm: Gristmill, user_db: UserDatabase
) -> None:
    api = gm.api
    assert api is not None
    r = await api.post("/w/main/postgres_triggers/create", json=new_trigger())
    assert r.status_code == 201, r.text
    assert user_db.one("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", SLOT) == (
        "pgoutput",
    )
    # A path taken is refused before anything is created in the database (no second slot).
    again = new_trigger(replication_slot_name=None, publication_name=None)
    r = await api.post("/w/main/postgres_triggers/create", json=again)
    refused(r, "already exists")  # Conflict is a 400 here, as in Windmill
    assert user_db.one("SELECT count(*) FROM pg_replication_slots") == (1,)
    user_db.execute(
        "INSERT INTO orders VALUES (1, 'first', false, '{\"k\": [1]}'), (2, 'second', true, null)",
        "INSERT INTO other VALUES (1)",  # not tracked
        "UPDATE orders SET paid = true WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
    )
    jobs = await wait_until(lambda: _at_least(gm, 4))
    base = {"schema_name": "public", "table_name": "orders"}
    assert jobs == [
        {**base, "transaction_type": "insert", "row": {"id": 1, "note": "first", "paid": False, "extra": {"k": [1]}}},
        {**base, "transaction_type": "insert", "row": {"id": 2, "note": "second", "paid": True, "extra": None}},
        {**base, "transaction_type": "update", "row": {"id": 1, "note": "first", "paid": True, "extra": {"k": [1]}}},
        # A delete sends the key (the table's replica identity): the other columns are null.
        {**base, "transaction_type": "delete", "row": {"id": 2, "note": None, "paid": None, "extra": None}},
    ]  # fmt: skip
    await _slot_caught_up(user_db)
    assert len(await gm.jobs()) == 4
    got = (await api.get(f"/w/main/postgres_triggers/get/{TRIGGER}")).json()
    assert got["error"] is None
    assert got["replication_slot_name"] == SLOT and got["publication_name"] == SLOT
    assert got["server_id"] is not None


async def _at_least(gm: Gristmill, n: int) -> list[dict[str, Any]] | None:
    jobs = await gm.jobs()
    return jobs if len(jobs) >= n else None


async def _slot_caught_up(user_db: UserDatabase) -> None:
    """Wait until the slot was advanced past everything written so far: the listener has
    read it all, so the jobs counted then are all it will ever start for it."""
    (now,) = user_db.one("SELECT pg_current_wal_lsn()::text")

    async def caught_up() -> bool:
        row = user_db.one(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s",
            now,
            SLOT,
        )
        return bool(row and row[0])

    await wait_until(caught_up)


async def test_rows_written_while_gristmill_is_stopped_run_once_after_it_starts(
    gm: Gristmill, user_db: UserDatabase
) -> None:
    before = len(await gm.jobs())
    assert before == 4
    await gm.stop()
    user_db.execute(
        "INSERT INTO orders VALUES (10, 'while down', false, null)",
        "INSERT INTO orders VALUES (11, 'while down', false, null)",
        "UPDATE orders SET note = 'changed while down' WHERE id = 10",
    )
    await gm.start()
    jobs = await wait_until(lambda: _at_least(gm, before + 3))
    await _slot_caught_up(user_db)
    jobs = await gm.jobs()
    assert len(jobs) == before + 3, jobs  # none lost, none twice
    assert [(j["transaction_type"], j["row"]["id"]) for j in jobs[before:]] == [
        ("insert", 10),
        ("insert", 11),
        ("update", 10),
    ]


async def test_a_listener_error_is_shown_then_cleared(gm: Gristmill, user_db: UserDatabase) -> None:
    api = gm.api
    assert api is not None

    def drop_slot() -> None:
        # The listener holds the slot only while it reads: retry until it does not.
        deadline = time.monotonic() + 10
        while True:
            try:
                user_db.execute(f"SELECT pg_drop_replication_slot('{SLOT}')")
                return
            except psycopg.errors.ObjectInUse:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    drop_slot()

    async def error() -> str | None:
        got = (await api.get(f"/w/main/postgres_triggers/get/{TRIGGER}")).json()
        return got["error"]

    message = await wait_until(error)
    assert SLOT in message, message
    # Listed too.
    listed = (await api.get("/w/main/postgres_triggers/list")).json()
    assert [t["error"] for t in listed if t["path"] == TRIGGER] == [message]
    # Saving it again creates the slot; the listener works again and clears the error. The
    # save also changes the publication: some columns, some rows.
    narrower = new_trigger()
    narrower["publication"]["table_to_track"][0]["table_to_track"] = [
        {"table_name": "orders", "columns_name": ["id", "note"], "where_clause": "id >= 20"}
    ]
    r = await api.post(f"/w/main/postgres_triggers/update/{TRIGGER}", json=narrower)
    assert r.status_code == 200, r.text
    user_db.execute(
        "INSERT INTO orders VALUES (5, 'filtered out', false, null)",
        "INSERT INTO orders VALUES (20, 'after', false, null)",
    )
    await wait_until(lambda: _at_least(gm, 8))
    await _slot_caught_up(user_db)
    jobs = await gm.jobs()
    assert len(jobs) == 8
    assert jobs[-1]["row"] == {"id": 20, "note": "after"}
    assert await error() is None


class _CrashesBeforeAdvancing(PostgresKind):
    """The kind as it is, but the process "dies" after committing the jobs of a read and
    before advancing the slot: the worst moment for running a change twice."""

    async def _advance(self, conn: Any, config: PostgresTriggerConfig, lsn: int) -> None:
        return None


async def test_a_change_read_again_after_a_crash_starts_no_second_job(
    gm: Gristmill, user_db: UserDatabase
) -> None:
    api, platform = gm.api, gm.platform
    assert api is not None and platform is not None
    r = await api.post(f"/w/main/postgres_triggers/setenabled/{TRIGGER}", json={"enabled": False})
    assert r.status_code == 200, r.text

    async def listener_gone() -> bool:
        (n,) = user_db.one(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'gristmill-postgres-trigger'"
        )
        return n == 0

    await wait_until(listener_gone)
    before = len(await gm.jobs())
    user_db.execute("INSERT INTO orders VALUES (30, 'read twice', false, null)")
    async with platform.db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM trigger WHERE kind = 'postgres' AND path = %s", (TRIGGER,))
        found = await cur.fetchone()
    assert found is not None
    trigger = TriggerRow.from_db(found)
    config = PostgresTriggerConfig.model_validate(trigger.config)
    async with await psycopg.AsyncConnection.connect(user_db.conninfo, autocommit=True) as conn:
        await _CrashesBeforeAdvancing()._read(platform.triggers, trigger, config, conn)
        assert len(await gm.jobs()) == before + 1
        # Started again: the change is still in the slot, read again, and runs no second job.
        await PostgresKind()._read(platform.triggers, trigger, config, conn)
    await _slot_caught_up(user_db)
    jobs = await gm.jobs()
    assert len(jobs) == before + 1
    assert jobs[-1]["row"]["id"] == 30
    # Found its job and went on: nothing refused, no error on the trigger.
    got = (await api.get(f"/w/main/postgres_triggers/get/{TRIGGER}")).json()
    assert got["error"] is None


async def test_delete_drops_the_slot_and_the_publication(
    gm: Gristmill, user_db: UserDatabase
) -> None:
    api = gm.api
    assert api is not None
    r = await api.delete(f"/w/main/postgres_triggers/delete/{TRIGGER}")
    assert r.status_code == 200, r.text
    assert user_db.one("SELECT count(*) FROM pg_replication_slots")[0] == 0
    assert user_db.one("SELECT count(*) FROM pg_publication")[0] == 0
