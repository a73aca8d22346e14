"""Git sync and the deployment's own time: script saves in a workspace with git sync and in
one without, interleaved, against a running Gristmill; then how long until every save of the
synced workspace is committed and pushed to a bare repository.

    uv run gristmill up --port 18766 --data-dir /tmp/gm-bench &      # a platform of this checkout
    uv run python benchmarks/git_sync.py --url http://localhost:18766 \\
        --token "$(cat /tmp/gm-bench/cli-token)" --saves 50

Each save is a new version of one script per workspace (``scripts/create`` with the parent's
hash). The two workspaces' saves alternate, so that the machine's drift falls on both alike
(see benchmarks/ab.py). Prints the median and p90 of each, the commits made, and the seconds
from the first save until nothing waits.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def _quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(int(len(values) * q), len(values) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description="Git sync and the deployment's own time.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--saves", type=int, default=50)
    args = parser.parse_args()
    api = httpx.Client(
        base_url=f"{args.url}/api", headers={"Authorization": f"Bearer {args.token}"}, timeout=60
    )
    run = uuid.uuid4().hex[:8]
    synced, plain = f"gs-{run}", f"plain-{run}"
    bare = Path(tempfile.mkdtemp(prefix="gm-git-sync-bench-")) / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    for ws in (synced, plain):
        api.post("/workspaces/create", json={"id": ws, "name": ws}).raise_for_status()
        api.post(f"/w/{ws}/folders/create", json={"name": "bench"}).raise_for_status()
    api.post(
        f"/w/{synced}/resources/create",
        json={
            "path": "f/bench/repo",
            "resource_type": "git_repository",
            "value": {"url": str(bare)},
        },
    ).raise_for_status()
    api.post(
        f"/w/{synced}/workspaces/edit_git_sync_config",
        json={"git_sync_settings": {"repositories": [{"git_repo_resource_path": "f/bench/repo"}]}},
    ).raise_for_status()

    times: dict[str, list[float]] = {synced: [], plain: []}
    parents: dict[str, str | None] = {synced: None, plain: None}
    started = time.perf_counter()
    for i in range(args.saves):
        order = (synced, plain) if i % 2 == 0 else (plain, synced)
        for ws in order:
            body: dict[str, object] = {
                "path": "f/bench/s",
                "content": f"def main():\n    return {i}\n",
                "language": "python3",
            }
            if parents[ws] is not None:
                body["parent_hash"] = parents[ws]
            t = time.perf_counter()
            r = api.post(f"/w/{ws}/scripts/create", json=body)
            times[ws].append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            parents[ws] = r.text
    while api.get(f"/w/{synced}/workspaces/git_sync").json()["pending"]:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    commits = subprocess.run(
        ["git", "--git-dir", str(bare), "rev-list", "--count", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for name, ws in (("git sync off", plain), ("git sync on", synced)):
        xs = times[ws]
        print(
            f"{name}: save median {statistics.median(xs):.1f} ms, "
            f"p90 {_quantile(xs, 0.9):.1f} ms ({len(xs)} saves)"
        )
    print(f"{commits} commits pushed; nothing waiting {elapsed:.1f} s after the first save")


if __name__ == "__main__":
    main()
