"""The OpenAPI document describes every answer: the web UI's client is generated from it.

Each operation's 2xx response is a model (a ``$ref`` to a component with properties, or a
list of them), plain text, or a JSON scalar. Only a script's own result may be any JSON,
and only on the operations that return it.
"""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.api.app import openapi_document

#: Operations whose 2xx body is a script's result, which may be any JSON.
RESULT_OPERATIONS = {
    "jobs-run_wait_result_by_path",
    "jobs-run_wait_result_by_path_get",
    "jobs-run_wait_result_by_hash",
    "jobs-run_wait_result_preview",
    "jobs-run_wait_result_flow_preview",
    "jobs-run_wait_result_flow_by_path",
    "flows-test_flow_step_wait_result",
    "jobs-run_inline_preview",
    "jobs-get_completed_result",
    # A resource's value is the user's JSON, as a result is.
    "resources-get_resource_value",
    "resources-get_resource_value_interpolated",
    # An HTTP route's sync answer is its runnable's result.
    *(f"http_triggers-call_http_route_{m}" for m in ("get", "post", "put", "delete", "patch")),
}
#: Operations answering one JSON value that is not an object (a string, a number or null),
#: as Windmill's clients expect.
JSON_VALUE_OPERATIONS = {"jobs-get_root_job_id", "job_metrics-get_job_progress"}


def _document() -> dict[str, Any]:
    return openapi_document()


DOCUMENT = _document()
OPERATIONS = [
    (path, method, op)
    for path, item in DOCUMENT["paths"].items()
    for method, op in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
]


def _component(ref: str) -> dict[str, Any]:
    name = ref.removeprefix("#/components/schemas/")
    return DOCUMENT["components"]["schemas"][name]


def _is_model(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return bool(_component(schema["$ref"]).get("properties"))
    if "oneOf" in schema or "anyOf" in schema:
        return all(_is_model(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    if schema.get("type") == "array":
        # A list of names (Windmill's listnames, list_paths) is a list of strings.
        items = schema.get("items", {})
        return items.get("type") == "string" or _is_model(items)
    if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
        # A map such as an ACL ({"u/alice": true}) or `file_resource_type_to_file_ext_map`.
        return _is_model(schema["additionalProperties"])
    # A JSON string too: `variables/get_value` answers one (what Windmill's clients parse).
    return schema.get("type") in {"boolean", "integer", "number", "string"}


def test_operations_found() -> None:
    assert len(OPERATIONS) >= 30


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
def test_every_2xx_response_is_described(path: str, method: str, op: dict[str, Any]) -> None:
    successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
    assert successes, f"{method.upper()} {path} documents no 2xx response"
    for code, response in successes.items():
        content = response.get("content", {})
        assert content, f"{method.upper()} {path} {code} has no content"
        for media, body in content.items():
            schema = body.get("schema", {})
            if media == "text/plain":
                assert schema.get("type") == "string", (path, code)
            elif op["operationId"] in RESULT_OPERATIONS | JSON_VALUE_OPERATIONS:
                continue
            else:
                assert _is_model(schema), f"{method.upper()} {path} {code}: {schema}"


#: Operations that answer without a token.
PUBLIC_OPERATIONS = {
    "meta-get_version",
    # Probes of load balancers and Kubernetes.
    "health-get_liveness",
    "health-get_readiness",
    "auth-login",
    # Signed approval links: the signature is the key.
    "jobs-resume_suspended_job_get",
    "jobs-resume_suspended_job_post",
    "jobs-cancel_suspended_job_get",
    "jobs-cancel_suspended_job_post",
    "jobs-get_suspended_job_flow",
}


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
def test_every_error_is_described(path: str, method: str, op: dict[str, Any]) -> None:
    """Errors are plain text with their status declared (schemathesis checks each answer
    against them); FastAPI's 422 is never sent (validation errors are 400)."""
    responses = op["responses"]
    for code in ("400", "413", "503"):
        assert responses[code]["content"]["text/plain"]["schema"] == {"type": "string"}
    if op["operationId"] in PUBLIC_OPERATIONS:
        assert "security" not in op and "401" not in responses
    else:
        assert op["security"] == [{"bearer": []}], f"{method.upper()} {path} needs a token"
        assert "401" in responses and "404" in responses
    if "422" in responses:
        assert op["operationId"] in RESULT_OPERATIONS - {"jobs-get_completed_result"}
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
