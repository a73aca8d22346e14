"""Loading plugins: a fresh pluggy manager per process, runtimes gathered into a registry."""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from gristmill import __version__, hookspecs
from gristmill.errors import GristmillError
from gristmill.runtimes import Runtime, RuntimeRegistry
from gristmill.triggers import builtin as builtin_triggers
from gristmill.triggers.kinds import TriggerKind

__all__ = [
    "BrokenPlugin",
    "PluginInfo",
    "PluginLoadError",
    "build_plugin_manager",
    "inspect_plugins",
    "list_plugins",
    "load_runtimes",
    "load_trigger_kinds",
]

ENTRY_POINT_GROUP = "gristmill"
#: The name under which the core's built-in hook implementations are registered.
CORE_PLUGIN = "gristmill.triggers"


@dataclass(frozen=True)
class BrokenPlugin:
    """An installed plugin whose entry point could not be loaded (it raised at import, or its
    hooks do not match the core's)."""

    name: str
    distribution: str | None
    version: str | None
    error: str

    def remedy(self) -> str:
        """How to start anyway, and how to get rid of it."""
        hint = f"skip it with GRISTMILL_DISABLE_PLUGINS={self.name}"
        if self.distribution:
            hint += f", or remove it with `gristmill uninstall {self.distribution}`"
        return hint


class PluginLoadError(GristmillError, RuntimeError):
    """Installed plugins that could not be loaded; the message says how to start without
    them."""

    def __init__(self, broken: list[BrokenPlugin]) -> None:
        self.broken = broken
        lines = [
            f"plugin {b.name!r} ({b.distribution or 'not packaged'}"
            f"{' ' + b.version if b.version else ''}) failed to load: {b.error}; {b.remedy()}"
            for b in broken
        ]
        super().__init__("\n".join(lines))


def build_plugin_manager(
    *, load_entrypoints: bool = True, extra: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A new plugin manager with the installed plugins and ``extra`` registered.

    ``GRISTMILL_DISABLE_PLUGINS`` (comma-separated entry-point names) blocks plugins;
    ``GRISTMILL_LOAD_PLUGINS`` (same form) loads only those, and when set to an empty string
    loads none. An installed plugin that cannot be loaded raises :class:`PluginLoadError`,
    which names it and the setting that skips it.
    """
    pm, broken = inspect_plugins(load_entrypoints=load_entrypoints, extra=extra)
    if broken:
        raise PluginLoadError(broken)
    return pm


def inspect_plugins(
    *, load_entrypoints: bool = True, extra: Iterable[object] = ()
) -> tuple[pluggy.PluginManager, list[BrokenPlugin]]:
    """Like :func:`build_plugin_manager`, but a plugin that cannot be loaded is left out and
    reported instead of stopping the others (for `gristmill plugins` and the CLI's own
    commands, which must work to repair an installation)."""
    pm = pluggy.PluginManager("gristmill")
    pm.add_hookspecs(hookspecs)
    for name in _split(os.environ.get("GRISTMILL_DISABLE_PLUGINS")):
        pm.set_blocked(name)
    allow = os.environ.get("GRISTMILL_LOAD_PLUGINS")
    broken: list[BrokenPlugin] = []
    if load_entrypoints:
        if allow is None:
            broken = _load_entrypoints(pm, None)
        else:
            for name in _split(allow):
                broken += _load_entrypoints(pm, name)
    # The core's own trigger kinds come through the same hook as a plugin's, and always load
    # (the plugin settings choose among installed plugins, not among the core's parts).
    pm.register(builtin_triggers, name=CORE_PLUGIN)
    for plugin in extra:
        pm.register(plugin)
    broken += _drop_unknown_hooks(pm)
    pm.check_pending()
    return pm, broken


def _drop_unknown_hooks(pm: pluggy.PluginManager) -> list[BrokenPlugin]:
    """Installed plugins implementing a hook the core does not have (a misspelt name, a hook
    of another Gristmill version) are unregistered and reported like those that fail to
    import; the check that follows still refuses such a hook in a plugin passed in code."""
    broken: list[BrokenPlugin] = []
    while True:
        try:
            pm.check_pending()
            return broken
        except pluggy.PluginValidationError as exc:
            dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
            dist = dists.get(id(exc.plugin))
            name = pm.get_name(exc.plugin)
            if dist is None or name is None:
                raise  # not an installed plugin
            pm.unregister(name=name)
            broken.append(
                BrokenPlugin(name, dist.project_name, dist.version, f"PluginValidationError: {exc}")
            )


def _load_entrypoints(pm: pluggy.PluginManager, name: str | None) -> list[BrokenPlugin]:
    """Load the group's entry points (all, or the one named), reporting those that fail."""
    try:
        # The usual case, all at once: pluggy scans the installed distributions once.
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        return []
    except Exception:
        pass
    # One failed, and pluggy stops at the first failure: load the rest one by one, so that each
    # failure is known and the plugins that work still load (those loaded already are kept).
    broken: list[BrokenPlugin] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (name is not None and entry.name != name) or pm.is_blocked(entry.name):
            continue
        if pm.has_plugin(entry.name) or any(b.name == entry.name for b in broken):
            continue
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=entry.name)
        except Exception as exc:
            if pm.has_plugin(entry.name):  # registered, then refused by a hook's check
                pm.unregister(name=entry.name)
            dist = entry.dist
            broken.append(
                BrokenPlugin(
                    name=entry.name,
                    distribution=dist.name if dist else None,
                    version=dist.version if dist else None,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
    return broken


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
    #: The runtimes it registered (when :func:`list_plugins` was given the registry).
    runtimes: list[str] = field(default_factory=list)
    #: A part of the core registered as a plugin, not something installed.
    builtin: bool = False


def list_plugins(
    pm: pluggy.PluginManager,
    registry: RuntimeRegistry | None = None,
    *,
    include_core: bool = False,
) -> list[PluginInfo]:
    """The registered plugins, their distribution, the hooks they implement and, given the
    registry :func:`load_runtimes` made, their runtimes; the core's built-in hook
    implementations only with ``include_core``."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for plugin in pm.get_plugins():
        builtin = plugin is builtin_triggers
        if builtin and not include_core:
            continue
        name = pm.get_name(plugin) or repr(plugin)
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        source = plugin_source(pm, plugin)
        runtimes = (
            [rt.name for rt in registry if registry.source(rt.name) == source]
            if registry is not None
            else []
        )
        infos.append(
            PluginInfo(
                name=name,
                distribution="gristmill" if builtin else dist.project_name if dist else None,
                version=__version__ if builtin else dist.version if dist else None,
                hooks=hooks,
                runtimes=sorted(runtimes),
                builtin=builtin,
            )
        )
    return sorted(infos, key=lambda info: info.name)
