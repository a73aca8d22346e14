"""``gristmill sync pull|push`` and ``gristmill workspace export|import``: a workspace as
files in Windmill's folder format (the one ``wmill sync`` writes, so either CLI works on the
same repository), and as one archive of that format for backups and moves.

Every command reaches the server as ``gristmill run`` and ``gristmill flow`` do (``--url``,
``--token``, ``--workspace``; the same defaults), through the public API only: the workspace
tarball to read, each item's create or update route to write.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from gristmill.errors import BadInput
from gristmill.server.flow_cli import _client, _expect, _token, _url, _workspace
from gristmill.sync import format as fmt
from gristmill.sync import local, sealed
from gristmill.sync.archive import read_archive

__all__ = ["sync", "workspace"]

# Items are written in this order: what an item refers to (its folder, a resource's type, a
# flow's scripts, a schedule's runnable) exists before it.
_ORDER: tuple[str, ...] = (
    "folder",
    "resource_type",
    "variable",
    "resource",
    "script",
    "flow",
    "schedule",
    "http_trigger",
    "postgres_trigger",
)
_PASSPHRASE_ENV = "GRISTMILL_EXPORT_PASSPHRASE"


@click.group()
def sync() -> None:
    """A workspace as files: `pull` writes it into a folder, `push` writes a folder's items
    to it. The folder format is Windmill's (`wmill sync`): scripts as code +
    `.script.yaml` + `.script.lock`, flows as `.flow/` folders, one YAML file per variable,
    resource, resource type, folder, schedule and trigger."""


def _remote_entries(
    client: Any,
    workspace: str,
    *,
    schedules: bool = True,
    triggers: bool = True,
    skip_secrets: bool = False,
    plain_secrets: bool = False,
) -> dict[str, str]:
    response = client.get(
        f"/w/{workspace}/workspaces/tarball",
        params={
            "archive_type": "zip",
            "include_schedules": schedules,
            "include_triggers": triggers,
            "skip_secrets": skip_secrets,
            "plain_secret": plain_secrets,
        },
    )
    if response.status_code >= 400:
        _expect(response)
    try:
        return read_archive(response.content)
    except BadInput as exc:
        raise click.ClickException(f"the server's workspace archive: {exc}") from None


def _items(files: Mapping[str, bytes], where: str) -> list[fmt.Item]:
    try:
        return fmt.from_folder(files)
    except BadInput as exc:
        raise click.ClickException(f"{where}: {exc}") from None


_skip_schedules = click.option("--skip-schedules", is_flag=True, help="Leave schedules out.")
_skip_triggers = click.option(
    "--skip-triggers", is_flag=True, help="Leave triggers (HTTP routes, Postgres) out."
)
_skip_secrets = click.option("--skip-secrets", is_flag=True, help="Leave secret variables out.")
_dry_run = click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
_directory = click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), default=".", required=False
)


@sync.command()
@_directory
@_url
@_token
@_workspace
@_skip_schedules
@_skip_triggers
@_skip_secrets
@_dry_run
def pull(
    directory: Path,
    url: str | None,
    token: str | None,
    workspace: str,
    skip_schedules: bool,
    skip_triggers: bool,
    skip_secrets: bool,
    dry_run: bool,
) -> None:
    """Write the workspace's items into DIRECTORY (default: here): new and changed files
    written, files of items the workspace no longer has removed, other files left alone.
    Secrets are written as their ciphertext, which only this workspace opens (as `wmill`).
    A wmill.yaml in DIRECTORY chooses the items as it does for `wmill sync`."""
    config = _config(directory, skip_schedules, skip_triggers, skip_secrets)
    with _client(url, token) as client:
        entries = _remote_entries(
            client,
            workspace,
            schedules=config.include_schedules,
            triggers=config.include_triggers,
            skip_secrets=config.skip_secrets,
        )
    remote = config.select(fmt.to_folder(entries))
    current = local.read_folder(directory) if directory.is_dir() else {}
    changes = local.plan_pull(current, remote, config)
    for sign, names in (("+", changes.added), ("~", changes.changed), ("-", changes.removed)):
        for name in names:
            click.echo(f"{sign} {name}")
    total = len(changes.added) + len(changes.changed) + len(changes.removed)
    if dry_run:
        click.echo(f"{total} change(s) to pull (dry run: nothing written)")
        return
    directory.mkdir(parents=True, exist_ok=True)
    local.apply_pull(directory, remote, changes)
    click.echo(f"{total} change(s) pulled from {workspace} into {directory}")


def _config(
    directory: Path,
    skip_schedules: bool = False,
    skip_triggers: bool = False,
    skip_secrets: bool = False,
) -> local.SyncConfig:
    """The folder's wmill.yaml (everything without one), narrowed by the command's flags."""
    try:
        config = local.SyncConfig.read(directory)
    except BadInput as exc:
        raise click.ClickException(str(exc)) from None
    return dataclasses.replace(
        config,
        include_schedules=config.include_schedules and not skip_schedules,
        include_triggers=config.include_triggers and not skip_triggers,
        skip_secrets=config.skip_secrets or skip_secrets,
    )


def _same(a: fmt.Item, b: fmt.Item) -> bool:
    return (a.record, a.content, a.language) == (b.record, b.content, b.language)


def _push_items(
    client: Any,
    workspace: str,
    items: list[fmt.Item],
    remote: Mapping[tuple[str, str], fmt.Item],
    *,
    plain_secrets: bool,
    passphrase: str | None,
    dry_run: bool,
) -> int:
    """Create or update each item that differs from the remote; how many were written."""
    written = 0
    for item in sorted(items, key=lambda i: (_ORDER.index(i.kind), i.path)):
        existing = remote.get((item.kind, item.path))
        if existing is not None and _same(item, existing):
            continue
        click.echo(f"{'~' if existing else '+'} {item.kind} {item.path}")
        written += 1
        if not dry_run:
            _write_item(client, workspace, item, existing, plain_secrets, passphrase)
    return written


def _write_item(
    client: Any,
    workspace: str,
    item: fmt.Item,
    existing: fmt.Item | None,
    plain_secrets: bool,
    passphrase: str | None,
) -> None:
    base = f"/w/{workspace}"
    record = dict(item.record)
    path = item.path
    update = existing is not None
    if item.kind == "folder":
        target = f"{base}/folders/update/{path}" if update else f"{base}/folders/create"
        _expect(client.post(target, json={**record, "name": path}))
    elif item.kind == "resource_type":
        target = (
            f"{base}/resources/type/update/{path}" if update else f"{base}/resources/type/create"
        )
        _expect(client.post(target, json={**record, "name": path}))
    elif item.kind == "variable":
        params: dict[str, Any] = {}
        if record.get("is_secret"):
            value = record.get("value")
            if sealed.is_sealed(value):
                if not passphrase:
                    raise click.ClickException(
                        f"secret {path} is sealed with a passphrase: pass --passphrase or set "
                        f"{_PASSPHRASE_ENV}"
                    )
                try:
                    record["value"] = sealed.open_sealed(passphrase, path, str(value))
                except BadInput as exc:
                    raise click.ClickException(str(exc)) from None
            elif not plain_secrets:
                # A pulled secret is the workspace's ciphertext, saved as it is (wmill's rule).
                params["already_encrypted"] = True
        target = f"{base}/variables/update/{path}" if update else f"{base}/variables/create"
        _expect(client.post(target, params=params, json={**record, "path": path}))
    elif item.kind == "resource":
        target = f"{base}/resources/update/{path}" if update else f"{base}/resources/create"
        _expect(client.post(target, json={**record, "path": path}))
    elif item.kind == "script":
        body: dict[str, Any] = {
            **{k: v for k, v in record.items() if v is not None},
            "path": path,
            "content": item.content,
            "language": item.language,
        }
        if update:
            body["parent_hash"] = _expect(client.get(f"{base}/scripts/get/p/{path}"))["hash"]
        _expect(client.post(f"{base}/scripts/create", json=body))
    elif item.kind == "flow":
        target = f"{base}/flows/update/{path}" if update else f"{base}/flows/create"
        _expect(client.post(target, json={**record, "path": path}))
    elif item.kind == "schedule":
        body = {**record, "path": path}
        if update:
            _expect(client.post(f"{base}/schedules/update/{path}", json=body))
            assert existing is not None
            if "enabled" in record and record["enabled"] != existing.record.get("enabled"):
                _expect(
                    client.post(
                        f"{base}/schedules/setenabled/{path}",
                        json={"enabled": bool(record["enabled"])},
                    )
                )
        else:
            _expect(client.post(f"{base}/schedules/create", json=body))
    else:
        kind = f"{item.kind.removesuffix('_trigger')}_triggers"
        target = f"{base}/{kind}/update/{path}" if update else f"{base}/{kind}/create"
        _expect(client.post(target, json={**record, "path": path}))


def _push(
    client: Any,
    workspace: str,
    files: Mapping[str, bytes],
    where: str,
    *,
    plain_secrets: bool,
    passphrase: str | None,
    dry_run: bool,
    config: local.SyncConfig | None = None,
) -> int:
    items = [i for i in _items(files, where) if config is None or config.keeps(i)]
    kinds = {i.kind for i in items}
    entries = _remote_entries(
        client,
        workspace,
        schedules="schedule" in kinds,
        triggers=any(k.endswith("_trigger") for k in kinds),
    )
    remote = {(i.kind, i.path): i for i in fmt.from_folder(fmt.to_folder(entries))}
    return _push_items(
        client,
        workspace,
        items,
        remote,
        plain_secrets=plain_secrets,
        passphrase=passphrase,
        dry_run=dry_run,
    )


@sync.command()
@_directory
@_url
@_token
@_workspace
@click.option(
    "--plain-secrets",
    is_flag=True,
    help="Secret values in the folder are clear text (default: the workspace's ciphertext, "
    "as `sync pull` writes them).",
)
@_dry_run
def push(
    directory: Path,
    url: str | None,
    token: str | None,
    workspace: str,
    plain_secrets: bool,
    dry_run: bool,
) -> None:
    """Create or update in the workspace each item of DIRECTORY (default: here) that differs
    from it (the items its wmill.yaml chooses, as for `wmill sync`). Nothing is deleted: an
    item removed from the folder stays in the workspace."""
    if not directory.is_dir():
        raise click.ClickException(f"{directory} is not a folder")
    files = local.read_folder(directory)
    with _client(url, token) as client:
        written = _push(
            client,
            workspace,
            files,
            str(directory),
            plain_secrets=plain_secrets,
            passphrase=None,
            dry_run=dry_run,
            config=_config(directory),
        )
    done = "would be pushed (dry run)" if dry_run else f"pushed to {workspace}"
    click.echo(f"{written} item(s) {done}")


# --- workspace export / import ---------------------------------------------------------------


@click.group()
def workspace() -> None:
    """A whole workspace as one archive: `export` for backups and moves, `import` into a
    workspace of any instance."""


def _passphrase_option(confirm: bool) -> Any:
    return click.option(
        "--passphrase",
        envvar=_PASSPHRASE_ENV,
        help=f"Seals (and opens) the secrets (default: ${_PASSPHRASE_ENV}, else asked).",
        prompt=False,
        hide_input=True,
        confirmation_prompt=confirm,
    )


@workspace.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_url
@_token
@_workspace
@click.option(
    "--include-secrets",
    is_flag=True,
    help="Export secret variables too, each sealed with a passphrase (never in clear).",
)
@_passphrase_option(confirm=True)
def export_workspace(
    file: Path,
    url: str | None,
    token: str | None,
    workspace: str,
    include_secrets: bool,
    passphrase: str | None,
) -> None:
    """Write the workspace into FILE, a .tar.gz of the sync folder format: scripts, flows,
    folders, resources and their types, variables, schedules, triggers. Secrets only with
    --include-secrets, sealed with a passphrase that `import` asks for."""
    if include_secrets and not passphrase:
        passphrase = click.prompt(
            "Passphrase sealing the secrets", hide_input=True, confirmation_prompt=True
        )
    with _client(url, token) as client:
        entries = _remote_entries(
            client,
            workspace,
            skip_secrets=not include_secrets,
            plain_secrets=include_secrets,
        )
    if include_secrets:
        assert passphrase is not None
        entries = _seal_secrets(entries, passphrase)
    files = fmt.to_folder(entries)
    file.write_bytes(_tar_gz(files))
    count = len(_items(files, str(file)))
    click.echo(f"{count} item(s) of {workspace} exported to {file}")


def _seal_secrets(entries: Mapping[str, str], passphrase: str) -> dict[str, str]:
    import json

    out = dict(entries)
    for name, text in entries.items():
        if not name.endswith(".variable.json"):
            continue
        record = json.loads(text)
        if record.get("is_secret") and isinstance(record.get("value"), str):
            path = name.removesuffix(".variable.json")
            record["value"] = sealed.seal(passphrase, path, record["value"])
            out[name] = fmt.json_text(record)
    return out


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` with fixed times and owners: one workspace, one archive."""
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


@workspace.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_url
@_token
@_workspace
@click.option("--create", is_flag=True, help="Create the workspace first.")
@_passphrase_option(confirm=False)
def import_workspace(
    file: Path,
    url: str | None,
    token: str | None,
    workspace: str,
    create: bool,
    passphrase: str | None,
) -> None:
    """Write the items of FILE (from `export`, or any archive of the sync folder format) into
    the workspace: each created, or updated when it differs. Sealed secrets need the
    passphrase they were exported with."""
    try:
        files = {k: v.encode() for k, v in read_archive(file.read_bytes()).items()}
    except BadInput as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    items = _items(files, str(file))
    needs_passphrase = any(
        i.kind == "variable" and sealed.is_sealed(i.record.get("value")) for i in items
    )
    if needs_passphrase and not passphrase:
        passphrase = click.prompt("Passphrase of the exported secrets", hide_input=True)
    with _client(url, token) as client:
        if create:
            _expect(client.post("/workspaces/create", json={"id": workspace, "name": workspace}))
        written = _push(
            client,
            workspace,
            files,
            str(file),
            plain_secrets=False,
            passphrase=passphrase,
            dry_run=False,
        )
    click.echo(f"{written} item(s) imported into {workspace} from {file}")
