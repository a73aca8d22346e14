"""Users of the instance and members of a workspace; API tokens; invitations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import (
    AccessDep,
    ActorDep,
    AuthenticatedRoute,
    Page,
    PlatformDep,
    bearer_token,
)
from gristmill.api.schemas.users import (
    AcceptInvite,
    DeclineInvite,
    EditWorkspaceUser,
    GlobalUserInfo,
    NewToken,
    NewUser,
    SetPassword,
    TruncatedToken,
    User,
    WorkspaceInvite,
)
from gristmill.auth import users as instance_users
from gristmill.auth.permissions import Access, Role
from gristmill.auth.tokens import create_token_for, delete_token_by_prefix, list_tokens
from gristmill.validation import MAX_PER_PAGE
from gristmill.workspace import members

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=AuthenticatedRoute)

PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]


def _global_info(user: instance_users.User) -> GlobalUserInfo:
    return GlobalUserInfo(
        email=user.email, super_admin=user.super_admin, name=user.name, username=user.username
    )


def _user(member: members.Member, access: Access) -> User:
    return User(
        email=member.email,
        username=member.username,
        is_admin=member.role is Role.ADMIN,
        name=member.name,
        is_super_admin=member.super_admin,
        created_at=member.created_at,
        operator=member.role is Role.OPERATOR,
        disabled=member.disabled,
        role=member.role.value,
        groups=member.groups,
        folders=sorted(access.folders_read),
        folders_owners=sorted(access.folders_owned),
    )


def _invite(invite: members.Invite) -> WorkspaceInvite:
    return WorkspaceInvite(
        workspace_id=invite.workspace_id,
        email=invite.email,
        is_admin=invite.role is Role.ADMIN,
        operator=invite.role is Role.OPERATOR,
    )


# -- the instance ---------------------------------------------------------------------------


@router.get("/users/whoami")
async def global_whoami(actor: ActorDep, platform: PlatformDep) -> GlobalUserInfo:
    """The caller (Windmill's GlobalUserInfo); ``job_id`` is set for a job's token."""
    user = await instance_users.get_user(platform.db, actor.email)
    return GlobalUserInfo(
        email=actor.email,
        super_admin=actor.super_admin,
        name=user.name if user else None,
        username=actor.username,
        job_id=str(actor.job_id) if actor.job_id else None,
    )


@router.post("/users/create", status_code=201, response_class=PlainTextResponse)
async def create_user(body: NewUser, actor: ActorDep, platform: PlatformDep) -> PlainTextResponse:
    """Create a user with a password (super admins); answers its email."""
    user = await instance_users.create_user(
        platform.db,
        actor,
        email=body.email,
        password=body.password,
        super_admin=body.super_admin,
        name=body.name,
        username=body.username,
    )
    return PlainTextResponse(user.email, status_code=201)


@router.post("/users/setpassword", response_class=PlainTextResponse)
async def set_password(
    body: SetPassword, request: Request, actor: ActorDep, platform: PlatformDep
) -> PlainTextResponse:
    """Change the caller's password; their other login sessions are revoked."""
    await instance_users.set_password(
        platform.db, actor, body.password, current_token=bearer_token(request)
    )
    return PlainTextResponse(f"password of {actor.email} updated")


@router.get("/users/list_as_super_admin")
async def list_as_super_admin(
    actor: ActorDep, platform: PlatformDep, page: Page = 1, per_page: PerPage = 100
) -> list[GlobalUserInfo]:
    """Every user of the instance (super admins)."""
    users = await instance_users.list_users(platform.db, actor, page=page, per_page=per_page)
    return [_global_info(u) for u in users]


@router.delete("/users/delete/{email}", response_class=PlainTextResponse)
async def delete_user(email: str, actor: ActorDep, platform: PlatformDep) -> PlainTextResponse:
    """Delete a user, their memberships and tokens (super admins)."""
    await instance_users.delete_user(platform.db, actor, email)
    return PlainTextResponse(f"user {email} deleted")


# -- tokens ---------------------------------------------------------------------------------


@router.post("/users/tokens/create", status_code=201, response_class=PlainTextResponse)
async def create_token(body: NewToken, actor: ActorDep, platform: PlatformDep) -> PlainTextResponse:
    """A new API token of the caller (the token as text, shown this once)."""
    token = await create_token_for(
        platform.db,
        actor,
        label=body.label,
        expiration=body.expiration,
        scopes=body.scopes,
        workspace_id=body.workspace_id,
        job_token_max_s=platform.settings.job_timeout_s,
    )
    return PlainTextResponse(token, status_code=201)


@router.get("/users/tokens/list")
async def list_my_tokens(
    actor: ActorDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[TruncatedToken]:
    """The caller's tokens, newest first: prefix, label, expiration, scopes; never a token."""
    tokens = await list_tokens(platform.db, actor, page=page, per_page=per_page)
    return [
        TruncatedToken(
            token_prefix=t.token_prefix,
            label=t.label,
            expiration=t.expiration,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            scopes=t.scopes,
            workspace_id=t.workspace_id,
        )
        for t in tokens
    ]


@router.delete("/users/tokens/delete/{token_prefix}", response_class=PlainTextResponse)
async def delete_token(
    token_prefix: str, actor: ActorDep, platform: PlatformDep
) -> PlainTextResponse:
    """Revoke one of the caller's tokens (by the prefix the list shows); immediate."""
    await delete_token_by_prefix(platform.db, actor, token_prefix)
    return PlainTextResponse(f"token {token_prefix} deleted")


# -- invitations ----------------------------------------------------------------------------


@router.get("/users/list_invites")
async def list_invites(actor: ActorDep, platform: PlatformDep) -> list[WorkspaceInvite]:
    """The caller's pending invitations."""
    return [_invite(i) for i in await members.list_invites_of(platform.db, actor)]


@router.post("/users/accept_invite", response_class=PlainTextResponse)
async def accept_invite(
    body: AcceptInvite, actor: ActorDep, platform: PlatformDep
) -> PlainTextResponse:
    """Join the workspace of an invitation, with its role."""
    await members.accept_invite(
        platform.db, actor, workspace_id=body.workspace_id, username=body.username
    )
    return PlainTextResponse(f"joined workspace {body.workspace_id}")


@router.post("/users/decline_invite", response_class=PlainTextResponse)
async def decline_invite(
    body: DeclineInvite, actor: ActorDep, platform: PlatformDep
) -> PlainTextResponse:
    await members.decline_invite(platform.db, actor, workspace_id=body.workspace_id)
    return PlainTextResponse(f"invitation to {body.workspace_id} declined")


# -- members of a workspace -----------------------------------------------------------------


@router.get("/w/{workspace}/users/whoami")
async def whoami(access: AccessDep, platform: PlatformDep) -> User:
    """The caller as a member of the workspace (Windmill's User)."""
    return _user(await members.whoami(platform.db, access), access)


@router.get("/w/{workspace}/users/list")
async def list_users(access: AccessDep, platform: PlatformDep) -> list[User]:
    """The workspace's members (``folders`` is filled by ``whois`` and ``whoami`` only)."""
    empty = Access(access.workspace_id, access.actor, access.role)
    return [_user(m, empty) for m in await members.list_members(platform.db, access)]


@router.get("/w/{workspace}/users/list_usernames")
async def list_usernames(access: AccessDep, platform: PlatformDep) -> list[str]:
    return [m.username for m in await members.list_members(platform.db, access)]


@router.get("/w/{workspace}/users/whois/{username}")
async def whois(username: str, access: AccessDep, platform: PlatformDep) -> User:
    member = await members.get_member(platform.db, access, username)
    return _user(member, await members.access_of(platform.db, access, member))


@router.get("/w/{workspace}/users/username_to_email/{username}", response_class=PlainTextResponse)
async def username_to_email(
    username: str, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """A member's email, as plain text (wmill's ``username_to_email``)."""
    return PlainTextResponse(await members.username_to_email(platform.db, access, username))


@router.get("/w/{workspace}/users/is_owner/{path:path}")
async def is_owner(path: str, access: AccessDep) -> bool:
    """Whether the caller owns the item at ``path`` (admins own everything)."""
    return members.is_owner(access, path)


@router.post("/w/{workspace}/users/update/{username}", response_class=PlainTextResponse)
async def update_user(
    username: str, body: EditWorkspaceUser, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """Change a member's role (``is_admin``, ``operator``) or disable them (admins)."""
    member = await members.update_member(
        platform.db,
        access,
        username,
        is_admin=body.is_admin,
        operator=body.operator,
        disabled=body.disabled,
    )
    return PlainTextResponse(f"{member.username} is {member.role.value}")


@router.delete("/w/{workspace}/users/delete/{username}", response_class=PlainTextResponse)
async def delete_member(
    username: str, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """Remove a member from the workspace (admins); the account stays."""
    await members.remove_member(platform.db, access, username)
    return PlainTextResponse(f"{username} removed from {access.workspace_id}")
