"""A database outage under a real `gristmill up`: how fast requests are answered while
Postgres is stopped, how soon they succeed again once it is back, and whether jobs that were
running through it complete once.

    uv run python benchmarks/outage.py [--outage-s 5] [--requests 20]

Postgres runs on its own (an embedded cluster on a private directory, given to `gristmill up`
as DATABASE_URL) so that it can be stopped and started under the platform.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from gristmill.db.embedded import EmbeddedPostgres

SECRET = "outage-bench-secret"
SLEEPER = "import time\ndef main(s: float):\n    time.sleep(s)\n    return s\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage-s", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--zombie-timeout-s", type=int, default=2)
    opts = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gm-outage-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    pg = EmbeddedPostgres(root / "pg", fsync=False)
    conninfo = pg.start()
    data_dir = root / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": conninfo,
        "GRISTMILL_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "NUM_WORKERS": "4",
        "SUPERADMIN_SECRET": SECRET,
        "ZOMBIE_JOB_TIMEOUT": str(opts.zombie_timeout_s),
        "GRISTMILL_LOG_LEVEL": "WARNING",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "gristmill.server.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if "Gristmill is ready" in line:
                break
        else:
            raise SystemExit(f"gristmill up exited with code {up.wait()}")
        # A client as the issue describes it: a 10 s time-out.
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/w/main",
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=10,
        )
        jobs = []
        for _ in range(4):
            r = client.post(
                "/jobs/run/preview",
                json={"content": SLEEPER, "language": "python3", "args": {"s": 3.0}},
            )
            r.raise_for_status()
            jobs.append(r.text)
        time.sleep(1.5)  # running
        with psycopg.connect(conninfo) as conn:
            attempts = dict(
                conn.execute(
                    "SELECT id::text, started_at FROM job_queue WHERE id = ANY(%s::uuid[])",
                    (jobs,),
                ).fetchall()
            )
        pg.stop()
        stopped = time.monotonic()
        took: list[float] = []
        codes: dict[str, int] = {}
        while time.monotonic() - stopped < opts.outage_s:
            began = time.monotonic()
            try:
                code = str(client.get("/jobs/list").status_code)
            except httpx.TimeoutException:
                code = "time-out"
            took.append(time.monotonic() - began)
            codes[code] = codes.get(code, 0) + 1
            time.sleep(max(0.0, opts.outage_s / opts.requests - took[-1]))
        pg.start()
        back = time.monotonic()
        while client.get("/jobs/list").status_code != 200:
            time.sleep(0.05)
        recovered = time.monotonic() - back
        deadline = time.monotonic() + 60
        with psycopg.connect(conninfo) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM job_completed WHERE id = ANY(%s::uuid[])", (jobs,)
                ).fetchone()
                if (row is not None and row[0] == len(jobs)) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            completed = row[0] if row is not None else 0
            # Run again: recorded by an attempt other than the one running before the outage.
            finals = conn.execute(
                "SELECT id::text, started_at FROM job_completed WHERE id = ANY(%s::uuid[])",
                (jobs,),
            ).fetchall()
            rerun = sum(1 for job_id, started in finals if attempts.get(job_id) != started)
        print(f"outage: {opts.outage_s:.1f} s (ZOMBIE_JOB_TIMEOUT={opts.zombie_timeout_s} s)")
        print(f"requests during it: {len(took)}, answers: {codes}")
        print(
            f"answer time: median {statistics.median(took) * 1000:.1f} ms, "
            f"max {max(took) * 1000:.1f} ms"
        )
        print(f"first 200 after Postgres accepted connections again: {recovered * 1000:.0f} ms")
        print(
            f"jobs running through the outage: {len(jobs)}, completed: {completed}, "
            f"run again: {rerun}"
        )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
