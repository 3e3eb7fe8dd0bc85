"""Who may use the service: which ``Host`` names it answers, and the access token it may require.

**Host names.** A service on a loopback address is reachable from the browser of anyone who uses the
machine, and through DNS rebinding from any web page they open: a page of ``evil.example`` whose name
is made to resolve to 127.0.0.1 talks to the service as its own origin. Such requests carry the
attacker's name in their ``Host`` header, so on a loopback address only loopback names are answered
(``localhost``, ``127.0.0.1``, ``[::1]`` and the ``--host`` address itself), plus the names given with
``--allowed-host``; anything else gets Starlette's ``TrustedHostMiddleware`` answer, 400 "Invalid host
header". On another address any name is answered unless ``--allowed-host`` lists them.

**Token.** With a token, every request except the page, its static files, ``/health`` and the OpenAPI
documentation must present it: ``Authorization: Bearer TOKEN``, or the ``cirlab_token`` cookie that
the page sets when it is opened as ``/#token=TOKEN`` (or asks for when the API answers 401), since an
``<img>`` cannot send a header. Without one the answer is 401. The comparison takes constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from starlette.requests import cookie_parser

from cirlab.errors import ConfigError
from cirlab.serve.responses import send_json_error

#: Host names of the loopback interface, as they appear in a ``Host`` header (the port aside).
LOOPBACK_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
#: Environment variable read by ``cirlab serve`` when ``--token`` is not given.
TOKEN_ENV = "CIRLAB_SERVE_TOKEN"
#: Cookie in which the page keeps the token (images are loaded by ``<img>``, which sends no header).
TOKEN_COOKIE = "cirlab_token"
#: What a token may hold: RFC 6750's token68 characters, safe in a header and in a cookie.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
#: What ``--allowed-host`` may name: ``*``, a host name or IPv4 address (optionally ``*.domain``), ``[IPv6]``.
HOST_NAME_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
                               r"|\[[0-9a-f:.]+\]")


def is_loopback(host: str) -> bool:
    """Whether the listening address ``host`` is on the loopback interface (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str] | None:
    """The ``Host`` names a service listening on ``host`` answers, or ``None`` for any name.

    On a loopback address: the loopback names, ``host`` itself and ``extra``. On another address:
    any name when ``extra`` is empty, else the loopback names, ``host`` (unless it is 0.0.0.0 or ::)
    and ``extra``. Each of ``extra`` is a name without a port: ``example.org``, ``*.example.org``,
    ``192.168.1.5``, ``[fe80::1]``, or ``*`` for any.
    """
    names = [check_host_name(name) for name in extra]
    if "*" in names or (not names and not is_loopback(host)):
        return None
    own = [] if _is_unspecified(host) else [_as_host_header(host)]
    return list(dict.fromkeys([*LOOPBACK_NAMES, *own, *names]))


def check_host_name(name: str) -> str:
    """``name`` in lower case when ``--allowed-host`` can take it; otherwise a :class:`ConfigError` saying why."""
    cleaned = name.strip().lower()
    if not HOST_NAME_PATTERN.fullmatch(cleaned):
        hint = " (give the name without a port)" if ":" in cleaned and not cleaned.startswith("[") else ""
        raise ConfigError(f"--allowed-host {name!r} is not a host name, an IP address or '*.domain'{hint}")
    return cleaned


def check_token(token: str) -> str:
    """``token`` when usable as a bearer token; otherwise a :class:`ConfigError` saying why."""
    if not token:
        raise ConfigError("--token is empty")
    if not TOKEN_PATTERN.fullmatch(token):
        raise ConfigError("--token may hold only letters, digits and - . _ ~ + / (then = at the end); "
                          "e.g. python -c \"import secrets; print(secrets.token_urlsafe())\"")
    return token


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning for a service that anyone on the network may use (a non-loopback ``host``, no token)."""
    if token or is_loopback(host):
        return None
    return (f"listening on {host}, beyond this machine, without --token: anyone who can reach it can search and "
            f"read the gallery's images (set --token or {TOKEN_ENV})")


class TokenCheck:
    """ASGI middleware: requests outside ``public_paths`` (and ``/static/``) need ``token``, else 401."""

    def __init__(self, app: Any, token: str, public_paths: Sequence[str]) -> None:
        self.app = app
        self._token = check_token(token).encode()
        self._public = frozenset(public_paths)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        presented = _presented_token(scope)
        if presented is not None and hmac.compare_digest(presented.encode(), self._token):
            await self.app(scope, receive, send)
            return
        problem = "the access token is wrong" if presented is not None else "this service needs an access token"
        await send_json_error(send, 401, "authorization",
                              f"{problem}: send 'Authorization: Bearer TOKEN' (or open the page as /#token=TOKEN)",
                              headers=[(b"www-authenticate", b'Bearer realm="cirlab"')])

    def _is_public(self, path: str) -> bool:
        return path in self._public or path.startswith("/static/")


def _presented_token(scope: dict[str, Any]) -> str | None:
    """The token of the ``Authorization: Bearer`` header, else of the page's cookie, else ``None``."""
    cookies = ""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
        elif name == b"cookie":
            cookies = f"{cookies}; {value.decode('latin-1')}"
    cookie = cookie_parser(cookies).get(TOKEN_COOKIE)
    return unquote(cookie) if cookie else None


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _as_host_header(host: str) -> str:
    """``host`` as a ``Host`` header names it: IPv6 addresses in brackets, names in lower case."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower()
    return f"[{address}]" if address.version == 6 else str(address)
