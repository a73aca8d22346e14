"""The ``gristmill`` command."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gristmill import __version__
from gristmill.config import ConfigError, Settings
from gristmill.errors import BadInput
from gristmill.server.dev_cli import dev
from gristmill.server.flow_cli import flow
from gristmill.server.plugins_cli import add_plugin_commands
from gristmill.server.sync_cli import sync, workspace

__all__ = ["cli", "main"]


def _settings(mode: str, port: int | None, data_dir: Path | None, workers: int | None) -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    changes: dict[str, Any] = {"mode": mode}
    if port is not None:
        changes["port"] = port
    if data_dir is not None:
        changes["data_dir"] = data_dir.expanduser().resolve()
    if workers is not None:
        changes["num_workers"] = workers
    return settings.with_overrides(**changes)


_port = click.option("--port", type=int, help="Port of the API (default: $PORT or 8000).")
_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where all state lives (default: $GRISTMILL_DATA_DIR or a per-user directory).",
)
_workers = click.option(
    "--workers", type=int, help="Workers in this process (default: $NUM_WORKERS or 2)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gristmill")
def cli() -> None:
    """Gristmill: scripts become web forms, APIs, jobs and flows.

    Start everything with `gristmill up`. Settings come from environment variables
    (DATABASE_URL, PORT, NUM_WORKERS, ...; see docs/deploy.md).
    """


def _serve(settings: Settings) -> None:
    from gristmill.db import DatabaseUnavailableError
    from gristmill.db.embedded import EmbeddedPostgresError
    from gristmill.plugins import PluginLoadError
    from gristmill.server.serve import PortInUseError, serve
    from gristmill.server.webui import WebUIError

    try:
        serve(settings)
    except (
        DatabaseUnavailableError,
        EmbeddedPostgresError,
        ConfigError,
        PortInUseError,
        PluginLoadError,
        WebUIError,
    ) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@_port
@_data_dir
@_workers
def up(port: int | None, data_dir: Path | None, workers: int | None) -> None:
    """Start the whole platform: database (unless DATABASE_URL), API and workers.

    Prints the URL once the API answers; Ctrl-C stops everything it started.
    """
    _serve(_settings(os.environ.get("MODE", "standalone"), port, data_dir, workers))


@cli.command()
@_port
@_data_dir
def server(port: int | None, data_dir: Path | None) -> None:
    """Start the API and the monitor only (MODE=server); workers run elsewhere."""
    _serve(_settings("server", port, data_dir, None))


@cli.command()
@_data_dir
@_workers
def worker(data_dir: Path | None, workers: int | None) -> None:
    """Start workers only (MODE=worker), taking jobs from the shared database."""
    _serve(_settings("worker", None, data_dir, workers))


@cli.command()
@click.option(
    "--plugins/--no-plugins",
    default=False,
    help="Include routes that installed plugins add (off: the core's document, as the web UI's "
    "client is generated from).",
)
def openapi(plugins: bool) -> None:
    """Print the API's OpenAPI document (JSON), without starting anything."""
    from gristmill.api.app import openapi_document

    click.echo(json.dumps(openapi_document(load_plugins=plugins), indent=2, sort_keys=True))


def _parse_arg(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not NAME=VALUE", param_hint="--arg")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _cli_token(data_dir: Path | None) -> str | None:
    token = os.environ.get("GRISTMILL_TOKEN") or os.environ.get("SUPERADMIN_SECRET")
    if token:
        return token
    from gristmill.server.serve import cli_token_path

    settings = _settings("standalone", None, data_dir, None)
    path = cli_token_path(settings)
    return path.read_text().strip() if path.exists() else None


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arg", "-a", "args", multiple=True, help="NAME=VALUE (VALUE is JSON, or text).")
@click.option("--language", "-l", help="Runtime to use (default: from the file extension).")
@click.option("--url", help="Server URL (default: $BASE_URL or http://localhost:$PORT).")
@click.option("--token", help="API token (default: $GRISTMILL_TOKEN, or the local admin's).")
@click.option("--workspace", "-w", default="main", show_default=True)
@_data_dir
def run(
    file: Path,
    args: tuple[str, ...],
    language: str | None,
    url: str | None,
    token: str | None,
    workspace: str,
    data_dir: Path | None,
) -> None:
    """Run FILE as a job through the queue, printing its logs as they come, then its result.

    Logs go to stderr and the result (JSON) to stdout; the exit code is 1 if the job fails.
    """
    import httpx

    base = (
        url or os.environ.get("BASE_URL") or f"http://localhost:{os.environ.get('PORT', '8000')}"
    ).rstrip("/")
    token = token or _cli_token(data_dir)
    if not token:
        raise click.ClickException(
            "no API token: pass --token, set GRISTMILL_TOKEN, or run this on the machine "
            "where `gristmill up` runs (it keeps a local token in its data directory)"
        )
    arguments = dict(_parse_arg(a) for a in args)
    client = httpx.Client(
        base_url=f"{base}/api", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        if language is None:
            runtimes = _expect(client.get("/runtimes"))
            suffix = file.suffix.lower()
            matches = [r["name"] for r in runtimes if suffix in r["file_extensions"]]
            if not matches:
                known = ", ".join(sorted({e for r in runtimes for e in r["file_extensions"]}))
                raise click.ClickException(
                    f"no runtime on the server handles '{suffix}' files (known: {known}); "
                    "pass --language"
                )
            language = matches[0]
        job_id = _expect(
            client.post(
                f"/w/{workspace}/jobs/run/preview",
                json={"content": file.read_text(), "language": language, "args": arguments},
            )
        )
        _follow(client, workspace, str(job_id))
    except httpx.ConnectError:
        raise click.ClickException(
            f"no Gristmill server answers at {base} (start one with `gristmill up`, or pass --url)"
        ) from None


def _expect(response: Any) -> Any:
    if response.status_code >= 400:
        raise click.ClickException(f"the server refused ({response.status_code}): {response.text}")
    ctype = response.headers.get("content-type", "")
    return response.json() if ctype.startswith("application/json") else response.text


def follow_logs(
    client: Any,
    workspace: str,
    job_id: str,
    write: Callable[[str], object],
    *,
    pause: Callable[[float], object] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
    timeout: float | None = None,
) -> bool:
    """Pass the job's new logs to ``write`` as they come, polling quickly at first then every
    0.5 s at most; ``True`` once the job completed, ``False`` as soon as ``stop()`` says so.
    Past ``timeout`` seconds, a :class:`BadInput` naming the job."""
    offset = 0
    delay = 0.02
    deadline = None if timeout is None else time.monotonic() + timeout
    while not stop():
        update = _expect(
            client.get(f"/w/{workspace}/jobs_u/getupdate/{job_id}", params={"log_offset": offset})
        )
        if update["new_logs"]:
            write(update["new_logs"])
            delay = 0.02
        offset = update["log_offset"]
        if update["completed"]:
            return True
        if deadline is not None and time.monotonic() > deadline:
            raise BadInput(f"job {job_id} did not end within {timeout:g} s")
        pause(delay)
        delay = min(delay * 1.5, 0.5)
    return False


def _follow(client: Any, workspace: str, job_id: str) -> None:
    # Ctrl-C sets a flag seen between two requests, rather than a KeyboardInterrupt raised
    # wherever the program is: one raised inside the HTTP client can leave its pool's lock
    # held, and the cancel request then waits on it for ever. A second Ctrl-C leaves at once.
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    def to_stderr(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        if follow_logs(
            client, workspace, job_id, to_stderr, pause=interrupted.wait, stop=interrupted.is_set
        ):
            return _print_outcome(client, workspace, job_id)
        # Stopped by a Ctrl-C: the job goes on without this command unless canceled.
        client.post(
            f"/w/{workspace}/jobs_u/queue/cancel/{job_id}",
            json={"reason": "Ctrl-C in gristmill run"},
        )
        click.echo(f"\njob {job_id} canceled", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_outcome(client: Any, workspace: str, job_id: str) -> None:
    outcome = _expect(client.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}"))
    click.echo(json.dumps(outcome["result"], indent=2))
    if not outcome["success"]:
        sys.exit(1)


cli.add_command(flow)
cli.add_command(dev)
add_plugin_commands(cli)
cli.add_command(sync)
cli.add_command(workspace)


def main() -> None:
    from gristmill.plugins import inspect_plugins

    try:
        # A plugin that fails to load is left out (`gristmill plugins` reports it): the others'
        # commands, and `gristmill uninstall` to remove it, must still work.
        inspect_plugins()[0].hook.register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not make the CLI unusable
        click.echo(f"warning: plugins could not add commands: {exc}", err=True)
    cli()


if __name__ == "__main__":
    main()
