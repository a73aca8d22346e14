"""The runtimes of a process, keyed by language name: plugins register them, the core looks
them up (a dictionary lookup, never a hook every plugin answers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gristmill.errors import GristmillError
from gristmill.runtimes.contract import Runtime

__all__ = ["DuplicateRuntimeError", "RegisteredRuntime", "RuntimeRegistry", "UnknownRuntimeError"]


class UnknownRuntimeError(GristmillError, LookupError):
    """No runtime of that name is registered."""

    def __init__(self, name: str, available: Sequence[str]):
        self.name = name
        self.available = list(available)
        names = ", ".join(self.available) or "none (install a runtime plugin)"
        super().__init__(f"unknown language '{name}'; available languages: {names}")


class DuplicateRuntimeError(GristmillError, RuntimeError):
    """Two plugins registered the same runtime name."""


@dataclass(frozen=True)
class RegisteredRuntime:
    runtime: Runtime
    #: The plugin (and distribution) that registered it, e.g. ``gristmill-python 0.1.0``.
    source: str


class RuntimeRegistry:
    """The runtimes of this process, keyed by name; aliases resolve to their runtime."""

    def __init__(self) -> None:
        self._entries: dict[str, RegisteredRuntime] = {}
        self._aliases: dict[str, str] = {}

    def register(self, runtime: Runtime, *, source: str = "unknown") -> None:
        missing = [
            member
            for member in ("name", "display_name", "aliases", "file_extensions")
            if not hasattr(runtime, member)
        ]
        if missing or not isinstance(runtime, Runtime):
            raise TypeError(
                f"{source} registered {runtime!r}, which does not implement the Runtime "
                f"contract (missing: {', '.join(missing) or 'a method'}); see docs/plugins.md"
            )
        for name in (runtime.name, *runtime.aliases):
            owner = self._owner(name)
            if owner is not None:
                raise DuplicateRuntimeError(
                    f"runtime '{name}' is registered twice: by {owner} and by {source}; "
                    "uninstall one of them or disable it with GRISTMILL_DISABLE_PLUGINS"
                )
        self._entries[runtime.name] = RegisteredRuntime(runtime, source)
        for alias in runtime.aliases:
            self._aliases[alias] = runtime.name

    def _owner(self, name: str) -> str | None:
        canonical = self._aliases.get(name, name)
        entry = self._entries.get(canonical)
        return entry.source if entry else None

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` (itself or the runtime it is an alias of)."""
        canonical = self._aliases.get(name, name)
        if canonical not in self._entries:
            raise UnknownRuntimeError(name, self.names())
        return canonical

    def get(self, name: str) -> Runtime:
        return self._entries[self.resolve(name)].runtime

    def source(self, name: str) -> str:
        return self._entries[self.resolve(name)].source

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Runtime]:
        return (self._entries[name].runtime for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._aliases.get(name, name) in self._entries
