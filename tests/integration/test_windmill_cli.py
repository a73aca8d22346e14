"""Windmill's CLI (``windmill-cli@1.819.0`` from npm, run by Bun, unchanged) against Gristmill:
``workspace add``, ``script bootstrap/push/run/list/get/show``, ``generate-metadata`` (the lock
computed by a Gristmill dependency job), ``flow push/run``, and a script pushed without its
metadata (empty schema, ``lock: ""``) getting both from Gristmill.

The CLI is installed once per session (tests/conftest.py ``windmill_cli_package``); each test
has its own home and working folder. One platform per module, served on 127.0.0.1 (``served``
of tests/integration/conftest.py): real Postgres, workers, uv and PyPI.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from gristmill.testing.served import Served
from gristmill.testing.windmill_cli import WindmillCli

pytestmark = [pytest.mark.slow, pytest.mark.bundled_plugins]

WORKSPACE = "main"

# A third-party import (PyYAML, imported as `yaml`) that the lock must name, arguments with a
# default, a log line and a result.
DUMPER = """\
import yaml


def main(name: str, times: int = 2):
    print(f"dumping for {name}")
    return {"yaml": yaml.safe_dump({"hello": name * times}).strip()}
"""


def _unique(prefix: str) -> str:
    return f"u/admin/{prefix}_{uuid.uuid4().hex[:8]}"


def _local(cli: WindmillCli, path: str, suffix: str) -> Path:
    return cli.cwd / f"{path}{suffix}"


def _stored(served: Served, path: str) -> dict[str, Any]:
    r = served.http.get(f"/w/{WORKSPACE}/scripts/get/p/{path}")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def cli(served: Served, windmill_cli: WindmillCli) -> WindmillCli:
    """``wmill`` with the served workspace added (non-interactively) as its active one."""
    out = windmill_cli.add_workspace(served.url, WORKSPACE, served.token)
    assert "Added workspace" in out, out
    return windmill_cli


def test_windmill_cli_adds_the_workspace_and_lists_its_items(
    served: Served, cli: WindmillCli
) -> None:
    variable = _unique("cli_var")
    r = served.http.post(
        f"/w/{WORKSPACE}/variables/create",
        json={"path": variable, "value": "seen by the cli", "is_secret": False},
    )
    assert r.status_code == 201, r.text
    resource = _unique("cli_res")
    r = served.http.post(
        f"/w/{WORKSPACE}/resources/create",
        json={"path": resource, "value": {"k": 1}, "resource_type": "any"},
    )
    assert r.status_code == 201, r.text
    script = _unique("cli_listed")
    served.save(script, "def main(x: int):\n    return x + 1\n")

    assert "gristmill" in cli("workspace", "list")
    assert list(cli.home.rglob("remotes.ndjson")), list(cli.home.rglob("*"))

    whoami = cli("workspace", "whoami")
    assert served.email in whoami
    assert re.search(r"super_admin\W+true", whoami), whoami

    remote = cli("workspace", "list-remote")
    assert WORKSPACE in remote and served.email in remote

    variables = json.loads(cli("variable", "list", "--json"))
    assert {"path": variable, "value": "seen by the cli"}.items() <= next(
        v for v in variables if v["path"] == variable
    ).items()
    resources = json.loads(cli("resource", "list", "--json"))
    assert {"path": resource, "resource_type": "any"}.items() <= next(
        r for r in resources if r["path"] == resource
    ).items()
    # `script list` pages from page=0, which Windmill (and Gristmill) serve as the first page.
    assert script in [x["path"] for x in json.loads(cli("script", "list", "--json"))]
    assert script in cli("script", "list")
    first = [
        served.http.get(f"/w/{WORKSPACE}/resources/list", params={"page": p, "per_page": 1}).json()
        for p in (0, 1)
    ]
    assert first[0] == first[1] and len(first[0]) == 1


def test_workspace_add_refuses_a_missing_workspace_or_token_and_creates_one(
    served: Served, windmill_cli: WindmillCli
) -> None:
    """`workspace add` asks `workspaces/exists`: a missing workspace is named with those the
    user can reach, a bad token is refused, and `--create` creates it (reading the global
    setting `automate_username_creation`, true: usernames are instance-wide here)."""
    url = f"{served.url}/"
    done = windmill_cli.run("workspace", "add", "missing", "nosuchws", url, "--token", served.token)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "does not exist" in out and f"- {WORKSPACE} " in out, out
    done = windmill_cli.run("workspace", "add", "bad", WORKSPACE, url, "--token", "nope")
    assert "Credentials or instance is invalid" in done.stdout + done.stderr, done
    new_id = f"cli-{uuid.uuid4().hex[:8]}"
    out = windmill_cli(
        "workspace", "add", "created", new_id, url, "--token", served.token,
        "--create", "--create-workspace-name", "Made by the CLI",
    )  # fmt: skip
    assert f"Added workspace created for {new_id}" in out, out
    listed = served.http.get("/workspaces/list").json()
    assert {"id": new_id, "name": "Made by the CLI"}.items() <= next(
        w for w in listed if w["id"] == new_id
    ).items()
    r = served.http.get("/settings/global/no_such_setting")
    assert r.status_code == 404 and "environment variables" in r.text, r.text


def test_script_bootstrap_writes_a_new_script_locally(windmill_cli: WindmillCli) -> None:
    """`script bootstrap` needs no server: the code and its metadata, empty schema and lock
    (what `script push` then sends for a script whose metadata was never generated)."""
    out = windmill_cli("script", "bootstrap", "u/admin/booted", "python3")
    assert "error" not in out.lower(), out
    code = _local(windmill_cli, "u/admin/booted", ".py").read_text()
    assert "def main(" in code
    meta = yaml.safe_load(_local(windmill_cli, "u/admin/booted", ".script.yaml").read_text())
    assert meta["lock"] == ""
    assert meta["schema"]["properties"] == {}


def test_generate_metadata_locks_on_gristmill_then_push_run_get_show(
    served: Served, cli: WindmillCli
) -> None:
    """`generate-metadata` infers the schema locally and asks Gristmill for the lock (a
    dependency job on code that is not saved, `jobs/run/dependencies_async`); the pushed
    script keeps both and runs with its arguments, its logs and result shown by the CLI."""
    path = _unique("cli_dumper")
    cli("script", "bootstrap", path, "python3")
    _local(cli, path, ".py").write_text(DUMPER)

    out = cli("generate-metadata", "--yes")
    # (Its warning that scripts/raw_temp is missing is expected: docs/compatibility.md.)
    assert "Updated 1 item(s)" in re.sub(r"\x1b\[[0-9;]*m", "", out), out
    meta = yaml.safe_load(_local(cli, path, ".script.yaml").read_text())
    assert set(meta["schema"]["properties"]) == {"name", "times"}
    assert meta["schema"]["required"] == ["name"]
    lock_file = _local(cli, path, ".script.lock")
    assert meta["lock"] == f"!inline {path}.script.lock"
    lock = lock_file.read_text()
    assert re.search(r"(?im)^pyyaml==", lock), lock

    out = cli("script", "push", f"{path}.py")
    assert "Created new script" in out, out
    stored = _stored(served, path)
    assert stored["lock"] == lock  # the CLI's lock kept: nothing locked again
    assert stored["schema"] == meta["schema"]

    out = cli("script", "run", path, "-d", json.dumps({"name": "ab"}))
    assert "dumping for ab" in out, out  # its logs
    assert "hello: abab" in out, out  # its result

    got = cli("script", "get", path)
    assert path in got and "python3" in got
    shown = cli("script", "show", path)
    assert "import yaml" in shown and "def main(name: str, times: int = 2)" in shown


def test_a_script_pushed_without_metadata_gets_its_schema_and_lock(
    served: Served, cli: WindmillCli
) -> None:
    """A new file pushed as is: the CLI sends an empty schema and `lock: ""`; Gristmill infers
    the schema from `main` and locks the imports, so it takes its arguments and runs."""
    path = _unique("cli_bare")
    local = _local(cli, path, ".py")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(DUMPER)
    out = cli("script", "push", f"{path}.py")
    assert "No metadata generated yet" in out and "Created new script" in out, out

    out = cli("script", "run", path, "-d", json.dumps({"name": "cd", "times": 1}))
    assert "hello: cd" in out, out
    stored = _stored(served, path)
    assert set(stored["schema"]["properties"]) == {"name", "times"}
    assert re.search(r"(?im)^pyyaml==", stored["lock"]), stored["lock"]


def test_flow_push_reads_it_back_and_runs_it(served: Served, cli: WindmillCli) -> None:
    """`wmill flow push` creates a flow, sees it up to date when pushed again unchanged,
    updates it when changed; `flow get/list/history/show-version` read what was pushed and
    `flow run` runs it to its result."""
    path = _unique("cli_flow")
    local = cli.cwd / "hello.flow"
    local.mkdir()
    flow: dict[str, Any] = {
        "summary": "Say hello",
        "description": "pushed by the cli",
        "value": {
            "modules": [
                {
                    "id": "a",
                    "value": {
                        "type": "rawscript",
                        "language": "python3",
                        "content": "def main(name: str):\n    return f'hello {name}'\n",
                        "input_transforms": {
                            "name": {"type": "javascript", "expr": "flow_input.name"}
                        },
                    },
                }
            ]
        },
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"name": {"type": "string", "default": "world"}},
            "required": [],
        },
    }
    # JSON is YAML: the file the cli reads is what a `flow.yaml` holds.
    (local / "flow.yaml").write_text(json.dumps(flow))
    out = cli("flow", "push", str(local), path, "--message", "first")
    assert "Creating new flow" in out, out
    out = cli("flow", "push", str(local), path)
    assert "is up to date" in out, out
    flow["summary"] = "Say hello, changed"
    (local / "flow.yaml").write_text(json.dumps(flow))
    out = cli("flow", "push", str(local), path, "--message", "second")
    assert "Updating flow" in out, out

    got = json.loads(cli("flow", "get", path, "--json"))
    assert {k: got[k] for k in flow} == flow
    assert path in [f["path"] for f in json.loads(cli("flow", "list", "--json"))]
    history = json.loads(cli("flow", "history", path, "--json"))
    assert [h["deployment_msg"] for h in history] == ["second", "first"]
    first = json.loads(cli("flow", "show-version", path, str(history[1]["id"]), "--json"))
    assert first["value"] == flow["value"] and first["path"] == path

    out = cli("flow", "run", path, "-d", json.dumps({"name": "cli"}))
    assert "hello cli" in out, out


def test_generate_metadata_locks_a_flows_inline_scripts_then_push_and_run(
    served: Served, cli: WindmillCli
) -> None:
    """For a flow folder, `generate-metadata` asks Gristmill to lock every inline script
    (`jobs/run/flow_dependencies_async`) and keeps each lock in a file of the folder; the
    pushed flow carries the locks and runs."""
    path = _unique("cli_locked_flow")
    folder = cli.cwd / f"{path}.flow"
    folder.mkdir(parents=True)
    flow = {
        "summary": "dump",
        "value": {
            "modules": [
                {
                    "id": "a",
                    "value": {
                        "type": "rawscript",
                        "language": "python3",
                        "content": DUMPER,
                        "input_transforms": {
                            "name": {"type": "javascript", "expr": "flow_input.name"}
                        },
                    },
                },
                {
                    "id": "b",
                    "value": {
                        "type": "rawscript",
                        "language": "bash",
                        "content": "echo done",
                        "input_transforms": {},
                    },
                },
            ]
        },
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    (folder / "flow.yaml").write_text(json.dumps(flow))

    out = cli("generate-metadata", "--yes")
    assert "Updated 1 item(s)" in re.sub(r"\x1b\[[0-9;]*m", "", out), out
    written = yaml.safe_load((folder / "flow.yaml").read_text())
    first = written["value"]["modules"][0]["value"]
    assert first["lock"] == "!inline a.inline_script.lock", first
    lock = (folder / "a.inline_script.lock").read_text()
    assert re.search(r"(?im)^pyyaml==", lock), lock
    assert "lock" not in written["value"]["modules"][1]["value"]  # bash locks nothing

    cli("flow", "push", f"{path}.flow", path)
    r = served.http.get(f"/w/{WORKSPACE}/flows/get/{path}")
    assert r.json()["value"]["modules"][0]["value"]["lock"] == lock
    out = cli("flow", "run", path, "-d", json.dumps({"name": "ef"}))
    assert "done" in out, out


def test_a_script_with_a_syntax_error_is_refused_with_its_line(
    served: Served, cli: WindmillCli
) -> None:
    """Pushed or sent for its lock, code that does not parse is a 400 naming the line: the
    CLI shows it and `script push` fails."""
    path = _unique("cli_broken")
    local = _local(cli, path, ".py")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text("def main(x: int)\n    return x\n")
    done = cli.run("script", "push", f"{path}.py")
    assert done.returncode != 0
    assert "the script cannot be used: line 1" in done.stdout + done.stderr, done

    done = cli.run("generate-metadata", "--yes")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"{path}.py: Failed to queue dependencies job: 400" in out, out
    assert "line 1" in out, out
    r = served.http.get(f"/w/{WORKSPACE}/scripts/exists/p/{path}")
    assert r.json() is False


def test_dependencies_async_refuses_what_it_cannot_lock(served: Served) -> None:
    """The body of `jobs/run/dependencies_async` is Windmill's; what Gristmill does not do
    (workspace dependencies, several scripts at once) and a missing entrypoint are 400s."""
    script = {
        "raw_code": "def main():\n    return 1\n",
        "language": "python3",
        "script_path": "u/admin/x",
    }
    url = f"/w/{WORKSPACE}/jobs/run/dependencies_async"
    cases = [
        ({"raw_scripts": [script], "entrypoint": "u/admin/y"}, "entrypoint"),
        (
            {
                "raw_scripts": [script],
                "entrypoint": "u/admin/x",
                "raw_workspace_dependencies": {"requirements.in": "pyyaml"},
            },
            "workspace dependencies",
        ),
        ({"raw_scripts": [{**script, "language": "cobol"}], "entrypoint": "u/admin/x"}, "cobol"),
        ({"raw_scripts": [{**script, "script_path": "nope"}], "entrypoint": "nope"}, "path"),
    ]
    for body, words in cases:
        r = served.http.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.text, r.text
    flow_url = f"/w/{WORKSPACE}/jobs/run/flow_dependencies_async"
    bad_module = {"type": "rawscript", "language": "python3", "content": "def main(:\n"}
    flow_cases = [
        ({"flow_value": {"modules": [{"id": "a", "value": bad_module}]}}, 'module "a"'),
        ({"flow_value": {"modules": "none"}}, "modules"),
    ]
    for body, words in flow_cases:
        r = served.http.post(flow_url, json={**body, "path": "u/admin/f"})
        assert r.status_code == 400, (body, r.text)
        assert words in r.text, r.text
    r = served.http.post(url, json={"raw_scripts": [script], "entrypoint": "u/admin/x"})
    assert r.status_code == 201, r.text
    # Code that imports nothing: Windmill's result with an empty lock.
    assert _result(served, r.text) == {"status": "Successful lock file generation", "lock": ""}


def _result(served: Served, job_id: str) -> Any:
    """The result of a job once completed, read as the CLI reads it (get_result_maybe)."""
    deadline = time.monotonic() + 60
    while True:
        maybe = served.http.get(
            f"/w/{WORKSPACE}/jobs_u/completed/get_result_maybe/{job_id}",
            params={"get_started": "false"},
        ).json()
        if maybe["completed"]:
            assert maybe["success"], maybe
            return maybe["result"]
        assert time.monotonic() < deadline, maybe
        time.sleep(0.05)
