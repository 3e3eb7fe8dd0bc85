"""`cirlab serve` as a user starts it: a subprocess that loads everything, then answers on loopback."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

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
