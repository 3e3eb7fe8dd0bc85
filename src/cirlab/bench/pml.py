"""In-batch semi-hard mining: cirlab's ``semi-hard`` sampler against pytorch-metric-learning's miner.

cirlab has no separate in-batch miner; in-batch mining is the ``semi-hard`` sampler over a gallery made
of the batch's own targets (its ``positives`` are then ``0..B-1``). pytorch-metric-learning's
``TripletMarginMiner(type_of_triplets="semihard")`` sees the same batch as labelled embeddings: query
``i`` (anchor) and target ``i`` (the reference embedding) share the unique label ``i``, so each anchor's
one positive is its own target and every other target is a candidate negative. The reference
labels are passed as a separate tensor, otherwise the miner would drop the anchor-target pair.

Definitions, which must agree for the sets to agree:

- the miner's distance must be ``CosineSimilarity()`` to match cirlab's cosine distance ``1 - cos``
  (its default, ``LpDistance``, is the Euclidean distance between normalised embeddings: cirlab's
  ``distance="euclidean"``, checked too);
- the miner keeps ``0 < d(a, n) - d(a, p) <= margin``; cirlab keeps ``d(q, p) < d(q, n) < d(q, p) + margin``
  and counts items within 1e-5 in cosine of the target as equally close. They differ only on the two
  boundaries; triplets that close to one are counted (``boundary_triplets``) and their anchors left out.

The set check asks cirlab for ``B - 1`` negatives per query, i.e. every other item of the batch: the
sampler returns its semi-hard window first (a uniform order) and then its fallbacks. With ``s`` the
miner's number of semi-hard negatives for an anchor, cirlab's first ``s`` picks must be exactly the
miner's set, and the sampler's count of non-fallback picks must equal the miner's total; together
these prove the two sets equal. Timing uses the usual ``k = 16`` and includes building cirlab's
gallery and sampler from the batch, which the miner does not need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.bench.context import BenchContext
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import round_ratio, time_rounds
from cirlab.bench.training import REFERENCE_DIM

NAME = "pml"
TITLE = "in-batch semi-hard mining: agreement with and speed against pytorch-metric-learning"

MARGIN = 0.2
TIMING_K = 16
#: Half-width, in cosine, of the band around each window boundary inside which the two definitions may differ.
BOUNDARY_BAND = 2e-5


def batch_embeddings(size: int, dim: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(queries, targets)``: targets in small clusters of varied tightness, each query near its target
    at a varied distance, so that some anchors have several semi-hard negatives and others none."""
    clusters = max(1, size // 8)
    centres = F.normalize(torch.randn(clusters, dim, generator=generator), dim=1)
    spread = torch.empty(clusters).uniform_(0.3, 1.5, generator=generator)
    assignment = torch.randint(0, clusters, (size,), generator=generator)
    noise = torch.randn(size, dim, generator=generator) * (spread[assignment, None] / dim**0.5)
    targets = F.normalize(centres[assignment] + noise, dim=1)
    offset = torch.empty(size).uniform_(0.1, 1.0, generator=generator)
    queries = F.normalize(targets + torch.randn(size, dim, generator=generator) * (offset[:, None] / dim**0.5), dim=1)
    return queries, targets


def pml_semi_hard_sets(queries: Tensor, targets: Tensor, distance: str) -> list[set[int]]:
    """pytorch-metric-learning's semi-hard negatives of each anchor (label i = query i = target i)."""
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    metric = CosineSimilarity() if distance == "cosine" else LpDistance()
    miner = TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=metric)
    labels = torch.arange(len(queries), device=queries.device)
    anchors, _, negatives = miner(queries, labels, targets, labels.clone())
    sets: list[set[int]] = [set() for _ in range(len(queries))]
    for anchor, negative in zip(anchors.tolist(), negatives.tolist()):
        sets[anchor].add(negative)
    return sets


def cirlab_in_batch(queries: Tensor, targets: Tensor, k: int, distance: str, generator: torch.Generator
                    ) -> tuple[Tensor, dict[str, float]]:
    """cirlab's semi-hard picks over the batch's targets, and the sampler's statistics."""
    from cirlab.negatives import BatchInfo, Gallery, build_sampler

    size = len(queries)
    categories = torch.zeros(size, dtype=torch.long, device=queries.device)
    gallery = Gallery.from_raw(targets, categories)
    sampler = build_sampler("semi-hard", gallery, margin=MARGIN, distance=distance, near_duplicate_threshold=None)
    picks = sampler.sample(queries, torch.arange(size, device=queries.device), BatchInfo(categories), k, generator)
    return picks, sampler.stats()


def boundary_anchors(queries: Tensor, targets: Tensor, distance: str) -> Tensor:
    """Per anchor, the number of triplets within :data:`BOUNDARY_BAND` (in cosine) of a window boundary."""
    from cirlab.distances import build_distance

    metric = build_distance(distance)
    cosines = queries.double() @ targets.double().T
    positive = cosines.diagonal()
    lower = metric.to_unit_cosine(metric.from_unit_cosine(positive) + MARGIN)
    near = ((cosines - positive[:, None]).abs() < BOUNDARY_BAND) | ((cosines - lower[:, None]).abs() < BOUNDARY_BAND)
    near.fill_diagonal_(False)
    return near.sum(dim=1)


def run(ctx: BenchContext) -> BenchResult:
    """Check set agreement for both distances and time both miners."""
    size, repeats, calls = ctx.pick(256, 128), ctx.pick(5, 3), ctx.pick(5, 3)
    queries, targets = batch_embeddings(size, REFERENCE_DIM, ctx.generator(20))
    queries, targets = queries.to(ctx.device), targets.to(ctx.device)
    result = BenchResult(NAME, TITLE, settings={"batch": size, "dim": REFERENCE_DIM, "margin": MARGIN,
                                                "timing_k": TIMING_K, "repeats": repeats,
                                                "calls_per_round": calls})
    for distance in ("cosine", "euclidean"):
        expected = pml_semi_hard_sets(queries, targets, distance)
        picks, stats = cirlab_in_batch(queries, targets, size - 1, distance, ctx.device_generator(21))
        boundary = boundary_anchors(queries, targets, distance)
        checked = [a for a in range(size) if int(boundary[a]) == 0]
        agreeing = sum(set(picks[a, :len(expected[a])].tolist()) == expected[a] for a in checked)
        pml_total = sum(len(s) for s in expected)
        cirlab_total = stats["negatives"] - stats["fallback_negatives"]
        quick_picks, _ = cirlab_in_batch(queries, targets, TIMING_K, distance, ctx.device_generator(22))
        in_set = sum(len(set(quick_picks[a, :min(TIMING_K, len(expected[a]))].tolist()) & expected[a])
                     for a in checked)
        expected_in_set = sum(min(TIMING_K, len(expected[a])) for a in checked)
        result.add(Figure(f"{distance}.pml_triplets", pml_total, "count", "exact",
                          f"semi-hard triplets pytorch-metric-learning enumerates ({distance})"))
        result.add(Figure(f"{distance}.anchors_with_semi_hard", sum(bool(s) for s in expected), "count", "exact",
                          "anchors with at least one semi-hard negative"))
        result.add(Figure(f"{distance}.anchors_agreeing", agreeing / max(1, len(checked)), "fraction", "exact",
                          "anchors whose cirlab window equals the miner's set (1.0 = all)"))
        result.add(Figure(f"{distance}.window_total_difference", cirlab_total - pml_total, "count", "exact",
                          "cirlab's non-fallback picks minus the miner's triplets (0 = same size)"))
        result.add(Figure(f"{distance}.k16_picks_in_pml_set", in_set / max(1, expected_in_set), "fraction", "exact",
                          f"cirlab's first min(k, s) picks at k={TIMING_K} that are in the miner's set"))
        result.add(Figure(f"{distance}.boundary_triplets", int(boundary.sum()), "count", "exact",
                          "triplets within 2e-5 in cosine of a window boundary (their anchors left out)"))

    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.miners import TripletMarginMiner

    miner = TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=CosineSimilarity())
    labels = torch.arange(size, device=ctx.device)
    reference_labels = labels.clone()
    generator = ctx.device_generator(23)
    timings = time_rounds({
        "cirlab": lambda: cirlab_in_batch(queries, targets, TIMING_K, "cosine", generator),
        "pml": lambda: miner(queries, labels, targets, reference_labels),
    }, repeats=repeats, warmup=1, device=ctx.device, calls={"cirlab": calls, "pml": calls})
    result.add(Figure.from_stat("time_ratio", round_ratio(timings["cirlab"], timings["pml"]), "x", "ratio",
                                f"cirlab in-batch semi-hard (gallery + sampler + sample, k={TIMING_K})",
                                baseline="pytorch-metric-learning TripletMarginMiner semihard (cosine)"))
    result.add(Figure.from_stat("cirlab_ms", timings["cirlab"].stat.map(lambda t: t * 1e3), "ms", "absolute",
                                "cirlab in-batch semi-hard, one batch"))
    result.add(Figure.from_stat("pml_ms", timings["pml"].stat.map(lambda t: t * 1e3), "ms", "absolute",
                                "pytorch-metric-learning miner, one batch"))
    result.notes.append("the miner's distance is CosineSimilarity() for the cosine rows and its default "
                        "LpDistance() (normalised Euclidean) for the euclidean rows; labels: query i = target i")
    return result
