"""Two checkouts of Gristmill side by side: which one answers a job faster, paired.

    uv run python benchmarks/ab.py BEFORE_DIR [AFTER_DIR] [--runs N] [--sandbox none|bwrap]

Starts ``gristmill up`` from each checkout (each with its own ``.venv``, or the interpreter
given by ``--before-python``/``--after-python``) on a private data directory and port, saves
the same no-op Bash and Python scripts in both, then sends ``run_wait_result`` requests to
one and the other in turn (the order alternating), so that the machine's drift, which moves
sequential benchmark runs by milliseconds on a shared VM, falls on both alike. Prints the
p50 of each and of the paired differences.

Why it exists: ``benchmarks/run.py`` run twice, minutes apart, once per version, differed by
1 to 4 ms per job on this machine in either direction; interleaved, the same two versions
differed by 0.1 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SECRET = "ab-secret"
SCRIPTS = {
    "bash": ("u/ab/noop_bash", 'echo "hello $1"\n'),
    "python3": ("u/ab/noop_python", "def main():\n    return 1\n"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Side:
    """``gristmill up`` from one checkout."""

    def __init__(self, checkout: Path, python: str, sandbox: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="gristmill-ab-", dir="/var/tmp"))
        self.data_dir.chmod(0o755)
        port = free_port()
        env = {
            **os.environ,
            "GRISTMILL_DATA_DIR": str(self.data_dir),
            "PORT": str(port),
            "NUM_WORKERS": "2",
            "SUPERADMIN_SECRET": SECRET,
            "GRISTMILL_LOG_LEVEL": "WARNING",
            "GRISTMILL_SANDBOX": sandbox,
        }
        env.pop("DATABASE_URL", None)
        # The console script is the one entry point both old and new checkouts have.
        self.process = subprocess.Popen(
            [
                python,
                "-c",
                "from gristmill.server.cli import main; main()"
                if (checkout / "core/src/gristmill/server/cli.py").exists()
                else "from gristmill.cli import main; main()",
                "up",
            ],
            cwd=checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/w/main",
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=60,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/version").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"gristmill up from {checkout} exited ({self.process.returncode})")
            time.sleep(0.1)
        for language, (path, content) in SCRIPTS.items():
            r = self.client.post(
                "/scripts/create", json={"path": path, "language": language, "content": content}
            )
            if r.status_code != 201:
                raise SystemExit(f"{checkout}: saving {path} failed: {r.text}")

    def run(self, path: str) -> float:
        start = time.perf_counter()
        r = self.client.post(f"/jobs/run_wait_result/p/{path}", json={})
        elapsed = (time.perf_counter() - start) * 1000
        if r.status_code != 200:
            raise SystemExit(f"job failed: {r.status_code} {r.text}")
        return elapsed

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Its embedded Postgres and job directories: hundreds of megabytes per run otherwise.
        shutil.rmtree(self.data_dir, ignore_errors=True)


def interpreter(checkout: Path, given: str | None) -> str:
    return given or str(checkout / ".venv" / "bin" / "python")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="a checkout (with its .venv)")
    parser.add_argument("after", type=Path, nargs="?", default=Path(__file__).parent.parent)
    parser.add_argument("--before-python", help="the interpreter of the before side")
    parser.add_argument("--after-python", help="the interpreter of the after side")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--sandbox", default="none", help="GRISTMILL_SANDBOX of both sides")
    options = parser.parse_args()
    sides = [
        Side(
            options.before.resolve(),
            interpreter(options.before, options.before_python),
            options.sandbox,
        ),
        Side(
            options.after.resolve(),
            interpreter(options.after, options.after_python),
            options.sandbox,
        ),
    ]
    try:
        print("| job | before p50 | after p50 | after - before, paired p50 |\n|---|---|---|---|")
        for language, (path, _) in SCRIPTS.items():
            for _ in range(30):  # warm both: caches, connections, the script cache
                for side in sides:
                    side.run(path)
            before: list[float] = []
            after: list[float] = []
            for i in range(options.runs):
                order = [(sides[0], before), (sides[1], after)]
                for side, times in order if i % 2 else reversed(order):
                    times.append(side.run(path))
            diff = statistics.median(b - a for a, b in zip(before, after, strict=True))
            print(
                f"| {language} no-op, run_wait_result | {statistics.median(before):.2f} ms | "
                f"{statistics.median(after):.2f} ms | {diff:+.2f} ms |"
            )
    finally:
        for side in sides:
            side.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
