"""Windmill's own clients, unchanged, against Gristmill: variables, resources, state, runs.

The pinned releases are the real ones: ``wmill==1.850.0`` (PyPI) from this process and inside
Python jobs, ``windmill-client@1.818.0`` (npm) run by Bun from a directory of its own and
inside Bun jobs, and the TypeScript example of Windmill's README (``windmill-cli``: in
test_windmill_cli.py). One platform per module
(real Postgres, workers, job processes) behind a real HTTP server on 127.0.0.1, which jobs
reach at their ``BASE_INTERNAL_URL``. What each client call sends is in docs/compatibility.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import wmill
import wmill.client
from gristmill.testing.served import Served
from gristmill.testing.windmill_cli import clean_env, npm_project

pytestmark = [pytest.mark.slow, pytest.mark.bundled_plugins]

WORKSPACE = "main"
PY_CLIENT = "wmill==1.850.0"
TS_CLIENT_VERSION = "1.818.0"

ADD = "def main(x: int):\n    return x + 1\n"
FAIL = "def main():\n    raise ValueError('boom')\n"
SLEEP = "import time\n\ndef main():\n    time.sleep(60)\n    return 1\n"

PY_JOB = f"""\
# requirements:
# {PY_CLIENT}

import os

import wmill


def main(step: int):
    previous = wmill.get_state()
    wmill.set_state({{"step": step, "previous": previous}})
    wmill.set_progress(42)
    return {{
        "job_id": os.environ["WM_JOB_ID"],
        "variable": wmill.get_variable("u/admin/py_job_var"),
        "resource": wmill.get_resource("u/admin/py_job_res"),
        "previous": previous,
        "state_path": wmill.get_state_path(),
        "progress": wmill.get_progress(),
        "root": wmill.get_root_job_id(),
        "resume": wmill.get_resume_urls(),
        "workspace": wmill.get_workspace(),
    }}
"""

BUN_JOB = f"""\
import * as wmill from "windmill-client@{TS_CLIENT_VERSION}";

export async function main(step: number) {{
  const previous = (await wmill.getState()) ?? null;
  await wmill.setState({{ step, previous }});
  await wmill.setProgress(33);
  return {{
    variable: await wmill.getVariable("u/admin/bun_job_var"),
    resource: await wmill.getResource("u/admin/bun_job_res"),
    previous,
    // getStatePath, getWorkspace, getResult are only on the default export in 1.818.0.
    statePath: wmill.default.getStatePath(),
    progress: await wmill.getProgress(),
  }};
}}
"""

# Outside any job: the environment a user sets for local development (no WM_JOB_ID).
TS_EXTERNAL = """\
import * as wmill from "windmill-client";

const path = process.env.SCRIPT_PATH!;
const out: Record<string, unknown> = {};
await wmill.setVariable("u/admin/ts_ext_var", "from bun");
out.created = await wmill.getVariable("u/admin/ts_ext_var");
await wmill.setVariable("u/admin/ts_ext_var", "updated");
out.updated = await wmill.getVariable("u/admin/ts_ext_var");
await wmill.setResource({ n: 1, key: "$var:u/admin/ts_ext_var" }, "u/admin/ts_ext_res", "any");
out.resource = await wmill.getResource("u/admin/ts_ext_res");
await wmill.setResource({ n: 2, key: "$var:u/admin/ts_ext_var" }, "u/admin/ts_ext_res");
out.resourceUpdated = await wmill.getResource("$res:u/admin/ts_ext_res");
out.missing = (await wmill.getResource("u/admin/ts_ext_missing", true)) ?? null;
out.byPath = await wmill.runScriptByPath(path, { x: 20 });
out.deprecated = await wmill.runScript(path, null, { x: 1 });
const id = await wmill.runScriptByPathAsync(path, { x: 2 });
out.waited = await wmill.waitJob(id);
out.result = await wmill.default.getResult(id); // not a named export in 1.818.0
out.root = await wmill.getRootJobId(id);
out.id = id;
out.email = await wmill.usernameToEmail("admin");
console.log("RESULT " + JSON.stringify(out));
"""

# Windmill's README ("Show me some actual script code"), verbatim.
README_EXAMPLE = """\
//import any dependency  from npm
import * as wmill from "windmill-client";
import * as cowsay from "cowsay@1.5.0";

// fill the type, or use the +Resource type to get a type-safe reference to a resource
type Postgresql = {
  host: string;
  port: number;
  user: string;
  dbname: string;
  sslmode: string;
  password: string;
};

export async function main(
  a: number,
  b: "my" | "enum",
  c: Postgresql,
  d = "inferred type string from default arg",
  e = { nested: "object" }
  //f: wmill.Base64
) {
  const email = process.env["WM_EMAIL"];
  // variables are permissioned and by path
  let variable = await wmill.getVariable("f/company-folder/my_secret");
  const lastTimeRun = await wmill.getState();
  // logs are printed and always inspectable
  console.log(cowsay.say({ text: "hello " + email + " " + lastTimeRun }));
  await wmill.setState(Date.now());

  // return is serialized as JSON
  return { foo: d, variable };
}
"""


@pytest.fixture(scope="module")
def wm(served: Served) -> wmill.Windmill:
    """The Python client as a user builds it on their machine: URL, token, workspace."""
    return wmill.Windmill(base_url=served.url, token=served.token, workspace=WORKSPACE)


@pytest.fixture(scope="module")
def add_script(served: Served) -> tuple[str, str]:
    """A saved script (path, hash) that adds one to ``x``."""
    path = "u/admin/add_one"
    return path, served.save(path, ADD)


def _unique(prefix: str) -> str:
    return f"u/admin/{prefix}_{uuid.uuid4().hex[:8]}"


# --- the Python client, from outside -----------------------------------------------------


def test_python_client_sets_and_gets_variables(wm: wmill.Windmill) -> None:
    path = _unique("var")
    wm.set_variable(path, "first")  # variables/get -> 404 -> variables/create
    assert wm.get_variable(path) == "first"
    wm.set_variable(path, "second")  # variables/get -> 200 -> variables/update
    assert wm.get_variable(path) == "second"
    assert wm.get_variable(f"var://{path}") == "second"

    secret = _unique("secret")
    wm.set_variable(secret, "s3cr3t", is_secret=True)
    assert wm.get_variable(secret) == "s3cr3t"

    with pytest.raises(Exception, match="404"):
        wm.get_variable(_unique("missing"))


def test_python_client_sets_and_gets_resources(wm: wmill.Windmill) -> None:
    path = _unique("res")
    wm.set_resource({"host": "db", "port": 5432}, path, "any")  # resources/get 404 -> create
    assert wm.get_resource(path) == {"host": "db", "port": 5432}
    wm.set_resource({"host": "db2", "port": 5433}, path, "any")  # -> update_value
    assert wm.get_resource(path) == {"host": "db2", "port": 5433}
    assert wm.get_resource(f"$res:{path}") == {"host": "db2", "port": 5433}
    assert wm.get_resource(f"res://{path}", interpolated=False) == {"host": "db2", "port": 5433}

    missing = _unique("missing")
    assert wm.get_resource(missing, none_if_undefined=True) is None
    with pytest.raises(Exception, match="404"):
        wm.get_resource(missing)


def test_python_client_interpolates_variables_and_resources_in_a_resource(
    wm: wmill.Windmill,
) -> None:
    password = _unique("pw")
    wm.set_variable(password, "hunter2", is_secret=True)
    inner = _unique("inner")
    wm.set_resource({"token": "abc"}, inner, "any")
    outer = _unique("outer")
    value = {"user": "me", "password": f"$var:{password}", "nested": f"$res:{inner}"}
    wm.set_resource(value, outer, "any")

    assert wm.get_resource(outer) == {
        "user": "me",
        "password": "hunter2",
        "nested": {"token": "abc"},
    }
    # The raw value keeps its references.
    assert wm.get_resource(outer, interpolated=False) == value


def test_python_client_state_outside_a_job_uses_an_explicit_path(wm: wmill.Windmill) -> None:
    path = _unique("state")
    assert wm.get_state(path) is None
    wm.set_state({"n": 1}, path)  # a resource of type "state", created on first use
    assert wm.get_state(path) == {"n": 1}
    wm.set_state({"n": 2}, path)
    assert wm.get_state(path) == {"n": 2}
    assert wm.get_resource(path) == {"n": 2}


def test_python_client_runs_scripts_sync_and_async(
    wm: wmill.Windmill, add_script: tuple[str, str]
) -> None:
    path, hash_ = add_script
    assert wm.run_script_by_path(path, args={"x": 1}) == 2
    assert wm.run_script_by_hash(hash_, args={"x": 2}) == 3
    assert wm.run_script(path=path, args={"x": 3}) == 4  # deprecated, still there

    job_id = wm.run_script_by_path_async(path, args={"x": 10})
    assert str(uuid.UUID(job_id)) == job_id  # the plain-text body is the id
    assert wm.wait_job(job_id) == 11
    assert wm.get_job_status(job_id) == "COMPLETED"
    assert wm.get_result(job_id) == 11
    assert wm.get_root_job_id(job_id) == job_id  # a job without parent is its own root
    job = wm.get_job(job_id)
    assert job["id"] == job_id and job["type"] == "CompletedJob" and job["success"] is True

    by_hash = wm.run_script_by_hash_async(hash_, args={"x": 20})
    assert wm.wait_job(by_hash) == 21


def test_python_client_sees_failures_and_cancels(served: Served, wm: wmill.Windmill) -> None:
    failing = _unique("fail")
    served.save(failing, FAIL)
    with pytest.raises(Exception, match="was not successful") as failed:
        wm.run_script_by_path(failing)
    assert "boom" in str(failed.value)

    sleeping = _unique("sleep")
    served.save(sleeping, SLEEP)
    job_id = wm.run_script_by_path_async(sleeping)
    assert wm.get_job_status(job_id) in ("WAITING", "RUNNING")
    wm.cancel_job(job_id, reason="enough")
    with pytest.raises(Exception, match="was not successful"):
        wm.wait_job(job_id, timeout=30)
    assert wm.get_job_status(job_id) == "COMPLETED"


def test_python_client_whoami_username_to_email_and_tokens(
    served: Served, wm: wmill.Windmill
) -> None:
    me = wm.whoami()  # GET /api/users/whoami
    assert me["email"] == served.email
    assert wm.user["email"] == served.email
    assert wm.username_to_email("admin") == served.email  # plain text, not JSON

    token = wm.create_token(duration=dt.timedelta(hours=1))  # POST /api/users/tokens/create
    assert token and token != served.token and '"' not in token
    client = wmill.Windmill(base_url=served.url, token=token, workspace=WORKSPACE)
    assert client.whoami()["email"] == served.email


def test_python_client_runs_an_inline_preview(wm: wmill.Windmill) -> None:
    # From 127.0.0.1 the client posts to jobs/run_inline/preview (run_wait_result/preview
    # elsewhere); either answers the result itself.
    result = wm.run_inline_script_preview(
        "def main(x: int):\n    return {'double': x * 2}\n", "python3", {"x": 21}
    )
    assert result == {"double": 42}


def test_python_client_module_functions_read_the_environment(
    served: Served, monkeypatch: pytest.MonkeyPatch, add_script: tuple[str, str]
) -> None:
    monkeypatch.setenv("BASE_INTERNAL_URL", served.url)
    monkeypatch.setenv("WM_TOKEN", served.token)
    monkeypatch.setenv("WM_WORKSPACE", WORKSPACE)
    for name in ("WM_JOB_ID", "WM_ROOT_FLOW_JOB_ID", "WM_STATE_PATH", "WM_STATE_PATH_NEW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(wmill.client, "_client", None)

    path = _unique("envvar")
    wmill.set_variable(path, "v")
    assert wmill.get_variable(path) == "v"
    res = _unique("envres")
    wmill.set_resource(res, {"a": 1})  # module-level: (path, value, resource_type="any")
    assert wmill.get_resource(res) == {"a": 1}
    # Module-level whoami() is the one function without @init_global_client: it works only
    # once another module function has built the global client, as above.
    assert wmill.whoami()["email"] == served.email
    assert wmill.get_workspace() == WORKSPACE
    script, hash_ = add_script
    assert wmill.run_script_by_path(script, args={"x": 5}) == 6
    assert wmill.run_script_sync(hash_, args={"x": 6}) == 7
    job_id = wmill.run_script_by_path_async(script, args={"x": 7})
    deadline = time.monotonic() + 60
    while wmill.get_job_status(job_id) != "COMPLETED":
        assert time.monotonic() < deadline, wmill.get_job(job_id)
        time.sleep(0.1)
    assert wmill.get_result(job_id) == 8
    assert wmill.run_script_async(hash_, args={"x": 8}) != job_id  # a hash: no "/" in it
    assert wmill.get_job_status(job_id) == "COMPLETED"
    assert wmill.get_root_job_id(job_id) == job_id
    assert wmill.username_to_email("admin") == served.email


# --- the Python client, inside a job ------------------------------------------------------


def test_python_job_uses_wmill_variables_resources_state_and_progress(
    served: Served, wm: wmill.Windmill
) -> None:
    wm.set_variable("u/admin/py_job_var", "from the job's variable")
    wm.set_resource({"url": "postgres://x"}, "u/admin/py_job_res", "any")
    path = "u/admin/wmill_in_python"
    served.save(path, PY_JOB)

    first = wm.run_script_by_path(path, args={"step": 1}, timeout=300)
    assert first["variable"] == "from the job's variable"
    assert first["resource"] == {"url": "postgres://x"}
    assert first["previous"] is None  # no state yet: 404 -> None
    assert first["progress"] == 42
    assert first["root"] == first["job_id"]
    assert first["workspace"] == WORKSPACE
    assert first["state_path"].startswith(f"{path}/")
    resume = first["resume"]
    assert set(resume) >= {"approvalPage", "resume", "cancel"}
    assert all(
        isinstance(resume[k], str) and resume[k] for k in ("approvalPage", "resume", "cancel")
    )
    assert first["job_id"] in resume["resume"]

    second = wm.run_script_by_path(path, args={"step": 2}, timeout=120)
    assert second["previous"] == {"step": 1, "previous": None}  # what the first run set
    assert second["state_path"] == first["state_path"]
    # The state is a resource like any other, readable by its owner.
    assert wm.get_resource(first["state_path"]) == {
        "step": 2,
        "previous": {"step": 1, "previous": None},
    }


# --- the TypeScript client, inside a Bun job ----------------------------------------------


def test_bun_job_uses_windmill_client_state_variables_and_resources(
    served: Served, wm: wmill.Windmill
) -> None:
    wm.set_variable("u/admin/bun_job_var", "bun variable")
    wm.set_resource({"region": "eu"}, "u/admin/bun_job_res", "any")
    path = "u/admin/windmill_client_in_bun"
    served.save(path, BUN_JOB, language="bun")

    first = wm.run_script_by_path(path, args={"step": 1}, timeout=300)
    assert first["variable"] == "bun variable"
    assert first["resource"] == {"region": "eu"}
    assert first["previous"] is None
    assert first["progress"] == 33
    assert first["statePath"].startswith(f"{path}/")

    second = wm.run_script_by_path(path, args={"step": 2}, timeout=120)
    assert second["previous"] == {"step": 1, "previous": None}
    assert wm.get_resource(first["statePath"]) == {
        "step": 2,
        "previous": {"step": 1, "previous": None},
    }


# --- the TypeScript client, from outside --------------------------------------------------


def test_typescript_client_from_outside_a_job(
    served: Served, add_script: tuple[str, str], tmp_path: Path, bun: str
) -> None:
    project = npm_project(
        bun, tmp_path / "ts-client", "windmill-client-check", {"windmill-client": TS_CLIENT_VERSION}
    )
    (project / "client.ts").write_text(TS_EXTERNAL)
    base_env = clean_env()
    script, _ = add_script
    run = subprocess.run(
        [bun, "run", "client.ts"],
        cwd=project,
        env={
            **base_env,
            "BASE_INTERNAL_URL": served.url,
            "WM_TOKEN": served.token,
            "WM_WORKSPACE": WORKSPACE,
            "SCRIPT_PATH": script,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["created"] == "from bun"
    assert out["updated"] == "updated"
    assert out["resource"] == {"n": 1, "key": "updated"}  # interpolated
    assert out["resourceUpdated"] == {"n": 2, "key": "updated"}
    assert out["missing"] is None
    assert out["byPath"] == 21
    assert out["deprecated"] == 2
    assert out["waited"] == 3 and out["result"] == 3
    assert out["root"] == out["id"]
    assert out["email"] == served.email


def test_python_client_runs_a_saved_flow(served: Served, wm: wmill.Windmill) -> None:
    path = _unique("py_flow")
    value = {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(x: int):\n    return x * 2\n",
                    "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}},
                },
            }
        ]
    }
    r = served.http.post(
        f"/w/{WORKSPACE}/flows/create", json={"path": path, "summary": "", "value": value}
    )
    assert r.status_code == 201, r.text
    job_id = wm.run_flow_async(path, args={"x": 21})
    assert wm.wait_job(job_id) == 42
    # A run option a flow does not take yet is refused, not ignored.
    with pytest.raises(Exception, match="scheduled"):
        wm.run_flow_async(path, args={"x": 1}, scheduled_in_secs=60)


# --- Windmill's README example -------------------------------------------------------------


def test_the_windmill_readme_typescript_example_runs_with_its_variable_and_state(
    served: Served, wm: wmill.Windmill
) -> None:
    # In Windmill a path under f/ needs its folder; a Gristmill without folders needs none.
    folder = served.http.post(f"/w/{WORKSPACE}/folders/create", json={"name": "company-folder"})
    assert folder.status_code in (200, 201, 404, 405), folder.text
    wm.set_variable("f/company-folder/my_secret", "the secret", is_secret=True)
    path = "u/admin/readme_example"
    served.save(path, README_EXAMPLE, language="bun")
    args = {
        "a": 1,
        "b": "my",
        "c": {
            "host": "localhost",
            "port": 5432,
            "user": "postgres",
            "dbname": "postgres",
            "sslmode": "disable",
            "password": "postgres",
        },
    }

    before = int(time.time() * 1000)
    first_id = wm.run_script_by_path_async(path, args=args)
    first = wm.wait_job(first_id, timeout=300)
    after = int(time.time() * 1000)
    assert first == {"foo": "inferred type string from default arg", "variable": "the secret"}
    first_logs = _squashed(wm.get_job(first_id).get("logs") or "")
    assert f"hello{served.email}undefined" in first_logs  # no state the first time

    state = _state_of(wm, path)
    assert isinstance(state, int) and before <= state <= after  # Date.now() of the first run

    second_id = wm.run_script_by_path_async(path, args={**args, "d": "given"})
    assert wm.wait_job(second_id, timeout=120) == {"foo": "given", "variable": "the secret"}
    second_logs = _squashed(wm.get_job(second_id).get("logs") or "")
    assert f"hello{served.email}{state}" in second_logs  # the state the first run set
    assert _state_of(wm, path) > state


def _squashed(logs: str) -> str:
    """Logs without whitespace and cowsay's bubble, which wraps the text at 40 columns."""
    return re.sub(r"[\s|/\\<>_\-]", "", logs)


def _state_of(wm: wmill.Windmill, script_path: str) -> Any:
    """The value of the one state resource under ``script_path`` (its ``WM_STATE_PATH``)."""
    states = [
        r
        for r in wm.list_resources(resource_type="state")
        if r["path"].startswith(f"{script_path}/")
    ]
    assert len(states) == 1, states
    return wm.get_resource(states[0]["path"])
