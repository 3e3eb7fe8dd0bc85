"""Training data: the gallery, positives, duplicate groups and the per-process batches of an epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.errors import CacheMismatchError
from cirlab.features.cache import FeatureCache, write_cache
from cirlab.training.data import (
    duplicate_groups,
    epoch_batches,
    load_training_data,
    steps_per_epoch,
    training_categories,
)
from tests.training.fixtures import make_learnable_cache

CPU = torch.device("cpu")


def small_cache(root, *, shared_image: bool = True, withheld_target: bool = False, stray_target: bool = False):
    """6 images: dress.train = rows 0,1,2; shirt.train = rows 2,3,4 (row 2 in both); row 5 only in val."""
    dim = 4
    features = np.arange(6 * dim, dtype=np.float32).reshape(6, dim) + 1
    split_rows = {"dress.train": [0, 1, 2] if shared_image else [0, 1], "shirt.train": [2, 3, 4],
                  "dress.val": [5, 0], "shirt.val": [5, 3]}
    triplets = [
        {"category": "dress", "split": "train", "reference_row": 0, "target_row": 1},
        {"category": "shirt", "split": "train", "reference_row": 3, "target_row": 2},
        {"category": "shirt", "split": "train", "reference_row": 4, "target_row": 5 if stray_target else 3},
        {"category": "dress", "split": "train", "reference_row": 1, "target_row": -1 if withheld_target else 0},
        {"category": "dress", "split": "val", "reference_row": 5, "target_row": 0},
    ]
    for index, t in enumerate(triplets):
        t.update(file_index=index, captions=["a", "b"])
    texts = np.random.default_rng(0).standard_normal((len(triplets), 4, dim)).astype(np.float32)
    write_cache(root, image_ids=[f"i{n}" for n in range(6)], image_features=features, split_rows=split_rows,
                triplets=triplets, text_features=texts, manifest={"model": "m", "preprocess": "p",
                                                                  "data_fingerprint": "f"},
                image_hashes=["h0", "h1", "h2", "h1", "", ""])
    return FeatureCache.open(root)


def test_gallery_is_deduplicated_in_category_order(tmp_path):
    cache = small_cache(tmp_path)
    data = load_training_data(cache, None, [0, 1, 2, 3], CPU)
    gallery = data.gallery
    assert gallery.category_names == ["dress", "shirt"]
    assert gallery.rows.tolist() == [0, 1, 2, 3, 4]
    assert gallery.categories.tolist() == [0, 0, 0, 1, 1]  # row 2 is in both; the first category wins
    expected = torch.nn.functional.normalize(torch.from_numpy(cache.image_features[[0, 1, 2, 3, 4]].copy()), dim=-1)
    assert torch.allclose(gallery.features, expected)
    assert torch.allclose(gallery.features.norm(dim=1), torch.ones(5))


def test_positives_are_target_positions_in_the_gallery(tmp_path):
    cache = small_cache(tmp_path)
    data = load_training_data(cache, ["shirt", "dress"], [0, 1, 2, 3], CPU)
    assert data.gallery.category_names == ["shirt", "dress"]
    rows = data.gallery.rows.tolist()
    for position, positive in zip(data.positions.tolist(), data.positives.tolist()):
        assert rows[positive] == cache.triplets.target_rows[position]
    for position, category in zip(data.positions.tolist(), data.categories.tolist()):
        assert data.gallery.category_names[category] == cache.triplets.categories[position]
    assert torch.equal(data.reference_features,
                       torch.from_numpy(cache.image_features[cache.triplets.reference_rows[data.positions]].copy()))


def test_only_the_configured_caption_forms_are_loaded(tmp_path):
    cache = small_cache(tmp_path)
    data = load_training_data(cache, None, [2, 0], CPU)
    expected = np.asarray(cache.text_features)[data.positions][:, [2, 0]]
    assert torch.equal(data.text_features, torch.from_numpy(expected))


def test_duplicate_groups_match_a_naive_pairing():
    hashes = ["a", "b", "a", "", "c", "b", "", "a"]
    groups = duplicate_groups(hashes)
    for i in range(len(hashes)):
        partners = [j for j in range(len(hashes)) if j != i and hashes[j] and hashes[j] == hashes[i]]
        if partners:
            assert all(groups[j] == groups[i] >= 0 for j in partners)
            assert all(groups[j] != groups[i] for j in range(len(hashes)) if j != i and j not in partners)
        else:
            assert groups[i] == -1


def test_gallery_duplicate_groups_come_from_image_hashes(tmp_path):
    data = load_training_data(small_cache(tmp_path), None, [0], CPU)
    assert data.gallery.duplicate_groups.tolist() == [-1, 0, -1, 0, -1]  # rows 1 and 3 share hash h1


def test_triplets_without_target_are_left_out_and_counted(tmp_path):
    data = load_training_data(small_cache(tmp_path, withheld_target=True), None, [0], CPU)
    assert len(data) == 3
    assert data.skipped_without_target == 1


def test_targets_outside_the_train_lists_join_the_gallery(tmp_path):
    cache = small_cache(tmp_path, stray_target=True)
    data = load_training_data(cache, None, [0], CPU)
    assert data.targets_added_to_gallery == 1
    assert data.gallery.rows.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.gallery.categories.tolist()[-1] == 1  # the triplet's category (shirt)
    assert data.gallery.rows[data.positives[2]] == 5


def test_missing_train_split_is_a_one_line_error(tmp_path):
    cache = small_cache(tmp_path)
    with pytest.raises(CacheMismatchError, match="holds no train split of toptee"):
        training_categories(cache, ["dress", "toptee"])


def test_cache_without_any_train_split_is_refused(tmp_path):
    root = make_learnable_cache(tmp_path / "c", images={"val": 10}, splits=("val",))
    with pytest.raises(CacheMismatchError, match="holds no train split to train on"):
        load_training_data(FeatureCache.open(root), None, [0], CPU)


def test_batch_draws_forms_with_the_generator(tmp_path):
    data = load_training_data(small_cache(tmp_path), None, [0, 1, 2, 3], CPU)
    indices = torch.tensor([2, 0, 1, 2])
    first = data.batch(indices, torch.Generator().manual_seed(5))
    again = data.batch(indices, torch.Generator().manual_seed(5))
    assert torch.equal(first.text, again.text)
    forms = torch.randint(4, (4,), generator=torch.Generator().manual_seed(5))
    for row, (index, form) in enumerate(zip(indices.tolist(), forms.tolist())):
        assert torch.equal(first.text[row], data.text_features[index, form])
        assert torch.equal(first.reference[row], data.reference_features[index])
    assert first.positives.tolist() == data.positives[indices].tolist()


def test_epoch_batches_cover_the_epoch_once_and_follow_the_seed():
    batches = epoch_batches(23, epoch=1, seed=3, batch_size=5, drop_last=False)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(23))
    assert all(np.array_equal(a, b) for a, b in
               zip(batches, epoch_batches(23, epoch=1, seed=3, batch_size=5, drop_last=False)))
    other_epoch = epoch_batches(23, epoch=2, seed=3, batch_size=5, drop_last=False)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other_epoch))
    dropped = epoch_batches(23, epoch=1, seed=3, batch_size=5, drop_last=True)
    assert [len(b) for b in dropped] == [5, 5, 5, 5]
    assert steps_per_epoch(23, 5, True) == 4 and steps_per_epoch(23, 5, False) == 5


def test_processes_split_each_global_batch():
    single = epoch_batches(30, epoch=4, seed=1, batch_size=6, drop_last=True)
    shards = [epoch_batches(30, epoch=4, seed=1, batch_size=6, drop_last=True, rank=r, world_size=3) for r in range(3)]
    assert all(len(s) == len(single) for s in shards)
    for step, batch in enumerate(single):
        assert [len(s[step]) for s in shards] == [2, 2, 2]
        assert np.concatenate([s[step] for s in shards]).tolist() == batch.tolist()


def test_last_batch_is_cut_to_a_multiple_of_the_processes():
    shards = [epoch_batches(13, epoch=1, seed=0, batch_size=4, drop_last=False, rank=r, world_size=2)
              for r in range(2)]
    # global batches of 4, 4, 4 and 1: the last one cannot be split between 2 processes, so it sits out
    assert [len(b) for b in shards[0]] == [len(b) for b in shards[1]] == [2, 2, 2]
    shards = [epoch_batches(14, epoch=1, seed=0, batch_size=4, drop_last=False, rank=r, world_size=2)
              for r in range(2)]
    assert [len(b) for b in shards[0]] == [len(b) for b in shards[1]] == [2, 2, 2, 1]
