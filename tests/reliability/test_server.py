"""The search service under clients that stall: nothing they sent is held longer than the body timeout.

A client that sends the headers and part of a body, then nothing, used to keep its connection and the
temp file its upload was spooled to for as long as it liked (20 such uploads of 7 MiB held 140 MB).
Here the server runs on a loopback port with a body timeout of half a second; each stalled request
must be answered 408 with the connection closed, every temp file of its upload must be closed (and so
deleted), and the service must go on answering. The form parser's spool size is lowered so that the
partial upload is on disk, as a large one would be. Every wait is on a condition, with a deadline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from tempfile import SpooledTemporaryFile

import httpx
import pytest
from starlette import formparsers

from cirlab.serve import BackgroundServer, ServeLimits, create_app
from tests.search.conftest import encoder, gallery, image_gallery  # noqa: F401 - the service's fixtures
from tests.serve.conftest import data_root, engine, query_cache  # noqa: F401

BODY_TIMEOUT_S = 0.5
#: How long a test waits for what must happen (far beyond the body timeout; reached only on failure).
DEADLINE_S = 30.0
DECLARED_BYTES = 7 * 1024 * 1024
BOUNDARY = "stalled-upload"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.01)


@pytest.fixture
def spooled(monkeypatch) -> list[SpooledTemporaryFile]:
    """Every temp file the form parser spools an upload to; they move to disk after 64 bytes."""
    created: list[SpooledTemporaryFile] = []

    class Recorded(SpooledTemporaryFile):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.on_disk = False
            created.append(self)

        def rollover(self) -> None:
            super().rollover()
            self.on_disk = True

    monkeypatch.setattr(formparsers, "SpooledTemporaryFile", Recorded)
    monkeypatch.setattr(formparsers.MultiPartParser, "spool_max_size", 64)
    return created


@pytest.fixture(scope="module")
def server(engine, data_root):  # noqa: F811 - pytest fixtures
    limits = ServeLimits(body_timeout=BODY_TIMEOUT_S)
    with BackgroundServer(create_app(engine, data_root, limits=limits)) as running:
        yield running


def partial_upload() -> bytes:
    """The start of a multipart search request: the text field, then an image part cut after 4 KiB."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nis red\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"reference_image\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n" + b"\x00" * 4096


def stall(server, chunked: bool) -> socket.socket:
    """Open a connection, send the headers and part of the body in one write, then send nothing more."""
    head = ["POST /api/search HTTP/1.1", f"Host: {server.host}:{server.port}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    body = partial_upload()
    if chunked:
        head.append("Transfer-Encoding: chunked")
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n"
    else:
        head.append(f"Content-Length: {DECLARED_BYTES}")
    connection = socket.create_connection((server.host, server.port), timeout=DEADLINE_S)
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    with connection:
        while chunk := connection.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_stalled_uploads_are_answered_408_and_their_temp_files_removed(server, spooled, chunked):
    connections = [stall(server, chunked) for _ in range(5)]
    answers = [read_until_closed(connection) for connection in connections]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"connection: close" in answer.lower()
        assert answer.endswith(b'{"detail": "no part of the request body arrived for 0.5 s", "field": "body"}')
    assert len(spooled) == 5 and all(file.on_disk for file in spooled)  # each upload had reached the disk
    wait_until(lambda: all(file.closed for file in spooled), "every spooled temp file is closed")
    assert httpx.get(f"{server.url}/health", timeout=DEADLINE_S).status_code == 200


def test_a_complete_upload_is_not_cut_and_its_temp_file_removed(server, spooled, data_root):  # noqa: F811
    image = (data_root / "images" / "T002.png").read_bytes()
    response = httpx.post(f"{server.url}/api/search", data={"text": "is red"}, timeout=DEADLINE_S,
                          files={"reference_image": ("T002.png", image, "image/png")})
    assert response.status_code == 200 and len(response.json()["results"]) == 10
    assert len(spooled) == 1 and spooled[0].on_disk
    wait_until(lambda: spooled[0].closed, "the spooled temp file is closed")
