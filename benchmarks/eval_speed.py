"""How much the FashionIQ evaluation costs compared with a bare matrix product + top-k on the same arrays.

For each gallery size, a feature cache of random features is written to a temporary folder, then:

- ``bare``: ``torch.topk(queries @ gallery.T, 50)`` on the normalised query and gallery tensors, once;
- ``ranks``: :func:`cirlab.evaluation.target_ranks` on the same tensors (blocks of 1024 queries);
- ``evaluate``: :meth:`FashionIQValidation.evaluate` with the ``sum`` combiner (combining, normalising,
  ranking, Recall@K), after the one-off preparation (reading the cache), which is timed apart.

Each figure is the shortest of ``--repeats`` interleaved runs in the same process; the ratios divide by ``bare``.

    python benchmarks/eval_speed.py                      # 6k and 100k galleries, 2k queries, d=640
    python benchmarks/eval_speed.py --galleries 6346 --queries 2038 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cirlab.evaluation import FashionIQValidation, target_ranks
from cirlab.features.cache import FeatureCache, write_cache


def write_random_cache(root: Path, gallery: int, queries: int, dim: int, seed: int = 0) -> FeatureCache:
    """One category ("dress") whose val split has ``gallery`` images and ``queries`` triplets."""
    rng = np.random.default_rng(seed)
    references = rng.integers(0, gallery, queries)
    targets = rng.integers(0, gallery, queries)
    triplets = [{"category": "dress", "split": "val", "file_index": i, "reference_row": int(r), "target_row": int(t),
                 "captions": ["is longer", "is red"]} for i, (r, t) in enumerate(zip(references, targets))]
    write_cache(root, image_ids=[f"I{i}" for i in range(gallery)],
                image_features=rng.standard_normal((gallery, dim), dtype=np.float32),
                split_rows={"dress.val": list(range(gallery))}, triplets=triplets,
                text_features=rng.standard_normal((queries, 4, dim), dtype=np.float32),
                manifest={"model": "random", "preprocess": {}, "data_fingerprint": "random"})
    return FeatureCache.open(root)


def fastest_seconds(works: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Shortest wall time of each of ``works`` over ``repeats`` rounds, after one warm-up round.

    The works are interleaved within each round, so that a busy machine slows all of them alike, and the
    shortest time is kept as the least disturbed one.
    """
    times: dict[str, list[float]] = {name: [] for name in works}
    for round_index in range(repeats + 1):
        for name, work in works.items():
            _sync(device)
            start = time.perf_counter()
            work()
            _sync(device)
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sum_combine(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """CLIP4Cir's element-wise sum: normalize(image + text)."""
    return F.normalize(image + text, dim=-1)


def measure(gallery_size: int, num_queries: int, dim: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Timings and ratios for one gallery size."""
    with tempfile.TemporaryDirectory() as folder:
        cache = write_random_cache(Path(folder), gallery_size, num_queries, dim)
        start = time.perf_counter()
        validation = FashionIQValidation(cache, device=device)
        prepare = time.perf_counter() - start
        images, texts, targets = validation.query_inputs("dress")
        gallery = validation.gallery("dress")
        queries = sum_combine(images, texts)
        timings = fastest_seconds({
            "bare": lambda: torch.topk(queries @ gallery.T, 50, dim=1),
            "ranks": lambda: target_ranks(queries, gallery, targets),
            "evaluate": lambda: validation.evaluate(sum_combine, show_progress=False),
        }, repeats, device)
    return {"prepare": prepare, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galleries", type=lambda s: [int(x) for x in s.split(",")], default=[6346, 100_000])
    parser.add_argument("--queries", type=int, default=2038)
    parser.add_argument("--dim", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.queries} queries, d={args.dim}")
    print(f"{'gallery':>8} {'bare (s)':>10} {'ranks (s)':>10} {'eval (s)':>10} {'ranks/bare':>11} "
          f"{'eval/bare':>10} {'prepare (s)':>12}")
    for gallery_size in args.galleries:
        t = measure(gallery_size, args.queries, args.dim, args.repeats, device)
        print(f"{gallery_size:>8} {t['bare']:>10.4f} {t['ranks']:>10.4f} {t['evaluate']:>10.4f} "
              f"{t['ranks'] / t['bare']:>11.2f} {t['evaluate'] / t['bare']:>10.2f} {t['prepare']:>12.3f}")


if __name__ == "__main__":
    main()
