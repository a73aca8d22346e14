"""HTTP routes (Windmill's "custom HTTP routes"): a method and a path under ``/api/r/`` that
start a script or flow, trigger kind ``http``.

A route is a trigger of the ``trigger`` table whose configuration is :class:`HttpRouteConfig`
(Windmill's fields). Every server process keeps the enabled routes in memory
(:class:`RouteTable`), loaded at start, reloaded when a route changes anywhere (the
``gristmill_triggers`` notification) and every :data:`SAFETY_RELOAD_S` in case one was
missed. A request is matched there, authenticated by the route's own mode (not by the API's
token rule: a route may be public), turned into the runnable's arguments as Windmill does,
and run synchronously (the answer is the result) or asynchronously (the answer is the job
id). The FastAPI side is :mod:`gristmill.api.routes.http_routes`; docs/triggers.md
"HTTP routes" is what a user sees.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, Field, field_validator, model_validator

from gristmill.auth.permissions import Access, load_access
from gristmill.errors import BadInput, Forbidden, NotFound, Unauthorized
from gristmill.queue.idempotency import check_key
from gristmill.queue.states import JobStatus
from gristmill.triggers.kinds import TriggerDraft, TriggerKind, TriggerRow, TriggerServices
from gristmill.triggers.runs import owner_access, runnable_row
from gristmill.triggers.store import enabled_triggers
from gristmill.triggers.webhooks import (
    BodyOptions,
    HttpAnswer,
    UnsupportedMediaType,
    result_answer,
    webhook_args,
)
from gristmill.validation import short
from gristmill.worker.retry import TRANSIENT
from gristmill.workspace.resources import get_value_interpolated

if TYPE_CHECKING:
    from uuid import UUID

    from gristmill.auth.tokens import TokenResolver

__all__ = [
    "HTTP_METHODS",
    "SAFETY_RELOAD_S",
    "AuthRefused",
    "HttpRouteConfig",
    "HttpRouteKind",
    "Match",
    "RouteRequest",
    "RouteTable",
    "call_route",
    "check_auth_value",
    "cors_headers",
    "parse_route",
    "preflight",
    "route_shape",
    "verify_request",
]

log = logging.getLogger(__name__)

HTTP_METHODS = ("get", "post", "put", "delete", "patch")
HttpMethod = Literal["get", "post", "put", "delete", "patch"]
AuthMethod = Literal["none", "windmill", "api_key", "basic_http", "custom_script", "signature"]
#: The modes that read their secret from a resource (``authentication_resource_path``).
RESOURCE_MODES = ("api_key", "basic_http", "signature")
#: Every server reloads its table this often even without a notification (one may be missed
#: while the notification connection is down; a reconnect also reloads).
SAFETY_RELOAD_S = 60.0
#: A request for a route the table does not have reloads it if it is older than this.
MISS_RELOAD_S = 0.1
#: How long a request waits for a starting server's first load of the table.
FIRST_LOAD_WAIT_S = 10.0

# Windmill's syntax: segments of letters, digits, ``_`` and ``-``; a segment ``:name`` is a
# path parameter. No leading ``/`` (one given is dropped) and no empty segment.
_SEGMENT = re.compile(r"[-\w]+")
_ROUTE = re.compile(r":?[-\w]+(/:?[-\w]+)*")
MAX_ROUTE_LENGTH = 255


def parse_route(route_path: str) -> tuple[str, ...]:
    """The segments of a route path (``users/:id`` is ``("users", ":id")``); a bad one is a
    400 saying what is wrong."""
    if "{" in route_path or "}" in route_path:
        raise BadInput(
            f"route_path {short(route_path)!r}: write a path parameter as :name "
            "(users/:id), not {name}"
        )
    if len(route_path) > MAX_ROUTE_LENGTH:
        raise BadInput(f"route_path is longer than {MAX_ROUTE_LENGTH} characters")
    if not _ROUTE.fullmatch(route_path):
        raise BadInput(
            f"route_path {short(route_path)!r} is not a route: segments of letters, digits, "
            "'_' and '-' separated by '/', a segment ':name' being a path parameter "
            "(e.g. orders/:id/items)"
        )
    segments = tuple(route_path.split("/"))
    names = [s[1:] for s in segments if s.startswith(":")]
    if len(names) != len(set(names)):
        raise BadInput(f"route_path {short(route_path)!r} names a path parameter twice")
    return segments


def route_shape(segments: Sequence[str], workspace_id: str | None) -> tuple[str, ...]:
    """What two routes that would answer the same URLs have in common: the segments with
    parameter names dropped, behind the workspace for a workspaced route (its URL is
    ``/api/r/<workspace>/<route>``)."""
    shape = tuple(":" if s.startswith(":") else s for s in segments)
    return (workspace_id, *shape) if workspace_id is not None else shape


class HttpRouteConfig(BaseModel):
    """An HTTP route's own fields (Windmill's ``NewHttpTrigger``/``HttpTrigger``)."""

    route_path: str = Field(
        description="The route under /api/r/ (e.g. orders/:id): segments of letters, digits, "
        "'_' and '-'; ':name' is a path parameter."
    )
    http_method: HttpMethod = Field(description="The method the route answers.")
    authentication_method: AuthMethod = Field(
        default="none",
        description="none; windmill (a Gristmill token of a member who can see the route); "
        "api_key, basic_http or signature (checked against the resource at "
        "authentication_resource_path); custom_script is not supported yet.",
    )
    authentication_resource_path: str | None = Field(
        default=None,
        description="The resource holding the key (api_key: api_key_header, api_key_secret), "
        "the credentials (basic_http: username, password) or the secret (signature: "
        "signature_providers, secret_key, authentication_config).",
    )
    request_type: Literal["sync", "async", "sync_sse"] | None = Field(
        default=None,
        description="sync: answer with the result; async: answer with the job id. "
        "sync_sse is not supported yet.",
    )
    is_async: bool | None = Field(
        default=None, description="Windmill's older flag: true is request_type async."
    )
    wrap_body: bool = Field(
        default=False, description="Pass the body as one argument 'body' rather than its fields."
    )
    raw_string: bool = Field(
        default=False, description="Also pass the body, as received, as the argument raw_string."
    )
    workspaced_route: bool = Field(
        default=False,
        description="Serve the route at /api/r/<workspace>/<route_path> rather than "
        "/api/r/<route_path>.",
    )
    allowed_origins: list[str] | None = Field(
        default=None,
        description="The origins whose pages may call the route (matched ignoring case; "
        "['*'] for any). Unset or empty: any origin.",
    )
    is_static_website: bool = Field(default=False, description="Not supported.")
    static_asset_config: dict[str, Any] | None = Field(default=None, description="Not supported.")

    @field_validator("route_path")
    @classmethod
    def _route(cls, value: str) -> str:
        value = value.strip().strip("/")
        parse_route(value)
        return value

    @field_validator("authentication_resource_path")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        # Windmill's UI sends "" for "none".
        return value or None

    @model_validator(mode="after")
    def _consistent(self) -> HttpRouteConfig:
        if self.request_type == "sync_sse":
            raise BadInput(
                "request_type sync_sse (a result streamed as server-sent events) is not "
                "supported yet: use sync or async"
            )
        if self.request_type is None:
            self.request_type = "async" if self.is_async else "sync"
        self.is_async = self.request_type == "async"
        if self.authentication_method == "custom_script":
            raise BadInput(
                "authentication_method custom_script is not supported yet: use none, "
                "windmill, api_key, basic_http or signature"
            )
        if self.is_static_website or self.static_asset_config is not None:
            raise BadInput(
                "static websites and static assets (is_static_website, static_asset_config) "
                "are not supported: an HTTP route starts a script or flow"
            )
        if self.authentication_method in RESOURCE_MODES and not self.authentication_resource_path:
            raise BadInput(
                f"authentication_method {self.authentication_method} needs "
                "authentication_resource_path: the resource holding its secret"
            )
        return self

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.route_path.split("/"))


# -- authentication by a resource ------------------------------------------------------------

_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_ENCODINGS = ("hex", "base64", "base64uri")
#: Webhook providers whose signature scheme is built in (Windmill's names).
_PROVIDERS = ("Github", "Slack", "Stripe", "Custom")
_UNSUPPORTED_PROVIDERS = ("TikTok", "Twitch", "Zoom")


@dataclasses.dataclass(frozen=True)
class ApiKeyAuth:
    header: str
    secret: str


@dataclasses.dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str


@dataclasses.dataclass(frozen=True)
class SignatureAuth:
    provider: str
    secret: str
    header: str = ""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""


Auth = ApiKeyAuth | BasicAuth | SignatureAuth


def _text_field(value: Mapping[str, Any], name: str, where: str) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text:
        raise BadInput(f"{where} has no {name} (a non-empty string)")
    return text


def check_auth_value(method: str, value: Any, where: str) -> Auth:
    """The credentials of ``method`` in a resource's ``value``; a 400 naming the missing or
    wrong field otherwise (``where`` names the resource)."""
    if not isinstance(value, dict):
        raise BadInput(f"{where} is not an object with the fields {method} needs")
    value = cast(dict[str, Any], value)
    if method == "api_key":
        return ApiKeyAuth(
            _text_field(value, "api_key_header", where), _text_field(value, "api_key_secret", where)
        )
    if method == "basic_http":
        return BasicAuth(
            _text_field(value, "username", where), _text_field(value, "password", where)
        )
    assert method == "signature"
    provider = value.get("signature_providers")
    secret = _text_field(value, "secret_key", where)
    if provider in _UNSUPPORTED_PROVIDERS:
        raise BadInput(
            f"{where}: signature_providers {provider} is not supported yet: use "
            f"{', '.join(_PROVIDERS)} (Custom takes any header, algorithm and encoding)"
        )
    if provider not in _PROVIDERS:
        raise BadInput(f"{where}: signature_providers must be one of {', '.join(_PROVIDERS)}")
    if provider != "Custom":
        return SignatureAuth(provider, secret)
    config = value.get("authentication_config")
    if not isinstance(config, dict):
        raise BadInput(
            f"{where}: a Custom signature needs authentication_config with "
            "signature_header_name, algorithm (sha1, sha256, sha512), encoding (hex, base64, "
            "base64uri) and an optional signature_prefix"
        )
    config = cast(dict[str, Any], config)
    header = _text_field(config, "signature_header_name", f"{where}'s authentication_config")
    algorithm = config.get("algorithm")
    if algorithm not in _ALGORITHMS:
        raise BadInput(f"{where}: authentication_config.algorithm must be sha1, sha256 or sha512")
    encoding = config.get("encoding")
    if encoding not in _ENCODINGS:
        raise BadInput(f"{where}: authentication_config.encoding must be hex, base64 or base64uri")
    prefix = config.get("signature_prefix") or ""
    if not isinstance(prefix, str):
        raise BadInput(f"{where}: authentication_config.signature_prefix must be a string")
    return SignatureAuth(provider, secret, header, algorithm, encoding, prefix)


class AuthRefused(Unauthorized):
    """A request a route's authentication refuses: 401 (``challenge`` is the
    ``WWW-Authenticate`` to send, if any) or 403 (``forbidden``)."""

    def __init__(self, message: str, *, challenge: str | None = None, forbidden: bool = False):
        super().__init__(message)
        self.challenge = challenge
        self.forbidden = forbidden


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None:
        raise AuthRefused(f"this route needs the header {name}")
    return value


def _sign(secret: str, algorithm: str, encoding: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), payload, _ALGORITHMS[algorithm]).digest()
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    return base64.urlsafe_b64encode(digest).decode()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def verify_request(auth: Auth, headers: Mapping[str, str], body: bytes) -> None:
    """Check a request against a route's credentials (``headers`` with lower-case names);
    :class:`AuthRefused` when it does not pass."""
    if isinstance(auth, ApiKeyAuth):
        if not _same(_header(headers, auth.header), auth.secret):
            raise AuthRefused(f"wrong API key in {auth.header}", forbidden=True)
        return
    if isinstance(auth, BasicAuth):
        challenge = 'Basic realm="Restricted Area"'
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            user, sep, password = "", "", ""
        if scheme.lower() != "basic" or not sep:
            raise AuthRefused("this route needs HTTP basic authentication", challenge=challenge)
        if not (_same(user, auth.username) & _same(password, auth.password)):
            raise AuthRefused("wrong user name or password", challenge=challenge)
        return
    signed, given = body, ""
    algorithm, encoding, prefix = "sha256", "hex", ""
    match auth.provider:
        case "Github":
            given, prefix = _header(headers, "X-Hub-Signature-256"), "sha256="
        case "Slack":
            stamp = _header(headers, "X-Slack-Request-Timestamp")
            given, prefix = _header(headers, "X-Slack-Signature"), "v0="
            signed = f"v0:{stamp}:".encode() + body
        case "Stripe":
            parts = dict(
                p.split("=", 1) for p in _header(headers, "Stripe-Signature").split(",") if "=" in p
            )
            if "t" not in parts or "v1" not in parts:
                raise AuthRefused("the Stripe-Signature header has no t= or no v1=")
            given, signed = parts["v1"], f"{parts['t']}.".encode() + body
        case _:
            given = _header(headers, auth.header)
            algorithm, encoding, prefix = auth.algorithm, auth.encoding, auth.prefix
    expected = prefix + _sign(auth.secret, algorithm, encoding, signed)
    if not _same(given.strip(), expected):
        raise AuthRefused("the request's signature does not match its body")


# -- the table of routes ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Route:
    trigger: TriggerRow
    config: HttpRouteConfig
    #: The URL's segments after /api/r/ (a workspaced route's first is its workspace).
    segments: tuple[str, ...]

    @property
    def specificity(self) -> tuple[bool, ...]:
        # A literal segment wins over a parameter at the same place (orders/new before
        # orders/:id), as in Windmill's router.
        return tuple(s.startswith(":") for s in self.segments)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if segment.startswith(":"):
                if not part:
                    return None
                params[segment[1:]] = part
            elif segment != part:
                return None
        return params


@dataclasses.dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class RouteTable:
    """The enabled routes of every workspace, by method."""

    def __init__(self, routes: Sequence[Route] = ()) -> None:
        self.by_method: dict[str, list[Route]] = {m: [] for m in HTTP_METHODS}
        for route in routes:
            self.by_method[route.config.http_method].append(route)
        for listed in self.by_method.values():
            listed.sort(key=lambda r: (r.specificity, r.trigger.workspace_id, r.trigger.path))

    @classmethod
    def from_rows(cls, rows: Sequence[TriggerRow]) -> RouteTable:
        routes = []
        for row in rows:
            try:
                config = HttpRouteConfig.model_validate(row.config)
            except ValueError as exc:  # saved by another version: skip it, loudly
                log.warning("HTTP route %s/%s skipped: %s", row.workspace_id, row.path, exc)
                continue
            prefix = (row.workspace_id,) if config.workspaced_route else ()
            routes.append(Route(row, config, (*prefix, *config.segments)))
        return cls(routes)

    def find(self, method: str, url_path: str) -> Match | list[str] | None:
        """The route answering ``method`` at ``url_path`` (what follows /api/r/) with its
        parameters; else the methods the path has routes for (a 405), or ``None`` (404)."""
        parts = url_path.strip("/").split("/")
        for route in self.by_method.get(method.lower(), ()):
            params = route.match(parts)
            if params is not None:
                return Match(route, params)
        others = [
            m.upper()
            for m, routes in self.by_method.items()
            if any(r.match(parts) is not None for r in routes)
        ]
        return others or None


# -- a call ----------------------------------------------------------------------------------

#: The argument carrying the request (method, route, path, params, query, headers), passed
#: to a runnable whose schema takes it: the ``wm_trigger`` of Windmill's v1 preprocessors.
WM_TRIGGER = "wm_trigger"


@dataclasses.dataclass(frozen=True)
class RouteRequest:
    """A request to ``/api/r/{url_path}`` as the route handler read it."""

    method: str
    url_path: str
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes
    #: The Gristmill token of the request, if any (``windmill`` authentication).
    token: str | None


def _text_answer(status: int, text: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    return HttpAnswer(status, text.encode(), "text/plain; charset=utf-8", headers or {})


def _refusal(exc: AuthRefused) -> HttpAnswer:
    if exc.forbidden:
        return _text_answer(403, f"Forbidden: {exc}")
    headers = {"WWW-Authenticate": exc.challenge} if exc.challenge else None
    return _text_answer(401, f"Not authorized: {exc}", headers)


async def _authenticate(
    services: TriggerServices, tokens: TokenResolver, found: Match, request: RouteRequest
) -> Access | None:
    """Apply the route's authentication: :class:`AuthRefused` when it refuses the request,
    Forbidden for a route whose secret its owner can no longer read. The owner's access when
    it was read (to check a secret), for the start to reuse."""
    trigger, config = found.route.trigger, found.route.config
    method = config.authentication_method
    if method == "none":
        return None
    if method == "windmill":
        try:
            actor = await tokens.resolve(request.token)
        except Unauthorized:
            raise AuthRefused(
                "this route needs a Gristmill token of a member who can see it "
                "(Authorization: Bearer <token>, or ?token=)",
                challenge="Bearer",
            ) from None
        if actor.token_workspace and actor.token_workspace != trigger.workspace_id:
            raise AuthRefused(
                f"this token is limited to workspace '{actor.token_workspace}'", forbidden=True
            )
        async with services.pool.connection() as conn:
            try:
                access = await load_access(conn, actor, trigger.workspace_id)
            except Forbidden as exc:
                raise AuthRefused(str(exc), forbidden=True) from None
        if not access.can_read(trigger.path, trigger.extra_perms):
            raise AuthRefused(
                f"{actor.username} may not call this route (it is not shared with them)",
                forbidden=True,
            )
        return None
    # The resource's secret, read as the route's owner at each call: a change to it (or to
    # the owner's rights) applies at once.
    path = config.authentication_resource_path or ""
    try:
        owner = await owner_access(services, trigger)
        value = await get_value_interpolated(services.pool, services.secrets, owner, path)
        auth = check_auth_value(method, value, f"resource {path}")
    except (NotFound, BadInput, Forbidden) as exc:
        message = f"its authentication resource cannot be used: {exc}"
        await services.report(trigger, message)
        raise Forbidden(
            f"HTTP route {trigger.path} cannot authenticate requests ({message}); its owner "
            "must fix the route"
        ) from None
    verify_request(auth, request.headers, request.body)
    return owner


async def _takes_request(services: TriggerServices, trigger: TriggerRow) -> bool:
    """Whether the runnable's schema has a ``wm_trigger`` parameter."""
    async with services.pool.connection() as conn:
        row = await runnable_row(
            conn, trigger.workspace_id, trigger.script_path, is_flow=trigger.is_flow
        )
    schema = (row or {}).get("schema") or {}
    return isinstance(schema, dict) and WM_TRIGGER in (schema.get("properties") or {})


def _request_info(request: RouteRequest, found: Match) -> dict[str, Any]:
    headers, query = dict(request.headers), dict(request.query)
    if found.route.config.authentication_method == "windmill":
        # The caller's Gristmill token must not reach a script that runs as someone else.
        for name in ("authorization", "cookie"):
            headers.pop(name, None)
        query.pop("token", None)
    return {
        "kind": "http",
        "http": {
            "route": found.route.config.route_path,
            "path": request.url_path.strip("/"),
            "method": request.method.lower(),
            "params": found.params,
            "query": query,
            "headers": headers,
        },
    }


async def _find(
    kind: HttpRouteKind, services: TriggerServices, method: str, url_path: str
) -> Match | list[str] | None:
    await kind.ready()
    found = kind.table.find(method, url_path)
    if not isinstance(found, Match):
        # A route saved a moment ago may not have reached this server's table yet (the
        # notification is on its way): read the table again, at most once a second.
        await kind.refresh(services)
        found = kind.table.find(method, url_path)
    return found


_CORS_NAMES = frozenset({"access-control-allow-origin", "vary"})


def cors_headers(config: HttpRouteConfig, origin: str | None) -> dict[str, str]:
    """What lets a page of ``origin`` read the route's answer (Windmill's rule): any origin
    unless the route's ``allowed_origins`` lists some; a listed origin is echoed."""
    allowed = config.allowed_origins
    if not allowed or "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin is not None and origin.lower() in {a.lower() for a in allowed}:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


async def preflight(
    kind: HttpRouteKind,
    services: TriggerServices,
    url_path: str,
    origin: str | None,
    method: str | None,
) -> HttpAnswer:
    """The answer to a browser's ``OPTIONS`` before a cross-origin call of ``method``."""
    found = await _find(kind, services, method or "POST", url_path)
    headers = {
        "Access-Control-Allow-Methods": ", ".join(m.upper() for m in HTTP_METHODS),
        "Access-Control-Allow-Headers": "content-type, authorization",
        "Access-Control-Max-Age": "600",
    }
    if isinstance(found, Match):
        headers.update(cors_headers(found.route.config, origin))
    else:
        # Unknown route: the call itself will say so (404/405), readable by the page.
        headers["Access-Control-Allow-Origin"] = "*"
    return HttpAnswer(204, b"", None, headers)


async def call_route(
    kind: HttpRouteKind, services: TriggerServices, tokens: TokenResolver, request: RouteRequest
) -> tuple[HttpAnswer, UUID | None]:
    """Answer a call of a route: find it (404, or 405 naming the methods the path has),
    authenticate the request by the route's mode, make the arguments from the body
    (Windmill's rules, see :func:`~gristmill.triggers.webhooks.webhook_args`, plus
    ``wm_trigger`` for a runnable that takes it), start the runnable as the route's owner;
    the answer and the job's id. Arguments the runnable does not take are a 400 before
    anything is queued."""
    found = await _find(kind, services, request.method, request.url_path)
    if found is None:
        raise NotFound(f"no HTTP route answers {request.method} /api/r/{request.url_path}")
    if isinstance(found, list):
        allowed = ", ".join(found)
        text = f"Method not allowed: /api/r/{request.url_path} answers {allowed}"
        return _text_answer(405, text, {"Allow": allowed}), None
    answer, job_id = await _run(services, tokens, found, request)
    cors = cors_headers(found.route.config, request.headers.get("origin"))
    if found.route.config.allowed_origins:
        # The route's list governs, whatever the runnable's result set.
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _CORS_NAMES}
        answer = dataclasses.replace(answer, headers={**kept, **cors})
    else:
        answer = dataclasses.replace(answer, headers={**cors, **answer.headers})
    return answer, job_id


async def _run(
    services: TriggerServices, tokens: TokenResolver, found: Match, request: RouteRequest
) -> tuple[HttpAnswer, UUID | None]:
    trigger, config = found.route.trigger, found.route.config
    try:
        owner = await _authenticate(services, tokens, found, request)
    except AuthRefused as exc:
        return _refusal(exc), None
    try:
        args = webhook_args(
            request.body,
            request.headers.get("content-type"),
            request.headers,
            request.query,
            BodyOptions(raw=config.raw_string, wrap_body=config.wrap_body),
        )
    except UnsupportedMediaType as exc:
        return _text_answer(415, f"Unsupported media type: {exc}"), None
    if WM_TRIGGER not in args and await _takes_request(services, trigger):
        args[WM_TRIGGER] = _request_info(request, found)
    try:
        started = await services.start(
            trigger,
            args,
            wait=config.request_type == "sync",
            owner=owner,
            # A client retrying a call of the route gets the job its first call started.
            idempotency_key=check_key(request.headers.get("idempotency-key")),
        )
    except (NotFound, Forbidden) as exc:
        # The runnable is gone or its owner can no longer run it: the route is broken until
        # someone fixes it, which `get` and `list` must show.
        await services.report(trigger, f"cannot start {trigger.script_path}: {exc}")
        raise
    if trigger.error is not None:
        await services.report(trigger, None)
    if started.done is None:
        return _text_answer(201, str(started.job_id)), started.job_id
    success = started.done.status == JobStatus.SUCCESS
    return result_answer(started.done.result, success), started.job_id


# -- the kind --------------------------------------------------------------------------------


class HttpRouteKind(TriggerKind):
    """HTTP routes: ``/api/w/{ws}/http_triggers/...`` to manage them, ``/api/r/...`` to call
    them."""

    name = "http"
    title = "HTTP route"
    config_model = HttpRouteConfig

    def __init__(self) -> None:
        self.table = RouteTable()
        self.loaded = asyncio.Event()
        self.loaded_at = 0.0
        self._refreshing = asyncio.Lock()

    async def check(self, services: TriggerServices, draft: TriggerDraft, access: Access) -> None:
        config = cast(HttpRouteConfig, draft.config)
        if draft.enabled:
            other = await self.collision(
                services,
                access.workspace_id,
                config.route_path,
                config.http_method,
                config.workspaced_route,
                draft.previous_path,
            )
            if other is not None:
                raise BadInput(f"route_path: {other}")
        if config.authentication_method in RESOURCE_MODES:
            path = config.authentication_resource_path
            assert path is not None  # the model requires it
            where = f"authentication_resource_path: resource {path}"
            try:
                value = await get_value_interpolated(services.pool, services.secrets, access, path)
            except NotFound:
                raise BadInput(
                    f"authentication_resource_path: no resource {path!r} that you can read in "
                    f"workspace '{access.workspace_id}' (the route reads it as you)"
                ) from None
            check_auth_value(config.authentication_method, value, where)

    async def collision(
        self,
        services: TriggerServices,
        workspace_id: str,
        route_path: str,
        http_method: str,
        workspaced: bool,
        own_path: str | None,
    ) -> str | None:
        """What an enabled route of the same method answering the same URLs is, said for a
        message; ``None`` when there is none. ``own_path``: the trigger being saved, left out."""
        shape = route_shape(parse_route(route_path), workspace_id if workspaced else None)
        for row in await enabled_triggers(services, HttpRouteKind.name):
            if row.workspace_id == workspace_id and row.path == own_path:
                continue
            try:
                other = HttpRouteConfig.model_validate(row.config)
            except ValueError:
                continue
            if other.http_method != http_method:
                continue
            other_shape = route_shape(
                other.segments, row.workspace_id if other.workspaced_route else None
            )
            if other_shape == shape:
                where = (
                    f"HTTP route {row.path}"
                    if row.workspace_id == workspace_id
                    else "an HTTP route of another workspace"
                )
                return (
                    f"{http_method.upper()} {route_path} answers the same URLs as {where} "
                    f"({other.http_method.upper()} {other.route_path}): choose another route "
                    "or method (a workspaced route is apart from the others)"
                )
        return None

    async def reload(self, services: TriggerServices) -> None:
        started = time.monotonic()
        self.table = RouteTable.from_rows(await enabled_triggers(services, HttpRouteKind.name))
        self.loaded_at = started
        self.loaded.set()

    async def refresh(self, services: TriggerServices) -> None:
        """Reload the table unless it was loaded less than :data:`MISS_RELOAD_S` ago (a
        request for an unknown route reloads it, so that scanning for routes costs at most
        ten reads a second, and a route saved a moment ago is found even before its
        notification arrives)."""
        async with self._refreshing:
            if time.monotonic() - self.loaded_at >= MISS_RELOAD_S:
                await self.reload(services)

    async def serve(self, services: TriggerServices) -> None:
        feed = services.changes(self.name)
        while True:
            try:
                await self.reload(services)
            except TRANSIENT as exc:
                log.warning("HTTP routes: database unreachable (%s); keeping the last table", exc)
            await feed.wait(SAFETY_RELOAD_S)

    async def ready(self) -> None:
        """Wait for the first load of the table (a server just started)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), FIRST_LOAD_WAIT_S)
