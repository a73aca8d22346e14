"""Windmill's own CLI (``windmill-cli`` on npm, pinned) run by Bun against a Gristmill instance.

The npm install costs seconds, so a test session installs it once (the ``windmill_cli_package``
fixture of tests/conftest.py) and each test gets a :class:`WindmillCli` with a home of its own:
profiles and workspaces a test adds are never seen by another test, nor read from the user's
home. The Bun executable is given by the caller: the core does not import the TypeScript plugin
that finds it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLI_VERSION", "WindmillCli", "clean_env", "install_windmill_cli", "npm_project"]

# The release the tests are written against: its bundle is the spec of what the CLI sends.
CLI_VERSION = "1.819.0"


def clean_env() -> dict[str, str]:
    """This process's environment without what would point a client at another server."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WM_", "GRISTMILL_")) and k not in ("BASE_URL", "BASE_INTERNAL_URL")
    }


def npm_project(bun: str, project: Path, name: str, dependencies: dict[str, str]) -> Path:
    """A directory with the pinned npm packages installed by Bun (its cache next to it)."""
    project.mkdir(parents=True)
    (project / "package.json").write_text(
        json.dumps({"name": name, "private": True, "type": "module", "dependencies": dependencies})
    )
    install = subprocess.run(
        [bun, "install", "--no-save"],
        cwd=project,
        env={**clean_env(), "BUN_INSTALL_CACHE_DIR": str(project.parent / "bun-cache")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert install.returncode == 0, install.stderr
    return project


def install_windmill_cli(bun: str, root: Path, version: str = CLI_VERSION) -> Path:
    """Install ``windmill-cli@version`` under ``root``; the path of its ``wmill`` entry point."""
    project = npm_project(bun, root / "cli", "windmill-cli-check", {"windmill-cli": version})
    package = json.loads((project / "node_modules/windmill-cli/package.json").read_text())
    return project / "node_modules/windmill-cli" / package["bin"]["wmill"]


@dataclass
class WindmillCli:
    """``wmill`` with a home of its own (``home``), run from ``cwd`` (a folder without a
    wmill.yaml unless the test writes one)."""

    bun: str
    main_js: Path
    home: Path
    cwd: Path
    timeout: float = 120

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        env = {
            **clean_env(),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "NO_COLOR": "1",
            "CI": "1",
        }
        env.pop("WMILL_CONFIG_DIR", None)
        return env

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``wmill args`` (stdin closed: nothing may prompt), whatever its exit code."""
        return subprocess.run(
            [self.bun, str(self.main_js), *args],
            cwd=cwd or self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        """Run ``wmill args``, fail the test when it fails; its output (stdout alone with
        ``--json``, so it parses)."""
        done = self.run(*args, cwd=cwd)
        assert done.returncode == 0, f"wmill {args[:2]}: {done.stdout}\n{done.stderr}"
        return done.stdout if "--json" in args else done.stdout + done.stderr

    def add_workspace(self, url: str, workspace: str, token: str, name: str = "gristmill") -> str:
        """``wmill workspace add`` non-interactively: the profile every later call uses."""
        return self("workspace", "add", name, workspace, f"{url.rstrip('/')}/", "--token", token)
