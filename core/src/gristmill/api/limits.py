"""The request body limit (``GRISTMILL_MAX_BODY_SIZE_MB``), enforced while receiving.

A body whose ``Content-Length`` is over the limit is refused before a byte of it is read; a
body without one (chunked) is counted as it arrives and refused as soon as it passes the
limit. Either way the answer is ``413`` naming the limit, and no more than the limit is
ever held in memory.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, setting: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = (
            f"Payload too large: the request body is over the limit of {max_bytes} bytes "
            f"({setting}); send less data, or pass large data by reference"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await PlainTextResponse(self.message, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app: FastAPI re-raises HTTPException from its body
                    # reading, and the app's handler answers it (api/errors.py).
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
