"""Trigger kinds gathered from plugins through the ``register_trigger_kinds`` hook."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gristmill import TriggerKind, hookimpl
from gristmill.plugins import build_plugin_manager, load_trigger_kinds
from pydantic import BaseModel


class _Config(BaseModel):
    every_s: float = 1.0


def _kind(kind_name: str) -> TriggerKind:
    class Kind(TriggerKind):
        name = kind_name
        title = f"{kind_name} trigger"
        config_model = _Config

    return Kind()


class _Plugin:
    def __init__(self, *names: str) -> None:
        self.kinds = [_kind(n) for n in names]

    @hookimpl
    def register_trigger_kinds(self, register: Callable[[TriggerKind], None]) -> None:
        for kind in self.kinds:
            register(kind)


def test_hook_register_trigger_kinds() -> None:
    """Every plugin's kinds are gathered, beside the core's own."""
    one, two = _Plugin("alpha"), _Plugin("beta", "gamma")
    kinds = load_trigger_kinds(build_plugin_manager(load_entrypoints=False, extra=[one, two]))
    names = [k.name for k in kinds]
    assert {"alpha", "beta", "gamma"} <= set(names)
    assert len(names) == len(set(names))


def test_a_kind_name_registered_twice_names_both_plugins() -> None:
    pm = build_plugin_manager(load_entrypoints=False, extra=[_Plugin("alpha"), _Plugin("alpha")])
    with pytest.raises(ValueError, match="'alpha' is registered by both"):
        load_trigger_kinds(pm)


@pytest.mark.parametrize("bad", ["", "Alpha", "a-b", "9a", "x" * 41])
def test_a_kind_name_must_fit_routes_and_the_table(bad: str) -> None:
    pm = build_plugin_manager(load_entrypoints=False, extra=[_Plugin(bad)])
    with pytest.raises(ValueError, match="lowercase letters"):
        load_trigger_kinds(pm)
