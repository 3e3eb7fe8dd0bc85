"""An ASGI middleware that refuses request bodies over a byte limit with 413, before anything parses them.

Starlette's multipart parser spools a whole upload to memory or disk before the endpoint runs, so a
limit checked in the endpoint would come after the cost. This middleware answers 413 at once when
the declared ``Content-Length`` is over the limit; for a body without one (chunked transfer) it
reads at most the limit, answers 413 when more arrives, and otherwise replays what it read to the
application.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class BodySizeLimit:
    """Wrap ``app`` so that HTTP request bodies larger than ``max_bytes`` get a 413 JSON answer."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"the request body has {declared} bytes")
            return
        if declared is not None:
            await self.app(scope, receive, send)  # the server delivers exactly the declared bytes
            return
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._refuse(send, f"the request body has more than {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, what: str) -> None:
        body = json.dumps({"detail": f"{what}; the limit is {self.max_bytes} bytes", "field": "body"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
