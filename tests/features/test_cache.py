import json

import numpy as np
import pytest

from cirlab.errors import CacheMismatchError
from cirlab.features.cache import MANIFEST_FILE, FeatureCache, write_cache


def _write(root, dim=8, n_images=6):
    rng = np.random.default_rng(0)
    triplets = [
        {"category": "dress", "split": "val", "file_index": 0, "reference_row": 0, "target_row": 1,
         "captions": ["is red", "darker"]},
        {"category": "dress", "split": "test", "file_index": 0, "reference_row": 2, "target_row": -1,
         "captions": ["", "longer"]},
    ]
    return write_cache(
        root, image_ids=[f"I{i}" for i in range(n_images)],
        image_features=rng.standard_normal((n_images, dim)).astype(np.float32),
        split_rows={"dress.val": [0, 1], "dress.test": [2, 3, 4, 5]}, triplets=triplets,
        text_features=rng.standard_normal((2, 4, dim)).astype(np.float32),
        manifest={"model": "m", "data_fingerprint": "abc", "preprocess": {"kind": "targetpad"}},
        image_hashes=["h0", "h1", "h2", "h2", "h4", "h5"])


def test_round_trip_is_memory_mapped(tmp_path):
    _write(tmp_path)
    cache = FeatureCache.open(tmp_path, expect={"model": "m", "data_fingerprint": "abc"})
    assert isinstance(cache.image_features, np.memmap) and cache.dim == 8
    assert cache.row_of("I3") == 3 and cache.image_hashes[3] == cache.image_hashes[2]
    assert cache.split_rows("dress", "test").tolist() == [2, 3, 4, 5]
    assert cache.triplets.select(["dress"], "val").tolist() == [0]
    assert cache.triplets.target_rows.tolist() == [1, -1]
    assert cache.eval_text_features(np.array([1])).shape == (1, 8)
    assert cache.manifest["num_triplets"] == 2 and cache.manifest["eval_form_index"] == 0


def test_stale_cache_is_refused_with_the_difference(tmp_path):
    _write(tmp_path)
    with pytest.raises(CacheMismatchError, match="data_fingerprint: expected 'xyz', cache has 'abc'"):
        FeatureCache.open(tmp_path, expect={"data_fingerprint": "xyz"})
    FeatureCache.open(tmp_path, expect={"data_fingerprint": "abc", "pretrained": None})  # None: not compared


def test_incomplete_cache_is_refused(tmp_path):
    _write(tmp_path)
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(CacheMismatchError, match="incomplete.*run `cirlab extract` again to resume it"):
        FeatureCache.open(tmp_path)


def test_unfinished_extraction_is_incomplete_not_a_data_set(tmp_path):
    (tmp_path / ".partial").mkdir(parents=True)
    (tmp_path / "images").mkdir()  # even beside a folder a data set would have
    with pytest.raises(CacheMismatchError, match="incomplete.*again to resume it"):
        FeatureCache.open(tmp_path)


@pytest.mark.parametrize("marker", ["captions", "image_splits", "images"])
def test_a_data_set_folder_is_not_a_cache(tmp_path, marker):
    (tmp_path / marker).mkdir()
    with pytest.raises(CacheMismatchError) as info:
        FeatureCache.open(tmp_path)
    message = str(info.value)
    assert message == (f"{tmp_path}: not a feature cache (it looks like a data set); run "
                       f"`cirlab extract --data {tmp_path} --out CACHE` first")


def test_an_empty_folder_is_not_a_cache(tmp_path):
    with pytest.raises(CacheMismatchError, match=r"not a feature cache \(no manifest.json\)") as info:
        FeatureCache.open(tmp_path)
    assert "resume" not in str(info.value)


def test_identity_is_the_identity_keys_the_manifest_holds(tmp_path):
    cache = FeatureCache.open(_write(tmp_path))
    assert cache.identity() == {"model": "m", "preprocess": {"kind": "targetpad"}, "data_fingerprint": "abc",
                                "dim": 8, "num_images": 6, "num_triplets": 2,
                                "caption_forms": cache.manifest["caption_forms"]}


def test_inconsistent_arrays_are_refused(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "images.npy", np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(CacheMismatchError, match="images.npy has shape"):
        FeatureCache.open(tmp_path)


def test_other_format_version_is_refused(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CacheMismatchError, match="format 99"):
        FeatureCache.open(tmp_path)


def test_unknown_split_and_image(tmp_path):
    cache = FeatureCache.open(_write(tmp_path))
    with pytest.raises(CacheMismatchError, match="no images of shirt.val"):
        cache.split_rows("shirt", "val")
    with pytest.raises(CacheMismatchError, match="'nope' is not in the feature cache"):
        cache.row_of("nope")
