"""How long a killed embedded Postgres keeps `gristmill up` from serving.

`uv run python benchmarks/pg_restart.py [--kills 3]` starts `gristmill up` on a fresh data
directory (one worker, no web UI), then, `--kills` times: kill -9s its postmaster, and polls
`GET /api/health/ready` every 20 ms. Printed per kill: when the probe first answered 503,
when it answered 200 again (the outage a load balancer sees) and how much of that came after
`up` logged that Postgres runs again (the pool's reconnection), and when a job submitted right
then completed. Between kills it waits for the platform to settle.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

GRISTMILL = Path(sys.executable).parent / "gristmill"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready_status(url: str) -> int:
    try:
        return httpx.get(f"{url}/api/health/ready", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _restarted_at(log_path: Path, restart: int) -> float:
    """When `up` logged that Postgres runs again for the ``restart``-th time (epoch s)."""
    stamps = [
        line[:23]
        for line in log_path.read_text().splitlines()
        if "the embedded Postgres is running again" in line
    ]
    stamp = time.strptime(stamps[restart - 1][:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(stamps[restart - 1][20:23]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="gm-pg-restart-", dir="/tmp"))
    data_dir.chmod(0o755)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRISTMILL_")}
    env.pop("DATABASE_URL", None)
    env |= {
        "GRISTMILL_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "NUM_WORKERS": "1",
        "GRISTMILL_WEBUI": "off",
        "GRISTMILL_PG_MAX_RESTARTS": str(args.kills + 1),
    }
    log = open(data_dir / "up.log", "w")  # noqa: SIM115 (kept open for the process's life)
    up = subprocess.Popen(
        [str(GRISTMILL), "up"], env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        email = password = ""
        assert up.stdout is not None
        for line in up.stdout:
            if m := re.match(r"^\s*email:\s*(\S+)", line):
                email = m.group(1)
            if m := re.match(r"^\s*password:\s*(\S+)", line):
                password = m.group(1)
            if line.startswith("Gristmill is ready at"):
                break
        token = httpx.post(
            f"{url}/api/auth/login", json={"email": email, "password": password}
        ).text
        client = httpx.Client(
            base_url=f"{url}/api/w/main", headers={"Authorization": f"Bearer {token}"}
        )
        path = "u/admin/pg_restart"
        body = {"path": path, "language": "python3", "content": "def main():\n    return 1\n"}
        client.post("/scripts/create", json=body).raise_for_status()
        print(
            "| kill | 503 after (s) | ready again after (s) | of which after Postgres ran "
            "again (s) | a job done after (s) |"
        )
        print("|---|---|---|---|---|")
        for kill in range(1, args.kills + 1):
            while _ready_status(url) != 200:
                time.sleep(0.1)
            time.sleep(2)
            pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n")[0])
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            down = None
            while (status := _ready_status(url)) == 200 and time.monotonic() - killed < 10:
                time.sleep(0.02)
            down = time.monotonic() - killed if status != 200 else float("nan")
            while _ready_status(url) != 200:
                time.sleep(0.02)
            ready = time.monotonic() - killed
            ready_at = time.time()
            job = client.post(f"/jobs/run_wait_result/p/{path}", json={}, timeout=120)
            job.raise_for_status()
            done = time.monotonic() - killed
            lag = ready_at - _restarted_at(data_dir / "up.log", kill)
            print(f"| {kill} | {down:.2f} | {ready:.2f} | {lag:.2f} | {done:.2f} |", flush=True)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
