"""cirlab's samplers against the way simple training scripts get negatives: load and encode each one.

The naive loop, for each of the ``B * k`` negatives of a batch, draws a random gallery image other than
the target, opens its file, decodes and preprocesses it (target-pad, then the encoder's transform) and
runs the image encoder on it alone. cirlab instead draws indices with a sampler over the cached,
normalised gallery features and gathers them: one tensor operation for the whole batch.

Both run on the tiny FashionIQ-layout folder with ``cirlab-vit-tiny`` (64 px, 64-d); a real CLIP image
tower costs far more per image, so the gap measured here is the smallest it gets. The naive loop is
timed on a small batch; being a loop of independent, identical pieces of work, its time for the reference
batch (B = 256, k = 16) is its per-negative time times ``B * k``, which the ``reference_batch`` ratio uses.
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.bench.context import BenchContext, TinyDataset
from cirlab.bench.fixtures import queries_near
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Stat, round_ratio, time_rounds

NAME = "naive"
TITLE = "negatives from cached features vs loading and encoding an image per negative"

REFERENCE_BATCH, REFERENCE_K = 256, 16


def naive_negatives(tiny: TinyDataset, gallery_ids: list[str], positives: Tensor, k: int, preprocess: Any,
                    rng: random.Random) -> Tensor:
    """``[B, k, d]`` normalised features of random non-target images, each loaded and encoded on its own."""
    from cirlab.data import load_image

    encoder = tiny.encoder
    rows = []
    for target in positives.tolist():
        features = []
        for _ in range(k):
            choice = rng.randrange(len(gallery_ids) - 1)
            choice += choice >= target  # any image but the target
            pixels = preprocess(load_image(tiny.image_paths[gallery_ids[choice]]))[None]
            features.append(F.normalize(encoder.encode_images(pixels), dim=-1)[0])
        rows.append(torch.stack(features))
    return torch.stack(rows)


def run(ctx: BenchContext) -> BenchResult:
    """Time per batch of both ways, at a small batch, and the reference-batch ratio."""
    from cirlab.data import build_preprocess
    from cirlab.negatives import BatchInfo, Gallery, build_sampler

    tiny = ctx.tiny_dataset()
    cache = tiny.cache
    gallery_rows = cache.split_rows("dress", "train")
    gallery_ids = [cache.image_ids[row] for row in gallery_rows.tolist()]
    features = torch.from_numpy(cache.image_features[gallery_rows].astype("float32")).to(ctx.device)
    categories = torch.zeros(len(gallery_ids), dtype=torch.long, device=ctx.device)
    gallery = Gallery.from_raw(features, categories)
    preprocess = build_preprocess("targetpad", tiny.encoder.preprocess)

    batch, k, repeats = ctx.pick(8, 4), ctx.pick(8, 4), ctx.pick(2, 1)
    inputs = ctx.generator(30)
    samplers = {name: build_sampler(name, gallery) for name in ("random", "semi-hard")}
    generator = ctx.device_generator(31)
    rng = random.Random(ctx.seed)

    def cirlab_batch(name: str, negatives: int, positives: Tensor, queries: Tensor) -> Tensor:
        indices = samplers[name].sample(queries, positives, BatchInfo(categories[positives]), negatives, generator)
        return gallery.features[indices]

    small = torch.randint(0, len(gallery_ids), (batch,), generator=inputs).to(ctx.device)
    small_queries = queries_near(gallery.features[small].cpu(), inputs).to(ctx.device)
    large = torch.randint(0, len(gallery_ids), (REFERENCE_BATCH,), generator=inputs).to(ctx.device)
    large_queries = queries_near(gallery.features[large].cpu(), inputs).to(ctx.device)
    timings = time_rounds({
        "naive": lambda: naive_negatives(tiny, gallery_ids, small, k, preprocess, rng),
        "random": lambda: cirlab_batch("random", k, small, small_queries),
        "semi-hard": lambda: cirlab_batch("semi-hard", k, small, small_queries),
        "random_reference": lambda: cirlab_batch("random", REFERENCE_K, large, large_queries),
    }, repeats=repeats, warmup=1, device=ctx.device, calls={"random": 5, "semi-hard": 5, "random_reference": 5})

    result = BenchResult(NAME, TITLE, settings={
        "encoder": tiny.encoder.spec.model, "image_size": tiny.encoder.image_size, "gallery": len(gallery_ids),
        "batch": batch, "negatives_per_query": k, "reference_batch": f"{REFERENCE_BATCH}x{REFERENCE_K}",
        "repeats": repeats, "sampler_calls_per_round": 5})
    naive = timings["naive"]
    for name in ("random", "semi-hard"):
        key = name.replace("-", "_")
        result.add(Figure.from_stat(f"{key}_speedup", round_ratio(naive, timings[name]), "x", "ratio",
                                    f"naive loop time over cirlab {name} (sample + gather), {batch}x{k} negatives",
                                    baseline=f"cirlab {name} sampler"))
    per_negative_samples = [t / (batch * k) for t in naive.samples]
    per_negative = Stat.of(per_negative_samples)
    reference = Stat.of(p * REFERENCE_BATCH * REFERENCE_K / c
                        for p, c in zip(per_negative_samples, timings["random_reference"].samples))
    result.add(Figure.from_stat("reference_batch_speedup", reference, "x", "ratio",
                                f"naive time for a {REFERENCE_BATCH}x{REFERENCE_K} batch (per-negative time x B k) "
                                f"over cirlab random at that batch", baseline="cirlab random sampler"))
    result.add(Figure.from_stat("naive_ms_per_negative", per_negative.map(lambda t: t * 1e3), "ms", "absolute",
                                "load + preprocess + encode one image"))
    result.add(Figure.from_stat("naive_ms_per_batch", naive.stat.map(lambda t: t * 1e3), "ms", "absolute",
                                f"naive loop, {batch}x{k} negatives"))
    result.add(Figure.from_stat("random_ms_per_batch", timings["random"].stat.map(lambda t: t * 1e3), "ms",
                                "absolute", f"cirlab random, {batch}x{k} negatives"))
    result.add(Figure.from_stat("random_ms_reference_batch", timings["random_reference"].stat.map(lambda t: t * 1e3),
                                "ms", "absolute", f"cirlab random, {REFERENCE_BATCH}x{REFERENCE_K} negatives"))
    return result
