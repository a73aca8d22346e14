"""Git sync: each deployed script, flow or schedule of a workspace committed to a git
repository in Windmill's folder format (docs/local-development.md "Git sync").

The setting is Windmill's (``git_sync`` in the workspace settings: a list of repositories,
each named by a ``git_repository`` resource whose ``url`` is the repository's and whose
optional ``branch`` is the branch to push to). Every audited deployment in a workspace with
the setting leaves a row in ``git_sync_pending`` (a trigger on the audit log, migration
0017_git_sync.sql: written in the deployment's own transaction); :class:`GitSyncer`, a task
of every server process, commits those rows in order, one commit per deployment naming the
item and its author, and pushes.

Why a task of the servers rather than a job per deployment as Windmill runs: Windmill's job
is a hub script calling its CLI inside a worker; here git is called by the platform itself,
with the repository's URL (often holding a token) never handed to user code, no run in the
workspace's job list for each deployment, and nothing to do for a deployment in a workspace
without the setting. The deployment never waits for git: it commits its row and returns; a
failure (the repository unreachable, a push refused) is retried with a doubling delay (at most
5 minutes), logged, and kept on the setting (``last_error``) for the API.

The real ``git`` binary does the work (a Debian package: ``apt-get install git``); without it
the setting is refused ("git not found").
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access, Role
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, GristmillError, NotFound
from gristmill.flows import store as flow_store
from gristmill.scripts import versions
from gristmill.scripts.deployment import DeploymentState, deployment_status
from gristmill.sync import format as fmt
from gristmill.sync.local import SyncConfig
from gristmill.triggers import schedules
from gristmill.workspace import resources
from gristmill.workspace.secrets import Secrets

__all__ = [
    "GIT_NOT_FOUND",
    "GitSyncStatus",
    "GitSyncer",
    "get_git_sync",
    "set_git_sync",
]

logger = logging.getLogger(__name__)

GIT_NOT_FOUND = (
    "git not found: git sync runs the `git` program, which is not installed on this server "
    "(install it, e.g. `apt-get install git`, on every server process)"
)

#: What git sync commits (Windmill's ``include_type`` names).
ITEM_TYPES = ("script", "flow", "schedule")
_DEFAULT_PATHS = ("f/**",)
_TIMEOUT_S = 120.0
_BATCH = 100


class GitError(GristmillError):
    """A git command failed: its command and output."""


class _Postponed(GristmillError):
    """A script's dependencies are being locked: its commit waits for the lock."""


@dataclass(frozen=True)
class GitSyncStatus:
    """A workspace's setting (``None``: git sync is off) and how syncing goes."""

    settings: dict[str, Any] | None
    pending: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    last_commit: str | None = None
    last_pushed_at: dt.datetime | None = None
    edited_by: str | None = None
    edited_at: dt.datetime | None = None


def git_binary() -> str | None:
    return shutil.which("git")


def _resource_path(repository: Mapping[str, Any]) -> str:
    return str(repository.get("git_repo_resource_path") or "").removeprefix("$res:")


async def set_git_sync(
    pool: AsyncConnectionPool, access: Access, settings: Mapping[str, Any] | None
) -> None:
    """Set (or, with no repository, remove) the workspace's git sync. Admins only; each
    repository's resource must exist and hold a ``url``; ``git`` must be installed."""
    if not access.is_admin:
        raise Forbidden("only an admin of the workspace may change its git sync")
    repositories = list((settings or {}).get("repositories") or [])
    if not repositories:
        async with pool.connection() as conn:
            await conn.execute(Q["git_sync_unset"], {"workspace_id": access.workspace_id})
        return
    if git_binary() is None:
        raise BadInput(GIT_NOT_FOUND)
    for index, repository in enumerate(repositories):
        field = f"repositories[{index}]"
        path = _resource_path(repository)
        if not path:
            raise BadInput(f"{field}.git_repo_resource_path: a git_repository resource's path")
        if repository.get("use_individual_branch"):
            raise BadInput(
                f"{field}.use_individual_branch: Gristmill commits to the repository's branch "
                "only (a branch per item is not supported)"
            )
        try:
            resource = await resources.get_resource(pool, access, path)
        except NotFound:
            raise BadInput(f"{field}.git_repo_resource_path: no resource {path}") from None
        value = resource.value
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            raise BadInput(
                f"{field}: the resource {path} must hold the repository's `url` "
                "(a git_repository resource: url, and optionally branch)"
            )
        filters = dict(repository.get("settings") or {})
        types = filters.get("include_type")
        if types is not None and not isinstance(types, list):
            raise BadInput(f"{field}.settings.include_type: a list of item types")
        # Stored whole, as Windmill stores it (its CLI's `gitsync-settings pull` reads these;
        # a repository without them is a "legacy" one it refuses).
        filters["include_path"] = filters.get("include_path") or list(_DEFAULT_PATHS)
        filters["include_type"] = types or list(ITEM_TYPES)
        filters.setdefault("exclude_path", [])
        filters.setdefault("extra_include_path", [])
        repositories[index] = {**repository, "settings": filters}
    async with pool.connection() as conn:
        await conn.execute(
            Q["git_sync_set"],
            {
                "workspace_id": access.workspace_id,
                "settings": Jsonb({**(settings or {}), "repositories": repositories}),
                "edited_by": access.username,
            },
        )


async def get_git_sync(pool: AsyncConnectionPool, access: Access) -> GitSyncStatus:
    """The workspace's git sync setting and state (members may read it; the repository's
    URL is in its resource, which they read only with the resource's permissions)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["git_sync_get"], {"workspace_id": access.workspace_id})
        row = await cur.fetchone()
    if row is None:
        return GitSyncStatus(settings=None)
    return GitSyncStatus(**row)


# -- committing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A deployment to commit (a row of ``git_sync_pending``)."""

    id: int
    kind: str
    path: str
    new_path: str | None
    #: The version deployed (script hash, flow version id); ``None``: the item as it is now.
    version: str | None
    operation: str
    username: str
    attempts: int


_VERBS = {"create": "Create", "archive": "Archive", "delete": "Delete"}


def commit_message(event: Pending) -> str:
    """``Update flow f/team/etl by alice``: what, which, who."""
    verb = _VERBS.get(event.operation.rsplit(".", 1)[-1], "Update")
    moved = f" (moved to {event.new_path})" if event.new_path else ""
    return f"{verb} {event.kind} {event.path}{moved} by {event.username}"


def included(repository: Mapping[str, Any], kind: str, path: str) -> bool:
    """Whether a repository's filters (Windmill's ``include_path`` and ``exclude_path``
    globs, ``include_type``) take the item; the globs are matched as the CLIs match
    ``wmill.yaml``'s (:class:`~gristmill.sync.local.SyncConfig`), so a repository's git sync
    and its ``wmill sync`` choose alike. Without filters: every script, flow and schedule in
    a folder (``f/**``)."""
    filters = repository.get("settings") or {}
    types = filters.get("include_type") or ITEM_TYPES
    if kind not in types:
        return False
    paths = [*(filters.get("include_path") or _DEFAULT_PATHS)]
    paths += filters.get("extra_include_path") or []
    config = SyncConfig(includes=tuple(paths), excludes=tuple(filters.get("exclude_path") or ()))
    item_kind: fmt.ItemKind = (
        "script" if kind == "script" else "flow" if kind == "flow" else "schedule"
    )
    return config.keeps(fmt.Item(item_kind, path, {}))


def owned_files(root: Path, kind: str, path: str) -> list[Path]:
    """The files of the working tree ``root`` that hold the item (to remove before writing
    it again): a script's code and metadata, a flow's folder, a schedule's file."""
    folder = root / Path(path).parent
    name = Path(path).name
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for entry in folder.iterdir():
        if kind == "flow":
            if entry.name in (f"{name}.flow", f"{name}__flow"):
                found.append(entry)
        elif kind == "schedule":
            if entry.name == f"{name}.schedule.yaml":
                found.append(entry)
        elif entry.is_file() and entry.name.startswith(f"{name}."):
            rest = entry.name[len(name) + 1 :]
            # Other kinds at the same path have their own suffixes (`.schedule.yaml`...).
            if rest in ("script.yaml", "script.json", "script.lock") or not rest.endswith(
                (".yaml", ".json")
            ):
                found.append(entry)
    return found


def _system_access(workspace_id: str) -> Access:
    actor = Actor(email="git-sync@gristmill.invalid", username="git-sync", super_admin=True)
    return Access(workspace_id, actor, Role.ADMIN)


async def item_files(
    pool: AsyncConnectionPool, access: Access, kind: str, path: str, version: str | None = None
) -> dict[str, bytes] | None:
    """The item's files: of ``version`` when given (the one a deployment saved, even if a
    later one is saved already: each deployment gets its own commit), else as the item
    stands now; ``None``: gone, or archived."""
    ws = access.workspace_id
    try:
        if kind == "script":
            row = await _script_version(pool, access, path, version)
            status = await deployment_status(pool, ws, row)
            if status.status is DeploymentState.LOCKING:
                raise _Postponed(f"script {path}: its dependencies are being locked")
            return fmt.script_files(row)
        if kind == "flow":
            if version is not None:
                try:
                    row = await flow_store.get_version(pool, access, int(version))
                    return fmt.flow_files({**dataclasses.asdict(row), "path": path})
                except NotFound:
                    pass  # deleted since: the flow as it is now
            flow = dataclasses.asdict(await flow_store.get_flow(pool, access, path))
            return None if flow.get("archived") else fmt.flow_files(flow)
        return fmt.schedule_files(await schedules.get_schedule(pool, access, path))
    except NotFound:
        return None


async def _script_version(
    pool: AsyncConnectionPool, access: Access, path: str, version: str | None
) -> dict[str, Any]:
    if version is not None:
        try:
            return await versions.fetch_by_hash(pool, access.workspace_id, version, access)
        except NotFound:
            pass  # that version was deleted since: the script as it is now
    return await versions.fetch_live(pool, access.workspace_id, path, access)


async def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",  # a missing credential fails, never waits for a prompt
        "GIT_ASKPASS": "true",
        "LC_ALL": "C",
    }
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {args[0]}: no answer within {_TIMEOUT_S:g} s") from None
    except asyncio.CancelledError:
        process.kill()  # the server stops: no git left running behind it
        raise
    text = out.decode(errors="replace").strip()
    if process.returncode != 0:
        raise GitError(f"git {args[0]} failed ({process.returncode}): {text[-2000:]}")
    return text


def _redact(text: str, url: str) -> str:
    """An error without the repository URL's credentials."""
    return text.replace(url, "<repository>") if "@" in url else text


def _fresh(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)


def _apply(work: Path, kind: str, old: str, files: Mapping[str, bytes] | None) -> None:
    """The item's files in the working tree: those at ``old`` removed, ``files`` written."""
    for stale in owned_files(work, kind, old):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    for relative, data in (files or {}).items():
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


async def _checkout(work: Path, url: str, branch: str) -> None:
    """``work`` as the remote branch stands (fresh when the branch does not exist yet):
    whatever an earlier failed attempt left there is dropped."""
    if not await asyncio.to_thread((work / ".git").is_dir):
        await asyncio.to_thread(_fresh, work)
        await _git(work, "init", "-q", "-b", branch)
        await _git(work, "remote", "add", "origin", url)
    else:
        await _git(work, "remote", "set-url", "origin", url)
    heads = await _git(work, "ls-remote", "--heads", "origin", f"refs/heads/{branch}")
    if heads:
        await _git(
            work, "fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        )
        await _git(work, "checkout", "-q", "-B", branch, f"origin/{branch}")
        await _git(work, "reset", "-q", "--hard", f"origin/{branch}")
        await _git(work, "clean", "-q", "-fdx")
    else:
        # An empty repository: the first commit starts the branch.
        await asyncio.to_thread(_fresh, work)
        await _git(work, "init", "-q", "-b", branch)
        await _git(work, "remote", "add", "origin", url)


async def _remote_branch(work: Path, url: str, configured: Any) -> str:
    if isinstance(configured, str) and configured:
        return configured
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    # The branch the repository's HEAD names (an empty repository names none: `main`).
    listed = await _git(work, "ls-remote", "--symref", url, "HEAD")
    for line in listed.splitlines():
        if line.startswith("ref: refs/heads/"):
            return line.split()[1].removeprefix("refs/heads/")
    return "main"


class GitSyncer:
    """Commits and pushes the workspaces' pending deployments (one task per server process;
    a workspace is handled by one process at a time, under a database lock)."""

    def __init__(
        self, pool: AsyncConnectionPool, secrets: Secrets, work_dir: Path, poll_s: float = 1.0
    ) -> None:
        self.pool = pool
        self.secrets = secrets
        self.work_dir = work_dir
        self.poll_s = poll_s

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception:  # a database outage: the next pass tries again
                logger.exception("git sync: a pass failed")
            await asyncio.sleep(self.poll_s)

    async def pass_once(self) -> None:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q["git_sync_due_workspaces"])).fetchall()
        for (workspace_id,) in rows:
            await self._workspace(workspace_id)

    async def _workspace(self, workspace_id: str) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            locked = await (
                await conn.execute(Q["git_sync_try_lock"], {"workspace_id": workspace_id})
            ).fetchone()
            if locked is None or not locked[0]:
                return  # another process is on it
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                Q["git_sync_pending_list"], {"workspace_id": workspace_id, "limit": _BATCH}
            )
            events = [Pending(**row) for row in await cur.fetchall()]
            await cur.execute(Q["git_sync_get"], {"workspace_id": workspace_id})
            setting = await cur.fetchone()
            if not events or setting is None:
                return
            try:
                commit = await self._commit(workspace_id, setting["settings"], events)
            except _Postponed:
                await conn.execute(Q["git_sync_postpone"], {"workspace_id": workspace_id})
                return
            except (GristmillError, OSError) as exc:
                message = str(exc)
                logger.warning(
                    "git sync of workspace %s failed (attempt %d, %d deployments waiting): %s",
                    workspace_id,
                    events[0].attempts + 1,
                    len(events),
                    message,
                )
                await conn.execute(
                    Q["git_sync_failed"],
                    {"workspace_id": workspace_id, "id": events[0].id, "error": message},
                )
                return
            await conn.execute(
                Q["git_sync_done"],
                {"workspace_id": workspace_id, "ids": [e.id for e in events]},
            )
            if commit is not None:
                await conn.execute(
                    Q["git_sync_pushed"], {"workspace_id": workspace_id, "commit": commit}
                )

    async def _commit(
        self, workspace_id: str, settings: Mapping[str, Any], events: Sequence[Pending]
    ) -> str | None:
        """Commit ``events`` to each repository and push; the last commit pushed."""
        access = _system_access(workspace_id)
        last: str | None = None
        for repository in settings.get("repositories") or []:
            path = _resource_path(repository)
            value = await resources.get_value_interpolated(self.pool, self.secrets, access, path)
            if not isinstance(value, dict) or not isinstance(value.get("url"), str):
                raise BadInput(f"the resource {path} holds no repository `url`")
            url = str(value["url"])
            try:
                pushed = await self._commit_to(workspace_id, access, repository, value, events)
            except GitError as exc:
                raise GitError(_redact(str(exc), url)) from None
            last = pushed or last
        return last

    async def _commit_to(
        self,
        workspace_id: str,
        access: Access,
        repository: Mapping[str, Any],
        value: Mapping[str, Any],
        events: Sequence[Pending],
    ) -> str | None:
        url = str(value["url"])
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        work = self.work_dir / workspace_id / key
        branch = await _remote_branch(work, url, value.get("branch"))
        await _checkout(work, url, branch)
        committed = False
        for event in events:
            changes: list[tuple[str, str]] = [(event.path, event.path)]
            if event.new_path:
                changes = [(event.path, ""), (event.new_path, event.new_path)]
            touched = False
            for old, new in changes:
                if not included(repository, event.kind, old or new):
                    continue
                files = (
                    await item_files(self.pool, access, event.kind, new, event.version)
                    if new
                    else None
                )
                await asyncio.to_thread(_apply, work, event.kind, old, files)
                touched = True
            if not touched:
                continue
            await _git(work, "add", "-A")
            staged = await _git(work, "status", "--porcelain")
            if not staged:
                continue  # the repository already holds it (a retry, a no-op save)
            email = await self._email(event.username)
            await _git(
                work,
                "-c",
                "user.name=Gristmill",
                "-c",
                "user.email=gristmill@localhost",
                "commit",
                "-q",
                "--no-verify",
                f"--author={event.username} <{email}>",
                "-m",
                commit_message(event),
            )
            committed = True
        if not committed:
            return None
        await _git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return await _git(work, "rev-parse", "HEAD")

    async def _email(self, username: str) -> str:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(Q["git_sync_user_email"], {"username": username})
            ).fetchone()
        return str(row[0]) if row else f"{username}@gristmill.invalid"
