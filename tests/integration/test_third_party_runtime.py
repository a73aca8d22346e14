"""A runtime from outside this repository's core and plugins works like a bundled one.

gristmill-perl (tests/fixtures/gristmill-perl) is packaged the way a third party would package
a runtime and installed in the test environment. Nothing in core/ knows about it: the API lists
it, the CLI lists it, and its scripts run end to end on real workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

# It needs gristmill-perl installed (the dev environment has it; a core-only one does not).
pytestmark = pytest.mark.bundled_plugins

ROOT = Path(__file__).resolve().parents[2]

GREET = """\
use strict;
use warnings;

# param name: str -- who to greet
# param times: int = 2
sub main {
    my ($name, $times) = @_;
    print "greeting $name\\n";
    return { greeting => "Hello, $name!", times => $times };
}
"""


async def test_runtimes_lists_perl_with_its_plugin(api: httpx.AsyncClient) -> None:
    runtimes = (await api.get("/runtimes")).json()
    perl = next(r for r in runtimes if r["name"] == "perl")
    assert perl["plugin"] == "gristmill-perl 0.1.0"
    assert perl["display_name"] == "Perl"
    assert perl["aliases"] == ["pl"] and perl["file_extensions"] == [".pl"]
    assert perl["available"] is True, perl["toolchain_message"]
    assert perl["toolchain_version"].startswith("5.")
    assert "sub main" in perl["template"]


async def test_a_perl_script_runs_end_to_end(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/greet", "content": GREET, "language": "perl"},
    )
    assert r.status_code == 201, r.text
    stored = (await api.get("/w/main/scripts/get/p/u/admin/greet")).json()
    assert stored["language"] == "perl"
    assert stored["schema"]["required"] == ["name"]
    assert stored["schema"]["properties"]["times"]["type"] == "integer"

    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/greet", json={"name": "Ada"})
    assert r.status_code == 200, r.text
    assert r.json() == {"greeting": "Hello, Ada!", "times": 2}

    # The API checks arguments against the schema the Perl parser produced.
    r = await api.post(
        "/w/main/jobs/run_wait_result/p/u/admin/greet", json={"name": "Ada", "times": "x"}
    )
    assert r.status_code == 400 and "times" in r.text


async def test_a_perl_failure_and_a_perl_syntax_error(api: httpx.AsyncClient) -> None:
    failing = 'sub main {\n    die "no luck\\n";\n}\n'
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/fails", "content": failing, "language": "pl"},
    )
    assert r.status_code == 201, r.text
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/fails", json={})
    assert r.status_code == 422
    assert r.json()["error"]["name"] == "PerlError"
    assert r.json()["error"]["message"] == "no luck"

    broken = "sub main {\n    my ($x) = @_;\n    return $x +;\n}\n"
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/broken", "content": broken, "language": "perl"},
    )
    assert r.status_code == 400
    assert "line 3, column 15" in r.text


def _cli_env() -> dict[str, str]:
    # Whatever selection of plugins the developer's shell makes, all installed ones load.
    env = dict(os.environ)
    env.pop("GRISTMILL_LOAD_PLUGINS", None)
    env.pop("GRISTMILL_DISABLE_PLUGINS", None)
    return env


def test_gristmill_plugins_lists_perl() -> None:
    gristmill = str(Path(sys.executable).parent / "gristmill")
    listing = subprocess.run(
        [gristmill, "plugins", "--json"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    found = json.loads(listing.stdout)
    plugin = next(p for p in found["plugins"] if p["name"] == "perl")
    assert plugin["distribution"] == "gristmill-perl" and plugin["version"] == "0.1.0"
    assert plugin["hooks"] == ["register_runtimes"]
    runtime = next(r for r in found["runtimes"] if r["name"] == "perl")
    assert runtime["plugin"] == "gristmill-perl 0.1.0" and runtime["available"] is True

    text = subprocess.run(
        [gristmill, "plugins"], capture_output=True, text=True, env=_cli_env(), timeout=120
    )
    assert "perl  from gristmill-perl 0.1.0  ready" in text.stdout


def test_perl_is_offered_only_to_who_opts_in() -> None:
    """The example plugin is installed with the development environment, but `gristmill up`
    run by hand does not offer Perl: only GRISTMILL_EXAMPLE_PERL=1 (set for the tests)."""
    gristmill = str(Path(sys.executable).parent / "gristmill")
    env = _cli_env()
    env.pop("GRISTMILL_EXAMPLE_PERL")
    listing = subprocess.run(
        [gristmill, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    found = json.loads(listing.stdout)
    names = [r["name"] for r in found["runtimes"]]
    assert "perl" not in names and "python3" in names and "bun" in names


def test_no_file_under_core_mentions_perl() -> None:
    """The promise: a language needs no change to the core.

    Every file under core/ is searched, caches and binaries included. The word is matched
    where a letter does not touch it, so "properly" passes while "Perl", "perl5",
    "gristmill_perl" and "PERL_PATH" are caught.
    """
    found = subprocess.run(
        ["grep", "-r", "-l", "-i", "-E", "(^|[^a-z])perl([^a-z]|$)", str(ROOT / "core")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 1, f"core mentions perl:\n{found.stdout}{found.stderr}"
