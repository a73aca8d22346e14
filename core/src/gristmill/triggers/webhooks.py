"""Webhooks: every script and flow runs by URL (``jobs/run/p|h|f/...`` and
``jobs/run_wait_result/...``). This module holds the pure parts, as Windmill does them:

* the request to the runnable's arguments (:func:`webhook_args`): the body by its content
  type, wrapped or raw, and the request headers and query parameters the caller asks for;
* a synchronous run's result to the HTTP answer (:func:`result_answer`): a result object may
  set the status, content type and headers (``windmill_status_code``,
  ``windmill_content_type``, ``windmill_headers``).

The routes (``gristmill.api.routes.jobs``) stay thin over these; docs/triggers.md
"Webhooks" says what a caller sees.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gristmill.errors import BadInput

__all__ = [
    "RAW_STRING",
    "WEBHOOK_METADATA",
    "WEBHOOK_TRIGGER",
    "BodyOptions",
    "HttpAnswer",
    "UnsupportedMediaType",
    "body_options",
    "header_arg_name",
    "result_answer",
    "webhook_args",
]

#: ``job.trigger_kind`` of a run requested over HTTP with an API token (Windmill's value).
WEBHOOK_TRIGGER = "webhook"
#: The argument that carries the body as text (``?raw=true``, and every text body).
RAW_STRING = "raw_string"
#: The argument that carries a CloudEvent's attributes (all but its ``data``).
WEBHOOK_METADATA = "WEBHOOK__METADATA__"

#: The query parameters that shape the arguments (Windmill's names).
_OPTION_NAMES = ("raw", "wrap_body", "include_header", "include_query")
_TEXT_TYPES = ("text/plain", "application/xml", "text/xml")
_ACCEPTED = (
    "application/json, application/cloudevents+json, application/x-www-form-urlencoded, "
    "text/plain, application/xml or text/xml"
)


class UnsupportedMediaType(BadInput):
    """A request body of a content type the run endpoints do not take (the API answers 415)."""


@dataclass(frozen=True)
class BodyOptions:
    """How a request becomes arguments: ``?raw=``, ``?wrap_body=``, ``?include_header=``,
    ``?include_query=``."""

    raw: bool = False
    wrap_body: bool = False
    include_header: tuple[str, ...] = ()
    include_query: tuple[str, ...] = ()


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise BadInput(f"query parameter {name}={value[:40]!r} must be true or false")


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def body_options(query: Mapping[str, str]) -> BodyOptions:
    """The options of a run request's query string; a flag that is not a boolean is a 400."""
    if not any(name in query for name in _OPTION_NAMES):
        return BodyOptions()
    return BodyOptions(
        raw=_flag("raw", query.get("raw")),
        wrap_body=_flag("wrap_body", query.get("wrap_body")),
        include_header=_names(query.get("include_header")),
        include_query=_names(query.get("include_query")),
    )


def header_arg_name(header: str) -> str:
    """The argument a header is passed as: lower case, ``-`` as ``_`` (``X-Signature`` is
    ``x_signature``), so that it is a valid parameter name in every language."""
    return header.lower().replace("-", "_")


def _text(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise BadInput(f"the request body is not valid UTF-8 (byte {exc.start})") from None


def _json(text: str, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the request body is not valid {what} ({exc})") from None


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower() or None


def webhook_args(
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    options: BodyOptions,
) -> dict[str, Any]:
    """The arguments of a run requested with ``body`` (Windmill's rules).

    * JSON (or no content type): an object is the arguments; any other value is wrapped as
      ``{"body": value}``; an empty body is no arguments. ``wrap_body`` wraps an object too.
    * ``application/cloudevents+json``: the event's ``data`` is the arguments (wrapped as
      ``body`` when not an object), its other attributes are ``WEBHOOK__METADATA__``.
    * ``application/x-www-form-urlencoded``: each field is a string argument.
    * ``text/plain``, ``application/xml``, ``text/xml``: no arguments but ``raw_string``.
    * Anything else (``multipart/form-data`` included, which Windmill stores in object
      storage) is refused: :class:`UnsupportedMediaType`.

    Then ``raw`` adds the body, untouched, as ``raw_string`` (to check a signature over the
    exact bytes); ``include_header`` adds those request headers (see
    :func:`header_arg_name`), ``include_query`` those query parameters, as strings. These
    added arguments take precedence over body fields of the same name.
    """
    media = _media_type(content_type)
    raw_string: str | None = None
    args: dict[str, Any]
    if media is None or media == "application/json":
        text = _text(body)
        if options.raw:
            raw_string = text
        if not text.strip():
            args = {}
        else:
            value = _json(text, "JSON")
            args = value if isinstance(value, dict) else {"body": value}
            if options.wrap_body and isinstance(value, dict):
                args = {"body": value}
    elif media == "application/cloudevents+json":
        text = _text(body)
        if options.raw:
            raw_string = text
        event = _json(text, "CloudEvents JSON")
        if not isinstance(event, dict):
            raise BadInput("an application/cloudevents+json body must be a JSON object")
        data = event.pop("data", None)
        args = dict(data) if isinstance(data, dict) else {"body": data}
        args[WEBHOOK_METADATA] = event
    elif media == "application/cloudevents-batch+json":
        raise BadInput(
            "CloudEvents batches (application/cloudevents-batch+json) are not supported; "
            "send each event on its own as application/cloudevents+json"
        )
    elif media == "application/x-www-form-urlencoded":
        text = _text(body)
        if options.raw:
            raw_string = text
        args = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        if options.wrap_body:
            args = {"body": args}
    elif media in _TEXT_TYPES:
        raw_string = _text(body)
        args = {"body": {}} if options.wrap_body else {}
    else:
        raise UnsupportedMediaType(
            f"content type {media!r} is not taken by the run endpoints: send {_ACCEPTED}"
            + (
                " (multipart/form-data needs object storage for the files, which Gristmill "
                "does not have yet)"
                if media == "multipart/form-data"
                else ""
            )
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in options.include_header:
        value = lowered.get(name.lower())
        if value is not None:
            args[header_arg_name(name)] = value
    for name in options.include_query:
        if name in query:
            args[name] = query[name]
    if raw_string is not None:
        args[RAW_STRING] = raw_string
    return args


# -- the answer of a synchronous run ---------------------------------------------------------

#: The keys by which a result controls the HTTP answer (Windmill's names).
STATUS_KEY = "windmill_status_code"
CONTENT_TYPE_KEY = "windmill_content_type"
HEADERS_KEY = "windmill_headers"
_CONTROL_KEYS = (STATUS_KEY, CONTENT_TYPE_KEY, HEADERS_KEY)
#: RFC 9110 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the server sets from the body itself: a result may not set them.
_SERVER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class HttpAnswer:
    """What a synchronous run answers: a status, a body, its content type, more headers."""

    status: int
    body: bytes
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict[str, str])


def _plain(result: bytes, success: bool) -> HttpAnswer:
    return HttpAnswer(200 if success else 422, result)


def _header_value_ok(value: str) -> bool:
    return not any(c in value for c in "\r\n\x00")


def result_answer(result: str | bytes, success: bool) -> HttpAnswer:
    """The answer of a synchronous run whose job ended with ``result`` (its JSON text).

    A result that is not an object, or an object with none of ``windmill_status_code``,
    ``windmill_content_type``, ``windmill_headers``, is the body as it is: 200, or 422 for a
    failed job. Otherwise the result controls the answer and only its ``result`` key is the
    body (the other keys are dropped, as Windmill does):

    * ``windmill_status_code`` (100-599): the status; without it 422 for a failed job, 200
      with a ``result``, 204 without one;
    * ``windmill_content_type``: the content type, and then a string ``result`` is sent as
      that text (not as a JSON string);
    * ``windmill_headers``: more response headers (``Content-Length`` and the like are the
      server's own and are left out).

    Values that cannot make an answer (a status of 42, a header that is not a string, text
    that cannot be a header) are not guessed at: the result is answered as it is (200/422),
    as when it sets nothing.
    """
    raw = result.encode() if isinstance(result, str) else result
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _plain(raw, success)
    if not isinstance(value, dict) or not any(key in value for key in _CONTROL_KEYS):
        return _plain(raw, success)
    status = value.get(STATUS_KEY)
    content_type = value.get(CONTENT_TYPE_KEY)
    headers = value.get(HEADERS_KEY)
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        return _plain(raw, success)
    if content_type is not None and (
        not isinstance(content_type, str) or not content_type or not _header_value_ok(content_type)
    ):
        return _plain(raw, success)
    extra: dict[str, str] = {}
    if headers is not None:
        if not isinstance(headers, dict):
            return _plain(raw, success)
        for name, text in headers.items():
            if not isinstance(text, str) or not _HEADER_NAME.fullmatch(name):
                return _plain(raw, success)
            if not _header_value_ok(text):
                return _plain(raw, success)
            if name.lower() not in _SERVER_HEADERS:
                extra[name] = text
    has_result = "result" in value
    if status is None:
        status = 422 if not success else 200 if has_result else 204
    body_value = value.get("result")
    if content_type is not None:
        # A content type says the result is the body's text, not JSON of it.
        if not has_result:
            body = b""
        elif isinstance(body_value, str):
            body = body_value.encode()
        else:
            body = orjson.dumps(body_value)
        return HttpAnswer(status, body, content_type, extra)
    if not has_result or status == 204 or status == 304:
        return HttpAnswer(status, b"", None, extra)
    return HttpAnswer(status, orjson.dumps(body_value), "application/json", extra)
