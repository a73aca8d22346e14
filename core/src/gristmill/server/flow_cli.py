"""``gristmill flow``: test a flow file against a running Gristmill, push and pull flow
folders in the Windmill CLI's format, restart a finished flow from a step.

Every command reaches the server as ``gristmill run`` does (``--url``, ``--token``,
``--workspace``; the same defaults), through the public API only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from gristmill.errors import BadInput

__all__ = ["flow"]

_url = click.option("--url", help="Server URL (default: $BASE_URL or http://localhost:$PORT).")
_token = click.option(
    "--token", help="API token (default: $GRISTMILL_TOKEN, or the local admin's)."
)
_workspace = click.option("--workspace", "-w", default="main", show_default=True)
_timeout = click.option(
    "--timeout", default=600.0, show_default=True, help="Seconds to wait for the flow to end."
)


@click.group()
def flow() -> None:
    """Flows: test one (`test`), push and pull flow folders, restart a run from a step.

    Flow files are Windmill's: a `.flow` folder as `wmill` writes it (`flow.yaml` with
    `!inline` script files), or one JSON/YAML file with the scripts inside.
    """


@contextmanager
def _client(url: str | None, token: str | None) -> Iterator[Any]:
    import os

    import httpx

    from gristmill.server.cli import _cli_token  # the same token lookup as `gristmill run`

    base = (
        url or os.environ.get("BASE_URL") or f"http://localhost:{os.environ.get('PORT', '8000')}"
    ).rstrip("/")
    token = token or _cli_token(None)
    if not token:
        raise click.ClickException(
            "no API token: pass --token, set GRISTMILL_TOKEN, or run this on the machine "
            "where `gristmill up` runs (it keeps a local token in its data directory)"
        )
    client = httpx.Client(
        base_url=f"{base}/api", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    try:
        yield client
    except httpx.ConnectError:
        raise click.ClickException(
            f"no Gristmill server answers at {base} (start one with `gristmill up`, or pass --url)"
        ) from None
    finally:
        client.close()


def _expect(response: Any) -> Any:
    from gristmill.server.cli import _expect as expect

    return expect(response)


def _load(source: Path) -> dict[str, Any]:
    """The flow at ``source`` (a folder or a file) as JSON data; a bad flow is a usage
    error naming the file and the module at fault."""
    from gristmill.flows.model import flow_to_dict, load_flow_dir

    try:
        return flow_to_dict(load_flow_dir(source))
    except BadInput as exc:
        raise click.ClickException(f"{source}: {exc}") from None


def _json_option(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not JSON ({exc})", param_hint=what) from None


def _pins(pins: tuple[str, ...]) -> dict[str, Any]:
    pinned: dict[str, Any] = {}
    for pin in pins:
        step, sep, raw = pin.partition("=")
        if not sep or not step:
            raise click.BadParameter(f"{pin!r} is not STEP=JSON", param_hint="--pin")
        pinned[step] = _json_option(raw, "--pin")
    return pinned


def _summary(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _wait(client: Any, workspace: str, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        job = _expect(client.get(f"/w/{workspace}/jobs_u/get/{job_id}"))
        if job["type"] == "CompletedJob":
            return job
        if time.monotonic() > deadline:
            raise click.ClickException(f"flow {job_id} did not end within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _report(client: Any, workspace: str, job: dict[str, Any]) -> None:
    """One line per top-level step (id, status, duration of its jobs, result summary),
    then the flow's result; exits 1 when the flow failed."""
    status = job.get("flow_status") or {}
    entries = [*status.get("modules", [])]
    failure = status.get("failure_module")
    if failure and failure.get("type") not in (None, "WaitingForPriorSteps"):
        entries.append({**failure, "id": f"{failure['id']} (failure module)"})
    width = max([len(str(e["id"])) for e in entries] + [4])
    for entry in entries:
        jobs = [*entry.get("failed_retries", [])]
        jobs += entry.get("flow_jobs") or ([entry["job"]] if entry.get("job") else [])
        duration_ms = 0
        last: dict[str, Any] | None = None
        for step_job in jobs:
            done = _expect(client.get(f"/w/{workspace}/jobs_u/get/{step_job}"))
            duration_ms += done.get("duration_ms") or 0
            last = done
        state = entry.get("type", "?")
        if entry.get("skipped"):
            outcome = "skipped"
        elif state == "WaitingForPriorSteps":
            outcome = "not run"
        elif last is None:
            outcome = "not run (pinned, mock or identity)"
        elif last.get("type") != "CompletedJob":
            outcome = "still running"
        else:
            count = f"{len(jobs)} jobs, last: " if len(jobs) > 1 else ""
            outcome = count + _summary(last.get("result"))
        click.echo(f"{entry['id']:<{width}}  {state:<20} {duration_ms / 1000:7.2f}s  {outcome}")
    ok = bool(job.get("success"))
    click.echo(f"flow {job['id']}: {'success' if ok else 'FAILURE'}")
    click.echo(json.dumps(job.get("result"), indent=2, ensure_ascii=False))
    if not ok:
        raise SystemExit(1)


@flow.command("test")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--pin",
    "pins",
    multiple=True,
    metavar="STEP=JSON",
    help="Do not run STEP: use this result (repeatable).",
)
@click.option("--args", "args_json", default="{}", help="The flow's args, a JSON object.")
@_url
@_token
@_workspace
@_timeout
def test_flow(
    source: Path,
    pins: tuple[str, ...],
    args_json: str,
    url: str | None,
    token: str | None,
    workspace: str,
    timeout: float,
) -> None:
    """Run the flow in SOURCE (a `.flow` folder or a flow file) on a running Gristmill and
    print each step's outcome; exit code 0 when the flow succeeds, 1 when it fails."""
    data = _load(source)
    args = _json_option(args_json, "--args")
    if not isinstance(args, dict):
        raise click.BadParameter("the args must be a JSON object", param_hint="--args")
    body = {"value": data["value"], "args": args, "pinned": _pins(pins)}
    with _client(url, token) as client:
        job_id = _expect(client.post(f"/w/{workspace}/jobs/run/preview_flow", json=body))
        _report(client, workspace, _wait(client, workspace, str(job_id), timeout))


@flow.command("push")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("path")
@_url
@_token
@_workspace
def push(source: Path, path: str, url: str | None, token: str | None, workspace: str) -> None:
    """Save the flow in SOURCE (a `.flow` folder or a flow file) at PATH: a new flow, or a
    new version of the one there."""
    data = _load(source)
    body = {
        "path": path,
        "summary": data.get("summary") or "",
        "description": data.get("description") or "",
        "value": data["value"],
        "schema": data.get("schema"),
    }
    with _client(url, token) as client:
        exists = _expect(client.get(f"/w/{workspace}/flows/exists/{path}"))
        if exists:
            _expect(client.post(f"/w/{workspace}/flows/update/{path}", json=body))
        else:
            _expect(client.post(f"/w/{workspace}/flows/create", json=body))
    click.echo(f"{'updated' if exists else 'created'} {path}")


@flow.command("pull")
@click.argument("path")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@_url
@_token
@_workspace
def pull(path: str, target: Path, url: str | None, token: str | None, workspace: str) -> None:
    """Write the flow at PATH to the folder TARGET as the Windmill CLI does (`flow.yaml` and
    one file per inline script): the same files `gristmill sync pull` and `wmill sync pull`
    write for it."""
    from gristmill.sync.format import flow_files

    with _client(url, token) as client:
        stored = _expect(client.get(f"/w/{workspace}/flows/get/{path}"))
    files = flow_files(stored)
    prefix = f"{stored['path']}.flow/"
    target.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (target / name.removeprefix(prefix)).write_bytes(content)
    click.echo(f"wrote {target / 'flow.yaml'}")


@flow.command("restart")
@click.argument("job_id")
@click.option("--from", "step", required=True, help="The step to restart from.")
@click.option(
    "--iteration",
    type=int,
    help="For a loop (or branchall): the iteration (branch) to restart from.",
)
@click.option("--args", "args_json", help="New args (JSON object; default: the old run's).")
@click.option("--no-wait", is_flag=True, help="Print the new job's id and return.")
@_url
@_token
@_workspace
@_timeout
def restart(
    job_id: str,
    step: str,
    iteration: int | None,
    args_json: str | None,
    no_wait: bool,
    url: str | None,
    token: str | None,
    workspace: str,
    timeout: float,
) -> None:
    """Run the finished flow JOB_ID again from a step, reusing the earlier steps' results;
    prints each step's outcome as `flow test` does (exit code 1 when it fails)."""
    route = f"/w/{workspace}/jobs/restart/f/{job_id}/from/{step}"
    if iteration is not None:
        route += f"/{iteration}"
    args = _json_option(args_json, "--args") if args_json is not None else None
    with _client(url, token) as client:
        new = str(_expect(client.post(route, json=args)))
        if no_wait:
            click.echo(new)
            return
        _report(client, workspace, _wait(client, workspace, new, timeout))
