"""Which gallery images satisfy a query of the synthetic benchmark, and how many queries more than one does.

The ground truth of ``synth_meta.json`` decides it. A triplet's reference and target (one category)
differ in its ``changed`` attributes; the two captions pin down the new value of the ``covered`` ones
and only say that the others changed ("is darker" from light, "has a different pattern", or nothing
at all). Every other attribute is as in the reference. So an image satisfies the query as well as
the target does when it

* is of the triplet's category,
* has the target's value on every attribute that did not change or that the captions cover, and
* does not have the reference's value on a changed attribute that the captions leave open
  (:func:`satisfying_values`).

The target and its exact copies always qualify. Others do when they differ from the target only
where the captions leave it open, or not at all (twins, at a raised ambiguity level). Where a
phrase says less than the rule assumes (a hue-only "is red" for a change of hue and shade leaves
the shade open too), the rule errs towards fewer satisfying images.

A query's *gallery* is every image of its category and split, as in the FashionIQ validation
protocol (:mod:`cirlab.evaluation.fashioniq`). :func:`valid_targets` lists, per query, the gallery
images that satisfy it; :func:`ambiguous_queries` counts the queries that more than their target
(and its copies) satisfy. The negative ledger applies the same rule to the training gallery
(:func:`cirlab.training.data.synthetic_true_matches`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def left_open(record: Mapping[str, Any]) -> frozenset[str]:
    """The changed attributes of a triplet record (of ``synth_meta.json``) that its captions do not pin down."""
    return frozenset(record["changed"]) - frozenset(record["covered"])


def satisfying_values(vocabulary: Mapping[str, Sequence[str]], reference: Mapping[str, str],
                      target: Mapping[str, str], open_attributes: Collection[str]) -> dict[str, frozenset[str]]:
    """Per attribute, the values an image satisfying the query may have (see the module notes).

    ``vocabulary`` holds the values of each attribute in the query's category, ``reference`` and
    ``target`` the attribute values of the triplet's images, ``open_attributes`` its :func:`left_open`.
    """
    return {attribute: frozenset(v for v in values if v != reference[attribute]) if attribute in open_attributes
            else frozenset({target[attribute]}) for attribute, values in vocabulary.items()}


def valid_targets(meta: Mapping[str, Any], key: str) -> list[list[str]]:
    """For each triplet of ``meta["triplets"][key]`` (``key`` is ``"<category>.<split>"``), the ids of every
    image of that category and split that satisfies it, in id order; its target is one of them."""
    category, split = key.split(".")
    images: Mapping[str, Any] = meta["images"]
    attributes: list[str] = list(meta["attributes"])
    vocabulary = {a: list(meta["vocabulary"][category][a]) for a in attributes}
    gallery = sorted(i for i, r in images.items() if r["category"] == category and r["split"] == split)
    codes = np.array([[vocabulary[a].index(images[i]["attributes"][a]) for a in attributes] for i in gallery],
                     dtype=np.int64).reshape(len(gallery), len(attributes))
    width = max(len(values) for values in vocabulary.values())
    columns = np.arange(len(attributes))
    found = []
    for record in meta["triplets"][key]:
        allowed = satisfying_values(vocabulary, images[record["candidate"]]["attributes"],
                                    images[record["target"]]["attributes"], left_open(record))
        table = np.zeros((len(attributes), width), dtype=bool)
        for row, attribute in enumerate(attributes):
            table[row, [vocabulary[attribute].index(v) for v in allowed[attribute]]] = True
        satisfied = table[columns, codes].all(axis=1)
        found.append([gallery[i] for i in np.flatnonzero(satisfied).tolist()])
    return found


@dataclass(frozen=True)
class AmbiguityCount:
    """How many queries other gallery images satisfy as well as their target does."""

    queries: int
    ambiguous: int  # queries with another satisfying image (an exact copy of the target counts)
    beyond_copies: int  # queries with a satisfying image that is not the target or an exact copy of it

    @property
    def share(self) -> float:
        """Share of the queries with another satisfying image (0 without queries)."""
        return self.ambiguous / self.queries if self.queries else 0.0

    @property
    def share_beyond_copies(self) -> float:
        """Share of the queries with a satisfying image other than the target's exact copies."""
        return self.beyond_copies / self.queries if self.queries else 0.0

    def __add__(self, other: AmbiguityCount) -> AmbiguityCount:
        return AmbiguityCount(self.queries + other.queries, self.ambiguous + other.ambiguous,
                              self.beyond_copies + other.beyond_copies)


def ambiguous_queries(meta: Mapping[str, Any], split: str) -> dict[str, AmbiguityCount]:
    """Per category of ``meta`` (a ``synth_meta.json``), how many of the ``split`` queries are ambiguous.

    A query is ambiguous when an image of its gallery other than its target satisfies it
    (:func:`valid_targets`); ``beyond_copies`` leaves out the target's byte-identical copies, which
    duplicate-aware evaluation and the false-negative guard already recognise.
    """
    copy_group = {image_id: group[0] for group in meta["duplicates"] for image_id in group}
    counts = {}
    for key, records in meta["triplets"].items():
        category, key_split = key.split(".")
        if key_split != split:
            continue
        ambiguous = beyond = 0
        for record, satisfying in zip(records, valid_targets(meta, key)):
            target = record["target"]
            others = [i for i in satisfying if i != target]
            ambiguous += bool(others)
            group = copy_group.get(target, target)
            beyond += any(copy_group.get(i, i) != group for i in others)
        counts[category] = AmbiguityCount(len(records), ambiguous, beyond)
    return counts
