"""Evaluation on cached features: Recall@K and the FashionIQ validation protocol.

- :mod:`~cirlab.evaluation.recall`: the target's rank and Recall@K of any queries against any gallery,
  computed in blocks (a matrix product and a comparison per block);
- :mod:`~cirlab.evaluation.fashioniq`: the FashionIQ protocol over a feature cache, for any combiner;
- :mod:`~cirlab.evaluation.results`: the result object, its table and its JSON form;
- :mod:`~cirlab.evaluation.pipeline`: :func:`evaluate`, the Python form of ``cirlab eval``.
"""

from cirlab.evaluation.fashioniq import (
    CategoryQueries,
    FashionIQValidation,
    NonFiniteQueriesError,
    category_queries,
    evaluate_fashioniq,
    evaluated_categories,
)
from cirlab.evaluation.pipeline import evaluate
from cirlab.evaluation.recall import DEFAULT_KS, OUTSIDE_GALLERY, recall_at_k, recall_from_ranks, target_ranks
from cirlab.evaluation.results import CategoryResult, EvaluationResult

__all__ = [
    "DEFAULT_KS", "OUTSIDE_GALLERY", "CategoryQueries", "CategoryResult", "EvaluationResult", "FashionIQValidation",
    "NonFiniteQueriesError", "category_queries", "evaluate", "evaluate_fashioniq", "evaluated_categories",
    "recall_at_k", "recall_from_ranks", "target_ranks",
]
