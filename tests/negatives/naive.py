"""Naive loops shared by the sampler tests: admissible rankings, the ledger's tallies, and a common check."""

from __future__ import annotations

import torch

from cirlab.negatives import LEDGER_STATS, BatchInfo, Gallery

from .conftest import naive_excluded


def cosine(gallery: Gallery, query: torch.Tensor, item: int) -> float:
    """Cosine of a normalised query with gallery item ``item``."""
    return float(query @ gallery.features[item])


def admissible_ranking(gallery: Gallery, query: torch.Tensor, target: int, threshold: float | None = 0.98) -> list[int]:
    """Items that may be negatives of ``target``, most similar to ``query`` first (ties by gallery index)."""
    excluded = naive_excluded(gallery, target, threshold)
    scored = [(-cosine(gallery, query, j), j) for j in range(len(gallery)) if j not in excluded]
    return [j for _, j in sorted(scored)]


def naive_ledger(gallery: Gallery, queries: torch.Tensor, positives: torch.Tensor, batch: BatchInfo,
                 negatives: torch.Tensor, margin: float = 0.2) -> dict[str, float]:
    """The ledger's counters of served ``negatives``, by an explicit loop (cosine distance, tie tolerance 1e-5)."""
    counts = dict.fromkeys(LEDGER_STATS, 0.0)
    groups = gallery.duplicate_groups.tolist()
    for row, target in enumerate(positives.tolist()):
        target_cosine = cosine(gallery, queries[row], target)
        reference = -1 if batch.references is None else int(batch.references[row])
        for item in negatives[row].tolist():
            value = cosine(gallery, queries[row], item)
            if value >= target_cosine - 1e-5:
                counts["ledger_harder"] += 1
            elif value <= target_cosine - margin:
                counts["ledger_easier"] += 1
            else:
                counts["ledger_semi_hard"] += 1
            same_pixels = groups[reference] >= 0 and groups[item] == groups[reference]
            if reference >= 0 and (item == reference or same_pixels):
                counts["ledger_reference"] += 1
            if int(gallery.categories[item]) == int(batch.categories[row]):
                counts["ledger_same_category"] += 1
    return counts


def assert_guarded_and_ledgered(sampler, gallery: Gallery, queries: torch.Tensor, positives: torch.Tensor,
                                batch: BatchInfo, negatives: torch.Tensor, threshold: float | None = 0.98) -> None:
    """No negative is a target or a guarded duplicate, and the ledger equals the naive tally of what was served."""
    for row, target in enumerate(positives.tolist()):
        assert not naive_excluded(gallery, target, threshold) & set(negatives[row].tolist())
    stats = sampler.stats()
    assert stats["queries"] == len(positives) and stats["negatives"] == negatives.numel()
    expected = naive_ledger(gallery, queries, positives, batch, negatives)
    assert {name: stats[name] for name in expected} == expected
