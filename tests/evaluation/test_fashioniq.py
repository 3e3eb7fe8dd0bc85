import numpy as np
import pytest
import torch

from cirlab.data import CATEGORIES, FashionIQ, MissingReport
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation import (
    FashionIQValidation,
    NonFiniteQueriesError,
    category_queries,
    evaluate_cache,
    evaluated_categories,
)
from cirlab.evaluation.recall import OUTSIDE_GALLERY

from .caches import build_cache, naive_category_ranks, naive_recall, random_cache, sum_combine


def test_recall_matches_a_naive_loop_per_category(tmp_path):
    cache = random_cache(tmp_path)
    result = evaluate_cache(cache, sum_combine, batch_size=4)
    assert list(result.per_category) == ["dress", "shirt", "toptee"]
    for category, r in result.per_category.items():
        naive = naive_category_ranks(cache, category)
        assert r.ranks.tolist() == naive
        assert r.recall == {k: pytest.approx(naive_recall(naive, k)) for k in (1, 5, 10, 50)}
        assert r.num_queries == len(naive)
        assert r.gallery_size == len(cache.split_rows(category, "val"))


def test_means_and_headline_by_hand(tmp_path):
    cache = random_cache(tmp_path)
    result = evaluate_cache(cache, sum_combine)
    per = {c: r.recall for c, r in result.per_category.items()}
    for k in (1, 5, 10, 50):
        assert result.mean[k] == pytest.approx((per["dress"][k] + per["shirt"][k] + per["toptee"][k]) / 3)
    assert result.headline == pytest.approx((result.mean[10] + result.mean[50]) / 2)
    assert result.num_queries == 10 + 7 + 11


def test_hand_made_ranks_with_exact_ties_and_the_reference_in_the_gallery(tmp_path):
    # One-hot gallery rows make every score a single product: exact, so ties are exact.
    eye = np.eye(4, dtype=np.float32)
    images = np.stack([eye[0], eye[1], eye[0], eye[2], eye[3]])  # rows 0 and 2 are duplicates
    text = np.zeros((3, 4, 4), dtype=np.float32)
    text[0, 0] = 2 * eye[0]  # query 0 = image 3 + 2*e0: e0 items score highest, tied; target row 2 comes second
    text[1, 0] = 0.0  # query 1 = image 1 alone: the reference itself (row 1) is the target, rank 0
    text[2, 0] = 3 * eye[3]  # query 2 = image 0 + 3*e3: e3 first, then the duplicates e0; target row 0 is third
    triplets = [("dress", "val", 0, 3, 2), ("dress", "val", 1, 1, 1), ("dress", "val", 2, 0, 0)]
    cache = build_cache(tmp_path, images, {"dress.val": [0, 1, 2, 3, 4]}, triplets, text_features=text)
    result = evaluate_cache(cache, sum_combine)
    assert result.per_category["dress"].ranks.tolist() == [1, 0, 1]
    assert naive_category_ranks(cache, "dress") == [1, 0, 1]
    assert result.per_category["dress"].recall == {1: pytest.approx(100 / 3), 5: 100.0, 10: 100.0, 50: 100.0}


def test_targets_outside_the_gallery_are_kept_as_misses_and_counted(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.standard_normal((8, 6)).astype(np.float32)
    split_rows = {"dress.val": [0, 1, 2, 3, 4], "dress.train": [5, 6, 7]}
    triplets = [("dress", "val", 0, 0, 1), ("dress", "val", 1, 2, 6),  # target in the train split
                ("dress", "val", 2, 7, 3), ("dress", "val", 3, 1, 4)]  # reference in the train split
    cache = build_cache(tmp_path, images, split_rows, triplets)
    r = evaluate_cache(cache, sum_combine).per_category["dress"]
    assert r.num_queries == 4
    assert r.outside_gallery == {"target": [1], "reference": [2]}
    assert r.ranks[1] == OUTSIDE_GALLERY
    naive = naive_category_ranks(cache, "dress")
    assert naive[1] is None and [int(x) for i, x in enumerate(r.ranks) if i != 1] == [naive[0], naive[2], naive[3]]
    assert r.recall[50] == 75.0  # 5 gallery images: every kept query hits at 50 except the one outside


def test_missing_image_queries_are_counted_from_the_manifest(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.standard_normal((6, 4)).astype(np.float32)
    report = MissingReport(policy="skip", missing_images={"dress.val": ["X1", "X2"]},
                           dropped_triplets={"dress.val": [1, 3]})
    triplets = [("dress", "val", 0, 0, 1), ("dress", "val", 2, 2, 3), ("dress", "val", 4, 4, 5)]
    cache = build_cache(tmp_path, images, {"dress.val": list(range(6))}, triplets,
                        manifest={"missing": report.to_dict()})
    result = evaluate_cache(cache, sum_combine)
    r = result.per_category["dress"]
    assert r.num_queries == 3 and r.file_indices.tolist() == [0, 2, 4]
    assert result.excluded == {"dress": {"missing_image": 2, "target_withheld": 0}}
    assert r.missing_images == 2
    table = result.format_table()
    assert "dress: 2 missing image" in table and "images missing from the cache: dress: 2" in table
    data = result.to_dict()
    assert data["categories"]["dress"]["excluded_queries"]["missing_image"] == {"count": 2, "file_indices": [1, 3]}


def test_split_without_targets_is_refused_and_withheld_targets_counted(tmp_path):
    images = np.random.default_rng(5).standard_normal((4, 4)).astype(np.float32)
    triplets = [("dress", "test", 0, 0, -1), ("dress", "test", 1, 1, -1)]
    cache = build_cache(tmp_path, images, {"dress.test": [0, 1, 2, 3]}, triplets)
    assert category_queries(cache, "dress", "test").excluded["target_withheld"] == [0, 1]
    with pytest.raises(CacheMismatchError, match="no rankable dress/test queries.*2 target withheld"):
        evaluate_cache(cache, sum_combine, split="test")


def test_category_selection_and_errors(tmp_path):
    cache = random_cache(tmp_path)
    result = evaluate_cache(cache, sum_combine, categories=["shirt"])
    assert list(result.per_category) == ["shirt"]
    with pytest.raises(CacheMismatchError, match="holds no images of shoes.val"):
        evaluate_cache(cache, sum_combine, categories=["shoes"])
    with pytest.raises(ConfigError, match="listed twice"):
        evaluate_cache(cache, sum_combine, categories=["shirt", "shirt"])
    with pytest.raises(CacheMismatchError, match="no 'test' split"):
        evaluate_cache(cache, sum_combine, split="test")


def test_module_combiner_is_evaluated_in_eval_mode_without_gradients(tmp_path):
    cache = random_cache(tmp_path)

    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)
            self.dropout = torch.nn.Dropout(0.9)

        def forward(self, image, text):
            out = self.linear(self.dropout(image + text))
            assert not out.requires_grad
            return out

    torch.manual_seed(0)
    module = Noisy().train()
    validation = FashionIQValidation(cache, batch_size=5)
    first, second = validation.evaluate(module), validation.evaluate(module)
    assert module.training
    assert {c: r.ranks.tolist() for c, r in first.per_category.items()} == \
        {c: r.ranks.tolist() for c, r in second.per_category.items()}
    module.eval()
    for category, r in first.per_category.items():
        assert r.ranks.tolist() == naive_category_ranks(cache, category, combine=module)


def test_evaluated_categories_default_to_those_with_a_train_and_a_validation_split(tmp_path):
    features = np.eye(6, dtype=np.float32)
    split_rows = {"dress.train": [0], "dress.val": [1], "shirt.train": [2], "toptee.val": [3], "toptee.test": [4]}
    cache = build_cache(tmp_path, features, split_rows, [("dress", "val", 0, 1, 1)])
    assert evaluated_categories(cache, None, None) == ["dress"]  # shirt has no val images, toptee no training
    assert evaluated_categories(cache, None, None, split="test") == []
    assert evaluated_categories(cache, None, ["shirt", "dress", "shirt"]) == ["shirt", "dress"]  # as trained
    assert evaluated_categories(cache, ["toptee"], ["dress"]) == ["toptee"]
    assert evaluated_categories(cache, [], ["dress"]) == ["dress"]


def test_non_finite_queries_are_an_error(tmp_path):
    cache = random_cache(tmp_path)
    with pytest.raises(NonFiniteQueriesError, match="non-finite"):
        evaluate_cache(cache, lambda image, text: image * float("nan"))


def test_non_finite_gallery_features_are_a_cache_error(tmp_path):
    images = np.ones((3, 4), dtype=np.float32)
    images[2, 1] = np.nan
    cache = build_cache(tmp_path, images, {"dress.val": [0, 1, 2]}, [("dress", "val", 0, 0, 1)])
    with pytest.raises(CacheMismatchError, match="non-finite image features in the dress/val gallery"):
        evaluate_cache(cache, sum_combine)


def test_protocol_counts_on_the_real_fashioniq_val_files(real_fashioniq, tmp_path):
    dataset = FashionIQ(real_fashioniq)
    ids: dict[str, int] = {}
    split_rows, triplets = {}, []
    empty_caption_queries = {}
    for category in CATEGORIES:
        split_rows[f"{category}.val"] = [ids.setdefault(i, len(ids)) for i in dataset.image_ids(category, "val")]
        for t in dataset.triplets(category, "val"):
            triplets.append((category, "val", t.index, ids[t.reference], ids[t.target]))
        empty_caption_queries[category] = [t.index for t in dataset.triplets(category, "val") if "" in t.captions]
    features = np.random.default_rng(6).standard_normal((len(ids), 4)).astype(np.float32)
    cache = build_cache(tmp_path, features, split_rows, triplets)

    result = evaluate_cache(cache, sum_combine)
    counts = {c: (r.gallery_size, r.num_queries) for c, r in result.per_category.items()}
    assert counts == {"dress": (3817, 2017), "shirt": (6346, 2038), "toptee": (5373, 1961)}
    assert sum(len(v) for v in empty_caption_queries.values()) > 0
    for category, r in result.per_category.items():
        assert (r.ranks < r.gallery_size).all()  # every real val query is ranked inside its gallery
        assert set(empty_caption_queries[category]) <= set(r.file_indices.tolist())
        assert sorted(r.file_indices.tolist()) == list(range(r.num_queries))
    assert result.excluded == {c: {"missing_image": 0, "target_withheld": 0} for c in CATEGORIES}
    assert result.outside_gallery == {c: {"target": 0, "reference": 0} for c in CATEGORIES}


def test_the_triplet_gallery_ranks_against_the_images_of_the_split_s_triplets_and_says_so(tmp_path):
    cache = random_cache(tmp_path)
    full = evaluate_cache(cache, sum_combine, show_progress=False)
    small = evaluate_cache(cache, sum_combine, gallery="triplets", show_progress=False)
    assert (full.gallery, small.gallery) == ("split", "triplets")
    for category, r in small.per_category.items():
        positions = cache.triplets.select([category], "val")
        used = set(cache.triplets.reference_rows[positions]) | set(cache.triplets.target_rows[positions])
        assert r.gallery_size == len(used) < full.per_category[category].gallery_size
        assert all(a <= b for a, b in zip(r.ranks, full.per_category[category].ranks))  # fewer competitors
    document = small.to_dict()
    assert document["gallery"]["name"] == "triplets" and "gallery: triplets" in small.format_table()
    assert small.query_accounting()["gallery_name"] == "triplets"
    with pytest.raises(ConfigError, match="unknown FashionIQ gallery"):
        evaluate_cache(cache, sum_combine, gallery="everything")
