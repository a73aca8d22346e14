"""What the OpenAPI document says beyond the routes' own models: the error answers of every
operation (plain text, as Windmill's) and which operations need a token.

Clients generated from the document, and schemathesis in the test suite, hold the API to it:
every status an operation can answer is declared, and none it cannot.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["ERROR_RESPONSES", "PUBLIC_ERROR_RESPONSES", "install_openapi"]


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


#: The errors any operation may answer (api/errors.py writes them).
PUBLIC_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _text("`Bad request: ...`: the request, a field of it, or a value it names is invalid."),
    413: _text(
        "`Payload too large: ...`: the body, a script or the arguments are over a limit "
        "(GRISTMILL_MAX_BODY_SIZE_MB, GRISTMILL_MAX_SCRIPT_SIZE_KB, GRISTMILL_MAX_ARGS_SIZE_MB)."
    ),
    503: _text("`Service unavailable: ...`: the database cannot be reached; retry."),
}
#: The errors of operations that need a token (routers of ``AuthenticatedRoute``s) and name
#: a resource.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PUBLIC_ERROR_RESPONSES,
    401: _text("`Not authorized: ...`: no valid token (checked before anything else)."),
    403: _text(
        "`Forbidden: ...`: the token's owner is not a member of the workspace, lacks the role "
        "or the permission on the item, or the token's scopes do not allow the operation."
    ),
    404: _text("`Not found: ...`: the workspace or the item does not exist."),
}

_SECURITY_SCHEME = "bearer"


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the bearer token and drop FastAPI's 422 answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for item in document.get("paths", {}).values():
            for operation in item.values():
                responses = operation.get("responses", {})
                # Request validation errors are answered 400 in plain text (api/errors.py);
                # FastAPI's 422 is never sent (a 422 a route declares itself stays).
                if _is_fastapi_validation(responses.get("422")):
                    del responses["422"]
                # The routers of authenticated routes (AuthenticatedRoute) are the ones
                # included with ERROR_RESPONSES, which alone declare 401.
                if "401" in responses:
                    operation["security"] = [{_SECURITY_SCHEME: []}]
        components = document.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        components["securitySchemes"] = {
            _SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "A login token, SUPERADMIN_SECRET or a job's WM_TOKEN (also "
                "accepted as the `token` cookie or `?token=`).",
            }
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _is_fastapi_validation(response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")
