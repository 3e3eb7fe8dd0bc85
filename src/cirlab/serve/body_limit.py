"""An ASGI middleware that checks each request body while it streams in: its size, its pace, its text.

Starlette's multipart parser spools an upload to memory or disk as the body arrives, before the
endpoint runs, so a check made in the endpoint would come after the cost. This middleware watches
the body on its way to the application and answers for it:

* **413** at once when the declared ``Content-Length`` is over ``max_bytes``, or as soon as a body
  without one (chunked transfer) grows past it;
* **408** when no part of the body arrives for ``read_timeout`` seconds, so that a stalled client
  holds its connection (and the temp file its upload was spooled to) for at most that long. As with
  nginx's ``client_body_timeout``, the time runs between two reads, not over the whole body: a slow
  link may take longer in all, and ``max_bytes`` bounds what any client can make the server hold;
* **400** once the body has arrived when a form's text field is not valid UTF-8
  (:mod:`cirlab.serve.form_text`), since the form parser would pass it on as mojibake.

Each time, the application is then told that the client disconnected, so the form parser closes
(and so deletes) any temp file it spooled, and whatever it sends afterwards is dropped. A refusal
before the body's end also closes the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cirlab.serve.form_text import FormTextCheck
from cirlab.serve.responses import send_json_error

Scope = dict[str, Any]
Message = dict[str, Any]
#: What the application receives once the body has been refused.
DISCONNECT: Message = {"type": "http.disconnect"}


class BodyLimit:
    """Wrap ``app`` so that request bodies over ``max_bytes``, stalled for ``read_timeout`` seconds or with
    non-UTF-8 form text get a JSON 413, 408 or 400 answer."""

    def __init__(self, app: Any, max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_json_error(send, 413, "body", f"the request body has {declared} bytes; the limit is "
                                                     f"{self.max_bytes} bytes", close=True)
            return
        body = _WatchedBody(self, receive, send, FormTextCheck.for_content_type(_header(scope, b"content-type")))
        await self.app(scope, body.receive, body.send)


class _WatchedBody:
    """One request's body on its way to the application, and the answer that replaces the application's
    when the body fails a check."""

    def __init__(self, limits: BodyLimit, receive: Any, send: Any, text_check: FormTextCheck | None) -> None:
        self._limits, self._receive, self._send, self._text = limits, receive, send, text_check
        self._received = 0
        self._body_done = self._response_started = self._refused = False

    async def receive(self) -> Message:
        if self._refused:
            return DISCONNECT
        if self._body_done:
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), self._limits.read_timeout)
        except asyncio.TimeoutError:
            return await self._refuse(408, "body", f"no part of the request body arrived for "
                                                   f"{self._limits.read_timeout:g} s", close=True)
        if message["type"] != "http.request":
            self._body_done = True
            return message
        chunk, more = message.get("body", b""), message.get("more_body", False)
        self._received += len(chunk)
        if self._received > self._limits.max_bytes:
            return await self._refuse(413, "body", f"the request body has more than {self._limits.max_bytes} "
                                                   f"bytes, the limit", close=True)
        if self._text is not None:
            self._text.feed(chunk)
            if not more:
                self._text.finish()
        if not more:
            self._body_done = True
            if self._text is not None and self._text.problem is not None:
                return await self._refuse(400, *self._text.problem, close=False)
        return message

    async def send(self, message: Message) -> None:
        if self._refused:
            return
        self._response_started = self._response_started or message["type"] == "http.response.start"
        await self._send(message)

    async def _refuse(self, status: int, field: str, detail: str, close: bool) -> Message:
        """Answer ``status`` in the application's place (unless it has started its answer); tell it the client left."""
        if not self._response_started:
            await send_json_error(self._send, status, field, detail, close=close)
            self._refused = True
        return DISCONNECT


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", []) if key == name), None)


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
