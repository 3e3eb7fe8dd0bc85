"""The search benchmark's latency bookkeeping."""

from __future__ import annotations

import threading

import numpy as np

from cirlab.bench.report import BenchResult
from cirlab.bench.search import (
    CATEGORIES,
    LoadRun,
    add_load_figures,
    concurrent_requests,
    interleaved_latencies,
    load_forms,
    p50_ratio,
    write_gallery_cache,
)


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

    received: list[tuple[str, bytes | None]] = []
    lock = threading.Lock()

    async def search(request: Request) -> JSONResponse:
        form = await request.form()
        text, upload = str(form["text"]), form.get("reference_image")
        content = await upload.read() if upload is not None else None
        with lock:
            received.append((text, content))
        return JSONResponse({}, status_code=500 if text.startswith("bad") else 200)

    forms = [{"reference_id": "x", "text": f"{'bad' if n % 5 == 0 else 'good'} {n}"} for n in range(20)]
    forms += [{"reference_image": bytes([n]) * 3, "text": f"upload {n}"} for n in range(3)]
    app = Starlette(routes=[Route("/api/search", search, methods=["POST"])])
    with BackgroundServer(app) as server:
        run = concurrent_requests(server.url, forms, clients=4)
    assert sorted(received) == sorted((form["text"], form.get("reference_image")) for form in forms)
    assert len(run.seconds) == 23 and all(s >= 0 for s in run.seconds)
    assert run.failed == 4
    assert run.wall > 0 and run.requests_per_s == 23 / run.wall


def test_load_forms_send_ids_or_uploads_half_of_them_within_a_category() -> None:
    uploads = [b"png-a", b"png-b"]
    forms = load_forms([f"G{n}" for n in range(50)], uploads, 200, seed=3)
    assert [len(forms[kind]) for kind in ("text", "upload")] == [200, 200]
    assert all(form["reference_id"].startswith("G") and "reference_image" not in form for form in forms["text"])
    assert all(form["reference_image"] in uploads and "reference_id" not in form for form in forms["upload"])
    for listed in forms.values():
        within = sum(form["category"] in CATEGORIES for form in listed)
        assert 60 < within < 140 and all(form["category"] in ("", *CATEGORIES) for form in listed)
    assert load_forms([f"G{n}" for n in range(50)], uploads, 200, seed=3) == forms  # the same forms every run


def test_load_figures_compare_the_batched_path_with_one_at_a_time_round_by_round() -> None:
    runs = {"one": [LoadRun([0.01] * 98 + [0.1, 0.1], 0, 2.0), LoadRun([0.01] * 100, 0, 1.0)],
            "batched": [LoadRun([0.01] * 99 + [0.02], 0, 1.0), LoadRun([0.01] * 100, 0, 1.0)]}
    result = BenchResult("search", "test")
    add_load_figures(result, "load.text.8c.", runs, "text queries from 8 clients at once")
    figures = {f.name: f for f in result.figures}
    speedup = figures["load.text.8c.batched_speedup"]
    assert (speedup.value, speedup.low, speedup.high) == (1.5, 1.0, 2.0) and speedup.kind == "ratio"
    assert figures["load.text.8c.batched_p99_ratio"].high == 1.0
    assert figures["load.text.8c.batched_p99_ratio"].low < 0.25
    assert figures["load.text.8c.one_requests_per_s"].value == 75.0
    assert figures["load.text.8c.batched_requests_per_s"].value == 100.0
    assert {f.kind for name, f in figures.items() if name.endswith("_ms")} == {"absolute"}
