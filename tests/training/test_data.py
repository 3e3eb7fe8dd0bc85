"""Training data: the gallery, positives, duplicate groups and the per-process batches of an epoch."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import torch

from cirlab.data.layout import captions_file, split_file
from cirlab.errors import CacheMismatchError
from cirlab.features.cache import FeatureCache, write_cache
from cirlab.negatives import BatchInfo, Gallery, build_sampler
from cirlab.synth import META_FILE, SynthConfig, generate
from cirlab.training import load_config, train
from cirlab.training.data import (
    duplicate_groups,
    epoch_batches,
    load_training_data,
    steps_per_epoch,
    training_categories,
)
from tests.training.fixtures import make_learnable_cache

CPU = torch.device("cpu")


def small_cache(root, *, shared_image: bool = True, withheld_target: bool = False, stray_target: bool = False,
                stray_reference: bool = False):
    """6 images: dress.train = rows 0,1,2; shirt.train = rows 2,3,4 (row 2 in both); row 5 only in val."""
    dim = 4
    features = np.arange(6 * dim, dtype=np.float32).reshape(6, dim) + 1
    split_rows = {"dress.train": [0, 1, 2] if shared_image else [0, 1], "shirt.train": [2, 3, 4],
                  "dress.val": [5, 0], "shirt.val": [5, 3]}
    triplets = [
        {"category": "dress", "split": "train", "reference_row": 0, "target_row": 1},
        {"category": "shirt", "split": "train", "reference_row": 3, "target_row": 2},
        {"category": "shirt", "split": "train", "reference_row": 4, "target_row": 5 if stray_target else 3},
        {"category": "dress", "split": "train", "reference_row": 5 if stray_reference else 1,
         "target_row": -1 if withheld_target else 0},
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


def test_references_are_gallery_positions_of_the_reference_images(tmp_path):
    cache = small_cache(tmp_path / "a")
    data = load_training_data(cache, None, [0], CPU)
    rows = data.gallery.rows.tolist()
    for position, reference in zip(data.positions.tolist(), data.references.tolist()):
        assert rows[reference] == cache.triplets.reference_rows[position]
    stray = load_training_data(small_cache(tmp_path / "b", stray_reference=True), None, [0], CPU)
    assert stray.references.tolist()[-1] == -1  # row 5 is no training image
    assert data.true_matches is None  # no synthetic ground truth behind this cache


def test_only_the_configured_caption_forms_are_loaded(tmp_path):
    cache = small_cache(tmp_path)
    data = load_training_data(cache, None, [2, 0], CPU)
    expected = np.asarray(cache.text_features)[data.positions][:, [2, 0]]
    assert torch.equal(data.text_features, torch.from_numpy(expected))


def test_caption_forms_default_to_every_form_of_the_cache(tmp_path):
    cache = small_cache(tmp_path)
    assert torch.equal(load_training_data(cache, None, None, CPU).text_features,
                       load_training_data(cache, None, [0, 1, 2, 3], CPU).text_features)
    with pytest.raises(CacheMismatchError, match="caption form 4 is not in the feature cache, whose fashioniq "
                                                 "triplets have 4 .*choose caption_forms among 0..3"):
        load_training_data(cache, None, [0, 4], CPU)


def test_one_caption_form_is_always_drawn_with_the_same_generator_calls(tmp_path):
    """A data set with one caption form (CIRR) draws form 0, consuming the generator as four forms do."""
    cache = small_cache(tmp_path)
    one, four = (load_training_data(cache, None, forms, CPU) for forms in ([1], [0, 1, 2, 3]))
    first, second = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    batch = one.batch(torch.arange(len(one)), first)
    four.batch(torch.arange(len(four)), second)
    assert torch.equal(batch.text, one.text_features[:, 0]) and torch.equal(first.get_state(), second.get_state())


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
    assert first.references.tolist() == data.references[indices].tolist() and first.true_matches is None


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


# ------------------------------------------------------------------------------ synthetic ground truth
def synthetic_cache(out, data, data_root=None) -> FeatureCache:
    """A feature cache of the synthetic data set at ``data`` (random 8-d features; the manifest's
    ``data_root`` as extraction records it, or ``data_root``)."""
    ids = sorted(path.stem for path in (data / "images").glob("*.png"))
    row = {image_id: n for n, image_id in enumerate(ids)}
    split_rows, triplets = {}, []
    for category in SynthConfig.preset("tiny").categories:
        for split in ("train", "val"):
            members = json.loads(split_file(data, category, split).read_text())
            split_rows[f"{category}.{split}"] = [row[i] for i in members]
            for index, entry in enumerate(json.loads(captions_file(data, category, split).read_text())):
                triplets.append({"category": category, "split": split, "file_index": index,
                                 "captions": entry["captions"], "reference_row": row[entry["candidate"]],
                                 "target_row": row[entry["target"]]})
    rng = np.random.default_rng(0)
    write_cache(out, image_ids=ids, image_features=rng.standard_normal((len(ids), 8)).astype(np.float32),
                split_rows=split_rows, triplets=triplets,
                text_features=rng.standard_normal((len(triplets), 4, 8)).astype(np.float32),
                manifest={"model": "m", "preprocess": "p", "data_fingerprint": "f",
                          "data_root": str((data_root or data).resolve())},
                image_hashes=[hashlib.sha256((data / "images" / f"{i}.png").read_bytes()).hexdigest() for i in ids])
    return FeatureCache.open(out)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The tiny synthetic data set, its ground truth and a feature cache of it."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root / "data", SynthConfig.preset("tiny"), show_progress=False)
    meta = json.loads((root / "data" / META_FILE).read_text())
    return root / "data", meta, synthetic_cache(root / "cache", root / "data")


def naive_satisfying(meta, cache, data, index) -> set[int]:
    """Gallery positions of the items that satisfy training triplet ``index`` as well as its target does:
    its category, the target's value on every attribute the captions pin down or that did not change,
    and not the reference's value on a change the captions leave open."""
    position = int(data.positions[index])
    record = meta["triplets"][f"{cache.triplets.categories[position]}.train"][int(cache.triplets.file_index[position])]
    target, reference = meta["images"][record["target"]], meta["images"][record["candidate"]]
    left_open = set(record["changed"]) - set(record["covered"])
    satisfying = set()
    for entry, row in enumerate(data.gallery.rows.tolist()):
        item = meta["images"][cache.image_ids[row]]
        if item["category"] == target["category"] and all(
                item["attributes"][a] != reference["attributes"][a] if a in left_open
                else item["attributes"][a] == target["attributes"][a] for a in meta["attributes"]):
            satisfying.add(entry)
    return satisfying


def test_synthetic_ground_truth_says_which_items_satisfy_each_triplet(synthetic):
    _, meta, cache = synthetic
    data = load_training_data(cache, None, [0, 1, 2, 3], CPU)
    everything = torch.arange(len(data.gallery)).expand(len(data), -1)
    matches = data.true_matches.matches(everything)
    sizes = []
    for index in range(len(data)):
        expected = naive_satisfying(meta, cache, data, index)
        assert set(matches[index].nonzero().flatten().tolist()) == expected
        assert int(data.positives[index]) in expected and int(data.references[index]) not in expected
        sizes.append(len(expected))
    assert max(sizes) > 1  # some triplets are satisfied by more than their target (and its copies)


def test_the_ledger_counts_true_false_negatives_end_to_end(synthetic):
    _, meta, cache = synthetic
    data = load_training_data(cache, None, [0, 1, 2, 3], CPU)
    batch = data.batch(torch.arange(len(data)), torch.Generator().manual_seed(0))
    gallery = Gallery(data.gallery.features, data.gallery.categories, data.gallery.duplicate_groups)
    sampler = build_sampler("random", gallery)
    info = BatchInfo(batch.categories, references=batch.references, true_matches=batch.true_matches)
    queries = torch.nn.functional.normalize(batch.reference + batch.text, dim=1)
    negatives = sampler.sample(queries, batch.positives, info, 40, torch.Generator().manual_seed(1))
    satisfying = [naive_satisfying(meta, cache, data, index) for index in range(len(data))]
    expected = sum(item in satisfying[row] for row, picks in enumerate(negatives.tolist()) for item in picks)
    references = sum(picks.count(int(data.references[row])) for row, picks in enumerate(negatives.tolist()))
    stats = sampler.stats()
    assert stats["ledger_true_false_negatives"] == expected > 0
    assert stats["ledger_with_ground_truth"] == stats["negatives"] == 40 * len(data)
    assert stats["ledger_reference"] >= references > 0  # exact copies of a reference count too


def test_training_logs_the_ledger_of_a_synthetic_run(synthetic, tmp_path):
    _, _, cache = synthetic
    config = load_config(None, {
        "features": str(cache.root), "out": str(tmp_path / "run"), "combiner": "combiner", "loss": "triplet",
        "negatives": "hard", "num_negatives": 4, "epochs": 1, "batch_size": 16, "tensorboard": False,
        "combiner_options": {"projection_dim": 16, "hidden_dim": 16, "dropout": 0.0}, "seed": 0})
    last = train(config).history[-1]
    assert last["sampler/ledger_with_ground_truth"] == last["sampler/negatives"] > 0
    assert last["sampler/ledger_harder"] + last["sampler/ledger_semi_hard"] + last["sampler/ledger_easier"] == \
        last["sampler/negatives"]
    assert last["sampler/ledger_true_false_negatives"] >= 0 and last["sampler/ledger_same_category"] > 0


def test_a_stale_ground_truth_is_left_out_with_a_warning(synthetic, tmp_path, caplog):
    data_root, meta, _ = synthetic
    stale = json.loads(json.dumps(meta))
    first = stale["triplets"]["dress.train"][0]
    first["target"] = next(i for i, r in meta["images"].items() if r["category"] == "dress" and i != first["target"])
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / META_FILE).write_text(json.dumps(stale))
    cache = synthetic_cache(tmp_path / "cache", data_root, data_root=tmp_path / "stale")
    with caplog.at_level(logging.WARNING, logger="cirlab.training.data"):
        data = load_training_data(cache, None, [0], CPU)
    assert data.true_matches is None
    assert "not used for the ledger's true false negatives" in caplog.text and "dress #0" in caplog.text


def test_non_finite_image_features_name_the_cache_rows(tmp_path):
    cache = small_cache(tmp_path)
    cache.image_features = np.array(cache.image_features)
    cache.image_features[3, 1] = np.nan
    cache.image_features[5, 0] = np.nan  # row 5 is a val image: not loaded for training, not reported
    with pytest.raises(CacheMismatchError) as info:
        load_training_data(cache, None, [0, 1, 2, 3], CPU)
    assert str(info.value).startswith(f"{tmp_path / 'images.npy'}: row 3 holds NaN or infinite features")
    assert "\n" not in str(info.value)


def test_non_finite_text_features_name_the_cache_rows(tmp_path):
    cache = small_cache(tmp_path)
    cache.text_features = np.array(cache.text_features)
    cache.text_features[[0, 2], 1, 0] = [np.inf, -np.inf]
    with pytest.raises(CacheMismatchError, match=r"texts\.npy: rows 0, 2 hold NaN or infinite features"):
        load_training_data(cache, None, [0, 1, 2, 3], CPU)
    assert len(load_training_data(cache, None, [0], CPU)) == 4  # only the caption forms used are read


def test_many_non_finite_rows_are_counted_not_listed(tmp_path):
    cache = FeatureCache.open(make_learnable_cache(tmp_path))  # 2 x 80 training images
    cache.image_features = np.full(cache.image_features.shape, np.nan, dtype=np.float32)
    with pytest.raises(CacheMismatchError, match=r"images\.npy: rows 0, 1, 2, 3, 4 and 155 more hold NaN"):
        load_training_data(cache, None, [0, 1, 2, 3], CPU)


def test_annotated_soft_positives_reach_the_guard(tmp_path):
    """CIRR's positive ``target_soft`` scores become the guard's table; negative scores and the target do not."""
    import numpy as np

    from cirlab.features.cache import FeatureCache, write_cache
    from cirlab.training.data import load_training_data

    rng = np.random.default_rng(0)
    records = [{"category": "all", "split": "train", "file_index": i, "reference_row": i, "target_row": i + 1,
                "captions": [f"c{i}"], "query_id": str(i), "subset_rows": [i, i + 1],
                "soft_targets": [[i + 1, 1.0], [(i + 3) % 6, 0.5], [(i + 4) % 6, -1.0]]} for i in range(3)]
    write_cache(tmp_path / "cache", image_ids=[f"im{i}" for i in range(6)],
                image_features=rng.standard_normal((6, 8)).astype(np.float32), split_rows={"all.train": list(range(6))},
                triplets=records, text_features=rng.standard_normal((3, 1, 8)).astype(np.float32),
                manifest={"model": "m", "preprocess": {}, "data_fingerprint": "f", "dataset": "cirr"})
    data = load_training_data(FeatureCache.open(tmp_path / "cache"), None, None, torch.device("cpu"))
    soft = data.soft_positives
    targets = data.positives
    assert soft.contains(targets, torch.tensor([[(i + 3) % 6] for i in range(3)])).all()
    assert not soft.contains(targets, torch.tensor([[(i + 4) % 6] for i in range(3)])).any()
    assert not soft.contains(targets, targets[:, None]).any()
