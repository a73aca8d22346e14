"""Loading plugins: a fresh pluggy manager per process, runtimes gathered into a registry."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from gristmill import hookspecs
from gristmill.runtimes import Runtime, RuntimeRegistry
from gristmill.triggers import builtin as builtin_triggers
from gristmill.triggers.kinds import TriggerKind

__all__ = [
    "PluginInfo",
    "build_plugin_manager",
    "list_plugins",
    "load_runtimes",
    "load_trigger_kinds",
]

ENTRY_POINT_GROUP = "gristmill"


def build_plugin_manager(
    *, load_entrypoints: bool = True, extra: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A new plugin manager with the installed plugins and ``extra`` registered.

    ``GRISTMILL_DISABLE_PLUGINS`` (comma-separated entry-point names) blocks plugins;
    ``GRISTMILL_LOAD_PLUGINS`` (same form) loads only those, and when set to an empty string
    loads none.
    """
    pm = pluggy.PluginManager("gristmill")
    pm.add_hookspecs(hookspecs)
    for name in _split(os.environ.get("GRISTMILL_DISABLE_PLUGINS")):
        pm.set_blocked(name)
    allow = os.environ.get("GRISTMILL_LOAD_PLUGINS")
    if load_entrypoints:
        if allow is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in _split(allow):
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    # The core's own trigger kinds come through the same hook as a plugin's, and always load
    # (the plugin settings choose among installed plugins, not among the core's parts).
    pm.register(builtin_triggers, name="gristmill.triggers")
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def plugin_source(pm: pluggy.PluginManager, plugin: object) -> str:
    """A human name for where a plugin comes from: ``gristmill-python 0.1.0`` or its name."""
    for candidate, dist in pm.list_plugin_distinfo():
        if candidate is plugin:
            return f"{dist.project_name} {dist.version}"
    return pm.get_name(plugin) or repr(plugin)


def load_runtimes(pm: pluggy.PluginManager) -> RuntimeRegistry:
    """Ask every plugin for its runtimes; a name registered twice fails, naming both plugins."""
    registry = RuntimeRegistry()
    # Called plugin by plugin (not as one broadcast) so each registration knows its source.
    for impl in reversed(pm.hook.register_runtimes.get_hookimpls()):
        source = plugin_source(pm, impl.plugin)

        def register(runtime: Runtime, _source: str = source) -> None:
            registry.register(runtime, source=_source)

        impl.function(register=register)
    return registry


def load_trigger_kinds(pm: pluggy.PluginManager) -> list[TriggerKind]:
    """Ask every plugin for its trigger kinds; a name registered twice fails, naming both
    plugins."""
    kinds: dict[str, tuple[TriggerKind, str]] = {}
    for impl in reversed(pm.hook.register_trigger_kinds.get_hookimpls()):
        source = plugin_source(pm, impl.plugin)

        def register(kind: TriggerKind, _source: str = source) -> None:
            name = getattr(kind, "name", None)
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(
                    f"{_source}: a trigger kind needs a name of lowercase letters, digits and "
                    f"'_' (got {name!r})"
                )
            if name in kinds:
                raise ValueError(
                    f"trigger kind {name!r} is registered by both {kinds[name][1]} and {_source}"
                )
            kinds[name] = (kind, _source)

        impl.function(register=register)
    return [kind for kind, _ in kinds.values()]


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: list[str]


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """The registered plugins, their distribution and the hooks they implement."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for plugin in pm.get_plugins():
        if plugin is builtin_triggers:
            continue  # a part of the core, registered as a plugin: not something installed
        name = pm.get_name(plugin) or repr(plugin)
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                distribution=dist.project_name if dist else None,
                version=dist.version if dist else None,
                hooks=hooks,
            )
        )
    return sorted(infos, key=lambda info: info.name)
