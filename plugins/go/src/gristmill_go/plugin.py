"""Registers this plugin's runtimes with Gristmill (being written)."""
