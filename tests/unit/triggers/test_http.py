"""The pure parts of HTTP routes: route syntax and shapes, the configuration's rules, the
route table's matching, and each authentication's check of a request."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.triggers.http import (
    AuthRefused,
    HttpRouteConfig,
    Match,
    RouteTable,
    check_auth_value,
    cors_headers,
    parse_route,
    route_shape,
    verify_request,
)
from gristmill.triggers.kinds import TriggerRow


def test_route_syntax_and_shape() -> None:
    assert parse_route("orders/:id/items") == ("orders", ":id", "items")
    assert route_shape(parse_route("a/:x"), None) == route_shape(parse_route("a/:y"), None)
    assert route_shape(parse_route("a/:x"), "main") == ("main", "a", ":")
    for bad, words in (
        ("a/{id}", ":name"),
        ("a//b", "not a route"),
        ("a b", "not a route"),
        ("", "not a route"),
        ("a/:x/:x", "twice"),
        ("a/" * 200, "longer"),
    ):
        with pytest.raises(BadInput, match=words):
            parse_route(bad)


def config(**fields: Any) -> HttpRouteConfig:
    return HttpRouteConfig.model_validate({"route_path": "a", "http_method": "post", **fields})


def test_config_rules() -> None:
    assert config(route_path="/a/:b/").route_path == "a/:b"
    assert (config().request_type, config().is_async) == ("sync", False)
    assert config(is_async=True).request_type == "async"
    assert config(request_type="async", is_async=False).is_async is True
    assert config(authentication_resource_path="").authentication_resource_path is None
    for fields, words in (
        ({"request_type": "sync_sse"}, "sync_sse"),
        ({"authentication_method": "custom_script"}, "not supported"),
        ({"authentication_method": "basic_http"}, "authentication_resource_path"),
        ({"static_asset_config": {"s3": "x"}}, "static"),
    ):
        with pytest.raises(ValueError, match=words):
            config(**fields)


def row(path: str, workspace: str = "main", **fields: Any) -> TriggerRow:
    now = dt.datetime.now(dt.UTC)
    return TriggerRow(
        workspace_id=workspace,
        kind="http",
        path=path,
        script_path="u/a/s",
        is_flow=False,
        summary=None,
        description=None,
        config={"http_method": "post", **fields},
        mode="enabled",
        error=None,
        error_at=None,
        server_id=None,
        last_server_ping=None,
        edited_by="a",
        email="a@x",
        edited_at=now,
        extra_perms={},
    )


def test_table_matching() -> None:
    table = RouteTable.from_rows(
        [
            row("u/a/param", route_path="orders/:id"),
            row("u/a/literal", route_path="orders/new"),
            row("u/a/get", route_path="orders/:id", http_method="get"),
            row("u/a/ws", route_path="orders/:id", workspaced_route=True),
            row("u/a/broken", route_path="{bad}"),  # skipped, not fatal
        ]
    )
    found = table.find("POST", "orders/7")
    assert isinstance(found, Match) and found.route.trigger.path == "u/a/param"
    assert found.params == {"id": "7"}
    found = table.find("POST", "/orders/new/")
    assert isinstance(found, Match) and found.route.trigger.path == "u/a/literal"
    found = table.find("post", "main/orders/7")
    assert isinstance(found, Match) and found.route.trigger.path == "u/a/ws"
    assert table.find("GET", "orders/new") is not None
    assert table.find("PUT", "orders/7") == ["GET", "POST"]
    assert table.find("POST", "orders") is None
    assert table.find("POST", "orders/7/more") is None


def sign(secret: str, payload: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(secret.encode(), payload, digest).hexdigest()


def test_api_key_and_basic() -> None:
    auth = check_auth_value("api_key", {"api_key_header": "X-Key", "api_key_secret": "k"}, "r")
    verify_request(auth, {"x-key": "k"}, b"")
    with pytest.raises(AuthRefused) as refused:
        verify_request(auth, {"x-key": "no"}, b"")
    assert refused.value.forbidden
    with pytest.raises(AuthRefused, match="X-Key"):
        verify_request(auth, {}, b"")
    auth = check_auth_value("basic_http", {"username": "u", "password": "p:w"}, "r")
    good = "Basic " + base64.b64encode(b"u:p:w").decode()
    verify_request(auth, {"authorization": good}, b"")
    for header in ({}, {"authorization": "Basic !!"}, {"authorization": "Bearer x"}):
        with pytest.raises(AuthRefused) as refused:
            verify_request(auth, header, b"")
        assert refused.value.challenge and refused.value.challenge.startswith("Basic")
    with pytest.raises(BadInput, match="password"):
        check_auth_value("basic_http", {"username": "u"}, "r")


def test_signatures() -> None:
    body = b'{"a":1}'
    custom = check_auth_value(
        "signature",
        {
            "signature_providers": "Custom",
            "secret_key": "s",
            "authentication_config": {
                "signature_header_name": "X-Sig",
                "algorithm": "sha512",
                "encoding": "base64",
            },
        },
        "r",
    )
    good = base64.b64encode(hmac.new(b"s", body, hashlib.sha512).digest()).decode()
    verify_request(custom, {"x-sig": good}, body)
    with pytest.raises(AuthRefused, match="does not match"):
        verify_request(custom, {"x-sig": good}, body + b" ")
    github = check_auth_value(
        "signature", {"signature_providers": "Github", "secret_key": "g"}, "r"
    )
    verify_request(github, {"x-hub-signature-256": "sha256=" + sign("g", body)}, body)
    slack = check_auth_value("signature", {"signature_providers": "Slack", "secret_key": "k"}, "r")
    signature = "v0=" + sign("k", b"v0:123:" + body)
    verify_request(
        slack, {"x-slack-signature": signature, "x-slack-request-timestamp": "123"}, body
    )
    stripe = check_auth_value(
        "signature", {"signature_providers": "Stripe", "secret_key": "t"}, "r"
    )
    verify_request(stripe, {"stripe-signature": f"t=9,v1={sign('t', b'9.' + body)}"}, body)
    with pytest.raises(AuthRefused):
        verify_request(stripe, {"stripe-signature": "t=9"}, body)
    for value, words in (
        ({"signature_providers": "Zoom", "secret_key": "s"}, "not supported"),
        ({"signature_providers": "Nope", "secret_key": "s"}, "one of"),
        ({"signature_providers": "Custom", "secret_key": "s"}, "authentication_config"),
        ({"signature_providers": "Github"}, "secret_key"),
    ):
        with pytest.raises(BadInput, match=words):
            check_auth_value("signature", value, "r")


def test_cors() -> None:
    assert cors_headers(config(), "https://a.test") == {"Access-Control-Allow-Origin": "*"}
    assert cors_headers(config(allowed_origins=["*"]), None)["Access-Control-Allow-Origin"] == "*"
    listed = config(allowed_origins=["https://A.test"])
    assert cors_headers(listed, "https://a.test")["Access-Control-Allow-Origin"] == "https://a.test"
    assert "Access-Control-Allow-Origin" not in cors_headers(listed, "https://b.test")
    assert "Access-Control-Allow-Origin" not in cors_headers(listed, None)
