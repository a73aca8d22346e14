"""The core's layout rules (docs/architecture.md), each checked on the source:

- domain packages never import the API or the server that serves it;
- a route only parses the request, calls domain functions and shapes the response: it never
  touches the database itself;
- plugins (and the third-party Perl example) import only the public ``gristmill`` package;
- every package of the core is on the map of docs/architecture.md, and every package the
  map names exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_SRC = ROOT / "core" / "src" / "gristmill"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: Packages that hold the platform's logic; only ``api`` and ``server`` sit above them.
DOMAIN_PACKAGES = (
    "runtimes",
    "queue",
    "worker",
    "sandbox",
    "scripts",
    "auth",
    "db",
    "workspace",
    "flows",
    "triggers",
    "warm",
    "sync",
)


def _imports(path: Path) -> list[str]:
    """Absolute modules a file imports (at any depth, lazily or not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
            modules.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", DOMAIN_PACKAGES)
def test_domain_packages_never_import_the_api(package: str) -> None:
    files = sorted((CORE_SRC / package).rglob("*.py"))
    assert files, f"no package {package}"
    offenders = [
        f"{path.relative_to(CORE_SRC)}: {module}"
        for path in files
        for module in _imports(path)
        if _under(module, "gristmill.api") or _under(module, "gristmill.server")
    ]
    assert offenders == []


def test_top_level_modules_never_import_the_api() -> None:
    files = [p for p in CORE_SRC.glob("*.py")]
    offenders = [
        f"{path.name}: {module}"
        for path in files
        for module in _imports(path)
        if _under(module, "gristmill.api") or _under(module, "gristmill.server")
    ]
    assert offenders == []


_DATABASE_USE = re.compile(r"\.connection\(|\bQ\[|\.execute\(|\.cursor\(")


@pytest.mark.parametrize(
    "path", sorted((CORE_SRC / "api" / "routes").glob("*.py")), ids=lambda p: p.name
)
def test_routes_do_not_touch_the_database(path: Path) -> None:
    """Routes call domain functions: no driver, no named query, no connection of their own."""
    forbidden = [
        module
        for module in _imports(path)
        if _under(module, "psycopg")
        or _under(module, "psycopg_pool")
        or _under(module, "gristmill.db")
    ]
    assert forbidden == []
    text = path.read_text(encoding="utf-8")
    assert [m.group(0) for m in _DATABASE_USE.finditer(text)] == []


def _plugin_sources() -> list[Path]:
    files = [
        *ROOT.glob("plugins/*/src/**/*.py"),
        *ROOT.glob("tests/fixtures/gristmill-perl/src/**/*.py"),
    ]
    assert len(files) > 20
    return sorted(files)


def test_plugins_import_only_the_public_package() -> None:
    """A runtime is what a third party would write: ``from gristmill import ...`` only."""
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in _plugin_sources()
        for module in _imports(path)
        if _under(module, "gristmill")
        and module.split(".")[0] == "gristmill"
        and not _is_public_name(module)
    ]
    assert offenders == []


def _is_public_name(module: str) -> bool:
    """``gristmill`` itself, or a name imported from it (``gristmill.Recipe``)."""
    import gristmill

    if module == "gristmill":
        return True
    head, _, name = module.partition(".")
    return head == "gristmill" and "." not in name and name in gristmill.__all__


def test_public_names_are_importable_and_documented() -> None:
    """Every name of ``gristmill.__all__`` exists and docs/plugins.md mentions it."""
    import gristmill

    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    missing_attr = [name for name in gristmill.__all__ if not hasattr(gristmill, name)]
    assert missing_attr == []
    undocumented = [
        name for name in gristmill.__all__ if not name.startswith("__") and name not in doc
    ]
    assert undocumented == []


def _packages() -> set[str]:
    return {p.parent.relative_to(CORE_SRC).as_posix() for p in CORE_SRC.rglob("__init__.py")} - {
        "."
    }


def test_architecture_map_matches_the_packages() -> None:
    """docs/architecture.md names each package of the core as `<name>/`, and nothing else."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    text = text[text.index("### The map of the core") : text.index("Rules, each enforced")]
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*)/`", text))
    packages = _packages()
    assert sorted(packages - named) == []
    assert sorted(name for name in named if name not in packages) == []


def test_every_exception_of_the_core_derives_from_the_root() -> None:
    """Every exception class the core defines is a ``GristmillError`` (a caller catches the
    root to catch anything Gristmill refused)."""
    import importlib
    import inspect
    import pkgutil

    import gristmill
    from gristmill.errors import GristmillError

    names = [m.name for m in pkgutil.walk_packages(gristmill.__path__, "gristmill.")]
    names = [n for n in names if not n.startswith("gristmill.testing")]
    assert len(names) > 40
    offenders = []
    for name in names:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == name
                and issubclass(cls, BaseException)
                and not issubclass(cls, GristmillError)
            ):
                offenders.append(f"{name}.{cls.__name__}")
    assert offenders == []


def test_the_old_plugin_imports_keep_working() -> None:
    """A runtime written against plugin API 1 imported from ``gristmill.runtime``,
    ``gristmill.signature`` and ``gristmill.schema``: the same objects are still there."""
    import gristmill
    from gristmill.runtime import JobContext, Recipe, ScriptError, Toolchain, error_result
    from gristmill.schema import signature_to_schema, validate_args
    from gristmill.signature import FUNCTION_CALL_DEFAULT, STR, Arg, Signature

    assert gristmill.PLUGIN_API_VERSION == 1
    assert (JobContext, Recipe, ScriptError, Toolchain, error_result) == (
        gristmill.JobContext,
        gristmill.Recipe,
        gristmill.ScriptError,
        gristmill.Toolchain,
        gristmill.error_result,
    )
    assert (signature_to_schema, validate_args) == (
        gristmill.signature_to_schema,
        gristmill.validate_args,
    )
    assert (FUNCTION_CALL_DEFAULT, STR, Arg, Signature) == (
        gristmill.FUNCTION_CALL_DEFAULT,
        gristmill.STR,
        gristmill.Arg,
        gristmill.Signature,
    )
