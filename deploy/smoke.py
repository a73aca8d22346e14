"""Run compose.yaml's Gristmill services as plain processes, without docker, and use them.

    uv run python deploy/smoke.py

Each service (server-1, server-2, worker-default, worker-native) is started with the
environment compose.yaml gives it, except what only exists inside compose: the database is
the embedded Postgres the first server starts in a shared data directory (for the
``postgres`` service), the servers listen on two local ports, and jobs reach the API on the
first server's (for ``http://proxy:8000``). Then a Bash job and a Python job that reads a
variable through Windmill's client (over ``BASE_INTERNAL_URL``) run through the second
server, and the worker groups are listed with their tags. Everything is stopped at the end.
It checks what the unit test cannot (the settings as processes read them, together), not
the image, the proxy or the sandbox inside a container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
GRISTMILL = Path(sys.executable).parent / "gristmill"
SECRET = "smoke-secret"


def main() -> int:
    services: dict[str, Any] = yaml.safe_load((HERE / "compose.yaml").read_text())["services"]
    data = Path(tempfile.mkdtemp(prefix="gristmill-deploy-smoke-"))
    data.chmod(0o755)  # as root, the embedded Postgres runs as nobody
    ports = {"server-1": 18741, "server-2": 18742}
    internal = f"http://127.0.0.1:{ports['server-1']}"
    outside = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRISTMILL_") and k not in {"DATABASE_URL", "PORT", "MODE"}
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        env = {**outside, **{k: str(v) for k, v in services[name]["environment"].items()}}
        del env["DATABASE_URL"]
        env.update(
            GRISTMILL_INSTANCE_KEY="ab" * 32,
            SUPERADMIN_SECRET=SECRET,
            GRISTMILL_DATA_DIR=str(data),
            GRISTMILL_WEBUI="off",
        )
        if name in ports:
            env["PORT"] = str(ports[name])
        else:
            env["BASE_INTERNAL_URL"] = internal
        log = data / f"{name}.log"
        with log.open("w") as out:
            processes.append(
                subprocess.Popen([str(GRISTMILL), "up"], env=env, stdout=out, stderr=out)
            )
        marker = "Gristmill is ready" if name in ports else "Gristmill worker ready"
        started = time.monotonic()
        while marker not in log.read_text():
            if processes[-1].poll() is not None or time.monotonic() - started > 90:
                raise SystemExit(f"{name} did not start:\n{log.read_text()}")
            time.sleep(0.2)
        print(f"{name}: ready in {time.monotonic() - started:.1f} s", flush=True)

    try:
        for name in ("server-1", "server-2", "worker-default", "worker-native"):
            start(name)
        client = httpx.Client(headers={"Authorization": f"Bearer {SECRET}"}, timeout=60)
        api = f"http://127.0.0.1:{ports['server-2']}/api"
        client.post(
            f"{api}/w/main/variables/create",
            json={"path": "u/admin/smoke", "value": "read through BASE_INTERNAL_URL"},
        ).raise_for_status()
        jobs = {
            "bash": 'echo "hello from $(hostname)"\n',
            "python3": "import wmill\n\ndef main():\n    return wmill.get_variable('u/admin/smoke')\n",
        }
        for language, content in jobs.items():
            r = client.post(
                f"{api}/w/main/jobs/run_wait_result/preview",
                json={"language": language, "content": content, "args": {}},
            )
            r.raise_for_status()
            print(f"{language} job: {r.json()!r}")
        for worker in client.get(f"{api}/workers/list").json():
            print(f"worker group {worker['worker_group']}: tags {worker['custom_tags']}")
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
