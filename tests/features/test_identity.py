"""The cache identity and its one check: what is compared, what passes, and the one-line refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cirlab.errors import CacheMismatchError
from cirlab.features import ENCODER_KEYS, IDENTITY_KEYS, FeatureCache, check_identity, write_cache
from cirlab.features.identity import IDENTITY_DEFAULTS, identity_differences, shorten

#: The keys training runs recorded before the identity had its own module.
EARLIER_TRAINER_KEYS = ("model", "pretrained", "weights_hash", "preprocess", "data_fingerprint", "dim", "num_images",
                        "num_triplets")


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    rng = np.random.default_rng(0)
    write_cache(tmp_path / "cache", image_ids=["a", "b"], image_features=rng.standard_normal((2, 4)).astype(np.float32),
                split_rows={"dress.val": [0, 1]},
                triplets=[{"category": "dress", "split": "val", "file_index": 0, "reference_row": 0, "target_row": 1,
                           "captions": ["is red", ""]}],
                text_features=rng.standard_normal((1, 4, 4)).astype(np.float32),
                manifest={"model": "RN50x4", "pretrained": "openai", "weights_hash": "0123456789abcdef" * 4,
                          "preprocess": {"kind": "targetpad", "target_ratio": 1.25}, "precision": "fp32",
                          "data_fingerprint": "f" * 64, "data_root": "/data/fashioniq", "timing": {"total": 3.0}})
    return FeatureCache.open(tmp_path / "cache")


def test_identity_holds_every_identity_key_and_nothing_else(cache):
    identity = cache.identity()
    # the writer fills dim, counts and caption forms in; the data set is left out at its default (FashionIQ)
    assert set(identity) == set(IDENTITY_KEYS) - set(IDENTITY_DEFAULTS)
    assert cache.manifest["dataset"] == "fashioniq"
    assert identity["dim"] == 4 and identity["num_images"] == 2 and identity["num_triplets"] == 1
    assert set(EARLIER_TRAINER_KEYS) <= set(IDENTITY_KEYS) and set(ENCODER_KEYS) <= set(IDENTITY_KEYS)


def test_the_same_cache_and_an_empty_record_pass(cache):
    check_identity(cache.identity(), cache, what="run/last/combiner.json")
    check_identity(None, cache, what="x")
    check_identity({}, cache, what="x")


def test_a_record_written_before_a_key_existed_passes_on_the_keys_it_has(cache):
    earlier = {key: cache.identity()[key] for key in EARLIER_TRAINER_KEYS}
    check_identity(earlier, cache, what="run/last/trainer_state.pt")
    check_identity({**earlier, "path": "/moved/cache"}, cache, what="index/manifest.json")  # not an identity key


def test_a_difference_is_one_line_naming_the_file_the_cache_and_each_key(cache):
    recorded = {**cache.identity(), "weights_hash": "fedcba9876543210" * 4, "dim": 8}
    with pytest.raises(CacheMismatchError) as info:
        check_identity(recorded, cache, what=Path("run/best/combiner.json"), hint="choose another --out")
    assert str(info.value) == (f"run/best/combiner.json: made from other features than the feature cache {cache.root} "
                               f"(weights_hash: recorded 'fedcba987654…', cache '0123456789ab…'; dim: recorded 8, "
                               f"cache 4); choose another --out")


def test_a_key_the_cache_lacks_differs_from_a_recorded_value(cache):
    with pytest.raises(CacheMismatchError, match="caption_forms: recorded \\['a'\\], cache None"):
        check_identity({"caption_forms": ["a"]}, _without(cache, "caption_forms"), what="x")


def test_keys_narrow_the_comparison(cache):
    other_data = {**cache.identity(), "data_fingerprint": "another data set", "num_images": 9}
    check_identity(other_data, cache, what="combiner.json", keys=ENCODER_KEYS)
    with pytest.raises(CacheMismatchError, match="data_fingerprint.*num_images"):
        check_identity(other_data, cache, what="combiner.json")


def test_shorten_keeps_messages_on_one_short_line():
    assert shorten("0123456789abcdef" * 4) == "'0123456789ab…'"
    assert shorten("RN50x4") == "'RN50x4'" and shorten(None) == "None" and shorten(640) == "640"
    long_dict = {"kind": "targetpad", "target_ratio": 1.25, "note": "x" * 80}
    assert len(shorten(long_dict)) == 40 and shorten(long_dict).endswith("…")



def _without(cache: FeatureCache, key: str) -> FeatureCache:
    """``cache`` reopened after ``key`` was removed from its manifest (as an older writer would have left it)."""
    path = cache.root / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest[key]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return FeatureCache.open(cache.root)


def _cirr_cache(root: Path) -> FeatureCache:
    """A one-query CIRR cache (one caption form)."""
    rng = np.random.default_rng(1)
    write_cache(root, image_ids=["a", "b"], image_features=rng.standard_normal((2, 4)).astype(np.float32),
                split_rows={"all.val": [0, 1]},
                triplets=[{"category": "all", "split": "val", "file_index": 0, "reference_row": 0, "target_row": 1,
                           "captions": ["add a dog"], "query_id": "7"}],
                text_features=rng.standard_normal((1, 1, 4)).astype(np.float32),
                manifest={"dataset": "cirr", "model": "RN50x4", "data_fingerprint": "c" * 64})
    return FeatureCache.open(root)


def test_a_fashioniq_identity_is_what_it_was_before_the_data_set_key(cache):
    """A run recorded before caches named their data set resumes: the engine compares identities as dicts."""
    before = {key: value for key, value in cache.identity().items()}
    assert "dataset" not in before
    older = _without(cache, "dataset")  # a manifest written before CIRR
    assert older.dataset == "fashioniq" and older.identity() == before
    check_identity(before, older, what="run/last/trainer_state.pt")
    FeatureCache.open(older.root, expect={"dataset": "fashioniq", "model": "RN50x4"})


def test_the_data_set_is_compared_whichever_side_names_it(cache, tmp_path):
    cirr = _cirr_cache(tmp_path / "cirr")
    assert cirr.identity()["dataset"] == "cirr" and cirr.caption_forms == ("caption",)
    with pytest.raises(CacheMismatchError, match="dataset: recorded 'fashioniq', cache 'cirr'"):
        check_identity({"model": "RN50x4"}, cirr, what="combiner.json")
    with pytest.raises(CacheMismatchError, match="dataset: recorded 'cirr', cache 'fashioniq'"):
        check_identity(cirr.identity(), cache, what="run.json")
    with pytest.raises(CacheMismatchError, match="dataset: expected 'cirr', cache has 'fashioniq'"):
        FeatureCache.open(cache.root, expect={"dataset": "cirr"})
    check_identity({"model": "RN50x4"}, cirr, what="combiner.json", keys=ENCODER_KEYS)  # the encoder alone
    assert identity_differences({"dim": 4}, {"dim": 4}) == []  # a partial record against a partial identity
