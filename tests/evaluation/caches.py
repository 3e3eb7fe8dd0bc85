"""Builders of small feature caches, and the naive per-query reference the protocol tests compare with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cirlab.features.cache import FeatureCache, write_cache


def sum_combine(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """The element-wise-sum combiner of CLIP4Cir: normalize(image + text)."""
    return F.normalize(image_features + text_features, dim=-1)


def build_cache(root: Path, image_features: np.ndarray, split_rows: dict[str, list[int]],
                triplets: list[tuple[str, str, int, int, int]], text_features: np.ndarray | None = None,
                manifest: dict[str, Any] | None = None, seed: int = 0) -> FeatureCache:
    """Write and open a cache; ``triplets`` are (category, split, file_index, reference_row, target_row)."""
    rng = np.random.default_rng(seed)
    dim = image_features.shape[1]
    if text_features is None:
        text_features = rng.standard_normal((len(triplets), 4, dim)).astype(np.float32)
    records = [{"category": c, "split": s, "file_index": f, "reference_row": r, "target_row": t,
                "captions": [f"caption {f}", ""]} for c, s, f, r, t in triplets]
    write_cache(root, image_ids=[f"I{i}" for i in range(len(image_features))],
                image_features=image_features.astype(np.float32), split_rows=split_rows, triplets=records,
                text_features=text_features.astype(np.float32),
                manifest={"model": "test-model", "pretrained": "none", "preprocess": {"kind": "targetpad"},
                          "data_fingerprint": "fp", **(manifest or {})})
    return FeatureCache.open(root)


def random_cache(root: Path, sizes: dict[str, tuple[int, int]] | None = None, dim: int = 8,
                 seed: int = 0) -> FeatureCache:
    """A cache with a val and a train split per category; ``sizes`` maps category -> (gallery, queries).

    Val triplets pick their reference and target among the category's val images; train images exist
    so that rows outside the val galleries are present.
    """
    sizes = sizes or {"dress": (12, 10), "shirt": (9, 7), "toptee": (15, 11)}
    rng = np.random.default_rng(seed)
    split_rows: dict[str, list[int]] = {}
    triplets = []
    row = 0
    for category, (gallery, queries) in sizes.items():
        val_rows = list(range(row, row + gallery))
        split_rows[f"{category}.val"] = val_rows
        split_rows[f"{category}.train"] = [row + gallery, row + gallery + 1]
        row += gallery + 2
        for i in range(queries):
            reference, target = rng.choice(val_rows, size=2, replace=False)
            triplets.append((category, "val", i, int(reference), int(target)))
    features = rng.standard_normal((row, dim)).astype(np.float32)
    return build_cache(root, features, split_rows, triplets, seed=seed + 1)


def naive_category_ranks(cache: FeatureCache, category: str, combine=sum_combine, split: str = "val") -> list[int]:
    """Rank of each query's target by an explicit loop over the gallery (None when outside the gallery)."""
    gallery_rows = list(cache.split_rows(category, split))
    gallery = F.normalize(torch.from_numpy(np.asarray(cache.image_features[gallery_rows])).float(), dim=-1)
    ranks = []
    for position in cache.triplets.select([category], split):
        reference = int(cache.triplets.reference_rows[position])
        target = int(cache.triplets.target_rows[position])
        image = torch.from_numpy(np.array(cache.image_features[reference : reference + 1])).float()
        text = torch.from_numpy(np.array(cache.text_features[position : position + 1, 0])).float()
        with torch.no_grad():
            query = F.normalize(combine(image, text), dim=-1)[0]
        if target not in gallery_rows:
            ranks.append(None)
            continue
        t = gallery_rows.index(target)
        scores = [float(torch.dot(query, gallery[j])) for j in range(len(gallery_rows))]
        ranks.append(sum(s > scores[t] for s in scores) + sum(scores[j] == scores[t] for j in range(t)))
    return ranks


def naive_recall(ranks: list[int | None], k: int) -> float:
    """Recall@K in percent from naive ranks (None = miss)."""
    return 100.0 * sum(r is not None and r < k for r in ranks) / len(ranks)
