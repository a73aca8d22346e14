"""The hooks are documented and tested; the core never imports a plugin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pluggy
import pytest
from gristmill import hookspecs

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
CORE_SRC = ROOT / "core" / "src" / "gristmill"


def _hooks() -> dict[str, tuple[str, ...]]:
    """Every hookspec of gristmill.hookspecs with its argument names."""
    pm = pluggy.PluginManager("gristmill")
    pm.add_hookspecs(hookspecs)
    hooks: dict[str, tuple[str, ...]] = {}
    for name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None:
            hooks[name] = tuple(caller.spec.argnames)
    return hooks


HOOKS = _hooks()


def test_hookspecs_found() -> None:
    """The discovery above sees the hooks the core calls."""
    assert {"register_runtimes", "register_commands", "register_routes", "job_env"} <= set(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_documented_with_exact_arguments(hook: str) -> None:
    """docs/plugins.md has a heading ``### <hook>(<args>)`` with the spec's argument names."""
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    headings = dict(re.findall(r"^### (\w+)\(([^)]*)\)\s*$", text, re.MULTILINE))
    assert hook in headings, f"docs/plugins.md has no heading '### {hook}(...)'"
    documented = tuple(a.strip() for a in headings[hook].split(",") if a.strip())
    assert documented == HOOKS[hook]


def _test_function_names() -> set[str]:
    """Names of every test function under tests/ and plugins/*/tests."""
    files = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/test_*.py")]
    names: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test(hook: str) -> None:
    """Each hook has a test named ``test_hook_<name>`` somewhere in the test suites."""
    assert f"test_hook_{hook}" in _test_function_names()


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules.append(node.args[0].value)
    return modules


def test_core_does_not_import_plugins() -> None:
    """No module of the core imports a plugin package (``gristmill_*``)."""
    files = sorted(CORE_SRC.rglob("*.py"))
    assert len(files) > 10
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in _imported_modules(path)
        if module.split(".")[0].startswith("gristmill_")
    ]
    assert offenders == []


def test_core_text_has_no_plugin_import() -> None:
    """A plain text scan agrees: no ``import gristmill_`` / ``from gristmill_`` line."""
    pattern = re.compile(r"^\s*(?:from|import)\s+gristmill_", re.MULTILINE)
    hits = [
        str(path.relative_to(ROOT))
        for path in CORE_SRC.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert hits == []


def test_the_ui_guide_shows_screenshots_the_browser_tests_take() -> None:
    """Each image of docs/ui.md (and the README's) is committed, and a browser test takes it
    (`shot(page, "<name>")`), so the pictures can be renewed by running the tests."""
    guide = (ROOT / "docs" / "ui.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"\]\(img/([\w-]+)\.png\)", guide))
    names |= set(re.findall(r"\]\(docs/img/([\w-]+)\.png\)", readme))
    assert len(names) >= 8
    taken: set[str] = set()
    for test in (ROOT / "tests" / "browser").glob("test_*.py"):
        taken |= set(re.findall(r"shot\(\s*\w+,\s*\"([\w-]+)\"", test.read_text(encoding="utf-8")))
    for name in sorted(names):
        assert (ROOT / "docs" / "img" / f"{name}.png").is_file(), f"docs/img/{name}.png"
        assert name in taken, f"no browser test takes the screenshot {name!r}"
