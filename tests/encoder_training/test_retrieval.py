"""Recall and chance of the held-out checks, against explicit loops and brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from cirlab.encoder_training import retrieval
from cirlab.encoder_training.retrieval import (
    composed_chance,
    composed_recall,
    image_to_text_chance,
    image_to_text_recall,
    text_to_image_chance,
    text_to_image_recall,
)

KS = (1, 2, 3, 5)


def _features(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_image_to_text_recall_matches_a_loop() -> None:
    images, texts = _features(30, seed=1), _features(6, seed=2)
    groups = torch.arange(30) % 6
    expected = {}
    for k in KS:
        hits = 0
        for i in range(30):
            scores = [float(images[i] @ texts[t]) for t in range(6)]
            better = sum(s > scores[int(groups[i])] for s in scores)
            hits += better < k
        expected[k] = 100.0 * hits / 30
    assert image_to_text_recall(images, texts, groups, KS) == pytest.approx(expected)


def test_text_to_image_recall_matches_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieval, "_BLOCK", 4)  # several blocks
    images, texts = _features(25, seed=3), _features(7, seed=4)
    groups = torch.tensor([i % 7 for i in range(25)])
    expected = {}
    for k in KS:
        hits = 0
        for t in range(7):
            ranked = sorted(range(25), key=lambda i: -float(texts[t] @ images[i]))
            hits += any(int(groups[i]) == t for i in ranked[:k])
        expected[k] = 100.0 * hits / 7
    assert text_to_image_recall(images, texts, groups, KS) == pytest.approx(expected)


def test_composed_recall_matches_a_loop_and_counts_ties_for_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieval, "_BLOCK", 3)
    queries, gallery = _features(10, seed=5), _features(12, seed=6)
    gallery[3] = gallery[4]  # a tie: target 4 is not pushed down by its duplicate 3
    targets = torch.tensor([4, 0, 1, 2, 3, 5, 6, 7, 8, 9])
    expected = {}
    for k in KS:
        hits = 0
        for q in range(10):
            own = float(queries[q] @ gallery[targets[q]])
            hits += sum(float(queries[q] @ gallery[g]) > own for g in range(12)) < k
        expected[k] = 100.0 * hits / 10
    assert composed_recall(queries, gallery, targets, KS) == pytest.approx(expected)
    assert composed_recall(gallery[targets], gallery, targets, (1,))[1] == 100.0


def test_chance_of_image_to_text_is_k_over_texts() -> None:
    assert image_to_text_chance(8, (1, 5, 10)) == {1: 12.5, 5: 62.5, 10: 100.0}
    assert composed_chance(200, (10, 50)) == {10: 5.0, 50: 25.0}


def test_chance_of_text_to_image_matches_enumeration() -> None:
    sizes = [1, 2, 4]  # three descriptions over seven images
    owner = [g for g, m in enumerate(sizes) for _ in range(m)]
    for k in (1, 2, 3):
        subsets = list(itertools.combinations(range(len(owner)), k))
        expected = sum(sum(any(owner[i] == g for i in s) for s in subsets) / len(subsets)
                       for g in range(len(sizes))) / len(sizes)
        assert text_to_image_chance(sizes, (k,))[k] == pytest.approx(100.0 * expected)
    assert text_to_image_chance(sizes, (50,))[50] == pytest.approx(100.0)
