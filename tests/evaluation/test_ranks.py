"""The per-query ranks file: round trip, names, and a damaged file as a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.errors import CacheMismatchError
from cirlab.evaluation import evaluate_cache, recall_from_ranks
from cirlab.evaluation.ranks import CategoryRanks, evaluation_name, ranks_of, read_ranks, write_ranks

from .caches import random_cache, sum_combine


def test_names():
    assert evaluation_name("val", 3) == "val/epoch-0003"
    assert evaluation_name("test", "best") == "test/best"


def test_an_evaluations_ranks_round_trip_and_give_back_its_recall(tmp_path):
    result = evaluate_cache(random_cache(tmp_path / "cache"), sum_combine, show_progress=False)
    evaluations = {"val/epoch-0000": ranks_of(result), "test/best": {
        "dress": CategoryRanks(np.array([0, 5], dtype=np.int32), np.array([1, 0], dtype=np.int32), 9)}}
    write_ranks(tmp_path / "ranks.npz", evaluations)
    loaded = read_ranks(tmp_path / "ranks.npz")
    assert list(loaded) == ["val/epoch-0000", "test/best"]
    for category, entry in loaded["val/epoch-0000"].items():
        expected = result.per_category[category]
        assert np.array_equal(entry.ranks, expected.ranks) and np.array_equal(entry.file_indices, expected.file_indices)
        assert entry.gallery_size == expected.gallery_size
        assert recall_from_ranks(torch.from_numpy(entry.ranks.astype(np.int64)), (1, 10)) == \
            pytest.approx({k: expected.recall[k] for k in (1, 10)})
    assert loaded["test/best"]["dress"].gallery_size == 9


def test_a_damaged_ranks_file_is_a_one_line_error(tmp_path):
    (tmp_path / "ranks.npz").write_bytes(b"not a zip file")
    with pytest.raises(CacheMismatchError, match="unreadable ranks file") as info:
        read_ranks(tmp_path / "ranks.npz")
    assert "\n" not in str(info.value)
