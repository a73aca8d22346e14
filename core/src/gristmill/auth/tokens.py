"""Tokens: API tokens (stored hashed, with label, expiry, scopes and an optional workspace),
signed job tokens, and resolving a request's token to the actor it stands for."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth import audit
from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor
from gristmill.auth.permissions import AccessRow
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, NotFound, Unauthorized
from gristmill.queue.context import state_path
from gristmill.validation import check_no_nul, check_page

__all__ = [
    "MISSING_TOKEN",
    "TokenInfo",
    "TokenResolver",
    "check_scopes",
    "create_api_token",
    "create_token_for",
    "delete_token_by_prefix",
    "hash_token",
    "job_token_secret",
    "job_user_super_admin",
    "list_tokens",
    "mint_job_token",
    "new_api_token",
    "read_job_token",
    "revoke_token",
    "token_owner",
]

_JOB_TOKEN_PREFIX = "jt."
MISSING_TOKEN = (
    "missing or invalid token; send `Authorization: Bearer <token>` "
    "(get a token with POST /api/auth/login)"
)


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a leaked table does not leak usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> str:
    return secrets.token_urlsafe(24)


async def create_api_token(
    conn: psycopg.AsyncConnection,
    *,
    email: str,
    label: str | None,
    expiration: dt.datetime | None,
    scopes: Sequence[str] | None = None,
    workspace_id: str | None = None,
) -> str:
    token = new_api_token()
    await conn.execute(
        Q["insert_token"],
        {
            "token_hash": hash_token(token),
            "token_prefix": token[:10],
            "email": email,
            "label": label,
            "expiration": expiration,
            "scopes": list(scopes) if scopes is not None else None,
            "workspace_id": workspace_id,
        },
    )
    return token


def token_owner(conn: psycopg.Connection, token: str) -> str | None:
    """The email of a valid token's owner (synchronous: for the CLI token at start)."""
    row = conn.execute(Q["get_token_owner"], {"token_hash": hash_token(token)}).fetchone()
    return row[0] if row else None


async def revoke_token(pool: AsyncConnectionPool, token: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(Q["delete_token"], {"token_hash": hash_token(token)})


def job_token_secret(conn: psycopg.Connection) -> bytes:
    """The instance's key for job tokens, created by the first process that asks."""
    row = conn.execute(
        Q["init_setting"],
        {"name": "job_token_secret", "value": json.dumps(secrets.token_hex(32))},
    ).fetchone()
    assert row is not None
    return bytes.fromhex(row[0])


def mint_job_token(secret: bytes, *, job_id: UUID, email: str, username: str) -> str:
    """A job's ``WM_TOKEN``: signed, so issuing one costs no database write.

    It is valid while its job is queued or running, in its job's workspace only, with the
    scopes of the token that started the job (all checked when it is used).
    """
    payload = base64.urlsafe_b64encode(
        json.dumps([str(job_id), email, username], separators=(",", ":")).encode()
    ).decode()
    signature = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{_JOB_TOKEN_PREFIX}{payload}.{signature}"


def read_job_token(secret: bytes, token: str) -> Actor | None:
    """The actor of a well-signed job token (its job's liveness is checked by the caller)."""
    if not token.startswith(_JOB_TOKEN_PREFIX):
        return None
    payload, _, signature = token[len(_JOB_TOKEN_PREFIX) :].rpartition(".")
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    # Compared as bytes: the token is whatever a client sent, possibly not ASCII.
    if not payload or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        job_id, email, username = json.loads(base64.urlsafe_b64decode(payload))
        return Actor(email=email, username=username, job_id=UUID(job_id))
    except (ValueError, TypeError):
        return None


async def job_user_super_admin(
    conn: psycopg.AsyncConnection, email: str, *, superadmin_secret_set: bool
) -> bool | None:
    """Whether the user a job runs as is a super admin; ``None`` when that user no longer
    exists. A job started with ``SUPERADMIN_SECRET`` acts as that secret's identity, which
    has no user row: a super admin while the secret is set."""
    if email == SUPERADMIN_SECRET_EMAIL and superadmin_secret_set:
        return True
    user = await (await conn.execute(Q["get_user"], {"email": email})).fetchone()
    return None if user is None else bool(user[3])


class TokenResolver:
    """Turns a request's token into its actor: the superadmin secret, a job token (valid
    while its job is queued or running), or an API token.

    API tokens are looked up on every request (one primary-key read, no cache), so a revoked
    or expired token stops working at once in every server process.
    """

    def __init__(
        self, pool: AsyncConnectionPool, *, job_token_secret: bytes, superadmin_secret: str
    ) -> None:
        self.pool = pool
        self.job_token_secret = job_token_secret
        self.superadmin_secret = superadmin_secret

    async def resolve(self, token: str | None) -> Actor:
        """The actor of ``token``; :class:`Unauthorized` without a valid one."""
        actor, _ = await self.resolve_in(token, None)
        return actor

    async def resolve_in(
        self, token: str | None, workspace_id: str | None
    ) -> tuple[Actor, AccessRow | None]:
        """:meth:`resolve`, and for an API token with a ``workspace_id`` its owner's access
        to it (a ``gm_access`` row) read in the same round trip; ``None`` otherwise (the
        access of other tokens is read apart)."""
        if not token:
            raise Unauthorized(MISSING_TOKEN)
        secret = self.superadmin_secret
        if secret and hmac.compare_digest(token.encode(), secret.encode()):
            return Actor(SUPERADMIN_SECRET_EMAIL, "superadmin_secret", super_admin=True), None
        job_actor = read_job_token(self.job_token_secret, token)
        if job_actor is not None:
            return await self._job_actor(job_actor), None
        params = {"token_hash": hash_token(token), "workspace_id": workspace_id}
        query = Q["get_token_owner"] if workspace_id is None else Q["get_token_access"]
        async with self.pool.connection() as conn:
            row = await (await conn.execute(query, params)).fetchone()
        if row is None:
            raise Unauthorized(MISSING_TOKEN)
        email, username, super_admin, scopes, token_workspace = row[:5]
        actor = Actor(
            email=email,
            username=username,
            super_admin=super_admin,
            scopes=tuple(scopes) if scopes is not None else None,
            token_workspace=token_workspace,
        )
        return actor, (tuple(row[5:]) if workspace_id is not None else None)

    async def _job_actor(self, signed: Actor) -> Actor:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(Q["get_live_job_for_token"], {"id": signed.job_id})
            ).fetchone()
            super_admin = await job_user_super_admin(
                conn, signed.email, superadmin_secret_set=bool(self.superadmin_secret)
            )
        if row is None:
            raise Unauthorized("this job token belongs to a job that has finished")
        if super_admin is None:
            raise Unauthorized("the user this job runs as no longer exists")
        workspace_id, scopes, runnable_path, trigger, trigger_kind, step, flow_path = row
        return Actor(
            email=signed.email,
            username=signed.username,
            super_admin=super_admin,
            job_id=signed.job_id,
            scopes=tuple(scopes) if scopes is not None else None,
            token_workspace=workspace_id,
            # The same path as the job's WM_STATE_PATH (gristmill.queue.context).
            state_path=state_path(
                runnable_path,
                signed.username,
                trigger_kind=trigger_kind,
                trigger=trigger,
                flow_path=flow_path,
                flow_step_id=step,
            ),
        )

    async def revoke(self, token: str) -> None:
        """Revoke an API token; it stops working at once, everywhere."""
        await revoke_token(self.pool, token)


#: ``{domain}:{action}[:{path pattern}]``; ``*`` for any domain or action.
SCOPE = re.compile(r"(\*|[a-z][a-z0-9_]*):(\*|[a-z][a-z0-9_]*)(:[A-Za-z0-9_*/.:-]*)?", re.ASCII)
#: Windmill's older webhook scopes (its UI made them): ``run:script/<path>``,
#: ``run:flow/<path>``; the same as ``jobs:run:scripts:<path>`` / ``jobs:run:flows:<path>``.
LEGACY_RUN_SCOPE = re.compile(r"run:(script|flow)/[A-Za-z0-9_*/.-]+", re.ASCII)
MAX_SCOPES = 100
MAX_LABEL = 255


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """The scopes, each ``{domain}:{action}[:{path}]``; :class:`BadInput` for any other."""
    if len(scopes) > MAX_SCOPES:
        raise BadInput(f"a token has at most {MAX_SCOPES} scopes; got {len(scopes)}")
    for scope in scopes:
        if len(scope) > 255 or not (SCOPE.fullmatch(scope) or LEGACY_RUN_SCOPE.fullmatch(scope)):
            raise BadInput(
                f"invalid scope {scope[:80]!r}: expected '<domain>:<action>[:<path>]' such as "
                "'jobs:run', 'scripts:read:f/team/*', 'variables:write', or a webhook's "
                "'jobs:run:scripts:<path>' / 'jobs:run:flows:<path>'"
            )
    return list(scopes)


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never the token itself, only its first characters."""

    token_prefix: str
    label: str | None
    expiration: dt.datetime | None
    created_at: dt.datetime
    scopes: list[str] | None
    workspace_id: str | None
    last_used_at: dt.datetime | None


async def create_token_for(
    pool: AsyncConnectionPool,
    actor: Actor,
    *,
    label: str | None,
    expiration: dt.datetime | None,
    scopes: Sequence[str] | None,
    workspace_id: str | None,
    job_token_max_s: int,
) -> str:
    """A new API token of the caller, never more powerful than the token making it.

    A token with scopes makes tokens with a subset of them (none asked: the same); a token
    limited to a workspace makes tokens limited to it. A job's token (``WM_TOKEN``, as
    ``wmill.create_token`` uses) inherits the job's scopes and workspace, and its new token
    expires at most ``job_token_max_s`` from now (the longest a job may run), whatever
    expiration was asked: it must not outlive the job by much.
    """
    if actor.email == SUPERADMIN_SECRET_EMAIL:
        raise BadInput(
            "the SUPERADMIN_SECRET identity has no account to own tokens; log in as a user"
        )
    if label is not None:
        check_no_nul("label", label)
        if len(label) > MAX_LABEL:
            raise BadInput(f"label is longer than {MAX_LABEL} characters")
    now = dt.datetime.now(dt.UTC)
    if expiration is not None:
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=dt.UTC)
        if expiration <= now:
            raise BadInput(f"expiration {expiration.isoformat()} is in the past")
    wanted = check_scopes(scopes) if scopes is not None else None
    if actor.scopes is not None:
        if wanted is None:
            wanted = list(actor.scopes)
        elif extra := [s for s in wanted if s not in actor.scopes]:
            raise Forbidden(
                f"this token's scopes do not include {', '.join(extra)}; a token cannot "
                "make a token with more scopes than its own"
            )
    if actor.token_workspace is not None:
        if workspace_id not in (None, actor.token_workspace):
            raise Forbidden(
                f"this token is limited to workspace '{actor.token_workspace}'; "
                f"it cannot make a token for '{workspace_id}'"
            )
        workspace_id = actor.token_workspace
    if actor.job_id is not None:
        latest = now + dt.timedelta(seconds=job_token_max_s)
        expiration = latest if expiration is None else min(expiration, latest)
    async with pool.connection() as conn:
        if workspace_id is not None:
            check_no_nul("workspace_id", workspace_id)
            exists = await (
                await conn.execute(Q["workspace_exists"], {"workspace_id": workspace_id})
            ).fetchone()
            if exists is None:
                raise NotFound(f"workspace '{workspace_id}' does not exist")
        token = await create_api_token(
            conn,
            email=actor.email,
            label=label,
            expiration=expiration,
            scopes=wanted,
            workspace_id=workspace_id,
        )
        await audit.record_instance(
            conn,
            actor,
            "users.token.create",
            audit.ActionKind.CREATE,
            token[:10],
            parameters={"label": label, "scopes": wanted, "workspace_id": workspace_id},
        )
    return token


async def list_tokens(
    pool: AsyncConnectionPool, actor: Actor, *, page: int, per_page: int
) -> list[TokenInfo]:
    """The caller's API tokens (login sessions included), newest first."""
    check_page(page, per_page)
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_tokens"],
                {"email": actor.email, "limit": per_page, "offset": (page - 1) * per_page},
            )
        ).fetchall()
    return [TokenInfo(*row) for row in rows]


async def delete_token_by_prefix(pool: AsyncConnectionPool, actor: Actor, prefix: str) -> None:
    """Revoke the caller's token whose first characters are ``prefix`` (as listed)."""
    check_no_nul("token_prefix", prefix)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["delete_token_by_prefix"], {"email": actor.email, "prefix": prefix}
            )
        ).fetchone()
        if row is None:
            raise NotFound(f"you have no token with prefix {prefix[:20]!r}")
        await audit.record_instance(
            conn,
            actor,
            "users.token.delete",
            audit.ActionKind.DELETE,
            prefix,
        )
