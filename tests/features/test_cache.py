import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from cirlab import hashing
from cirlab.errors import CacheMismatchError
from cirlab.features.cache import IMAGES_FILE, INDEX_FILE, MANIFEST_FILE, TEXTS_FILE, FeatureCache, write_cache
from cirlab.hashing import DamagedFileError


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


# ------------------------------------------------------------------ content hashes
def flip_byte(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_manifest_records_the_size_and_hash_of_every_other_file(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert sorted(manifest["files"]) == [IMAGES_FILE, INDEX_FILE, TEXTS_FILE]
    for name, record in manifest["files"].items():
        data = (tmp_path / name).read_bytes()
        assert record == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("name", [IMAGES_FILE, TEXTS_FILE, INDEX_FILE])
def test_a_flipped_bit_in_any_file_is_refused_in_one_line(tmp_path, name):
    _write(tmp_path)
    flip_byte(tmp_path / name, -2)  # the last feature's value, or the index's closing brace: still well-formed
    with pytest.raises(DamagedFileError) as info:
        FeatureCache.open(tmp_path)
    assert str(info.value) == (f"{tmp_path / name}: damaged (its sha256 differs from the one manifest.json records: "
                               f"the file changed after it was written); extract the cache again "
                               f"(`cirlab extract ... --overwrite`)")


def test_a_cache_written_before_hashes_were_recorded_opens_unchecked(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    del manifest["files"]
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    flip_byte(tmp_path / IMAGES_FILE)  # a feature value changed: nothing records what it was
    assert FeatureCache.open(tmp_path).image_features.shape == (6, 8)


def test_arrays_are_hashed_once_and_again_only_when_they_change(tmp_path, monkeypatch):
    _write(tmp_path)
    hashed = []
    real_hash = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda path: hashed.append(path.name) or real_hash(path))
    FeatureCache.open(tmp_path)  # written just now: verified, but too recently changed to be stamped
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE] * 2 and not (tmp_path / hashing.STAMP_FILE).exists()
    later = hashing._now_ns() + 10 * hashing.SETTLE_NS
    monkeypatch.setattr(hashing, "_now_ns", lambda: later)  # the files have settled
    hashed.clear()
    FeatureCache.open(tmp_path)
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE]  # the second open trusted the stamps
    shutil.copy(tmp_path / IMAGES_FILE, tmp_path / "copy.npy")
    os.replace(tmp_path / "copy.npy", tmp_path / IMAGES_FILE)  # another file (inode) with the same bytes
    hashed.clear()
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE]
    with open(tmp_path / TEXTS_FILE, "ab") as handle:
        handle.write(b"\0")  # a change of size is refused before any hashing
    with pytest.raises(DamagedFileError, match=r"texts.npy: damaged or truncated \(\d+ bytes, manifest.json records"):
        FeatureCache.open(tmp_path)


def test_a_stamp_for_another_hash_or_a_broken_stamp_is_ignored(tmp_path, monkeypatch):
    _write(tmp_path)
    later = hashing._now_ns() + 10 * hashing.SETTLE_NS
    monkeypatch.setattr(hashing, "_now_ns", lambda: later)
    FeatureCache.open(tmp_path)
    stamps = json.loads((tmp_path / hashing.STAMP_FILE).read_text())
    stamps["files"][IMAGES_FILE]["sha256"] = "0" * 64
    (tmp_path / hashing.STAMP_FILE).write_text(json.dumps(stamps))
    hashed = []
    real_hash = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda path: hashed.append(path.name) or real_hash(path))
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE]
    (tmp_path / hashing.STAMP_FILE).write_text("[not json")
    hashed.clear()
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE]
