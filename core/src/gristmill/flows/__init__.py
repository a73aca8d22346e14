"""Flows in Windmill's OpenFlow format: their model, their expressions and their engine."""

from __future__ import annotations

__all__: list[str] = []
