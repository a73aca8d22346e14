"""The PostgreSQL runtime passes the conformance kit every runtime passes.

The kit's job tests run a script with fixed arguments; a PostgreSQL script needs its
connection among them, known only once the session's Postgres runs. Those tests are
overridden to add it, with the kit's own assertions: the hello-world really runs on Postgres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gristmill.sandbox import RunPolicy
from gristmill.testing.contract import RuntimeContract, require_toolchain
from gristmill.testing.runner import run_job
from gristmill_sql.runtime import PostgresRuntime

# For the tests that only prepare a job (no connection is made).
UNUSED_CONNECTION = {"host": "/nonexistent", "dbname": "none"}


class TestPostgresContract(RuntimeContract):
    runtime_factory = PostgresRuntime
    mangle_pieces = (*"()[]\"';$-/*:=\n ", "$$", "$1", "--", "/*", "*/", "E'", "::int", "é", "$a$")
    mangle_rounds = 500
    mangle_column_with_line = False
    fixtures = Path(__file__).parent / "fixtures" / "signatures"
    min_fixtures = 8
    hello_script = "-- $1 name (text)\n-- $2 count (int) = 2\nSELECT $1 AS name, $2 AS count;\n"
    hello_args = {"database": UNUSED_CONNECTION, "name": "Ada", "count": 3}
    hello_result = [{"name": "Ada", "count": 3}]
    failing_script = "SELECT 1 / (SELECT count(*) FROM pg_class WHERE false) AS boom;\n"
    failing_message = "division by zero"
    bad_script = "SELECT 'never closed;\n"

    def test_contract_hello_world_runs(  # type: ignore[override]
        self, tmp_path: Path, sql_database: dict[str, Any]
    ) -> None:
        runtime = self.make_runtime()
        require_toolchain(runtime)
        args = {**self.hello_args, "database": sql_database}
        ran = run_job(runtime, self.hello_script, args, tmp_path)
        assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
        assert ran.result == self.hello_result

    def test_contract_errors_come_back_in_the_error_shape(  # type: ignore[override]
        self, tmp_path: Path, sql_database: dict[str, Any]
    ) -> None:
        runtime = self.make_runtime()
        require_toolchain(runtime)
        ran = run_job(runtime, self.failing_script, {"database": sql_database}, tmp_path)
        assert not ran.outcome.success
        error = ran.result["error"]
        assert isinstance(error["name"], str) and error["name"]
        assert self.failing_message in error["message"], error
        assert isinstance(error.get("stack", ""), str)

    def test_contract_hello_world_runs_in_the_sandbox(  # type: ignore[override]
        self, sandbox_policy: RunPolicy, sandbox_root: Path, tcp_database: dict[str, Any]
    ) -> None:
        """Under bwrap, as a worker runs it, reaching its database over the network."""
        runtime = self.make_runtime()
        require_toolchain(runtime)
        args = {**self.hello_args, "database": tcp_database}
        ran = run_job(runtime, self.hello_script, args, sandbox_root, policy=sandbox_policy)
        assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
        assert ran.result == self.hello_result
