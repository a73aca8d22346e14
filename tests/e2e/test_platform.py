"""The platform as a user meets it: `gristmill up`, its first admin, the REST API, jobs."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import (
    GRISTMILL,
    Api,
    GristmillProcess,
    clean_env,
    closed_port,
    process_alive,
    processes_running,
)

pytestmark = pytest.mark.slow

HELLO = """\
def main(name: str, count: int = 2):
    print(f"hello {name} x{count}")
    return {"greeting": f"hello {name}", "count": count}
"""


@pytest.fixture(scope="module")
def hello(api: Api) -> dict[str, Any]:
    """u/admin/hello, created without a schema; the create response and the saved script."""
    r = api.client.post(
        f"{api.w}/scripts/create",
        json={"path": "u/admin/hello", "content": HELLO, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    got = api.client.get(f"{api.w}/scripts/get/p/u/admin/hello")
    assert got.status_code == 200, got.text
    return {"hash": r.text, "script": got.json()}


# -- 1. start, public endpoints, everything else needs a token -----------------------------------


@pytest.mark.timeout(60)
def test_up_prints_admin_credentials_and_ready_url(platform: GristmillProcess) -> None:
    assert platform.url == f"http://localhost:{platform.port}", platform.describe()
    assert platform.admin_email == "admin@gristmill.local", platform.describe()
    assert platform.admin_password and len(platform.admin_password) >= 12
    # The credentials come before the ready line.
    lines = platform.stdout_lines
    ready = next(i for i, line in enumerate(lines) if line.startswith("Gristmill is ready at"))
    assert any("password:" in line for line in lines[:ready])
    assert platform.proc.poll() is None


@pytest.mark.timeout(30)
def test_up_says_which_runtimes_are_ready(platform: GristmillProcess) -> None:
    """One line per runtime before the ready line, each ready with its version (after the
    README's two commands, every bundled toolchain is installed). The example Perl plugin,
    installed for the tests, is not offered: this process does not opt in to it."""
    lines = platform.stdout_lines
    ready = next(i for i, line in enumerate(lines) if line.startswith("Gristmill is ready at"))
    reported = {
        line.split(":")[0].removeprefix("runtime "): line
        for line in lines[:ready]
        if line.startswith("runtime ")
    }
    assert sorted(reported) == ["bash", "bun", "deno", "go", "postgresql", "python3"], lines
    for name, line in reported.items():
        assert re.fullmatch(rf"runtime {name}: ready \(\S.*\)", line), line
    assert sum(line.startswith("runtime python3:") for line in lines) == 1


@pytest.mark.timeout(30)
def test_up_serves_the_web_ui_on_the_api_port(platform: GristmillProcess) -> None:
    """`gristmill up` built frontend/ (or found it current) and serves it with the API."""
    # The line after the ready line (printed at once, but read from the pipe by a thread).
    platform.wait_for_stdout(lambda line: line.strip().startswith("web UI:"), 10)
    lines = platform.stdout_lines
    ready = next(i for i, line in enumerate(lines) if line.startswith("Gristmill is ready at"))
    assert lines[ready + 1].strip() == f"web UI: {platform.url}/ (log in there)", lines
    page = httpx.get(f"{platform.local_url}/w/main/runs")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    script = re.search(r'src="(/assets/index-[^"]+\.js)"', page.text)
    assert script, page.text
    asset = httpx.get(f"{platform.local_url}{script.group(1)}")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]


@pytest.mark.timeout(30)
def test_version_is_public_text(platform: GristmillProcess) -> None:
    r = httpx.get(f"{platform.local_url}/api/version")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Gristmill v")


@pytest.mark.timeout(30)
def test_openapi_is_public_and_lists_windmill_paths(platform: GristmillProcess) -> None:
    r = httpx.get(f"{platform.local_url}/api/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/w/{workspace}/jobs/run_wait_result/p/{path}",
        "/api/w/{workspace}/jobs/run/p/{path}",
        "/api/w/{workspace}/scripts/create",
        "/api/w/{workspace}/jobs_u/getupdate/{id}",
        "/api/auth/login",
        "/api/version",
    ):
        assert path in paths, sorted(paths)


#: A job id no job has. Fixed, not drawn at import: each pytest-xdist worker collects the
#: tests itself, and the workers' lists of test ids must be the same.
_NO_JOB = "0b7c2e1a-5d3f-4e8a-9c6b-1f2e3d4c5b6a"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users/whoami"),
        ("GET", "/api/runtimes"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/w/main/scripts/list"),
        ("GET", "/api/w/main/scripts/get/p/u/admin/hello"),
        ("POST", "/api/w/main/scripts/create"),
        ("GET", "/api/w/main/jobs/list"),
        ("POST", "/api/w/main/jobs/run/p/u/admin/hello"),
        ("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/hello"),
        ("POST", "/api/w/main/jobs/run_wait_result/preview"),
        ("GET", f"/api/w/main/jobs_u/get/{_NO_JOB}"),
        ("GET", f"/api/w/main/jobs_u/getupdate/{_NO_JOB}"),
        ("GET", f"/api/w/main/jobs_u/completed/get_result_maybe/{_NO_JOB}"),
        ("POST", f"/api/w/main/jobs_u/queue/cancel/{_NO_JOB}"),
    ],
)
def test_other_endpoints_need_a_token(platform: GristmillProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=platform.local_url) as client:
        r = client.request(method, path, json={})
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert "Authorization" in r.text
        bad = client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401, (path, bad.status_code, bad.text)


# -- 2. login and logout -------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_login_token_cookie_and_logout(platform: GristmillProcess) -> None:
    url = platform.local_url
    with httpx.Client(base_url=url) as client:
        r = client.post(
            "/api/auth/login",
            json={"email": platform.admin_email, "password": platform.admin_password},
        )
        assert r.status_code == 200, r.text
        token = r.text
        assert re.fullmatch(r"[\w-]{20,}", token), token
        assert r.cookies.get("token") == token
        # The cookie alone authenticates (a browser's session).
        assert client.get("/api/users/whoami").status_code == 200

    headers = {"Authorization": f"Bearer {token}"}
    who = httpx.get(f"{url}/api/users/whoami", headers=headers)
    assert who.status_code == 200, who.text
    assert who.json()["email"] == platform.admin_email
    assert who.json()["super_admin"] is True
    assert who.json()["job_id"] is None

    out = httpx.post(f"{url}/api/auth/logout", headers=headers)
    assert out.status_code == 200, out.text
    after = httpx.get(f"{url}/api/users/whoami", headers=headers)
    assert after.status_code == 401, after.text


@pytest.mark.timeout(30)
def test_login_with_wrong_password_is_refused(platform: GristmillProcess) -> None:
    r = httpx.post(
        f"{platform.local_url}/api/auth/login",
        json={"email": platform.admin_email, "password": "not-the-password"},
    )
    assert r.status_code == 400
    assert "Invalid login" in r.text
    assert "token" not in r.cookies
    unknown = httpx.post(
        f"{platform.local_url}/api/auth/login",
        json={"email": "nobody@example.com", "password": platform.admin_password},
    )
    assert unknown.status_code == 400
    assert "Invalid login" in unknown.text


# -- 3. scripts and jobs through the API ---------------------------------------------------------


@pytest.mark.timeout(30)
def test_create_script_infers_schema(hello: dict[str, Any]) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", hello["hash"]), hello["hash"]
    script = hello["script"]
    assert script["hash"] == hello["hash"]
    assert script["path"] == "u/admin/hello"
    assert script["language"] == "python3"
    schema = script["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["name"]
    assert schema["properties"]["name"]["type"] == "string"
    assert schema["properties"]["count"]["type"] == "integer"
    assert schema["properties"]["count"]["default"] == 2


@pytest.mark.timeout(60)
def test_run_wait_result_returns_the_result(api: Api, hello: dict[str, Any]) -> None:
    r = api.client.post(
        f"{api.w}/jobs/run_wait_result/p/u/admin/hello", json={"name": "world", "count": 3}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"greeting": "hello world", "count": 3}
    # The default applies when the argument is left out.
    r = api.client.post(f"{api.w}/jobs/run_wait_result/p/u/admin/hello", json={"name": "x"})
    assert r.status_code == 200, r.text
    assert r.json() == {"greeting": "hello x", "count": 2}


@pytest.mark.timeout(60)
def test_run_async_then_state_logs_and_result(api: Api, hello: dict[str, Any]) -> None:
    r = api.client.post(f"{api.w}/jobs/run/p/u/admin/hello", json={"name": "bob"})
    assert r.status_code == 201, r.text
    job_id = r.text
    assert uuid.UUID(job_id)

    job = api.wait_job(job_id)
    assert job["type"] == "CompletedJob"
    assert job["success"] is True
    assert job["script_path"] == "u/admin/hello"
    assert job["script_hash"] == hello["hash"]

    update = api.update(job_id)
    assert update["completed"] is True and update["running"] is False

    logs = api.client.get(f"{api.w}/jobs_u/get_logs/{job_id}")
    assert logs.status_code == 200
    assert "hello bob x2" in logs.text

    result = api.client.get(f"{api.w}/jobs_u/completed/get_result/{job_id}")
    assert result.status_code == 200, result.text
    assert result.json() == {"greeting": "hello bob", "count": 2}

    maybe = api.client.get(f"{api.w}/jobs_u/completed/get_result_maybe/{job_id}")
    assert maybe.status_code == 200, maybe.text
    assert maybe.json() == {
        "completed": True,
        "started": True,
        "success": True,
        "result": {"greeting": "hello bob", "count": 2},
    }


@pytest.mark.timeout(60)
def test_failing_script_answers_422_with_error_object(api: Api) -> None:
    path = api.create_script(
        "def main():\n    print('about to fail')\n    raise ValueError('boom 42')\n"
    )
    r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert set(error) >= {"name", "message", "stack"}
    assert error["name"] == "ValueError"
    assert "boom 42" in error["message"]
    assert isinstance(error["stack"], str) and "main" in error["stack"]


@pytest.mark.timeout(30)
def test_bad_arguments_are_refused_naming_the_argument(api: Api, hello: dict[str, Any]) -> None:
    run = f"{api.w}/jobs/run_wait_result/p/u/admin/hello"
    wrong_type = api.client.post(run, json={"name": "x", "count": "many"})
    assert wrong_type.status_code == 400, wrong_type.text
    assert "count" in wrong_type.text

    missing = api.client.post(run, json={"count": 1})
    assert missing.status_code == 400, missing.text
    assert "name" in missing.text

    unknown = api.client.post(run, json={"name": "x", "colour": "red"})
    assert unknown.status_code == 400, unknown.text
    assert "colour" in unknown.text

    queued = api.client.post(f"{api.w}/jobs/run/p/u/admin/hello", json={"count": "many"})
    assert queued.status_code == 400, queued.text


@pytest.mark.timeout(30)
def test_syntax_error_at_create_names_the_line(api: Api) -> None:
    r = api.client.post(
        f"{api.w}/scripts/create",
        json={
            "path": "u/admin/broken",
            "content": "def main(x: int):\n    return x +\n",
            "language": "python3",
        },
    )
    assert r.status_code == 400, r.text
    assert "line 2" in r.text
    assert api.client.get(f"{api.w}/scripts/get/p/u/admin/broken").status_code == 404


@pytest.mark.timeout(30)
def test_unknown_language_lists_available_ones(api: Api) -> None:
    r = api.client.post(
        f"{api.w}/scripts/create",
        json={"path": "u/admin/cobol", "content": "whatever", "language": "cobol"},
    )
    assert r.status_code == 400, r.text
    assert "cobol" in r.text
    assert "python3" in r.text


@pytest.mark.timeout(30)
def test_non_json_bodies_are_400(api: Api, hello: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json"}
    run = api.client.post(
        f"{api.w}/jobs/run_wait_result/p/u/admin/hello", content=b"{not json", headers=headers
    )
    assert run.status_code == 400, run.text
    assert "JSON" in run.text
    create = api.client.post(f"{api.w}/scripts/create", content=b"{not json", headers=headers)
    assert create.status_code == 400, create.text
    assert "JSON" in create.text


# -- 4. logs stream while the job runs -----------------------------------------------------------


@pytest.mark.timeout(60)
def test_logs_stream_while_the_job_runs(api: Api) -> None:
    path = api.create_script(
        "import time\n\n"
        "def main():\n"
        "    print('first line', flush=True)\n"
        "    time.sleep(1.5)\n"
        "    print('second line')\n"
        "    return 'done'\n"
    )
    job_id = api.run_async(path)
    seen = api.wait_logs(job_id, "first line", timeout=10)
    assert seen["completed"] is False, seen
    assert seen["running"] is True, seen
    assert "second line" not in seen["logs"]
    job = api.wait_job(job_id)
    assert job["success"] is True
    assert "first line" in job["logs"] and "second line" in job["logs"]


# -- 5. cancel -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cancel_kills_the_job_and_its_children(api: Api) -> None:
    # A duration no other process uses: the child is found on the host by its command line
    # (inside the sandbox its pid is its PID namespace's, not the host's).
    duration = f"300.{random.randrange(10**8):08d}"
    path = api.create_script(
        "import subprocess, time\n\n"
        "def main():\n"
        f"    child = subprocess.Popen(['sleep', '{duration}'])\n"
        "    print('child started', flush=True)\n"
        "    time.sleep(60)\n"
        "    return 'not canceled'\n"
    )
    job_id = api.run_async(path)
    api.wait_logs(job_id, "child started", timeout=15)
    pids = [pid for pid, cmdline in processes_running(f"sleep {duration}")]
    assert len(pids) == 1, pids
    pid = pids[0]
    assert process_alive(pid)

    start = time.monotonic()
    r = api.client.post(f"{api.w}/jobs_u/queue/cancel/{job_id}", json={"reason": "e2e"})
    assert r.status_code == 200, r.text
    job = api.wait_job(job_id, timeout=15)
    took = time.monotonic() - start
    assert took < 10, took
    assert job["type"] == "CompletedJob"
    assert job["canceled"] is True, job
    assert job["success"] is False
    assert job["canceled_reason"] == "e2e"

    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid), f"the job's child {pid} survived the cancel"

    again = api.client.post(f"{api.w}/jobs_u/queue/cancel/{job_id}", json={})
    assert again.status_code == 400, again.text


# -- 6. job timeout ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_script_timeout_fails_the_job_early(api: Api) -> None:
    path = api.create_script(
        "import time\n\ndef main():\n    time.sleep(10)\n    return 'too late'\n", timeout=1
    )
    start = time.monotonic()
    r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={})
    took = time.monotonic() - start
    assert r.status_code == 422, r.text
    assert "timed out" in r.json()["error"]["message"]
    assert took < 6, took


# -- 7. job variables and the job token ----------------------------------------------------------

WHOAMI = """\
import json
import os
import urllib.request


def main():
    request = urllib.request.Request(
        os.environ["BASE_INTERNAL_URL"] + "/api/users/whoami",
        headers={"Authorization": "Bearer " + os.environ["WM_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        whoami = json.load(response)
    return {
        "whoami": whoami,
        "job_id": os.environ["WM_JOB_ID"],
        "workspace": os.environ["WM_WORKSPACE"],
        "env_names": sorted(os.environ),
    }
"""


@pytest.mark.timeout(60)
def test_job_calls_the_api_with_its_token(api: Api) -> None:
    path = api.create_script(WHOAMI)
    r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={})
    assert r.status_code == 200, r.text
    out = r.json()
    job_id = r.headers["x-job-id"]
    assert out["job_id"] == job_id
    assert out["workspace"] == "main"
    assert out["whoami"]["job_id"] == job_id
    assert out["whoami"]["email"] == "admin@gristmill.local"
    names = set(out["env_names"])
    for leaked in ("DATABASE_URL", "SUPERADMIN_SECRET", "GRISTMILL_DATA_DIR", "PORT"):
        assert leaked not in names, names

    # The job token dies with its job.
    token_job = api.create_script("import os\n\ndef main():\n    return os.environ['WM_TOKEN']\n")
    token = api.client.post(f"{api.w}/jobs/run_wait_result/p/{token_job}", json={}).json()
    dead = httpx.get(f"{api.url}/api/users/whoami", headers={"Authorization": f"Bearer {token}"})
    assert dead.status_code == 401, dead.text


# -- 8. gristmill run ----------------------------------------------------------------------------


def _run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(GRISTMILL), "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(90)
def test_cli_run_prints_logs_and_result(platform: GristmillProcess, tmp_path: Path) -> None:
    script = tmp_path / "greet.py"
    script.write_text(
        "def main(name: str, n: int):\n"
        "    for i in range(n):\n"
        "        print(f'log {i} for {name}')\n"
        "    return {'name': name, 'n': n, 'twice': n * 2}\n"
    )
    env = clean_env(GRISTMILL_DATA_DIR=str(platform.data_dir))
    done = _run_cli(
        [str(script), "--arg", "name=value", "--arg", "n=3", "--url", platform.local_url], env
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout) == {"name": "value", "n": 3, "twice": 6}
    for i in range(3):
        assert f"log {i} for value" in done.stderr
    assert "log 0" not in done.stdout


@pytest.mark.timeout(90)
def test_cli_run_with_explicit_token(
    platform: GristmillProcess, admin_token: str, tmp_path: Path
) -> None:
    script = tmp_path / "plain.py"
    script.write_text("def main(x: int = 1):\n    return x + 1\n")
    env = clean_env(GRISTMILL_TOKEN=admin_token)
    done = _run_cli([str(script), "-a", "x=41", "--url", platform.local_url], env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout) == 42


@pytest.mark.timeout(90)
def test_cli_run_failing_script_exits_1(platform: GristmillProcess, tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text("def main():\n    print('trying')\n    raise RuntimeError('cli kaboom')\n")
    env = clean_env(GRISTMILL_DATA_DIR=str(platform.data_dir))
    done = _run_cli([str(script), "--url", platform.local_url], env)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "cli kaboom" in done.stdout + done.stderr
    assert "trying" in done.stderr
    assert json.loads(done.stdout)["error"]["name"] == "RuntimeError"


@pytest.mark.timeout(60)
def test_cli_run_without_server_says_how_to_start_one(tmp_path: Path) -> None:
    script = tmp_path / "noop.py"
    script.write_text("def main():\n    return 1\n")
    url = f"http://127.0.0.1:{closed_port()}"
    env = clean_env(GRISTMILL_TOKEN="any-token")
    done = _run_cli([str(script), "--url", url], env, timeout=30)
    assert done.returncode != 0
    assert "gristmill up" in done.stderr, done.stderr
    assert url in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_cli_run_ctrl_c_cancels_the_job(
    platform: GristmillProcess, api: Api, tmp_path: Path
) -> None:
    script = tmp_path / "forever.py"
    script.write_text(
        "import time\n\ndef main():\n    print('looping', flush=True)\n    time.sleep(60)\n"
    )
    env = clean_env(GRISTMILL_DATA_DIR=str(platform.data_dir))
    proc = subprocess.Popen(
        [str(GRISTMILL), "run", str(script), "--url", platform.local_url],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # blocks until the job's first log line arrives
        assert "looping" in first, first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    found = re.search(r"job ([0-9a-f-]{36}) canceled", err)
    assert found, err
    job = api.wait_job(found.group(1), timeout=15)
    assert job["canceled"] is True, job
    assert "Ctrl-C" in (job["canceled_reason"] or "")


@pytest.mark.timeout(30)
def test_platform_still_running(platform: GristmillProcess) -> None:
    assert platform.proc.poll() is None, platform.describe()
    assert "Traceback" not in platform.stderr, platform.stderr[-4000:]
    assert os.path.exists(platform.data_dir / "cli-token")
