"""Load test of the search service on loopback, and faiss query latency on its own.

Builds a synthetic gallery of random features (100,000 images of 64 dimensions by default, split over
three categories), indexes it (exact IndexFlatIP, and IndexIVFFlat for comparison), then:

1. times single-query faiss searches against each index (no model, no HTTP): p50 and p99;
2. times the whole query path in-process (text encoding with cirlab-vit-tiny, the ``sum`` combiner,
   faiss): p50 and p99;
3. starts the real service (uvicorn) on 127.0.0.1 on a free port and runs a fixed number of
   ``POST /api/search`` requests from concurrent clients (8 by default), each a reference id drawn from
   the gallery, one of a few modification texts and sometimes a category: throughput, p50 and p99
   latency, and the number of errors (any non-200 answer or failed request).

Everything stays on this machine: the server listens on the loopback interface only and the clients
talk to it there. The encoder is cirlab's tiny random-initialised ViT (64-d), so the figures measure
the service's overheads plus a small text tower; a CLIP RN50x4 text tower adds its own cost per query.

    python benchmarks/serve_load.py                       # 100k x 64-d, 8 clients, 800 requests
    python benchmarks/serve_load.py --requests 200 --gallery 20000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CIRLAB_NO_PROGRESS", "1")

TEXTS = ("is red and has long sleeves", "is shorter and has a floral print", "has a v-neck", "is darker",
         "has stripes and no sleeves", "is longer and blue")
CATEGORIES = ("dress", "shirt", "toptee")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    values = np.asarray(seconds) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def write_gallery(root: Path, size: int, dim: int, weights_hash: str, seed: int) -> Path:
    """A feature cache of ``size`` random features, one third of the val split per category."""
    from cirlab.features.cache import write_cache

    rng = np.random.default_rng(seed)
    features = rng.standard_normal((size, dim), dtype=np.float32)
    ids = [f"G{n:07d}" for n in range(size)]
    thirds = np.array_split(np.arange(size), len(CATEGORIES))
    split_rows = {f"{c}.val": rows.tolist() for c, rows in zip(CATEGORIES, thirds)}
    manifest = {"model": "cirlab-vit-tiny", "pretrained": None, "checkpoint": None, "weights_hash": weights_hash,
                "encoder": {"seed": 0}, "preprocess": {"kind": "targetpad", "target_ratio": 1.25},
                "precision": "fp32", "data_fingerprint": f"random-{size}x{dim}-seed{seed}"}
    return write_cache(root, image_ids=ids, image_features=features, split_rows=split_rows, triplets=[],
                       text_features=np.zeros((0, 4, dim), np.float32), manifest=manifest)


def faiss_latency(index_dir: Path, queries: np.ndarray, category: str | None = None) -> tuple[float, float]:
    """p50/p99 of one-query searches (k=10) against the index in ``index_dir``."""
    from cirlab.search import GalleryIndex

    index = GalleryIndex.load(index_dir)
    for query in queries[:20]:
        index.search(query[None], 10, category)
    timings = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None], 10, category)
        timings.append(time.perf_counter() - start)
    return percentiles(timings)


def run_load(url: str, ids: list[str], clients: int, total: int, seed: int) -> dict[str, float]:
    """``total`` search requests from ``clients`` threads; throughput, latency percentiles, errors."""
    import httpx

    rng = np.random.default_rng(seed)
    plan = [{"reference_id": ids[int(rng.integers(len(ids)))], "text": TEXTS[int(rng.integers(len(TEXTS)))],
             "category": CATEGORIES[int(rng.integers(3))] if rng.random() < 0.5 else "", "k": "10"}
            for _ in range(total)]
    lock = threading.Lock()
    next_request = iter(range(total))
    latencies: list[float] = []
    errors = [0]

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60.0) as session:
            while True:
                with lock:
                    position = next(next_request, None)
                if position is None:
                    return
                start = time.perf_counter()
                try:
                    ok = session.post("/api/search", data=plan[position]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    p50, p99 = percentiles(latencies)
    return {"requests": total, "seconds": wall, "throughput": total / wall, "p50_ms": p50, "p99_ms": p99,
            "errors": errors[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=100_000, help="gallery images (default 100000)")
    parser.add_argument("--dim", type=int, default=64, help="feature dimension; must be 64 (the tiny encoder's)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--requests", type=int, default=800, help="search requests in all (default 800)")
    parser.add_argument("--faiss-queries", type=int, default=1000, help="queries timed per faiss index")
    parser.add_argument("--faiss-threads", type=int, default=1,
                        help="OpenMP threads of faiss (default 1, as `cirlab serve`; 0 = faiss's default)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads (default 0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.dim != 64:
        parser.error("--dim must be 64: the text encoder is cirlab-vit-tiny (64-d)")
    if min(args.gallery, args.clients, args.requests, args.faiss_queries) < 1:
        parser.error("--gallery, --clients, --requests and --faiss-queries must be positive")

    import faiss
    import torch

    from cirlab.combiners import build_combiner
    from cirlab.encoders import EncoderSpec, load_encoder
    from cirlab.features.cache import FeatureCache
    from cirlab.search import GalleryIndex, SearchEngine, build_index
    from cirlab.serve import BackgroundServer, create_app

    if args.faiss_threads:
        faiss.omp_set_num_threads(args.faiss_threads)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    encoder = load_encoder(EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=0), device="cpu")
    figures: dict[str, object] = {"gallery": args.gallery, "dim": args.dim, "clients": args.clients,
                                  "torch_threads": torch.get_num_threads(),
                                  "faiss_threads": faiss.omp_get_max_threads(), "cpus": os.cpu_count(),
                                  "load_average": os.getloadavg()[0],
                                  "features": "random normal, float32"}
    with tempfile.TemporaryDirectory(prefix="cirlab-serve-load-") as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        cache = write_gallery(tmp_path / "cache", args.gallery, args.dim, encoder.weights_hash(), args.seed)
        flat = build_index(cache, tmp_path / "flat", show_progress=False)
        ivf = build_index(cache, tmp_path / "ivf", kind="ivf", recall_queries=500, seed=args.seed,
                          show_progress=False)
        figures["build_seconds"] = time.perf_counter() - started
        figures["ivf"] = {"nlist": ivf.nlist, "nprobe": ivf.nprobe, "recall_at_10": ivf.recall_at_10}

        rng = np.random.default_rng(args.seed + 1)
        queries = rng.standard_normal((args.faiss_queries, args.dim), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        for name, folder in (("flat", flat.out), ("ivf", ivf.out)):
            p50, p99 = faiss_latency(folder, queries)
            c50, c99 = faiss_latency(folder, queries, category="shirt")
            figures[f"faiss_{name}"] = {"p50_ms": p50, "p99_ms": p99, "category_p50_ms": c50, "category_p99_ms": c99}

        engine = SearchEngine(GalleryIndex.load(flat.out), FeatureCache.open(cache), build_combiner("sum", args.dim),
                              encoder=encoder, device="cpu")
        engine.warm_up()
        ids = engine.index.ids
        timings = []
        for n in range(200):
            start = time.perf_counter()
            engine.search(ids[(n * 7919) % len(ids)], TEXTS[n % len(TEXTS)], k=10)
            timings.append(time.perf_counter() - start)
        p50, p99 = percentiles(timings)
        figures["engine_in_process"] = {"p50_ms": p50, "p99_ms": p99}

        with BackgroundServer(create_app(engine, None), host="127.0.0.1") as server:
            run_load(server.url, ids, args.clients, min(args.requests, 2 * args.clients), args.seed + 2)  # warm-up
            figures["http"] = run_load(server.url, ids, args.clients, args.requests, args.seed + 3)

    ivf_info = figures["ivf"]
    print(f"gallery: {args.gallery} random {args.dim}-d features, 3 categories; built in "
          f"{figures['build_seconds']:.1f} s; {figures['cpus']} CPUs (load average {figures['load_average']:.1f} "
          f"at start), torch threads {figures['torch_threads']}, faiss threads {figures['faiss_threads']}")
    for name in ("flat", "ivf"):
        f = figures[f"faiss_{name}"]
        extra = (f" (nlist {ivf_info['nlist']}, nprobe {ivf_info['nprobe']}, recall@10 vs exact "
                 f"{ivf_info['recall_at_10']:.3f})" if name == "ivf" else "")
        print(f"faiss {name:<4} one query, k=10: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms; "
              f"within one category: p50 {f['category_p50_ms']:.3f} ms, p99 {f['category_p99_ms']:.3f} ms{extra}")
    e = figures["engine_in_process"]
    print(f"query path in-process (text encoder + sum combiner + flat faiss): p50 {e['p50_ms']:.2f} ms, "
          f"p99 {e['p99_ms']:.2f} ms")
    h = figures["http"]
    print(f"HTTP POST /api/search, {args.clients} clients on 127.0.0.1: {h['requests']} requests in "
          f"{h['seconds']:.1f} s = {h['throughput']:.1f} req/s; latency p50 {h['p50_ms']:.1f} ms, "
          f"p99 {h['p99_ms']:.1f} ms; errors {h['errors']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
