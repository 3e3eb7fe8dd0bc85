"""Query figures: the picks, the ranking against a naive loop, the drawing and the data-root rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cirlab.combiners import build_combiner
from cirlab.compare.visualise import (
    QueryFigureUnavailable,
    RankedQuery,
    draw_queries,
    pick_queries,
    query_figure,
    rank_queries,
    resolve_data_root,
)
from cirlab.data.captions import eval_caption
from cirlab.errors import DataError
from cirlab.evaluation.fashioniq import FashionIQValidation
from cirlab.features.cache import FeatureCache
from tests.compare.datasets import make_comparison_data


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    features, _ = make_comparison_data(tmp_path_factory.mktemp("visualise"), images={"train": 8, "val": 14})
    return FeatureCache.open(features)


def test_picks_are_seeded_distinct_and_take_the_categories_in_turn():
    picks = pick_queries({"dress": 5, "shirt": 2}, count=6, seed=3)
    assert picks == pick_queries({"dress": 5, "shirt": 2}, count=6, seed=3)
    assert [p.category for p in picks] == ["dress", "shirt", "dress", "shirt", "dress", "dress"]
    assert len({(p.category, p.index) for p in picks}) == 6
    assert all(0 <= p.index < 2 for p in picks if p.category == "shirt")
    assert len(pick_queries({"dress": 2, "shirt": 1}, count=10)) == 3  # every query taken, no repeats
    assert pick_queries({"dress": 5, "shirt": 2}, count=4, seed=4) != picks[:4]


def test_ranking_matches_a_naive_loop(cache):
    validation = FashionIQValidation(cache)
    combiner = build_combiner("sum", cache.dim)
    picks = pick_queries({c: len(q.positions) for c, q in validation.queries.items()}, count=6, seed=0)
    ranked = rank_queries(cache, combiner, picks, validation, top_k=5)
    features = np.asarray(cache.image_features, dtype=np.float64)
    for pick, query in zip(picks, ranked):
        q = validation.queries[pick.category]
        position = int(q.positions[pick.index])
        reference = int(cache.triplets.reference_rows[position])
        target = int(cache.triplets.target_rows[position])
        text = np.asarray(cache.text_features[position, 0], dtype=np.float64)
        composed = features[reference] + text
        composed /= np.linalg.norm(composed)
        scores = []
        for order, row in enumerate(q.gallery_rows):
            item = features[row] / np.linalg.norm(features[row])
            scores.append((-float(composed @ item), order, cache.image_ids[row]))
        ranking = [image_id for _, _, image_id in sorted(scores)]
        assert query.results == ranking[:5]
        assert query.target == cache.image_ids[target]
        assert query.target_rank == ranking.index(cache.image_ids[target])
        assert query.reference == cache.image_ids[reference]
        assert query.caption == eval_caption(cache.triplets.captions[position])
        assert query.category == pick.category


def test_drawing_marks_rows_and_survives_missing_images(tmp_path):
    tiles = {"R": np.full((20, 20, 3), 200, np.uint8), "T": np.zeros((30, 20, 3), np.uint8)}

    def tile(image_id):
        return tiles.get(image_id, np.full((16, 16, 3), 128, np.uint8))

    rows = [RankedQuery("dress", "Is red and has long sleeves", "R", "T", ["A", "T", "B"], 1),
            RankedQuery("shirt", "", "R", "T", ["A", "B"], None)]
    one = draw_queries(rows[:1], tile, tmp_path / "one.png", title="random")
    two = draw_queries(rows, tile, tmp_path / "two.png")
    with Image.open(one) as first, Image.open(two) as second:
        assert first.format == "PNG" and first.mode == "P" and second.height > first.height
        assert first.width == second.width


def test_data_root_rules(cache, tmp_path):
    assert resolve_data_root(cache) == Path(cache.manifest["data_root"])
    assert resolve_data_root(cache, tmp_path) == tmp_path
    with pytest.raises(DataError, match="data set folder not found"):
        resolve_data_root(cache, tmp_path / "absent")
    moved = FeatureCache(cache.root, {**cache.manifest, "data_root": str(tmp_path / "gone")},
                         _index_of(cache))
    with pytest.raises(QueryFigureUnavailable, match="is not there"):
        resolve_data_root(moved)
    unnamed = FeatureCache(cache.root, {k: v for k, v in cache.manifest.items() if k != "data_root"},
                           _index_of(cache))
    with pytest.raises(QueryFigureUnavailable, match="records no data_root"):
        resolve_data_root(unnamed)


def _index_of(cache: FeatureCache) -> dict:
    import json

    return json.loads((cache.root / "index.json").read_text(encoding="utf-8"))


def test_sum_ranking_is_what_the_protocol_scores(cache):
    """The figures' ranks agree with the evaluation's: Recall@5 recomputed from them matches."""
    validation = FashionIQValidation(cache)
    combiner = build_combiner("sum", cache.dim)
    counts = {c: len(q.positions) for c, q in validation.queries.items()}
    picks = pick_queries(counts, count=sum(counts.values()), seed=1)
    ranked = rank_queries(cache, combiner, picks, validation)
    hits = {c: [] for c in counts}
    for pick, query in zip(picks, ranked):
        hits[pick.category].append(query.target_rank is not None and query.target_rank < 5)
    result = validation.evaluate(combiner, show_progress=False)
    for category, values in hits.items():
        assert 100 * np.mean(values) == pytest.approx(result.per_category[category].recall[5])
    with torch.no_grad():
        images, texts, _ = validation.query_inputs("dress")
        assert torch.allclose(combiner(images, texts), F.normalize(images + texts, dim=-1))


@pytest.mark.parametrize("target_rank", [1233, 98_764, None])
def test_long_target_ranks_fit_inside_the_figure(target_rank):
    """The target's label (``rank 1234``, ``rank 98765``, ``outside gallery``) is drawn whole, not clipped."""
    tile = np.full((16, 16, 3), 128, np.uint8)
    rows = [RankedQuery("dress", "Is red and has long sleeves", "R", "T", [f"I{i}" for i in range(10)], target_rank)]
    figure = query_figure(rows, lambda _: tile, title="run")
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)  # lay out (constrained layout) as saving does
    target_axes = figure.subfigs[0].axes[-1]
    label = target_axes.title
    expected = "outside gallery" if target_rank is None else f"rank {target_rank + 1}"
    assert expected in label.get_text()
    text, axes, page = label.get_window_extent(renderer), target_axes.get_window_extent(renderer), figure.bbox
    assert page.x0 <= text.x0 and text.x1 <= page.x1 and page.y0 <= text.y0 and text.y1 <= page.y1
    assert axes.x0 - 1 <= text.x0 and text.x1 <= axes.x1 + 1  # within its own tile's width
