"""Recall@K evaluation against the least it can cost: a bare matrix product and top-k on the same arrays.

``recall_at_k`` finds each target's exact rank (with a defined tie order) by counting, per query, the
gallery items that score higher, instead of sorting; the baseline is ``torch.topk(queries @ gallery.T,
50)`` in blocks of 1024 queries, which is what a script that only needs Recall@50 would run. On the
FashionIQ-sized gallery (6,346 images and 2,038 queries: the shirt validation split) the whole protocol
is timed too, :meth:`FashionIQValidation.evaluate` with the ``sum`` combiner over a feature cache,
after its one-off preparation (reading the cache), which is reported apart.

As a correctness check, Recall@K from ``recall_at_k`` is compared with Recall@K read off the baseline's
top-k lists; on continuous random features (no ties) they must agree exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cirlab.bench.context import BenchContext
from cirlab.bench.fixtures import clustered_features, queries_near
from cirlab.bench.mining import size_label
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import round_ratio, time_rounds
from cirlab.bench.training import REFERENCE_DIM

NAME = "eval"
TITLE = "Recall@K evaluation vs a bare matrix product + top-k"

FASHIONIQ_GALLERY, FASHIONIQ_QUERIES = 6346, 2038
TOP_K = 50
BLOCK = 1024
KS = (1, 5, 10, 50)


def bare_topk(queries: Tensor, gallery: Tensor) -> Tensor:
    """``[Q, 50]`` indices of each query's best gallery items, one matrix product per block of queries."""
    return torch.cat([torch.topk(queries[s:s + BLOCK] @ gallery.T, TOP_K, dim=1).indices
                      for s in range(0, len(queries), BLOCK)])


def recall_from_topk(top: Tensor, targets: Tensor) -> dict[int, float]:
    """Recall@K in percent read off top-k lists."""
    hits = top == targets[:, None]
    return {k: float(hits[:, :k].any(dim=1).float().mean()) * 100.0 for k in KS}


def write_protocol_cache(root: Path, gallery: Tensor, targets: Tensor, generator: torch.Generator) -> Any:
    """A feature cache holding one category's val split: the gallery, and one triplet per query whose
    reference is a random gallery image and whose text feature moves it towards its target."""
    from cirlab.features.cache import FeatureCache, write_cache

    size, dim = gallery.shape
    references = torch.randint(0, size, (len(targets),), generator=generator)
    noise = torch.randn(len(targets), dim, generator=generator) * (0.3 / dim**0.5)
    texts = gallery[targets] - gallery[references] + noise
    pairs = zip(references.tolist(), targets.tolist())
    triplets = [{"category": "shirt", "split": "val", "file_index": i, "reference_row": r, "target_row": t,
                 "captions": ["is longer", "is red"]} for i, (r, t) in enumerate(pairs)]
    write_cache(root, image_ids=[f"G{i:07d}" for i in range(size)], image_features=gallery.numpy(),
                split_rows={"shirt.val": list(range(size))}, triplets=triplets,
                text_features=np.repeat(texts.numpy()[:, None, :], 4, axis=1),
                manifest={"model": "random", "preprocess": {}, "data_fingerprint": "cirlab-bench"})
    return FeatureCache.open(root)


def run(ctx: BenchContext) -> BenchResult:
    """Time recall_at_k (and the protocol on the FashionIQ-sized gallery) against the bare baseline."""
    import time

    from cirlab.combiners import build_combiner
    from cirlab.evaluation import FashionIQValidation, recall_at_k

    cases = [(FASHIONIQ_GALLERY, ctx.pick(FASHIONIQ_QUERIES, 1000), ctx.pick(3, 2))]
    if not ctx.quick:
        cases.append((100_000, 500, 2))
    result = BenchResult(NAME, TITLE, settings={
        "cases": [f"{n} gallery x {q} queries" for n, q, _ in cases],
        "dim": REFERENCE_DIM, "ks": list(KS), "baseline_block": BLOCK})
    combine = build_combiner("sum", REFERENCE_DIM)
    for size, num_queries, repeats in cases:
        label = "6k" if size == FASHIONIQ_GALLERY else size_label(size)
        inputs = ctx.generator(40 + size)
        gallery = clustered_features(size, REFERENCE_DIM, inputs)
        targets = torch.randint(0, size, (num_queries,), generator=inputs)
        queries = queries_near(gallery[targets], inputs, noise=0.8)
        gallery_d, queries_d, targets_d = gallery.to(ctx.device), queries.to(ctx.device), targets.to(ctx.device)
        works = {"bare": lambda q=queries_d, g=gallery_d: bare_topk(q, g),
                 "recall": lambda q=queries_d, g=gallery_d, t=targets_d: recall_at_k(q, g, t, KS)}
        if size == FASHIONIQ_GALLERY:
            cache = write_protocol_cache(ctx.workdir / "eval-cache", gallery, targets, inputs)
            started = time.perf_counter()
            validation = FashionIQValidation(cache, device=ctx.device)
            prepare = time.perf_counter() - started
            works["protocol"] = lambda v=validation: v.evaluate(combine, show_progress=False)
        timings = time_rounds(works, repeats=repeats, warmup=1, device=ctx.device)

        ours = recall_at_k(queries_d, gallery_d, targets_d, KS)
        theirs = recall_from_topk(bare_topk(queries_d, gallery_d), targets_d)
        result.add(Figure(f"{label}.recall_difference", max(abs(ours[k] - theirs[k]) for k in KS), "points", "exact",
                          "largest |Recall@K(recall_at_k) - Recall@K(top-k lists)| over K (0 = agree)"))
        result.add(Figure.from_stat(f"{label}.recall_over_bare", round_ratio(timings["recall"], timings["bare"]), "x",
                                    "ratio", f"recall_at_k, {size} x {num_queries}",
                                    baseline=f"matmul + top-{TOP_K} in blocks of {BLOCK}"))
        result.add(Figure.from_stat(f"{label}.recall_ms", timings["recall"].stat.map(lambda t: t * 1e3), "ms",
                                    "absolute", "recall_at_k"))
        result.add(Figure.from_stat(f"{label}.bare_ms", timings["bare"].stat.map(lambda t: t * 1e3), "ms",
                                    "absolute", f"matmul + top-{TOP_K}"))
        if "protocol" in timings:
            protocol = round_ratio(timings["protocol"], timings["bare"])
            result.add(Figure.from_stat(f"{label}.protocol_over_bare", protocol, "x", "ratio",
                                        "FashionIQValidation.evaluate with the sum combiner",
                                        baseline=f"matmul + top-{TOP_K} in blocks of {BLOCK}"))
            result.add(Figure.from_stat(f"{label}.protocol_ms", timings["protocol"].stat.map(lambda t: t * 1e3), "ms",
                                        "absolute", "FashionIQValidation.evaluate"))
            result.add(Figure(f"{label}.prepare_ms", prepare * 1e3, "ms", "absolute",
                              "FashionIQValidation set-up (reading the cache; once per training run)"))
    return result
