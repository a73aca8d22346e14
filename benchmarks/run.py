"""Gristmill benchmarks: start the platform as a user does, drive it over HTTP, print a table.

    uv run python benchmarks/run.py [--workers N] [--jobs N] [--markdown] [--peers]

Measures:
- per-job overhead: wall time of a no-op Python job through ``run_wait_result`` minus the
  time the same interpreter takes to run the same wrapper and script directly (its own
  start-up), p50 and p95;
- Windmill's two published flow workloads (40 sequential fibo(10) steps, 10 of fibo(33)) as
  real flows, beside the same work as sequential separate jobs: totals, the transition
  between steps and the engine's cost per step (``benchmarks/flows.py``; alone with
  ``--flows-only``);
- queue throughput: no-op jobs queued at once, drained by all workers;
- for each runtime the server can run: a hello-world job, its first run (cold: compilation,
  caches) and the p50 of the next runs;
- the sandbox's per-job overhead, bwrap against none (``benchmarks/sandbox.py``; alone with
  ``--sandbox-only``);
- with ``--peers``: Prefect 3 and DBOS Transact on the same two flow workloads, each in its
  own virtual environment (installed on first use), and the ratios (``benchmarks/peers.py``;
  alone with ``--peers-only``).

The main platform runs its jobs as the product does: in the default sandbox (bwrap), or as
``GRISTMILL_SANDBOX`` says. A row whose jobs fail reports the error in the table, and the
run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform as host
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dependencies
import flows
import httpx
import peers
import sandbox

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret"

NOOP = "def main():\n    return None\n"
FIBO = """\
def fibo(n: int) -> int:
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


def main(n: int) -> int:
    return fibo(n)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Platform:
    """``gristmill up`` in a subprocess, on a private data directory and port."""

    def __init__(self, workers: int, sandbox: str | None = None) -> None:
        # Not under /tmp, which is private inside a sandbox; reachable by its user.
        self.data_dir = Path(tempfile.mkdtemp(prefix="gristmill-bench-", dir="/var/tmp"))
        self.data_dir.chmod(0o755)
        self.port = free_port()
        env = {
            **os.environ,
            "GRISTMILL_DATA_DIR": str(self.data_dir),
            "PORT": str(self.port),
            "NUM_WORKERS": str(workers),
            "SUPERADMIN_SECRET": SECRET,
            "GRISTMILL_LOG_LEVEL": "WARNING",
            # The example third-party runtime (tests/fixtures/gristmill-perl), measured too.
            "GRISTMILL_EXAMPLE_PERL": "1",
        }
        if sandbox is not None:
            env["GRISTMILL_SANDBOX"] = sandbox
        env.pop("DATABASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gristmill.server.cli", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 120
        for line in self.process.stdout:
            if "Gristmill is ready" in line:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the platform did not start in time")
        else:
            raise SystemExit(f"the platform exited with code {self.process.wait()}")
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}/api/w/main",
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=600,
        )

    def save(self, path: str, content: str, language: str = "python3") -> None:
        r = self.client.post(
            "/scripts/create", json={"path": path, "content": content, "language": language}
        )
        if r.status_code != 201:
            raise SystemExit(f"saving {path} failed: {r.status_code} {r.text}")

    def run_wait(self, path: str, args: dict[str, object]) -> object:
        r = self.client.post(f"/jobs/run_wait_result/p/{path}", json=args)
        if r.status_code != 200:
            raise sandbox.JobFailed(f"job failed: {r.status_code} {r.text}")
        return r.json()

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class BareRun:
    """The job's own cost: the Python runtime's exact command, run directly, no platform."""

    def __init__(self) -> None:
        from gristmill_python.runtime import INTERPRETER_FLAGS, PythonRuntime

        runtime = PythonRuntime()
        # On the same file system as the platform's job directories (its data directory).
        self.job_dir = tempfile.mkdtemp(prefix="gristmill-bench-bare-")
        Path(self.job_dir, "main.py").write_text(NOOP)
        Path(self.job_dir, "args.json").write_text("{}")
        self.argv = [runtime.interpreter, *INTERPRETER_FLAGS, runtime.wrapper]

    def once_ms(self) -> float:
        start = time.perf_counter()
        subprocess.run(self.argv, cwd=self.job_dir, check=True, env={"PATH": os.environ["PATH"]})
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


HELLO: dict[str, str] = {
    "python3": 'def main(name: str):\n    return f"hello {name}"\n',
    "bun": 'export function main(name: string) {\n  return "hello " + name;\n}\n',
    "deno": 'export function main(name: string) {\n  return "hello " + name;\n}\n',
    "go": (
        "package inner\n\n"
        "func main(name string) (interface{}, error) {\n"
        '\treturn "hello " + name, nil\n'
        "}\n"
    ),
    "bash": 'name="$1"\necho "hello $name"\n',
    "postgresql": "-- $1 name\nSELECT 'hello ' || $1::text AS greeting;\n",
    "perl": 'sub main {\n    my ($name) = @_;\n    return "hello $name";\n}\n',
}


def per_language(platform: Platform, runs: int) -> list[tuple[str, str, str]]:
    """For each runtime this server can run: the first job of a new script (compiles and
    caches whatever the runtime caches) and the p50 of the next ones."""
    rows = []
    runtimes = httpx.get(
        f"http://127.0.0.1:{platform.port}/api/runtimes",
        headers={"Authorization": f"Bearer {SECRET}"},
    ).json()
    with forward_to_embedded_postgres(platform.data_dir) as port:
        # A sandboxed job reaches a database through the network, as it would a real one:
        # the embedded Postgres listens on a unix socket only, which no sandbox sees.
        database = {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "gristmill"}
        for runtime in runtimes:
            name = runtime["name"]
            if name not in HELLO:
                continue
            if not runtime["available"]:
                rows.append((f"hello world, {name}", "n/a", runtime["toolchain_message"]))
                continue
            path = f"u/bench/hello_{name}"
            args: dict[str, object] = {"name": "bench"}
            if name == "postgresql":
                args["database"] = database
            try:
                platform.save(path, HELLO[name], language=name)
                start = time.perf_counter()
                platform.run_wait(path, args)
                first = (time.perf_counter() - start) * 1000
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    platform.run_wait(path, args)
                    times.append((time.perf_counter() - start) * 1000)
            except SystemExit as exc:
                rows.append((f"hello world, {name}", "failed", job_error(exc)))
                continue
            rows.append(
                (
                    f"hello world, {name}",
                    f"{statistics.median(times):.1f} ms p50",
                    f"first run {first:.0f} ms (cold: compile, caches), n={runs}",
                )
            )
    return rows


def job_error(exc: BaseException) -> str:
    """The error message of a failed job (or whatever failed), on one short line."""
    text = str(exc)
    with contextlib.suppress(ValueError, KeyError, TypeError):
        text = json.loads(text[text.index("{") :])["error"]["message"]
    return " ".join(text.split())[:200].replace("|", "/")


@contextlib.contextmanager
def forward_to_embedded_postgres(data_dir: Path) -> Iterator[int]:
    """A TCP port on 127.0.0.1 whose connections are carried to the platform's embedded
    Postgres (its unix socket), by threads of this process."""
    from gristmill.db.embedded import EmbeddedPostgres
    from gristmill.testing.forward import UnixSocketForwarder
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(EmbeddedPostgres(data_dir).conninfo)
    with UnixSocketForwarder(f"{params['host']}/.s.PGSQL.{params['port']}") as port:
        yield port


def measure(
    workers: int, jobs: int, flow_reps: int, with_peers: bool = False
) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    flow_totals: dict[tuple[int, int], float] = {}
    bare = BareRun()
    platform = Platform(workers)
    try:
        platform.save("u/bench/noop", NOOP)
        platform.save("u/bench/fibo", FIBO)
        for _ in range(10):  # warm-up: connections, caches
            platform.run_wait("u/bench/noop", {})
            bare.once_ms()
        # Each job is paired with a bare run just before it, so that the machine's drift
        # (this is often a shared VM) weighs on both sides of the difference alike.
        walls, bares, overhead = [], [], []
        for _ in range(jobs):
            bare_ms = bare.once_ms()
            start = time.perf_counter()
            platform.run_wait("u/bench/noop", {})
            wall_ms = (time.perf_counter() - start) * 1000
            walls.append(wall_ms)
            bares.append(bare_ms)
            overhead.append(wall_ms - bare_ms)
        rows.append(
            (
                "interpreter start-up (bare no-op job)",
                f"{statistics.median(bares):.1f} ms p50",
                f"p95 {percentile(bares, 0.95):.1f} ms; python -I -S + wrapper, no platform",
            )
        )
        rows.append(
            (
                "no-op job via run_wait_result",
                f"{statistics.median(walls):.1f} ms p50",
                f"p95 {percentile(walls, 0.95):.1f} ms, n={jobs}, over HTTP",
            )
        )
        rows.append(
            (
                "per-job overhead (wall - start-up)",
                f"{statistics.median(overhead):.1f} ms p50",
                f"p95 {percentile(overhead, 0.95):.1f} ms; paired differences",
            )
        )
        count = max(200, jobs * 2)
        start = time.perf_counter()
        ids = [platform.client.post("/jobs/run/p/u/bench/noop", json={}).text for _ in range(count)]
        for job_id in ids:
            while True:
                r = platform.client.get(f"/jobs_u/completed/get_result_maybe/{job_id}").json()
                if r["completed"]:
                    break
                time.sleep(0.01)
        total = time.perf_counter() - start
        rows.append(
            (
                f"throughput, {count} no-op jobs, {workers} workers",
                f"{count / total:.0f} jobs/s",
                f"{total:.2f} s from first submit to last result",
            )
        )
        flow_rows, flow_totals = flows.measure_with_totals(platform, reps=flow_reps)
        rows += flow_rows
        rows += per_language(platform, runs=20)
        rows += dependencies.measure(platform, ["python3", "bun"], runs=20)
    finally:
        platform.stop()
        bare.close()
    rows += sandbox.measure(lambda choice: Platform(1, sandbox=choice), runs=max(20, jobs // 2))
    if with_peers:
        # After the platform has stopped: the peers do not share the cores with it.
        rows += peers.measure(flows.workloads(flow_reps), flow_totals)
    return rows


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # This is often a shared machine: how busy it was says how far to trust the figures.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{host.system()} {host.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {host.python_version()}; load average {load} (1, 5, 15 min) at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="NUM_WORKERS of the platform")
    parser.add_argument("--jobs", type=int, default=100, help="no-op jobs for the overhead figures")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument(
        "--sandbox-only", action="store_true", help="only the sandbox's overhead (bwrap - none)"
    )
    parser.add_argument(
        "--flow-reps", type=int, default=5, help="paired flow/jobs runs of the 40-step workload"
    )
    parser.add_argument(
        "--flows-only", action="store_true", help="only the flow workloads (flow against jobs)"
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also Prefect 3 and DBOS on the flow workloads (installs them on first use)",
    )
    parser.add_argument(
        "--peers-only", action="store_true", help="only the peers on the flow workloads"
    )
    options = parser.parse_args()
    if options.peers_only:
        rows = peers.measure(flows.workloads(options.flow_reps))
    elif options.flows_only:
        platform = Platform(options.workers)
        try:
            rows, totals = flows.measure_with_totals(platform, reps=options.flow_reps)
        finally:
            platform.stop()
        if options.peers:
            rows += peers.measure(flows.workloads(options.flow_reps), totals)
    elif options.sandbox_only:
        runs = max(20, options.jobs // 2)
        rows = sandbox.measure(lambda choice: Platform(1, sandbox=choice), runs=runs)
    else:
        rows = measure(options.workers, options.jobs, options.flow_reps, options.peers)
    print(f"machine: {machine()}")
    if options.markdown:
        print("| measure | value | detail |\n|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        width = max(len(r[0]) for r in rows)
        for name, value, detail in rows:
            print(f"{name:<{width}}  {value:>18}  {detail}")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
