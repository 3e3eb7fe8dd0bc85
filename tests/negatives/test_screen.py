"""The bf16 screen: exact fp32 cosines bit for bit, the same closest items and windows as the fp32 scan, and the
same picks and counts from ``hard`` and ``semi-hard`` with and without it, ties included."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F

from cirlab.negatives import BatchInfo, Gallery, HardSampler, build_sampler
from cirlab.negatives.scan import RunningTopK, scan_gallery
from cirlab.negatives.screen import EXACT_BLOCK_ROWS, MIN_SCREEN_ITEMS, GalleryScreen, exact_cosines

from .conftest import make_gallery, near_target_queries

DIM = 64


def _tied_gallery(size: int = 1500, seed: int = 0, copies: int = 0) -> Gallery:
    """Clustered items, one in ten an exact copy of another (same group), some pairs near-duplicates, and
    optionally item 0 with ``copies`` exact copies, in a direction of their own (so that only a query near
    item 0 has them among its closest items, more of them than its list holds)."""
    gallery = make_gallery(size=size, dim=DIM, clusters=12, seed=seed, exact_pairs=size // 20, near_pairs=size // 40)
    features, groups = gallery.features.clone(), gallery.duplicate_groups.clone()
    if copies:
        direction = torch.randn(DIM, generator=torch.Generator().manual_seed(seed + 100))
        features[[0, 1, *range(size - copies, size)]] = F.normalize(direction, dim=0)
        groups[size - copies:] = groups[0]
    return Gallery(features, gallery.categories, groups)


def _queries(gallery: Gallery, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    positives = torch.randint(0, len(gallery), (rows,), generator=torch.Generator().manual_seed(seed))
    positives[:3] = torch.tensor([0, 1, 2])  # an item with many copies, and an exact pair
    return F.normalize(near_target_queries(gallery, positives, noise=0.05, seed=seed), dim=1), positives


def _screened(on: bool):
    return patch.object(GalleryScreen, "pays", staticmethod(lambda gallery, rows: on))


def _dense_closest(gallery: Gallery, queries: torch.Tensor, width: int, chunk_size: int | None):
    top = RunningTopK(queries.shape[0], width, fill=float("-inf"), dtype=queries.dtype, device=queries.device)
    for chunk in scan_gallery(gallery, torch.zeros(queries.shape[0], dtype=torch.long), queries, chunk_size):
        top.update(chunk.cosines, chunk.columns)
    return top.result()


def test_exact_cosines_are_the_products_entries_bit_for_bit() -> None:
    gallery = _tied_gallery()
    queries, _ = _queries(gallery, 37, seed=1)  # 37 rows: the last block of 16 overlaps the one before
    full = queries @ gallery.features.T
    generator = torch.Generator().manual_seed(2)
    for pairs in (500, 5):  # 5 pairs: fewer items than a product's minimum width, padded
        rows = torch.randint(0, 37, (pairs,), generator=generator).sort().values
        columns = torch.randint(0, len(gallery), (pairs,), generator=generator)
        assert torch.equal(exact_cosines(queries, gallery.features, rows, columns), full[rows, columns])


@pytest.mark.parametrize(("width", "chunk_size"), [(49, None), (21, 100), (5, 64), (49, 29)])
def test_closest_equals_the_fp32_scan(width: int, chunk_size: int | None) -> None:
    gallery = _tied_gallery(copies=30)
    queries, _ = _queries(gallery, 40, seed=3)
    screen = GalleryScreen(gallery)
    expected = _dense_closest(gallery, queries, width, chunk_size)
    full = queries @ gallery.features.T
    _assert_same_closest(screen.closest(queries, width, chunk_size), expected, full)
    rows = torch.tensor([0, 7, 8, 39])  # a subset, its exact cosines still from the whole batch's products
    _assert_same_closest(screen.closest(queries, width, chunk_size, rows=rows), [t[rows] for t in expected],
                         full[rows])


def _assert_same_closest(got, expected, full: torch.Tensor) -> None:
    """Equal cosines, equal items; where exact copies tie across the cut, the screen keeps the smallest items
    (the scan whichever torch.topk keeps)."""
    (values, indices, valid), (want_values, want_indices, want_valid) = got, expected
    assert torch.equal(values, want_values) and torch.equal(valid, want_valid)
    assert torch.equal(values, full.gather(1, indices))
    at_cut = values == values[:, -1:]
    assert torch.equal(indices[~at_cut], want_indices[~at_cut])
    for row in range(len(values)):
        tied = (full[row] == values[row, -1]).nonzero().flatten()
        assert indices[row][at_cut[row]].tolist() == tied[:int(at_cut[row].sum())].tolist()


@pytest.mark.parametrize("chunk_size", [None, 100, 29])
def test_window_equals_the_fp32_scan_on_its_very_edges(chunk_size: int | None) -> None:
    gallery = _tied_gallery()
    queries, positives = _queries(gallery, 24, seed=4)
    full = queries @ gallery.features.T
    # Edges at actual cosines of the fp32 product (one bound reached exactly, strict inequalities) and off them.
    lower = full[torch.arange(24), torch.arange(100, 124)]
    upper = full[torch.arange(24), positives]
    lower[::3] = upper[::3] - 0.2
    inside = (full > lower[:, None]) & (full < upper[:, None])
    rows, items = GalleryScreen(gallery).window(queries, lower, upper, chunk_size)
    assert torch.equal(torch.stack([rows, items]), inside.nonzero().T)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("name", "options", "k"), [
    ("hard", {}, 16), ("hard", {"top_m": 24, "chunk_size": 100}, 8), ("hard", {"near_duplicate_threshold": None}, 5),
    ("semi-hard", {}, 16), ("semi-hard", {"margin": 0.05, "chunk_size": 100}, 8),
    ("semi-hard", {"distance": "euclidean", "margin": 0.3}, 12),
])
def test_samplers_pick_and_count_the_same_with_and_without_the_screen(name: str, options: dict, k: int,
                                                                       seed: int) -> None:
    gallery = _tied_gallery(seed=seed, copies=(30, 60, 30)[seed])  # 60 copies: more than a hard query's list
    queries, positives = _queries(gallery, 48, seed=seed + 10)
    batch = BatchInfo(gallery.categories[positives])
    results = []
    for on in (False, True):
        sampler = build_sampler(name, gallery, **options)
        with _screened(on):
            picks = sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed))
        assert (sampler._screen is not None) == on
        results.append((picks, sampler.stats()))
    (dense, dense_stats), (screened, screened_stats) = results
    assert torch.equal(dense, screened) and dense_stats == screened_stats
    if name == "hard":
        assert dense_stats["guard_exact_duplicates"] > 0


def test_it_pays_for_large_cpu_galleries_and_full_batches_only() -> None:
    small = make_gallery(size=50)
    assert not GalleryScreen.pays(small, 256)
    large = Gallery.from_raw(torch.randn(MIN_SCREEN_ITEMS, 4), torch.zeros(MIN_SCREEN_ITEMS, dtype=torch.long))
    assert not GalleryScreen.pays(large, EXACT_BLOCK_ROWS - 1)
    with patch("cirlab.negatives.screen.native_bf16", return_value=True):
        assert GalleryScreen.pays(large, EXACT_BLOCK_ROWS)
    with patch("cirlab.negatives.screen.native_bf16", return_value=False):
        assert not GalleryScreen.pays(large, 256)


def test_hard_queries_with_many_duplicates_are_ranked_further_then_rescanned() -> None:
    # The queries near items 0 and 1 find only their 62 exact copies among their closest items: their short
    # lists hold no admissible item, their long ones neither, and they are ranked again under the guard.
    gallery = _tied_gallery(copies=60)
    queries, positives = _queries(gallery, 20, seed=7)
    batch = BatchInfo(gallery.categories[positives])
    sampler = build_sampler("hard", gallery)
    with _screened(True), patch.object(GalleryScreen, "closest", autospec=True,
                                       side_effect=GalleryScreen.closest) as closest, \
            patch.object(HardSampler, "guarded_top", wraps=sampler.guarded_top) as rescan:
        screened = sampler.sample(queries, positives, batch, 16, torch.Generator().manual_seed(0))
    assert [call.kwargs.get("rows") is not None for call in closest.call_args_list] == [False, True]
    assert closest.call_args_list[1].kwargs["rows"].tolist() == [0, 1]  # targets 0 and 1: both copies
    assert rescan.call_count == 1
    dense = build_sampler("hard", gallery)
    with _screened(False):
        assert torch.equal(dense.sample(queries, positives, batch, 16, torch.Generator().manual_seed(0)), screened)
    assert dense.stats() == sampler.stats()


def test_the_screen_gives_the_caller_back_its_threads() -> None:
    gallery = _tied_gallery()
    queries, _ = _queries(gallery, 16, seed=8)
    before = torch.get_num_threads()
    seen = []
    real_matmul = torch.Tensor.__matmul__

    def matmul(left, right):  # the bf16 products run on the caller's threads, the rest on one
        seen.append((left.dtype, torch.get_num_threads()))
        return real_matmul(left, right)

    with patch.object(torch.Tensor, "__matmul__", matmul):
        GalleryScreen(gallery).closest(queries, 20, None)
    assert torch.get_num_threads() == before
    assert {threads for dtype, threads in seen if dtype == torch.bfloat16} == {before}
    assert {threads for dtype, threads in seen if dtype == torch.float32} == {1}
