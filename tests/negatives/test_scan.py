"""Chunked scanning building blocks: running top-k, chunk-independent random keys, cyclic filling."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import DuplicateGuard
from cirlab.negatives.scan import (
    CHUNK_ELEMENTS,
    MIN_CHUNK_ITEMS,
    RandomKeys,
    RunningTopK,
    chunk_items,
    compact,
    fill_cyclic,
    fill_with_fallback,
    scan_gallery,
    top_per_row,
)

from .conftest import unit_queries


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_running_top_k_equals_a_full_top_k(chunk: int) -> None:
    values = torch.randn(5, 200, generator=torch.Generator().manual_seed(0))
    top = RunningTopK(5, 6, fill=float("-inf"), dtype=values.dtype, device=values.device)
    for start in range(0, 200, chunk):
        top.update(values[:, start:start + chunk], torch.arange(start, min(start + chunk, 200)))
    got_values, got_indices, valid = top.result()
    expected = values.topk(6, dim=1)
    assert torch.equal(got_values, expected.values) and torch.equal(got_indices, expected.indices)
    assert valid.all()


def test_top_per_row_takes_the_largest_sparse_entries_by_value_then_item() -> None:
    generator = torch.Generator().manual_seed(2)
    values = torch.randint(0, 6, (5, 80), generator=generator).double()  # ties everywhere, across the cut too
    present = torch.rand(5, 80, generator=generator) < 0.5
    present[3] = False  # a row without entries
    present[4, 5:] = False  # a row with fewer entries than k
    rows, columns = present.nonzero(as_tuple=True)
    dense = values.masked_fill(~present, -1.0)
    for k in (1, 4, 12):
        order = torch.sort(dense, dim=1, descending=True, stable=True).indices[:, :k]
        expected_values = dense.gather(1, order)
        top_values, indices, valid = top_per_row(rows, values[rows, columns], columns, 5, k, -1.0)
        assert torch.equal(top_values, expected_values) and torch.equal(valid, expected_values >= 0)
        assert torch.equal(indices, torch.where(valid, order, -1))


def test_running_top_k_marks_missing_entries() -> None:
    top = RunningTopK(2, 3, fill=-1, dtype=torch.long, device=torch.device("cpu"))
    top.update(torch.tensor([[5, -1], [-1, -1]]), torch.tensor([10, 11]))
    _, indices, valid = top.result()
    assert indices.tolist() == [[10, -1, -1], [-1, -1, -1]]
    assert valid.tolist() == [[True, False, False], [False, False, False]]


def test_random_keys_do_not_depend_on_chunking() -> None:
    keys = RandomKeys(1000, 4, torch.Generator().manual_seed(3), torch.device("cpu"))
    whole = keys.chunk(0, 1000)
    pieces = torch.cat([keys.chunk(s, min(s + 37, 1000)) for s in range(0, 1000, 37)], dim=1)
    assert torch.equal(whole, pieces)
    assert torch.equal(keys.chunk(100, 200, torch.tensor([2, 0])), whole[[2, 0], 100:200])
    assert ((whole >= 0) & (whole < 1)).all()
    assert not torch.equal(whole[0], whole[1])
    again = RandomKeys(1000, 4, torch.Generator().manual_seed(3), torch.device("cpu")).chunk(0, 1000)
    other = RandomKeys(1000, 4, torch.Generator().manual_seed(4), torch.device("cpu")).chunk(0, 1000)
    assert torch.equal(whole, again) and not torch.equal(whole, other)


def test_random_keys_of_pairs_are_those_of_their_chunks() -> None:
    keys = RandomKeys(500, 6, torch.Generator().manual_seed(5), torch.device("cpu"))
    rows, items = torch.tensor([0, 0, 3, 5, 5]), torch.tensor([0, 499, 17, 250, 251])
    assert torch.equal(keys.pairs(rows, items), keys.chunk(0, 500)[rows, items])


def test_random_keys_rank_items_uniformly() -> None:
    # Where the top key of each of 4000 rows lands among 10 items: every item about 400 times.
    keys = RandomKeys(10, 4000, torch.Generator().manual_seed(7), torch.device("cpu")).chunk(0, 10)
    counts = torch.bincount(keys.argmax(dim=1), minlength=10)
    assert counts.min() > 320 and counts.max() < 480


def test_compact_keeps_order_and_pads() -> None:
    indices = torch.tensor([[4, 5, 7, 8], [1, 2, 3, 6]])
    keep = torch.tensor([[False, True, False, True], [False, False, False, False]])
    picked, valid = compact(indices, keep, 3)
    assert picked.tolist() == [[5, 8, -1], [-1, -1, -1]] and valid.tolist() == [[True, True, False], [False] * 3]
    picked, valid = compact(indices, keep, 6)
    assert picked.shape == (2, 6) and picked[0].tolist() == [5, 8, -1, -1, -1, -1]


def test_chunk_items() -> None:
    assert chunk_items(100, 256) == 100
    assert chunk_items(None, 256) == CHUNK_ELEMENTS // 256
    assert chunk_items(None, 10**9) == MIN_CHUNK_ITEMS


def test_fill_cyclic_compacts_then_repeats() -> None:
    indices = torch.tensor([[4, -1, 7, -1], [1, 2, 3, 5], [-1, -1, -1, -1]])
    valid = indices >= 0
    picks, repeated = fill_cyclic(indices, valid, 5)
    assert picks.tolist() == [[4, 7, 4, 7, 4], [1, 2, 3, 5, 1], [-1, -1, -1, -1, -1]]
    assert repeated.tolist() == [3, 1, 5]
    picks, repeated = fill_cyclic(indices, valid, 2)
    assert picks.tolist() == [[4, 7], [1, 2], [-1, -1]] and repeated.tolist() == [0, 0, 2]


def test_fill_with_fallback_puts_own_picks_first_then_the_fallback() -> None:
    picks = torch.tensor([[4, -1, 7], [-1, -1, -1]])
    extra = torch.tensor([[9, -1], [3, 8]])
    merged, repeated = fill_with_fallback(picks, picks >= 0, extra, extra >= 0, torch.tensor([0, 1]), 20, 4)
    assert merged.tolist() == [[4, 7, 9, 4], [3, 8, 3, 8]] and repeated.tolist() == [1, 2]


def test_fill_with_fallback_names_only_the_targets_without_any_negative() -> None:
    picks = torch.tensor([[5], [-1], [-1]])
    extra = torch.tensor([[-1], [-1], [2]])
    with pytest.raises(ConfigError, match=r"gallery item\(s\) \[12\]: every one of the 20 items"):
        fill_with_fallback(picks, picks >= 0, extra, extra >= 0, torch.tensor([11, 12, 13]), 20, 2)


@pytest.mark.parametrize("threshold", [0.98, None])
def test_scan_covers_the_gallery_with_exact_cosines(gallery, threshold) -> None:
    guard = DuplicateGuard(gallery, threshold)
    queries, positives = unit_queries(3, gallery.dim, 1), torch.tensor([0, 10, 50])
    chunks = list(scan_gallery(gallery, positives, queries, 70, guard=guard))
    assert [(c.start, c.stop) for c in chunks] == [(0, 70), (70, 140), (140, 210), (210, 280), (280, 300)]
    columns = torch.cat([c.columns for c in chunks])
    assert torch.equal(columns, torch.arange(len(gallery)))
    cosines = torch.cat([c.cosines for c in chunks], dim=1)
    assert torch.allclose(cosines, queries @ gallery.features.T, atol=1e-6)
    excluded = torch.cat([c.flags.excluded for c in chunks], dim=1)
    assert torch.equal(excluded, guard.flags(positives, columns).excluded)
    assert all(c.cosines is None for c in scan_gallery(gallery, positives, None, 100, guard=guard))
    assert all(c.flags is None for c in scan_gallery(gallery, positives, queries, 100))
