"""The result of an evaluation protocol: per-category Recall@K (and Recall_subset@K where the protocol has subsets),
their means, the protocol's headline, the gallery it ranked against, and the query accounting.

Every query of the split is accounted for. Queries that could not be ranked are **excluded** (left out of
the denominator) and counted by reason; queries whose reference or target lies outside the category's
gallery are **kept** and counted separately (a target outside the gallery is a miss at every K).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Reasons a query is left out of the denominator.
EXCLUDED_MISSING_IMAGE = "missing_image"  # its reference or target image is missing (cache built with policy skip)
EXCLUDED_TARGET_WITHHELD = "target_withheld"  # the split gives no target (FashionIQ's test split)
EXCLUDED_REASONS: tuple[str, ...] = (EXCLUDED_MISSING_IMAGE, EXCLUDED_TARGET_WITHHELD)

#: Kept queries whose images fall outside the category's gallery.
OUTSIDE_TARGET = "target"  # counted as a miss at every K
OUTSIDE_REFERENCE = "reference"  # ranked normally (the reference's features come from the cache)
OUTSIDE_KINDS: tuple[str, ...] = (OUTSIDE_TARGET, OUTSIDE_REFERENCE)

#: Name prefix of Recall_subset@K: ``Rs@1`` is the share of queries whose target is first within its subset.
SUBSET_PREFIX = "Rs@"


@dataclass
class CategoryResult:
    """Recall@K of one category and where each of its queries went."""

    category: str
    recall: dict[int, float]  # K -> Recall@K in percent
    num_queries: int  # queries ranked (the denominator)
    gallery_size: int
    ranks: np.ndarray  # [num_queries] 0-based target ranks, in the order of ``file_indices``
    file_indices: np.ndarray  # [num_queries] position of each ranked query in its caption file
    excluded: dict[str, list[int]] = field(default_factory=dict)  # reason -> caption-file indices
    outside_gallery: dict[str, list[int]] = field(default_factory=dict)  # kind -> caption-file indices
    missing_images: int = 0  # images of this category/split the cache lacks (policy skip)
    subset_recall: dict[int, float] = field(default_factory=dict)  # K -> Recall_subset@K in percent (CIRR)
    subset_ranks: np.ndarray | None = None  # [num_queries] 0-based target ranks within each query's subset
    subset_sizes: np.ndarray | None = None  # [num_queries] candidates in each query's subset (reference excluded)

    def metrics(self) -> dict[str, float]:
        """``R@K`` and ``Rs@K`` (Recall_subset@K) of this category, by name."""
        return {**{f"R@{k}": v for k, v in self.recall.items()},
                **{f"{SUBSET_PREFIX}{k}": v for k, v in self.subset_recall.items()}}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ranks are left out; they are available on the object)."""
        return {
            "recall": self.metrics(),
            "queries": self.num_queries,
            "gallery": self.gallery_size,
            "missing_images": self.missing_images,
            "excluded_queries": _indices_dict(self.excluded, EXCLUDED_REASONS),
            "outside_gallery_queries": _indices_dict(self.outside_gallery, OUTSIDE_KINDS),
        }


@dataclass
class EvaluationResult:
    """Per-category results of one evaluation, with the means the field reports."""

    split: str
    per_category: dict[str, CategoryResult]
    ks: tuple[int, ...]
    metadata: dict[str, Any] = field(default_factory=dict)  # features, model, combiner, checkpoint
    protocol: str = "fashioniq"  # the registry name of the protocol that produced it
    title: str = "FashionIQ"  # the benchmark's name, for tables
    headline_metrics: tuple[str, ...] = ("R@10", "R@50")  # the headline is their mean
    subset_ks: tuple[int, ...] = ()  # the K of Recall_subset@K (CIRR: 1, 2, 3)
    gallery: str = "split"  # which gallery was ranked (see the protocol's ``gallery`` option)
    description: str = ""  # one line: the protocol's rules, for the table's footer

    @property
    def mean(self) -> dict[int, float]:
        """Recall@K averaged over categories (each category weighs the same, as the field reports)."""
        return {k: float(np.mean([r.recall[k] for r in self.per_category.values()])) for k in self.ks}

    @property
    def metrics(self) -> dict[str, float]:
        """Every metric averaged over categories, by name: ``R@K``, then ``Rs@K`` where the protocol has subsets."""
        subset = {f"{SUBSET_PREFIX}{k}": float(np.mean([r.subset_recall[k] for r in self.per_category.values()]))
                  for k in self.subset_ks}
        return {**{f"R@{k}": v for k, v in self.mean.items()}, **subset}

    @property
    def headline(self) -> float:
        """The protocol's headline: the mean of its headline metrics (FashionIQ: mean Recall@10 and Recall@50;
        CIRR: Recall@5 and Recall_subset@1)."""
        metrics = self.metrics
        return float(np.mean([metrics[name] for name in self.headline_metrics]))

    @property
    def headline_name(self) -> str:
        """What the headline is, in words."""
        return "average of " + " and ".join(self.headline_metrics)

    @property
    def gallery_sizes(self) -> dict[str, int]:
        """Images in each category's gallery."""
        return {c: r.gallery_size for c, r in self.per_category.items()}

    @property
    def num_queries(self) -> int:
        """Queries ranked over every category."""
        return sum(r.num_queries for r in self.per_category.values())

    @property
    def excluded(self) -> dict[str, dict[str, int]]:
        """Per category, how many queries were left out of the denominator, by reason."""
        return {c: {reason: len(r.excluded.get(reason, [])) for reason in EXCLUDED_REASONS}
                for c, r in self.per_category.items()}

    @property
    def outside_gallery(self) -> dict[str, dict[str, int]]:
        """Per category, how many kept queries have their target or reference outside the gallery."""
        return {c: {kind: len(r.outside_gallery.get(kind, [])) for kind in OUTSIDE_KINDS}
                for c, r in self.per_category.items()}

    def query_accounting(self) -> dict[str, Any]:
        """Where the queries went, per category: ranked (against a gallery of how many images), left out by
        reason, with an image outside the gallery, and the images the cache lacks."""
        return {
            "split": self.split,
            "gallery_name": self.gallery,
            "queries": {c: r.num_queries for c, r in self.per_category.items()},
            "gallery": self.gallery_sizes,
            "excluded_queries": self.excluded,
            "outside_gallery_queries": self.outside_gallery,
            "missing_images": {c: r.missing_images for c, r in self.per_category.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: metrics, per-category counts, query accounting and metadata."""
        return {
            "protocol": self.protocol,
            "split": self.split,
            "gallery": {"name": self.gallery, "sizes": self.gallery_sizes},
            "metrics": {
                "per_category": {c: r.metrics() for c, r in self.per_category.items()},
                "mean": self.metrics,
                "headline": {"name": self.headline_name, "metrics": list(self.headline_metrics),
                             "value": self.headline},
                f"average_{'_'.join(self.headline_metrics)}": self.headline,
            },
            "num_queries": self.num_queries,
            "categories": {c: r.to_dict() for c, r in self.per_category.items()},
            "excluded_queries": self.excluded,
            "outside_gallery_queries": self.outside_gallery,
            **self.metadata,
        }

    def format_table(self) -> str:
        """A table for the terminal: one row per category, the mean, the headline and the accounting."""
        names = list(self.metrics)
        header = f"{'category':<10}{'queries':>9}{'gallery':>9}" + "".join(f"{name:>8}" for name in names)
        lines = [self._title(), header, "-" * len(header)]
        for category, r in self.per_category.items():
            values = r.metrics()
            lines.append(f"{category:<10}{r.num_queries:>9}{r.gallery_size:>9}"
                         + "".join(f"{values[name]:>8.2f}" for name in names))
        lines.append("-" * len(header))
        lines.append(f"{'mean':<10}{self.num_queries:>9}{'':>9}" + "".join(f"{v:>8.2f}" for v in self.metrics.values()))
        lines.append(f"{self.headline_name}: {self.headline:.2f}")
        lines.extend(self._footer())
        return "\n".join(lines)

    def _title(self) -> str:
        parts = [f"{self.title} {self.split}", f"gallery: {self.gallery}"]
        for key in ("model", "combiner", "checkpoint", "features"):
            value = self.metadata.get(key)
            if isinstance(value, dict):
                value = value.get("path") or value.get("name")
            if value:
                parts.append(f"{key}: {value}")
        return " | ".join(parts)

    def _footer(self) -> list[str]:
        lines = []
        left_out = [f"{c}: {n} {reason.replace('_', ' ')}" for c, reasons in self.excluded.items()
                    for reason, n in reasons.items() if n]
        missing = [f"{c}: {r.missing_images}" for c, r in self.per_category.items() if r.missing_images]
        lines.append("queries left out (not counted): " + ("; ".join(left_out) if left_out else "none"))
        if missing:
            lines.append("images missing from the cache: " + "; ".join(missing))
        outside = [f"{c}: {n} {kind}" for c, kinds in self.outside_gallery.items() for kind, n in kinds.items() if n]
        lines.append("queries with an image outside the gallery (kept; a target outside is a miss): "
                     + ("; ".join(outside) if outside else "none"))
        if self.description:
            lines.append(f"protocol: {self.description}")
        return lines


def _indices_dict(groups: dict[str, list[int]], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {key: {"count": len(groups.get(key, [])), "file_indices": [int(i) for i in groups.get(key, [])]}
            for key in keys}
