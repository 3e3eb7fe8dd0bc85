"""What gallery-wide mining adds to a training step: ``semi-hard`` and ``hard`` against ``random``.

For each gallery size the step time with a sampler is the *core step* (combiner forward, triplet loss
on already chosen negatives, backward, AdamW; the reference set-up of :mod:`cirlab.bench.training`)
plus that sampler's ``sample`` call; the trainer runs the two one after the other, so their times add.
Timing them apart, in the same rounds, keeps the ratio precise: a full step takes seconds and varies
by tens of percent on a loaded machine, which would drown a mining cost of a few percent if whole
steps were divided.

Each sampler's time is also divided by one ``[B, d] x [d, N]`` matrix product on the same arrays, the
least any method that looks at the whole gallery must spend. Peak extra memory of one ``sample`` call is
measured as :mod:`cirlab.bench.memory` describes and set against a full ``[B, N]`` float32 similarity
matrix, which an unchunked miner would hold.

The negative ledger (:mod:`cirlab.negatives.ledger`), which every sampler runs on what it served, is timed
on its own too (on the random sampler's negatives, with references given, as in training) and set against
the step with random negatives: what the bookkeeping costs.

Galleries are clustered random unit features with 5% exact duplicates (so the false-negative guard
has work to do), and queries sit near their targets, as a trained combiner's do. Everything runs with the
engine's allocator settings (:mod:`cirlab.engine.allocator`), as the trainer runs the step and its sampler;
on a CPU with bf16 instructions the mining samplers scan large galleries through their bf16 screen
(:mod:`cirlab.negatives.screen`), whose picks are those of the fp32 scan.
"""

from __future__ import annotations

from typing import Any

import torch

from cirlab.bench.context import BenchContext
from cirlab.bench.fixtures import clustered_features, queries_near
from cirlab.bench.memory import PeakMemory
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Stat, round_ratio, time_rounds
from cirlab.bench.training import REFERENCE_DIM, reference_step
from cirlab.engine.allocator import reuse_freed_memory

NAME = "mining"
TITLE = "gallery-wide mining overhead per training step (semi-hard, hard vs random)"

MINERS: tuple[str, ...] = ("semi-hard", "hard")
DUPLICATE_FRACTION = 0.05


def size_label(size: int) -> str:
    """``1000`` -> ``"1k"``, ``200000`` -> ``"200k"``, ``1000000`` -> ``"1m"``."""
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def duplicated_gallery(size: int, dim: int, generator: torch.Generator, device: torch.device) -> Any:
    """A :class:`~cirlab.negatives.Gallery` of clustered features where ``DUPLICATE_FRACTION`` of the items
    are exact copies of others (each copy shares its original's duplicate group)."""
    from cirlab.negatives import Gallery

    features = clustered_features(size, dim, generator)
    copies = int(size * DUPLICATE_FRACTION / 2)
    order = torch.randperm(size, generator=generator)
    originals, duplicates = order[:copies], order[copies:2 * copies]
    features[duplicates] = features[originals]
    groups = torch.full((size,), -1, dtype=torch.long)
    groups[originals] = torch.arange(copies)
    groups[duplicates] = torch.arange(copies)
    categories = torch.randint(0, 3, (size,), generator=generator)
    return Gallery.from_raw(features.to(device), categories.to(device), groups.to(device))


def _sample_call(sampler: Any, queries: torch.Tensor, positives: torch.Tensor, info: Any, k: int,
                 generator: torch.Generator) -> Any:
    """A no-argument call of ``sampler.sample`` on fixed inputs."""
    return lambda: sampler.sample(queries, positives, info, k, generator)


def run(ctx: BenchContext) -> BenchResult:
    """Sampler time per step and per gallery size, as step ratios, matmul ratios and peak memory, with the
    engine's allocator settings (as training runs the step and the sampler)."""
    with reuse_freed_memory(ctx.device) as reused:
        result = _measure(ctx)
    result.settings["allocator"] = "freed memory reused (glibc, M_MMAP_MAX 0)" if reused else "default"
    return result


def _measure(ctx: BenchContext) -> BenchResult:
    from cirlab.distances import build_distance
    from cirlab.negatives import BatchInfo, build_sampler
    from cirlab.negatives.ledger import DEFAULT_LEDGER_MARGIN, Ledger

    sizes = ctx.pick((1_000, 10_000, 50_000, 200_000), (1_000, 10_000))
    batch_size, k, repeats = ctx.pick(256, 64), 16, ctx.pick(3, 1)
    step, batch, _ = reference_step(ctx, batch_size, gallery_size=sizes[0])
    fixed_negatives = torch.randint(0, sizes[0], (batch_size, k), generator=ctx.generator(3)).to(ctx.device)
    generator = ctx.device_generator(4)

    works: dict[str, Any] = {"core": lambda: step(batch, negatives=fixed_negatives)}
    ledger = Ledger(DEFAULT_LEDGER_MARGIN, build_distance("cosine"))
    calls: dict[str, Any] = {}
    for size in sizes:
        inputs = ctx.generator(10 + size)
        gallery = duplicated_gallery(size, REFERENCE_DIM, inputs, ctx.device)
        positives = torch.randint(0, size, (batch_size,), generator=inputs).to(ctx.device)
        queries = queries_near(gallery.features[positives].cpu(), inputs).to(ctx.device)
        info = BatchInfo(gallery.categories[positives])
        label = size_label(size)
        works[f"{label}.matmul"] = lambda q=queries, g=gallery: q @ g.features.T
        for name in ("random", *MINERS):
            sampler = build_sampler(name, gallery)
            works[f"{label}.{name}"] = calls[f"{label}.{name}"] = _sample_call(sampler, queries, positives, info, k,
                                                                               generator)
        references = torch.randint(0, size, (batch_size,), generator=inputs).to(ctx.device)
        served = calls[f"{label}.random"]()
        unit = torch.nn.functional.normalize(queries, dim=-1)
        facts = BatchInfo(info.categories, references=references)
        works[f"{label}.ledger"] = (lambda g=gallery, q=unit, p=positives, f=facts, n=served:
                                    ledger.tally(g, q, p, f, n))
    timings = time_rounds(works, repeats=repeats, warmup=1, device=ctx.device)

    result = BenchResult(NAME, TITLE, settings={
        "galleries": [size_label(s) for s in sizes], "batch": batch_size, "negatives_per_query": k,
        "dim": REFERENCE_DIM, "duplicates": DUPLICATE_FRACTION, "repeats": repeats,
        "sampler_options": "defaults (margin 0.2, near-duplicate threshold 0.98, automatic chunks)"})
    core = timings["core"]
    result.add(Figure.from_stat("core_step_ms", core.stat.map(lambda t: t * 1e3), "ms", "absolute",
                                "training step without sampling (negatives given)"))
    memory_method = PeakMemory(ctx.device).method
    for size in sizes:
        label = size_label(size)
        random_time, matmul = timings[f"{label}.random"], timings[f"{label}.matmul"]
        result.add(Figure.from_stat(f"{label}.random_sample_ms", random_time.stat.map(lambda t: t * 1e3), "ms",
                                    "absolute", "random sampler, one batch"))
        ledger_time = timings[f"{label}.ledger"]
        share = Stat.of(t / (c + r) for t, c, r in zip(ledger_time.samples, core.samples, random_time.samples))
        result.add(Figure.from_stat(f"{label}.ledger_share_of_step", share, "fraction", "ratio",
                                    "the negative ledger's tally of one batch (included in every sampler's time)",
                                    baseline="step time with the random sampler"))
        result.add(Figure.from_stat(f"{label}.ledger_ms", ledger_time.stat.map(lambda t: t * 1e3), "ms",
                                    "absolute", "the negative ledger's tally of one batch"))
        for name in MINERS:
            sample = timings[f"{label}.{name}"]
            key = name.replace("-", "_")
            ratio = Stat.of((c + s) / (c + r) for c, s, r in zip(core.samples, sample.samples, random_time.samples))
            result.add(Figure.from_stat(f"{label}.{key}_step_ratio", ratio, "x", "ratio",
                                        f"step time with {name} mining over the whole gallery",
                                        baseline="step time with the random sampler"))
            result.add(Figure.from_stat(f"{label}.{key}_over_matmul", round_ratio(sample, matmul), "x", "ratio",
                                        f"{name} sample() time", baseline=f"one [B,d]x[d,{label}] matmul"))
            result.add(Figure.from_stat(f"{label}.{key}_sample_ms", sample.stat.map(lambda t: t * 1e3), "ms",
                                        "absolute", f"{name} sampler, one batch"))
            with PeakMemory(ctx.device) as peak:
                calls[f"{label}.{name}"]()
            if peak.extra_bytes == peak.extra_bytes:  # not NaN
                full_matrix = batch_size * size * 4
                result.add(Figure(f"{label}.{key}_peak_mib", peak.extra_bytes / 2**20, "MiB", "absolute",
                                  f"peak extra memory of one {name} sample() call"))
                result.add(Figure(f"{label}.{key}_peak_vs_full_matrix", peak.extra_bytes / full_matrix, "x", "ratio",
                                  f"peak extra memory of one {name} sample() call",
                                  baseline=f"a [B,{label}] float32 similarity matrix"))
    result.notes.append(f"memory: {memory_method}")
    result.notes.append("step ratio = (core step + sampler) / (core step + random sampler), the two parts timed "
                        "in the same rounds")
    return result
