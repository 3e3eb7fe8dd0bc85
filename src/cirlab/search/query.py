"""The query path: reference image + modification text → combiner → top-k gallery images.

A reference is either an image id (its features are read from the feature cache, as training and
evaluation read them) or a PIL image (encoded with the cache's encoder and preprocessing, so it
lands in the same feature space). The text is encoded by the same encoder. The combiner turns the
two raw feature vectors into a unit-norm query, which the faiss index ranks the gallery against.

A query runs in two steps. :meth:`SearchEngine.prepare` checks it (k, category, text, reference) and
preprocesses an uploaded image, raising :class:`QueryError` for a bad one; :meth:`SearchEngine.search_batch`
then answers any number of prepared queries together: their texts and uploaded images are encoded as
one batch each, the combiner runs once, and faiss searches once per category filter among them. A
single query is a batch of one (:meth:`SearchEngine.search`), so there is one implementation of the
query path, and a batch's results equal its queries' one-at-a-time results up to the float rounding
of batched matrix products.

A :class:`SearchEngine` is built once and then serves any number of queries, from several threads
at once: faiss searches are read-only, torch inference runs under ``no_grad`` with the combiner in
eval mode, and the encoder (loaded on first use) is guarded by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
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


@dataclass(frozen=True, eq=False)
class PreparedQuery:
    """A checked query, ready to be searched alone or in a batch (made by :meth:`SearchEngine.prepare`).

    The reference is either a row of the feature cache (``cache_row``) or the preprocessed pixels
    ``[3, H, W]`` of an uploaded image (``pixels``). ``exclude_position`` is the index row left out of
    the results (the reference's, when it is in the gallery and is to be excluded), else ``None``.
    """

    text: str
    k: int
    category: str | None
    cache_row: int | None = None
    pixels: torch.Tensor | None = None
    exclude_position: int | None = None

    @property
    def depth(self) -> int:
        """How many items faiss must return so that ``k`` remain once the excluded one is dropped."""
        return self.k + (self.exclude_position is not None)


#: What :meth:`SearchEngine.search_batch` answers for each query: its hits, or the error that it alone met.
QueryOutcome = list[SearchHit] | CirlabError
#: The error of a query whose embedding is not finite (the combiner or the cached features are broken).
NON_FINITE = "the combiner returned a non-finite query embedding"


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
        return self.search_prepared(self.prepare(reference, text, k, category, exclude_reference))

    def search_prepared(self, query: PreparedQuery) -> list[SearchHit]:
        """The hits of one prepared query (a batch of one); raises the error it met."""
        outcome = self.search_batch([query])[0]
        if isinstance(outcome, CirlabError):
            raise outcome
        return outcome

    def prepare(self, reference: str | Image.Image, text: str, k: int = 10, category: str | None = None,
                exclude_reference: bool = True) -> PreparedQuery:
        """Check a query and preprocess its uploaded image; the arguments are :meth:`search`'s.

        Raises what :meth:`search` raises for a bad query, checked in the same order (k, category,
        text, reference), so that a bad query fails on its own before it joins a batch.
        """
        k = _check_k(k)
        if category is not None:
            self.index.check_category(category)
        text = _check_text(text)
        if isinstance(reference, str):
            row = self._cache_row(reference)
            position = self.index.position_of(reference) if exclude_reference else None
            return PreparedQuery(text=text, k=k, category=category, cache_row=row, exclude_position=position)
        pixels = self._image_preprocess(self.encoder)(reference.convert("RGB"))
        return PreparedQuery(text=text, k=k, category=category, pixels=pixels)

    def search_batch(self, queries: Sequence[PreparedQuery]) -> list[QueryOutcome]:
        """Answer prepared queries together: one text batch, one image batch, one combiner pass, and one
        faiss search per category filter among them (each with the largest depth any of its queries needs,
        then cut to each query's own ``k``).

        Returns, in order, each query's hits or the :class:`~cirlab.errors.CirlabError` it alone met (a
        non-finite query embedding); an error of the index itself (a damaged file) is raised.
        """
        if not queries:
            return []
        vectors = self._embed(queries)
        finite = np.isfinite(vectors).all(axis=1)
        outcomes: list[QueryOutcome | None] = [
            None if ok else CacheMismatchError(NON_FINITE) for ok in finite.tolist()]
        groups: dict[str | None, list[int]] = {}
        for n, query in enumerate(queries):
            if finite[n]:
                groups.setdefault(query.category, []).append(n)
        for category, members in groups.items():
            depth = max(queries[n].depth for n in members)
            scores, positions = self.index.search(vectors[members], depth, category)
            for row, n in enumerate(members):
                outcomes[n] = self._hits(queries[n], scores[row], positions[row])
        return outcomes  # type: ignore[return-value] - every entry is set above

    def query_embedding(self, reference: str | Image.Image, text: str) -> np.ndarray:
        """The ``[dim]`` unit-norm query vector of ``reference`` and ``text`` (what :meth:`search` ranks by)."""
        vector = self._embed([self.prepare(reference, text)])[0]
        if not np.isfinite(vector).all():
            raise CacheMismatchError(NON_FINITE)
        return vector

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
            return self._cached_rows([self._cache_row(reference)])[0]
        pixels = self._image_preprocess(self.encoder)(reference.convert("RGB"))
        return self._encode_images(pixels[None]).cpu().numpy()[0]

    def text_features(self, text: str) -> np.ndarray:
        """Raw ``[dim]`` features of ``text``."""
        return self._encode_texts([_check_text(text)]).cpu().numpy()[0]

    # --------------------------------------------------------------- internals
    def _embed(self, queries: Sequence[PreparedQuery]) -> np.ndarray:
        """``[B, dim]`` float32 query vectors, unit norm (a row whose combiner output is not finite stays so)."""
        import torch

        images = torch.empty((len(queries), self.index.dim), dtype=torch.float32, device=self.device)
        by_id = [n for n, query in enumerate(queries) if query.pixels is None]
        uploaded = [n for n, query in enumerate(queries) if query.pixels is not None]
        if by_id:
            rows = self._cached_rows([queries[n].cache_row for n in by_id])
            images[by_id] = torch.from_numpy(rows).to(self.device)
        if uploaded:
            images[uploaded] = self._encode_images(torch.stack([queries[n].pixels for n in uploaded]))
        texts = self._encode_texts([query.text for query in queries])
        with torch.no_grad():
            vectors = torch.nn.functional.normalize(self.combiner(images, texts).float(), dim=-1)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)

    def _hits(self, query: PreparedQuery, scores: np.ndarray, positions: np.ndarray) -> list[SearchHit]:
        hits = []
        for score, position in zip(scores.tolist(), positions.tolist()):
            if position < 0 or position == query.exclude_position:
                continue
            categories = tuple(self.index.categories_of(position))
            hits.append(SearchHit(id=self.index.ids[position], score=float(score),
                                  category=query.category if query.category is not None else categories[0],
                                  categories=categories))
            if len(hits) == query.k:
                break
        return hits

    def _cache_row(self, image_id: str) -> int:
        try:
            return self.features.row_of(image_id)
        except CacheMismatchError:
            raise UnknownItemError("reference", f"image {image_id!r} is not in the gallery or the feature "
                                                f"cache") from None

    def _cached_rows(self, rows: list[int]) -> np.ndarray:
        """``[len(rows), dim]`` float32 features of cache rows (a writable copy of the memory map)."""
        return np.array(self.features.image_features[rows], dtype=np.float32)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        encoder = self.encoder
        with self._encoder_lock:
            return encoder.encode_texts(texts)

    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
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
