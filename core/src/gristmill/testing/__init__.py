"""Helpers for testing Gristmill and its plugins against real parts.

``gristmill.testing.pytest_plugin`` provides fixtures: a real Postgres cluster for the test
session (``pg_cluster``), a fresh migrated database per test (``database_url``), and a
started platform with an HTTP client on its API (``platform``, ``api``).
"""
