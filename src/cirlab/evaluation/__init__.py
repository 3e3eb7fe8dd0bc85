"""Evaluation on cached features: Recall@K and the benchmarks' protocols.

- :mod:`~cirlab.evaluation.recall`: the target's rank and Recall@K of any queries against any gallery,
  computed in blocks (a matrix product and a comparison per block);
- :mod:`~cirlab.evaluation.protocol`: the protocol registry and the preparation every protocol shares;
  :mod:`~cirlab.evaluation.fashioniq`, :mod:`~cirlab.evaluation.cirr` and :mod:`~cirlab.evaluation.submission`
  (CIRR's test-server files) are its entries;
- :mod:`~cirlab.evaluation.queries`: which queries a protocol ranks, leaves out or keeps outside its gallery;
- :mod:`~cirlab.evaluation.results`: the result object, its table and its JSON form;
- :mod:`~cirlab.evaluation.pipeline`: :func:`evaluate`, the Python form of ``cirlab eval``.
"""

from cirlab.evaluation.cirr import CirrValidation
from cirlab.evaluation.fashioniq import FashionIQValidation
from cirlab.evaluation.pipeline import evaluate
from cirlab.evaluation.protocol import (
    PROTOCOLS,
    NonFiniteQueriesError,
    Protocol,
    build_protocol,
    default_protocol,
    evaluate_cache,
    evaluated_categories,
)
from cirlab.evaluation.queries import CategoryQueries, category_queries
from cirlab.evaluation.recall import DEFAULT_KS, OUTSIDE_GALLERY, recall_at_k, recall_from_ranks, target_ranks
from cirlab.evaluation.results import CategoryResult, EvaluationResult
from cirlab.evaluation.submission import CirrSubmission, SubmissionResult, check_submission

__all__ = [
    "DEFAULT_KS", "OUTSIDE_GALLERY", "PROTOCOLS", "CategoryQueries", "CategoryResult", "CirrSubmission",
    "CirrValidation", "EvaluationResult", "FashionIQValidation", "NonFiniteQueriesError", "Protocol",
    "SubmissionResult", "build_protocol", "category_queries", "check_submission", "default_protocol", "evaluate",
    "evaluate_cache", "evaluated_categories", "recall_at_k", "recall_from_ranks", "target_ranks",
]
