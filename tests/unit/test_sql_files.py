"""The named query files and the migrations list (read only, no database)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from gristmill.db.migrations import list_migrations
from gristmill.db.queries import Q, load_queries

ROOT = Path(__file__).resolve().parents[2]
CORE_SRC = ROOT / "core" / "src" / "gristmill"
QUERIES_DIR = CORE_SRC / "db" / "sql" / "queries"


def _declared_names() -> list[str]:
    """Every ``-- name:`` line of the query files, read loosely (any spacing, any characters)."""
    names: list[str] = []
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        names += re.findall(r"^--\s*name\s*:\s*(\S+)", text, re.MULTILINE)
    return names


def test_every_block_parsed() -> None:
    """load_queries returns one non-empty query per ``-- name:`` line, none swallowing another."""
    queries = load_queries()
    declared = _declared_names()
    assert len(declared) > 10
    assert sorted(queries) == sorted(declared)
    for name, body in queries.items():
        assert body, name
        assert "-- name:" not in body, name
        # Each block holds SQL, not only comments.
        code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
        assert code.strip(), name


def test_no_duplicate_names() -> None:
    """No query name is declared twice."""
    counts = Counter(_declared_names())
    assert [name for name, n in counts.items() if n > 1] == []


def test_q_returns_the_text() -> None:
    """Q[name] is the query text load_queries holds."""
    assert Q["get_setting"] == load_queries()["get_setting"]
    assert Q["get_setting"].startswith("SELECT")


def _used_names() -> set[str]:
    """Query names the core's source uses: ``Q["..."]`` and names passed to a fetch helper."""
    used: set[str] = set()
    for path in CORE_SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used.update(re.findall(r"""\bQ\[\s*["'](\w+)["']\s*\]""", text))
        used.update(re.findall(r"""_fetch(?:_one)?\(\s*\w+\s*,\s*["'](\w+)["']""", text))
    return used


def test_every_used_query_exists() -> None:
    """Every query name the source refers to is defined in a query file."""
    used = _used_names()
    assert len(used) > 10
    assert sorted(used - set(load_queries())) == []


def test_migrations_ordered_unique_from_one() -> None:
    """Migrations are numbered 1, 2, 3, ... in order, each with a name and SQL."""
    migrations = list_migrations()
    assert migrations
    versions = [m.version for m in migrations]
    assert versions == list(range(1, len(migrations) + 1))
    for m in migrations:
        assert m.name and not m.name.endswith(".sql")
        assert m.sql.strip()


def test_migration_files_match_list() -> None:
    """Every .sql file of the migrations folder is listed, named NNNN_name.sql."""
    folder = CORE_SRC / "db" / "sql" / "migrations"
    files = sorted(p.name for p in folder.glob("*.sql"))
    assert all(re.fullmatch(r"\d{4}_\w+\.sql", name) for name in files), files
    assert [f"{m.version:04d}_{m.name}.sql" for m in list_migrations()] == files


def test_queries_are_split_by_domain() -> None:
    """Each query file names a domain of the core, and no SQL is left in a single file."""
    files = sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))
    assert {"queue", "scripts", "auth"} <= set(files)
    assert not (CORE_SRC / "db" / "sql" / "queries.sql").exists()


def test_no_sql_written_inline_in_python() -> None:
    """The core's SQL lives in .sql files: no module executes a statement written as text
    (the test fixtures' CREATE DATABASE of generated names excepted)."""
    statement = re.compile(
        r"""\.execute\(\s*f?["'](?:SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH)\b""",
        re.IGNORECASE,
    )
    offenders = []
    for path in CORE_SRC.rglob("*.py"):
        if "testing" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if statement.search(line):
                offenders.append(f"{path.relative_to(CORE_SRC)}:{number}: {line.strip()}")
    assert offenders == []
