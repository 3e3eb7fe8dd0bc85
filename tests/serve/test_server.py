"""The app behind a real uvicorn server on a loopback port: raw paths, concurrency and batches, bodies, Host names."""

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from cirlab.serve import BackgroundServer, BatchSettings, ServeLimits, create_app
from cirlab.serve.access import allowed_hosts


@pytest.fixture(scope="module")
def server(engine, data_root):
    limits = ServeLimits(max_upload_bytes=20_000, form_overhead_bytes=2_000)
    with BackgroundServer(create_app(engine, data_root, limits=limits)) as running:
        yield running


def raw_get(server, path):
    """GET ``path`` exactly as written (no client-side normalisation of dot segments or escapes)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/images/..", "/images/../../etc/passwd", "/images/..%2F..%2Fetc%2Fpasswd", "/images/%2e%2e/%2e%2e/etc/passwd",
    "/images/..%5c..%5cetc%5cpasswd", "/images//etc/passwd", "/images/%2Fetc%2Fpasswd", "/images/D000/../../x",
])
def test_raw_traversal_paths_never_reach_a_file(server, path):
    status, content_type, body = raw_get(server, path)
    assert 400 <= status < 500, (path, status)
    assert content_type.startswith("application/json")
    assert b"root:" not in body
    assert raw_get(server, "/images/D000")[0] == 200


def test_server_listens_on_loopback(server):
    assert server.host == "127.0.0.1"
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_concurrent_requests_equal_sequential_ones(server, engine, gallery):
    queries = [(ref, text, category) for ref in gallery["dress"][:2] + gallery["toptee"][:1]
               for text in ("is red", "has shorter sleeves") for category in ("", "shirt")]
    expected = [[h.id for h in engine.search(r, t, k=6, category=c or None)] for r, t, c in queries]

    def post(query):
        ref, text, category = query
        response = httpx.post(f"{server.url}/api/search", timeout=60,
                              data={"reference_id": ref, "text": text, "category": category, "k": "6"})
        response.raise_for_status()
        return [r["id"] for r in response.json()["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(post, queries * 2))
    assert got == expected * 2


def test_oversized_upload_is_413_and_the_server_keeps_serving(server):
    files = {"reference_image": ("big.png", b"\x89PNG" + b"\x00" * 50_000, "image/png")}
    response = httpx.post(f"{server.url}/api/search", data={"text": "is red"}, files=files)
    assert response.status_code == 413
    assert json.loads(response.content)["field"] == "body"
    response = httpx.post(f"{server.url}/api/search", data={"text": "is red", "reference_id": "D000"})
    assert response.status_code == 200 and len(response.json()["results"]) == 10


@pytest.fixture(scope="module")
def guarded_server(engine, data_root):
    """The app as `cirlab serve` builds it on its loopback address: only loopback Host names are answered."""
    with BackgroundServer(create_app(engine, data_root, allowed_hosts=allowed_hosts("127.0.0.1"))) as running:
        yield running


def get_with_host(server, host):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.putrequest("GET", "/api/info", skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_rebound_host_name_is_refused_by_a_loopback_server(guarded_server):
    port = guarded_server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert get_with_host(guarded_server, host)[0] == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
        assert get_with_host(guarded_server, host) == (400, b"Invalid host header"), host
    assert httpx.get(f"{guarded_server.url}/health").status_code == 200  # what a client sends by itself


def test_a_text_field_that_is_not_utf8_is_400_and_the_connection_kept(server):
    with httpx.Client(base_url=server.url) as client:
        bad = client.post("/api/search", files={"reference_id": (None, b"D000"), "text": (None, b"caf\xe9")})
        assert bad.status_code == 400 and bad.json()["field"] == "text"
        assert "connection" not in bad.headers  # the body was read to its end: the connection can be reused
        good = client.post("/api/search", files={"reference_id": (None, b"D000"), "text": (None, "café".encode())})
        assert good.status_code == 200 and good.json()["query"]["text"] == "café"


def search_form(request):
    """``(data, files)`` of a search request given as a dict whose ``bytes`` value is the upload."""
    data = {name: value for name, value in request.items() if isinstance(value, str)}
    files = {name: ("upload.png", value, "image/png") for name, value in request.items() if isinstance(value, bytes)}
    return data, files or None


def test_a_batch_of_concurrent_requests_answers_each_as_one_at_a_time_and_bad_ones_alone(engine, data_root, gallery):
    upload = (data_root / "images" / f"{gallery['toptee'][3]}.png").read_bytes()
    good = [{"reference_id": gallery["dress"][2], "text": "is red", "k": "4"},
            {"reference_id": gallery["shirt"][0], "text": "has a pattern", "category": "toptee", "k": "6"},
            {"reference_image": upload, "text": "is brighter", "k": "3"},
            {"reference_image": upload, "text": "is darker", "category": "shirt"},
            {"reference_id": gallery["dress"][2], "text": "is red", "k": "4"}]
    bad = [{"reference_id": "X404", "text": "is red"}, {"reference_id": gallery["dress"][0], "text": " "},
           {"reference_id": gallery["dress"][0], "text": "is red", "k": "0"},
           {"reference_id": gallery["dress"][0], "text": "is red", "category": "coat"},
           {"reference_image": b"not an image", "text": "is red"},
           {"reference_id": gallery["dress"][0], "reference_image": upload, "text": "is red"}]
    one_app = create_app(engine, data_root, batching=BatchSettings(max_batch=1))
    # The window is an hour: the batch closes when every good request has joined it, and only then.
    batched_app = create_app(engine, data_root, batching=BatchSettings(window_ms=3_600_000, max_batch=len(good)))

    def post(url, request):
        data, files = search_form(request)
        response = httpx.post(f"{url}/api/search", data=data, files=files, timeout=60)
        return response.status_code, response.json()

    with BackgroundServer(one_app) as one, BackgroundServer(batched_app) as batched:
        expected = [post(one.url, request) for request in good + bad]
        with ThreadPoolExecutor(max_workers=len(good) + len(bad)) as pool:
            got = list(pool.map(lambda request: post(batched.url, request), good + bad))
        batcher = batched_app.state.batcher
        assert (batcher.batches, batcher.items) == (1, len(good))
    assert one_app.state.batcher is None
    for (status, body), (expected_status, expected_body) in zip(got[:len(good)], expected[:len(good)]):
        assert status == expected_status == 200
        assert body["query"] == expected_body["query"]
        assert [{**hit, "score": None} for hit in body["results"]] == \
            [{**hit, "score": None} for hit in expected_body["results"]]
        np.testing.assert_allclose([hit["score"] for hit in body["results"]],
                                   [hit["score"] for hit in expected_body["results"]], atol=1e-5)
    assert got[len(good):] == expected[len(good):]
    assert [status for status, _ in got[len(good):]] == [404, 400, 400, 400, 400, 400]
