"""The search benchmark's latency bookkeeping."""

from __future__ import annotations

import threading

import numpy as np

from cirlab.bench.search import CATEGORIES, concurrent_requests, interleaved_latencies, p50_ratio, write_gallery_cache


def test_interleaved_latencies_time_every_item_once_per_work_after_the_warmup() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    seconds = interleaved_latencies({"a": seen["a"].append, "b": seen["b"].append}, list(range(10)), rounds=3,
                                    warmup=2)
    assert seen["a"] == [0, 1, *range(2, 10)] and seen["b"] == seen["a"]
    assert [len(chunk) for chunk in seconds["a"]] == [3, 3, 2]
    assert len(seconds["b"]) == 3


def test_p50_ratio_is_taken_round_by_round() -> None:
    seconds = {"x": [[2.0, 2.0, 9.0], [1.0, 1.0, 1.0]], "y": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]}
    ratio = p50_ratio(seconds, "x", "y")
    assert (ratio.value, ratio.low, ratio.high) == (1.5, 1.0, 2.0)


def test_gallery_cache_splits_the_features_into_a_third_per_category(tmp_path) -> None:
    from cirlab.features.cache import FeatureCache

    features = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    cache = FeatureCache.open(write_gallery_cache(tmp_path / "cache", features, "hash", seed=0))
    rows = {c: cache.split_rows(c, "val").tolist() for c in CATEGORIES}
    assert rows == {"dress": [0, 1, 2, 3], "shirt": [4, 5, 6], "toptee": [7, 8, 9]}


def test_concurrent_requests_send_each_form_once_and_count_the_failures() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from cirlab.serve import BackgroundServer

    received: list[str] = []
    lock = threading.Lock()

    async def search(request: Request) -> JSONResponse:
        text = str((await request.form())["text"])
        with lock:
            received.append(text)
        return JSONResponse({}, status_code=500 if text.startswith("bad") else 200)

    forms = [{"reference_id": "x", "text": f"{'bad' if n % 5 == 0 else 'good'} {n}"} for n in range(23)]
    app = Starlette(routes=[Route("/api/search", search, methods=["POST"])])
    with BackgroundServer(app) as server:
        seconds, failed = concurrent_requests(server.url, forms, clients=4)
    assert sorted(received) == sorted(form["text"] for form in forms)
    assert len(seconds) == 23 and all(s >= 0 for s in seconds)
    assert failed == 5
