"""`gristmill dev` (a real process watching a folder), `gristmill flow test` on a folder as
`wmill sync pull` writes it, and the real `wmill gitsync-settings` against git sync's setting,
on one served platform (uvicorn on 127.0.0.1, real Postgres, real workers)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from gristmill.server.cli import cli
from gristmill.testing.chaos import clean_env
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import served_settings
from gristmill.testing.windmill_cli import WindmillCli

FLOW = Path(__file__).parent.parent / "data" / "flows" / "sum_squares.flow"
GRISTMILL = Path(sys.executable).parent / "gristmill"


@pytest.fixture(scope="module")
def server(pg_cluster: PgCluster, served_platform: Any) -> Iterator[str]:
    with (
        served_settings(pg_cluster, SUPERADMIN_SECRET, "gm-dev-cli-") as settings,
        served_platform(settings) as url,
    ):
        yield url


class _Lines:
    """A started process's stdout, line by line, read by a thread (so a wait has a deadline)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        stream = process.stdout
        assert stream is not None
        threading.Thread(target=lambda: [self._queue.put(x) for x in stream], daemon=True).start()

    def until(self, text: str, timeout: float = 30) -> list[str]:
        """The lines read until one holds ``text`` (that one included)."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in:\n{''.join(self.seen)}") from None
            self.seen.append(line)
            if text in line:
                return self.seen[start:]


def test_dev_runs_each_saved_script_and_flow(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "f" / "demo"
    folder.mkdir(parents=True)
    process = subprocess.Popen(
        [
            str(GRISTMILL),
            "dev",
            str(tmp_path),
            "--url",
            server,
            "--token",
            SUPERADMIN_SECRET,
            "--poll",
            "0.05",
            "--debounce",
            "0.15",
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines = _Lines(process)
    try:
        lines.until("[dev] watching")
        script = folder / "hello.py"
        # An editor's save: the file written in several steps; it runs once, whole.
        script.write_text('def main(name: str = "world"):\n')
        script.write_text(script.read_text() + '    print("hello", name)\n    return name\n')
        run = lines.until("[dev] watching\n", timeout=60)  # the platform's first job
        assert run[0] == "[dev] running script f/demo/hello (python3)\n", run
        assert "hello world\n" in run and '"world"\n' in run, run
        assert sum("running" in x for x in run) == 1, run

        # A syntax error: the server's 400 message, and watching goes on.
        script.write_text('def main(name: str = "world"\n    return 1\n')
        refused = lines.until("[dev] watching\n")
        assert any("(400)" in x and "was never closed" in x for x in refused), refused

        # The metadata's schema gives the args; an edit runs the new code.
        (folder / "hello.script.yaml").write_text(
            "summary: hi\nlanguage: python3\nschema:\n  type: object\n  properties:\n"
            "    name: {type: string, default: yaml}\n"
        )
        script.write_text(
            'def main(name: str = "world"):\n    print("again", name)\n    return 2\n'
        )
        edited = lines.until("[dev] watching\n")
        assert "again yaml\n" in edited and "2\n" in edited, edited
        assert any("success" in x for x in edited), edited

        # A flow folder copied in runs as a flow, its steps reported.
        shutil.copytree(FLOW, folder / "sum_squares.flow")
        flow = lines.until("[dev] watching\n")
        assert flow[0] == "[dev] running flow f/demo/sum_squares\n", flow
        assert any(x.startswith("verdict") and "big: 14" in x for x in flow), flow
    finally:
        process.terminate()
        process.wait(timeout=10)


def _synced_flow(target: Path) -> Path:
    """The test flow as `wmill sync pull` (1.819, `nonDottedPaths`) writes it: a `__flow`
    folder, inline files named after the steps' summaries, a lock kept in its own file."""
    flow_dir = target / "f" / "demo" / "sum_squares__flow"
    flow_dir.mkdir(parents=True)
    renames = {
        "numbers.inline_script.py": "the_numbers_1..n.inline_script.py",
        "square.inline_script.py": "inline_script_0.inline_script.py",
    }
    for source in FLOW.iterdir():
        (flow_dir / renames.get(source.name, source.name)).write_bytes(source.read_bytes())
    text = (FLOW / "flow.yaml").read_text()
    for old, new in renames.items():
        text = text.replace(old, new)
    inline = "content: '!inline say_small.inline_script.py'\n"
    indent = text.split(inline)[0].rsplit("\n", 1)[1]
    text = text.replace(inline, f"{inline}{indent}lock: '!inline say_small.inline_script.lock'\n")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (flow_dir / "say_small.inline_script.lock").write_text(f"# py: {version}\n")
    (flow_dir / "flow.yaml").write_text(text)
    return flow_dir


def test_flow_test_runs_a_flow_of_a_synced_folder(server: str, tmp_path: Path) -> None:
    flow_dir = _synced_flow(tmp_path)
    done = CliRunner().invoke(
        cli,
        [
            "flow",
            "test",
            str(flow_dir),
            "--args",
            '{"n": 2, "threshold": 10}',
            "--url",
            server,
            "--token",
            SUPERADMIN_SECRET,
        ],
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.output
    assert done.output.rstrip().endswith('"small: 5"'), done.output
    # The lock is read from its file: without it, the flow is refused before running.
    (flow_dir / "say_small.inline_script.lock").unlink()
    missing = CliRunner().invoke(cli, ["flow", "test", str(flow_dir), "--url", server])
    assert missing.exit_code == 1 and "say_small.inline_script.lock" in missing.output


def test_windmill_cli_reads_and_writes_the_git_sync_setting(
    server: str, windmill_cli: WindmillCli, tmp_path: Path
) -> None:
    api = httpx.Client(
        base_url=f"{server}/api/w/main", headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"}
    )
    assert api.post("/folders/create", json={"name": "team"}).status_code in (200, 201)
    resource = {
        "path": "f/team/repo",
        "resource_type": "git_repository",
        "value": {"url": str(tmp_path / "r.git")},
    }
    assert api.post("/resources/create", json=resource).status_code in (200, 201)
    setting = {"repositories": [{"git_repo_resource_path": "$res:f/team/repo"}]}
    r = api.post("/workspaces/edit_git_sync_config", json={"git_sync_settings": setting})
    assert r.status_code == 200, r.text
    windmill_cli.add_workspace(server, "main", SUPERADMIN_SECRET)
    # pull: the setting becomes the folder's wmill.yaml (schedules in, variables out...).
    # (`--json-output` prints its JSON as the last line, after a progress line.)
    out = windmill_cli("gitsync-settings", "pull", "--json-output", "--yes")
    pulled = json.loads(out.strip().splitlines()[-1])
    assert pulled["success"], pulled
    config = yaml.safe_load((windmill_cli.cwd / "wmill.yaml").read_text())
    assert config["includes"] == ["f/**"] and config["includeSchedules"] is True
    assert config["skipScripts"] is False and config["skipVariables"] is True
    # push: an edited wmill.yaml becomes the setting.
    config["includes"] = ["f/team/**"]
    (windmill_cli.cwd / "wmill.yaml").write_text(yaml.safe_dump(config))
    out = windmill_cli("gitsync-settings", "push", "--json-output", "--yes")
    pushed = json.loads(out.strip().splitlines()[-1])
    assert pushed["success"], pushed
    stored = api.get("/workspaces/git_sync").json()["git_sync_settings"]["repositories"][0]
    assert stored["settings"]["include_path"] == ["f/team/**"]
    assert stored["settings"]["include_type"] == ["script", "flow", "schedule"]
