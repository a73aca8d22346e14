"""Webhooks' pure parts: a request to arguments, a result to the HTTP answer, webhook-scoped
tokens (``jobs:run:scripts:<path>``, Windmill's older ``run:script/<path>``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from gristmill.api.deps import route_scope
from gristmill.auth.permissions import parse_scope, scope_allows
from gristmill.auth.tokens import check_scopes
from gristmill.errors import BadInput
from gristmill.triggers.webhooks import (
    BodyOptions,
    UnsupportedMediaType,
    body_options,
    result_answer,
    webhook_args,
)

JSON = "application/json"


def args(
    body: bytes | str,
    content_type: str | None = JSON,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    q = query or {}
    return webhook_args(raw, content_type, headers or {}, q, body_options(q))


# -- the request's arguments ---------------------------------------------------------------


def test_a_json_object_is_the_arguments_and_other_values_are_wrapped() -> None:
    assert args('{"a": 1}') == {"a": 1}
    assert args("[1, 2]") == {"body": [1, 2]}
    assert args('"text"') == {"body": "text"}
    assert args("null") == {"body": None}
    assert args("") == {} and args(b"", None) == {}
    assert args('{"a": 1}', None) == {"a": 1}
    assert args('{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


def test_wrap_body_wraps_an_object_too() -> None:
    assert args('{"a": 1}', query={"wrap_body": "true"}) == {"body": {"a": 1}}


def test_raw_passes_the_body_untouched_as_raw_string() -> None:
    body = '{ "b":2,  "a" : 1 }'
    assert args(body, query={"raw": "true"}) == {"a": 1, "b": 2, "raw_string": body}
    assert args("", query={"raw": "true"}) == {"raw_string": ""}


def test_text_and_xml_bodies_are_raw_string_only() -> None:
    assert args("hello", "text/plain") == {"raw_string": "hello"}
    assert args("<a/>", "application/xml") == {"raw_string": "<a/>"}
    assert args("<a/>", "text/xml; charset=utf-8") == {"raw_string": "<a/>"}


def test_a_form_gives_string_fields() -> None:
    form = "name=Ada&n=3&empty="
    kind = "application/x-www-form-urlencoded"
    assert args(form, kind) == {"name": "Ada", "n": "3", "empty": ""}
    assert args(form, kind, query={"raw": "1"})["raw_string"] == form


def test_a_cloudevent_gives_its_data_and_its_attributes() -> None:
    event = {"specversion": "1.0", "id": "x1", "type": "t", "source": "/s", "data": {"n": 1}}
    got = args(orjson.dumps(event), "application/cloudevents+json")
    assert got == {
        "n": 1,
        "WEBHOOK__METADATA__": {"specversion": "1.0", "id": "x1", "type": "t", "source": "/s"},
    }
    scalar = args(orjson.dumps({**event, "data": 1.5}), "application/cloudevents+json")
    assert scalar["body"] == 1.5
    with pytest.raises(BadInput, match="batches"):
        args("[]", "application/cloudevents-batch+json")


def test_chosen_headers_and_query_parameters_become_arguments() -> None:
    got = args(
        '{"a": 1, "x_signature": "forged"}',
        headers={"x-signature": "sig", "x-other": "no"},
        query={"include_header": "X-Signature,X-Missing", "include_query": "q,absent", "q": "v"},
    )
    assert got == {"a": 1, "x_signature": "sig", "q": "v"}


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{", JSON, "not valid JSON"),
        (b"\xff", JSON, "not valid UTF-8"),
        ("[1]", "application/cloudevents+json", "must be a JSON object"),
    ],
)
def test_bad_bodies_are_refused(body: str | bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        args(body, content_type)


def test_other_content_types_are_unsupported_media() -> None:
    with pytest.raises(UnsupportedMediaType, match="application/octet-stream"):
        args(b"\x00", "application/octet-stream")
    with pytest.raises(UnsupportedMediaType, match="object storage"):
        args(b"--x", "multipart/form-data; boundary=x")


def test_options_must_be_booleans() -> None:
    assert body_options({}) == BodyOptions()
    assert body_options({"raw": "True", "include_header": " a , b,"}) == BodyOptions(
        raw=True, include_header=("a", "b")
    )
    with pytest.raises(BadInput, match="raw='yes' must be true or false"):
        body_options({"raw": "yes"})


# -- the answer of a synchronous run -------------------------------------------------------


def answer(result: Any, success: bool = True) -> tuple[int, bytes, str | None, dict[str, str]]:
    a = result_answer(orjson.dumps(result), success)
    return a.status, a.body, a.content_type, a.headers


def test_a_plain_result_is_answered_as_it_is() -> None:
    assert answer({"a": 1}) == (200, b'{"a":1}', JSON, {})
    assert answer([1]) == (200, b"[1]", JSON, {})
    assert answer({"error": {"message": "boom"}}, success=False)[0] == 422


def test_a_result_sets_status_content_type_and_headers() -> None:
    result = {
        "windmill_status_code": 201,
        "windmill_headers": {"X-Id": "7", "Content-Length": "999"},
        "result": {"created": True},
        "dropped": 1,
    }
    assert answer(result) == (201, b'{"created":true}', JSON, {"X-Id": "7"})
    text = {"windmill_content_type": "text/html", "result": "<b>hi</b>"}
    assert answer(text) == (200, b"<b>hi</b>", "text/html", {})
    as_json_text = {"windmill_content_type": "text/csv", "result": [1, 2]}
    assert answer(as_json_text)[1] == b"[1,2]"


def test_status_defaults_without_a_status_code() -> None:
    assert answer({"windmill_headers": {"A": "b"}})[:2] == (204, b"")
    assert answer({"windmill_headers": {}, "result": 1})[:2] == (200, b"1")
    assert answer({"windmill_headers": {}, "result": 1}, success=False)[0] == 422
    assert answer({"windmill_status_code": 401})[:3] == (401, b"", None)


@pytest.mark.parametrize(
    "bad",
    [
        {"windmill_status_code": 42},
        {"windmill_status_code": 600},
        {"windmill_status_code": "200"},
        {"windmill_status_code": True},
        {"windmill_headers": {"A": 1}},
        {"windmill_headers": ["A"]},
        {"windmill_headers": {"Bad Name": "v"}},
        {"windmill_headers": {"A": "line\r\nInjected: 1"}},
        {"windmill_content_type": 5},
        {"windmill_content_type": ""},
    ],
)
def test_values_that_cannot_make_an_answer_leave_the_result_as_it_is(bad: dict[str, Any]) -> None:
    result = {**bad, "result": "x"}
    assert answer(result) == (200, orjson.dumps(result), JSON, {})


# -- webhook-scoped tokens -----------------------------------------------------------------


def test_webhook_scopes_are_accepted_at_token_creation() -> None:
    scopes = [
        "jobs:run:scripts:f/hooks/echo",
        "jobs:run:flows:f/hooks/*",
        "jobs:run:scripts",
        "run:script/u/admin/x",
        "run:flow/f/a/b",
    ]
    assert check_scopes(scopes) == scopes
    with pytest.raises(BadInput, match="invalid scope"):
        check_scopes(["run:script/"])
    with pytest.raises(BadInput, match="invalid scope"):
        check_scopes(["run:job/f/a"])


def test_scopes_parse_with_their_runnable_kind() -> None:
    legacy = parse_scope("run:script/f/a/b")
    assert legacy is not None and (legacy.domain, legacy.action) == ("jobs", "run")
    assert (legacy.kind, legacy.pattern) == ("scripts", "f/a/b")
    new = parse_scope("jobs:run:flows:f/a/*")
    assert new is not None and (new.kind, new.pattern) == ("flows", "f/a/*")
    old = parse_scope("jobs:run:f/a/b")
    assert old is not None and (old.kind, old.pattern) == (None, "f/a/b")
    assert parse_scope("nonsense") is None


@pytest.mark.parametrize("scope", ["jobs:run:scripts:f/a/hook", "run:script/f/a/hook"])
def test_a_script_scope_runs_that_script_only(scope: str) -> None:
    scopes = (scope,)
    assert scope_allows(scopes, "jobs", "run", "f/a/hook", kind="scripts")
    assert not scope_allows(scopes, "jobs", "run", "f/a/other", kind="scripts")
    assert not scope_allows(scopes, "jobs", "run", "f/a/hook", kind="flows")
    # A preview names no path: refused.
    assert not scope_allows(scopes, "jobs", "run", None, kind="scripts")
    # A run by hash is allowed to look, then checked on the version's path.
    assert scope_allows(scopes, "jobs", "run", None, kind="scripts", any_path=True)
    assert not scope_allows(scopes, "jobs", "run", None, kind="flows", any_path=True)
    # It follows the jobs it starts, and nothing else.
    assert scope_allows(scopes, "jobs", "read", None, follows_run=True)
    assert not scope_allows(scopes, "jobs", "read", None)
    assert not scope_allows(scopes, "scripts", "read", "f/a/hook")
    assert not scope_allows(scopes, "jobs", "write", None)


def test_older_scopes_keep_their_meaning() -> None:
    assert scope_allows(("jobs:run",), "jobs", "run", "f/a/x", kind="flows")
    assert scope_allows(("jobs:run:f/a/*",), "jobs", "run", "f/a/x", kind="scripts")
    assert scope_allows(("jobs:run:f/a/*",), "jobs", "run", "f/a/x", kind="flows")
    assert scope_allows(("scripts:write",), "scripts", "read", "f/a/x")
    assert scope_allows(("*:*",), "jobs", "run", None, kind="scripts")
    assert scope_allows(("jobs:run:scripts",), "jobs", "run", "f/any", kind="scripts")


def test_routes_name_their_scope() -> None:
    post, get = {"POST"}, {"GET"}
    by_path = route_scope("/w/{workspace}/jobs/run/p/{path:path}", post)
    assert (by_path.domain, by_path.action, by_path.kind) == ("jobs", "run", "scripts")
    by_hash = route_scope("/w/{workspace}/jobs/run_wait_result/h/{hash}", post)
    assert by_hash.kind == "scripts" and by_hash.by_hash
    flow = route_scope("/w/{workspace}/jobs/run_wait_result/f/{path:path}", post)
    assert flow.kind == "flows" and not flow.by_hash
    assert route_scope("/w/{workspace}/jobs/run/preview_flow", post).kind == "flows"
    assert route_scope("/w/{workspace}/jobs_u/completed/get_result/{id}", get).follows_run
    assert route_scope("/w/{workspace}/jobs_u/get/{id}", get).follows_run
    assert not route_scope("/w/{workspace}/jobs/list", get).follows_run
    assert not route_scope("/w/{workspace}/jobs_u/queue/cancel/{id}", post).follows_run
