"""Error answers sent by the service's ASGI middleware, in the shape of the app's own errors.

Middleware answers before (or instead of) the application, so it cannot raise the app's
:class:`~cirlab.serve.validation.RequestError`; it sends the same ``{"detail", "field"}`` body itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


async def send_json_error(send: Any, status: int, field: str, detail: str, *, close: bool = False,
                          headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete ``status`` response with ``{"detail": detail, "field": field}``.

    ``close`` adds ``Connection: close``: for a request whose body was not read to its end, so that
    the server does not try to read the rest as the next request.
    """
    body = json.dumps({"detail": detail, "field": field}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
