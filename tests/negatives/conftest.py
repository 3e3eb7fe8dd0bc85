"""Tiny galleries with known duplicates, and naive reference implementations the samplers are checked against."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlab.negatives import Gallery


def make_gallery(size: int = 300, dim: int = 16, categories: int = 3, seed: int = 0, exact_pairs: int = 0,
                 near_pairs: int = 0, clusters: int = 10) -> Gallery:
    """Unit features around ``clusters`` random centres (same-cluster cosines mostly 0.6-0.9, so that
    semi-hard windows are populated); the first ``exact_pairs`` pairs of items (0-1, 2-3, ...) are exact
    duplicates (same group, same features), the next ``near_pairs`` pairs near-duplicates (cosine about
    0.9995, no group)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator)
    assignment = torch.randint(0, clusters, (size,), generator=generator)
    features = centres[assignment] + 0.5 * torch.randn(size, dim, generator=generator)
    groups = torch.full((size,), -1, dtype=torch.long)
    for pair in range(exact_pairs):
        a, b = 2 * pair, 2 * pair + 1
        features[b] = features[a]
        groups[a] = groups[b] = pair
    for pair in range(exact_pairs, exact_pairs + near_pairs):
        a, b = 2 * pair, 2 * pair + 1
        features[b] = features[a] + 0.03 * features[a].norm() * F.normalize(torch.randn(dim, generator=generator),
                                                                            dim=0)
    cats = torch.randint(0, categories, (size,), generator=generator)
    for pair in range(exact_pairs + near_pairs):  # duplicates share a category
        cats[2 * pair + 1] = cats[2 * pair]
    return Gallery.from_raw(features, cats, groups)


def naive_excluded(gallery: Gallery, target: int, threshold: float | None) -> set[int]:
    """Items that may never be a negative of ``target``, by an explicit loop."""
    excluded = {target}
    for j in range(len(gallery)):
        same_group = gallery.duplicate_groups[target] >= 0 and gallery.duplicate_groups[j] == \
            gallery.duplicate_groups[target]
        near = threshold is not None and float(gallery.features[j] @ gallery.features[target]) > threshold
        if same_group or near:
            excluded.add(j)
    return excluded


def unit_queries(count: int, dim: int, seed: int) -> torch.Tensor:
    """``count`` random L2-normalised queries."""
    return F.normalize(torch.randn(count, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def near_target_queries(gallery: Gallery, positives: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Queries close to their targets (as a trained combiner's would be), so the semi-hard window is populated."""
    generator = torch.Generator().manual_seed(seed)
    noisy = gallery.features[positives] + noise * torch.randn(len(positives), gallery.dim, generator=generator)
    return F.normalize(noisy, dim=1)


@pytest.fixture
def gallery() -> Gallery:
    """300 items in 3 categories with 5 exact-duplicate pairs and 5 near-duplicate pairs."""
    return make_gallery(exact_pairs=5, near_pairs=5)
