"""The FashionIQ validation protocol on cached features, as the field reports it (CLIP4Cir and later work).

Per category:

- **gallery** = every image of ``split.<category>.<split>.json`` that the cache holds, in split-file order
  (``gallery="split"``, the default: CLIP4Cir and SPRC rank against the whole split, 3,817 / 6,346 / 5,373
  val images); or only the images that occur in the split's triplets as reference or target
  (``gallery="triplets"``: DQU-CIR's default, a smaller gallery that raises every Recall@K by several
  points). Every result records which gallery it used and its size, so that numbers from different
  galleries are never compared unknowingly;
- **queries** = every triplet of ``cap.<category>.<split>.json`` that the cache holds (empty captions included),
  each encoded as the combiner's output for (reference image features, text features of the form
  "C1 and c2"), from the cache's raw (unnormalised) features, as CLIP4Cir feeds its combiner;
- **ranking** by cosine similarity of the L2-normalised query to the L2-normalised gallery features;
- **Recall@1, 5, 10, 50** in percent; then their unweighted mean over categories, and the headline
  "average" = mean of (mean Recall@10, mean Recall@50).

The reference image is **not** removed from the gallery: CLIP4Cir keeps it for FashionIQ (it removes it
only for CIRR), and published FashionIQ numbers follow that. Ties are broken by gallery order
(:mod:`cirlab.evaluation.recall`). Which queries are ranked, left out or kept with an image outside the
gallery is stated in :mod:`cirlab.evaluation.queries`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.evaluation.protocol import PROTOCOLS, Protocol
from cirlab.evaluation.queries import triplet_gallery_rows
from cirlab.evaluation.recall import target_ranks
from cirlab.features.cache import FeatureCache

#: The galleries the FashionIQ protocol can rank against (see the module notes).
GALLERIES: tuple[str, ...] = ("split", "triplets")


@PROTOCOLS.register("fashioniq")
class FashionIQValidation(Protocol):
    """FashionIQ: per category, Recall@1/5/10/50 over the split's images, headline = mean of R@10 and R@50.

    ``gallery`` chooses the gallery: ``split`` (every image of the split file; the default, as CLIP4Cir) or
    ``triplets`` (only images that occur in the split's triplets, as DQU-CIR's default).
    """

    title = "FashionIQ"
    headline_metrics = ("R@10", "R@50")
    datasets = ("fashioniq",)

    def __init__(self, cache: FeatureCache, split: str = "val", categories: list[str] | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 1024, gallery: str = "split") -> None:
        if gallery not in GALLERIES:
            raise ConfigError(f"unknown FashionIQ gallery {gallery!r}; choose one of {', '.join(GALLERIES)}")
        self._gallery_choice = gallery
        super().__init__(cache, split=split, categories=categories, device=device, batch_size=batch_size)

    @property
    def gallery_name(self) -> str:
        return self._gallery_choice

    def gallery_rows(self, category: str) -> np.ndarray:
        if self._gallery_choice == "triplets":
            return triplet_gallery_rows(self.cache, category, self.split)
        return super().gallery_rows(category)

    def rank(self, category: str, start: int, queries: Tensor) -> tuple[Tensor, None]:
        targets = self.query_inputs(category)[2][start:start + len(queries)]
        # Queries were checked by query_embeddings and the gallery when it was loaded.
        return target_ranks(queries, self.gallery(category), targets, chunk_size=self.batch_size,
                            check_finite=False), None

    def description(self) -> str:
        gallery = ("the category's split images" if self._gallery_choice == "split"
                   else "the images of the category's triplets")
        return f"gallery = {gallery} (reference not removed), query text = \"C1 and c2\", cosine similarity"
