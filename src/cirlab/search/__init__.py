"""Composed-image search: a faiss index over gallery features and the query path that ranks it.

``build_index(features, out)`` writes an index folder (``cirlab index``); ``SearchEngine.load(index,
checkpoint)`` opens it with its feature cache and a combiner, and ``engine.search(reference, text)``
returns the top-k :class:`SearchHit`\\ s (``cirlab search``, and the service of ``cirlab serve``).
"""

from cirlab.search.build import IndexReport, build_index, ivf_recall
from cirlab.search.errors import QueryError, UnknownItemError
from cirlab.search.index import INDEX_KINDS, GalleryIndex, IndexManifest
from cirlab.search.query import SearchEngine, SearchHit

__all__ = [
    "INDEX_KINDS", "GalleryIndex", "IndexManifest", "IndexReport", "QueryError", "SearchEngine", "SearchHit",
    "UnknownItemError", "build_index", "ivf_recall",
]
