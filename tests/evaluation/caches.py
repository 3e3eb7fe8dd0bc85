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


def cirr_cache(root: Path, images: int = 30, queries: int = 25, test_images: int = 20, test_queries: int = 12,
               dim: int = 8, seed: int = 0, duplicates: int = 4) -> FeatureCache:
    """A CIRR-kind cache: one category ``all``, one caption form, pair ids and six-image subsets (reference and
    target among them) for a val split with targets and a test1 split without; the first ``duplicates`` val
    images repeat the features of the next ones, so that ties occur."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((images + test_images, dim)).astype(np.float32)
    features[:duplicates] = features[duplicates:2 * duplicates]
    split_rows = {"all.val": list(range(images)), "all.test1": list(range(images, images + test_images))}
    records = []
    for split, rows, count, has_target in (("val", split_rows["all.val"], queries, True),
                                           ("test1", split_rows["all.test1"], test_queries, False)):
        for i in range(count):
            members = [int(r) for r in rng.choice(rows, size=6, replace=False)]
            reference, target = members[0], members[int(rng.integers(1, 6))]
            twin = duplicates + int(rng.integers(0, duplicates))
            if split == "val" and i % 5 == 1 and twin != target:  # a twin's removal must not remove the other
                reference = members[0] = twin
            records.append({"category": "all", "split": split, "file_index": i, "reference_row": reference,
                            "target_row": target if has_target else -1, "captions": [f"caption {split} {i}"],
                            "query_id": str(1000 * (split == "test1") + 7 * i),
                            "subset_rows": sorted(set(members)), "soft_targets": [[target, 1.0]] if has_target else []})
    text = rng.standard_normal((len(records), 1, dim)).astype(np.float32)
    write_cache(root, image_ids=[f"img-{i}" for i in range(len(features))], image_features=features,
                split_rows=split_rows, triplets=records, text_features=text,
                manifest={"model": "test-model", "pretrained": "none", "preprocess": {"kind": "targetpad"},
                          "data_fingerprint": "fp", "dataset": "cirr"})
    return FeatureCache.open(root)


def naive_cirr_ranks(cache: FeatureCache, combine=sum_combine, split: str = "val") -> list[tuple[int, int]]:
    """Per query, (rank of the target without the reference, rank within the subset without the reference), by a
    stable descending sort of the scores (ties by gallery position), one query at a time."""
    gallery_rows = [int(r) for r in cache.split_rows("all", split)]
    gallery = F.normalize(torch.from_numpy(np.asarray(cache.image_features[gallery_rows])).float(), dim=-1)
    out = []
    for position in cache.triplets.select(["all"], split):
        reference = int(cache.triplets.reference_rows[position])
        target = int(cache.triplets.target_rows[position])
        image = torch.from_numpy(np.array(cache.image_features[reference: reference + 1])).float()
        text = torch.from_numpy(np.array(cache.text_features[position: position + 1, 0])).float()
        with torch.no_grad():
            query = F.normalize(combine(image, text), dim=-1)
        scores = (query @ gallery.T)[0].tolist()
        order = sorted(range(len(gallery_rows)), key=lambda j: (-scores[j], j))
        ranking = [gallery_rows[j] for j in order if gallery_rows[j] != reference]
        subset = [row for row in ranking if row in set(cache.triplets.subset_rows[position].tolist())]
        out.append((ranking.index(target), subset.index(target)))
    return out
