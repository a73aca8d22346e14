"""Loading plugins with pluggy: extra plugins, entry points, runtimes and the plugin list."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gristmill.hookspecs import hookimpl
from gristmill.plugins import build_plugin_manager, list_plugins, load_runtimes
from gristmill.runtimes import DuplicateRuntimeError, JobContext, Runtime, Toolchain
from gristmill.runtimes.signature import Signature
from gristmill.triggers import builtin as builtin_triggers


class TinyRuntime:
    """A runtime with every member of the contract."""

    display_name = "Tiny"
    aliases: tuple[str, ...] = ()
    file_extensions = (".tiny",)

    def __init__(self, name: str, aliases: tuple[str, ...] = ()) -> None:
        self.name = name
        self.aliases = aliases

    def parse_signature(self, source: str) -> Signature:
        return Signature()

    def template(self) -> str:
        return ""

    def toolchain(self) -> Toolchain:
        return Toolchain(True)

    def prepare(self, ctx: JobContext):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def collect_result(self, ctx, exit):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class OnePlugin:
    """Registers ``alpha`` (alias ``a``)."""

    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        register(TinyRuntime("alpha", ("a",)))


class TwoRuntimesPlugin:
    """Registers ``beta`` and ``gamma``."""

    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        register(TinyRuntime("beta"))
        register(TinyRuntime("gamma"))


class ClashPlugin:
    """Registers another ``alpha``."""

    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        register(TinyRuntime("alpha"))


class EnvPlugin:
    """Implements job_env only."""

    @hookimpl
    def job_env(self, job: JobContext) -> dict[str, str]:
        return {"X": "1"}


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRISTMILL_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("GRISTMILL_DISABLE_PLUGINS", raising=False)


def test_extra_plugins_only() -> None:
    """Without entry points only the extra plugins (and the core's trigger kinds) are
    registered."""
    one, two = OnePlugin(), TwoRuntimesPlugin()
    pm = build_plugin_manager(load_entrypoints=False, extra=[one, two])
    assert set(pm.get_plugins()) == {one, two, builtin_triggers}


def test_load_runtimes_from_two_plugins() -> None:
    """load_runtimes gathers the runtimes of every plugin into one registry."""
    pm = build_plugin_manager(load_entrypoints=False, extra=[OnePlugin(), TwoRuntimesPlugin()])
    registry = load_runtimes(pm)
    assert registry.names() == ["alpha", "beta", "gamma"]
    assert registry.resolve("a") == "alpha"
    assert len(registry) == 3


def test_load_runtimes_sources_name_plugin() -> None:
    """Each runtime remembers which plugin registered it."""
    one, two = OnePlugin(), TwoRuntimesPlugin()
    pm = build_plugin_manager(load_entrypoints=False, extra=[one, two])
    registry = load_runtimes(pm)
    assert registry.source("alpha") == pm.get_name(one)
    assert registry.source("gamma") == pm.get_name(two)
    assert registry.source("alpha") != registry.source("beta")


def test_same_runtime_from_two_plugins_names_both() -> None:
    """Two plugins registering one name fail with an error naming both plugins."""
    one, clash = OnePlugin(), ClashPlugin()
    pm = build_plugin_manager(load_entrypoints=False, extra=[one, clash])
    with pytest.raises(DuplicateRuntimeError) as info:
        load_runtimes(pm)
    message = str(info.value)
    assert "'alpha'" in message
    assert str(pm.get_name(one)) in message
    assert str(pm.get_name(clash)) in message


def test_load_runtimes_without_plugins_is_empty() -> None:
    """No plugin, no runtime."""
    assert len(load_runtimes(build_plugin_manager(load_entrypoints=False))) == 0


def test_list_plugins_shows_hooks() -> None:
    """list_plugins gives each plugin's name and the hooks it implements."""
    one, env = OnePlugin(), EnvPlugin()
    pm = build_plugin_manager(load_entrypoints=False, extra=[one, env])
    infos = {info.name: info for info in list_plugins(pm)}
    assert infos[str(pm.get_name(one))].hooks == ["register_runtimes"]
    assert infos[str(pm.get_name(env))].hooks == ["job_env"]
    assert all(info.distribution is None for info in infos.values())
    assert [i.name for i in list_plugins(pm)] == sorted(infos)


def test_empty_load_plugins_loads_no_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRISTMILL_LOAD_PLUGINS="" loads no entry point, though gristmill-python is installed."""
    monkeypatch.setenv("GRISTMILL_LOAD_PLUGINS", "")
    pm = build_plugin_manager()
    assert pm.get_plugins() == {builtin_triggers}
    assert len(load_runtimes(pm)) == 0


@pytest.mark.bundled_plugins
def test_default_loads_installed_python_plugin() -> None:
    """By default the installed gristmill-python entry point loads and gives python3."""
    pm = build_plugin_manager()
    registry = load_runtimes(pm)
    assert "python3" in registry
    assert registry.resolve("python") == "python3"
    assert registry.source("python3").startswith("gristmill-python ")
    infos = {info.name: info for info in list_plugins(pm)}
    assert infos["python3"].distribution == "gristmill-python"
    assert infos["python3"].hooks == ["register_runtimes"]


@pytest.mark.bundled_plugins
def test_load_plugins_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRISTMILL_LOAD_PLUGINS=python3 loads that entry point."""
    monkeypatch.setenv("GRISTMILL_LOAD_PLUGINS", "python3")
    assert "python3" in load_runtimes(build_plugin_manager())


def test_disable_plugins_blocks_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRISTMILL_DISABLE_PLUGINS=python3 blocks the installed plugin."""
    monkeypatch.setenv("GRISTMILL_DISABLE_PLUGINS", " python3 ,")
    assert "python3" not in load_runtimes(build_plugin_manager())


@pytest.mark.bundled_plugins
def test_installed_and_extra_plugin_clash() -> None:
    """An extra plugin re-registering python3 clashes with the installed one, naming both."""

    class Impostor:
        @hookimpl
        def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
            register(TinyRuntime("python3"))

    pm = build_plugin_manager(extra=[Impostor()])
    with pytest.raises(DuplicateRuntimeError, match="gristmill-python"):
        load_runtimes(pm)
