"""`cirlab serve` as a user starts it: a subprocess that loads everything, then answers on loopback; its options."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from cirlab.cli import main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_cirlab_serve_answers_searches_and_serves_images(image_gallery, gallery):
    data_root, _, index = image_gallery
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "cirlab", "serve", "--index", str(index), "--combiner", "sum", "--port", str(port),
         "--device", "cpu", "--max-k", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "cirlab serve did not come up"
            time.sleep(0.3)
        found = httpx.post(f"{url}/api/search", data={"reference_id": gallery["dress"][0], "text": "is red", "k": 5})
        assert found.status_code == 200 and len(found.json()["results"]) == 5
        assert httpx.post(f"{url}/api/search", data={"reference_id": "D000", "text": "x", "k": 6}).status_code == 400
        image = httpx.get(f"{url}/images/{gallery['shirt'][0]}")  # --data defaults to the cache's data root
        assert image.content == (data_root / "images" / f"{gallery['shirt'][0]}.png").read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_with_a_missing_index_or_bad_limits_fails_in_one_line(tmp_path, capsys):
    assert main(["serve", "--index", str(tmp_path / "none"), "--combiner", "sum"]) == 2
    assert capsys.readouterr().err.strip() == f"cirlab: error: {tmp_path / 'none'}: index folder not found"
    assert main(["serve", "--index", str(tmp_path), "--combiner", "sum", "--max-k", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


@pytest.fixture
def started(monkeypatch, image_gallery):
    """Run `cirlab serve` up to the point where uvicorn would start; returns (exit code, uvicorn's arguments)."""
    import uvicorn

    index = image_gallery[2]
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    monkeypatch.delenv("CIRLAB_SERVE_TOKEN", raising=False)

    def start(*options):
        code = main(["serve", "--index", str(index), "--combiner", "sum", "--device", "cpu", *options])
        return code, calls.pop() if calls else None

    return start


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_serve_beyond_loopback_without_a_token_warns_in_one_line(started, capsys):
    code, (app, options) = started("--host", "0.0.0.0", "--port", "8123", "--body-timeout", "7")
    assert code == 0 and options["host"] == "0.0.0.0" and options["port"] == 8123
    assert warnings_in(capsys.readouterr().err) == [
        "warning: listening on 0.0.0.0, beyond this machine, without --token: anyone who can reach it can search "
        "and read the gallery's images (set --token or CIRLAB_SERVE_TOKEN)"]
    with TestClient(app, base_url="http://192.168.1.5:8123") as client:  # any Host name beyond loopback
        info = client.get("/api/info")
        assert info.status_code == 200 and info.json()["limits"]["body_timeout"] == 7


def test_serve_with_a_token_from_the_environment_needs_it(started, capsys, monkeypatch):
    monkeypatch.setenv("CIRLAB_SERVE_TOKEN", "from-env")
    code, (app, _) = started("--host", "0.0.0.0")
    assert code == 0 and warnings_in(capsys.readouterr().err) == []
    with TestClient(app) as client:
        assert client.get("/api/info").status_code == 401
        assert client.get("/api/info", headers={"authorization": "Bearer from-env"}).status_code == 200
    code, (app, _) = started("--token", "given")  # --token wins over the environment
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/info", headers={"authorization": "Bearer given"}).status_code == 200
        assert client.get("/api/info", headers={"authorization": "Bearer from-env"}).status_code == 401


def test_serve_on_loopback_answers_loopback_and_allowed_host_names(started, capsys):
    code, (app, options) = started("--allowed-host", "myhost.lan", "--allowed-host", "*.example.org")
    assert code == 0 and options["host"] == "127.0.0.1" and warnings_in(capsys.readouterr().err) == []
    with TestClient(app) as client:
        for host, status in (("localhost:8000", 200), ("myhost.lan:8000", 200), ("a.example.org", 200),
                             ("evil.example:8000", 400)):
            assert client.get("/api/info", headers={"host": host}).status_code == status, host
        assert client.get("/api/info", headers={"host": "localhost"}).json()["limits"]["body_timeout"] == 30


@pytest.mark.parametrize(("options", "message"), [
    (("--allowed-host", "localhost:8000"), "--allowed-host 'localhost:8000' is not a host name, an IP address or "
                                           "'*.domain' (give the name without a port)"),
    (("--token", "two words"), "--token may hold only letters, digits and - . _ ~ + / (then = at the end); e.g. "
                               "python -c \"import secrets; print(secrets.token_urlsafe())\""),
    (("--token", ""), "--token is empty"),
    (("--body-timeout", "0"), "--body-timeout must be a positive number of seconds, got 0.0"),
    (("--body-timeout", "inf"), "--body-timeout must be a positive number of seconds, got inf"),
])
def test_bad_access_options_fail_in_one_line_before_loading(started, capsys, options, message):
    code, call = started(*options)
    assert code == 2 and call is None
    assert capsys.readouterr().err.strip() == f"cirlab: error: {message}"


def test_serve_batches_searches_as_its_options_say(started):
    from cirlab.serve import BatchSettings

    code, (app, _) = started()
    assert code == 0 and app.state.batcher.settings == BatchSettings()  # the options' defaults are the library's
    code, (app, _) = started("--batch-window-ms", "0.5", "--max-batch", "8")
    assert code == 0 and app.state.batcher.settings == BatchSettings(window_ms=0.5, max_batch=8)
    code, (app, _) = started("--max-batch", "1")
    assert code == 0 and app.state.batcher is None  # one query at a time, each on its request's thread
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.post("/api/search", data={"reference_id": "D000", "text": "is red"}).status_code == 200


@pytest.mark.parametrize(("options", "message"), [
    (("--max-batch", "0"), "--max-batch must be a positive integer, got 0"),
    (("--batch-window-ms", "-2"), "--batch-window-ms must be a number of milliseconds >= 0, got -2.0"),
    (("--batch-window-ms", "nan"), "--batch-window-ms must be a number of milliseconds >= 0, got nan"),
])
def test_bad_batching_options_fail_in_one_line_before_loading(started, capsys, options, message):
    code, call = started(*options)
    assert code == 2 and call is None
    assert capsys.readouterr().err.strip() == f"cirlab: error: {message}"
