"""A plugin that raises at import, the settings that recover from it, and the plugin commands.

The broken plugin is a real installed distribution: a ``.dist-info`` folder and a module in a
directory put on the import path, which is all `importlib.metadata` and pluggy read. A process
gets the same directory through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from gristmill.plugins import (
    CORE_PLUGIN,
    PluginLoadError,
    build_plugin_manager,
    inspect_plugins,
    list_plugins,
)
from gristmill.server.cli import cli
from gristmill.server.plugins_cli import install_arguments

GRISTMILL = Path(sys.executable).parent / "gristmill"


def _distribution(site: Path, dist: str, entry: str, module: str, source: str) -> None:
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[gristmill]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(source)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding two installed plugins: `broken` raises at import, `fine` works."""
    site = tmp_path / "site"
    _distribution(
        site,
        "gristmill-broken",
        "broken",
        "gristmill_broken_plugin",
        'raise RuntimeError("boom at import")\n',
    )
    _distribution(
        site,
        "gristmill-fine",
        "fine",
        "gristmill_fine_plugin",
        "from gristmill import hookimpl\n\n\n@hookimpl\ndef job_env(job):\n    return None\n",
    )
    return site


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``site`` on this process's import path, and no plugin setting."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("GRISTMILL_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("GRISTMILL_DISABLE_PLUGINS", raising=False)
    for module in ("gristmill_broken_plugin", "gristmill_fine_plugin"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return site


def test_a_plugin_raising_at_import_stops_the_start_naming_the_remedy(installed: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        build_plugin_manager()
    message = str(info.value)
    assert "plugin 'broken' (gristmill-broken 0.1.0) failed to load" in message
    assert "RuntimeError: boom at import" in message
    assert "GRISTMILL_DISABLE_PLUGINS=broken" in message
    assert "`gristmill uninstall gristmill-broken`" in message
    assert [b.name for b in info.value.broken] == ["broken"]


def test_the_other_plugins_still_load_when_one_is_broken(installed: Path) -> None:
    pm, broken = inspect_plugins()
    assert [b.name for b in broken] == ["broken"]
    assert broken[0].distribution == "gristmill-broken" and broken[0].version == "0.1.0"
    assert pm.has_plugin("fine") and not pm.has_plugin("broken")


def test_disabling_the_broken_plugin_never_imports_it(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRISTMILL_DISABLE_PLUGINS", "broken")
    pm = build_plugin_manager()
    assert pm.has_plugin("fine")
    assert "gristmill_broken_plugin" not in sys.modules


@pytest.mark.parametrize("allow", ["", "fine", "fine,absent"])
def test_loading_only_named_plugins_skips_the_broken_one(
    installed: Path, monkeypatch: pytest.MonkeyPatch, allow: str
) -> None:
    monkeypatch.setenv("GRISTMILL_LOAD_PLUGINS", allow)
    pm = build_plugin_manager()
    assert pm.has_plugin("fine") == (allow != "")
    assert "gristmill_broken_plugin" not in sys.modules


def test_naming_the_broken_plugin_still_fails(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRISTMILL_LOAD_PLUGINS", "fine,broken")
    with pytest.raises(PluginLoadError, match="'broken'"):
        build_plugin_manager()


@pytest.mark.parametrize(
    ("source", "error"),
    [
        # A misspelt hook (register_runtime) and a hook argument the core does not pass.
        (
            "@hookimpl\ndef register_runtime(register):\n    pass\n",
            "unknown hook 'register_runtime'",
        ),
        ("@hookimpl\ndef job_env(job, extra):\n    pass\n", "extra"),
    ],
)
def test_a_plugin_whose_hooks_do_not_match_is_reported_like_a_broken_one(
    site: Path, monkeypatch: pytest.MonkeyPatch, source: str, error: str
) -> None:
    _distribution(
        site,
        "gristmill-odd",
        "odd",
        "gristmill_odd_plugin",
        "from gristmill import hookimpl\n\n\n" + source,
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("GRISTMILL_DISABLE_PLUGINS", "broken")
    monkeypatch.delitem(sys.modules, "gristmill_odd_plugin", raising=False)
    pm, broken = inspect_plugins()
    assert [(b.name, b.distribution) for b in broken] == [("odd", "gristmill-odd")]
    assert error in broken[0].error
    assert pm.has_plugin("fine") and not pm.has_plugin("odd")
    with pytest.raises(PluginLoadError, match="GRISTMILL_DISABLE_PLUGINS=odd"):
        build_plugin_manager()
    monkeypatch.setenv("GRISTMILL_DISABLE_PLUGINS", "broken,odd")
    assert build_plugin_manager().has_plugin("fine")


def test_list_plugins_all_includes_the_core(installed: Path) -> None:
    pm, _ = inspect_plugins()
    names = [info.name for info in list_plugins(pm)]
    assert "fine" in names and CORE_PLUGIN not in names
    core = {info.name: info for info in list_plugins(pm, include_core=True)}[CORE_PLUGIN]
    assert core.builtin and core.distribution == "gristmill"
    assert core.hooks == ["register_trigger_kinds"]


def test_plugins_command_reports_the_broken_plugin(installed: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(cli, ["plugins", "--json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.output)
    assert [b["name"] for b in found["broken"]] == ["broken"]
    assert found["broken"][0]["error"] == "RuntimeError: boom at import"
    assert "GRISTMILL_DISABLE_PLUGINS=broken" in found["broken"][0]["remedy"]
    fine = next(p for p in found["plugins"] if p["name"] == "fine")
    assert fine == {
        "name": "fine",
        "distribution": "gristmill-fine",
        "version": "0.1.0",
        "hooks": ["job_env"],
        "runtimes": [],
        "builtin": False,
    }
    assert all(not p["builtin"] for p in found["plugins"])

    everything = json.loads(runner.invoke(cli, ["plugins", "--json", "--all"]).output)
    assert CORE_PLUGIN in [p["name"] for p in everything["plugins"]]

    text = runner.invoke(cli, ["plugins", "--all"])
    assert text.exit_code == 0, text.output
    assert "  fine  gristmill-fine 0.1.0  hooks: job_env" in text.output
    assert f"  {CORE_PLUGIN}  gristmill 0.1.0 (built in)  hooks: register_trigger_kinds" in (
        text.output
    )
    assert "Broken plugins (not loaded):\n  broken  gristmill-broken 0.1.0  RuntimeError" in (
        text.output
    )


def test_the_gristmill_command_works_beside_a_broken_plugin(site: Path) -> None:
    """A real `gristmill` process with the broken plugin installed (PYTHONPATH): the command
    starts, lists the plugin as broken, and says nothing else about it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRISTMILL_")}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [str(GRISTMILL), "plugins"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "  broken  gristmill-broken 0.1.0  RuntimeError: boom at import" in done.stdout
    assert done.stderr == ""


def test_install_and_uninstall_refuse_what_they_cannot_do() -> None:
    runner = CliRunner()
    nothing = runner.invoke(cli, ["install"])
    assert nothing.exit_code == 2 and "name at least one package, or -e PATH" in nothing.output
    itself = runner.invoke(cli, ["uninstall", "--yes", "Gristmill"])
    assert itself.exit_code == 2 and "gristmill cannot uninstall itself" in itself.output


def test_install_arguments_keep_the_core_and_upgrade_only_what_is_named(tmp_path: Path) -> None:
    wheel = tmp_path / "gristmill_lua-0.1.0-py3-none-any.whl"
    wheel.touch()
    named = ["gristmill-ruby", "gristmill-lua[jit]>=0.2", str(wheel)]
    assert install_arguments("uv", named, ["./dev"], upgrade=True) == [
        "--no-sources",
        "--upgrade-package",
        "gristmill-ruby",
        "--upgrade-package",
        "gristmill-lua",
        *named,
        "--editable",
        "./dev",
    ]
    assert install_arguments("uv", ["gristmill-ruby"], [], upgrade=False) == [
        "--no-sources",
        "gristmill-ruby",
    ]
    # pip's --upgrade already moves only the named packages and what they need.
    assert install_arguments("pip", named, [], upgrade=True) == ["--upgrade", *named]
