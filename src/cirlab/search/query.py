"""The query path: reference image + modification text → combiner → top-k gallery images.

A reference is either an image id (its features are read from the feature cache, as training and
evaluation read them) or a PIL image (encoded with the cache's encoder and preprocessing, so it
lands in the same feature space). The text is encoded by the same encoder. The combiner turns the
two raw feature vectors into a unit-norm query, which the faiss index ranks the gallery against.

A :class:`SearchEngine` is built once and then serves any number of queries, from several threads
at once: faiss searches are read-only, torch inference runs under ``no_grad`` with the combiner in
eval mode, and the encoder (loaded on first use) is guarded by a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.search.components import check_combiner, check_encoder, encoder_spec_from_manifest
from cirlab.search.errors import QueryError, UnknownItemError
from cirlab.search.index import MANIFEST_FILE, GalleryIndex

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch import nn

    from cirlab.encoders import Encoder


@dataclass(frozen=True)
class SearchHit:
    """One result: a gallery image, its cosine similarity to the query, and its category."""

    id: str
    score: float
    category: str  # the searched category, or the image's first category when the search was unfiltered
    categories: tuple[str, ...] = ()  # every category the image belongs to

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "score": self.score, "category": self.category, "categories": list(self.categories)}


class SearchEngine:
    """Composed-image search over one gallery index.

    Args:
        index: the loaded gallery index.
        features: the feature cache the index was built from (reference-id features come from it);
            checked against the index's manifest.
        combiner: maps ``([B, d] image, [B, d] text)`` raw features to ``[B, d]`` queries; checked.
        encoder: the encoder that made the cache; loaded on first use from the cache's manifest
            when not given (text queries and uploaded images need it).
        device: where the encoder and combiner run (``auto``: CUDA when present).
        precision: autocast precision of the encoder (``None``: the cache's, or fp32 where the
            device cannot run it).
    """

    def __init__(self, index: GalleryIndex, features: FeatureCache, combiner: nn.Module,
                 encoder: Encoder | None = None, device: str = "auto", precision: str | None = None) -> None:
        from cirlab.runtime import resolve_device

        self.index = index
        self.features = features
        index.check_features(features)
        self.device = resolve_device(device)
        self.precision = precision or _usable_precision(features.manifest.get("precision"), self.device)
        self.combiner = combiner.to(self.device).eval()
        check_combiner(self.combiner, index.dim, "combiner")
        self._encoder = encoder
        if encoder is not None:
            check_encoder(encoder, index.manifest.features, index.root / MANIFEST_FILE)
        # Serialises the encoder: Hugging Face tokenizers, which open_clip uses for some models, raise
        # "Already borrowed" when two threads tokenise at once; it also guards the lazy load.
        self._encoder_lock = threading.Lock()
        self._preprocess = None

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, index_dir: str | Path, checkpoint: str | Path | None = None, *, combiner_name: str | None = None,
             features: str | Path | None = None, device: str = "auto", precision: str | None = None) -> SearchEngine:
        """Open an index, its feature cache (``features``, default: the path its manifest records) and a combiner.

        ``checkpoint`` is a training run folder (its ``best/`` is used) or a combiner folder, loaded and
        checked against the cache as ``cirlab eval`` does (:func:`~cirlab.combiners.persistence.load_combiner_for`);
        ``combiner_name`` instead builds a parameter-free combiner such as ``sum``.
        """
        from cirlab.combiners.persistence import load_combiner_for
        from cirlab.runtime import resolve_device

        if (checkpoint is None) == (combiner_name is None):
            raise ConfigError("give either a combiner checkpoint (--checkpoint RUN) or a parameter-free combiner "
                              "name (--combiner sum), not both")
        index = GalleryIndex.load(index_dir)
        features_path = Path(features) if features is not None else Path(index.manifest.features["path"])
        cache = FeatureCache.open(features_path)
        index.check_features(cache)
        combiner, _ = load_combiner_for(cache, checkpoint, name=combiner_name, device=resolve_device(device))
        return cls(index, cache, combiner, device=device, precision=precision)

    @property
    def encoder(self) -> Encoder:
        """The encoder of the feature cache, loaded (and checked) on first use."""
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    from cirlab.encoders import load_encoder

                    spec = encoder_spec_from_manifest(self.features.manifest, self.features.root)
                    encoder = load_encoder(spec, device=str(self.device), precision=self.precision)
                    check_encoder(encoder, self.index.manifest.features, self.index.root / MANIFEST_FILE)
                    self._encoder = encoder
        return self._encoder

    def warm_up(self) -> None:
        """Load the encoder and run one query end to end, so that the first real request is not slow."""
        self.encoder  # noqa: B018 - loading is the point
        if len(self.index):
            self.search(self.index.ids[0], "warm up", k=1)

    # ----------------------------------------------------------------- queries
    def search(self, reference: str | Image.Image, text: str, k: int = 10, category: str | None = None,
               exclude_reference: bool = True) -> list[SearchHit]:
        """The ``k`` gallery images closest to ``reference`` modified by ``text``, best first.

        ``category`` restricts the results to one category; ``exclude_reference`` leaves the
        reference image itself out (a reference given as an id that is in the gallery). Raises
        :class:`QueryError` on an empty text, a k below 1 or an unknown category, and
        :class:`UnknownItemError` on a reference id that is not in the feature cache.
        """
        k = _check_k(k)
        if category is not None:
            self.index.check_category(category)
        query, reference_position = self._query(reference, text)
        extra = 1 if exclude_reference and reference_position is not None else 0
        scores, positions = self.index.search(query, k + extra, category)
        hits = []
        for score, position in zip(scores[0].tolist(), positions[0].tolist()):
            if position < 0 or (extra and position == reference_position):
                continue
            categories = tuple(self.index.categories_of(position))
            hits.append(SearchHit(id=self.index.ids[position], score=float(score),
                                  category=category if category is not None else categories[0],
                                  categories=categories))
        return hits[:k]

    def query_embedding(self, reference: str | Image.Image, text: str) -> np.ndarray:
        """The ``[dim]`` unit-norm query vector of ``reference`` and ``text`` (what :meth:`search` ranks by)."""
        return self._query(reference, text)[0][0]

    def knows(self, image_id: str) -> bool:
        """Whether ``image_id`` is an image of the feature cache (and so usable as a reference id)."""
        try:
            self.features.row_of(image_id)
        except CacheMismatchError:
            return False
        return True

    def reference_features(self, reference: str | Image.Image) -> np.ndarray:
        """Raw ``[dim]`` image features of a reference id (from the cache) or image (encoded)."""
        if isinstance(reference, str):
            return self._cached_features(reference)
        return self._encode_image(reference).cpu().numpy()[0]

    def text_features(self, text: str) -> np.ndarray:
        """Raw ``[dim]`` features of ``text``."""
        return self._encode_text(_check_text(text)).cpu().numpy()[0]

    # --------------------------------------------------------------- internals
    def _query(self, reference: str | Image.Image, text: str) -> tuple[np.ndarray, int | None]:
        import torch

        text = _check_text(text)
        if isinstance(reference, str):
            image = torch.from_numpy(self._cached_features(reference))[None].to(self.device)
            position = self.index.position_of(reference)
        else:
            image, position = self._encode_image(reference), None
        text_features = self._encode_text(text)
        with torch.no_grad():
            query = self.combiner(image, text_features).float()
            query = torch.nn.functional.normalize(query, dim=-1)
        if not bool(torch.isfinite(query).all()):
            raise CacheMismatchError("the combiner returned a non-finite query embedding")
        return np.ascontiguousarray(query.cpu().numpy(), dtype=np.float32), position

    def _cached_features(self, image_id: str) -> np.ndarray:
        try:
            row = self.features.row_of(image_id)
        except CacheMismatchError:
            raise UnknownItemError("reference", f"image {image_id!r} is not in the gallery or the feature "
                                                f"cache") from None
        return np.array(self.features.image_features[row], dtype=np.float32)  # a writable copy of the memory map

    def _encode_text(self, text: str) -> torch.Tensor:
        encoder = self.encoder
        with self._encoder_lock:
            return encoder.encode_texts([text])

    def _encode_image(self, image: Image.Image) -> torch.Tensor:
        encoder = self.encoder
        pixels = self._image_preprocess(encoder)(image.convert("RGB"))[None]
        with self._encoder_lock:
            return encoder.encode_images(pixels)

    def _image_preprocess(self, encoder: Encoder) -> Any:
        if self._preprocess is None:
            from cirlab.data.transforms import DEFAULT_TARGET_RATIO, build_preprocess

            record = self.index.manifest.features.get("preprocess") or {"kind": "encoder"}
            self._preprocess = build_preprocess(record.get("kind", "encoder"), encoder.preprocess,
                                                float(record.get("target_ratio", DEFAULT_TARGET_RATIO)))
        return self._preprocess


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError("k", f"must be a positive integer, got {k!r}")
    return int(k)


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QueryError("text", "the modification text is empty")
    return text.strip()


def _usable_precision(recorded: Any, device: Any) -> str:
    """The cache's precision when this device can run it, else fp32 (fp16 autocast needs a GPU)."""
    if recorded in ("bf16", "fp16") and not (recorded == "fp16" and device.type == "cpu"):
        return str(recorded)
    return "fp32"


def search_index(index: str | Path, reference: str | Path, text: str, *, checkpoint: str | Path | None = None,
                 combiner_name: str | None = None, features: str | Path | None = None, k: int = 10,
                 category: str | None = None, exclude_reference: bool = True, device: str = "auto") -> list[SearchHit]:
    """One query from files (the library form of ``cirlab search``).

    ``reference`` is an image id of the feature cache or, failing that, the path of an image file,
    decoded with the data layer's safety limits and encoded like the cache's images.
    """
    from cirlab.data.images import load_image

    engine = SearchEngine.load(index, checkpoint, combiner_name=combiner_name, features=features, device=device)
    ref = str(reference)
    if engine.knows(ref):
        return engine.search(ref, text, k=k, category=category, exclude_reference=exclude_reference)
    path = Path(ref)
    if not path.is_file():
        raise UnknownItemError("reference", f"{ref!r} is neither an image id of the feature cache "
                                            f"({engine.features.root}) nor an image file")
    return engine.search(load_image(path), text, k=k, category=category, exclude_reference=exclude_reference)
